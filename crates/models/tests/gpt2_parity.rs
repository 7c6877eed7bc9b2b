//! GPT-2 against transformers and TransformerLens on a tiny random model
//! (`fixtures/gpt2-tiny/gen_fixtures.py`).
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

mod common;

use common::{fixtures, max_diff, tokens};
use std::cell::Cell;
use std::collections::BTreeMap;

use gpt2_gemma_models::LanguageModel;
use gpt2_gemma_models::{
    Activation, CacheFilter, Gpt2, Gpt2Tokenizer, HookPoint, Hooks, ModelError, Processing,
};
use sae_core::device::{from_env, int_tensor_from_vec, tensor_to_vec};
use sae_core::safetensors_io::{HostTensor, SafetensorsFile};

fn io() -> BTreeMap<String, HostTensor> {
    SafetensorsFile::open(fixtures().join("gpt2-tiny/io.safetensors"))
        .unwrap()
        .read_all()
        .unwrap()
}

fn act_vec(a: &Activation) -> Vec<f32> {
    match a {
        Activation::Rank3(t) => tensor_to_vec(t.clone()).unwrap(),
        Activation::Rank4(t) => tensor_to_vec(t.clone()).unwrap(),
        _ => unreachable!(),
    }
}

fn check_all_hooks(model: &Gpt2, prefix: &str) {
    let io = io();
    let (logits, cache) = model
        .run_with_cache(tokens(&io), CacheFilter::All, None)
        .unwrap();
    let logits = tensor_to_vec(logits.unwrap()).unwrap();
    let d = max_diff(&logits, &io[&format!("{prefix}.logits")].data);
    assert!(d <= 1e-4, "{prefix} logits differ by {d}");
    let mut checked = 0;
    for point in HookPoint::all(2) {
        let key = format!("{prefix}.{point}");
        let Some(reference) = io.get(&key) else {
            panic!("fixture lacks {key}")
        };
        let ours = cache
            .get(point)
            .unwrap_or_else(|| panic!("cache lacks {point}"));
        assert_eq!(ours.dims(), reference.shape, "{key} shape");
        let d = max_diff(&act_vec(ours), &reference.data);
        assert!(d <= 1e-4, "{key} differs by {d}");
        checked += 1;
    }
    assert_eq!(checked, 2 + 13 * 2 + 1);
}

#[test]
fn processed_hooks_match_transformer_lens() {
    let model = Gpt2::load(
        fixtures().join("gpt2-tiny/model"),
        Processing::TransformerLens,
        &from_env().unwrap(),
    )
    .unwrap();
    check_all_hooks(&model, "tl");
}

#[test]
fn unprocessed_hooks_match_transformer_lens_no_processing() {
    let model = Gpt2::load(
        fixtures().join("gpt2-tiny/model"),
        Processing::None,
        &from_env().unwrap(),
    )
    .unwrap();
    check_all_hooks(&model, "tlraw");
}

#[test]
fn unprocessed_matches_transformers_hidden_states_and_logits() {
    let io = io();
    let model = Gpt2::load(
        fixtures().join("gpt2-tiny/hub"),
        Processing::None,
        &from_env().unwrap(),
    )
    .unwrap();
    let filter = CacheFilter::Only(vec![HookPoint::ResidPre(0), HookPoint::ResidPre(1)]);
    let (logits, cache) = model.run_with_cache(tokens(&io), filter, None).unwrap();
    let d = max_diff(
        &tensor_to_vec(logits.unwrap()).unwrap(),
        &io["hf.logits"].data,
    );
    assert!(d <= 1e-4, "logits differ from transformers by {d}");
    for l in 0..2 {
        let ours = tensor_to_vec(cache.get3(HookPoint::ResidPre(l)).unwrap()).unwrap();
        let d = max_diff(&ours, &io[&format!("hf.hidden.{l}")].data);
        assert!(d <= 1e-4, "hidden_states[{l}] differs by {d}");
    }
}

#[test]
fn processed_residual_is_hf_hidden_minus_its_mean() {
    let io = io();
    let model = Gpt2::load(
        fixtures().join("gpt2-tiny/hub"),
        Processing::TransformerLens,
        &from_env().unwrap(),
    )
    .unwrap();
    let (logits, cache) = model
        .run_with_cache(
            tokens(&io),
            CacheFilter::Only(vec![HookPoint::ResidPre(1)]),
            None,
        )
        .unwrap();
    let ours = tensor_to_vec(cache.get3(HookPoint::ResidPre(1)).unwrap()).unwrap();
    let hf = &io["hf.hidden.1"].data;
    let centred: Vec<f32> = hf
        .chunks(64)
        .flat_map(|row| {
            let m = row.iter().sum::<f32>() / 64.0;
            row.iter().map(move |v| v - m)
        })
        .collect();
    assert!(max_diff(&ours, &centred) <= 1e-4);
    let logits = tensor_to_vec(logits.unwrap()).unwrap();
    let hf_centred: Vec<f32> = io["hf.logits"]
        .data
        .chunks(1000)
        .flat_map(|row| {
            let m = row.iter().sum::<f32>() / 1000.0;
            row.iter().map(move |v| v - m)
        })
        .collect();
    assert!(max_diff(&logits, &hf_centred) <= 1e-4);
}

#[test]
fn hub_layout_loads_and_reports_ignored_buffers() {
    let (_, report) = Gpt2::load_with_report(
        fixtures().join("gpt2-tiny/hub"),
        Processing::None,
        &from_env().unwrap(),
    )
    .unwrap();
    assert!(report.ignored.iter().any(|k| k == "h.0.attn.bias"));
    assert!(report.unused.is_empty());
    assert!(report.applied.iter().any(|k| k == "wte.weight"));
    let (_, report) = Gpt2::load_with_report(
        fixtures().join("gpt2-tiny/model"),
        Processing::None,
        &from_env().unwrap(),
    )
    .unwrap();
    assert!(report.applied.iter().any(|k| k == "transformer.wte.weight"));
}

#[test]
fn stop_at_layer_computes_nothing_past_the_stop() {
    let io = io();
    let model = Gpt2::load(
        fixtures().join("gpt2-tiny/model"),
        Processing::TransformerLens,
        &from_env().unwrap(),
    )
    .unwrap();
    let fired = Cell::new(Vec::<HookPoint>::new());
    let record = |p: HookPoint, _pass, a: Activation| {
        let mut v = fired.take();
        v.push(p);
        fired.set(v);
        a
    };
    let mut hooks = Hooks::new().cache(CacheFilter::All);
    for p in HookPoint::all(2) {
        hooks = hooks.add(p, record);
    }
    let (logits, cache) = model.run_with_hooks(tokens(&io), hooks, Some(1)).unwrap();
    assert!(logits.is_none());
    let fired = fired.take();
    assert!(fired.contains(&HookPoint::ResidPost(0)));
    assert!(
        fired.iter().all(|p| p.layer().is_none_or(|l| l < 1)),
        "{fired:?}"
    );
    assert!(!fired.contains(&HookPoint::LnFinalNormalized));
    assert!(cache.get(HookPoint::ResidPre(1)).is_none());
    // Layer 0's values are unchanged by stopping early.
    let full = model
        .run_with_cache(
            tokens(&io),
            CacheFilter::Only(vec![HookPoint::ResidPost(0)]),
            None,
        )
        .unwrap()
        .1;
    let a = tensor_to_vec(cache.get3(HookPoint::ResidPost(0)).unwrap()).unwrap();
    let b = tensor_to_vec(full.get3(HookPoint::ResidPost(0)).unwrap()).unwrap();
    assert_eq!(a, b);
}

#[test]
fn hooks_can_replace_activations() {
    let io = io();
    let model = Gpt2::load(
        fixtures().join("gpt2-tiny/model"),
        Processing::None,
        &from_env().unwrap(),
    )
    .unwrap();
    // Zero-ablating every attention and MLP output leaves the embeddings to the unembedding.
    let zero = |_p, _pass, a: Activation| match a {
        Activation::Rank3(t) => Activation::Rank3(t.zeros_like()),
        other => other,
    };
    let mut hooks = Hooks::new();
    for l in 0..2 {
        hooks = hooks
            .add(HookPoint::AttnOut(l), zero)
            .add(HookPoint::MlpOut(l), zero);
    }
    let (ablated, _) = model.run_with_hooks(tokens(&io), hooks, None).unwrap();
    let clean = model.forward(tokens(&io)).unwrap();
    let (a, c) = (
        tensor_to_vec(ablated.unwrap()).unwrap(),
        tensor_to_vec(clean).unwrap(),
    );
    assert!(max_diff(&a, &c) > 1e-2, "ablation must change the logits");
    // A rank-changing hook is an error, not a silent no-op.
    let bad = Hooks::new().add(HookPoint::AttnOut(0), |_p, _pass, a: Activation| match a {
        Activation::Rank3(t) => Activation::Rank4(t.unsqueeze::<4>()),
        other => other,
    });
    assert!(matches!(
        model.run_with_hooks(tokens(&io), bad, None),
        Err(ModelError::InvalidInput(_))
    ));
}

#[test]
fn hook_names_round_trip() {
    for p in HookPoint::all(12) {
        let s = p.to_string();
        assert_eq!(s.parse::<HookPoint>().unwrap(), p, "{s}");
    }
    assert_eq!(
        HookPoint::ResidPre(8).to_string(),
        "blocks.8.hook_resid_pre"
    );
    for bad in [
        "blocks.x.hook_resid_pre",
        "blocks.01.hook_resid_pre",
        "hook_nothing",
        "blocks.3.attn.hook_y",
    ] {
        assert!(bad.parse::<HookPoint>().is_err(), "{bad}");
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    let model = Gpt2::load(
        fixtures().join("gpt2-tiny/model"),
        Processing::None,
        &from_env().unwrap(),
    )
    .unwrap();
    let t = |ids: Vec<i64>, n| int_tensor_from_vec(ids, [1, n], &from_env().unwrap());
    assert!(matches!(
        model.forward(t(vec![5, 1000], 2)),
        Err(ModelError::InvalidInput(_))
    ));
    assert!(matches!(
        model.forward(t(vec![1; 65], 65)),
        Err(ModelError::InvalidInput(_))
    ));

    // Missing tensors and wrong shapes name the tensor.
    let tmp = tempfile::tempdir().unwrap();
    let src = fixtures().join("gpt2-tiny/hub");
    std::fs::copy(
        src.join("model.safetensors"),
        tmp.path().join("model.safetensors"),
    )
    .unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    cfg["n_layer"] = 3.into();
    std::fs::write(tmp.path().join("config.json"), cfg.to_string()).unwrap();
    match Gpt2::load(tmp.path(), Processing::None, &from_env().unwrap()) {
        Err(ModelError::MissingTensor { tensor, .. }) => assert_eq!(tensor, "h.2.ln_1.weight"),
        other => panic!("{other:?}"),
    }
    cfg["n_layer"] = 2.into();
    cfg["n_embd"] = 32.into();
    std::fs::write(tmp.path().join("config.json"), cfg.to_string()).unwrap();
    match Gpt2::load(tmp.path(), Processing::None, &from_env().unwrap()) {
        Err(ModelError::ShapeMismatch {
            tensor,
            expected,
            found,
            ..
        }) => {
            assert_eq!(tensor, "wte.weight");
            assert_eq!(expected, vec![1000, 32]);
            assert_eq!(found, vec![1000, 64]);
        }
        other => panic!("{other:?}"),
    }
    cfg["n_embd"] = 64.into();
    cfg["model_type"] = "llama".into();
    std::fs::write(tmp.path().join("config.json"), cfg.to_string()).unwrap();
    assert!(matches!(
        Gpt2::load(tmp.path(), Processing::None, &from_env().unwrap()),
        Err(ModelError::Config { .. })
    ));
}

#[test]
fn tokenizer_matches_transformers() {
    let dir = fixtures().join("gpt2-tokenizer");
    let tok = Gpt2Tokenizer::from_dir(&dir).unwrap();
    assert_eq!(tok.bos_id(), 50256);
    assert_eq!(tok.vocab_size(), 50257);
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference_ids.json")).unwrap())
            .unwrap();
    let cases = reference["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want: Vec<u32> = c["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = tok.encode(text).unwrap();
        assert_eq!(got, want, "{text:?}");
        assert_eq!(tok.decode(&got).unwrap(), text, "decode {text:?}");
    }
}

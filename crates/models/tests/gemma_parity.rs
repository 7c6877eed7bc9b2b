//! Gemma 3 against transformers on a tiny random model (`fixtures/gemma3-tiny/gen_fixtures.py`):
//! q/k norms, GQA, sliding-window layers with local RoPE, a global layer, 1 + w norms.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

mod common;

use common::max_diff;
use std::path::PathBuf;

use gpt2_gemma_models::LanguageModel;
use gpt2_gemma_models::{
    CacheFilter, Gemma, GemmaVariant, GenerateConfig, HookPoint, Hooks, generate,
};
use sae_core::device::{from_env, int_tensor_from_vec, tensor_to_vec};
use sae_core::safetensors_io::SafetensorsFile;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gemma3-tiny")
}

#[test]
fn gemma3_logits_and_hidden_states_match_transformers() {
    let io = SafetensorsFile::open(dir().join("io.safetensors"))
        .unwrap()
        .read_all()
        .unwrap();
    let model = Gemma::load(dir().join("model"), &from_env().unwrap()).unwrap();
    assert_eq!(model.variant(), GemmaVariant::Gemma3);
    let la = model.layer_attention();
    assert!(
        la[..5]
            .iter()
            .all(|l| l.sliding && l.rope_theta == 10_000.0)
    );
    assert!(!la[5].sliding && la[5].rope_theta == 1_000_000.0);
    let t = &io["tokens"];
    let ids: Vec<i64> = t.data.iter().map(|v| *v as i64).collect();
    let tokens = int_tensor_from_vec(ids, [2, 12], &from_env().unwrap());
    let filter = CacheFilter::Only((0..6).map(HookPoint::ResidPre).collect());
    let (logits, cache) = model.run_with_cache(tokens, filter, None).unwrap();
    let d = max_diff(&tensor_to_vec(logits.unwrap()).unwrap(), &io["logits"].data);
    assert!(d <= 1e-4, "logits differ by {d}");
    for l in 0..6 {
        let ours = tensor_to_vec(cache.get3(HookPoint::ResidPre(l)).unwrap()).unwrap();
        let d = max_diff(&ours, &io[&format!("hidden.{l}")].data);
        assert!(d <= 1e-4, "hidden_states[{l}] differs by {d}");
    }
}

#[test]
fn gemma3_greedy_generation_equals_transformers() {
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("manifest.json")).unwrap())
            .unwrap();
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let prompt = ids(&m["greedy_prompt"]);
    let want = ids(&m["greedy_continuation"]);
    let model = Gemma::load(dir().join("model"), &from_env().unwrap()).unwrap();
    // The continuation runs past the sliding window (4), so the KV-cached decode must mask it.
    let got = generate(
        &model,
        &[prompt],
        &GenerateConfig::greedy(want.len(), None),
        &mut Hooks::new(),
    )
    .unwrap();
    assert_eq!(got[0], want);
}

#[test]
fn gemma_hooks_cache_edit_and_stop() {
    use gpt2_gemma_models::Activation;
    let model = Gemma::load(dir().join("model"), &from_env().unwrap()).unwrap();
    let tokens = || int_tensor_from_vec(vec![2i64, 5, 9, 13, 200, 7], [1, 6], &from_env().unwrap());
    let (logits, cache) = model
        .run_with_cache(tokens(), CacheFilter::All, None)
        .unwrap();
    assert_eq!(
        cache.get(HookPoint::AttnQ(0)).unwrap().dims(),
        vec![1, 6, 4, 32]
    );
    assert_eq!(
        cache.get(HookPoint::AttnK(0)).unwrap().dims(),
        vec![1, 6, 1, 32]
    );
    assert_eq!(
        cache.get(HookPoint::AttnPattern(5)).unwrap().dims(),
        vec![1, 4, 6, 6]
    );
    assert_eq!(
        cache.get(HookPoint::MlpPost(2)).unwrap().dims(),
        vec![1, 6, 128]
    );
    // Sliding layers (window 4) see at most 4 keys; the global layer sees all earlier ones.
    let p0 = tensor_to_vec(cache.get4(HookPoint::AttnPattern(0)).unwrap()).unwrap();
    let last_row = &p0[5 * 6..6 * 6]; // head 0, query 5
    assert_eq!(last_row.iter().filter(|v| **v > 0.0).count(), 4);
    let p5 = tensor_to_vec(cache.get4(HookPoint::AttnPattern(5)).unwrap()).unwrap();
    assert_eq!(p5[5 * 6..6 * 6].iter().filter(|v| **v > 0.0).count(), 6);
    // Replacing resid_pre of layer 3 with zeros changes the logits; stopping at 3 skips them.
    let hooks = Hooks::new().add(HookPoint::ResidPre(3), |_p, _pass, a: Activation| match a {
        Activation::Rank3(t) => Activation::Rank3(t.zeros_like()),
        other => other,
    });
    let (edited, _) = model.run_with_hooks(tokens(), hooks, None).unwrap();
    let (a, b) = (
        tensor_to_vec(edited.unwrap()).unwrap(),
        tensor_to_vec(logits.unwrap()).unwrap(),
    );
    assert!(max_diff(&a, &b) > 1e-3);
    let (none, c) = model
        .run_with_cache(tokens(), CacheFilter::All, Some(3))
        .unwrap();
    assert!(
        none.is_none()
            && c.get(HookPoint::ResidPre(3)).is_none()
            && c.get(HookPoint::ResidPost(2)).is_some()
    );
}

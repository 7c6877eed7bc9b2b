//! KV-cached generation against transformers' greedy output, sampling reproducibility, and
//! TransformerLens's freq_penalty definition.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::cell::RefCell;
use std::path::PathBuf;

use gpt2_gemma_models::LanguageModel;
use gpt2_gemma_models::sampling::{apply_temperature_and_penalty, keep_top_k, keep_top_p};
use gpt2_gemma_models::{
    Activation, GenerateConfig, Gpt2, HookPoint, Hooks, Pass, Processing, SampleConfig, Sampling,
    generate, generate_many,
};
use sae_core::device::{from_env, int_tensor_from_vec, tensor_to_vec};

fn model(p: Processing) -> Gpt2 {
    Gpt2::load(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2-tiny/model"),
        p,
        &from_env().unwrap(),
    )
    .unwrap()
}

fn manifest() -> serde_json::Value {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2-tiny/manifest.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn greedy_generation_equals_transformers() {
    let m = manifest();
    let prompt = ids(&m["greedy_prompt"]);
    let want = ids(&m["greedy_continuation"]);
    assert!(want.len() >= 20);
    for p in [Processing::None, Processing::TransformerLens] {
        let got = generate(
            &model(p),
            std::slice::from_ref(&prompt),
            &GenerateConfig::greedy(want.len(), None),
            &mut Hooks::new(),
        )
        .unwrap();
        assert_eq!(got[0], want, "{p:?}");
    }
}

#[test]
fn kv_cache_logits_equal_full_recomputation() {
    let gpt = model(Processing::TransformerLens);
    let seq: Vec<i64> = vec![5, 17, 300, 42, 999, 7, 8, 120];
    let full = gpt
        .forward(int_tensor_from_vec(
            seq.clone(),
            [1, 8],
            &from_env().unwrap(),
        ))
        .unwrap();
    let full = tensor_to_vec(full).unwrap();
    let mut kv = gpt2_gemma_models::KvCache::new();
    let mut hooks = Hooks::new();
    let first = gpt
        .run(
            int_tensor_from_vec(seq[..5].to_vec(), [1, 5], &from_env().unwrap()),
            &mut hooks,
            None,
            Some(&mut kv),
            Pass::Prefill,
        )
        .unwrap()
        .unwrap();
    let mut got = tensor_to_vec(first).unwrap();
    for (i, tok) in seq[5..].iter().enumerate() {
        let step = gpt
            .run(
                int_tensor_from_vec(vec![*tok], [1, 1], &from_env().unwrap()),
                &mut hooks,
                None,
                Some(&mut kv),
                Pass::Decode { step: i + 1 },
            )
            .unwrap()
            .unwrap();
        got.extend(tensor_to_vec(step).unwrap());
    }
    assert_eq!(kv.len(), 8);
    let d = got
        .iter()
        .zip(&full)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(d <= 1e-4, "cached logits differ by {d}");
}

#[test]
fn hooks_see_the_prompt_then_one_position_per_step() {
    let gpt = model(Processing::TransformerLens);
    let seen = RefCell::new(Vec::new());
    let mut hooks = Hooks::new().add(HookPoint::ResidPre(1), |_p, pass, a: Activation| {
        seen.borrow_mut().push((pass, a.dims()[1]));
        a
    });
    let out = generate(
        &gpt,
        &[vec![1, 2, 3, 4], vec![9, 8, 7, 6]],
        &GenerateConfig::greedy(5, None),
        &mut hooks,
    )
    .unwrap();
    assert_eq!(out.len(), 2);
    drop(hooks);
    let seen = seen.into_inner();
    assert_eq!(seen[0], (Pass::Prefill, 4));
    for (i, s) in seen[1..].iter().enumerate() {
        assert_eq!(*s, (Pass::Decode { step: i + 1 }, 1));
    }
    assert_eq!(seen.len(), 5);
}

#[test]
fn seeded_sampling_is_reproducible() {
    let gpt = model(Processing::None);
    let cfg = |seed| GenerateConfig {
        max_new_tokens: 20,
        sampling: Sampling::Sample(SampleConfig {
            temperature: 1.5,
            freq_penalty: 0.5,
            top_k: None,
            top_p: Some(0.95),
            seed,
        }),
        eos_token: None,
    };
    let prompts = vec![vec![1, 2, 3], vec![4, 5, 6]];
    let a = generate(&gpt, &prompts, &cfg(7), &mut Hooks::new()).unwrap();
    let b = generate(&gpt, &prompts, &cfg(7), &mut Hooks::new()).unwrap();
    let c = generate(&gpt, &prompts, &cfg(8), &mut Hooks::new()).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn ragged_prompts_and_eos() {
    let gpt = model(Processing::None);
    let m = manifest();
    let prompt = ids(&m["greedy_prompt"]);
    let want = ids(&m["greedy_continuation"]);
    let prompts = vec![vec![3, 4], prompt.clone(), vec![11]];
    let out = generate_many(&gpt, &prompts, &GenerateConfig::greedy(want.len(), None)).unwrap();
    assert_eq!(out[1], want);
    assert!(out.iter().all(|o| o.len() == want.len()));
    // Stopping at the third greedy token, included.
    let out = generate_many(&gpt, &[prompt], &GenerateConfig::greedy(20, Some(want[2]))).unwrap();
    assert_eq!(out[0], want[..3].to_vec());
    assert!(
        generate(
            &gpt,
            &[vec![1, 2], vec![3]],
            &GenerateConfig::greedy(3, None),
            &mut Hooks::new()
        )
        .is_err()
    );
}

#[test]
fn freq_penalty_matches_transformer_lens_definition() {
    // TransformerLens: logits / temperature − freq_penalty · bincount(tokens), tokens being the
    // whole sequence so far. By hand: token 1 seen twice, token 3 once.
    let mut logits = vec![1.0, 2.0, 3.0, 4.0];
    apply_temperature_and_penalty(&mut logits, &[1, 3, 1], 0.5, 2.0);
    assert_eq!(logits, vec![2.0, 4.0 - 4.0, 6.0, 8.0 - 2.0]);
}

#[test]
fn top_k_and_top_p_filtering() {
    let mut l = vec![0.0, 3.0, 1.0, 2.0];
    keep_top_k(&mut l, 2);
    assert_eq!(l, vec![f32::NEG_INFINITY, 3.0, f32::NEG_INFINITY, 2.0]);
    // probs ≈ [0.032, 0.644, 0.087, 0.237]: the nucleus for p = 0.7 is {1, 3}.
    let mut l = vec![0.0, 3.0, 1.0, 2.0];
    keep_top_p(&mut l, 0.7);
    assert_eq!(l, vec![f32::NEG_INFINITY, 3.0, f32::NEG_INFINITY, 2.0]);
    let mut l = vec![0.0, 3.0, 1.0, 2.0];
    keep_top_p(&mut l, 0.5);
    assert_eq!(l[1], 3.0);
    assert_eq!(l.iter().filter(|x| x.is_finite()).count(), 1);
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// `run_last` (what generation reads) equals the last position of `run` for every decoder
/// family, prefill and a cached decode step alike, and a hook on the final norm still sees every
/// position.
#[test]
fn last_position_logits_equal_the_full_pass() {
    use gpt2_gemma_models::{AnyModel, Gemma, KvCache, Llama};
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dev = from_env().unwrap();
    let models = [
        AnyModel::Gpt2(model(Processing::TransformerLens)),
        AnyModel::Gemma(Gemma::load(fixtures.join("gemma3-tiny/model"), &dev).unwrap()),
        AnyModel::Llama(Llama::load(fixtures.join("llama-tiny/llama3"), &dev).unwrap()),
    ];
    for m in &models {
        let (b, t) = (2, 5);
        let seq: Vec<i64> = (0..b * t).map(|i| (i as i64 * 37 + 3) % 50).collect();
        let vocab = m.vocab_size();
        let full = m
            .forward(int_tensor_from_vec(seq.clone(), [b, t], &dev))
            .unwrap();
        let want = tensor_to_vec(full.narrow(1, t - 1, 1).reshape([b, vocab])).unwrap();
        let seen = RefCell::new(Vec::new());
        let mut hooks = Hooks::new().add(HookPoint::LnFinalNormalized, |_, _, a: Activation| {
            seen.borrow_mut().push(a.dims()[1]);
            a
        });
        let mut kv = KvCache::new();
        let tokens = int_tensor_from_vec(seq.clone(), [b, t], &dev);
        let got = m
            .run_last(tokens, &mut hooks, Some(&mut kv), Pass::Prefill)
            .unwrap();
        assert_eq!(got.dims(), [b, vocab]);
        let got = tensor_to_vec(got).unwrap();
        let worst = max_abs_diff(&got, &want);
        assert!(worst <= 1e-5, "prefill: max |Δ| {worst}");
        // One cached step against the full pass over the longer sequence.
        let step: Vec<i64> = vec![11, 29];
        let got = m
            .run_last(
                int_tensor_from_vec(step.clone(), [b, 1], &dev),
                &mut hooks,
                Some(&mut kv),
                Pass::Decode { step: 1 },
            )
            .unwrap();
        let mut longer = Vec::new();
        for r in 0..b {
            longer.extend_from_slice(&seq[r * t..(r + 1) * t]);
            longer.push(step[r]);
        }
        let full = m
            .forward(int_tensor_from_vec(longer, [b, t + 1], &dev))
            .unwrap();
        let want = tensor_to_vec(full.narrow(1, t, 1).reshape([b, vocab])).unwrap();
        let got = tensor_to_vec(got).unwrap();
        let worst = max_abs_diff(&got, &want);
        assert!(worst <= 1e-4, "decode: max |Δ| {worst}");
        drop(hooks);
        assert_eq!(
            seen.into_inner(),
            vec![t, 1],
            "the final-norm hook sees whole passes"
        );
    }
}

//! Patch scoping on gemma-3-270m (the offline GGUF) against transformers loading the same file
//! with the tutorial's pre-hook (`fixtures/gen_fixtures.py`): greedy generations token for
//! token, scale-tuning metrics within 1e-3; and the invariant that patching a token's own
//! embedding at layer 0 is writing that token.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::sync::OnceLock;

use gpt2_gemma_models::gguf::GgufFile;
use gpt2_gemma_models::{
    AnyTokenizer, CacheFilter, Gemma, GemmaTokenizer, GenerateConfig, HookPoint, Hooks,
    LanguageModel, Sampling, generate,
};
use patch_scoping::{
    PatchMode, PatchPrompt, ScaleKind, SweepConfig, TuningConfig, residual_norm, sweep, tune_scales,
};
use sae_core::device::{int_tensor_from_vec, tensor_to_vec};

struct Loaded {
    model: Gemma,
    tok: AnyTokenizer,
}

fn loaded() -> &'static Loaded {
    static L: OnceLock<Loaded> = OnceLock::new();
    L.get_or_init(|| {
        let path = gpt2_gemma_models::offline::install_gemma3_270m_gguf().unwrap();
        let file = GgufFile::open(path).unwrap();
        Loaded {
            model: Gemma::load_gguf(&file, &Default::default()).unwrap(),
            tok: AnyTokenizer::Gemma(GemmaTokenizer::from_gguf(&file).unwrap()),
        }
    })
}

#[derive(serde::Deserialize)]
struct Gen {
    direction: String,
    scale: f32,
    generated_ids: Vec<u32>,
}

#[derive(serde::Deserialize)]
struct Metrics {
    direction: String,
    scales: Vec<f32>,
    self_similarity: Vec<f64>,
    entropy: Vec<f64>,
    entropy_change: Vec<f64>,
    cross_entropy: Vec<f64>,
    score: Vec<f64>,
    chosen: usize,
}

#[derive(serde::Deserialize)]
struct Fixture {
    ids: Vec<u32>,
    positions: Vec<usize>,
    layer: usize,
    probe_layer: usize,
    max_new_tokens: usize,
    eos: u32,
    resid_norm: f32,
    directions: std::collections::BTreeMap<String, Vec<f32>>,
    generations: Vec<Gen>,
    metrics: Vec<Metrics>,
}

fn fixture() -> Fixture {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/patch_scoping.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn greedy_cfg(f: &Fixture, layer: usize) -> SweepConfig {
    SweepConfig {
        layer,
        mode: PatchMode::Replace,
        kind: ScaleKind::Absolute,
        max_new_tokens: f.max_new_tokens,
        sampling: Sampling::Greedy,
        eos: Some(f.eos),
    }
}

#[test]
fn prompt_and_residual_norm_match_transformers() {
    let (l, f) = (loaded(), fixture());
    let p = PatchPrompt::tutorial(&l.tok).unwrap();
    assert_eq!(p.ids, f.ids);
    assert_eq!(p.positions, f.positions);
    let n = residual_norm(&l.model, &p, f.layer).unwrap();
    approx::assert_relative_eq!(n, f.resid_norm, max_relative = 1e-4);
}

#[test]
fn greedy_generations_equal_the_reference_one_by_one_and_batched() {
    let (l, f) = (loaded(), fixture());
    let p = PatchPrompt::tutorial(&l.tok).unwrap();
    let cfg = greedy_cfg(&f, f.layer);
    for g in &f.generations {
        let got = sweep(
            &l.model,
            &l.tok,
            &p,
            &f.directions[&g.direction],
            &[g.scale],
            &cfg,
        )
        .unwrap();
        assert_eq!(
            got[0].generated_ids, g.generated_ids,
            "{} at scale {}",
            g.direction, g.scale
        );
    }
    // The same scales as one batch (the sweep's scales are the batch dimension).
    let gauss: Vec<&Gen> = f
        .generations
        .iter()
        .filter(|g| g.direction == "gauss")
        .collect();
    let scales: Vec<f32> = gauss.iter().map(|g| g.scale).collect();
    let got = sweep(&l.model, &l.tok, &p, &f.directions["gauss"], &scales, &cfg).unwrap();
    for (r, g) in got.iter().zip(&gauss) {
        assert_eq!(
            r.generated_ids, g.generated_ids,
            "batched, scale {}",
            g.scale
        );
    }
}

#[test]
fn tuning_metrics_equal_the_reference() {
    let (l, f) = (loaded(), fixture());
    let p = PatchPrompt::tutorial(&l.tok).unwrap();
    let cfg = TuningConfig {
        layer: f.layer,
        probe_layer: f.probe_layer,
        mode: PatchMode::Replace,
        kind: ScaleKind::Absolute,
    };
    assert_eq!(
        TuningConfig::new(f.layer, l.model.n_layers()).probe_layer,
        f.probe_layer
    );
    for m in &f.metrics {
        let (got, chosen) =
            tune_scales(&l.model, &p, &f.directions[&m.direction], &m.scales, &cfg).unwrap();
        for (i, g) in got.iter().enumerate() {
            let tol = 1e-3;
            assert!(
                (g.self_similarity - m.self_similarity[i]).abs() < tol,
                "{} selfsim {i}: {} vs {}",
                m.direction,
                g.self_similarity,
                m.self_similarity[i]
            );
            assert!(
                (g.entropy - m.entropy[i]).abs() < tol,
                "{} entropy {i}: {} vs {}",
                m.direction,
                g.entropy,
                m.entropy[i]
            );
            assert!(
                (g.entropy_change - m.entropy_change[i]).abs() < tol,
                "{} entropy change {i}",
                m.direction
            );
            assert!(
                (g.cross_entropy - m.cross_entropy[i]).abs() < tol,
                "{} CE {i}: {} vs {}",
                m.direction,
                g.cross_entropy,
                m.cross_entropy[i]
            );
            assert!(
                (g.score - m.score[i]).abs() < tol,
                "{} score {i}",
                m.direction
            );
        }
        assert_eq!(chosen, m.chosen);
    }
}

#[test]
fn patching_a_tokens_own_embedding_at_layer_0_is_writing_the_token() {
    let (l, f) = (loaded(), fixture());
    let p = PatchPrompt::tutorial(&l.tok).unwrap();
    let dog = l
        .tok
        .encode_with(" dog", gpt2_gemma_models::BosPolicy::Keep)
        .unwrap();
    assert_eq!(dog.len(), 1);
    let written: Vec<u32> = p
        .ids
        .iter()
        .map(|&t| if t == p.placeholder { dog[0] } else { t })
        .collect();
    // The token's own (scaled) embedding: hook_resid_pre of layer 0 at its position.
    let t = written.len();
    let ids: Vec<i64> = written.iter().map(|&x| i64::from(x)).collect();
    let tokens = int_tensor_from_vec(ids, [1, t], &l.model.device());
    let (_, cache) = l
        .model
        .run_with_cache(
            tokens,
            CacheFilter::Only(vec![HookPoint::ResidPre(0)]),
            Some(1),
        )
        .unwrap();
    let h = tensor_to_vec(
        cache
            .get3(HookPoint::ResidPre(0))
            .unwrap()
            .reshape([t * 640]),
    )
    .unwrap();
    let pos = p.positions[0];
    let e = h[pos * 640..(pos + 1) * 640].to_vec();
    let norm = e.iter().map(|x| x * x).sum::<f32>().sqrt();
    let cfg = greedy_cfg(&f, 0);
    let patched = sweep(&l.model, &l.tok, &p, &e, &[norm], &cfg).unwrap();
    let plain = generate(
        &l.model,
        &[written],
        &GenerateConfig::greedy(f.max_new_tokens, Some(f.eos)),
        &mut Hooks::new(),
    )
    .unwrap();
    assert_eq!(patched[0].generated_ids, plain[0]);
    assert!(!plain[0].is_empty());
}

/// The reference's directions as the decoder rows of an SAE (latent 0: "gauss", 1:
/// "dog_embedding", 2: "gauss2"), explained through the tutorial's latent-level function.
#[test]
fn latents_of_an_sae_built_from_the_directions_generate_as_the_reference() {
    use sae_core::config::{Architecture, SaeConfig};
    use sae_core::{HostTensor, Sae};
    let (l, f) = (loaded(), fixture());
    let names = ["gauss", "dog_embedding", "gauss2"];
    let d = f.directions["gauss"].len();
    let dec: Vec<f32> = names
        .iter()
        .flat_map(|n| f.directions[*n].iter().copied())
        .collect();
    let mut enc = vec![0f32; d * names.len()];
    for (j, n) in names.iter().enumerate() {
        for (i, v) in f.directions[*n].iter().enumerate() {
            enc[i * names.len() + j] = *v;
        }
    }
    let mut t = std::collections::BTreeMap::new();
    t.insert(
        "W_enc".to_string(),
        HostTensor::new(vec![d, names.len()], enc),
    );
    t.insert(
        "W_dec".to_string(),
        HostTensor::new(vec![names.len(), d], dec),
    );
    t.insert(
        "b_enc".to_string(),
        HostTensor::new(vec![names.len()], vec![0.0; names.len()]),
    );
    t.insert("b_dec".to_string(), HostTensor::new(vec![d], vec![0.0; d]));
    let cfg = SaeConfig::new(d, names.len(), Architecture::Standard);
    let (sae, _) = Sae::from_host_tensors(
        cfg,
        t,
        std::path::Path::new("directions"),
        &Default::default(),
    )
    .unwrap();
    let p = PatchPrompt::tutorial(&l.tok).unwrap();
    for g in &f.generations {
        let latent = names.iter().position(|n| *n == g.direction).unwrap();
        let got = patch_scoping::generate_patch_scoping_explanation(
            &l.model,
            &l.tok,
            &sae,
            &p,
            latent,
            f.layer,
            g.scale,
            f.max_new_tokens,
            Sampling::Greedy,
        )
        .unwrap();
        // The reference stops at EOS; this function does not (the tutorial's doesn't either).
        let n = g.generated_ids.len();
        assert_eq!(
            &got.generated_ids[..n],
            &g.generated_ids[..],
            "latent {latent} ({}) at scale {}",
            g.direction,
            g.scale
        );
        if n < f.max_new_tokens {
            assert_eq!(got.generated_ids[n], f.eos);
        }
    }
}

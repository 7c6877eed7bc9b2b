//! Meta-SAEs recover planted meta-directions; the evaluation splices an exact SAE in without
//! changing the loss and zero-ablation hurts.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use activation_store::eval::{EvalConfig, evaluate_sae};
use activation_store::meta_sae::{MetaSaeConfig, decompose, train_meta_sae};
use activation_store::{StoreConfig, TextSource, TokenWindows};
use gpt2_gemma_models::HookPoint;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sae_core::device::from_env;
use sae_core::{Architecture, HostTensor, Sae, SaeConfig};

fn sae_from(w_dec: Vec<f32>, d_sae: usize, d: usize, w_enc: Vec<f32>) -> Sae {
    let cfg = SaeConfig::new(d, d_sae, Architecture::Standard);
    let mut t = BTreeMap::new();
    t.insert("W_enc".to_string(), HostTensor::new(vec![d, d_sae], w_enc));
    t.insert("W_dec".to_string(), HostTensor::new(vec![d_sae, d], w_dec));
    t.insert(
        "b_enc".to_string(),
        HostTensor::new(vec![d_sae], vec![0.0; d_sae]),
    );
    t.insert("b_dec".to_string(), HostTensor::new(vec![d], vec![0.0; d]));
    Sae::from_host_tensors(cfg, t, Path::new("<test>"), &from_env().unwrap())
        .unwrap()
        .0
}

#[test]
fn meta_sae_finds_planted_meta_latents() {
    let (d, n_meta, n_lat) = (32usize, 16usize, 600usize);
    let mut rng = StdRng::seed_from_u64(5);
    let mut meta = Vec::new();
    for _ in 0..n_meta {
        let v: Vec<f32> = (0..d).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        meta.extend(v.iter().map(|x| x / n));
    }
    let mut w_dec = Vec::new();
    let mut planted = Vec::new();
    for _ in 0..n_lat {
        let a = rng.random_range(0..n_meta);
        let mut b = rng.random_range(0..n_meta);
        while b == a {
            b = rng.random_range(0..n_meta);
        }
        let (wa, wb) = (rng.random_range(0.6f32..1.0), rng.random_range(0.3f32..0.6));
        w_dec.extend((0..d).map(|j| wa * meta[a * d + j] + wb * meta[b * d + j]));
        planted.push((a, b));
    }
    let sae = sae_from(w_dec, n_lat, d, vec![0.0; d * n_lat]);
    let cfg = MetaSaeConfig {
        d_meta: 32,
        k: 2.0,
        steps: 1500,
        batch_size: 256,
        lr: 3e-3,
        seed: 1,
    };
    let (meta_sae, metrics) = train_meta_sae(&sae, cfg, false).unwrap();
    assert!(metrics.explained_variance > 0.8, "{metrics:?}");
    let parts = decompose(&sae, &meta_sae).unwrap();
    assert_eq!(parts.len(), n_lat);
    let mean_cos: f32 = parts.iter().map(|p| p.reconstruction_cosine).sum::<f32>() / n_lat as f32;
    assert!(mean_cos > 0.9, "mean reconstruction cosine {mean_cos}");
    // Latents sharing their main planted meta-direction share their top meta-latent.
    let mut agree = 0;
    let mut total = 0;
    for i in 0..n_lat {
        for j in i + 1..n_lat.min(i + 40) {
            if planted[i].0 == planted[j].0 {
                total += 1;
                let (ti, tj) = (parts[i].components.first(), parts[j].components.first());
                if ti.is_some() && ti.map(|c| c.0) == tj.map(|c| c.0) {
                    agree += 1;
                }
            }
        }
    }
    assert!(total > 50);
    assert!(agree as f64 / total as f64 > 0.6, "{agree}/{total}");
}

#[test]
fn exact_sae_recovers_all_the_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, tok) = common::tiny_model(tmp.path());
    let d = 64;
    // x = ReLU(x) − ReLU(−x): W_enc = [I, −I], W_dec = [I; −I] reconstructs exactly.
    let mut w_enc = vec![0.0; d * 2 * d];
    let mut w_dec = vec![0.0; 2 * d * d];
    for i in 0..d {
        w_enc[i * 2 * d + i] = 1.0;
        w_enc[i * 2 * d + d + i] = -1.0;
        w_dec[i * d + i] = 1.0;
        w_dec[(d + i) * d + i] = -1.0;
    }
    let sae = sae_from(w_dec, 2 * d, d, w_enc);
    let cfg = StoreConfig::new(HookPoint::ResidPost(0), 32);
    let src = TextSource::from_path(common::fixtures().join("packing/docs.jsonl"), None).unwrap();
    let mut w = TokenWindows::new(src, &tok, cfg.packing(&tok)).unwrap();
    let windows: Vec<Vec<u32>> = (0..6).map(|_| w.next_window().unwrap().unwrap()).collect();
    let config = EvalConfig {
        batch_size: 4,
        ..EvalConfig::default()
    };
    let ev = evaluate_sae(&model, &sae, HookPoint::ResidPost(0), &windows, &config).unwrap();
    assert_eq!(ev.n_tokens, 6 * 32);
    assert_eq!(ev.n_predictions, 6 * 31);
    // Latent i fires where x_i > 0 and latent d + i where x_i < 0: their densities sum to 1.
    for i in 0..d {
        let s = ev.feature_density[i] + ev.feature_density[d + i];
        assert!(
            (s - 1.0).abs() < 1e-9,
            "coordinate {i}: densities sum to {s}"
        );
    }
    let dead = ev.feature_density.iter().filter(|x| **x == 0.0).count();
    assert_eq!(ev.dead_latents, dead);
    assert!(
        ev.kl_with_sae < 1e-6 && ev.kl_zero_ablation > 1e-3,
        "{ev:?}"
    );
    assert!((ev.kl_div_score - 1.0).abs() < 1e-3, "{ev:?}");
    assert!((ev.ce_with_sae - ev.ce_clean).abs() < 1e-4, "{ev:?}");
    assert!(ev.ce_zero_ablation > ev.ce_clean + 0.01, "{ev:?}");
    assert!((ev.ce_loss_recovered - 1.0).abs() < 1e-3, "{ev:?}");
    assert!(ev.explained_variance > 0.9999, "{ev:?}");
    assert!(ev.mse < 1e-8, "{ev:?}");
}

/// The cost of a narrower activation dtype: none for float32; for bfloat16 and float16 a
/// relative error within the dtype's unit roundoff (float16's smaller), a small but nonzero KL
/// and loss change; rank-4 hooks (`hook_z`) are rounded too.
#[test]
fn activation_dtype_costs_are_bounded_by_the_roundoff() {
    use activation_store::{ActivationDtype, evaluate_activation_dtype};
    let tmp = tempfile::tempdir().unwrap();
    let (model, tok) = common::tiny_model(tmp.path());
    let cfg = StoreConfig::new(HookPoint::ResidPost(0), 32);
    let src = TextSource::from_path(common::fixtures().join("packing/docs.jsonl"), None).unwrap();
    let mut w = TokenWindows::new(src, &tok, cfg.packing(&tok)).unwrap();
    let windows: Vec<Vec<u32>> = (0..6).map(|_| w.next_window().unwrap().unwrap()).collect();
    let config = EvalConfig {
        batch_size: 4,
        ignore_tokens: vec![tok.bos_id()],
        ..EvalConfig::default()
    };
    for hook in [HookPoint::ResidPost(0), HookPoint::AttnZ(1)] {
        let eval = |d| evaluate_activation_dtype(&model, hook, d, &windows, &config).unwrap();
        let exact = eval(ActivationDtype::F32);
        assert_eq!(exact.n_positions, 6 * 32);
        assert!(
            exact.n_predictions > 100 && exact.n_predictions < 6 * 31,
            "{exact:?}"
        );
        assert_eq!(exact.relative_error, 0.0);
        assert_eq!(exact.max_abs_error, 0.0);
        assert!(exact.kl.abs() < 1e-7, "{exact:?}");
        assert!(
            (exact.ce_rounded - exact.ce_clean).abs() < 1e-6,
            "{exact:?}"
        );
        assert_eq!(exact.top1_agreement, 1.0);
        assert!(exact.max_abs_activation > 0.0);
        let bf16 = eval(ActivationDtype::Bf16);
        let f16 = eval(ActivationDtype::F16);
        for e in [&bf16, &f16] {
            let u = f64::from(e.dtype.unit_roundoff());
            assert!(
                e.relative_error > u / 20.0 && e.relative_error <= u,
                "{e:?}"
            );
            assert!(e.max_position_relative_error <= u, "{e:?}");
            assert!(e.max_abs_error > 0.0 && e.max_abs_error <= u * e.max_abs_activation);
            assert!(e.kl > 0.0 && e.kl < 1e-3, "{e:?}");
            assert!(e.top1_agreement > 0.9, "{e:?}");
            assert_eq!(e.n_out_of_range, 0);
            assert_eq!(e.ce_clean, exact.ce_clean);
        }
        assert!(f16.relative_error < bf16.relative_error, "{f16:?} {bf16:?}");
        assert!(f16.kl < bf16.kl, "{f16:?} {bf16:?}");
    }
}

//! Feature absorption: the probes against scikit-learn (`fixtures/absorption/gen_fixtures.py`)
//! and the analysis on planted data with known absorbing latents.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use latent_geometry::absorption::{
    AbsorptionConfig, ClassWeight, LetterData, LogisticConfig, absorption, fit_logistic,
    precision_recall_f1, train_letter_probes,
};
use rand::{RngExt, SeedableRng};
use sae_core::config::{Architecture, SaeConfig};
use sae_core::{HostTensor, Sae};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/absorption")
}

#[test]
fn logistic_regression_matches_sklearn() {
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("logistic.json")).unwrap())
            .unwrap();
    let (n, d) = (
        j["n"].as_u64().unwrap() as usize,
        j["d"].as_u64().unwrap() as usize,
    );
    let x: Vec<f32> = j["x"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let y: Vec<bool> = j["y"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap() == 1)
        .collect();
    for fit in j["fits"].as_array().unwrap() {
        let cfg = LogisticConfig {
            c: fit["C"].as_f64().unwrap(),
            class_weight: if fit["class_weight"] == "balanced" {
                ClassWeight::Balanced
            } else {
                ClassWeight::None
            },
            max_iter: 100,
            tol: 1e-10,
        };
        let ours = fit_logistic(&x, n, d, &y, &cfg).unwrap();
        let coef: Vec<f64> = fit["coef"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        for (a, b) in ours.weights.iter().zip(&coef) {
            assert!(
                (a - b).abs() < 1e-4 * b.abs().max(1.0),
                "{cfg:?}: coef {a} vs sklearn {b}"
            );
        }
        let b = fit["intercept"].as_f64().unwrap();
        assert!(
            (ours.bias - b).abs() < 1e-4 * b.abs().max(1.0),
            "{cfg:?}: intercept {} vs {b}",
            ours.bias
        );
        let pred: Vec<bool> = x.chunks(d).map(|r| ours.logit(r) > 0.0).collect();
        let (p, r, f1) = precision_recall_f1(&y, &pred);
        for (ours, key) in [(p, "precision"), (r, "recall"), (f1, "f1")] {
            assert!((ours - fit[key].as_f64().unwrap()).abs() < 1e-12, "{key}");
        }
    }
    // Bad input is a typed error.
    assert!(fit_logistic(&x, n, d + 1, &y, &LogisticConfig::default()).is_err());
    assert!(fit_logistic(&x, n, d, &vec![true; n], &LogisticConfig::default()).is_err());
}

/// Planted first-letter data: d = 56; dims 0..26 are the letters, 26..56 thirty word-specific
/// directions. Every letter has a main latent (encoder e_L, for 'a' e_a − Σu; decoder e_L). For 'a', 30 % of
/// the words are one of thirty specific words (x = 3 e_a + 3 u_w, 1 % each): the main 'a' latent
/// does not fire on them and the word's own latent (encoder e_a + u_w, bias −3.7, decoder
/// (e_a + u_w)/√2) does — absorption, spread thin enough that no single absorbing latent lifts
/// the k-sparse F1 by the 0.03 that would make it a main latent.
fn planted(tmp: &Path) -> (LetterData, Sae, AbsorptionConfig) {
    let (d, n_letters, n_words) = (56usize, 26usize, 30usize);
    let d_sae = n_letters + n_words;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut x = Vec::new();
    let mut labels = Vec::new();
    let mut push = |letter: usize, word: Option<usize>, rng: &mut rand::rngs::StdRng| {
        let mut v: Vec<f32> = (0..d).map(|_| rng.random_range(-0.1f32..0.1)).collect();
        v[letter] += 3.0;
        if let Some(w) = word {
            v[n_letters + w] += 3.0;
        }
        x.extend(v);
        labels.push(letter as u8);
    };
    for l in 0..n_letters {
        for i in 0..if l == 0 { 1500 } else { 60 } {
            let word = (l == 0 && i % 10 < 3).then_some((i / 10 * 3 + i % 10) % n_words);
            push(l, word, &mut rng);
        }
    }
    let mut w_enc = vec![0.0f32; d * d_sae];
    let mut w_dec = vec![0.0f32; d_sae * d];
    let mut b_enc = vec![-1.0f32; d_sae];
    for l in 0..n_letters {
        w_enc[l * d_sae + l] = 1.0;
        if l == 0 {
            for w in 0..n_words {
                w_enc[(n_letters + w) * d_sae] = -1.0;
            }
        }
        w_dec[l * d + l] = 1.0;
    }
    let s = std::f32::consts::FRAC_1_SQRT_2;
    for w in 0..n_words {
        let j = n_letters + w;
        w_enc[j] = 1.0; // row 0 = e_a
        w_enc[(n_letters + w) * d_sae + j] = 1.0;
        b_enc[j] = -3.7;
        w_dec[j * d] = s;
        w_dec[j * d + n_letters + w] = s;
    }
    let mut t = BTreeMap::new();
    t.insert("W_enc".to_string(), HostTensor::new(vec![d, d_sae], w_enc));
    t.insert("W_dec".to_string(), HostTensor::new(vec![d_sae, d], w_dec));
    t.insert("b_enc".to_string(), HostTensor::new(vec![d_sae], b_enc));
    t.insert("b_dec".to_string(), HostTensor::new(vec![d], vec![0.0; d]));
    let mut cfg = SaeConfig::new(d, d_sae, Architecture::Standard);
    cfg.apply_b_dec_to_input = false;
    let (sae, _) = Sae::from_host_tensors(cfg, t, tmp, &Default::default()).unwrap();
    let acfg = AbsorptionConfig::default();
    (LetterData::new(x, d, labels, &acfg).unwrap(), sae, acfg)
}

#[test]
fn planted_absorption_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, sae, cfg) = planted(tmp.path());
    let probes = train_letter_probes(&data, &cfg).unwrap();
    assert_eq!(probes.len(), 26);
    for p in &probes {
        assert!(p.test_f1 > 0.95, "{}: probe F1 {}", p.letter, p.test_f1);
    }
    let r = absorption(&sae, &data, &probes, &cfg).unwrap();
    let a = &r.letters[0];
    assert_eq!(a.letter, 'a');
    assert_eq!(a.main_latents, vec![0], "{a:?}");
    assert!(a.main_latents_cos[0] > 0.5, "{a:?}");
    // About 30 % of the probe's true positives are absorbed, each by its word's latent.
    assert!(
        a.full_absorption_rate > 0.15 && a.full_absorption_rate < 0.45,
        "{a:?}"
    );
    assert!(
        a.full_absorptions * 10 >= a.main_false_negatives * 9,
        "{a:?}"
    );
    assert!(a.top_absorbers.iter().all(|(j, _)| *j >= 26), "{a:?}");
    assert!(
        (a.mean_absorption_fraction - a.full_absorption_rate).abs() < 0.05,
        "{a:?}"
    );
    for l in &r.letters[1..] {
        assert_eq!(l.main_latents.len(), 1, "{l:?}");
        assert_eq!(l.full_absorptions, 0, "{l:?}");
        assert_eq!(l.mean_absorption_fraction, 0.0, "{l:?}");
    }
    assert!(r.mean_full_absorption_rate > 0.0 && r.mean_full_absorption_rate < 0.02);
}

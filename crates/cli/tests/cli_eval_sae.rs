//! `sae-geometry eval-sae` on the tiny GPT-2: a table row per SAE, every metric in JSON, the
//! per-latent densities as .npy, special tokens left out unless asked.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::process::Command;

fn eval(
    model: &Path,
    saes: &[&Path],
    corpus: &Path,
    out: &Path,
    extra: &[&str],
) -> serde_json::Value {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sae-geometry"));
    c.args(["--log", "warn", "eval-sae", "--offline", "--model"])
        .arg(model)
        .arg("--corpus")
        .arg(corpus)
        .args(["--windows", "6", "--batch-size", "4", "--out"])
        .arg(out)
        .args(extra);
    for s in saes {
        c.arg("--sae").arg(s);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(&std::fs::read_to_string(out.join("eval.json")).unwrap()).unwrap()
}

#[test]
fn eval_sae_writes_a_row_per_sae_and_leaves_special_tokens_out() {
    let tmp = tempfile::tempdir().unwrap();
    let model = common::tiny_model(tmp.path());
    let corpus = common::corpus(tmp.path(), 4);
    let a = common::random_sae(tmp.path(), "standard", 96, None, 3);
    let b = common::random_sae(tmp.path(), "topk", 128, Some(8), 4);
    let out = tmp.path().join("out");
    let j = eval(&model, &[&a, &b], &corpus, &out, &[]);
    let csv = std::fs::read_to_string(out.join("eval.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.starts_with("sae,hook,d_sae,n_tokens,ce_clean,ce_with_sae,ce_zero_ablation,ce_loss_recovered,kl_with_sae"));
    assert_eq!(j["windows"], 6);
    assert_eq!(j["context_size"], 48);
    assert_eq!(j["ignore_tokens"], serde_json::json!([50256]));
    let saes = j["saes"].as_array().unwrap();
    assert_eq!(saes.len(), 2);
    for (i, (s, d_sae)) in saes.iter().zip([96usize, 128]).enumerate() {
        let m = &s["metrics"];
        let n = m["n_tokens"].as_u64().unwrap();
        assert!(
            n <= 6 * 47 && n > 6 * 40,
            "BOS (first and separators) left out: {n}"
        );
        for k in [
            "ce_clean",
            "ce_with_sae",
            "ce_zero_ablation",
            "kl_with_sae",
            "explained_variance",
            "l0",
        ] {
            assert!(m[k].as_f64().unwrap().is_finite(), "{k}");
        }
        assert!(m["kl_with_sae"].as_f64().unwrap() > 0.0);
        let density =
            sae_core::npy::read_f32(out.join(format!("feature_density_{i}.npy"))).unwrap();
        assert_eq!(density.shape, vec![d_sae]);
        // Σ density = mean latents per token = L0 (the same tokens).
        let sum: f64 = density.data.iter().map(|d| f64::from(*d)).sum();
        let l0 = m["l0"].as_f64().unwrap();
        assert!(
            (sum - l0).abs() < 1e-3 * l0.max(1.0),
            "Σ density {sum} vs L0 {l0}"
        );
        let dead = density.data.iter().filter(|d| **d == 0.0).count() as u64;
        assert_eq!(m["dead_latents"].as_u64().unwrap(), dead);
    }
    assert!(
        (saes[1]["metrics"]["l0"].as_f64().unwrap() - 8.0).abs() < 1e-9,
        "TopK k = 8"
    );

    let all = tmp.path().join("all");
    let j2 = eval(&model, &[&a], &corpus, &all, &["--include-special-tokens"]);
    let m2 = &j2["saes"][0]["metrics"];
    assert_eq!(m2["n_tokens"], 6 * 48);
    assert_eq!(m2["n_predictions"], 6 * 47);
    assert_ne!(m2["ce_with_sae"], saes[0]["metrics"]["ce_with_sae"]);

    // --every 2: the same number of windows, spread over twice the text.
    let spread = tmp.path().join("spread");
    let j3 = eval(&model, &[&a], &corpus, &spread, &["--every", "2"]);
    assert_eq!(j3["windows"], 6);
    assert_eq!(j3["every"], 2);
    assert_ne!(
        j3["saes"][0]["metrics"]["ce_clean"],
        saes[0]["metrics"]["ce_clean"]
    );
}

//! `sae-geometry logit-enrichment` on the tiny GPT-2 with GPT-2's real vocabulary: tables with a
//! row per latent (and per latent × set), and the offline scatter plot.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

mod common;

use std::process::Command;

#[test]
fn logit_enrichment_writes_tables_and_plot() {
    let tmp = tempfile::tempdir().unwrap();
    let model = common::tiny_model(tmp.path());
    let sae_dir = common::random_sae(tmp.path(), "sae", 12, None, 1);
    let out = tmp.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_sae-geometry"))
        .args(["--log", "warn", "logit-enrichment", "--offline", "--model"])
        .arg(&model)
        .arg("--sae")
        .arg(&sae_dir)
        .args(["--latents", "0-9", "--k", "25", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stats = std::fs::read_to_string(out.join("stats.csv")).unwrap();
    assert_eq!(stats.lines().count(), 1 + 10);
    assert!(stats.starts_with("latent,mean,variance,skewness,kurtosis"));
    let en = std::fs::read_to_string(out.join("enrichment.csv")).unwrap();
    assert_eq!(en.lines().count(), 1 + 10 * 30);
    // The leading-space set of GPT-2's vocabulary is large and fixed.
    let ls: Vec<&str> = en
        .lines()
        .filter(|l| l.contains(",leading_space,"))
        .collect();
    let size: usize = ls[0].split(',').nth(2).unwrap().parse().unwrap();
    assert!(size > 20_000, "{size}");
    assert!(
        std::fs::read_to_string(out.join("skew_kurtosis.html"))
            .unwrap()
            .contains("data-points")
    );
    assert!(out.join("skew_kurtosis.png").exists());
}

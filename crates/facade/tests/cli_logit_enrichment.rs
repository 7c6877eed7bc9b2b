//! `sae-geometry logit-enrichment` on the tiny GPT-2 with GPT-2's real vocabulary: tables with a
//! row per latent (and per latent × set), and the offline scatter plot.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sae_core::config::{Architecture, SaeConfig};
use sae_core::{HostTensor, Sae};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn logit_enrichment_writes_tables_and_plot() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    let m = fixtures().join("models/tests/fixtures");
    gpt2_gemma_models::testing::widen_gpt2_vocab(
        &m.join("gpt2-tiny/model"),
        &m.join("gpt2-tokenizer"),
        &model,
        50257,
    )
    .unwrap();
    let (d_in, d_sae) = (64, 12);
    let cfg = SaeConfig::new(d_in, d_sae, Architecture::Standard);
    let vals = |n: usize, seed: u64| -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    };
    let mut t = BTreeMap::new();
    t.insert(
        "W_enc".to_string(),
        HostTensor::new(vec![d_in, d_sae], vals(d_in * d_sae, 1)),
    );
    t.insert(
        "W_dec".to_string(),
        HostTensor::new(vec![d_sae, d_in], vals(d_in * d_sae, 2)),
    );
    t.insert(
        "b_enc".to_string(),
        HostTensor::new(vec![d_sae], vec![0.0; d_sae]),
    );
    t.insert(
        "b_dec".to_string(),
        HostTensor::new(vec![d_in], vec![0.0; d_in]),
    );
    let (sae, _) = Sae::from_host_tensors(cfg, t, Path::new("test"), &Default::default()).unwrap();
    let sae_dir = tmp.path().join("sae");
    sae.save(&sae_dir).unwrap();
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

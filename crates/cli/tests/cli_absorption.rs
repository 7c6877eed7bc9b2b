//! `sae-geometry absorption` on the tiny GPT-2 with GPT-2's real vocabulary: a row per SAE ×
//! letter, a summary per SAE, the words used; counts consistent with each other.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

mod common;

use std::process::Command;

#[test]
fn absorption_writes_tables_for_each_sae() {
    let tmp = tempfile::tempdir().unwrap();
    let model = common::tiny_model(tmp.path());
    let a = common::random_sae(tmp.path(), "standard", 96, None, 5);
    let b = common::random_sae(tmp.path(), "topk", 128, Some(8), 6);
    let out = tmp.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_sae-geometry"))
        .args(["--log", "warn", "absorption", "--offline", "--model"])
        .arg(&model)
        .arg("--sae")
        .arg(&a)
        .arg("--sae")
        .arg(&b)
        .args([
            "--words",
            "800",
            "--icl-examples",
            "3",
            "--batch-size",
            "64",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["n_words"], 800);
    assert_eq!(s["n_test"], 160);
    assert_eq!(s["hook"], "blocks.1.hook_resid_pre");
    let saes = s["saes"].as_array().unwrap();
    assert_eq!(saes.len(), 2);
    let csv = std::fs::read_to_string(out.join("absorption.csv")).unwrap();
    let n_letters = saes[0]["letters"].as_array().unwrap().len();
    assert!(n_letters >= 5, "{n_letters} letters probed");
    assert_eq!(csv.lines().count(), 1 + 2 * n_letters);
    for sae in saes {
        for l in sae["letters"].as_array().unwrap() {
            let get = |k: &str| l[k].as_u64().unwrap();
            assert!(get("full_absorptions") <= get("main_false_negatives"));
            assert!(get("main_false_negatives") <= get("probe_true_positives"));
            let rate = l["full_absorption_rate"].as_f64().unwrap();
            let frac = l["mean_absorption_fraction"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&rate) && (0.0..=1.0).contains(&frac));
            assert!(!l["main_latents"].as_array().unwrap().is_empty());
        }
    }
    let words: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("words.json")).unwrap()).unwrap();
    assert_eq!(words["words"].as_array().unwrap().len(), 800);
    assert_eq!(words["prefix"].as_str().unwrap().lines().count(), 3);
    for w in words["words"].as_array().unwrap() {
        let t = w[1].as_str().unwrap();
        assert!(
            t.starts_with(' ') && t[1..].chars().all(|c| c.is_ascii_alphabetic()),
            "{t}"
        );
    }
}

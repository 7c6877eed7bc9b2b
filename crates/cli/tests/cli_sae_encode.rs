//! `sae-geometry sae-encode` end to end on SAELens fixtures.

#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use sae_core::npy::{read_f32, write_f32};
use sae_core::safetensors_io::SafetensorsFile;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/fixtures/saelens")
}

mod common;

use common::bin;

#[test]
fn sae_encode_writes_features_and_reconstruction() {
    for case in [
        "topk_rescale__layer_norm",
        "gated__constant_norm_rescale",
        "jumprelu__none",
    ] {
        let dir = fixtures().join(case);
        let io = SafetensorsFile::open(dir.join("io.safetensors"))
            .unwrap()
            .read_all()
            .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let input = tmp.path().join("acts.npy");
        write_f32(&input, &io["x"].shape, &io["x"].data).unwrap();
        let out = tmp.path().join("feats.npy");
        let recon = tmp.path().join("recon.npy");
        let status = bin()
            .args(["sae-encode", "--sae"])
            .arg(&dir)
            .arg("--input")
            .arg(&input)
            .arg("--out")
            .arg(&out)
            .arg("--recon")
            .arg(&recon)
            .args(["--batch-size", "5", "--log", "warn"])
            .status()
            .unwrap();
        assert!(status.success(), "{case}");
        let f = read_f32(&out).unwrap();
        assert_eq!(f.shape, io["feats"].shape);
        let d = f
            .data
            .iter()
            .zip(&io["feats"].data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(d <= 1e-5, "{case}: features differ by {d}");
        let r = read_f32(&recon).unwrap();
        let d = r
            .data
            .iter()
            .zip(&io["forward"].data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(d <= 1e-5, "{case}: reconstruction differs by {d}");
    }
}

#[test]
fn sae_encode_rejects_wrong_width_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("acts.npy");
    write_f32(&input, &[3, 5], &[0.0; 15]).unwrap();
    let out = bin()
        .args(["sae-encode", "--sae"])
        .arg(fixtures().join("standard__none"))
        .arg("--input")
        .arg(&input)
        .arg("--out")
        .arg(tmp.path().join("f.npy"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("acts.npy") && err.contains("[rows, 16]"),
        "{err}"
    );
}

#[test]
fn help_lists_commands() {
    let out = bin().arg("--help").output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("sae-encode") && s.contains("registry"));
}

#[test]
fn hdbscan_cli_writes_int64_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let input = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../geometry/tests/fixtures/hdbscan/moons.npy");
    let out = tmp.path().join("labels.npy");
    let st = bin()
        .args(["hdbscan", "--input"])
        .arg(&input)
        .args(["--min-cluster-size", "5", "--out"])
        .arg(&out)
        .arg("--probabilities")
        .arg(tmp.path().join("p.npy"))
        .status()
        .unwrap();
    assert!(st.success());
    let labels = sae_core::npy::read_i64(&out).unwrap();
    assert_eq!(labels.len(), 400);
    let cases: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(input.parent().unwrap().join("cases.json")).unwrap(),
    )
    .unwrap();
    let want: Vec<i64> = cases["cases"][4]["exact"]["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(labels, want);
    assert_eq!(read_f32(tmp.path().join("p.npy")).unwrap().shape, vec![400]);
}

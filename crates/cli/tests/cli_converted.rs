//! `sae-geometry sae-encode --sae gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical`
//! against a local HF cache holding that SAE in Gemma Scope's own layout (`params.npz`, no
//! config: d_in 2304 and d_sae 16384 come from the names, as SAELens derives them), offline.
//! The weights are a known answer: latent j < 8 reads input dimension j with threshold 0.5 and
//! writes 2·e_j.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

use std::process::Command;

use sae_core::npy::{read_f32, write_f32};
use sae_geometry_tests::npz::write_npz;

const D_IN: usize = 2304;
const D_SAE: usize = 16384;

#[test]
fn sae_encode_reads_a_gemma_scope_release_from_the_hf_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    // The canonical id points at this folder in the registry.
    let folder = sae_core::testing::hf_cache_snapshot(
        &cache,
        "google/gemma-scope-2b-pt-res",
        "fedcba9876543210fedcba9876543210fedcba98",
    )
    .unwrap()
    .join("layer_12/width_16k/average_l0_82");
    std::fs::create_dir_all(&folder).unwrap();
    let mut w_enc = vec![0f32; D_IN * D_SAE];
    let mut w_dec = vec![0f32; D_SAE * D_IN];
    for j in 0..8 {
        w_enc[j * D_SAE + j] = 1.0;
        w_dec[j * D_IN + j] = 2.0;
    }
    let b_dec: Vec<f32> = (0..D_IN).map(|i| 0.001 * i as f32).collect();
    write_npz(
        &folder.join("params.npz"),
        &[
            ("W_enc", vec![D_IN, D_SAE], &w_enc),
            ("W_dec", vec![D_SAE, D_IN], &w_dec),
            ("b_enc", vec![D_SAE], &vec![0.0; D_SAE]),
            ("b_dec", vec![D_IN], &b_dec),
            ("threshold", vec![D_SAE], &vec![0.5; D_SAE]),
        ],
    )
    .unwrap();
    drop((w_enc, w_dec));
    let rows = 3;
    let x: Vec<f32> = (0..rows * D_IN)
        .map(|i| {
            let (r, c) = (i / D_IN, i % D_IN);
            0.15 * (r + 1) as f32 * (c % 5) as f32
        })
        .collect();
    write_f32(tmp.path().join("x.npy"), &[rows, D_IN], &x).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sae-geometry"))
        .args([
            "sae-encode",
            "--sae",
            "gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical",
            "--input",
        ])
        .arg(tmp.path().join("x.npy"))
        .arg("--out")
        .arg(tmp.path().join("f.npy"))
        .arg("--recon")
        .arg(tmp.path().join("r.npy"))
        .arg("--offline")
        .env("HF_HUB_CACHE", &cache)
        .env_remove("HF_ENDPOINT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = read_f32(tmp.path().join("f.npy")).unwrap();
    assert_eq!(f.shape, vec![rows, D_SAE]);
    let r = read_f32(tmp.path().join("r.npy")).unwrap();
    assert_eq!(r.shape, vec![rows, D_IN]);
    let mut fired = 0;
    for row in 0..rows {
        for j in 0..D_SAE {
            let pre = if j < 8 { x[row * D_IN + j] } else { 0.0 };
            let want = if pre > 0.5 { pre } else { 0.0 };
            fired += usize::from(want > 0.0);
            assert!(
                (f.data[row * D_SAE + j] - want).abs() < 1e-6,
                "row {row} latent {j}"
            );
        }
        for (c, b) in b_dec.iter().enumerate() {
            let feat = if c < 8 { f.data[row * D_SAE + c] } else { 0.0 };
            let want = 2.0 * feat + b;
            assert!(
                (r.data[row * D_IN + c] - want).abs() < 1e-5,
                "row {row} dim {c}"
            );
        }
    }
    assert!(fired > 3 && fired < rows * 8, "{fired}");

    // The registry lists Gemma Scope with its converter.
    let out = Command::new(env!("CARGO_BIN_EXE_sae-geometry"))
        .args(["registry"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("gemma-scope-2b-pt-res-canonical\t"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.ends_with("\tgemma_2"), "{line}");
    // Every release is listed and none is marked unsupported.
    assert_eq!(text.lines().count(), 170);
    assert!(!text.contains("unsupported"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.ends_with("\ttemporal")).count(),
        2
    );
}

#[test]
fn sae_encode_runs_a_temporal_sae_over_the_rows_as_one_sequence() {
    use sae_core::safetensors_io::SafetensorsFile;
    let case = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/fixtures/converters/temporal_untied");
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let snap = sae_core::testing::hf_cache_snapshot(
        &cache,
        "canrager/temporalSAEs",
        "0123456789012345678901234567890123456789",
    )
    .unwrap();
    let dst = snap.join("gemma-2-2B/layer_12/temporal");
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["conf.yaml", "latest_ckpt.safetensors"] {
        std::fs::copy(
            case.join("repo/gemma-2-2B/layer_12/temporal").join(f),
            dst.join(f),
        )
        .unwrap();
    }
    let io = SafetensorsFile::open(case.join("io_temporal.safetensors"))
        .unwrap()
        .read_all()
        .unwrap();
    // The fixture's first sequence: [7, 16].
    let (l, d) = (io["x"].shape[1], io["x"].shape[2]);
    write_f32(tmp.path().join("x.npy"), &[l, d], &io["x"].data[..l * d]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sae-geometry"))
        .args([
            "sae-encode",
            "--sae",
            "temporal-sae-gemma-2-2b/blocks.12.hook_resid_post",
            "--input",
        ])
        .arg(tmp.path().join("x.npy"))
        .arg("--out")
        .arg(tmp.path().join("f.npy"))
        .arg("--recon")
        .arg(tmp.path().join("r.npy"))
        .arg("--offline")
        .env("HF_HUB_CACHE", &cache)
        .env_remove("HF_ENDPOINT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = read_f32(tmp.path().join("f.npy")).unwrap();
    let d_sae = io["novel"].shape[2];
    assert_eq!(f.shape, vec![l, d_sae]);
    let want = &io["novel"].data[..l * d_sae];
    let diff = f
        .data
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-5, "novel codes differ by {diff}");
    let r = read_f32(tmp.path().join("r.npy")).unwrap();
    let want = &io["forward"].data[..l * d];
    let diff = r
        .data
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-5, "reconstruction differs by {diff}");
}

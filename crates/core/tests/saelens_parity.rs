//! Parity with SAELens on golden fixtures made by SAELens itself (`fixtures/saelens/gen_fixtures.py`).

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

mod common;

use std::path::Path;

use common::*;
use sae_core::device::from_env;
use sae_core::{Sae, StorageDtype};

const TOL: f32 = 1e-5;

#[test]
fn every_architecture_and_normalisation_matches_saelens() {
    let cases = cases();
    assert!(
        cases.len() >= 24,
        "fixtures cover every architecture × normalisation"
    );
    for case in &cases {
        let dir = fixtures().join(case);
        let sae = Sae::load(&dir, &from_env().unwrap()).unwrap_or_else(|e| panic!("{case}: {e}"));
        let io = read_io(&dir);
        let x = to_tensor(&io["x"]);
        let (feats, state) = sae.encode_with_state(x.clone()).unwrap();
        let feats = host(feats);
        let d = max_abs_diff(&feats, &io["feats"].data);
        assert!(d <= TOL, "{case}: encode differs from SAELens by {d}");

        let recon = sae
            .decode_with_state(to_tensor(&io["feats"]), &state)
            .unwrap();
        let d = max_abs_diff(&host(recon), &io["recon"].data);
        assert!(d <= TOL, "{case}: decode(encode(x)) differs by {d}");

        let fwd = host(sae.forward(x).unwrap());
        let d = max_abs_diff(&fwd, &io["forward"].data);
        assert!(d <= TOL, "{case}: forward differs by {d}");

        if let Some(dec_in) = io.get("dec_in") {
            let out = host(sae.decode(to_tensor(dec_in)).unwrap());
            let d = max_abs_diff(&out, &io["dec_out"].data);
            assert!(d <= TOL, "{case}: decode differs by {d}");
        }
        // The fixtures must exercise sparsity: some latents on, some off.
        let active = feats.iter().filter(|v| **v > 0.0).count();
        assert!(
            active > 0 && active < feats.len(),
            "{case}: degenerate fixture"
        );
    }
}

#[test]
fn half_precision_files_load_and_match() {
    for (case, dtype) in [
        ("jumprelu__float16", StorageDtype::F16),
        ("jumprelu__bfloat16", StorageDtype::Bf16),
    ] {
        let sae = Sae::load(fixtures().join(case), &from_env().unwrap()).unwrap();
        assert_eq!(sae.config().dtype, dtype);
        let io = read_io(&fixtures().join(case));
        let feats = host(sae.encode(to_tensor(&io["x"])).unwrap());
        // The reference ran on the same half-precision weights upcast, so agreement is at f32
        // accuracy, far inside the storage precision.
        assert!(max_abs_diff(&feats, &io["feats"].data) <= TOL, "{case}");
    }
}

#[test]
fn legacy_flat_layout_reads_like_saelens() {
    let dir = fixtures().join("legacy_flat");
    let (sae, report) = Sae::load_with_report(&dir, &from_env().unwrap()).unwrap();
    let cfg = sae.config();
    assert_eq!(cfg.hook_name(), Some("blocks.8.hook_resid_pre"));
    assert_eq!(cfg.hook_layer(), Some(8));
    assert_eq!(cfg.metadata.model_name.as_deref(), Some("gpt2-small"));
    assert_eq!(cfg.metadata.context_size, Some(128));
    assert_eq!(report.ignored, vec!["scaling_factor".to_string()]);
}

#[test]
fn sparsity_file_is_loaded() {
    let sae = Sae::load(fixtures().join("standard__none"), &from_env().unwrap()).unwrap();
    let sp = sae.log_sparsity().expect("sparsity.safetensors present");
    assert_eq!(sp.len(), sae.d_sae());
    assert!(sp.iter().all(|v| *v <= 0.0));
}

#[test]
fn save_then_load_gives_identical_tensors() {
    for case in cases() {
        let sae = Sae::load(fixtures().join(&case), &from_env().unwrap()).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        sae.save(tmp.path()).unwrap();
        let back = Sae::load(tmp.path(), &from_env().unwrap()).unwrap();
        assert_eq!(back.config().architecture, sae.config().architecture);
        assert_eq!(
            back.config().normalize_activations,
            sae.config().normalize_activations
        );
        assert_eq!(
            back.config().metadata.hook_name,
            sae.config().metadata.hook_name
        );
        assert_eq!(
            back.to_host_tensors().unwrap(),
            sae.to_host_tensors().unwrap(),
            "{case}"
        );
        assert_eq!(back.log_sparsity(), sae.log_sparsity());
    }
}

/// What sae-core writes is what SAELens loads: `rust_saved/` holds our saves of every fixture,
/// `gen_fixtures.py --check-rust-saved` loaded each with SAELens and recorded the outcome. This
/// test checks the saves are still byte-identical to what SAELens checked, and that it passed.
/// Set `SAE_CORE_WRITE_ROUNDTRIP=1` to rewrite `rust_saved/` (then rerun the Python check).
#[test]
fn saelens_loads_what_we_save() {
    let root = fixtures().join("rust_saved");
    let write = std::env::var("SAE_CORE_WRITE_ROUNDTRIP").is_ok_and(|v| v == "1");
    let cases = cases();
    for case in &cases {
        let sae = Sae::load(fixtures().join(case), &from_env().unwrap()).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        sae.save(tmp.path()).unwrap();
        let committed = root.join(case);
        if write {
            std::fs::create_dir_all(&committed).unwrap();
        }
        for file in ["cfg.json", "sae_weights.safetensors"] {
            let ours = std::fs::read(tmp.path().join(file)).unwrap();
            if write {
                std::fs::write(committed.join(file), &ours).unwrap();
            } else {
                let theirs = std::fs::read(committed.join(file)).unwrap();
                assert!(
                    ours == theirs,
                    "{case}/{file}: save output changed; rerun the SAELens check"
                );
            }
        }
    }
    if write {
        return;
    }
    let check: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("saelens_check.json")).unwrap())
            .unwrap();
    assert_eq!(check["all_ok"], serde_json::Value::Bool(true));
    for case in &cases {
        let c = &check["cases"][case];
        assert_eq!(
            c["loaded"],
            serde_json::Value::Bool(true),
            "{case} not loaded by SAELens"
        );
        assert!(c["max_abs_diff_feats"].as_f64().unwrap() <= 1e-5, "{case}");
    }
    let _ = Path::new("");
}

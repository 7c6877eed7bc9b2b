//! What the trainer saves is a SAELens-format SAE: sae-core loads it back and encodes as the
//! trainer's own parameters do. `fixtures/trained/` holds five such SAEs (standard, TopK, and
//! BatchTopK, JumpReLU and Matryoshka BatchTopK, the last three saved as JumpReLU) with the record of
//! SAELens loading them (`saelens_check.json`, by `check_saelens_loads.py`); this test keeps
//! that record in step with the files (rerun with SAE_GEOMETRY_WRITE_TRAINED=1 and the script to
//! refresh both).
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use activation_store::train::family::{FamilyOptions, train_family};
use activation_store::{BatchSource, Result, TrainArchitecture, TrainConfig, Trainer};
use sae_core::device::{from_env, tensor_from_vec, tensor_to_vec};
use sae_core::npy::{read_f32, write_f32};
use sae_core::{Sae, SaeMetadata};

const D: usize = 24;

struct Noise(u64);

impl BatchSource for Noise {
    fn d_in(&self) -> usize {
        D
    }
    fn next_batch(&mut self) -> Result<Option<Vec<f32>>> {
        let mut s = self.0;
        let v = (0..256 * D)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0
            })
            .collect();
        self.0 = s;
        Ok(Some(v))
    }
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trained")
}

#[test]
fn saved_saes_load_and_encode_like_the_trainer() {
    let write = std::env::var_os("SAE_GEOMETRY_WRITE_TRAINED").is_some();
    let archs = [
        (
            "standard-48",
            TrainArchitecture::Standard {
                l1_coefficient: 0.5,
                l1_warm_up_steps: 0,
            },
        ),
        (
            "topk-48",
            TrainArchitecture::TopK {
                k: 4,
                aux_coefficient: 0.03,
            },
        ),
        (
            "jumprelu-48",
            TrainArchitecture::BatchTopK {
                k: 4.0,
                aux_coefficient: 0.03,
                threshold_lr: 0.05,
            },
        ),
        (
            "jumprelu-trained-48",
            TrainArchitecture::JumpRelu {
                l0_coefficient: 0.05,
                l0_warm_up_steps: 0,
                bandwidth: 0.05,
                init_threshold: 0.01,
            },
        ),
        (
            "matryoshka-48",
            TrainArchitecture::MatryoshkaBatchTopK {
                k: 4.0,
                aux_coefficient: 0.03,
                threshold_lr: 0.05,
            },
        ),
    ];
    let x = Noise(99).next_batch().unwrap().unwrap()[..32 * D].to_vec();
    let tmp = tempfile::tempdir().unwrap();
    for (name, arch) in archs {
        let mut cfg = TrainConfig::new(D, 48, arch, 60);
        cfg.normalize_activations = true;
        cfg.lr = 3e-3;
        cfg.matryoshka_widths = vec![12, 24];
        let mut t = vec![Trainer::new(cfg, &from_env().unwrap()).unwrap()];
        train_family(
            &mut Noise(1),
            &mut t,
            &FamilyOptions {
                steps: 60,
                ..FamilyOptions::default()
            },
            |_| {},
        )
        .unwrap();
        let sae = t[0]
            .to_sae(SaeMetadata {
                hook_name: Some("blocks.0.hook_resid_post".into()),
                ..SaeMetadata::default()
            })
            .unwrap();
        let out = if write {
            dir().join(name)
        } else {
            tmp.path().join(name)
        };
        sae.save(&out).unwrap();
        let back = Sae::load(&out, &from_env().unwrap()).unwrap();
        let xt = tensor_from_vec(x.clone(), [32, D], &from_env().unwrap());
        let f = tensor_to_vec(back.encode(xt.clone()).unwrap()).unwrap();
        let r = tensor_to_vec(back.forward(xt).unwrap()).unwrap();
        assert!(f.iter().any(|v| *v > 0.0), "{name}: nothing fires");
        if write {
            write_f32(dir().join("x.npy"), &[32, D], &x).unwrap();
            write_f32(dir().join(format!("ours-{name}.npy")), &[32, 48], &f).unwrap();
            write_f32(dir().join(format!("ours-recon-{name}.npy")), &[32, D], &r).unwrap();
        } else {
            // The committed files are what this trainer writes today, and sae-core reads them to
            // the encodings SAELens was checked against.
            let committed = Sae::load(dir().join(name), &from_env().unwrap()).unwrap();
            let xs = read_f32(dir().join("x.npy")).unwrap();
            let xt = tensor_from_vec(xs.data, [32, D], &from_env().unwrap());
            let f = tensor_to_vec(committed.encode(xt).unwrap()).unwrap();
            let theirs = read_f32(dir().join(format!("ours-{name}.npy"))).unwrap();
            let max = f
                .iter()
                .zip(&theirs.data)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(max < 1e-5, "{name}: {max}");
            assert_eq!(
                std::fs::read(out.join("cfg.json")).unwrap(),
                std::fs::read(dir().join(name).join("cfg.json")).unwrap(),
                "{name}: cfg.json differs from the committed one"
            );
        }
    }
    if !write {
        let check: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir().join("saelens_check.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(check["all_ok"], true, "{check}");
        for name in ["jumprelu-48", "jumprelu-trained-48", "matryoshka-48"] {
            assert_eq!(check["saes"][name]["architecture"], "jumprelu", "{name}");
        }
    }
}

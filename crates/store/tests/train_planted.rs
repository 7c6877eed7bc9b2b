//! Training recovers a planted dictionary from synthetic sparse data (cosine ≥ 0.95 for at least
//! 90 % of atoms), for TopK, BatchTopK and the standard L1 SAE; a checkpointed family resumes
//! to the same weights as an uninterrupted run.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use activation_store::train::family::{FamilyOptions, resume_family, train_family};
use activation_store::{BatchSource, Result, TrainArchitecture, TrainConfig, Trainer};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sae_core::device::{from_env, tensor_to_vec};
use sae_core::{SaeMetadata, burn::tensor::Tensor};

const D: usize = 32;
const ATOMS: usize = 64;
const ACTIVE: usize = 3;

/// x = Σ of ACTIVE random atoms with magnitudes in [0.5, 1.5].
struct Planted {
    atoms: Vec<f32>,
    rng: StdRng,
    rows: usize,
}

impl Planted {
    fn new(seed: u64, rows: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(1234);
        let mut atoms = Vec::with_capacity(ATOMS * D);
        for _ in 0..ATOMS {
            let v: Vec<f32> = (0..D).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            atoms.extend(v.iter().map(|x| x / n));
        }
        Self {
            atoms,
            rng: StdRng::seed_from_u64(seed),
            rows,
        }
    }
}

impl BatchSource for Planted {
    fn d_in(&self) -> usize {
        D
    }
    fn next_batch(&mut self) -> Result<Option<Vec<f32>>> {
        let mut out = vec![0f32; self.rows * D];
        for r in 0..self.rows {
            let mut chosen = Vec::with_capacity(ACTIVE);
            while chosen.len() < ACTIVE {
                let a = self.rng.random_range(0..ATOMS);
                if !chosen.contains(&a) {
                    chosen.push(a);
                }
            }
            for a in chosen {
                let m = self.rng.random_range(0.5f32..1.5);
                for j in 0..D {
                    out[r * D + j] += m * self.atoms[a * D + j];
                }
            }
        }
        Ok(Some(out))
    }
}

/// Share of planted atoms whose best-matching decoder row has cosine ≥ 0.95.
fn recovered(atoms: &[f32], w_dec: Tensor<2>) -> f64 {
    let [s, d] = w_dec.dims();
    let w = tensor_to_vec(w_dec).unwrap();
    let mut hits = 0;
    for a in atoms.chunks(d) {
        let best = (0..s)
            .map(|i| {
                let row = &w[i * d..(i + 1) * d];
                let n = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                row.iter().zip(a).map(|(x, y)| x * y).sum::<f32>() / n
            })
            .fold(f32::MIN, f32::max);
        if best >= 0.95 {
            hits += 1;
        }
    }
    hits as f64 / (atoms.len() / d) as f64
}

fn train(arch: TrainArchitecture, lr: f64, steps: usize) -> (f64, f64) {
    train_with(arch, lr, steps, Vec::new())
}

fn train_with(arch: TrainArchitecture, lr: f64, steps: usize, levels: Vec<usize>) -> (f64, f64) {
    let mut cfg = TrainConfig::new(D, 2 * ATOMS, arch, steps);
    cfg.lr = lr;
    cfg.matryoshka_widths = levels;
    cfg.dead_feature_window = 200;
    let mut trainers = vec![Trainer::new(cfg, &from_env().unwrap()).unwrap()];
    let mut src = Planted::new(7, 512);
    let opts = FamilyOptions {
        steps,
        ..FamilyOptions::default()
    };
    let last = train_family(&mut src, &mut trainers, &opts, |_| {}).unwrap();
    let frac = recovered(&src.atoms, trainers[0].params().w_dec.clone());
    eprintln!("{arch:?}: recovered {frac:.3}, last {:?}", last[0]);
    // The saved SAE reconstructs as the trainer does.
    let sae = trainers[0].to_sae(SaeMetadata::default()).unwrap();
    assert_eq!(sae.d_sae(), 2 * ATOMS);
    (frac, last[0].explained_variance)
}

#[test]
fn topk_recovers_planted_atoms() {
    let (frac, ev) = train(
        TrainArchitecture::TopK {
            k: ACTIVE,
            aux_coefficient: 1.0 / 32.0,
        },
        2e-3,
        1500,
    );
    assert!(frac >= 0.9, "recovered {frac}");
    assert!(ev > 0.9, "explained variance {ev}");
}

#[test]
fn batch_topk_recovers_planted_atoms() {
    let arch = TrainArchitecture::BatchTopK {
        k: ACTIVE as f64,
        aux_coefficient: 1.0 / 32.0,
        threshold_lr: 0.01,
    };
    let (frac, ev) = train(arch, 2e-3, 1500);
    assert!(frac >= 0.9, "recovered {frac}");
    assert!(ev > 0.9, "explained variance {ev}");
}

#[test]
fn jumprelu_recovers_planted_atoms() {
    let arch = TrainArchitecture::JumpRelu {
        l0_coefficient: 0.05,
        l0_warm_up_steps: 100,
        bandwidth: 0.05,
        init_threshold: 0.01,
    };
    let (frac, ev) = train(arch, 2e-3, 2000);
    assert!(frac >= 0.9, "recovered {frac}");
    assert!(ev > 0.9, "explained variance {ev}");
}

#[test]
fn matryoshka_batch_topk_recovers_planted_atoms() {
    let arch = TrainArchitecture::MatryoshkaBatchTopK {
        k: ACTIVE as f64,
        aux_coefficient: 1.0 / 32.0,
        threshold_lr: 0.01,
    };
    // An inner level as wide as the dictionary: the first 64 latents alone must reconstruct.
    let (frac, ev) = train_with(arch, 2e-3, 2500, vec![64]);
    assert!(frac >= 0.9, "recovered {frac}");
    assert!(ev > 0.9, "explained variance {ev}");
}

#[test]
fn standard_l1_recovers_planted_atoms() {
    let arch = TrainArchitecture::Standard {
        l1_coefficient: 0.3,
        l1_warm_up_steps: 100,
    };
    let (frac, _) = train(arch, 2e-3, 2000);
    assert!(frac >= 0.9, "recovered {frac}");
}

#[test]
fn family_resumes_to_the_same_weights() {
    let cfgs = [16usize, 32].map(|w| {
        TrainConfig::new(
            D,
            w,
            TrainArchitecture::TopK {
                k: 2,
                aux_coefficient: 0.03,
            },
            60,
        )
    });
    let whole: Vec<Trainer> = {
        let mut t: Vec<Trainer> = cfgs
            .iter()
            .map(|c| Trainer::new(c.clone(), &from_env().unwrap()).unwrap())
            .collect();
        let opts = FamilyOptions {
            steps: 60,
            ..FamilyOptions::default()
        };
        train_family(&mut Planted::new(3, 64), &mut t, &opts, |_| {}).unwrap();
        t
    };
    let dir = tempfile::tempdir().unwrap();
    let mut t: Vec<Trainer> = cfgs
        .iter()
        .map(|c| Trainer::new(c.clone(), &from_env().unwrap()).unwrap())
        .collect();
    let first = FamilyOptions {
        steps: 25,
        run_dir: Some(dir.path().to_path_buf()),
        checkpoint_every: 10,
        ..FamilyOptions::default()
    };
    train_family(&mut Planted::new(3, 64), &mut t, &first, |_| {}).unwrap();
    let mut resumed = resume_family(dir.path(), &from_env().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(resumed[0].steps(), 25);
    let rest = FamilyOptions { steps: 60, ..first };
    train_family(&mut Planted::new(3, 64), &mut resumed, &rest, |_| {}).unwrap();
    for (a, b) in whole.iter().zip(&resumed) {
        assert_eq!(
            tensor_to_vec(a.params().w_dec.clone()).unwrap(),
            tensor_to_vec(b.params().w_dec.clone()).unwrap()
        );
        assert_eq!(
            tensor_to_vec(a.params().b_enc.clone()).unwrap(),
            tensor_to_vec(b.params().b_enc.clone()).unwrap()
        );
    }
    let metrics = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    assert!(metrics.lines().count() >= 2);
}

//! The device-resident training step (what a GPU runs: dense products, selections where the
//! data is, statistics left on the device) trains as the CPU's host path does, and reads
//! nothing back between metric reads. The resident trainer runs on `SAE_GEOMETRY_DEVICE` (the
//! CPU by default, where [`StepPath::DeviceResident`] selects it; a GPU under
//! `cargo xtask gpu-check`), the reference always on the CPU's host path.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use activation_store::train::step::StepPath;
use activation_store::{StoreError, TrainArchitecture, TrainConfig, Trainer};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sae_core::burn::tensor::Device;
use sae_core::device::{cpu, from_env, host_reads, tensor_from_vec, tensor_to_vec};

const D_IN: usize = 16;
const D_SAE: usize = 128;
const ROWS: usize = 64;

/// Batches from a few planted directions with sparse non-negative codes, so that some latents
/// stop firing and AuxK runs.
fn batches(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let atoms: Vec<f32> = (0..8 * D_IN)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    (0..n)
        .map(|_| {
            let mut x = vec![0f32; ROWS * D_IN];
            for row in x.chunks_mut(D_IN) {
                for a in atoms.chunks(D_IN) {
                    if rng.random_bool(0.3) {
                        let c = rng.random_range(0.5f32..2.0);
                        row.iter_mut().zip(a).for_each(|(v, a)| *v += c * a);
                    }
                }
                row.iter_mut()
                    .for_each(|v| *v += rng.random_range(-0.05f32..0.05));
            }
            x
        })
        .collect()
}

fn config(arch: TrainArchitecture) -> TrainConfig {
    let mut c = TrainConfig::new(D_IN, D_SAE, arch, 40);
    c.lr = 3e-3;
    // Latents go dead after 4 silent steps: AuxK runs from step 5.
    c.dead_feature_window = 4;
    c.apply_b_dec_to_input = true;
    c
}

fn archs() -> Vec<TrainArchitecture> {
    vec![
        TrainArchitecture::TopK {
            k: 4,
            aux_coefficient: 1.0 / 32.0,
        },
        TrainArchitecture::BatchTopK {
            k: 4.0,
            aux_coefficient: 1.0 / 32.0,
            threshold_lr: 0.01,
        },
        TrainArchitecture::MatryoshkaBatchTopK {
            k: 4.0,
            aux_coefficient: 1.0 / 32.0,
            threshold_lr: 0.01,
        },
        TrainArchitecture::Standard {
            l1_coefficient: 1.0,
            l1_warm_up_steps: 0,
        },
        TrainArchitecture::JumpRelu {
            l0_coefficient: 0.1,
            l0_warm_up_steps: 0,
            bandwidth: 0.05,
            init_threshold: 0.05,
        },
    ]
}

fn trainer(arch: TrainArchitecture, path: StepPath) -> Trainer {
    trainer_on(arch, path, &from_env().unwrap())
}

fn trainer_on(arch: TrainArchitecture, path: StepPath, device: &Device) -> Trainer {
    let mut cfg = config(arch);
    if matches!(arch, TrainArchitecture::MatryoshkaBatchTopK { .. }) {
        cfg.matryoshka_widths = vec![16, 48, D_SAE];
    }
    Trainer::new(cfg, device).unwrap().with_step_path(path)
}

fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn the_resident_path_trains_as_the_host_path() {
    let data = batches(30, 7);
    for arch in archs() {
        let mut host = trainer_on(arch, StepPath::Auto, &cpu());
        let mut resident = trainer(arch, StepPath::DeviceResident);
        let mut saw_dead = false;
        for b in &data {
            let m_host = host.step(b).unwrap();
            let m_res = resident.step(b).unwrap();
            saw_dead |= m_host.dead_fraction > 0.0;
            assert_eq!(m_host.step, m_res.step);
            assert_eq!(m_host.dead_fraction, m_res.dead_fraction, "{arch:?}");
            for (a, e, what) in [
                (m_res.loss, m_host.loss, "loss"),
                (m_res.mse, m_host.mse, "mse"),
                (m_res.aux, m_host.aux, "aux"),
                (m_res.l0, m_host.l0, "l0"),
            ] {
                assert!(
                    (a - e).abs() <= 1e-3 * (1.0 + e.abs()),
                    "{arch:?} step {}: {what} {a} vs {e}",
                    m_host.step
                );
            }
        }
        if arch.is_topk() {
            assert!(saw_dead, "{arch:?}: no latent went dead, AuxK untested");
        }
        assert_eq!(host.dead_mask().unwrap(), resident.dead_mask().unwrap());
        let (th, tr) = (
            host.batch_topk_threshold().unwrap(),
            resident.batch_topk_threshold().unwrap(),
        );
        assert!(
            (th - tr).abs() <= 1e-4 * (1.0 + th.abs()),
            "{arch:?}: {th} vs {tr}"
        );
        let (ph, pr) = (host.params(), resident.params());
        let v1 = |t: &sae_core::burn::tensor::Tensor<1>| tensor_to_vec(t.clone()).unwrap();
        let v2 = |t: &sae_core::burn::tensor::Tensor<2>| tensor_to_vec(t.clone()).unwrap();
        for (a, b, what) in [
            (v2(&pr.w_enc), v2(&ph.w_enc), "W_enc"),
            (v2(&pr.w_dec), v2(&ph.w_dec), "W_dec"),
            (v1(&pr.b_enc), v1(&ph.b_enc), "b_enc"),
            (v1(&pr.b_dec), v1(&ph.b_dec), "b_dec"),
        ] {
            let d = rel_diff(&a, &b);
            assert!(d <= 1e-3, "{arch:?}: {what} differs by {d}");
        }
    }
}

/// "No host syncs per step": between metric reads the resident step reads nothing back (AuxK
/// running on dead latents included), and a metrics read is one transfer.
#[test]
fn a_resident_step_reads_nothing_back() {
    let data = batches(12, 3);
    let device = from_env().unwrap();
    for arch in archs() {
        let mut t = trainer(arch, StepPath::DeviceResident);
        let uploads: Vec<_> = data
            .iter()
            .map(|b| {
                t.prepare(b).unwrap();
                tensor_from_vec(b.clone(), [ROWS, D_IN], &device)
            })
            .collect();
        let before = host_reads();
        for x in uploads {
            t.step_uploaded(x).unwrap();
        }
        assert_eq!(host_reads() - before, 0, "{arch:?}: reads during 12 steps");
        let m = t.metrics().unwrap().unwrap();
        assert_eq!(
            host_reads() - before,
            1,
            "{arch:?}: one read for the metrics"
        );
        assert_eq!(m.step, 12);
        if arch.is_topk() {
            assert!(m.dead_fraction > 0.0, "{arch:?}: AuxK was not exercised");
        }
    }
}

/// A non-finite batch is caught by the metrics read after it, as a typed error; the step itself
/// reads nothing to find out.
#[test]
fn divergence_is_reported_by_the_next_read() {
    let device = from_env().unwrap();
    let mut t = trainer(archs()[0], StepPath::DeviceResident);
    let mut bad = batches(1, 1).remove(0);
    bad[5] = f32::NAN;
    t.prepare(&bad).unwrap();
    t.step_uploaded(tensor_from_vec(bad.clone(), [ROWS, D_IN], &device))
        .unwrap();
    let e = t.metrics().unwrap_err();
    assert!(matches!(e, StoreError::Diverged { step: 1, .. }), "{e}");
    // The error sticks: a caller that ignored it cannot checkpoint the state.
    assert!(matches!(
        t.metrics(),
        Err(StoreError::Diverged { step: 1, .. })
    ));
    let dir0 = std::env::temp_dir().join(format!("sae-diverged0-{}", std::process::id()));
    assert!(matches!(
        t.save_checkpoint(&dir0),
        Err(StoreError::Diverged { .. })
    ));
    assert!(!dir0.join("trainer_state.json").exists());
    // A checkpoint of that state is refused.
    let mut t = trainer(archs()[1], StepPath::Auto);
    assert!(matches!(t.step(&bad), Err(StoreError::Diverged { .. })));
    let dir = std::env::temp_dir().join(format!("sae-diverged-{}", std::process::id()));
    let mut t2 = trainer(archs()[1], StepPath::DeviceResident);
    t2.prepare(&bad).unwrap();
    t2.step_uploaded(tensor_from_vec(bad, [ROWS, D_IN], &device))
        .unwrap();
    assert!(matches!(
        t2.save_checkpoint(&dir),
        Err(StoreError::Diverged { .. })
    ));
    assert!(!dir.join("trainer_state.safetensors").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

//! One training step of JumpReLU and Matryoshka BatchTopK SAEs equals SAELens's on the same
//! batch and initial weights (`fixtures/train-step/generate.py`, SAELens 6.54.12's
//! `training_forward_pass`, `clip_grad_norm_(1.0)` and Adam): the loss, every gradient, every
//! parameter after the update, and BatchTopK's threshold. Matryoshka's runs on both step paths
//! (the host selections, and the device-resident one a GPU takes).
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use activation_store::train::step::{
    LossSpec, SaeTensors, StepPath, loss_and_grads_for, loss_and_grads_on,
};
use activation_store::{TrainArchitecture, TrainConfig, Trainer};
use sae_core::burn::tensor::Tensor;
use sae_core::device::{from_env, tensor_from_vec, tensor_to_vec};
use sae_core::safetensors_io::SafetensorsFile;

const D_IN: usize = 8;
const D_SAE: usize = 16;
const B: usize = 32;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/train-step")
}

struct Fixture {
    file: SafetensorsFile,
    json: serde_json::Value,
}

fn fixture() -> Fixture {
    Fixture {
        file: SafetensorsFile::open(dir().join("cases.safetensors")).unwrap(),
        json: serde_json::from_str(&std::fs::read_to_string(dir().join("cases.json")).unwrap())
            .unwrap(),
    }
}

impl Fixture {
    fn host(&self, name: &str) -> Vec<f32> {
        self.file.tensor_f32(name).unwrap().data
    }
    fn t2(&self, name: &str, shape: [usize; 2]) -> Tensor<2> {
        tensor_from_vec(self.host(name), shape, &from_env().unwrap())
    }
    fn t1(&self, name: &str) -> Tensor<1> {
        let v = self.host(name);
        let n = v.len();
        tensor_from_vec(v, [n], &from_env().unwrap())
    }
    fn params(&self, case: &str, when: &str, threshold: bool) -> SaeTensors {
        let n = |p: &str| format!("{case}.{when}.{p}");
        SaeTensors {
            w_enc: self.t2(&n("W_enc"), [D_IN, D_SAE]),
            b_enc: self.t1(&n("b_enc")),
            w_dec: self.t2(&n("W_dec"), [D_SAE, D_IN]),
            b_dec: self.t1(&n("b_dec")),
            threshold: threshold.then(|| self.t1(&n("threshold"))),
        }
    }
}

/// max |a − b| / (1 + max |b|).
fn close(what: &str, ours: &[f32], theirs: &[f32], tol: f32) {
    assert_eq!(ours.len(), theirs.len(), "{what}");
    let scale = 1.0 + theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = ours
        .iter()
        .zip(theirs)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale;
    assert!(err <= tol, "{what}: relative max error {err:e}");
    eprintln!("{what}: {err:.1e}");
}

fn compare(what: &str, ours: &SaeTensors, f: &Fixture, case: &str, when: &str, tol: f32) {
    let n = |p: &str| format!("{case}.{when}.{p}");
    close(
        &format!("{what} W_enc"),
        &tensor_to_vec(ours.w_enc.clone()).unwrap(),
        &f.host(&n("W_enc")),
        tol,
    );
    close(
        &format!("{what} b_enc"),
        &tensor_to_vec(ours.b_enc.clone()).unwrap(),
        &f.host(&n("b_enc")),
        tol,
    );
    close(
        &format!("{what} W_dec"),
        &tensor_to_vec(ours.w_dec.clone()).unwrap(),
        &f.host(&n("W_dec")),
        tol,
    );
    close(
        &format!("{what} b_dec"),
        &tensor_to_vec(ours.b_dec.clone()).unwrap(),
        &f.host(&n("b_dec")),
        tol,
    );
    if let Some(t) = &ours.threshold {
        close(
            &format!("{what} threshold"),
            &tensor_to_vec(t.clone()).unwrap(),
            &f.host(&n("threshold")),
            tol,
        );
    }
}

fn config(arch: TrainArchitecture, widths: Vec<usize>) -> TrainConfig {
    let mut c = TrainConfig::new(D_IN, D_SAE, arch, 1000);
    c.lr = 1e-3;
    c.normalize_decoder = false;
    c.matryoshka_widths = widths;
    c
}

#[test]
fn jumprelu_step_equals_saelens() {
    let f = fixture();
    let j = &f.json["jumprelu"];
    let arch = TrainArchitecture::JumpRelu {
        l0_coefficient: j["l0_coefficient"].as_f64().unwrap(),
        l0_warm_up_steps: 0,
        bandwidth: j["bandwidth"].as_f64().unwrap(),
        init_threshold: 0.1,
    };
    let p = f.params("jumprelu", "before", true);
    let x = f.t2("x", [B, D_IN]);
    let out = loss_and_grads_for(
        &p,
        x.clone(),
        &LossSpec {
            arch,
            coefficient: 0.3,
            apply_b_dec_to_input: false,
            dead: None,
            inner_levels: &[],
        },
        None,
    )
    .unwrap();
    let loss = j["loss"].as_f64().unwrap();
    assert!(
        (out.loss - loss).abs() < 1e-5 * loss,
        "loss {} vs {loss}",
        out.loss
    );
    assert!((out.aux - j["losses"]["l0_loss"].as_f64().unwrap()).abs() < 1e-5);
    compare("jumprelu grad", &out.grads, &f, "jumprelu", "grad", 1e-5);
    // The θ gradient is not zero here: the test exercises the estimator.
    assert!(
        tensor_to_vec(out.grads.threshold.clone().unwrap())
            .unwrap()
            .iter()
            .any(|v| v.abs() > 1e-3)
    );

    let mut t = Trainer::with_params(config(arch, vec![]), p, &from_env().unwrap()).unwrap();
    let m = t.step(&f.host("x")).unwrap();
    assert!((m.loss - loss).abs() < 1e-5 * loss);
    compare("jumprelu after", t.params(), &f, "jumprelu", "after", 1e-5);
}

#[test]
fn matryoshka_step_equals_saelens() {
    let f = fixture();
    let paths = [StepPath::Auto, StepPath::DeviceResident];
    for (case, path) in ["matryoshka", "matryoshka_dead"]
        .into_iter()
        .flat_map(|c| paths.map(|p| (c, p)))
    {
        let j = &f.json[case];
        let arch = TrainArchitecture::MatryoshkaBatchTopK {
            k: j["k"].as_f64().unwrap(),
            aux_coefficient: j["aux_coefficient"].as_f64().unwrap(),
            threshold_lr: 0.01,
        };
        let dead: Option<Vec<bool>> = j["dead"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_bool().unwrap()).collect());
        let p = f.params(case, "before", false);
        let out = loss_and_grads_on(
            &p,
            f.t2("x", [B, D_IN]),
            &LossSpec {
                arch,
                coefficient: 0.0,
                apply_b_dec_to_input: false,
                dead: dead.as_deref(),
                inner_levels: &[4, 8],
            },
            None,
            path,
        )
        .unwrap();
        let label = format!("{case} ({path:?})");
        let loss = j["loss"].as_f64().unwrap();
        let losses = &j["losses"];
        assert!(
            (out.loss - loss).abs() < 1e-5 * loss,
            "{label}: loss {} vs {loss}",
            out.loss
        );
        let inner = losses["inner_mse_loss_4"].as_f64().unwrap()
            + losses["inner_mse_loss_8"].as_f64().unwrap();
        assert!((out.inner_mse - inner).abs() < 1e-5 * inner, "{label}");
        assert!((out.mse - losses["mse_loss"].as_f64().unwrap()).abs() < 1e-4);
        assert!((out.aux - losses["auxiliary_reconstruction_loss"].as_f64().unwrap()).abs() < 1e-4);
        compare(&format!("{label} grad"), &out.grads, &f, case, "grad", 1e-5);
        if dead.is_none() {
            // The whole step through the trainer (no latent is dead at its start).
            let mut t = Trainer::with_params(config(arch, vec![4, 8, 16]), p, &from_env().unwrap())
                .unwrap()
                .with_step_path(path);
            let m = t.step(&f.host("x")).unwrap();
            assert!((m.loss - loss).abs() < 1e-5 * loss);
            compare(
                &format!("{label} after"),
                t.params(),
                &f,
                case,
                "after",
                1e-5,
            );
            let thr = j["topk_threshold"].as_f64().unwrap();
            let ours = t.batch_topk_threshold().unwrap();
            assert!((ours - thr).abs() < 1e-7, "{label}: {ours} vs {thr}");
        }
    }
}

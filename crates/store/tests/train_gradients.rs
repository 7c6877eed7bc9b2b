//! The hand-derived gradients equal central finite differences of the loss, for every
//! architecture and option (f64-accumulated losses, f32 tensors: tolerances are relative).
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use activation_store::TrainArchitecture;
use activation_store::train::step::{SaeTensors, loss_and_grads, loss_and_grads_with_residual};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sae_core::burn::tensor::Tensor;
use sae_core::device::{from_env, tensor_from_vec, tensor_to_vec};

const B: usize = 6;
const D: usize = 5;
const S: usize = 7;

fn rand_vec(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

fn params(rng: &mut StdRng) -> SaeTensors {
    let d = from_env().unwrap();
    SaeTensors {
        w_enc: tensor_from_vec(rand_vec(rng, D * S, 0.8), [D, S], &d),
        b_enc: tensor_from_vec(rand_vec(rng, S, 0.3), [S], &d),
        w_dec: tensor_from_vec(rand_vec(rng, S * D, 0.8), [S, D], &d),
        b_dec: tensor_from_vec(rand_vec(rng, D, 0.3), [D], &d),
    }
}

fn get(p: &SaeTensors, which: usize) -> Vec<f32> {
    match which {
        0 => tensor_to_vec(p.w_enc.clone()).unwrap(),
        1 => tensor_to_vec(p.b_enc.clone()).unwrap(),
        2 => tensor_to_vec(p.w_dec.clone()).unwrap(),
        _ => tensor_to_vec(p.b_dec.clone()).unwrap(),
    }
}

fn with(p: &SaeTensors, which: usize, i: usize, delta: f32) -> SaeTensors {
    let mut v = get(p, which);
    v[i] += delta;
    let d = from_env().unwrap();
    let mut q = p.clone();
    match which {
        0 => q.w_enc = tensor_from_vec(v, [D, S], &d),
        1 => q.b_enc = tensor_from_vec(v, [S], &d),
        2 => q.w_dec = tensor_from_vec(v, [S, D], &d),
        _ => q.b_dec = tensor_from_vec(v, [D], &d),
    }
    q
}

fn check(arch: TrainArchitecture, l1: f64, apply_b_dec: bool, dead: Option<Vec<bool>>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let p = params(&mut rng);
    let x: Tensor<2> =
        tensor_from_vec(rand_vec(&mut rng, B * D, 1.0), [B, D], &from_env().unwrap());
    let out = loss_and_grads(&p, x.clone(), arch, l1, apply_b_dec, dead.as_deref()).unwrap();
    let grads = [
        tensor_to_vec(out.grads.w_enc.clone()).unwrap(),
        tensor_to_vec(out.grads.b_enc.clone()).unwrap(),
        tensor_to_vec(out.grads.w_dec.clone()).unwrap(),
        tensor_to_vec(out.grads.b_dec.clone()).unwrap(),
    ];
    let eps = 2e-3f32;
    let mut worst = 0f64;
    let mut skipped = 0;
    for (which, g) in grads.iter().enumerate() {
        for (i, &gi) in g.iter().enumerate() {
            // The AuxK target (the residual) is a constant of the loss, as in SAELens.
            let at = |delta: f32| {
                loss_and_grads_with_residual(
                    &with(&p, which, i, delta),
                    x.clone(),
                    arch,
                    l1,
                    apply_b_dec,
                    dead.as_deref(),
                    Some(out.residual.clone()),
                )
                .unwrap()
            };
            let (lp, lm) = (at(eps), at(-eps));
            // A perturbation that flips a mask (ReLU, top-k, AuxK selection) makes the loss
            // non-differentiable there; skip those coordinates.
            if lp.l0 != out.l0 || lm.l0 != out.l0 {
                skipped += 1;
                continue;
            }
            let fd = (lp.loss - lm.loss) / (2.0 * f64::from(eps));
            let err = (fd - f64::from(gi)).abs() / (1.0 + fd.abs());
            worst = worst.max(err);
            assert!(
                err < 2e-2,
                "{arch:?} param {which}[{i}]: finite difference {fd}, gradient {}",
                g[i]
            );
        }
    }
    assert!(skipped < 20, "{arch:?}: {skipped} coordinates skipped");
    assert!(out.loss > 0.0);
    eprintln!("{arch:?} l1={l1} b_dec_in={apply_b_dec}: worst relative error {worst:.2e}");
}

#[test]
fn standard_with_l1() {
    let arch = TrainArchitecture::Standard {
        l1_coefficient: 0.7,
        l1_warm_up_steps: 0,
    };
    check(arch, 0.7, false, None, 1);
    check(arch, 0.7, true, None, 2);
    check(arch, 0.0, false, None, 3);
}

#[test]
fn topk_with_and_without_auxk() {
    let arch = TrainArchitecture::TopK {
        k: 3,
        aux_coefficient: 0.5,
    };
    check(arch, 0.0, false, None, 4);
    let dead = vec![true, false, true, false, false, true, true];
    check(arch, 0.0, false, Some(dead.clone()), 5);
    check(arch, 0.0, true, Some(dead), 6);
}

#[test]
fn batch_topk() {
    let arch = TrainArchitecture::BatchTopK {
        k: 2.5,
        aux_coefficient: 0.5,
        threshold_lr: 0.01,
    };
    check(arch, 0.0, false, None, 7);
    check(
        arch,
        0.0,
        false,
        Some(vec![false, true, false, true, false, false, true]),
        8,
    );
}

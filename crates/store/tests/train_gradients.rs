//! The hand-derived gradients equal central finite differences of the loss, for every
//! architecture and option (f64-accumulated losses, f32 tensors: tolerances are relative).
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use activation_store::TrainArchitecture;
use activation_store::train::step::{
    LossSpec, SaeTensors, loss_and_grads, loss_and_grads_for, loss_and_grads_with_residual,
};
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
        threshold: None,
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
    assert!(out.loss > 0.0);
    // The AuxK target (the residual) is a constant of the loss, as in SAELens: the finite
    // differences hold it fixed.
    let fixed = loss_and_grads_with_residual(
        &p,
        x.clone(),
        arch,
        l1,
        apply_b_dec,
        dead.as_deref(),
        Some(out.residual.clone()),
    )
    .unwrap();
    assert_eq!(fixed.loss, out.loss);
    let worst = check_spec(
        &p,
        &x,
        &LossSpec {
            arch,
            coefficient: l1,
            apply_b_dec_to_input: apply_b_dec,
            dead: dead.as_deref(),
            inner_levels: &[],
        },
    );
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

/// Finite differences of the loss through [`loss_and_grads_for`] (Matryoshka levels, JumpReLU's
/// fixed threshold) for the four weight tensors.
fn check_spec(p: &SaeTensors, x: &Tensor<2>, spec: &LossSpec<'_>) -> f64 {
    let out = loss_and_grads_for(p, x.clone(), spec, None).unwrap();
    let grads = [
        tensor_to_vec(out.grads.w_enc.clone()).unwrap(),
        tensor_to_vec(out.grads.b_enc.clone()).unwrap(),
        tensor_to_vec(out.grads.w_dec.clone()).unwrap(),
        tensor_to_vec(out.grads.b_dec.clone()).unwrap(),
    ];
    let eps = 2e-3f32;
    let (mut worst, mut skipped, mut checked) = (0f64, 0, 0);
    for (which, g) in grads.iter().enumerate() {
        for (i, &gi) in g.iter().enumerate() {
            let at = |delta: f32| {
                loss_and_grads_for(
                    &with(p, which, i, delta),
                    x.clone(),
                    spec,
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
            checked += 1;
            let fd = (lp.loss - lm.loss) / (2.0 * f64::from(eps));
            let err = (fd - f64::from(gi)).abs() / (1.0 + fd.abs());
            worst = worst.max(err);
            assert!(
                err < 2e-2,
                "{:?} param {which}[{i}]: fd {fd}, gradient {gi}",
                spec.arch
            );
        }
    }
    assert!(
        skipped < 20 && checked > 60,
        "{skipped} skipped, {checked} checked"
    );
    worst
}

#[test]
fn matryoshka_batch_topk_levels() {
    let arch = TrainArchitecture::MatryoshkaBatchTopK {
        k: 3.0,
        aux_coefficient: 0.5,
        threshold_lr: 0.01,
    };
    for (seed, levels, dead) in [
        (9, vec![2usize, 4], None),
        (
            10,
            vec![3],
            Some(vec![false, true, false, true, false, false, true]),
        ),
        (11, vec![1, 2, 5, 6], None),
    ] {
        let mut rng = StdRng::seed_from_u64(seed);
        let p = params(&mut rng);
        let x = tensor_from_vec(rand_vec(&mut rng, B * D, 1.0), [B, D], &from_env().unwrap());
        let spec = LossSpec {
            arch,
            coefficient: 0.0,
            apply_b_dec_to_input: seed == 10,
            dead: dead.as_deref(),
            inner_levels: &levels,
        };
        let out = loss_and_grads_for(&p, x.clone(), &spec, None).unwrap();
        assert!(out.inner_mse > 0.0);
        let worst = check_spec(&p, &x, &spec);
        eprintln!("matryoshka levels {levels:?}: worst relative error {worst:.2e}");
    }
}

fn jumprelu_case(seed: u64, bandwidth: f64) -> (SaeTensors, Tensor<2>, TrainArchitecture) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut p = params(&mut rng);
    let theta: Vec<f32> = (0..S).map(|_| rng.random_range(0.05f32..0.4)).collect();
    p.threshold = Some(tensor_from_vec(theta, [S], &from_env().unwrap()));
    let x = tensor_from_vec(rand_vec(&mut rng, B * D, 1.0), [B, D], &from_env().unwrap());
    let arch = TrainArchitecture::JumpRelu {
        l0_coefficient: 0.3,
        l0_warm_up_steps: 0,
        bandwidth,
        init_threshold: 0.1,
    };
    (p, x, arch)
}

#[test]
fn jumprelu_weights() {
    for seed in [12, 13] {
        let (p, x, arch) = jumprelu_case(seed, 0.5);
        let spec = LossSpec {
            arch,
            coefficient: 0.3,
            apply_b_dec_to_input: seed == 13,
            dead: None,
            inner_levels: &[],
        };
        let worst = check_spec(&p, &x, &spec);
        eprintln!("jumprelu weights: worst relative error {worst:.2e}");
    }
}

/// θ's gradient is the straight-through estimator, the exact derivative of a surrogate loss in
/// which the step H(h − θ) is replaced, for θ alone, by its rectangle-kernel smoothing
/// R(z) = clamp(z/ε + ½, 0, 1) — L0 = c·mean_b Σ_j R(h − θ), and f = h·H(h − θ₀) + θ₀·(R(h − θ) −
/// R(h − θ₀)) — computed here in f64 on the host and differentiated by finite differences.
#[test]
fn jumprelu_threshold_is_the_straight_through_estimator() {
    let eps_bw = 0.5f64;
    let c = 0.3f64;
    let (p, x, arch) = jumprelu_case(14, eps_bw);
    let out = loss_and_grads_for(
        &p,
        x.clone(),
        &LossSpec {
            arch,
            coefficient: c,
            apply_b_dec_to_input: false,
            dead: None,
            inner_levels: &[],
        },
        None,
    )
    .unwrap();
    let g = tensor_to_vec(out.grads.threshold.clone().unwrap()).unwrap();
    let v = |t: &Tensor<1>| tensor_to_vec(t.clone()).unwrap();
    let (w_enc, b_enc) = (tensor_to_vec(p.w_enc.clone()).unwrap(), v(&p.b_enc));
    let (w_dec, b_dec) = (tensor_to_vec(p.w_dec.clone()).unwrap(), v(&p.b_dec));
    let theta0: Vec<f64> = v(p.threshold.as_ref().unwrap())
        .iter()
        .map(|t| f64::from(*t))
        .collect();
    let xs = tensor_to_vec(x).unwrap();
    let h: Vec<f64> = (0..B * S)
        .map(|k| {
            let (b, j) = (k / S, k % S);
            f64::from(b_enc[j])
                + (0..D)
                    .map(|i| f64::from(xs[b * D + i]) * f64::from(w_enc[i * S + j]))
                    .sum::<f64>()
        })
        .collect();
    let r = |z: f64| (z / eps_bw + 0.5).clamp(0.0, 1.0);
    let surrogate = |theta: &[f64]| -> f64 {
        let mut mse = 0.0;
        let mut l0 = 0.0;
        for b in 0..B {
            let f: Vec<f64> = (0..S)
                .map(|j| {
                    let hv = h[b * S + j];
                    let base = if hv > theta0[j] { hv } else { 0.0 };
                    l0 += r(hv - theta[j]);
                    base + theta0[j] * (r(hv - theta[j]) - r(hv - theta0[j]))
                })
                .collect();
            for i in 0..D {
                let xhat = f64::from(b_dec[i])
                    + (0..S)
                        .map(|j| f[j] * f64::from(w_dec[j * D + i]))
                        .sum::<f64>();
                mse += (xhat - f64::from(xs[b * D + i])).powi(2);
            }
        }
        mse / B as f64 + c * l0 / B as f64
    };
    let delta = 1e-5;
    let mut nonzero = 0;
    for j in 0..S {
        let mut tp = theta0.clone();
        let mut tm = theta0.clone();
        tp[j] += delta;
        tm[j] -= delta;
        let fd = (surrogate(&tp) - surrogate(&tm)) / (2.0 * delta);
        let err = (fd - f64::from(g[j])).abs() / (1.0 + fd.abs());
        assert!(
            err < 1e-3,
            "θ[{j}]: surrogate derivative {fd}, estimator {}",
            g[j]
        );
        nonzero += usize::from(fd.abs() > 1e-3);
    }
    assert!(nonzero >= S / 2, "only {nonzero} latents had a window hit");
}

//! `cargo xtask bench meta-sae`: training a BatchTopK meta-SAE on an SAE's decoder rows
//! (`activation_store::meta_sae::train_meta_sae`) beside SAELens's `BatchTopKTrainingSAE` with the
//! same settings on the same rows: steps/s, and the explained variance and L0 each reaches.
//!
//! The rows are built to have meta-structure: 16 384 unit rows in 768-D, each a positive mix of
//! four of 512 hidden unit directions plus noise, so that a meta-SAE with k = 4 can explain
//! most of their variance and the two trainers' quality is comparable.

use std::process::Command;
use std::time::Instant;

use activation_store::meta_sae::{MetaSaeConfig, train_meta_sae};
use sae_core::burn::module::Param;
use sae_core::device::{tensor_from_vec, tensor_to_vec};
use sae_core::npy::write_f32;
use sae_core::{Architecture, Sae, SaeConfig};

use crate::bench::{Args, random_sae_params, run_reference, splitmix, workspace_root};

const ROWS: usize = 16_384;
const D: usize = 768;
const HIDDEN: usize = 512;
const PER_ROW: usize = 4;
const STEPS: usize = 1000;

/// The decoder rows: unit mixes of `PER_ROW` hidden directions with noise.
fn structured_rows() -> Vec<f32> {
    let dirs: Vec<f32> = splitmix(61, HIDDEN * D, 1.0);
    let unit = |v: &mut [f32]| {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.iter_mut().for_each(|x| *x /= n);
    };
    let mut dirs = dirs;
    dirs.chunks_mut(D).for_each(unit);
    let picks = splitmix(62, ROWS * PER_ROW, 1.0);
    let coef = splitmix(63, ROWS * PER_ROW, 0.5);
    let noise = splitmix(64, ROWS * D, 0.1 / (D as f32).sqrt());
    let mut rows = noise;
    for (r, row) in rows.chunks_mut(D).enumerate() {
        for j in 0..PER_ROW {
            let u = (picks[r * PER_ROW + j] + 1.0) / 2.0;
            let h = ((u * HIDDEN as f32) as usize).min(HIDDEN - 1);
            let c = 1.0 + coef[r * PER_ROW + j];
            for (x, y) in row.iter_mut().zip(&dirs[h * D..(h + 1) * D]) {
                *x += c * y;
            }
        }
        unit(row);
    }
    rows
}

/// Fraction of variance explained, `1 − Σ‖x − x̂‖² / Σ‖x − x̄‖²`, and the mean L0.
fn quality(
    meta: &Sae,
    rows: &[f32],
    dev: &sae_core::burn::tensor::Device,
) -> anyhow::Result<(f64, f64)> {
    let x = tensor_from_vec(rows.to_vec(), [ROWS, D], dev);
    let recon = tensor_to_vec(meta.forward(x.clone())?)?;
    let l0 = tensor_to_vec(meta.encode(x)?)?
        .iter()
        .filter(|v| **v != 0.0)
        .count() as f64
        / ROWS as f64;
    let mut mean = vec![0f64; D];
    for row in rows.chunks(D) {
        mean.iter_mut()
            .zip(row)
            .for_each(|(m, v)| *m += f64::from(*v));
    }
    mean.iter_mut().for_each(|m| *m /= ROWS as f64);
    let (mut err, mut var) = (0f64, 0f64);
    for (i, (x, y)) in rows.iter().zip(&recon).enumerate() {
        err += f64::from(x - y).powi(2);
        var += (f64::from(*x) - mean[i % D]).powi(2);
    }
    Ok((1.0 - err / var, l0))
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let dev = args.device.burn_device()?;
    let rows = structured_rows();
    let mut params = random_sae_params(D, ROWS, 65, 0.01, 0.0, &dev);
    params.w_dec = Param::from_tensor(tensor_from_vec(rows.clone(), [ROWS, D], &dev));
    let sae = Sae::from_parts(
        SaeConfig::new(D, ROWS, Architecture::Standard),
        params,
        None,
    )?;
    let mut cfg = MetaSaeConfig::for_sae(ROWS);
    cfg.steps = STEPS;
    let t0 = Instant::now();
    let (meta, last) = train_meta_sae(&sae, cfg, false)?;
    let secs = t0.elapsed().as_secs_f64();
    let (ev, l0) = quality(&meta, &rows, &dev)?;
    println!(
        "meta-SAE: BatchTopK {D} → {} (k {}), {STEPS} steps of {} rows over {ROWS} structured decoder rows; sae-geometry ({} device, {} threads): {:.1} steps/s ({secs:.2} s); last batch: explained variance {:.4}, L0 {:.2}; all rows through the saved JumpReLU form: explained variance {ev:.4}, L0 {l0:.2}",
        cfg.d_meta,
        cfg.k,
        cfg.batch_size,
        args.device,
        args.threads,
        STEPS as f64 / secs,
        last.explained_variance,
        last.l0,
    );
    let Some(python) = &args.python else {
        println!("reference skipped: pass --python (a venv with sae-lens and torch)");
        return Ok(());
    };
    let scratch = crate::bench::scratch_dir("meta-sae")?;
    let tmp = scratch.path();
    write_f32(tmp.join("rows.npy"), &[ROWS, D], &rows)?;
    let j = run_reference(
        Command::new(python)
            .arg(workspace_root().join("benches/python/meta_sae_ref.py"))
            .arg(tmp.join("rows.npy"))
            .args(["--threads", &args.threads.to_string()])
            .args(["--d-meta", &cfg.d_meta.to_string()])
            .args(["--k", &cfg.k.to_string()])
            .args(["--batch", &cfg.batch_size.to_string()])
            .args(["--steps", &STEPS.to_string()])
            .args(["--lr", &cfg.lr.to_string()])
            .env("OMP_NUM_THREADS", args.threads.to_string()),
    )?;
    let f = |k: &str| j[k].as_f64().unwrap_or(f64::NAN);
    println!(
        "reference ({}, {} threads): {:.1} steps/s ({:.2} s); all rows through its JumpReLU form: explained variance {:.4}, L0 {:.2}",
        j["impl"].as_str().unwrap_or("?"),
        args.threads,
        f("steps_per_s"),
        f("seconds"),
        f("explained_variance"),
        f("l0"),
    );
    println!(
        "ratio (ours / reference): {:.2}× steps/s; explained variance {ev:.4} vs {:.4}",
        (STEPS as f64 / secs) / f("steps_per_s"),
        f("explained_variance"),
    );
    Ok(())
}

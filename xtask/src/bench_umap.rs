//! `cargo xtask bench umap`: 2-D (or 10-D) UMAP of 16 128 × 768 clustered unit vectors (the
//! tutorial's 768·{1, 4, 16} decoder rows) beside umap-learn, same threads, with quality.

use std::process::Command;
use std::time::Instant;

use latent_geometry::umap::{Metric, Umap, UmapConfig, trustworthiness};
use sae_core::npy::{read_f32, write_f32};

use crate::bench::{
    Args, median, reference_seconds, run_reference, seconds_list, splitmix, workspace_root,
};
use crate::bench_gpt2::peak_rss_mib;

const N: usize = 16_128;
const D: usize = 768;

/// Decoder-like data: 300 directions with 10–200 noisy members each, plus a background.
pub(crate) fn clustered(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let n_centers = 300;
    let centers = splitmix(seed, n_centers * d, 1.0);
    let noise = splitmix(seed + 1, n * d, 1.0);
    let pick = splitmix(seed + 2, n, 1.0);
    let mut x = vec![0f32; n * d];
    for i in 0..n {
        let u = (pick[i] + 1.0) / 2.0;
        let row = &mut x[i * d..(i + 1) * d];
        if u < 0.2 {
            row.copy_from_slice(&noise[i * d..(i + 1) * d]);
        } else {
            // Zipf-like cluster sizes.
            let c = ((u - 0.2) / 0.8).powi(2) * n_centers as f32;
            let c = (c as usize).min(n_centers - 1);
            for j in 0..d {
                row[j] = centers[c * d + j] + 0.6 * noise[i * d + j];
            }
        }
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.iter_mut().for_each(|v| *v /= norm);
    }
    x
}

fn subsample_quality(x: &[f32], y: &[f32], dim: usize) -> f64 {
    let m = 2000;
    let step = N / m;
    let xs: Vec<f32> = (0..m)
        .flat_map(|i| x[i * step * D..(i * step + 1) * D].to_vec())
        .collect();
    let ys: Vec<f32> = (0..m)
        .flat_map(|i| y[i * step * dim..(i * step + 1) * dim].to_vec())
        .collect();
    trustworthiness(&xs, D, &ys, dim, 15, Metric::Cosine)
}

pub(crate) fn run(args: &Args, dim: usize) -> anyhow::Result<()> {
    let x = clustered(N, D, 2024);
    let mut results = Vec::new();
    for seed in [None, Some(42u64)] {
        let cfg = UmapConfig {
            n_components: dim,
            metric: Metric::Cosine,
            random_state: seed,
            ..UmapConfig::default()
        };
        let (mut times, mut q) = (Vec::new(), 0.0);
        for _ in 0..args.repeats.max(1) {
            let t0 = Instant::now();
            let r = Umap::new(cfg).fit(&x, D)?;
            times.push(t0.elapsed().as_secs_f64());
            q = subsample_quality(&x, &r.embedding, dim);
        }
        let secs = median(times.clone());
        println!(
            "UMAP {N}×{D} → {dim}-D cosine, sae-geometry ({}, {} threads): median {secs:.2} s of {} fits ({}), trustworthiness (2000-point subsample, last fit) {q:.4}, peak RSS so far {:.0} MiB",
            if seed.is_some() {
                "seeded, serial"
            } else {
                "parallel"
            },
            args.threads,
            times.len(),
            seconds_list(&times),
            peak_rss_mib()
        );
        results.push((seed, secs, q));
    }
    let Some(python) = &args.python else {
        println!("reference skipped: pass --python (a venv with umap-learn)");
        return Ok(());
    };
    let scratch = crate::bench::scratch_dir("umap")?;
    let tmp = scratch.path();
    let xp = tmp.join("x.npy");
    write_f32(&xp, &[N, D], &x)?;
    for (seed, ours_s, ours_q) in results {
        let yp = tmp.join("y.npy");
        let mut c = Command::new(python);
        c.arg(workspace_root().join("benches/python/umap_ref.py"))
            .arg(&xp)
            .args(["--dim", &dim.to_string(), "--out"])
            .arg(&yp)
            .args(["--repeats", &args.repeats.max(1).to_string()])
            .env("NUMBA_NUM_THREADS", args.threads.to_string());
        if let Some(s) = seed {
            c.args(["--seed", &s.to_string()]);
        }
        let r = run_reference(&mut c)?;
        let theirs = read_f32(&yp)?;
        let q = subsample_quality(&x, &theirs.data, dim);
        let secs = r["seconds"].as_f64().unwrap_or(f64::NAN);
        let all = reference_seconds(&r);
        println!(
            "reference ({}, {} threads, {}): median {secs:.2} s of {} fits ({}), trustworthiness {q:.4}, peak RSS {:.0} MiB",
            r["impl"].as_str().unwrap_or("?"),
            r["threads"],
            if seed.is_some() {
                "seeded, serial"
            } else {
                "parallel"
            },
            all.len(),
            seconds_list(&all),
            r["peak_rss_mib"].as_f64().unwrap_or(f64::NAN)
        );
        println!(
            "ratio of medians (reference / ours): {:.2}× faster; trustworthiness Δ {:+.4}",
            secs / ours_s,
            ours_q - q
        );
    }
    Ok(())
}

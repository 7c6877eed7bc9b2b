//! `cargo xtask bench hdbscan`: HDBSCAN on a 10-D UMAP of 24 576 decoder-like points beside the
//! hdbscan library, with the adjusted Rand index between the two labelings.

use std::process::Command;
use std::time::Instant;

use latent_geometry::umap::{Metric, Umap, UmapConfig};
use latent_geometry::{Hdbscan, HdbscanConfig};
use sae_core::npy::{read_i64, write_f32};

use crate::bench::{Args, median, reference_seconds, run_reference, seconds_list, workspace_root};
use crate::bench_umap::clustered;

/// Adjusted Rand index of two labelings.
pub(crate) fn ari(a: &[i64], b: &[i64]) -> f64 {
    use std::collections::HashMap;
    let n = a.len() as f64;
    let mut pairs: HashMap<(i64, i64), f64> = HashMap::new();
    let (mut ra, mut rb): (HashMap<i64, f64>, HashMap<i64, f64>) = (HashMap::new(), HashMap::new());
    for (&x, &y) in a.iter().zip(b) {
        *pairs.entry((x, y)).or_default() += 1.0;
        *ra.entry(x).or_default() += 1.0;
        *rb.entry(y).or_default() += 1.0;
    }
    let c2 = |v: f64| v * (v - 1.0) / 2.0;
    let index: f64 = pairs.values().map(|&v| c2(v)).sum();
    let (sa, sb): (f64, f64) = (
        ra.values().map(|&v| c2(v)).sum(),
        rb.values().map(|&v| c2(v)).sum(),
    );
    let expected = sa * sb / c2(n);
    let max = (sa + sb) / 2.0;
    if max == expected {
        1.0
    } else {
        (index - expected) / (max - expected)
    }
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    // The size, and twice it.
    for n in [24_576, 49_152] {
        run_one(args, n)?;
    }
    Ok(())
}

fn run_one(args: &Args, n: usize) -> anyhow::Result<()> {
    let x = clustered(n, 768, 77);
    let cfg = UmapConfig {
        n_components: 10,
        metric: Metric::Cosine,
        random_state: Some(0),
        ..UmapConfig::default()
    };
    let y = Umap::new(cfg).fit(&x, 768)?.embedding;
    let hdbscan = Hdbscan::new(HdbscanConfig {
        min_cluster_size: 3,
        ..HdbscanConfig::default()
    });
    let (mut times, mut labels) = (Vec::new(), Vec::new());
    for _ in 0..args.repeats.max(1) {
        let t0 = Instant::now();
        labels = hdbscan.fit(&y, n, 10)?.labels;
        times.push(t0.elapsed().as_secs_f64());
    }
    let ours = median(times.clone());
    let clusters = labels.iter().max().map_or(0, |m| m + 1);
    println!(
        "HDBSCAN {n} × 10 (10-D UMAP), min_cluster_size 3, sae-geometry (exact Borůvka MST, {} threads): median {ours:.2} s of {} fits ({}), {clusters} clusters",
        args.threads,
        times.len(),
        seconds_list(&times),
    );
    let Some(python) = &args.python else {
        println!("reference skipped: pass --python (a venv with hdbscan)");
        return Ok(());
    };
    let scratch = crate::bench::scratch_dir("hdbscan")?;
    let tmp = scratch.path();
    let yp = tmp.join("y.npy");
    write_f32(&yp, &[n, 10], &y)?;
    let lp = tmp.join("labels.npy");
    let j = run_reference(
        Command::new(python)
            .arg(workspace_root().join("benches/python/hdbscan_ref.py"))
            .arg(&yp)
            .args(["--min-cluster-size", "3", "--out"])
            .arg(&lp)
            .args(["--repeats", &args.repeats.max(1).to_string()])
            .args(["--threads", &args.threads.to_string()])
            .env("OMP_NUM_THREADS", args.threads.to_string()),
    )?;
    let theirs = read_i64(&lp)?;
    let secs = j["seconds"].as_f64().unwrap_or(f64::NAN);
    let all = reference_seconds(&j);
    println!(
        "reference ({}, core_dist_n_jobs {}): median {secs:.2} s of {} fits ({}) after an untimed warm-up fit of {:.2} s, {} clusters, peak RSS {:.0} MiB",
        j["impl"].as_str().unwrap_or("?"),
        j["threads"],
        all.len(),
        seconds_list(&all),
        j["cold_seconds"].as_f64().unwrap_or(f64::NAN),
        j["clusters"],
        j["peak_rss_mib"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "ratio of medians (reference / ours): {:.2}× faster; adjusted Rand index {:.4}",
        secs / ours,
        ari(&labels, &theirs)
    );
    Ok(())
}

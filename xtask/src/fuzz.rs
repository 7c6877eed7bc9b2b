//! `cargo xtask fuzz --minutes N`: the fuzz campaign of `tests/tests/fuzz.rs` with a time budget.
//!
//! Every parser (GGUF, model config.json, SAE directories, `.npy`, activation caches, corpora,
//! Neuronpedia exports, OpenAI replies, statistics and autointerp result files) gets an equal
//! share of `N` minutes × the threads used; the report counts the inputs each tried and the
//! panics/aborts (which must be zero). CI runs the same test binary with a small fixed case count.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::bench::workspace_root;

/// The fuzz targets (test names in tests/tests/fuzz.rs, without `fuzz_`).
const TARGETS: &[&str] = &[
    "gguf",
    "gguf_model_metadata",
    "model_config_json",
    "sae_directory",
    "npy",
    "activation_cache",
    "corpus",
    "neuronpedia_export",
    "openai_replies",
    "result_files",
];

/// Arguments of `fuzz`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Wall-clock minutes for the whole campaign.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Targets run at once (one per core).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Seed of the mutations.
    #[arg(long, default_value_t = 20261204)]
    seed: u64,
    /// Where the report (report.json, report.md) and any failing input go.
    #[arg(long, default_value = "target/fuzz")]
    out: PathBuf,
}

pub(crate) fn run(a: Args) -> anyhow::Result<()> {
    if !(a.minutes > 0.0 && a.minutes.is_finite()) || a.threads == 0 {
        bail!("--minutes must be positive and --threads at least 1");
    }
    let root = workspace_root();
    let out = if a.out.is_absolute() {
        a.out.clone()
    } else {
        root.join(&a.out)
    };
    std::fs::create_dir_all(&out)?;
    let per_target = a.minutes * 60.0 * a.threads as f64 / TARGETS.len() as f64;
    eprintln!(
        "fuzzing {} targets for {:.0} s each ({} at a time, {:.1} min in all)",
        TARGETS.len(),
        per_target,
        a.threads,
        a.minutes
    );
    let t0 = Instant::now();
    let output = crate::cargo::cargo()
        .current_dir(&root)
        .args([
            "test",
            "-p",
            "sae-geometry-tests",
            "--test",
            "fuzz",
            "--",
            "--nocapture",
        ])
        .arg(format!("--test-threads={}", a.threads))
        .env("SAE_GEOMETRY_FUZZ_SECONDS", format!("{per_target}"))
        .env("SAE_GEOMETRY_FUZZ_SEED", a.seed.to_string())
        .env("SAE_GEOMETRY_FUZZ_OUT", &out)
        .output()
        .context("running cargo test")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut rows = Vec::new();
    // The harness's self-test panics on purpose; it is not a parser.
    for line in stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("FUZZ "))
        .filter(|l| !l.starts_with("self-test "))
    {
        let mut it = line.split_whitespace();
        let name = it.next().unwrap_or("").to_string();
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(k))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        rows.push((name, field("inputs="), field("panics=")));
    }
    rows.sort();
    let secs = t0.elapsed().as_secs_f64();
    let total: u64 = rows.iter().map(|r| r.1).sum();
    let panics: u64 = rows.iter().map(|r| r.2).sum();
    let missing = TARGETS.len().saturating_sub(rows.len());
    let mut md = String::from("| parser | inputs tried | panics / aborts |\n|---|---:|---:|\n");
    for (n, i, p) in &rows {
        md.push_str(&format!("| {n} | {i} | {p} |\n"));
    }
    md.push_str(&format!(
        "| **all** | **{total}** | **{}** |\n",
        panics + missing as u64
    ));
    let report = serde_json::json!({
        "minutes": a.minutes,
        "threads": a.threads,
        "seed": a.seed,
        "seconds": secs,
        "targets": rows.iter().map(|(n, i, p)| serde_json::json!({"parser": n, "inputs": i, "panics": p})).collect::<Vec<_>>(),
        "aborted_targets": missing,
        "passed": output.status.success(),
    });
    sae_core::atomic::write(out.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    sae_core::atomic::write(out.join("report.md"), &md)?;
    println!("{md}");
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        bail!(
            "the fuzz campaign failed ({} targets reported, {panics} panicked; inputs saved in {})",
            rows.len(),
            out.display()
        );
    }
    eprintln!(
        "{total} inputs, no panic or abort, in {secs:.0} s → {}",
        out.join("report.md").display()
    );
    Ok(())
}

//! `cargo xtask train-gemma-family`: the trained SAE family for gemma-3-270m, reproducible with
//! one command (the numbers in docs/BENCHMARKS.md come from it).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

/// Arguments of `train-gemma-family`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Training corpus (JSONL with a `text` field), e.g. gutenberg-en-train.jsonl.
    #[arg(long)]
    train_corpus: PathBuf,
    /// Held-out corpus for the evaluation (CE loss recovered), e.g. gutenberg-en-validation.jsonl.
    #[arg(long)]
    eval_corpus: PathBuf,
    /// Where the cache, the SAEs and summary.json go.
    #[arg(long, default_value = "runs/gemma-3-270m-l6")]
    out: PathBuf,
    /// Tokens cached.
    #[arg(long, default_value_t = 1_048_576)]
    tokens: u64,
    /// Training steps (batches of 4096 tokens).
    #[arg(long, default_value_t = 1200)]
    steps: usize,
    /// Widths, as multiples of d_model = 640.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    multiples: Vec<usize>,
}

fn sae_geometry() -> Command {
    let mut c = Command::new(env!("CARGO"));
    c.args([
        "run",
        "--release",
        "--quiet",
        "-p",
        "sae-geometry",
        "--bin",
        "sae-geometry",
        "--",
    ]);
    c
}

fn check(mut c: Command, what: &str) -> anyhow::Result<()> {
    let st = c.status().with_context(|| format!("running {what}"))?;
    if !st.success() {
        bail!("{what} failed ({st})");
    }
    Ok(())
}

pub(crate) fn run(a: Args) -> anyhow::Result<()> {
    let cache = a.out.join("cache");
    let mut c = sae_geometry();
    c.args(["cache-activations", "--model", "gemma-3-270m", "--dataset"])
        .arg(&a.train_corpus)
        .args([
            "--hook",
            "blocks.6.hook_resid_post",
            "--context-size",
            "128",
            "--sequences-per-shard",
            "256",
        ])
        .args(["--max-tokens", &a.tokens.to_string(), "--out"])
        .arg(&cache);
    check(c, "cache-activations")?;
    let widths: Vec<String> = a.multiples.iter().map(|m| (640 * m).to_string()).collect();
    let mut t = sae_geometry();
    t.args(["train-sae", "--cache"])
        .arg(&cache)
        .args([
            "--architecture",
            "topk",
            "--k",
            "32",
            "--widths",
            &widths.join(","),
        ])
        .args([
            "--steps",
            &a.steps.to_string(),
            "--batch-size",
            "4096",
            "--lr",
            "5e-4",
        ])
        .args([
            "--lr-decay-steps",
            &(a.steps / 5).to_string(),
            "--normalize-activations",
        ])
        .args([
            "--dead-feature-window",
            "400",
            "--seed",
            "42",
            "--eval-windows",
            "64",
            "--eval-dataset",
        ])
        .arg(&a.eval_corpus)
        .arg("--out")
        .arg(a.out.join("saes"));
    check(t, "train-sae")?;
    println!("summary: {}", a.out.join("saes/summary.json").display());
    Ok(())
}

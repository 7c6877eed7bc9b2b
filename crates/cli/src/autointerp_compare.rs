//! `sae-geometry autointerp-compare`: detection scores of several unit populations (SAE
//! latents, neurons, random latents) side by side, on the same number of units, with their
//! floors.

use std::path::PathBuf;

use autointerp::compare;

/// Arguments of `autointerp-compare`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A population: LABEL=RESULTS.jsonl (an `autointerp --scoring` results file; its
    /// RESULTS.jsonl.random-explanations.jsonl is read when present). Repeat for each.
    #[arg(long = "run", required = true, value_parser = parse_run)]
    pub runs: Vec<(String, PathBuf)>,
    /// Units compared per population (default: the smallest number scored by any).
    #[arg(long)]
    pub units: Option<usize>,
    /// Output directory: compare.json, compare.csv, scores.csv, compare.html, compare.png.
    #[arg(long)]
    pub out: PathBuf,
}

fn parse_run(s: &str) -> Result<(String, PathBuf), String> {
    let (label, path) = s
        .split_once('=')
        .ok_or_else(|| format!("expected LABEL=PATH, found {s:?}"))?;
    if label.is_empty() || path.is_empty() {
        return Err(format!("expected LABEL=PATH, found {s:?}"));
    }
    Ok((label.to_string(), PathBuf::from(path)))
}

/// Runs `autointerp-compare`: one [`compare::compare_runs`] call, then the outputs.
pub fn run(args: Args) -> anyhow::Result<()> {
    let c = compare::compare_runs(&args.runs, args.units)?;
    c.save(&args.out)?;
    print!("{}", c.csv());
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

//! `sae-geometry autointerp-compare`: detection scores of several unit populations (SAE
//! latents, neurons, random latents) side by side, on the same number of units, with their
//! floors.

use std::path::PathBuf;

use anyhow::Context;
use autointerp::compare::{self, Population};

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

/// Each unit's detection scores with another unit's explanation.
type RandomScores = Vec<(usize, Option<autointerp::DetectionScores>)>;

fn random_explanations(results: &std::path::Path) -> anyhow::Result<Option<RandomScores>> {
    let mut p = results.as_os_str().to_owned();
    p.push(".random-explanations.jsonl");
    let p = PathBuf::from(p);
    let Ok(text) = std::fs::read_to_string(&p) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}:{}", p.display(), i + 1))?;
        let latent = v["latent"]
            .as_u64()
            .with_context(|| format!("{}:{}: no latent", p.display(), i + 1))?;
        let d = serde_json::from_value(v["detection"].clone()).ok();
        out.push((latent as usize, d));
    }
    Ok(Some(out))
}

/// Runs `autointerp-compare`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut loaded = Vec::new();
    for (label, path) in &args.runs {
        if !path.exists() {
            anyhow::bail!("{label}: {} does not exist", path.display());
        }
        let results = autointerp::read_results(path)?;
        let random = random_explanations(path)?;
        loaded.push((label.clone(), results, random));
    }
    let smallest = loaded
        .iter()
        .map(|(_, r, _)| compare::scored_units(r).len())
        .min()
        .unwrap_or(0);
    let units = args.units.unwrap_or(smallest);
    if units == 0 {
        anyhow::bail!("a population has no scored unit (run autointerp with --scoring)");
    }
    if units > smallest {
        let (label, r, _) = loaded
            .iter()
            .find(|(_, r, _)| compare::scored_units(r).len() < units)
            .ok_or_else(|| anyhow::anyhow!("no population"))?;
        anyhow::bail!(
            "--units {units}: population {label} has only {} scored units (of {} asked)",
            compare::scored_units(r).len(),
            r.len()
        );
    }
    let pops: Vec<Population> = loaded
        .iter()
        .map(|(l, r, rand)| compare::population(l, r, rand.as_deref(), units))
        .collect();
    std::fs::create_dir_all(&args.out)?;
    sae_core::atomic::write(
        args.out.join("compare.json"),
        serde_json::to_string_pretty(&pops)?,
    )?;
    let f = |d: &Option<compare::Distribution>, g: fn(&compare::Distribution) -> f64| {
        d.as_ref().map_or(String::new(), |d| format!("{:.4}", g(d)))
    };
    let mut csv = String::from(
        "population,units,asked,live,mean_score,median_score,q25_score,q75_score,mean_balanced_accuracy,median_balanced_accuracy,mean_none_floor,random_explanation_mean_score,random_explanation_mean_balanced_accuracy\n",
    );
    for p in &pops {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            p.label,
            p.units.len(),
            p.asked,
            p.live,
            f(&p.accuracy, |d| d.mean),
            f(&p.accuracy, |d| d.median),
            f(&p.accuracy, |d| d.q25),
            f(&p.accuracy, |d| d.q75),
            f(&p.balanced_accuracy, |d| d.mean),
            f(&p.balanced_accuracy, |d| d.median),
            f(&p.none_floor, |d| d.mean),
            f(&p.random_explanation_accuracy, |d| d.mean),
            f(&p.random_explanation_balanced_accuracy, |d| d.mean),
        ));
    }
    sae_core::atomic::write(args.out.join("compare.csv"), &csv)?;
    let mut scores = String::from("population,unit,score,balanced_accuracy,none_floor\n");
    for ((label, results, _), p) in loaded.iter().zip(&pops) {
        for u in &p.units {
            if let Some(d) = results
                .iter()
                .find(|r| r.latent == *u)
                .and_then(|r| r.detection)
            {
                scores.push_str(&format!(
                    "{label},{u},{:.6},{:.6},{:.6}\n",
                    d.accuracy, d.balanced_accuracy, d.none_floor
                ));
            }
        }
    }
    sae_core::atomic::write(args.out.join("scores.csv"), scores)?;
    compare::write_html(
        &pops,
        &format!("Detection scores of {units} units per population"),
        &args.out.join("compare.html"),
    )?;
    compare::write_png(&pops, &args.out.join("compare.png"))?;
    print!("{csv}");
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

//! `cargo xtask check-splitting`: checks a reproduction's outputs as CI does — a row per latent,
//! a non-degenerate embedding, at least one cluster, both HTML plots drawing every point in
//! headless Chromium without errors.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};

/// Arguments of `check-splitting`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The reproduction's output directory.
    #[arg(long, default_value = "runs/reproduce-splitting")]
    out: PathBuf,
    /// Headless Chromium binary.
    #[arg(long, env = "SAE_GEOMETRY_CHROMIUM", default_value = "chromium")]
    chromium: String,
}

fn json(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// Loads a page headless: (points drawn, script errors, console lines).
fn chromium(bin: &str, html: &Path) -> anyhow::Result<(usize, usize, Vec<String>)> {
    let p = latent_geometry::headless::load_page(bin, html)?;
    let attr = |name: &str| {
        p.attr(name)
            .with_context(|| format!("no {name} in the page's DOM"))
    };
    Ok((
        attr("data-points-drawn")?,
        attr("data-errors")?,
        p.console.clone(),
    ))
}

pub(crate) fn run(a: Args) -> anyhow::Result<()> {
    let repro = json(&a.out.join("reproduction.json"))?;
    let saes = repro["saes"]
        .as_array()
        .context("reproduction.json has no saes")?
        .len();
    for (dir, clustered) in [(a.out.clone(), false), (a.out.join("clusters"), true)] {
        let s = json(&dir.join("summary.json"))?;
        let rows = s["rows"].as_u64().unwrap_or(0) as usize;
        let per_width: usize = s["rows_per_width"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(w, n)| {
                        (
                            w.parse::<usize>().unwrap_or(0),
                            n.as_u64().unwrap_or(0) as usize,
                        )
                    })
                    .filter(|(w, n)| w == n)
                    .count()
            })
            .unwrap_or(0);
        let widths = s["rows_per_width"].as_object().map_or(0, |m| m.len());
        ensure!(
            rows > 0 && per_width == widths,
            "{}: not one row per latent ({s})",
            dir.display()
        );
        if !clustered {
            ensure!(
                widths == saes,
                "{}: {widths} widths for {saes} SAEs",
                dir.display()
            );
        }
        ensure!(
            s["embedding_finite"] == true,
            "{}: non-finite embedding",
            dir.display()
        );
        let (sx, sy) = (
            s["umap_x_std"].as_f64().unwrap_or(0.0),
            s["umap_y_std"].as_f64().unwrap_or(0.0),
        );
        ensure!(
            sx > 1e-3 && sy > 1e-3,
            "{}: degenerate embedding (std {sx}, {sy})",
            dir.display()
        );
        let csv = std::fs::read_to_string(dir.join("splitting.csv"))?;
        ensure!(
            csv.lines().next().is_some_and(|h| h.contains("umap_x")),
            "{}: bad CSV header",
            dir.display()
        );
        ensure!(
            dir.join("splitting.parquet").exists() && dir.join("splitting.png").exists(),
            "{}: missing table or PNG",
            dir.display()
        );
        if clustered {
            let c = s["clusters"].as_u64().unwrap_or(0);
            ensure!(c >= 1, "{}: no cluster found", dir.display());
        }
        let (drawn, errors, console) = chromium(&a.chromium, &dir.join("splitting.html"))?;
        if drawn != rows || errors != 0 || !console.is_empty() {
            bail!(
                "{}: the HTML drew {drawn} of {rows} points, {errors} script errors, console: {console:?}",
                dir.display()
            );
        }
        println!(
            "{}: {rows} rows, {} clusters, embedding std ({sx:.2}, {sy:.2}), HTML drew {drawn} points with no errors",
            dir.display(),
            s["clusters"]
        );
    }
    ensure!(a.out.join("families.json").exists(), "no families.json");
    // Families with evidence: every member passed at least one measure's threshold (none is
    // unrelated by every measure), and the table lists every member.
    let ev: Vec<latent_geometry::EvidenceFamily> = serde_json::from_str(
        &std::fs::read_to_string(a.out.join("evidence_families.json"))
            .context("no evidence_families.json")?,
    )?;
    // Random-weight SAEs (the online tests' fixtures) rightly have none: no measure ties them.
    let members: usize = ev.iter().map(|f| f.members.len()).sum();
    if let Some((f, m)) = ev
        .iter()
        .flat_map(|f| f.members.iter().map(move |m| (f, m)))
        .find(|(_, m)| m.evidence.is_empty())
    {
        bail!(
            "family {}/{}: member {} has no evidence ({})",
            f.narrow_width,
            f.parent,
            m.latent,
            m.describe()
        );
    }
    let csv = std::fs::read_to_string(a.out.join("families.csv")).context("no families.csv")?;
    ensure!(
        csv.lines().count() == members + 1,
        "families.csv has {} rows for {members} members",
        csv.lines().count().saturating_sub(1)
    );
    let with_cofiring = ev
        .iter()
        .flat_map(|f| &f.members)
        .filter(|m| m.jaccard.is_some())
        .count();
    println!(
        "families with evidence: {} families, {members} members ({with_cofiring} with co-firing scores), each member backed by a measure",
        ev.len()
    );
    println!("reproduction outputs OK");
    Ok(())
}

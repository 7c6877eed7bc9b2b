//! `sae-geometry feature-splitting`.

use std::path::PathBuf;

use anyhow::Context;
use gpt2_gemma_models::LanguageModel;
use latent_geometry::neuronpedia::load_explanations;
use latent_geometry::plot::{ColorBy, write_html, write_png};
use latent_geometry::splitting::{SplittingConfig, SplittingInput, feature_splitting};
use latent_geometry::table::{write_csv, write_json, write_parquet};
use latent_geometry::{LogitLensConfig, logit_lens};
use sae_core::SaeSource;
use sae_core::device::tensor_to_vec;

use super::model_args::ModelArgs;

/// Arguments of `feature-splitting`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model (its unembedding gives each latent's top boosted tokens).
    #[command(flatten)]
    pub model: ModelArgs,
    /// The SAEs, narrowest first or in any order: directories or RELEASE/SAE_ID, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub saes: Vec<SaeSource>,
    /// Neuronpedia explanation exports (JSON), one per SAE in the same order (optional).
    #[arg(long, value_delimiter = ',')]
    pub explanations: Vec<PathBuf>,
    /// Neighbours of the 2-D UMAP.
    #[arg(long, default_value_t = 15)]
    pub n_neighbors_visual: usize,
    /// min_dist of the 2-D UMAP.
    #[arg(long, default_value_t = 0.05)]
    pub min_dist_visual: f64,
    /// Also cluster: HDBSCAN on a 10-D UMAP (adds the `cluster` column and colours by cluster).
    #[arg(long)]
    pub find_clusters: bool,
    /// Neighbours of the 10-D UMAP.
    #[arg(long, default_value_t = 15)]
    pub n_neighbors_cluster: usize,
    /// min_dist of the 10-D UMAP.
    #[arg(long, default_value_t = 0.1)]
    pub min_dist_cluster: f64,
    /// HDBSCAN's smallest cluster.
    #[arg(long, default_value_t = 3)]
    pub min_cluster_size: usize,
    /// Top boosted tokens per latent.
    #[arg(long, default_value_t = 10)]
    pub top_tokens: usize,
    /// Nearest wider latents kept per narrower latent (splitting families).
    #[arg(long, default_value_t = 3)]
    pub n_matches: usize,
    /// Seed for deterministic UMAPs (serial); without it they run in parallel.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output directory: splitting.parquet, splitting.csv, families.json, splitting.html,
    /// splitting.png, summary.json (counts per width, clusters, spread of the embedding).
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `feature-splitting`.
pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.explanations.is_empty() || args.explanations.len() == args.saes.len(),
        "--explanations: {} files for {} SAEs",
        args.explanations.len(),
        args.saes.len()
    );
    let started = std::time::Instant::now();
    let (model, tok) = args.model.load()?;
    let hub = args.model.hub();
    let device = model.device();
    let w_u = model.unembed();
    let mut inputs = Vec::new();
    let mut d = 0;
    for (i, src) in args.saes.iter().enumerate() {
        let sae = src
            .load(&hub, &device)
            .with_context(|| format!("loading SAE {src}"))?;
        let width = sae.d_sae();
        d = sae.config().d_in;
        let lens = logit_lens(
            &sae.w_dec(),
            &w_u,
            None,
            LogitLensConfig {
                k: args.top_tokens,
                batch: 1000,
            },
        )?;
        let top_token_strs = lens
            .iter()
            .map(|l| {
                tok.str_tokens(&l.top_ids).map(|v| {
                    v.iter()
                        .map(|s| format!("{s:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let descriptions = match args.explanations.get(i) {
            Some(p) => load_explanations(p, width)?.descriptions,
            None => vec![String::new(); width],
        };
        inputs.push(SplittingInput {
            width,
            w_dec: tensor_to_vec(sae.w_dec())?,
            descriptions,
            top_token_strs,
        });
    }
    let cfg = SplittingConfig {
        n_neighbors_visual: args.n_neighbors_visual,
        min_dist_visual: args.min_dist_visual,
        find_clusters: args.find_clusters,
        n_neighbors_cluster: args.n_neighbors_cluster,
        min_dist_cluster: args.min_dist_cluster,
        min_cluster_size: args.min_cluster_size,
        n_matches: args.n_matches,
        random_state: args.seed,
    };
    let result = feature_splitting(&inputs, d, &cfg)?;
    std::fs::create_dir_all(&args.out)?;
    write_parquet(&result.rows, &args.out.join("splitting.parquet"))?;
    write_csv(&result.rows, &args.out.join("splitting.csv"))?;
    write_json(&result.families, &args.out.join("families.json"))?;
    let by = if args.find_clusters {
        ColorBy::Cluster
    } else {
        ColorBy::Width
    };
    let title = if args.find_clusters {
        "2D UMAP with HDBSCAN clusters from a 10D UMAP"
    } else {
        "Feature Splitting in SAEs"
    };
    write_html(&result.rows, by, title, &args.out.join("splitting.html"))?;
    write_png(&result.rows, by, &args.out.join("splitting.png"))?;
    write_summary(
        &result,
        started.elapsed().as_secs_f64(),
        &args.out.join("summary.json"),
    )?;
    eprintln!("{} latents → {}", result.rows.len(), args.out.display());
    Ok(())
}

/// Counts per width, clusters and noise, families, and the embedding's spread.
fn write_summary(
    result: &latent_geometry::splitting::SplittingResult,
    seconds: f64,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let mut per_width = std::collections::BTreeMap::<usize, usize>::new();
    for r in &result.rows {
        *per_width.entry(r.sae_width).or_default() += 1;
    }
    let labels: Vec<i64> = result.rows.iter().filter_map(|r| r.cluster).collect();
    let clusters = labels
        .iter()
        .filter(|&&c| c >= 0)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let std = |v: Vec<f64>| {
        let n = v.len().max(1) as f64;
        let m = v.iter().sum::<f64>() / n;
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt()
    };
    let finite = result
        .rows
        .iter()
        .all(|r| r.umap_x.is_finite() && r.umap_y.is_finite());
    let v = serde_json::json!({
        "rows": result.rows.len(),
        "rows_per_width": per_width,
        "described": result.rows.iter().filter(|r| !r.description.is_empty()).count(),
        "clustered": !labels.is_empty(),
        "clusters": clusters,
        "noise": labels.iter().filter(|&&c| c < 0).count(),
        "families": result.families.len(),
        "embedding_finite": finite,
        "umap_x_std": std(result.rows.iter().map(|r| f64::from(r.umap_x)).collect()),
        "umap_y_std": std(result.rows.iter().map(|r| f64::from(r.umap_y)).collect()),
        "seconds": seconds,
    });
    sae_core::atomic::write(path, serde_json::to_string_pretty(&v)?)?;
    Ok(())
}

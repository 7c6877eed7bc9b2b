//! `sae-geometry feature-splitting`.

use std::path::PathBuf;

use anyhow::Context;
use gpt2_gemma_models::LanguageModel;
use latent_geometry::neuronpedia::load_explanations;
use latent_geometry::plot::{ColorBy, PlotLabels, write_html, write_png};
use latent_geometry::table::{write_csv, write_json, write_parquet};
use latent_geometry::{LogitLensConfig, SplittingConfig, SplittingSae, compute_sae_umap_data};
use sae_core::SaeSource;

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
    let mut saes = Vec::with_capacity(args.saes.len());
    let mut descriptions = Vec::with_capacity(args.saes.len());
    for (i, src) in args.saes.iter().enumerate() {
        let sae = src
            .load(&hub, &device)
            .with_context(|| format!("loading SAE {src}"))?;
        descriptions.push(match args.explanations.get(i) {
            Some(p) => Some(load_explanations(p, sae.d_sae())?.descriptions),
            None => None,
        });
        saes.push(sae);
    }
    let inputs: Vec<SplittingSae<'_>> = saes
        .iter()
        .zip(&descriptions)
        .map(|(sae, d)| SplittingSae {
            sae,
            descriptions: d.as_deref(),
        })
        .collect();
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
    let lens = LogitLensConfig {
        k: args.top_tokens,
        batch: 1000,
    };
    let result = compute_sae_umap_data(
        &inputs,
        &model.unembed(),
        |ids| tok.str_tokens(ids),
        lens,
        &cfg,
    )?;
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
    write_png(
        &result.rows,
        by,
        PlotLabels::umap(title),
        &args.out.join("splitting.png"),
    )?;
    let mut summary = serde_json::to_value(result.summary())?;
    summary["seconds"] = serde_json::json!(started.elapsed().as_secs_f64());
    sae_core::atomic::write(
        args.out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    eprintln!("{} latents → {}", result.rows.len(), args.out.display());
    Ok(())
}

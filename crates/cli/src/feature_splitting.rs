//! `sae-geometry feature-splitting`.

use std::path::PathBuf;

use anyhow::Context;
use gpt2_gemma_models::LanguageModel;
use latent_geometry::{LogitLensConfig, SplittingConfig, compute_sae_umap_data_from_exports};
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
    let started = std::time::Instant::now();
    let (model, tok) = args.model.load()?;
    let hub = args.model.hub();
    let device = model.device();
    let saes = args
        .saes
        .iter()
        .map(|src| {
            src.load(&hub, &device)
                .with_context(|| format!("loading SAE {src}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
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
    let result = compute_sae_umap_data_from_exports(
        &saes,
        &args.explanations,
        &model.unembed(),
        |ids| tok.str_tokens(ids),
        lens,
        &cfg,
    )?;
    result.save(&args.out, Some(started.elapsed().as_secs_f64()))?;
    eprintln!("{} latents → {}", result.rows.len(), args.out.display());
    Ok(())
}

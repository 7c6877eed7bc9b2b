//! `sae-geometry dashboard`: offline latent dashboards (an HTML page per latent and an index).

use std::path::PathBuf;

use activation_store::{LatentStats, StatsConfig};
use anyhow::Context;
use autointerp::{DashboardConfig, DashboardInputs, dashboard_pages};
use gpt2_gemma_models::LanguageModel;
use latent_geometry::dashboard::write_dashboards;
use sae_core::SaeSource;

use super::corpus_args::CorpusArgs;
use super::model_args::ModelArgs;
use sae_core::latents::parse_latents;

/// Arguments of `dashboard`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The corpus the windows come from (--corpus or --dataset).
    #[command(flatten)]
    pub corpus: CorpusArgs,
    /// The SAE: a directory or RELEASE/SAE_ID.
    #[arg(long)]
    pub sae: SaeSource,
    /// Latents: indices and ranges such as `0-99`.
    #[arg(long)]
    pub latents: String,
    /// Statistics from `latent-stats` (instead of a pass over the corpus).
    #[arg(long)]
    pub stats: Option<PathBuf>,
    /// Tokens gathered over when no --stats is given.
    #[arg(long, default_value_t = 200_000)]
    pub total_tokens: u64,
    /// Window length; default: the SAE's context_size.
    #[arg(long)]
    pub context_size: Option<usize>,
    /// Windows per model forward pass.
    #[arg(long, default_value_t = 8)]
    pub model_batch_size: usize,
    /// Top windows shown per latent.
    #[arg(long, default_value_t = 20)]
    pub k: usize,
    /// Autointerp results (JSONL from `autointerp`) to show explanations and scores.
    #[arg(long)]
    pub autointerp: Option<PathBuf>,
    /// Other SAEs (e.g. other widths of a family) whose nearest latents are listed too.
    #[arg(long, value_delimiter = ',')]
    pub family: Vec<SaeSource>,
    /// Output directory: index.html and latent-N.html.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `dashboard`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (model, tok) = args.model.load()?;
    let hub = args.model.hub();
    let sae = args.model.load_sae(&args.sae, &model)?;
    let latents = parse_latents(&args.latents, sae.d_sae())?
        .ok_or_else(|| anyhow::anyhow!("--latents must list latents (not `all`)"))?;
    let stats = match &args.stats {
        Some(p) => LatentStats::load(p)?,
        None => {
            let store_cfg = activation_store::StoreConfig::for_reading(
                sae.config(),
                args.context_size,
                args.model_batch_size,
            )?;
            let cfg = StatsConfig {
                k: args.k,
                ..StatsConfig::default()
            };
            activation_store::gather_stats(
                &model,
                &tok,
                &sae,
                args.corpus.source(args.model.offline)?,
                &store_cfg,
                &latents,
                cfg,
                args.total_tokens,
                true,
            )?
        }
    };
    let results = match &args.autointerp {
        Some(p) => autointerp::read_results(p)?,
        None => Vec::new(),
    };
    let family = args
        .family
        .iter()
        .map(|src| {
            src.load(&hub, &model.device())
                .with_context(|| format!("loading SAE {src}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let inputs = DashboardInputs {
        model: &model,
        tokenizer: &tok,
        sae: &sae,
        stats: &stats,
        latents: &latents,
        results: &results,
        family: &family,
    };
    let config = DashboardConfig {
        top_windows: args.k,
        ..DashboardConfig::default()
    };
    let pages = dashboard_pages(&inputs, &config)?;
    let title = format!("{} — {}", args.sae, args.model.model);
    write_dashboards(&pages, &title, &args.out)?;
    eprintln!(
        "{} dashboards → {}",
        pages.len(),
        args.out.join("index.html").display()
    );
    Ok(())
}

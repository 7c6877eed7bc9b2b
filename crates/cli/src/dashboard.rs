//! `sae-geometry dashboard`: offline latent dashboards (an HTML page per latent and an index).

use std::path::PathBuf;

use activation_store::{LatentStats, StatsConfig};
use anyhow::Context;
use gpt2_gemma_models::LanguageModel;
use latent_geometry::dashboard::{DashLatent, DashWindow, histogram, write_dashboards};
use latent_geometry::splitting::nearest_latents;
use latent_geometry::{LogitLensConfig, logit_lens};
use sae_core::SaeSource;
use sae_core::device::tensor_to_vec;

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
    let sae = args
        .sae
        .load(&hub, &model.device())
        .with_context(|| format!("loading SAE {}", args.sae))?;
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
    let explanations: std::collections::HashMap<usize, (Option<String>, Option<f64>)> =
        match &args.autointerp {
            Some(p) => autointerp::read_results(p)?
                .into_iter()
                .map(|r| (r.latent, (r.explanation, r.score)))
                .collect(),
            None => Default::default(),
        };
    let lens = logit_lens(
        &sae.w_dec(),
        &model.unembed(),
        Some(&latents),
        LogitLensConfig::default(),
    )?;
    let d = sae.d_in();
    let w_dec = tensor_to_vec(sae.w_dec())?;
    let mut neighbours: Vec<Vec<(String, usize, f32)>> =
        nearest_latents(&w_dec, d, &latents, None, 5)
            .into_iter()
            .map(|v| v.into_iter().map(|(j, c)| (String::new(), j, c)).collect())
            .collect();
    for src in &args.family {
        let other = src.load(&hub, &model.device())?;
        anyhow::ensure!(
            other.d_in() == sae.d_in(),
            "--family {src}: d_in {} vs {}",
            other.d_in(),
            sae.d_in()
        );
        let label = format!("{}-wide", other.d_sae());
        let other_dec = tensor_to_vec(other.w_dec())?;
        for (v, near) in
            neighbours
                .iter_mut()
                .zip(nearest_latents(&w_dec, d, &latents, Some(&other_dec), 3))
        {
            v.extend(near.into_iter().map(|(j, c)| (label.clone(), j, c)));
        }
    }
    let str_window = |w: &activation_store::Window| -> anyhow::Result<DashWindow> {
        Ok(DashWindow {
            tokens: tok.str_tokens(&w.tokens)?,
            acts: w.values.clone(),
        })
    };
    let mut pages = Vec::with_capacity(latents.len());
    for (slot, summary) in stats.latents.iter().enumerate() {
        let l = summary.latent;
        let Some(pos) = latents.iter().position(|&x| x == l) else {
            continue;
        };
        let top = summary
            .top
            .iter()
            .filter(|w| w.value > 0.0)
            .take(args.k)
            .map(&str_window)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let bins = summary.quantiles(stats.config.n_quantiles.clamp(1, 5));
        let nb = bins.len();
        let quantiles = bins
            .iter()
            .enumerate()
            .map(|(i, ws)| {
                let shown = ws
                    .iter()
                    .rev()
                    .take(3)
                    .map(&str_window)
                    .collect::<anyhow::Result<Vec<_>>>()?;
                Ok((
                    format!("Quantile {} of {nb} (sampled activating windows)", i + 1),
                    shown,
                ))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let sampled: Vec<f32> = summary.samples().iter().map(|w| w.value).collect();
        let lt = &lens[pos];
        let tokens = |ids: &[u32], vals: &[f32]| -> anyhow::Result<Vec<(String, f32)>> {
            ids.iter()
                .zip(vals)
                .map(|(&i, &v)| Ok((tok.decode(&[i])?, v)))
                .collect()
        };
        let (explanation, score) = explanations.get(&l).cloned().unwrap_or((None, None));
        pages.push(DashLatent {
            latent: l,
            frequency: stats.frequencies()[slot],
            max: summary.max.max(0.0),
            mean_when_active: summary.mean_when_active(),
            top,
            quantiles,
            histogram: histogram(&sampled, 20),
            top_tokens: tokens(&lt.top_ids, &lt.top_values)?,
            bottom_tokens: tokens(&lt.bottom_ids, &lt.bottom_values)?,
            neighbours: neighbours[pos].clone(),
            explanation,
            score,
        });
    }
    let title = format!("{} — {}", args.sae, args.model.model);
    write_dashboards(&pages, &title, &args.out)?;
    eprintln!(
        "{} dashboards → {}",
        pages.len(),
        args.out.join("index.html").display()
    );
    Ok(())
}

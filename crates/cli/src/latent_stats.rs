//! `sae-geometry latent-stats`.

use std::path::PathBuf;

use activation_store::cache::ActivationCacheDir;
use activation_store::{LatentStats, StatsConfig, gather_from_cache};
use sae_core::{ComputeDevice, SaeSource};

use sae_core::latents::parse_latents;

/// Arguments of `latent-stats`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The activation cache (from `cache-activations`).
    #[arg(long, required_unless_present = "merge")]
    pub cache: Option<PathBuf>,
    /// The SAE: a directory or RELEASE/SAE_ID.
    #[arg(long, required_unless_present = "merge")]
    pub sae: Option<SaeSource>,
    /// Latents: `all`, or indices and ranges such as `0-99,120`.
    #[arg(long, default_value = "all")]
    pub latents: String,
    /// Top activating windows kept per latent.
    #[arg(long, default_value_t = 20)]
    pub k: usize,
    /// Tokens each side of a window's centre.
    #[arg(long, default_value_t = 10)]
    pub buffer: usize,
    /// No two top windows of a latent overlap in one sequence.
    #[arg(long)]
    pub no_overlap: bool,
    /// Activating windows sampled uniformly per latent (split into quantiles).
    #[arg(long, default_value_t = 50)]
    pub samples: usize,
    /// Quantile bins of the samples.
    #[arg(long, default_value_t = 10)]
    pub quantiles: usize,
    /// Random windows kept (with every latent's activations).
    #[arg(long, default_value_t = 64)]
    pub random: usize,
    /// Seed of the sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Only these shards, as START..END (for a job array; merge the parts with --merge).
    #[arg(long)]
    pub shards: Option<String>,
    /// Merge summaries written by earlier runs instead of reading a cache.
    #[arg(long, num_args = 1.., conflicts_with_all = ["cache", "sae"])]
    pub merge: Vec<PathBuf>,
    /// Compute device.
    #[arg(long, default_value = "cpu")]
    pub device: ComputeDevice,
    /// Output: the full summary as JSON (mergeable); a CSV with one row per latent
    /// (latent, frequency, mean, mean_when_active, max) is written beside it.
    #[arg(long)]
    pub out: PathBuf,
}

fn parse_range(s: &str) -> anyhow::Result<std::ops::Range<usize>> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| anyhow::anyhow!("--shards `{s}`: expected START..END"))?;
    Ok(a.parse()?..b.parse()?)
}

/// Runs `latent-stats`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let _lock = sae_core::lock::OutputLock::for_file(&args.out)?;
    let stats = if !args.merge.is_empty() {
        let mut it = args.merge.iter();
        let first = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("nothing to merge"))?;
        let mut acc = LatentStats::load(first)?;
        for p in it {
            acc.merge(LatentStats::load(p)?)?;
        }
        acc
    } else {
        let (Some(cache), Some(sae)) = (&args.cache, &args.sae) else {
            anyhow::bail!("--cache and --sae are required without --merge");
        };
        let cache = ActivationCacheDir::open(cache)?;
        let device = args.device.burn_device()?;
        let sae = sae.load(&sae_core::HubClient::from_env(), &device)?;
        let latents = parse_latents(&args.latents, sae.d_sae())?
            .unwrap_or_else(|| (0..sae.d_sae()).collect());
        let cfg = StatsConfig {
            k: args.k,
            buffer: args.buffer,
            no_overlap: args.no_overlap,
            n_samples: args.samples,
            n_quantiles: args.quantiles,
            n_random: args.random,
            seed: args.seed,
        };
        let range = args.shards.as_deref().map(parse_range).transpose()?;
        gather_from_cache(&cache, &sae, &latents, cfg, range, true)?
    };
    let csv = stats.save_with_csv(&args.out)?;
    eprintln!(
        "{} latents over {} tokens → {} and {}",
        stats.latents.len(),
        stats.n_tokens,
        args.out.display(),
        csv.display()
    );
    Ok(())
}

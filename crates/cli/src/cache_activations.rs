//! `sae-geometry cache-activations`.

use std::path::PathBuf;

use activation_store::ActivationDtype;
use activation_store::cache::{CacheConfig, CacheRunOptions, cache_activations};

use super::corpus_args::{CorpusArgs, WindowArgs};
use super::model_args::ModelArgs;

/// Arguments of `cache-activations`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The corpus.
    #[command(flatten)]
    pub corpus: CorpusArgs,
    /// Windows and batching.
    #[command(flatten)]
    pub windows: WindowArgs,
    /// Windows per shard file.
    #[arg(long, default_value_t = 256)]
    pub sequences_per_shard: usize,
    /// Stop after this many tokens (rounded up to whole windows); default: the whole corpus.
    #[arg(long)]
    pub max_tokens: Option<u64>,
    /// The dtype activations are stored in (SAELens's `dtype`): float32 (as computed), or
    /// bfloat16 / float16 to halve the cache (each value rounded to nearest: relative error at
    /// most 2^-8 ≈ 0.4 % in bfloat16, 2^-11 ≈ 0.05 % in float16). float16 holds at most ±65504:
    /// a larger activation stops the run with an error naming it; use bfloat16 then. Readers get
    /// float32 back.
    #[arg(long, default_value = "float32")]
    pub dtype: ActivationDtype,
    /// Stop after writing this many new shards (time-limited jobs; rerun to continue).
    #[arg(long)]
    pub stop_after_shards: Option<usize>,
    /// The cache directory: manifest.json and shard-NNNNN.safetensors. An interrupted run
    /// resumes where it stopped when given the same directory and flags.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `cache-activations`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (model, tok) = args.model.load()?;
    let source = args.corpus.source(args.model.offline)?;
    let cfg = args.windows.store_config();
    let max_sequences = args.max_tokens.map(|t| t.div_ceil(cfg.context_size as u64));
    let opts = CacheRunOptions {
        stop_after_new_shards: args.stop_after_shards,
        progress: true,
    };
    let started = std::time::Instant::now();
    let m = cache_activations(
        &model,
        &args.model.model.to_string(),
        &tok,
        source,
        &cfg,
        &CacheConfig::new(args.sequences_per_shard)
            .max_sequences(max_sequences)
            .dtype(args.dtype),
        &args.out,
        &opts,
    )?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{} shards, {} tokens ({}) in {:.1}s → {}",
        m.shards.len(),
        m.n_tokens,
        if m.complete {
            "complete"
        } else {
            "partial: rerun to continue"
        },
        secs,
        args.out.display()
    );
    Ok(())
}

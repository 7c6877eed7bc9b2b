//! `sae-geometry eval-sae`: how well SAEs stand in for the activations they reconstruct, by
//! SAELens's evaluation definitions, with each SAE spliced into the model.

use std::io::Write;
use std::path::PathBuf;

use activation_store::StoreConfig;
use activation_store::eval::{
    CSV_COLUMNS, EvalConfig, SaeEvaluation, evaluate_sae, sample_windows,
};
use anyhow::Context;
use gpt2_gemma_models::LanguageModel;
use sae_core::SaeSource;

use super::corpus_args::CorpusArgs;
use super::model_args::ModelArgs;

/// Arguments of `eval-sae`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model the SAEs read.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The SAEs (directories or RELEASE/SAE_ID); repeat the flag for several (e.g. a family of
    /// widths), each evaluated on the same windows.
    #[arg(long, required = true)]
    pub sae: Vec<SaeSource>,
    /// The text the windows come from.
    #[command(flatten)]
    pub corpus: CorpusArgs,
    /// Windows evaluated.
    #[arg(long, default_value_t = 64)]
    pub windows: usize,
    /// Keep one window in this many, so that the windows span more of the corpus (a book is
    /// thousands of windows long; firing densities from one book's opening undercount).
    #[arg(long, default_value_t = 1)]
    pub every: usize,
    /// Tokens per window (default: the first SAE's metadata.context_size).
    #[arg(long)]
    pub context_size: Option<usize>,
    /// Windows per forward pass (memory: batch × context × vocab floats for the logits).
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// A latent firing on more than this fraction of tokens counts as dense.
    #[arg(long, default_value_t = 0.1)]
    pub dense_threshold: f64,
    /// Keep BOS/EOS/pad in the metrics and splice the SAE there too (SAELens leaves them out).
    #[arg(long)]
    pub include_special_tokens: bool,
    /// Output directory: eval.csv (one row per SAE), eval.json (every metric, with per-latent
    /// feature density), feature_density_{i}.npy (float32, one per SAE in flag order).
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `eval-sae`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (model, tok) = args.model.load()?;
    let hub = args.model.hub();
    let saes = args.model.load_saes(&args.sae, &model.device())?;
    let (first, _) = saes.first().context("no --sae given")?;
    let store = StoreConfig::from_sae(first.config(), args.context_size)?;
    let source = args.corpus.source(hub.is_offline())?;
    let windows = sample_windows(source, &tok, &store, args.windows, args.every)?;
    let config = EvalConfig {
        batch_size: args.batch_size,
        ignore_tokens: if args.include_special_tokens {
            Vec::new()
        } else {
            tok.special_ids()
        },
        dense_threshold: args.dense_threshold,
        progress: true,
    };
    std::fs::create_dir_all(&args.out)?;
    let mut csv = sae_core::atomic::AtomicFile::create(args.out.join("eval.csv"))?;
    writeln!(csv, "{CSV_COLUMNS}")?;
    let mut all = Vec::new();
    for (i, (src, (sae, hook))) in args.sae.iter().zip(&saes).enumerate() {
        let hook = *hook;
        let t0 = std::time::Instant::now();
        let ev: SaeEvaluation = evaluate_sae(&model, sae, hook, &windows, &config)
            .with_context(|| format!("evaluating {src}"))?;
        eprintln!(
            "{src}: CE recovered {:.4} (clean {:.3}, SAE {:.3}, zero {:.3}), KL score {:.4}, EV {:.4}, L0 {:.1}, dead {}, dense {} [{:.1}s]",
            ev.ce_loss_recovered,
            ev.ce_clean,
            ev.ce_with_sae,
            ev.ce_zero_ablation,
            ev.kl_div_score,
            ev.explained_variance,
            ev.l0,
            ev.dead_latents,
            ev.dense_latents,
            t0.elapsed().as_secs_f64()
        );
        writeln!(csv, "{}", ev.csv_row(&src.to_string(), hook, sae.d_sae()))?;
        let density: Vec<f32> = ev.feature_density.iter().map(|d| *d as f32).collect();
        sae_core::npy::write_f32(
            args.out.join(format!("feature_density_{i}.npy")),
            &[density.len()],
            &density,
        )?;
        all.push(serde_json::json!({
            "sae": src.to_string(),
            "hook": hook.to_string(),
            "d_sae": sae.d_sae(),
            "metrics": ev,
        }));
    }
    csv.commit()?;
    let meta = serde_json::json!({
        "model": args.model.model.to_string(),
        "windows": windows.len(),
        "every": args.every.max(1),
        "context_size": store.context_size,
        "ignore_tokens": config.ignore_tokens,
        "dense_threshold": config.dense_threshold,
        "saes": all,
    });
    sae_core::atomic::write(
        args.out.join("eval.json"),
        serde_json::to_string_pretty(&meta)?,
    )?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

//! `sae-geometry activation-dtypes`: what storing a model's activations in bfloat16 or float16
//! (`cache-activations --dtype`) costs, measured on the model itself at each hook asked for.

use std::io::Write;
use std::path::PathBuf;

use activation_store::eval::{EvalConfig, sample_windows};
use activation_store::{ActivationDtype, DtypeEvaluation, StoreConfig, evaluate_activation_dtype};
use anyhow::Context;
use gpt2_gemma_models::HookPoint;

use super::corpus_args::CorpusArgs;
use super::model_args::ModelArgs;

/// Arguments of `activation-dtypes`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The hooks measured (TransformerLens names); repeat the flag for several.
    #[arg(long, required = true)]
    pub hook: Vec<HookPoint>,
    /// The dtypes measured; repeat the flag for several (float32 is the reference and always
    /// costs nothing).
    #[arg(long, default_values_t = [ActivationDtype::Bf16, ActivationDtype::F16])]
    pub dtype: Vec<ActivationDtype>,
    /// The text the windows come from.
    #[command(flatten)]
    pub corpus: CorpusArgs,
    /// Windows measured.
    #[arg(long, default_value_t = 32)]
    pub windows: usize,
    /// Keep one window in this many (windows spread over more of the corpus).
    #[arg(long, default_value_t = 1)]
    pub every: usize,
    /// Tokens per window.
    #[arg(long, default_value_t = 128)]
    pub context_size: usize,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Output directory: activation_dtypes.csv (one row per hook and dtype) and
    /// activation_dtypes.json (the same, with the run's settings).
    #[arg(long)]
    pub out: PathBuf,
}

/// The table's header.
pub const CSV_COLUMNS: &str = "hook,dtype,n_positions,n_predictions,relative_error,max_position_relative_error,max_abs_error,max_abs_activation,n_out_of_range,ce_clean,ce_rounded,kl,top1_agreement";

fn csv_row(e: &DtypeEvaluation) -> String {
    format!(
        "{},{},{},{},{},{},{},{},{},{},{},{},{}",
        e.hook,
        e.dtype,
        e.n_positions,
        e.n_predictions,
        e.relative_error,
        e.max_position_relative_error,
        e.max_abs_error,
        e.max_abs_activation,
        e.n_out_of_range,
        e.ce_clean,
        e.ce_rounded,
        e.kl,
        e.top1_agreement
    )
}

/// Runs `activation-dtypes`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (model, tok) = args.model.load()?;
    let first = *args.hook.first().context("no --hook given")?;
    let store = StoreConfig::new(first, args.context_size);
    let source = args.corpus.source(args.model.hub().is_offline())?;
    let windows = sample_windows(source, &tok, &store, args.windows, args.every)?;
    let config = EvalConfig {
        batch_size: args.batch_size,
        ignore_tokens: tok.special_ids(),
        progress: true,
        ..EvalConfig::default()
    };
    std::fs::create_dir_all(&args.out)?;
    let mut csv = sae_core::atomic::AtomicFile::create(args.out.join("activation_dtypes.csv"))?;
    writeln!(csv, "{CSV_COLUMNS}")?;
    let mut all = Vec::new();
    for &hook in &args.hook {
        for &dtype in &args.dtype {
            let e = evaluate_activation_dtype(&model, hook, dtype, &windows, &config)
                .with_context(|| format!("measuring {dtype} at {hook}"))?;
            eprintln!(
                "{hook} {dtype}: relative error {:.3e} (worst position {:.3e}), max |x| {:.1}, {} out of range; CE {:.4} → {:.4}, KL {:.3e}, top-1 agreement {:.4}",
                e.relative_error,
                e.max_position_relative_error,
                e.max_abs_activation,
                e.n_out_of_range,
                e.ce_clean,
                e.ce_rounded,
                e.kl,
                e.top1_agreement
            );
            writeln!(csv, "{}", csv_row(&e))?;
            all.push(e);
        }
    }
    csv.commit()?;
    let meta = serde_json::json!({
        "model": args.model.model.to_string(),
        "windows": windows.len(),
        "every": args.every.max(1),
        "context_size": args.context_size,
        "ignore_tokens": config.ignore_tokens,
        "results": all,
    });
    sae_core::atomic::write(
        args.out.join("activation_dtypes.json"),
        serde_json::to_string_pretty(&meta)?,
    )?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

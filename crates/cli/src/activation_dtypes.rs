//! `sae-geometry activation-dtypes`: what storing a model's activations in bfloat16 or float16
//! (`cache-activations --dtype`) costs, measured on the model itself at each hook asked for.

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
    /// activation_dtypes.json (the same, with the run's settings). Each result is written when
    /// measured; rerunning into the same directory measures only what is missing.
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

/// Runs `activation-dtypes`. Each (hook, dtype) result is written as soon as it is measured;
/// a rerun with the same settings into the same directory keeps the results already there and
/// measures only the rest (other settings are refused, naming each difference).
pub fn run(args: Args) -> anyhow::Result<()> {
    let (model, tok) = args.model.load()?;
    let first = *args.hook.first().context("no --hook given")?;
    let store = StoreConfig::new(first, args.context_size);
    let source = args.corpus.source(args.model.hub().is_offline())?;
    let dataset = source.describe();
    let windows = sample_windows(source, &tok, &store, args.windows, args.every)?;
    let config = EvalConfig {
        batch_size: args.batch_size,
        ignore_tokens: tok.special_ids(),
        progress: true,
        ..EvalConfig::default()
    };
    std::fs::create_dir_all(&args.out)?;
    let _lock = sae_core::lock::OutputLock::acquire(&args.out)?;
    let settings = serde_json::json!({
        "model": args.model.model.to_string(),
        "weight_dtype": args.model.weight_dtype.as_str(),
        "dataset": dataset,
        "windows": windows.len(),
        "every": args.every.max(1),
        "context_size": args.context_size,
        "ignore_tokens": config.ignore_tokens,
    });
    let json_path = args.out.join("activation_dtypes.json");
    let mut done: Vec<DtypeEvaluation> = match std::fs::read(&json_path) {
        Ok(bytes) => {
            let recorded: serde_json::Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", json_path.display()))?;
            let differences = sae_core::diff::json_differences(&recorded["settings"], &settings);
            if !differences.is_empty() {
                anyhow::bail!(
                    "{} holds results for other settings ({}); use another --out",
                    json_path.display(),
                    differences.join("; ")
                );
            }
            serde_json::from_value(recorded["results"].clone())
                .with_context(|| format!("reading the results in {}", json_path.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", json_path.display())),
    };
    let write = |results: &[DtypeEvaluation]| -> anyhow::Result<()> {
        let mut csv = format!("{CSV_COLUMNS}\n");
        for e in results {
            csv.push_str(&csv_row(e));
            csv.push('\n');
        }
        sae_core::atomic::write(args.out.join("activation_dtypes.csv"), csv)?;
        let meta = serde_json::json!({ "settings": settings, "results": results });
        sae_core::atomic::write(&json_path, serde_json::to_string_pretty(&meta)?)?;
        Ok(())
    };
    for &hook in &args.hook {
        for &dtype in &args.dtype {
            if done.iter().any(|e| e.hook == hook && e.dtype == dtype) {
                eprintln!("{hook} {dtype}: already measured");
                continue;
            }
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
            done.push(e);
            write(&done)?;
        }
    }
    write(&done)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

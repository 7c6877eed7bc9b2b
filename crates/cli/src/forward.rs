//! `sae-geometry forward`.

use std::path::PathBuf;

use anyhow::Context;
use gpt2_gemma_models::{Activation, BosPolicy, CacheFilter, HookPoint, LanguageModel};
use sae_core::device::tensor_to_vec;
use sae_core::npy::write_f32;

use super::model_args::ModelArgs;

/// Arguments of `forward`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["tokens", "text"])))]
pub struct Args {
    /// The model.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Token ids: a JSON file holding an array of ids or an array of equal-length arrays.
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    /// A text to tokenize (BOS prepended unless --no-bos).
    #[arg(long)]
    pub text: Option<String>,
    /// Hook points to save, comma-separated TransformerLens names (e.g.
    /// blocks.8.hook_resid_pre,blocks.0.attn.hook_pattern).
    #[arg(long, value_delimiter = ',', required = true)]
    pub hooks: Vec<HookPoint>,
    /// Stop before this block (exclusive, as TransformerLens); no logits are written then.
    #[arg(long)]
    pub stop_at_layer: Option<usize>,
    /// Do not prepend BOS to --text.
    #[arg(long)]
    pub no_bos: bool,
    /// Output directory: `<hook>.npy` (float32) per hook and logits.npy when the run reaches the end.
    #[arg(long)]
    pub out: PathBuf,
}

fn read_tokens(path: &PathBuf) -> anyhow::Result<Vec<Vec<i64>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let as_row = |v: &serde_json::Value| -> Option<Vec<i64>> {
        v.as_array()?
            .iter()
            .map(serde_json::Value::as_i64)
            .collect()
    };
    if let Some(row) = as_row(&v) {
        return Ok(vec![row]);
    }
    v.as_array()
        .and_then(|rows| rows.iter().map(as_row).collect::<Option<Vec<_>>>())
        .with_context(|| format!("{}: expected [ids] or [[ids], …]", path.display()))
}

/// Runs `forward`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (model, tok) = args.model.load()?;
    let rows: Vec<Vec<i64>> = match (&args.tokens, &args.text) {
        (Some(p), _) => read_tokens(p)?,
        (None, Some(t)) => {
            let bos = if args.no_bos {
                BosPolicy::Keep
            } else {
                BosPolicy::Prepend
            };
            vec![
                tok.encode_with(t, bos)?
                    .into_iter()
                    .map(i64::from)
                    .collect(),
            ]
        }
        (None, None) => anyhow::bail!("pass --tokens or --text"),
    };
    let width = rows[0].len();
    anyhow::ensure!(
        rows.iter().all(|r| r.len() == width),
        "token rows must have equal lengths"
    );
    let b = rows.len();
    let dev = model.device();
    let tokens = sae_core::device::int_tensor_from_vec(rows.concat(), [b, width], &dev);
    let (logits, cache) = model.run_with_cache(
        tokens,
        CacheFilter::Only(args.hooks.clone()),
        args.stop_at_layer,
    )?;
    std::fs::create_dir_all(&args.out)?;
    for h in &args.hooks {
        let Some(act) = cache.get(*h) else {
            tracing::warn!(hook = %h, "not computed (past --stop-at-layer?)");
            continue;
        };
        let shape = act.dims();
        let data = match act {
            Activation::Rank3(t) => tensor_to_vec(t.clone())?,
            Activation::Rank4(t) => tensor_to_vec(t.clone())?,
            _ => anyhow::bail!("unsupported activation rank at {h}"),
        };
        let path = args.out.join(format!("{h}.npy"));
        write_f32(&path, &shape, &data)?;
        tracing::info!(hook = %h, ?shape, path = %path.display(), "wrote");
    }
    if let Some(l) = logits {
        let shape = l.dims().to_vec();
        write_f32(args.out.join("logits.npy"), &shape, &tensor_to_vec(l)?)?;
    }
    Ok(())
}

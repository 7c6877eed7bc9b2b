//! `sae-geometry logit-lens`.

use std::io::Write;
use std::path::PathBuf;

use gpt2_gemma_models::LanguageModel;
use latent_geometry::{LogitLensConfig, logit_lens};
use sae_core::SaeSource;
use sae_core::latents::parse_latents;

use super::model_args::ModelArgs;

/// Arguments of `logit-lens`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model whose unembedding to use.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The SAE: a directory or RELEASE/SAE_ID.
    #[arg(long)]
    pub sae: SaeSource,
    /// Latents: `all`, or a list of indices and ranges such as `0-99,120`.
    #[arg(long, default_value = "all")]
    pub latents: String,
    /// Tokens kept at each end.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Latents per batch (memory on a GPU: batch × vocab floats; on the CPU, tiles of at most
    /// 32 M floats).
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Output: JSON Lines, one object per latent with `latent`, `top` and `bottom`
    /// ([{id, token, value}]).
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `logit-lens`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (model, tok) = args.model.load()?;
    let sae = args.model.load_residual_sae(&args.sae, &model)?;
    let latents = parse_latents(&args.latents, sae.d_sae())?;
    let res = logit_lens(
        &sae.w_dec(),
        &model.unembed(),
        latents.as_deref(),
        LogitLensConfig {
            k: args.k,
            batch: args.batch,
        },
    )?;
    let mut w = sae_core::atomic::AtomicFile::create(&args.out)?;
    let side = |ids: &[u32], vals: &[f32]| -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::Value::Array(
            ids.iter()
                .zip(vals)
                .map(|(&id, &v)| {
                    Ok(serde_json::json!({ "id": id, "token": tok.decode(&[id])?, "value": v }))
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
        ))
    };
    for r in &res {
        let obj = serde_json::json!({
            "latent": r.latent,
            "top": side(&r.top_ids, &r.top_values)?,
            "bottom": side(&r.bottom_ids, &r.bottom_values)?,
        });
        writeln!(w, "{obj}")?;
    }
    w.commit()?;
    tracing::info!(latents = res.len(), out = %args.out.display(), "wrote the logit lens");
    Ok(())
}

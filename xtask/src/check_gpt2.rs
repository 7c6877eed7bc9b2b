//! `cargo xtask check-gpt2 DIR`: the tiny-fixture parity checks on a full-size random-weight GPT-2
//! small written by `crates/models/tests/fixtures/gpt2-tiny/gen_fixtures.py --full-size DIR`
//! (too big to commit, so not in CI).

use std::path::PathBuf;

use anyhow::Context;
use gpt2_gemma_models::LanguageModel;
use gpt2_gemma_models::{Activation, CacheFilter, Gpt2, HookPoint, Processing};
use sae_core::device::{cpu, int_tensor_from_vec, tensor_to_vec};
use sae_core::safetensors_io::SafetensorsFile;

/// Arguments of `check-gpt2`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The directory written by `gen_fixtures.py --full-size`.
    pub(crate) dir: PathBuf,
    /// Tolerance, relative to each tensor's largest magnitude (floored at 10, so small tensors
    /// get 1e-4 absolute): float32 rounding grows with the residual stream's norm, which reaches
    /// ~120 in late layers of a full-size model.
    #[arg(long, default_value_t = 1e-5)]
    pub(crate) tol: f32,
}

/// max |a − b| / max(10, max |b|) (infinities from attention masks compare equal).
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = b
        .iter()
        .filter(|v| v.is_finite())
        .fold(10.0f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .map(|(x, y)| if x == y { 0.0 } else { (x - y).abs() })
        .fold(0.0, f32::max)
        / scale
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let io = SafetensorsFile::open(args.dir.join("io.safetensors"))?.read_all()?;
    let tok = &io["tokens"];
    let ids: Vec<i64> = tok.data.iter().map(|v| *v as i64).collect();
    let tokens = || int_tensor_from_vec(ids.clone(), [tok.shape[0], tok.shape[1]], &cpu());
    let mut worst = 0.0f32;
    for (prefix, processing) in [
        ("tl", Processing::TransformerLens),
        ("tlraw", Processing::None),
    ] {
        let model = Gpt2::load(args.dir.join("model"), processing, &cpu()).context("loading")?;
        let n_layers = model.config().n_layer;
        let (logits, cache) = model.run_with_cache(tokens(), CacheFilter::All, None)?;
        let logits = tensor_to_vec(logits.context("no logits")?)?;
        let d = max_diff(&logits, &io[&format!("{prefix}.logits")].data);
        println!("{prefix}.logits: max relative |Δ| = {d:.2e}");
        worst = worst.max(d);
        let mut hook_worst = (0.0f32, String::new());
        for p in HookPoint::all(n_layers) {
            let key = format!("{prefix}.{p}");
            let (Some(r), Some(a)) = (io.get(&key), cache.get(p)) else {
                anyhow::bail!("{key} missing");
            };
            let ours = match a {
                Activation::Rank3(t) => tensor_to_vec(t.clone())?,
                Activation::Rank4(t) => tensor_to_vec(t.clone())?,
                _ => anyhow::bail!("rank"),
            };
            let d = max_diff(&ours, &r.data);
            if d > hook_worst.0 {
                hook_worst = (d, key);
            }
        }
        println!(
            "{prefix}: worst hook {} max relative |Δ| = {:.2e}",
            hook_worst.1, hook_worst.0
        );
        worst = worst.max(hook_worst.0);
        if processing == Processing::None {
            let hf = max_diff(&logits, &io["hf.logits"].data);
            println!("hf.logits vs ours (unprocessed): max relative |Δ| = {hf:.2e}");
            worst = worst.max(hf);
        }
    }
    println!(
        "worst max relative |Δ| = {worst:.2e} (tolerance {:.0e})",
        args.tol
    );
    anyhow::ensure!(worst <= args.tol, "full-size GPT-2 parity failed");
    Ok(())
}

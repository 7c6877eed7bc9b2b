//! `cargo xtask check-gemma-gguf REF_DIR --gguf FILE`: gemma-3-270m from GGUF against
//! transformers' loading of the same file (reference from
//! `crates/models/tests/fixtures/gemma3-gguf/gen_reference.py REF_DIR`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use gpt2_gemma_models::LanguageModel;
use gpt2_gemma_models::gguf::GgufFile;
use gpt2_gemma_models::{CacheFilter, Gemma, GenerateConfig, HookPoint, Hooks, generate};
use sae_core::device::{cpu, int_tensor_from_vec, tensor_to_vec};
use sae_core::safetensors_io::SafetensorsFile;

/// Arguments of `check-gemma-gguf`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The directory written by gen_reference.py.
    pub(crate) reference: PathBuf,
    /// The GGUF file.
    #[arg(long)]
    pub(crate) gguf: PathBuf,
    /// Tolerance relative to each tensor's largest magnitude.
    #[arg(long, default_value_t = 1e-3)]
    pub(crate) tol: f32,
}

fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
        / scale
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let file = GgufFile::open(&args.gguf)?;
    let model = Gemma::load_gguf(&file, &cpu()).context("loading the GGUF")?;
    println!(
        "loaded {} in {:.2} s",
        args.gguf.display(),
        t0.elapsed().as_secs_f64()
    );
    let reference =
        SafetensorsFile::open(args.reference.join("reference.safetensors"))?.read_all()?;
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        args.reference.join("reference.json"),
    )?)?;
    let n_layers = model.config().num_hidden_layers;
    let mut worst = 0.0f32;
    for (i, p) in meta["prompts"]
        .as_array()
        .context("prompts")?
        .iter()
        .enumerate()
    {
        let ids: Vec<i64> = p["ids"]
            .as_array()
            .context("ids")?
            .iter()
            .filter_map(serde_json::Value::as_i64)
            .collect();
        let n = ids.len();
        let tokens = int_tensor_from_vec(ids, [1, n], &cpu());
        let filter = CacheFilter::Only((0..n_layers).map(HookPoint::ResidPre).collect());
        let t0 = Instant::now();
        let (logits, cache) = model.run_with_cache(tokens, filter, None)?;
        let secs = t0.elapsed().as_secs_f64();
        let logits = logits.context("logits")?;
        let vocab = model.config().vocab_size;
        let last = tensor_to_vec(logits.narrow(1, n - 1, 1).reshape([vocab]))?;
        let d = rel_diff(&last, &reference[&format!("logits_last.{i}")].data);
        let mut hw = 0.0f32;
        for l in 0..n_layers {
            let ours = tensor_to_vec(cache.get3(HookPoint::ResidPre(l)).context("hook")?)?;
            hw = hw.max(rel_diff(&ours, &reference[&format!("hidden.{i}.{l}")].data));
        }
        let mut top: Vec<usize> = (0..vocab).collect();
        top.sort_by(|&a, &b| last[b].total_cmp(&last[a]));
        let top5: Vec<u64> = top[..5].iter().map(|&t| t as u64).collect();
        let want: Vec<u64> = p["top5"]
            .as_array()
            .context("top5")?
            .iter()
            .filter_map(serde_json::Value::as_u64)
            .collect();
        println!(
            "prompt {i} ({n} tokens, {secs:.2} s): last logits rel |Δ| {d:.2e}; resid_pre rel |Δ| (worst layer) {hw:.2e}; top-5 {:?} (reference {:?}) {:?}",
            top5, want, p["top5_str"]
        );
        worst = worst.max(d).max(hw);
        anyhow::ensure!(top5 == want, "top-5 differs");
    }
    let prompt: Vec<u32> = meta["prompts"][0]["ids"]
        .as_array()
        .context("ids")?
        .iter()
        .filter_map(|v| v.as_u64())
        .map(|v| v as u32)
        .collect();
    let want: Vec<u32> = meta["greedy_continuation"]
        .as_array()
        .context("greedy")?
        .iter()
        .filter_map(|v| v.as_u64())
        .map(|v| v as u32)
        .collect();
    let t0 = Instant::now();
    let got = generate(
        &model,
        &[prompt],
        &GenerateConfig::greedy(want.len(), None),
        &mut Hooks::new(),
    )?;
    println!(
        "greedy {} tokens in {:.2} s: equal to transformers: {}",
        want.len(),
        t0.elapsed().as_secs_f64(),
        got[0] == want
    );
    println!(
        "worst relative |Δ| = {worst:.2e} (tolerance {:.0e})",
        args.tol
    );
    anyhow::ensure!(
        got[0] == want,
        "greedy generation differs: {:?} vs {:?}",
        got[0],
        want
    );
    anyhow::ensure!(worst <= args.tol, "gemma GGUF parity failed");
    Ok(())
}

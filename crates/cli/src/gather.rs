//! One pass of a model over a corpus to gather latent statistics, shared by the commands that
//! need examples (`autointerp`, `dashboard`).

use activation_store::{ActivationStore, LatentStats, StatsConfig, StoreConfig, gather_from_model};
use gpt2_gemma_models::{AnyModel, AnyTokenizer};

use super::corpus_args::CorpusArgs;

/// A store configuration for reading windows in corpus order from an SAE's metadata (hook,
/// context, BOS), `batch` windows per forward pass; the training mixing buffer is kept minimal.
pub fn reading_config(
    sae: &sae_core::SaeConfig,
    context_size: Option<usize>,
    batch: usize,
) -> anyhow::Result<StoreConfig> {
    let mut c = StoreConfig::from_sae(sae, context_size)?;
    c.store_batch_size_prompts = batch;
    c.n_batches_in_buffer = 1;
    c.train_batch_size_tokens = c.context_size * batch;
    Ok(c)
}

/// Statistics of `latents` over `total_tokens` tokens of the corpus, with a progress bar.
#[allow(clippy::too_many_arguments)]
pub fn gather(
    model: &AnyModel,
    tok: &AnyTokenizer,
    sae: &sae_core::Sae,
    corpus: &CorpusArgs,
    offline: bool,
    store_cfg: &StoreConfig,
    latents: &[usize],
    stats_cfg: StatsConfig,
    total_tokens: u64,
) -> anyhow::Result<LatentStats> {
    let source = corpus.source(offline)?;
    let mut store = ActivationStore::new(model, tok, source, store_cfg.clone())?;
    let t0 = std::time::Instant::now();
    let s = gather_from_model(&mut store, sae, latents, stats_cfg, total_tokens, true)?;
    eprintln!(
        "gathered {} tokens at {} in {:.1}s",
        s.n_tokens,
        store_cfg.hook,
        t0.elapsed().as_secs_f64()
    );
    Ok(s)
}

/// The corpus sequences with global indices in `wanted`, replayed exactly as [`gather`] saw
/// them (same source, packing and batching; tokenisation only, no model pass).
pub fn replay_sequences(
    model: &AnyModel,
    tok: &AnyTokenizer,
    corpus: &CorpusArgs,
    offline: bool,
    store_cfg: &StoreConfig,
    wanted: &std::collections::BTreeSet<u64>,
) -> anyhow::Result<autointerp::oracle::Contexts> {
    let mut out = autointerp::oracle::Contexts::new();
    let Some(&last) = wanted.last() else {
        return Ok(out);
    };
    let source = corpus.source(offline)?;
    let mut store = ActivationStore::new(model, tok, source, store_cfg.clone())?;
    let mut seq = 0u64;
    while seq <= last {
        let windows = store.get_batch_tokens()?;
        if windows.is_empty() {
            anyhow::bail!("the corpus ended at sequence {seq}, before sequence {last}");
        }
        for w in windows {
            if wanted.contains(&seq) {
                out.insert(seq, w);
            }
            seq += 1;
        }
    }
    Ok(out)
}

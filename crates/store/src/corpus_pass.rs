//! One pass of a model over a corpus in corpus order — the statistics the examples of autointerp
//! and the dashboards come from — and the replay of chosen sequences exactly as that pass saw
//! them.

use std::collections::{BTreeSet, HashMap};

use gpt2_gemma_models::LanguageModel;
use gpt2_gemma_models::source::AnyTokenizer;

use crate::corpus::TextSource;
use crate::error::{Result, StoreError};
use crate::stats::{LatentStats, StatsConfig, gather_from_model};
use crate::store::{ActivationStore, StoreConfig};

impl StoreConfig {
    /// A configuration for reading windows in corpus order from an SAE's metadata (hook,
    /// context, BOS), `batch` windows per forward pass, with the training mixing buffer kept
    /// minimal (one batch): what [`gather_stats`] and [`replay_sequences`] read with.
    pub fn for_reading(
        sae: &sae_core::SaeConfig,
        context_size: Option<usize>,
        batch: usize,
    ) -> Result<Self> {
        let mut c = Self::from_sae(sae, context_size)?;
        c.store_batch_size_prompts = batch.max(1);
        c.n_batches_in_buffer = 1;
        c.train_batch_size_tokens = c.context_size * c.store_batch_size_prompts;
        Ok(c)
    }
}

/// Statistics of `latents` of `sae` over the first `total_tokens` tokens of `source`, read as
/// `store` says (see [`StoreConfig::for_reading`]); a progress bar when `progress`.
#[allow(clippy::too_many_arguments)]
pub fn gather_stats<M: LanguageModel + ?Sized>(
    model: &M,
    tokenizer: &AnyTokenizer,
    sae: &sae_core::Sae,
    source: TextSource,
    store: &StoreConfig,
    latents: &[usize],
    stats: StatsConfig,
    total_tokens: u64,
    progress: bool,
) -> Result<LatentStats> {
    let mut s = ActivationStore::new(model, tokenizer, source, store.clone())?;
    let t0 = std::time::Instant::now();
    let out = gather_from_model(&mut s, sae, latents, stats, total_tokens, progress)?;
    tracing::info!(
        tokens = out.n_tokens,
        hook = %store.hook,
        seconds = t0.elapsed().as_secs_f64(),
        "gathered latent statistics"
    );
    Ok(out)
}

/// The corpus sequences with global indices in `wanted`, replayed exactly as [`gather_stats`]
/// saw them with the same `source` and `store` (same packing and batching; tokenisation only,
/// no model pass).
///
/// # Errors
/// [`StoreError::InvalidOption`] when the corpus ends before the last wanted sequence.
pub fn replay_sequences<M: LanguageModel + ?Sized>(
    model: &M,
    tokenizer: &AnyTokenizer,
    source: TextSource,
    store: &StoreConfig,
    wanted: &BTreeSet<u64>,
) -> Result<HashMap<u64, Vec<u32>>> {
    let mut out = HashMap::new();
    let Some(&last) = wanted.last() else {
        return Ok(out);
    };
    let mut s = ActivationStore::new(model, tokenizer, source, store.clone())?;
    let mut seq = 0u64;
    while seq <= last {
        let windows = s.get_batch_tokens()?;
        if windows.is_empty() {
            return Err(StoreError::invalid(
                "replayed corpus",
                format!("at least {} sequences", last + 1),
                format!("the corpus ended at sequence {seq}"),
            ));
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

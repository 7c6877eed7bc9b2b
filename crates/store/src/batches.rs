//! Sources of training batches: live model activations or an activation cache.

use crate::cache::ActivationCacheDir;
use crate::error::Result;
use crate::mixing::MixingBuffer;
use crate::store::ActivationStore;
use gpt2_gemma_models::model::LanguageModel;

/// Something that yields `[rows, d_in]` row-major training batches.
pub trait BatchSource {
    /// Activation width.
    fn d_in(&self) -> usize;
    /// The next batch, or `None` when the data ran out.
    fn next_batch(&mut self) -> Result<Option<Vec<f32>>>;
}

impl<M: LanguageModel + ?Sized> BatchSource for ActivationStore<'_, M> {
    fn d_in(&self) -> usize {
        ActivationStore::d_in(self)
    }

    fn next_batch(&mut self) -> Result<Option<Vec<f32>>> {
        ActivationStore::next_batch(self).map(Some)
    }
}

/// Shuffled batches from a cache, shard after shard, through SAELens's mixing buffer.
pub struct CacheBatches<'c> {
    cache: &'c ActivationCacheDir,
    next_shard: usize,
    buffer: MixingBuffer,
    drained: std::collections::VecDeque<Vec<f32>>,
    epochs: usize,
    epoch: usize,
    finished: bool,
}

impl<'c> CacheBatches<'c> {
    /// Batches of `batch_rows` rows mixed in a buffer of `buffer_rows`, over `epochs` passes.
    pub fn new(
        cache: &'c ActivationCacheDir,
        batch_rows: usize,
        buffer_rows: usize,
        mix_fraction: f64,
        seed: u64,
        epochs: usize,
    ) -> Result<Self> {
        let d = cache.manifest().spec.d_in;
        Ok(Self {
            cache,
            next_shard: 0,
            buffer: MixingBuffer::new(
                d,
                buffer_rows.max(batch_rows),
                batch_rows,
                mix_fraction,
                seed,
            )?,
            drained: Default::default(),
            epochs: epochs.max(1),
            epoch: 0,
            finished: false,
        })
    }

    /// Rows per epoch.
    pub fn rows_per_epoch(&self) -> u64 {
        self.cache.manifest().n_tokens
    }
}

impl BatchSource for CacheBatches<'_> {
    fn d_in(&self) -> usize {
        self.cache.manifest().spec.d_in
    }

    fn next_batch(&mut self) -> Result<Option<Vec<f32>>> {
        loop {
            if let Some(b) = self.buffer.pop() {
                return Ok(Some(b));
            }
            if let Some(b) = self.drained.pop_front() {
                return Ok(Some(b));
            }
            if self.finished {
                return Ok(None);
            }
            if self.next_shard == self.cache.len() {
                self.epoch += 1;
                self.next_shard = 0;
                if self.epoch == self.epochs {
                    self.drained.extend(self.buffer.drain());
                    self.finished = true;
                    continue;
                }
            }
            let shard = self.cache.shard(self.next_shard)?;
            self.next_shard += 1;
            self.buffer.push(&shard.activations);
        }
    }
}

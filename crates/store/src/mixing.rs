//! SAELens's mixing buffer (sae_lens/training/mixing_buffer.py), seeded.
//!
//! Rows accumulate until the buffer holds `buffer_rows`; then the buffer is shuffled, a
//! `mix_fraction` of it is kept back to mix with later rows and the rest is served in batches of
//! `batch_rows`. With `mix_fraction = 0` rows pass through in order.

use std::collections::VecDeque;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::error::{Result, StoreError};

/// A shuffling buffer of `d`-wide rows.
#[derive(Debug)]
pub struct MixingBuffer {
    d: usize,
    buffer_rows: usize,
    batch_rows: usize,
    mix_fraction: f64,
    storage: Vec<f32>,
    ready: VecDeque<Vec<f32>>,
    rng: StdRng,
}

impl MixingBuffer {
    /// A buffer; `buffer_rows ≥ batch_rows` and `0 ≤ mix_fraction ≤ 1`, as SAELens checks.
    pub fn new(
        d: usize,
        buffer_rows: usize,
        batch_rows: usize,
        mix_fraction: f64,
        seed: u64,
    ) -> Result<Self> {
        if buffer_rows < batch_rows || batch_rows == 0 {
            return Err(StoreError::invalid(
                "mixing buffer size",
                format!("at least the batch size ({batch_rows} rows) and positive"),
                buffer_rows,
            ));
        }
        if !(0.0..=1.0).contains(&mix_fraction) {
            return Err(StoreError::invalid(
                "mix_fraction",
                "a number in [0, 1]",
                mix_fraction,
            ));
        }
        Ok(Self {
            d,
            buffer_rows,
            batch_rows,
            mix_fraction,
            storage: Vec::new(),
            ready: VecDeque::new(),
            rng: StdRng::seed_from_u64(seed),
        })
    }

    /// Rows held (not yet served).
    pub fn rows(&self) -> usize {
        self.storage.len() / self.d.max(1) + self.ready.len() * self.batch_rows
    }

    /// Adds rows (`len` a multiple of `d`).
    pub fn push(&mut self, rows: &[f32]) {
        self.storage.extend_from_slice(rows);
        let n = self.storage.len() / self.d;
        if n < self.buffer_rows {
            return;
        }
        if self.mix_fraction > 0.0 {
            let mut perm: Vec<usize> = (0..n).collect();
            perm.shuffle(&mut self.rng);
            let mut shuffled = Vec::with_capacity(self.storage.len());
            for &i in &perm {
                shuffled.extend_from_slice(&self.storage[i * self.d..(i + 1) * self.d]);
            }
            self.storage = shuffled;
        }
        // `int(buffer_size * mix_fraction)` rows stay for mixing; truncation as Python's int().
        let keep = (self.buffer_rows as f64 * self.mix_fraction) as usize;
        let to_serve = n.saturating_sub(keep);
        let n_batches = (to_serve / self.batch_rows).max(1);
        let cut = (n_batches * self.batch_rows).min(n);
        let rest = self.storage.split_off(cut * self.d);
        let serving = std::mem::replace(&mut self.storage, rest);
        for b in serving.chunks_exact(self.batch_rows * self.d) {
            self.ready.push_back(b.to_vec());
        }
    }

    /// The next full batch, if one is ready.
    pub fn pop(&mut self) -> Option<Vec<f32>> {
        self.ready.pop_front()
    }

    /// At the end of the data: the remaining whole batches, in order (as SAELens).
    pub fn drain(&mut self) -> Vec<Vec<f32>> {
        let mut out: Vec<Vec<f32>> = self.ready.drain(..).collect();
        let whole = self.storage.len() / (self.batch_rows * self.d);
        for b in
            self.storage[..whole * self.batch_rows * self.d].chunks_exact(self.batch_rows * self.d)
        {
            out.push(b.to_vec());
        }
        self.storage.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_every_row_once() {
        let mut m = MixingBuffer::new(1, 8, 2, 0.5, 3).unwrap();
        let mut served = Vec::new();
        for i in 0..40 {
            m.push(&[i as f32]);
            while let Some(b) = m.pop() {
                served.extend(b);
            }
        }
        for b in m.drain() {
            served.extend(b);
        }
        served.sort_by(f32::total_cmp);
        assert_eq!(served, (0..40).map(|i| i as f32).collect::<Vec<_>>());
    }

    #[test]
    fn passthrough_without_mixing() {
        let mut m = MixingBuffer::new(1, 4, 2, 0.0, 3).unwrap();
        let mut served = Vec::new();
        for i in 0..8 {
            m.push(&[i as f32]);
            while let Some(b) = m.pop() {
                served.extend(b);
            }
        }
        assert_eq!(served, (0..8).map(|i| i as f32).collect::<Vec<_>>());
    }
}

//! Next-token sampling with TransformerLens's semantics (`utils.sample_logits`).

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// How the next token is chosen.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Sampling {
    /// The most likely token (temperature 0).
    Greedy,
    /// Sample from softmax(logits / temperature − freq_penalty · counts), optionally restricted
    /// to the top k tokens or the top-p nucleus (top_k wins when both are set, as in
    /// TransformerLens).
    Sample(SampleConfig),
}

/// Parameters of [`Sampling::Sample`].
#[derive(Debug, Clone, PartialEq)]
pub struct SampleConfig {
    /// Softmax temperature (> 0).
    pub temperature: f32,
    /// Subtracted from a token's logit once per earlier occurrence in the sequence (prompt
    /// included), after the temperature division — TransformerLens's `freq_penalty`.
    pub freq_penalty: f32,
    /// Keep only the k most likely tokens.
    pub top_k: Option<usize>,
    /// Keep the smallest set of tokens whose probability reaches p.
    pub top_p: Option<f32>,
    /// RNG seed: the same seed gives the same tokens.
    pub seed: u64,
}

impl Default for SampleConfig {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            freq_penalty: 0.0,
            top_k: None,
            top_p: None,
            seed: 0,
        }
    }
}

/// A seeded sampler.
#[derive(Debug)]
pub struct Sampler {
    sampling: Sampling,
    rng: StdRng,
}

impl Sampler {
    /// A sampler; the RNG is seeded from the config (greedy uses none).
    pub fn new(sampling: Sampling) -> Self {
        let seed = match &sampling {
            Sampling::Sample(c) => c.seed,
            Sampling::Greedy => 0,
        };
        Self {
            sampling,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Chooses the next token from one row of logits, given the sequence so far.
    pub fn next_token(&mut self, logits: &mut [f32], sequence: &[u32]) -> u32 {
        match &self.sampling {
            Sampling::Greedy => argmax(logits),
            Sampling::Sample(c) => {
                let c = c.clone();
                apply_temperature_and_penalty(logits, sequence, c.temperature, c.freq_penalty);
                if let Some(k) = c.top_k {
                    keep_top_k(logits, k);
                } else if let Some(p) = c.top_p {
                    keep_top_p(logits, p);
                }
                sample_categorical(logits, self.rng.random::<f64>())
            }
        }
    }
}

/// Index of the largest value (the first one on ties, as torch's argmax).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// logits / temperature − freq_penalty · bincount(sequence).
pub fn apply_temperature_and_penalty(
    logits: &mut [f32],
    sequence: &[u32],
    temperature: f32,
    freq_penalty: f32,
) {
    let t = if temperature > 0.0 { temperature } else { 1.0 };
    logits.iter_mut().for_each(|l| *l /= t);
    if freq_penalty > 0.0 {
        for &tok in sequence {
            if let Some(l) = logits.get_mut(tok as usize) {
                *l -= freq_penalty;
            }
        }
    }
}

/// Sets every logit below the k-th largest to −∞.
pub fn keep_top_k(logits: &mut [f32], k: usize) {
    let k = k.clamp(1, logits.len());
    let mut sorted: Vec<f32> = logits.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let kth = sorted[k - 1];
    logits
        .iter_mut()
        .filter(|l| **l < kth)
        .for_each(|l| *l = f32::NEG_INFINITY);
}

/// Nucleus filtering: keeps the most likely tokens until their probability first exceeds p.
pub fn keep_top_p(logits: &mut [f32], p: f32) {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    let probs = softmax(logits);
    let mut cum = 0.0f64;
    let mut remove_from = logits.len();
    for (rank, &i) in idx.iter().enumerate() {
        cum += probs[i];
        if cum > f64::from(p) {
            remove_from = rank + 1; // the token that crosses p is kept
            break;
        }
    }
    for &i in &idx[remove_from.min(idx.len())..] {
        logits[i] = f32::NEG_INFINITY;
    }
}

fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|l| f64::from(l - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Inverse-CDF sampling from softmax(logits) with a uniform draw `u` in [0, 1).
pub fn sample_categorical(logits: &[f32], u: f64) -> u32 {
    let probs = softmax(logits);
    let mut cum = 0.0;
    let mut last = 0;
    for (i, p) in probs.iter().enumerate() {
        if *p > 0.0 {
            last = i;
            cum += p;
            if u < cum {
                return i as u32;
            }
        }
    }
    last as u32
}

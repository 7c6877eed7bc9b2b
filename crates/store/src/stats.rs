//! One-pass, mergeable statistics for many latents at once.
//!
//! Per latent: top-k activating windows (the tutorial's `get_k_largest_indices` +
//! `index_with_buffer`, with `buffer` tokens each side and its `no_overlap` option), firing
//! frequency, mean and max activation, and a uniform sample of activating windows split into
//! activation quantiles (as EleutherAI's delphi). Shared across latents: random windows with every
//! latent's true activations in them.
//!
//! # Exact merging
//!
//! Every part is a commutative, associative reduction, so merging the summaries of any
//! partition of the corpus (shards, Slurm array tasks) equals one pass over all of it, bit for
//! bit:
//! - counts are integers; sums are fixed-point integers (each activation rounded to a multiple
//!   of 2⁻⁴⁸ before summing), so their order does not matter; maxima are maxima;
//! - top-k keeps the k best under a total order (value, then earlier sequence, then earlier
//!   position). With `no_overlap` the tutorial's greedy selection only ever excludes positions in
//!   the same sequence, so it equals taking, in each sequence, that sequence's own greedy picks
//!   and then the k best of all of them — which is what is stored;
//! - samples are bottom-k by a hash of (seed, latent, sequence, position): a fixed random
//!   priority, so the kept set never depends on the order data arrive in.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

/// What to gather.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsConfig {
    /// Top windows kept per latent (the tutorial: n_top_ex_for_generation + n_top_ex_for_scoring).
    pub k: usize,
    /// Tokens each side of a window's centre (the tutorial's `buffer`, 10).
    pub buffer: usize,
    /// No two top windows of a latent within `buffer` of each other in one sequence.
    pub no_overlap: bool,
    /// Activating windows sampled uniformly per latent (for the quantiles).
    pub n_samples: usize,
    /// Quantile bins the samples are split into (delphi: 10).
    pub n_quantiles: usize,
    /// Random windows kept (shared by all latents, with every latent's activations).
    pub n_random: usize,
    /// Seed of the sampling priorities.
    pub seed: u64,
}

impl Default for StatsConfig {
    fn default() -> Self {
        Self {
            k: 20,
            buffer: 10,
            no_overlap: false,
            n_samples: 50,
            n_quantiles: 10,
            n_random: 64,
            seed: 0,
        }
    }
}

/// A window around a token: `2·buffer + 1` token ids and one latent's activations on them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Global index of the sequence (context window) in the corpus stream.
    pub seq: u64,
    /// Position of the centre token in the sequence.
    pub pos: u32,
    /// The activation at the centre.
    pub value: f32,
    /// Token ids from `pos - buffer` to `pos + buffer`.
    pub tokens: Vec<u32>,
    /// The latent's activations on those tokens.
    pub values: Vec<f32>,
}

/// A sampled window with its sampling priority.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Sampled {
    priority: u64,
    window: Window,
}

/// A random window with every studied latent's non-zero activations in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RandomWindow {
    /// Sampling priority.
    priority: u64,
    /// Global sequence index.
    pub seq: u64,
    /// Centre position.
    pub pos: u32,
    /// Token ids from `pos - buffer` to `pos + buffer`.
    pub tokens: Vec<u32>,
    /// `(latent slot, offset in the window, activation)` for every non-zero activation.
    pub nonzero: Vec<(u32, u32, f32)>,
}

/// One latent's running summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatentSummary {
    /// The latent's index in the SAE.
    pub latent: usize,
    /// Tokens on which it fired (activation > 0).
    pub n_fired: u64,
    /// Fixed-point sum of its activations (units of 2⁻⁴⁸), as a decimal string.
    #[serde(with = "i128_string")]
    sum_fixed: i128,
    /// Largest activation (−∞ before any token).
    pub max: f32,
    /// Best windows, best first.
    pub top: Vec<Window>,
    samples: Vec<Sampled>,
}

pub(crate) mod i128_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &i128, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i128, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

pub(crate) const FIXED_SCALE: f64 = (1u64 << 48) as f64;

pub(crate) fn to_fixed(v: f32) -> i128 {
    // v·2⁴⁸ is exact in f64 (an exponent shift); rounding to an integer is deterministic.
    (f64::from(v) * FIXED_SCALE).round() as i128
}

/// Whether `a` ranks above `b`: larger value, then earlier sequence, then earlier position.
fn better(a: (f32, u64, u32), b: (f32, u64, u32)) -> bool {
    match a.0.total_cmp(&b.0) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => (a.1, a.2) < (b.1, b.2),
    }
}

fn key(w: &Window) -> (f32, u64, u32) {
    (w.value, w.seq, w.pos)
}

/// splitmix64 over the inputs: a fixed pseudo-random priority.
fn priority(seed: u64, a: u64, b: u64, c: u64) -> u64 {
    let mut z = seed ^ 0x9E37_79B9_7F4A_7C15;
    for v in [a, b, c] {
        z = z.wrapping_add(v).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
    }
    z
}

impl LatentSummary {
    fn new(latent: usize) -> Self {
        Self {
            latent,
            n_fired: 0,
            sum_fixed: 0,
            max: f32::NEG_INFINITY,
            top: Vec::new(),
            samples: Vec::new(),
        }
    }

    /// Mean activation over all `n_tokens` tokens seen.
    pub fn mean(&self, n_tokens: u64) -> f64 {
        if n_tokens == 0 {
            return 0.0;
        }
        self.sum_fixed as f64 / FIXED_SCALE / n_tokens as f64
    }

    /// Mean activation over the tokens it fired on.
    pub fn mean_when_active(&self) -> f64 {
        if self.n_fired == 0 {
            return 0.0;
        }
        self.sum_fixed as f64 / FIXED_SCALE / self.n_fired as f64
    }

    /// The uniform sample of activating windows, by increasing activation.
    pub fn samples(&self) -> Vec<Window> {
        let mut v: Vec<Window> = self.samples.iter().map(|s| s.window.clone()).collect();
        v.sort_by(|a, b| {
            key(a)
                .0
                .total_cmp(&key(b).0)
                .then((a.seq, a.pos).cmp(&(b.seq, b.pos)))
        });
        v
    }

    /// The samples split into `n` bins of (nearly) equal count by activation, lowest first
    /// (delphi's quantile sampler).
    pub fn quantiles(&self, n: usize) -> Vec<Vec<Window>> {
        let s = self.samples();
        if n == 0 || s.is_empty() {
            return Vec::new();
        }
        let len = s.len();
        (0..n)
            .map(|q| s[q * len / n..(q + 1) * len / n].to_vec())
            .collect()
    }

    fn offer_top(&mut self, k: usize, w: Window) {
        if self.top.len() == k
            && !self
                .top
                .last()
                .is_some_and(|last| better(key(&w), key(last)))
        {
            return;
        }
        let at = self.top.partition_point(|x| better(key(x), key(&w)));
        self.top.insert(at, w);
        self.top.truncate(k);
    }

    fn offer_sample(&mut self, n: usize, s: Sampled) {
        let k = |x: &Sampled| (x.priority, x.window.seq, x.window.pos);
        if self.samples.len() == n && self.samples.last().is_some_and(|last| k(&s) >= k(last)) {
            return;
        }
        let at = self.samples.partition_point(|x| k(x) < k(&s));
        self.samples.insert(at, s);
        self.samples.truncate(n);
    }

    /// Merges the windows and the maximum (the counts are summed, checked, by the caller).
    fn merge(&mut self, other: LatentSummary, cfg: &StatsConfig) {
        self.max = self.max.max(other.max);
        for w in other.top {
            self.offer_top(cfg.k, w);
        }
        for s in other.samples {
            self.offer_sample(cfg.n_samples, s);
        }
    }
}

/// Statistics of a set of latents over part or all of a corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatentStats {
    /// What was gathered.
    pub config: StatsConfig,
    /// Tokens per sequence.
    pub context_size: usize,
    /// Tokens seen.
    pub n_tokens: u64,
    /// Sequences seen.
    pub n_sequences: u64,
    /// One summary per latent, in the order asked for.
    pub latents: Vec<LatentSummary>,
    /// Random windows, by priority.
    pub random: Vec<RandomWindow>,
}

impl LatentStats {
    /// Empty statistics for `latents` (their SAE indices) over sequences of `context_size`.
    pub fn new(config: StatsConfig, latents: &[usize], context_size: usize) -> Result<Self> {
        if context_size <= 2 * config.buffer {
            return Err(StoreError::invalid(
                "buffer",
                format!("less than half the context size ({context_size})"),
                config.buffer,
            ));
        }
        Ok(Self {
            config,
            context_size,
            n_tokens: 0,
            n_sequences: 0,
            latents: latents.iter().map(|&l| LatentSummary::new(l)).collect(),
            random: Vec::new(),
        })
    }

    /// Firing frequency of each latent (fraction of tokens with activation > 0).
    pub fn frequencies(&self) -> Vec<f64> {
        self.latents
            .iter()
            .map(|l| {
                if self.n_tokens == 0 {
                    0.0
                } else {
                    l.n_fired as f64 / self.n_tokens as f64
                }
            })
            .collect()
    }

    /// The random windows with latent `slot`'s true activations on them.
    pub fn random_windows_for(&self, slot: usize) -> Vec<Window> {
        let width = 2 * self.config.buffer + 1;
        self.random
            .iter()
            .map(|r| {
                let mut values = vec![0.0; width];
                for &(s, off, v) in &r.nonzero {
                    if s as usize == slot {
                        values[off as usize] = v;
                    }
                }
                Window {
                    seq: r.seq,
                    pos: r.pos,
                    value: values[self.config.buffer],
                    tokens: r.tokens.clone(),
                    values,
                }
            })
            .collect()
    }

    /// Adds `n_seq` sequences starting at global sequence `first_seq`.
    ///
    /// # Shapes
    /// - `tokens`: `[n_seq · context]`;
    /// - `acts`: `[n_seq · context, latents]` row-major (column `j` is `self.latents[j]`).
    pub fn update(&mut self, first_seq: u64, tokens: &[u32], acts: &[f32]) -> Result<()> {
        let ctx = self.context_size;
        let n_lat = self.latents.len();
        if !tokens.len().is_multiple_of(ctx) {
            return Err(StoreError::Shape {
                what: "tokens".into(),
                expected: vec![tokens.len() / ctx * ctx],
                found: vec![tokens.len()],
            });
        }
        let n_seq = tokens.len() / ctx;
        if acts.len() != n_seq * ctx * n_lat {
            return Err(StoreError::Shape {
                what: "latent activations".into(),
                expected: vec![n_seq * ctx, n_lat],
                found: vec![acts.len() / n_lat.max(1), n_lat],
            });
        }
        let cfg = self.config;
        let b = cfg.buffer;
        let width = 2 * b + 1;
        // Per-latent work in parallel over chunks of latents.
        let chunk = (n_lat / (rayon::current_num_threads() * 4)).max(16);
        self.latents
            .par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(ci, summaries)| {
                let j0 = ci * chunk;
                let mut cands: Vec<(f32, u32)> = Vec::new();
                for (jj, summary) in summaries.iter_mut().enumerate() {
                    let j = j0 + jj;
                    for s in 0..n_seq {
                        let seq = first_seq + s as u64;
                        let row = |p: usize| acts[(s * ctx + p) * n_lat + j];
                        cands.clear();
                        for p in 0..ctx {
                            let v = row(p);
                            if v != 0.0 {
                                summary.sum_fixed += to_fixed(v);
                            }
                            if v > 0.0 {
                                summary.n_fired += 1;
                            }
                            summary.max = summary.max.max(v);
                            if v > 0.0 && p >= b && p + b < ctx {
                                cands.push((v, p as u32));
                            }
                        }
                        if cands.is_empty() {
                            continue;
                        }
                        let window = |p: u32, v: f32| {
                            let p = p as usize;
                            Window {
                                seq,
                                pos: p as u32,
                                value: v,
                                tokens: tokens[s * ctx + p - b..s * ctx + p + b + 1].to_vec(),
                                values: (p - b..p + b + 1).map(row).collect(),
                            }
                        };
                        // Samples: uniform over activating positions.
                        for &(v, p) in &cands {
                            let pr = priority(cfg.seed, summary.latent as u64, seq, u64::from(p));
                            let worst = summary
                                .samples
                                .last()
                                .map(|x| (x.priority, x.window.seq, x.window.pos));
                            if summary.samples.len() < cfg.n_samples
                                || worst.is_some_and(|w| (pr, seq, p) < w)
                            {
                                summary.offer_sample(
                                    cfg.n_samples,
                                    Sampled {
                                        priority: pr,
                                        window: window(p, v),
                                    },
                                );
                            }
                        }
                        // Top-k: this sequence's picks (greedy without overlap when asked).
                        cands.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
                        let mut picked: Vec<u32> = Vec::new();
                        for &(v, p) in &cands {
                            if picked.len() == cfg.k {
                                break;
                            }
                            if cfg.no_overlap && picked.iter().any(|&q| q.abs_diff(p) as usize <= b)
                            {
                                continue;
                            }
                            if summary.top.len() == cfg.k
                                && !summary
                                    .top
                                    .last()
                                    .is_some_and(|last| better((v, seq, p), key(last)))
                            {
                                // Sorted descending: nothing later in this sequence can enter.
                                break;
                            }
                            picked.push(p);
                            summary.offer_top(cfg.k, window(p, v));
                        }
                    }
                }
            });
        // Random windows: uniform over valid centre positions.
        for s in 0..n_seq {
            let seq = first_seq + s as u64;
            for p in b..ctx - b {
                let pr = priority(cfg.seed ^ 0x5A5A_5A5A, u64::MAX, seq, p as u64);
                let k = (pr, seq, p as u32);
                let full = self.random.len() == cfg.n_random;
                if cfg.n_random == 0
                    || (full
                        && self
                            .random
                            .last()
                            .is_some_and(|w| k >= (w.priority, w.seq, w.pos)))
                {
                    continue;
                }
                let mut nonzero = Vec::new();
                for off in 0..width {
                    let t = s * ctx + p - b + off;
                    for (j, &v) in acts[t * n_lat..(t + 1) * n_lat].iter().enumerate() {
                        if v != 0.0 {
                            nonzero.push((j as u32, off as u32, v));
                        }
                    }
                }
                let rw = RandomWindow {
                    priority: pr,
                    seq,
                    pos: p as u32,
                    tokens: tokens[s * ctx + p - b..s * ctx + p + b + 1].to_vec(),
                    nonzero,
                };
                self.offer_random(rw);
            }
        }
        self.n_tokens += (n_seq * ctx) as u64;
        self.n_sequences += n_seq as u64;
        Ok(())
    }

    fn offer_random(&mut self, rw: RandomWindow) {
        let k = |x: &RandomWindow| (x.priority, x.seq, x.pos);
        let at = self.random.partition_point(|x| k(x) < k(&rw));
        self.random.insert(at, rw);
        self.random.truncate(self.config.n_random);
    }

    /// Folds in the statistics of other data (another shard). The result equals one pass
    /// over both.
    pub fn merge(&mut self, other: LatentStats) -> Result<()> {
        if other.config != self.config || other.context_size != self.context_size {
            return Err(StoreError::Merge(format!(
                "configurations differ ({:?}, context {} vs {:?}, context {})",
                self.config, self.context_size, other.config, other.context_size
            )));
        }
        let mine: Vec<usize> = self.latents.iter().map(|l| l.latent).collect();
        let theirs: Vec<usize> = other.latents.iter().map(|l| l.latent).collect();
        if mine != theirs {
            return Err(StoreError::Merge(
                "the two summaries cover different latents".into(),
            ));
        }
        let overflow = || StoreError::Merge("the counts overflow (a corrupt summary?)".into());
        let n_tokens = self
            .n_tokens
            .checked_add(other.n_tokens)
            .ok_or_else(overflow)?;
        let n_sequences = self
            .n_sequences
            .checked_add(other.n_sequences)
            .ok_or_else(overflow)?;
        let sums = self
            .latents
            .iter()
            .zip(&other.latents)
            .map(|(a, b)| {
                Some((
                    a.n_fired.checked_add(b.n_fired)?,
                    a.sum_fixed.checked_add(b.sum_fixed)?,
                ))
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(overflow)?;
        let cfg = self.config;
        for ((a, b), (n_fired, sum_fixed)) in self.latents.iter_mut().zip(other.latents).zip(sums) {
            a.merge(b, &cfg);
            a.n_fired = n_fired;
            a.sum_fixed = sum_fixed;
        }
        for r in other.random {
            self.offer_random(r);
        }
        self.n_tokens = n_tokens;
        self.n_sequences = n_sequences;
        Ok(())
    }

    /// Writes the summary as JSON (atomically).
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        let json = serde_json::to_vec(self).map_err(|e| StoreError::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        sae_core::atomic::write(path, &json)?;
        Ok(())
    }

    /// One row per latent: `latent,frequency,mean,mean_when_active,max,n_fired` (`max` 0 for a
    /// latent that never fired), the table `sae-geometry latent-stats` writes beside its JSON.
    pub fn csv(&self) -> String {
        let mut out = String::from("latent,frequency,mean,mean_when_active,max,n_fired\n");
        for (l, freq) in self.latents.iter().zip(self.frequencies()) {
            let max = if l.max.is_finite() { l.max } else { 0.0 };
            out.push_str(&format!(
                "{},{freq},{},{},{max},{}\n",
                l.latent,
                l.mean(self.n_tokens),
                l.mean_when_active(),
                l.n_fired
            ));
        }
        out
    }

    /// Writes the summary to `path` ([`LatentStats::save`]) and its [`LatentStats::csv`] beside
    /// it (`path` with the extension `csv`); returns the CSV's path.
    pub fn save_with_csv(&self, path: &std::path::Path) -> Result<std::path::PathBuf> {
        self.save(path)?;
        let csv = path.with_extension("csv");
        sae_core::atomic::write(&csv, self.csv())?;
        Ok(csv)
    }

    /// Reads a summary written by [`LatentStats::save`], checking that it is self-consistent
    /// (window widths, latent slots and offsets, sizes) before anything indexes with it.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| StoreError::io(path, e))?;
        let s: Self = serde_json::from_str(&text).map_err(|e| StoreError::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        s.validate().map_err(|message| StoreError::Json {
            path: path.to_path_buf(),
            message: format!("inconsistent latent statistics: {message}"),
        })?;
        Ok(s)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let c = &self.config;
        if c.buffer > 1 << 16 || self.context_size <= 2 * c.buffer {
            return Err(format!(
                "buffer {} with context size {} (the buffer must be under half the context)",
                c.buffer, self.context_size
            ));
        }
        if c.n_quantiles == 0 || c.n_quantiles > 1 << 16 {
            return Err(format!("n_quantiles {}", c.n_quantiles));
        }
        let width = 2 * c.buffer + 1;
        let window_ok = |w: &Window| {
            w.tokens.len() == width
                && w.values.len() == width
                && (w.pos as usize) < self.context_size
        };
        for l in &self.latents {
            if l.n_fired > self.n_tokens {
                return Err(format!(
                    "latent {} fired on {} of {} tokens",
                    l.latent, l.n_fired, self.n_tokens
                ));
            }
            if !l.top.iter().all(window_ok) || !l.samples.iter().all(|s| window_ok(&s.window)) {
                return Err(format!(
                    "latent {}: a window is not {width} tokens wide or lies outside the context",
                    l.latent
                ));
            }
        }
        let n = self.latents.len();
        for r in &self.random {
            if r.tokens.len() != width
                || r.nonzero
                    .iter()
                    .any(|&(slot, off, _)| slot as usize >= n || off as usize >= width)
            {
                return Err(format!(
                    "random window at sequence {}: not {width} tokens, or a slot/offset outside {n} latents × {width}",
                    r.seq
                ));
            }
        }
        Ok(())
    }
}

/// Rows encoded per SAE call when gathering from a cache (bounds memory: rows × d_sae floats).
pub(crate) const ENCODE_ROWS: usize = 2048;

/// Statistics of `latents` of `sae` over shards `shards` of an activation cache (all shards
/// when `None`), with a progress bar when `progress`. Run disjoint shard ranges on different
/// machines and [`LatentStats::merge`] the results.
pub fn gather_from_cache(
    cache: &crate::cache::ActivationCacheDir,
    sae: &sae_core::Sae,
    latents: &[usize],
    config: StatsConfig,
    shards: Option<std::ops::Range<usize>>,
    progress: bool,
) -> Result<LatentStats> {
    let spec = &cache.manifest().spec;
    let encoder = LatentEncoder::new(sae, latents, spec.d_in, "SAE d_in vs cached activations")?;
    let range = shards.unwrap_or(0..cache.len());
    if range.end > cache.len() {
        return Err(StoreError::invalid(
            "shard range",
            format!("within 0..{}", cache.len()),
            format!("{range:?}"),
        ));
    }
    let mut stats = LatentStats::new(config, latents, spec.packing.context_size)?;
    let bar = progress_bar(range.len() as u64, "latent stats: shard", progress);
    for i in range {
        let shard = cache.shard(i)?;
        let ctx = shard.context_size;
        let d = shard.d_in;
        // Whole sequences per chunk, so a sequence never straddles two updates.
        let seqs_per_chunk = (ENCODE_ROWS / ctx).max(1);
        for s0 in (0..shard.n_sequences).step_by(seqs_per_chunk) {
            let s1 = (s0 + seqs_per_chunk).min(shard.n_sequences);
            let rows = (s1 - s0) * ctx;
            let acts = encoder.encode(
                shard.activations[s0 * ctx * d..s1 * ctx * d].to_vec(),
                rows,
                d,
            )?;
            stats.update(
                shard.first_sequence + s0 as u64,
                &shard.token_ids[s0 * ctx..s1 * ctx],
                &acts,
            )?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(stats)
}

/// Encodes activation rows with an SAE and keeps the chosen latents' columns.
pub(crate) struct LatentEncoder<'s> {
    sae: &'s sae_core::Sae,
    index: Option<sae_core::burn::tensor::Tensor<1, sae_core::burn::tensor::Int>>,
}

impl<'s> LatentEncoder<'s> {
    /// An encoder for `latents` of `sae`, checking them and that the SAE reads `d_in`-wide
    /// activations (`what` names the comparison in the error).
    pub(crate) fn new(
        sae: &'s sae_core::Sae,
        latents: &[usize],
        d_in: usize,
        what: &str,
    ) -> Result<Self> {
        if sae.config().d_in != d_in {
            return Err(StoreError::Shape {
                what: what.into(),
                expected: vec![d_in],
                found: vec![sae.config().d_in],
            });
        }
        if let Some(&bad) = latents.iter().find(|&&l| l >= sae.d_sae()) {
            return Err(StoreError::invalid(
                "latent index",
                format!("below d_sae = {}", sae.d_sae()),
                bad,
            ));
        }
        let all = latents.len() == sae.d_sae() && latents.iter().enumerate().all(|(i, &l)| i == l);
        let index = (!all).then(|| {
            sae_core::device::int_tensor_from_vec(
                latents.iter().map(|&l| l as i64).collect(),
                [latents.len()],
                &sae.device(),
            )
        });
        Ok(Self { sae, index })
    }

    /// `[rows, d]` activations → `[rows, latents]` latent activations, row-major.
    pub(crate) fn encode(&self, x: Vec<f32>, rows: usize, d: usize) -> Result<Vec<f32>> {
        self.encode_tensor(sae_core::device::tensor_from_vec(
            x,
            [rows, d],
            &self.sae.device(),
        ))
    }

    /// [`Self::encode`] of activations already on the SAE's device: only the selected latents'
    /// columns come to the host.
    fn encode_tensor(&self, x: sae_core::burn::tensor::Tensor<2>) -> Result<Vec<f32>> {
        let f = self.sae.encode(x)?;
        let f = match &self.index {
            Some(i) => f.select(1, i.clone()),
            None => f,
        };
        Ok(sae_core::device::tensor_to_vec(f)?)
    }
}

/// `latents` of `sae` on each of `windows` (any lengths; windows of one length run as one
/// batch), read at `hook`: per window a `[len, latents.len()]` row-major vector. The windows
/// are run as given — prepend BOS where the model expects it.
pub fn latent_activations<M: gpt2_gemma_models::LanguageModel + ?Sized>(
    model: &M,
    sae: &sae_core::Sae,
    hook: gpt2_gemma_models::HookPoint,
    windows: &[Vec<u32>],
    latents: &[usize],
) -> Result<Vec<Vec<f32>>> {
    let mut out = vec![Vec::new(); windows.len()];
    let mut by_len: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, w) in windows.iter().enumerate() {
        if !w.is_empty() {
            by_len.entry(w.len()).or_default().push(i);
        }
    }
    let mut encoder = None;
    for (len, idx) in by_len {
        let group: Vec<Vec<u32>> = idx.iter().map(|&i| windows[i].clone()).collect();
        let Some(acts) = crate::store::compute_activation_tensor(model, hook, &group)? else {
            continue;
        };
        let d = acts.dims()[1];
        let enc = match &encoder {
            Some(e) => e,
            None => encoder.insert(LatentEncoder::new(
                sae,
                latents,
                d,
                &format!("SAE d_in vs model activations at {hook}"),
            )?),
        };
        let f = enc.encode_tensor(acts)?;
        let per = len * latents.len();
        for (k, &i) in idx.iter().enumerate() {
            out[i] = f[k * per..(k + 1) * per].to_vec();
        }
    }
    Ok(out)
}

/// A progress bar over `len` `unit`s of a pass (hidden unless `progress`); `unit` names the pass
/// and its steps ("latent stats: batch").
pub(crate) fn progress_bar(len: u64, unit: &str, progress: bool) -> indicatif::ProgressBar {
    if !progress {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(len);
    b.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {unit} {{pos}}/{{len}} [{{elapsed_precise}}<{{eta_precise}}]"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b
}

/// Statistics of `latents` of `sae` over the first `total_tokens` tokens of `store`'s window
/// stream (whole batches of `store_batch_size_prompts` windows, at least one), computed on
/// the fly — the tutorial's `gather_data` pass, without an activation cache.
pub fn gather_from_model<M: gpt2_gemma_models::LanguageModel + ?Sized>(
    store: &mut crate::store::ActivationStore<'_, M>,
    sae: &sae_core::Sae,
    latents: &[usize],
    config: StatsConfig,
    total_tokens: u64,
    progress: bool,
) -> Result<LatentStats> {
    let encoder = LatentEncoder::new(sae, latents, store.d_in(), "SAE d_in vs model activations")?;
    let ctx = store.config().context_size;
    let batch = store.config().store_batch_size_prompts.max(1);
    let n_batches = (total_tokens / (ctx * batch) as u64).max(1);
    let mut stats = LatentStats::new(config, latents, ctx)?;
    let bar = progress_bar(n_batches, "latent stats: batch", progress);
    for b in 0..n_batches {
        let windows = store.get_batch_tokens()?;
        let tokens: Vec<u32> = windows.iter().flatten().copied().collect();
        // Model → SAE on the device; the selected latents' activations come to the host.
        let f = match store.get_activation_tensor(&windows)? {
            Some(acts) => encoder.encode_tensor(acts)?,
            None => Vec::new(),
        };
        stats.update(b * batch as u64, &tokens, &f)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(stats)
}

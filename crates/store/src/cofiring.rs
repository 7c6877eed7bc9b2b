//! Co-firing of two SAEs' latents on the same tokens, in one pass, exactly mergeable.
//!
//! For every latent `i` of a narrower SAE and `j` of a wider one read at the same hook, over the
//! same N tokens: how often each fires (activation > 0), how often both fire, and the sums that
//! give the Pearson correlation of their activations over all N tokens:
//!
//! - Jaccard of firing positions: `|F_i ∩ F_j| / |F_i ∪ F_j|`;
//! - correlation: `(N·Σab − Σa·Σb) / √((N·Σa² − (Σa)²)(N·Σb² − (Σb)²))`.
//!
//! SAE activations are non-negative, so a product `a_i·b_j` is non-zero only where both fire:
//! the pair sums are kept sparsely, for co-firing pairs only (a few thousand pairs per token at
//! L0 ≈ 50, however wide the SAEs).
//!
//! # Exact merging
//!
//! As the latent statistics ([`crate::stats`]): counts are integers and every sum is a sum of
//! fixed-point integers (each value or product rounded to a multiple of 2⁻⁴⁸ — a product of two
//! `f32`s is exact in `f64`, so the rounding is the only one), so any partition of the tokens,
//! merged in any order, gives the same bits as one pass.
//!
//! # Speed
//!
//! A batch is added narrow latent by narrow latent (in parallel): the pair sums of its firing
//! tokens go into a dense scratch row of the wide width, and only the wide latents touched are
//! then merged, in order, into the latent's sorted pair list — one dense add per co-firing
//! (token, pair), one sorted merge per (batch, narrow latent), instead of a map lookup per
//! co-firing (token, pair).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::stats::{FIXED_SCALE, i128_string};

/// Rounds `v` to a multiple of 2⁻⁴⁸, as an integer count of them.
fn fixed(v: f64) -> i128 {
    let s = (v * FIXED_SCALE).round();
    // The same integer either way; through i64 where it fits, which is a single instruction
    // (f64 → i128 is a library call).
    if s.abs() < 9.0e18 {
        s as i64 as i128
    } else {
        s as i128
    }
}

/// One latent's firing count and fixed-point sums.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatentMoments {
    /// Tokens on which it fired.
    pub n_fired: u64,
    /// Σ a (units of 2⁻⁴⁸).
    #[serde(with = "i128_string")]
    sum: i128,
    /// Σ a² (units of 2⁻⁴⁸).
    #[serde(with = "i128_string")]
    sum_sq: i128,
}

impl LatentMoments {
    fn add(&mut self, a: f32) {
        self.n_fired += 1;
        self.sum += fixed(f64::from(a));
        self.sum_sq += fixed(f64::from(a) * f64::from(a));
    }

    fn merge(&mut self, o: &LatentMoments) {
        self.n_fired += o.n_fired;
        self.sum += o.sum;
        self.sum_sq += o.sum_sq;
    }

    /// Σ a.
    pub fn sum(&self) -> f64 {
        self.sum as f64 / FIXED_SCALE
    }

    /// Σ a².
    pub fn sum_sq(&self) -> f64 {
        self.sum_sq as f64 / FIXED_SCALE
    }
}

/// A co-firing pair's count and Σ a·b.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairMoments {
    /// Tokens on which both fired.
    pub both: u64,
    /// Σ a·b (units of 2⁻⁴⁸).
    #[serde(with = "i128_string")]
    sum_prod: i128,
}

/// How a narrow latent and a wide latent co-fire.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CoFiringScore {
    /// The wider SAE's latent.
    pub wide: usize,
    /// Tokens on which both fired.
    pub both: u64,
    /// Jaccard of the firing positions (0 when neither fired).
    pub jaccard: f64,
    /// Pearson correlation of the activations over all tokens (0 when either is constant).
    pub correlation: f64,
}

/// Co-firing statistics of a narrower and a wider SAE over the same tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoFiring {
    /// Tokens seen.
    pub n_tokens: u64,
    /// Moments of each narrow latent.
    pub narrow: Vec<LatentMoments>,
    /// Moments of each wide latent.
    pub wide: Vec<LatentMoments>,
    /// For each narrow latent, its co-firing wide latents and their pair moments, by increasing
    /// wide latent (saved as one JSON map per narrow latent).
    #[serde(with = "pair_maps")]
    pairs: Vec<Vec<(u32, PairMoments)>>,
}

/// Each narrow latent's sorted pair list, read and written as a map from wide latent to moments.
mod pair_maps {
    use std::collections::BTreeMap;

    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::PairMoments;

    struct AsMap<'a>(&'a [(u32, PairMoments)]);

    impl Serialize for AsMap<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().map(|(j, p)| (j, p)))
        }
    }

    pub(super) fn serialize<S: Serializer>(
        v: &[Vec<(u32, PairMoments)>],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for row in v {
            seq.serialize_element(&AsMap(row))?;
        }
        seq.end()
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<Vec<(u32, PairMoments)>>, D::Error> {
        let maps = Vec::<BTreeMap<u32, PairMoments>>::deserialize(d)?;
        Ok(maps.into_iter().map(|m| m.into_iter().collect()).collect())
    }
}

/// A narrow latent's pair sums over one batch: dense over the wide latents, with the list of
/// those touched (each once).
struct Scratch {
    both: Vec<u64>,
    sum_prod: Vec<i128>,
    touched: Vec<u32>,
}

impl Scratch {
    fn new(m: usize) -> Self {
        Self {
            both: vec![0; m],
            sum_prod: vec![0; m],
            touched: Vec::new(),
        }
    }

    fn add(&mut self, j: u32, prod: i128) {
        let k = j as usize;
        if self.both[k] == 0 {
            self.touched.push(j);
        }
        self.both[k] += 1;
        self.sum_prod[k] += prod;
    }

    /// Adds the batch's sums into `pairs` (sorted by wide latent) and clears the scratch.
    fn drain_into(&mut self, pairs: &mut Vec<(u32, PairMoments)>) {
        if self.touched.is_empty() {
            return;
        }
        self.touched.sort_unstable();
        let batch: Vec<(u32, PairMoments)> = self
            .touched
            .drain(..)
            .map(|j| {
                let k = j as usize;
                let p = PairMoments {
                    both: std::mem::take(&mut self.both[k]),
                    sum_prod: std::mem::take(&mut self.sum_prod[k]),
                };
                (j, p)
            })
            .collect();
        merge_pairs(pairs, &batch);
    }
}

/// Merges `theirs` into `mine`, both sorted by wide latent.
fn merge_pairs(mine: &mut Vec<(u32, PairMoments)>, theirs: &[(u32, PairMoments)]) {
    let mut merged = Vec::with_capacity(mine.len() + theirs.len());
    let mut a = std::mem::take(mine).into_iter().peekable();
    let mut b = theirs.iter().copied().peekable();
    loop {
        match (a.peek(), b.peek()) {
            (Some(&(i, p)), Some(&(j, q))) => {
                if i < j {
                    merged.push((i, p));
                    a.next();
                } else if j < i {
                    merged.push((j, q));
                    b.next();
                } else {
                    merged.push((
                        i,
                        PairMoments {
                            both: p.both + q.both,
                            sum_prod: p.sum_prod + q.sum_prod,
                        },
                    ));
                    a.next();
                    b.next();
                }
            }
            (Some(_), None) => merged.extend(a.by_ref()),
            (None, Some(_)) => merged.extend(b.by_ref()),
            (None, None) => break,
        }
    }
    *mine = merged;
}

impl CoFiring {
    /// Empty statistics for SAEs of `n_narrow` and `n_wide` latents.
    pub fn new(n_narrow: usize, n_wide: usize) -> Self {
        Self {
            n_tokens: 0,
            narrow: vec![LatentMoments::default(); n_narrow],
            wide: vec![LatentMoments::default(); n_wide],
            pairs: vec![Vec::new(); n_narrow],
        }
    }

    /// Adds tokens: `narrow` is `[T, n_narrow]` and `wide` `[T, n_wide]`, row-major, the same T
    /// tokens in the same order.
    ///
    /// # Errors
    /// [`StoreError::Shape`] when the buffers do not hold T rows of the widths, and
    /// [`StoreError::InvalidOption`] on a negative or non-finite activation (SAE activations are
    /// non-negative; the sparse pair sums rely on it).
    pub fn update(&mut self, narrow: &[f32], wide: &[f32]) -> Result<()> {
        let (n, m) = (self.narrow.len(), self.wide.len());
        if n == 0 || m == 0 || !narrow.len().is_multiple_of(n) {
            return Err(StoreError::Shape {
                what: "narrow SAE activations".into(),
                expected: vec![narrow.len() / n.max(1), n],
                found: vec![narrow.len()],
            });
        }
        let t = narrow.len() / n;
        if wide.len() != t * m {
            return Err(StoreError::Shape {
                what: "wide SAE activations (the same tokens as the narrow SAE's)".into(),
                expected: vec![t, m],
                found: vec![wide.len() / m, wide.len() % m],
            });
        }
        if let Some(bad) = narrow
            .iter()
            .chain(wide)
            .find(|v| !(v.is_finite() && **v >= 0.0))
        {
            return Err(StoreError::invalid(
                "SAE activation",
                "finite and non-negative",
                bad,
            ));
        }
        // Each token's firing wide latents; then, per narrow latent, its firing tokens.
        let wide_active: Vec<Vec<(u32, f32)>> = wide
            .par_chunks(m)
            .map(|row| {
                row.iter()
                    .enumerate()
                    .filter(|(_, v)| **v > 0.0)
                    .map(|(j, v)| (j as u32, *v))
                    .collect()
            })
            .collect();
        let mut narrow_active: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
        for (tok, row) in narrow.chunks(n).enumerate() {
            for (i, v) in row.iter().enumerate() {
                if *v > 0.0 {
                    narrow_active[i].push((tok as u32, *v));
                }
            }
        }
        for row in &wide_active {
            for &(j, b) in row {
                self.wide[j as usize].add(b);
            }
        }
        self.narrow
            .par_iter_mut()
            .zip(self.pairs.par_iter_mut())
            .zip(narrow_active.par_iter())
            .with_min_len(8)
            .for_each_init(
                || Scratch::new(m),
                |scratch, ((mom, pairs), active)| {
                    for &(tok, a) in active {
                        mom.add(a);
                        for &(j, b) in &wide_active[tok as usize] {
                            scratch.add(j, fixed(f64::from(a) * f64::from(b)));
                        }
                    }
                    scratch.drain_into(pairs);
                },
            );
        self.n_tokens += t as u64;
        Ok(())
    }

    /// Adds another pass's statistics (e.g. of other shards): the result equals one pass over
    /// both.
    ///
    /// # Errors
    /// [`StoreError::Shape`] when the widths differ.
    pub fn merge(&mut self, other: &CoFiring) -> Result<()> {
        if other.narrow.len() != self.narrow.len() || other.wide.len() != self.wide.len() {
            return Err(StoreError::Shape {
                what: "co-firing statistics to merge (narrow, wide widths)".into(),
                expected: vec![self.narrow.len(), self.wide.len()],
                found: vec![other.narrow.len(), other.wide.len()],
            });
        }
        self.n_tokens += other.n_tokens;
        for (a, b) in self.narrow.iter_mut().zip(&other.narrow) {
            a.merge(b);
        }
        for (a, b) in self.wide.iter_mut().zip(&other.wide) {
            a.merge(b);
        }
        for (mine, theirs) in self.pairs.iter_mut().zip(&other.pairs) {
            merge_pairs(mine, theirs);
        }
        Ok(())
    }

    /// Number of narrow latents.
    pub fn n_narrow(&self) -> usize {
        self.narrow.len()
    }

    /// Number of wide latents.
    pub fn n_wide(&self) -> usize {
        self.wide.len()
    }

    /// The score of narrow latent `i` against wide latent `j` (any pair, co-firing or not).
    ///
    /// # Errors
    /// [`StoreError::InvalidOption`] when `i` or `j` is out of range.
    pub fn score(&self, i: usize, j: usize) -> Result<CoFiringScore> {
        if i >= self.narrow.len() || j >= self.wide.len() {
            return Err(StoreError::invalid(
                "latent pair",
                format!("below ({}, {})", self.narrow.len(), self.wide.len()),
                format!("({i}, {j})"),
            ));
        }
        let row = &self.pairs[i];
        let p = row
            .binary_search_by_key(&(j as u32), |e| e.0)
            .map(|k| row[k].1)
            .unwrap_or_default();
        Ok(self.score_of(i, j, p))
    }

    fn score_of(&self, i: usize, j: usize, p: PairMoments) -> CoFiringScore {
        let (a, b) = (&self.narrow[i], &self.wide[j]);
        let union = a.n_fired + b.n_fired - p.both;
        let jaccard = if union == 0 {
            0.0
        } else {
            p.both as f64 / union as f64
        };
        // In units of 2⁻⁴⁸ (squared where products), exact integer arithmetic as far as it goes.
        let n = self.n_tokens as f64;
        let (sa, sb) = (a.sum(), b.sum());
        let cov = n * (p.sum_prod as f64 / FIXED_SCALE) - sa * sb;
        let va = n * a.sum_sq() - sa * sa;
        let vb = n * b.sum_sq() - sb * sb;
        let correlation = if va > 0.0 && vb > 0.0 {
            (cov / (va.sqrt() * vb.sqrt())).clamp(-1.0, 1.0)
        } else {
            0.0
        };
        CoFiringScore {
            wide: j,
            both: p.both,
            jaccard,
            correlation,
        }
    }

    /// Every wide latent that co-fired with narrow latent `i`, scored, by decreasing Jaccard
    /// (ties: larger correlation, then lower index). Latents that never co-fired have Jaccard 0
    /// and a correlation ≤ 0 and are left out.
    pub fn cofiring_with(&self, i: usize) -> Vec<CoFiringScore> {
        let Some(pairs) = self.pairs.get(i) else {
            return Vec::new();
        };
        let mut v: Vec<CoFiringScore> = pairs
            .iter()
            .map(|&(j, p)| self.score_of(i, j as usize, p))
            .collect();
        v.sort_by(|x, y| {
            y.jaccard
                .total_cmp(&x.jaccard)
                .then(y.correlation.total_cmp(&x.correlation))
                .then(x.wide.cmp(&y.wide))
        });
        v
    }

    /// Writes the statistics as JSON (atomically).
    ///
    /// # Errors
    /// [`StoreError::Io`] when the file cannot be written.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        let text = serde_json::to_string(self).map_err(|e| StoreError::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        sae_core::atomic::write(path, text)?;
        Ok(())
    }

    /// Reads statistics written by [`Self::save`].
    ///
    /// # Errors
    /// [`StoreError::Io`] when the file cannot be read, [`StoreError::Json`] when it does not
    /// parse, and
    /// [`StoreError::Shape`] when its parts disagree in width.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| StoreError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let s: CoFiring = serde_json::from_str(&text).map_err(|e| StoreError::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if s.pairs.len() != s.narrow.len()
            || s.pairs
                .iter()
                .any(|p| p.last().is_some_and(|&(j, _)| j as usize >= s.wide.len()))
        {
            return Err(StoreError::Shape {
                what: format!("co-firing statistics {}", path.display()),
                expected: vec![s.narrow.len(), s.wide.len()],
                found: vec![s.pairs.len()],
            });
        }
        Ok(s)
    }
}

/// Co-firing of every latent of `narrow` with every latent of `wide` over shards `shards` of an
/// activation cache (all when `None`), with a progress bar when `progress`. Run disjoint shard
/// ranges apart and [`CoFiring::merge`] the results.
///
/// # Errors
/// [`StoreError::Shape`] when an SAE does not read the cache's `d_in`, and the cache's errors.
pub fn cofiring_from_cache(
    cache: &crate::cache::ActivationCacheDir,
    narrow: &sae_core::Sae,
    wide: &sae_core::Sae,
    shards: Option<std::ops::Range<usize>>,
    progress: bool,
) -> Result<CoFiring> {
    use crate::stats::{ENCODE_ROWS, LatentEncoder};
    let d_in = cache.manifest().spec.d_in;
    let all = |s: &sae_core::Sae| (0..s.d_sae()).collect::<Vec<_>>();
    let (ln, lw) = (all(narrow), all(wide));
    let en = LatentEncoder::new(narrow, &ln, d_in, "narrow SAE d_in vs cached activations")?;
    let ew = LatentEncoder::new(wide, &lw, d_in, "wide SAE d_in vs cached activations")?;
    let range = shards.unwrap_or(0..cache.len());
    if range.end > cache.len() {
        return Err(StoreError::invalid(
            "shard range",
            format!("within 0..{}", cache.len()),
            format!("{range:?}"),
        ));
    }
    let mut stats = CoFiring::new(narrow.d_sae(), wide.d_sae());
    let bar = crate::stats::progress_bar(range.len() as u64, "co-firing: shard", progress);
    for s in range {
        let shard = cache.shard(s)?;
        let d = shard.d_in;
        let rows = shard.activations.len() / d.max(1);
        for r0 in (0..rows).step_by(ENCODE_ROWS) {
            let r1 = (r0 + ENCODE_ROWS).min(rows);
            let x = shard.activations[r0 * d..r1 * d].to_vec();
            let a = en.encode(x.clone(), r1 - r0, d)?;
            let b = ew.encode(x, r1 - r0, d)?;
            stats.update(&a, &b)?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(stats)
}

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

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::stats::{FIXED_SCALE, i128_string};

/// Rounds `v` to a multiple of 2⁻⁴⁸, as an integer count of them.
fn fixed(v: f64) -> i128 {
    (v * FIXED_SCALE).round() as i128
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
    /// For each narrow latent, its co-firing wide latents and their pair moments.
    pairs: Vec<BTreeMap<u32, PairMoments>>,
}

impl CoFiring {
    /// Empty statistics for SAEs of `n_narrow` and `n_wide` latents.
    pub fn new(n_narrow: usize, n_wide: usize) -> Self {
        Self {
            n_tokens: 0,
            narrow: vec![LatentMoments::default(); n_narrow],
            wide: vec![LatentMoments::default(); n_wide],
            pairs: vec![BTreeMap::new(); n_narrow],
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
            .for_each(|((mom, pairs), active)| {
                for &(tok, a) in active {
                    mom.add(a);
                    for &(j, b) in &wide_active[tok as usize] {
                        let p = pairs.entry(j).or_default();
                        p.both += 1;
                        p.sum_prod += fixed(f64::from(a) * f64::from(b));
                    }
                }
            });
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
            for (j, p) in theirs {
                let q = mine.entry(*j).or_default();
                q.both += p.both;
                q.sum_prod += p.sum_prod;
            }
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
        let p = self.pairs[i].get(&(j as u32)).copied().unwrap_or_default();
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
            .map(|(j, p)| self.score_of(i, *j as usize, *p))
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
            || s.pairs.iter().any(|p| {
                p.keys()
                    .next_back()
                    .is_some_and(|&j| j as usize >= s.wide.len())
            })
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

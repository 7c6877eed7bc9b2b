//! Logit-lens statistics and token-set enrichment, after "Understanding SAE Features with the
//! Logit Lens" (Bloom & Lin): per latent, the moments of its logit weight distribution
//! (`W_dec[i] · W_U` over the vocabulary — skewness and kurtosis separate token-level latents
//! from diffuse ones), and whether its top-k boosted tokens are enriched in a token set
//! (hypergeometric test) and whether the set's weights sit above the rest (one-sided
//! Mann–Whitney U).
//!
//! Conventions follow scipy: `skew` and `kurtosis` with `bias=True` and Fisher's (excess)
//! kurtosis; `hypergeom.sf(hits − 1, M, n, N)`; `mannwhitneyu(alternative="greater",
//! method="asymptotic")` with tie and continuity corrections. Checked against scipy in
//! `tests/logit_enrichment.rs`.

use rayon::prelude::*;
use sae_core::burn::tensor::Tensor;
use sae_core::device::with_host_values;
use sae_core::topk::total_order_key;
use serde::{Deserialize, Serialize};

use crate::error::{GeometryError, Result};

/// Moments of one latent's logit weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LogitWeightStats {
    /// The latent.
    pub latent: usize,
    /// Mean weight.
    pub mean: f64,
    /// Population variance.
    pub variance: f64,
    /// Skewness (population, as `scipy.stats.skew`).
    pub skewness: f64,
    /// Excess kurtosis (as `scipy.stats.kurtosis`).
    pub kurtosis: f64,
}

/// `(mean, variance, skewness, excess kurtosis)`, population moments.
pub fn moments(x: &[f32]) -> (f64, f64, f64, f64) {
    let n = x.len().max(1) as f64;
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let (mut m2, mut m3, mut m4) = (0f64, 0f64, 0f64);
    for &v in x {
        let d = f64::from(v) - mean;
        let d2 = d * d;
        m2 += d2;
        m3 += d2 * d;
        m4 += d2 * d2;
    }
    let (m2, m3, m4) = (m2 / n, m3 / n, m4 / n);
    if m2 <= 0.0 {
        return (mean, 0.0, 0.0, -3.0);
    }
    (mean, m2, m3 / m2.powf(1.5), m4 / (m2 * m2) - 3.0)
}

/// A named set of tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TokenSet {
    /// Tokens starting with a space (word starts in GPT-2/Gemma vocabularies).
    LeadingSpace,
    /// Tokens whose first letter (after a leading space) is upper case.
    Capitalised,
    /// Tokens made of digits (after a leading space).
    Digits,
    /// Tokens of one character (after a leading space).
    SingleCharacter,
    /// Tokens whose first letter (after a leading space) is this letter, either case.
    StartsWith(char),
}

impl TokenSet {
    /// The set's name, as in tables.
    pub fn name(&self) -> String {
        match self {
            TokenSet::LeadingSpace => "leading_space".into(),
            TokenSet::Capitalised => "capitalised".into(),
            TokenSet::Digits => "digits".into(),
            TokenSet::SingleCharacter => "single_character".into(),
            TokenSet::StartsWith(c) => format!("starts_with_{}", c.to_ascii_lowercase()),
        }
    }

    /// Whether `token` (its decoded text) is in the set.
    pub fn contains(&self, token: &str) -> bool {
        let body = token.strip_prefix(' ').unwrap_or(token);
        match self {
            TokenSet::LeadingSpace => token.starts_with(' ') && token.len() > 1,
            TokenSet::Capitalised => body.chars().next().is_some_and(char::is_uppercase),
            TokenSet::Digits => !body.is_empty() && body.chars().all(|c| c.is_ascii_digit()),
            TokenSet::SingleCharacter => body.chars().count() == 1,
            TokenSet::StartsWith(l) => body
                .chars()
                .next()
                .is_some_and(|c| c.to_lowercase().eq(l.to_lowercase())),
        }
    }

    /// The default sets as membership masks over a vocabulary (each token's text, by id), with
    /// their names: the `sets` argument of [`logit_enrichment`].
    pub fn default_masks(vocab: &[String]) -> Vec<(String, Vec<bool>)> {
        Self::defaults()
            .into_iter()
            .map(|s| (s.name(), vocab.iter().map(|t| s.contains(t)).collect()))
            .collect()
    }

    /// The default sets: the four shape sets and the 26 first-letter sets.
    pub fn defaults() -> Vec<TokenSet> {
        let mut v = vec![
            TokenSet::LeadingSpace,
            TokenSet::Capitalised,
            TokenSet::Digits,
            TokenSet::SingleCharacter,
        ];
        v.extend(('a'..='z').map(TokenSet::StartsWith));
        v
    }
}

/// One latent's enrichment in one token set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetEnrichment {
    /// The set's name.
    pub set: String,
    /// Tokens in the set.
    pub set_size: usize,
    /// Top tokens looked at.
    pub top_k: usize,
    /// How many of them are in the set.
    pub hits: usize,
    /// `P[X ≥ hits]` for X hypergeometric (vocabulary, set size, k draws).
    pub hypergeom_p: f64,
    /// Mann–Whitney U of the set's weights against the others'.
    pub mann_whitney_u: f64,
    /// One-sided p-value that the set's weights are larger.
    pub mann_whitney_p: f64,
}

/// `ln(i!)` for `i` in `0..=n`.
fn ln_factorials(n: usize) -> Vec<f64> {
    let mut v = Vec::with_capacity(n + 1);
    let mut acc = 0.0;
    v.push(0.0);
    for i in 1..=n {
        acc += (i as f64).ln();
        v.push(acc);
    }
    v
}

/// `P[X ≥ hits]` for X ~ Hypergeometric(population, successes, draws) — scipy's
/// `hypergeom.sf(hits - 1, population, successes, draws)`.
pub fn hypergeom_sf(hits: usize, population: usize, successes: usize, draws: usize) -> f64 {
    if hits == 0 {
        return 1.0;
    }
    hypergeom_sf_with(
        &ln_factorials(population),
        hits,
        population,
        successes,
        draws,
    )
}

/// [`hypergeom_sf`] with `ln(i!)` for `i ≤ population` given (`lf`, from [`ln_factorials`]), so
/// that many tests over one vocabulary build the table once.
fn hypergeom_sf_with(
    lf: &[f64],
    hits: usize,
    population: usize,
    successes: usize,
    draws: usize,
) -> f64 {
    if hits == 0 {
        return 1.0;
    }
    let ln_choose = |n: usize, k: usize| lf[n] - lf[k] - lf[n - k];
    let total = ln_choose(population, draws);
    let hi = successes.min(draws);
    let lo = draws.saturating_sub(population - successes);
    let mut p = 0.0;
    for x in hits.max(lo)..=hi {
        p += (ln_choose(successes, x) + ln_choose(population - successes, draws - x) - total).exp();
    }
    p.min(1.0)
}

/// The standard normal's upper tail, `P[Z > z]`, as scipy's `norm.sf`: `erfc(z/√2)/2` with
/// libm's erfc (musl's, within an ulp or two), so small p-values keep their relative precision
/// down to the double range's end (`z` ≈ 37.5).
pub fn normal_sf(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

/// Average ranks (1-based, ties averaged) of `values`, and the tie term Σ(t³ − t).
pub fn ranks(values: &[f32]) -> (Vec<f64>, f64) {
    let mut scratch = Scratch::default();
    let tie_term = scratch.rank(values);
    (scratch.ranks, tie_term)
}

/// Buffers reused from one latent to the next: the sorted `(value key, token)` pairs and the
/// ranks.
#[derive(Debug, Default)]
struct Scratch {
    /// `(total_order_key(value) << 32) | token`, ascending after [`Scratch::rank`].
    keys: Vec<u64>,
    /// Each token's average rank.
    ranks: Vec<f64>,
}

impl Scratch {
    /// Sorts `values` (ties by token id) and fills the average ranks; returns the tie term.
    /// Values that compare equal (`==`, so −0 and +0 too) share a rank, as in scipy's
    /// `rankdata`.
    fn rank(&mut self, values: &[f32]) -> f64 {
        let n = values.len();
        self.keys.clear();
        self.keys.extend(
            values
                .iter()
                .enumerate()
                .map(|(i, &v)| (u64::from(total_order_key(v)) << 32) | i as u64),
        );
        self.keys.sort_unstable();
        self.ranks.clear();
        self.ranks.resize(n, 0.0);
        let token = |key: u64| (key & 0xffff_ffff) as usize;
        let mut tie_term = 0.0;
        let mut i = 0;
        while i < n {
            let v = values[token(self.keys[i])];
            let mut j = i + 1;
            while j < n && values[token(self.keys[j])] == v {
                j += 1;
            }
            let avg = (i + j + 1) as f64 / 2.0; // ranks i+1 ..= j
            let t = (j - i) as f64;
            tie_term += t * t * t - t;
            for &key in &self.keys[i..j] {
                self.ranks[token(key)] = avg;
            }
            i = j;
        }
        tie_term
    }

    /// The `k` largest values' tokens after [`Scratch::rank`]: largest first by
    /// `f32::total_cmp`, ties to the lower token id (numpy's stable argsort of −w), in no
    /// particular order.
    fn top(&self, k: usize) -> impl Iterator<Item = usize> + '_ {
        let n = self.keys.len();
        let value = |p: usize| self.keys[p] >> 32;
        // The tie group holding the k-th largest: keys[g0..g1].
        let boundary = value(n - k);
        let g0 = (0..n - k)
            .rev()
            .find(|&p| value(p) != boundary)
            .map_or(0, |p| p + 1);
        let g1 = (n - k..n).find(|&p| value(p) != boundary).unwrap_or(n);
        // Everything above the group, then its lowest tokens (the group is in token order).
        let from_group = k - (n - g1);
        self.keys[g1..n]
            .iter()
            .chain(&self.keys[g0..g0 + from_group])
            .map(|&key| (key & 0xffff_ffff) as usize)
    }
}

/// One-sided Mann–Whitney U (`greater`) of the members against the rest from precomputed
/// [`ranks`]: `(U, p)` with scipy's tie and continuity corrections.
pub fn mann_whitney_from_ranks(ranks: &[f64], tie_term: f64, members: &[bool]) -> (f64, f64) {
    let n1 = members.iter().filter(|m| **m).count();
    let rank_sum: f64 = ranks
        .iter()
        .zip(members)
        .filter(|(_, m)| **m)
        .map(|(r, _)| r)
        .sum();
    mann_whitney_from_rank_sum(rank_sum, n1, ranks.len(), tie_term)
}

/// `(U, p)` of the one-sided test from the members' rank sum, their count `n1` of `n` values
/// and the tie term.
fn mann_whitney_from_rank_sum(rank_sum: f64, n1: usize, n: usize, tie_term: f64) -> (f64, f64) {
    let n2 = n - n1;
    if n1 == 0 || n2 == 0 {
        return (0.0, 1.0);
    }
    let (n1f, n2f, nf) = (n1 as f64, n2 as f64, n as f64);
    let u = rank_sum - n1f * (n1f + 1.0) / 2.0;
    let mu = n1f * n2f / 2.0;
    let sigma = (n1f * n2f / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)))).sqrt();
    if sigma <= 0.0 {
        return (u, 1.0);
    }
    (u, normal_sf((u - mu - 0.5) / sigma))
}

/// One-sided Mann–Whitney U of `values[members]` against the rest (`greater`): `(U, p)`.
pub fn mann_whitney_greater(values: &[f32], members: &[bool]) -> (f64, f64) {
    let (r, t) = ranks(values);
    mann_whitney_from_ranks(&r, t, members)
}

/// Enrichment of one latent's weights in each set (`membership[s][token]`), looking at its
/// top `k` tokens.
pub fn enrichment(
    weights: &[f32],
    sets: &[(String, Vec<bool>)],
    k: usize,
) -> Result<Vec<SetEnrichment>> {
    Ok(PreparedSets::new(sets, weights.len(), k)?.enrichment(weights, &mut Scratch::default()))
}

/// Token sets checked once for many latents over one vocabulary: each set's members (ascending
/// token ids) and `ln(i!)` up to the vocabulary's size.
struct PreparedSets<'a> {
    sets: &'a [(String, Vec<bool>)],
    members: Vec<Vec<u32>>,
    ln_factorials: Vec<f64>,
    k: usize,
}

impl<'a> PreparedSets<'a> {
    /// Checks `k` and every set's length against the vocabulary.
    fn new(sets: &'a [(String, Vec<bool>)], vocab: usize, k: usize) -> Result<Self> {
        if k == 0 || k > vocab {
            return Err(GeometryError::InvalidParameter {
                name: "k",
                expected: format!("1 ≤ k ≤ {vocab}"),
                found: k.to_string(),
            });
        }
        if vocab > u32::MAX as usize {
            return Err(GeometryError::InvalidInput {
                what: "vocabulary".into(),
                message: format!("{vocab} tokens; at most {} are supported", u32::MAX),
            });
        }
        let members = sets
            .iter()
            .map(|(name, m)| {
                if m.len() != vocab {
                    return Err(GeometryError::InvalidInput {
                        what: format!("token set {name}"),
                        message: format!("{} memberships for a vocabulary of {vocab}", m.len()),
                    });
                }
                Ok((0..vocab as u32).filter(|&t| m[t as usize]).collect())
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            sets,
            members,
            ln_factorials: ln_factorials(vocab),
            k,
        })
    }

    /// One latent's enrichment in each set; `weights` has the vocabulary's length.
    fn enrichment(&self, weights: &[f32], scratch: &mut Scratch) -> Vec<SetEnrichment> {
        let (v, k) = (weights.len(), self.k);
        let tie_term = scratch.rank(weights);
        let top: Vec<usize> = scratch.top(k).collect();
        self.sets
            .iter()
            .zip(&self.members)
            .map(|((name, m), members)| {
                let hits = top.iter().filter(|&&t| m[t]).count();
                // Summed in token order, as `mann_whitney_from_ranks` does.
                let rank_sum: f64 = members.iter().map(|&t| scratch.ranks[t as usize]).sum();
                let (u, p) = mann_whitney_from_rank_sum(rank_sum, members.len(), v, tie_term);
                SetEnrichment {
                    set: name.clone(),
                    set_size: members.len(),
                    top_k: k,
                    hits,
                    hypergeom_p: hypergeom_sf_with(&self.ln_factorials, hits, v, members.len(), k),
                    mann_whitney_u: u,
                    mann_whitney_p: p,
                }
            })
            .collect()
    }
}

/// Moments and set enrichment for each latent of `latents`, computing `W_dec[latents] · W_U` in
/// batches of `batch` rows (memory: batch × vocab floats).
///
/// # Shapes
/// - `w_dec`: `[d_sae, d_model]`, `w_u`: `[d_model, vocab]`; each set has `vocab` entries.
pub fn logit_enrichment(
    w_dec: &Tensor<2>,
    w_u: &Tensor<2>,
    latents: &[usize],
    sets: &[(String, Vec<bool>)],
    k: usize,
    batch: usize,
) -> Result<Vec<(LogitWeightStats, Vec<SetEnrichment>)>> {
    let [d_sae, d] = w_dec.dims();
    let [d_u, vocab] = w_u.dims();
    if d != d_u || batch == 0 {
        return Err(GeometryError::InvalidInput {
            what: "w_dec, w_u, batch".into(),
            message: format!("W_dec is [{d_sae}, {d}], W_U is [{d_u}, {vocab}], batch {batch}"),
        });
    }
    crate::logit_lens::check_latents(latents, d_sae)?;
    let prepared = PreparedSets::new(sets, vocab, k)?;
    let mut out = Vec::with_capacity(latents.len());
    for chunk in latents.chunks(batch) {
        let logits = crate::logit_lens::latent_logits(w_dec, w_u, chunk);
        let rows = with_host_values(logits, |logits| {
            chunk
                .par_iter()
                .zip(logits.par_chunks(vocab))
                .map_init(Scratch::default, |scratch, (&latent, row)| {
                    let (mean, variance, skewness, kurtosis) = moments(row);
                    let stats = LogitWeightStats {
                        latent,
                        mean,
                        variance,
                        skewness,
                        kurtosis,
                    };
                    (stats, prepared.enrichment(row, scratch))
                })
                .collect::<Vec<_>>()
        })?;
        out.extend(rows);
    }
    Ok(out)
}

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

use sae_core::burn::tensor::Tensor;
use sae_core::device::tensor_to_vec;
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
    let lf = ln_factorials(population);
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

/// The standard normal's upper tail, `P[Z > z]` (erfc with relative error below 1.2e-7).
pub fn normal_sf(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let y = t
        * (-x * x - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    let erfc = if x >= 0.0 { y } else { 2.0 - y };
    0.5 * erfc
}

/// Average ranks (1-based, ties averaged) of `values`, and the tie term Σ(t³ − t).
pub fn ranks(values: &[f32]) -> (Vec<f64>, f64) {
    let n = values.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut r = vec![0.0; n];
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && values[order[j]] == values[order[i]] {
            j += 1;
        }
        let avg = (i + j + 1) as f64 / 2.0; // ranks i+1 ..= j
        let t = (j - i) as f64;
        tie_term += t * t * t - t;
        for &k in &order[i..j] {
            r[k] = avg;
        }
        i = j;
    }
    (r, tie_term)
}

/// One-sided Mann–Whitney U (`greater`) of the members against the rest from precomputed
/// [`ranks`]: `(U, p)` with scipy's tie and continuity corrections.
pub fn mann_whitney_from_ranks(ranks: &[f64], tie_term: f64, members: &[bool]) -> (f64, f64) {
    let n = ranks.len();
    let n1 = members.iter().filter(|m| **m).count();
    let n2 = n - n1;
    if n1 == 0 || n2 == 0 {
        return (0.0, 1.0);
    }
    let rank_sum: f64 = ranks
        .iter()
        .zip(members)
        .filter(|(_, m)| **m)
        .map(|(r, _)| r)
        .sum();
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
    let v = weights.len();
    if k == 0 || k > v {
        return Err(GeometryError::InvalidParameter {
            name: "k",
            expected: format!("1 ≤ k ≤ {v}"),
            found: k.to_string(),
        });
    }
    let mut order: Vec<usize> = (0..v).collect();
    // Largest first, ties to the lower token id (numpy's stable argsort of −w).
    order.select_nth_unstable_by(k - 1, |&a, &b| {
        weights[b].total_cmp(&weights[a]).then(a.cmp(&b))
    });
    let top = &order[..k];
    let (r, tie_term) = ranks(weights);
    sets.iter()
        .map(|(name, m)| {
            if m.len() != v {
                return Err(GeometryError::InvalidInput {
                    what: format!("token set {name}"),
                    message: format!("{} memberships for a vocabulary of {v}", m.len()),
                });
            }
            let size = m.iter().filter(|x| **x).count();
            let hits = top.iter().filter(|&&t| m[t]).count();
            let (u, p) = mann_whitney_from_ranks(&r, tie_term, m);
            Ok(SetEnrichment {
                set: name.clone(),
                set_size: size,
                top_k: k,
                hits,
                hypergeom_p: hypergeom_sf(hits, v, size, k),
                mann_whitney_u: u,
                mann_whitney_p: p,
            })
        })
        .collect()
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
    let mut out = Vec::with_capacity(latents.len());
    for chunk in latents.chunks(batch) {
        let logits = tensor_to_vec(crate::logit_lens::latent_logits(w_dec, w_u, chunk))?;
        for (j, &latent) in chunk.iter().enumerate() {
            let row = &logits[j * vocab..(j + 1) * vocab];
            let (mean, variance, skewness, kurtosis) = moments(row);
            out.push((
                LogitWeightStats {
                    latent,
                    mean,
                    variance,
                    skewness,
                    kurtosis,
                },
                enrichment(row, sets, k)?,
            ));
        }
    }
    Ok(out)
}

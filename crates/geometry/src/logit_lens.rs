//! The logit lens of SAE latents: which tokens each latent's decoder direction boosts and
//! suppresses, the top-k and bottom-k of W_dec · W_U, computed in latent batches so memory stays
//! bounded by `batch × vocab` floats.

use sae_core::burn::tensor::Tensor;
use sae_core::device::{is_host_memory, tensor_to_vec};
use sae_core::topk::{Extreme, row_top_k, row_top_k_host};

use crate::error::{GeometryError, Result};

/// Top and bottom tokens of one latent.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentTokens {
    /// The latent's index.
    pub latent: usize,
    /// The k most boosted token ids, largest first.
    pub top_ids: Vec<u32>,
    /// Their logit weights.
    pub top_values: Vec<f32>,
    /// The k most suppressed token ids, smallest first.
    pub bottom_ids: Vec<u32>,
    /// Their logit weights.
    pub bottom_values: Vec<f32>,
}

/// Settings of [`logit_lens`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogitLensConfig {
    /// Tokens kept at each end.
    pub k: usize,
    /// Latents per batch (memory: batch × vocab floats).
    pub batch: usize,
}

impl Default for LogitLensConfig {
    fn default() -> Self {
        Self { k: 10, batch: 256 }
    }
}

/// Top-k and bottom-k of `w_dec[latents] · w_u` for the given latents (all when `None`).
///
/// # Shapes
/// - `w_dec`: `[d_sae, d_model]`, `w_u`: `[d_model, vocab]`.
pub fn logit_lens(
    w_dec: &Tensor<2>,
    w_u: &Tensor<2>,
    latents: Option<&[usize]>,
    config: LogitLensConfig,
) -> Result<Vec<LatentTokens>> {
    let [d_sae, d] = w_dec.dims();
    let [d_u, vocab] = w_u.dims();
    if d != d_u {
        return Err(GeometryError::InvalidInput {
            what: "w_dec, w_u".into(),
            message: format!("W_dec is [{d_sae}, {d}] but W_U is [{d_u}, {vocab}]"),
        });
    }
    if config.k == 0 || config.k > vocab || config.batch == 0 {
        return Err(GeometryError::InvalidParameter {
            name: "k, batch",
            expected: format!("1 ≤ k ≤ {vocab}, batch ≥ 1"),
            found: format!("k = {}, batch = {}", config.k, config.batch),
        });
    }
    let all: Vec<usize> = (0..d_sae).collect();
    let latents = latents.unwrap_or(&all);
    check_latents(latents, d_sae)?;
    let k = config.k;
    let mut out = Vec::with_capacity(latents.len());
    for chunk in latents.chunks(config.batch) {
        let logits = latent_logits(w_dec, w_u, chunk); // [b, vocab]
        let (top, bottom) = if is_host_memory(&logits.device()) {
            // One read of the logits, both ends selected on the host.
            let host = tensor_to_vec(logits)?;
            (
                row_top_k_host(&host, vocab, k, Extreme::Largest)?,
                row_top_k_host(&host, vocab, k, Extreme::Smallest)?,
            )
        } else {
            (
                row_top_k(logits.clone(), k, Extreme::Largest)?,
                row_top_k(logits, k, Extreme::Smallest)?,
            )
        };
        for (j, &latent) in chunk.iter().enumerate() {
            let s = j * k..(j + 1) * k;
            out.push(LatentTokens {
                latent,
                top_ids: top.indices[s.clone()].to_vec(),
                top_values: top.values[s.clone()].to_vec(),
                bottom_ids: bottom.indices[s.clone()].to_vec(),
                bottom_values: bottom.values[s].to_vec(),
            });
        }
    }
    Ok(out)
}

/// An error unless every latent is below `d_sae`.
pub(crate) fn check_latents(latents: &[usize], d_sae: usize) -> Result<()> {
    match latents.iter().find(|&&l| l >= d_sae) {
        Some(&bad) => Err(GeometryError::InvalidParameter {
            name: "latents",
            expected: format!("indices below d_sae = {d_sae}"),
            found: bad.to_string(),
        }),
        None => Ok(()),
    }
}

/// `W_dec[chunk] · W_U`, `[chunk.len(), vocab]`.
pub(crate) fn latent_logits(w_dec: &Tensor<2>, w_u: &Tensor<2>, chunk: &[usize]) -> Tensor<2> {
    let idx: Vec<i64> = chunk.iter().map(|&l| l as i64).collect();
    let b = idx.len();
    w_dec
        .clone()
        .select(
            0,
            sae_core::device::int_tensor_from_vec(idx, [b], &w_dec.device()),
        )
        .matmul(w_u.clone())
}

//! The KV cache of generation.

use sae_core::burn::tensor::Tensor;

/// Per-layer keys and values of earlier positions.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    pub(crate) layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .next()
            .map_or(0, |(k, _)| k.dims()[1])
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Appends this step's keys and values to a layer's cache slot (when caching) and returns the
/// keys and values of every position so far.
///
/// # Shapes
/// - `k`, `v`: `[batch, new_pos, kv_heads, d_head]` → `[batch, past + new_pos, kv_heads, d_head]`.
pub(crate) fn append(
    slot: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
    k: Tensor<4>,
    v: Tensor<4>,
) -> (Tensor<4>, Tensor<4>) {
    let Some(slot) = slot else { return (k, v) };
    let (k, v) = match slot.take() {
        Some((pk, pv)) => (Tensor::cat(vec![pk, k], 1), Tensor::cat(vec![pv, v], 1)),
        None => (k, v),
    };
    *slot = Some((k.clone(), v.clone()));
    (k, v)
}

//! Input normalisation (`normalize_activations`) and its inverse, as SAELens applies them.

use burn::tensor::Tensor;

use crate::config::NormalizeActivations;

/// SAELens's epsilon in `layer_norm` mode.
pub const LAYER_NORM_EPS: f32 = 1e-5;

/// Per-input state saved by the encode so that the decode can undo the normalisation.
#[derive(Debug, Clone)]
#[non_exhaustive]
#[allow(clippy::large_enum_variant)] // one per encode call; boxing would only add an allocation
pub enum NormState {
    /// Nothing to undo (`none`, `expected_average_only_in`, `covariance_whitening`).
    Identity,
    /// `constant_norm_rescale`: the factor √d_in/‖x‖ per row, `[n, 1]`.
    Rescale {
        /// The factor each row was multiplied by.
        coeff: Tensor<2>,
    },
    /// `layer_norm`: each row's mean and unbiased standard deviation, `[n, 1]` each.
    LayerNorm {
        /// Row means.
        mu: Tensor<2>,
        /// Row standard deviations (unbiased, before adding the epsilon).
        std: Tensor<2>,
    },
}

/// Applies the input normalisation.
///
/// # Shapes
/// - `x`: `[n, d_in]` → `[n, d_in]`, plus the state to undo it.
pub fn normalize_in(mode: NormalizeActivations, x: Tensor<2>) -> (Tensor<2>, NormState) {
    match mode {
        NormalizeActivations::ConstantNormRescale => {
            let d_in = x.dims()[1] as f32;
            let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt();
            let coeff = norm.recip().mul_scalar(d_in.sqrt());
            (x * coeff.clone(), NormState::Rescale { coeff })
        }
        NormalizeActivations::LayerNorm => {
            let mu = x.clone().mean_dim(1);
            let centred = x - mu.clone();
            let std = centred.clone().var(1).sqrt();
            let out = centred / (std.clone().add_scalar(LAYER_NORM_EPS));
            (out, NormState::LayerNorm { mu, std })
        }
        NormalizeActivations::None
        | NormalizeActivations::ExpectedAverageOnlyIn
        | NormalizeActivations::CovarianceWhitening => (x, NormState::Identity),
    }
}

/// Undoes [`normalize_in`] on a reconstruction.
///
/// # Shapes
/// - `y`: `[n, d_in]` → `[n, d_in]`; the state's tensors are `[n, 1]`.
pub fn normalize_out(y: Tensor<2>, state: &NormState) -> Tensor<2> {
    match state {
        NormState::Identity => y,
        NormState::Rescale { coeff } => y / coeff.clone(),
        NormState::LayerNorm { mu, std } => y * std.clone() + mu.clone(),
    }
}

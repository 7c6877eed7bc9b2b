//! What to train: architecture, optimiser, schedules (SAELens's names and defaults).

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

/// The SAE being trained and its sparsity mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum TrainArchitecture {
    /// ReLU with an L1 penalty on activations weighted by decoder-row norms (SAELens's
    /// `standard`): `l1_coefficient · mean_b Σ_j f_bj ‖W_dec_j‖`, the coefficient warmed up
    /// linearly over `l1_warm_up_steps`.
    Standard {
        /// The L1 coefficient.
        l1_coefficient: f64,
        /// Steps over which the coefficient rises from 0.
        l1_warm_up_steps: usize,
    },
    /// The k largest pre-activations of each row (SAELens's `topk`), with the AuxK loss on
    /// dead latents.
    TopK {
        /// Active latents per row.
        k: usize,
        /// Weight of the AuxK loss.
        aux_coefficient: f64,
    },
    /// The `k · batch` largest pre-activations of the whole batch (SAELens's `batchtopk`),
    /// saved as a JumpReLU SAE whose threshold is the running mean of the smallest kept
    /// activation.
    BatchTopK {
        /// Mean active latents per row.
        k: f64,
        /// Weight of the AuxK loss.
        aux_coefficient: f64,
        /// Learning rate of the threshold's moving average.
        threshold_lr: f64,
    },
    /// JumpReLU with a trained per-latent threshold θ (SAELens's `jumprelu`, DeepMind's
    /// recipe): `f = h · H(h − θ)`, the L0 penalty `l0_coefficient · mean_b Σ_j H(h_bj − θ_j)`
    /// (SAELens's `step` sparsity loss), and the straight-through estimator with a rectangle
    /// kernel of width `bandwidth` for θ's gradient (none to the pre-activations). θ starts at
    /// `init_threshold` and is kept ≥ 0.
    JumpRelu {
        /// The L0 coefficient.
        l0_coefficient: f64,
        /// Steps over which the coefficient rises from 0.
        l0_warm_up_steps: usize,
        /// Width of the rectangle kernel (SAELens: 0.05).
        bandwidth: f64,
        /// θ at the start (SAELens: 0.01).
        init_threshold: f64,
    },
    /// BatchTopK with nested reconstruction losses (SAELens's `matryoshka_batchtopk`): every
    /// prefix of the latents up to each width of [`TrainConfig::matryoshka_widths`] also
    /// reconstructs the input, its MSE added to the loss. Saved, as BatchTopK, as a JumpReLU SAE.
    MatryoshkaBatchTopK {
        /// Mean active latents per row.
        k: f64,
        /// Weight of the AuxK loss.
        aux_coefficient: f64,
        /// Learning rate of the threshold's moving average.
        threshold_lr: f64,
    },
}

impl TrainArchitecture {
    /// SAELens's name.
    pub fn as_str(&self) -> &'static str {
        match self {
            TrainArchitecture::Standard { .. } => "standard",
            TrainArchitecture::TopK { .. } => "topk",
            TrainArchitecture::BatchTopK { .. } => "batchtopk",
            TrainArchitecture::JumpRelu { .. } => "jumprelu",
            TrainArchitecture::MatryoshkaBatchTopK { .. } => "matryoshka_batchtopk",
        }
    }

    /// Whether the SAE keeps the k largest pre-activations (of a row or of the batch).
    pub fn is_topk(&self) -> bool {
        matches!(
            self,
            TrainArchitecture::TopK { .. }
                | TrainArchitecture::BatchTopK { .. }
                | TrainArchitecture::MatryoshkaBatchTopK { .. }
        )
    }

    /// Whether it is saved as a JumpReLU SAE (a threshold per latent).
    pub fn saves_as_jumprelu(&self) -> bool {
        matches!(
            self,
            TrainArchitecture::BatchTopK { .. }
                | TrainArchitecture::JumpRelu { .. }
                | TrainArchitecture::MatryoshkaBatchTopK { .. }
        )
    }
}

/// Everything a training run needs besides data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Input width.
    pub d_in: usize,
    /// Number of latents.
    pub d_sae: usize,
    /// Architecture and sparsity.
    pub architecture: TrainArchitecture,
    /// Adam learning rate (SAELens: 3e-4).
    pub lr: f64,
    /// Adam β₁ (0.9).
    pub adam_beta1: f64,
    /// Adam β₂ (0.999).
    pub adam_beta2: f64,
    /// Linear learning-rate warm-up steps (0).
    pub lr_warm_up_steps: usize,
    /// Linear decay to 0 over the last steps (0).
    pub lr_decay_steps: usize,
    /// Total steps (for the decay schedule).
    pub total_steps: usize,
    /// Gradient-norm clip (SAELens: 1.0).
    pub clip_grad_norm: f64,
    /// Decoder rows start with this norm (SAELens: 0.1); `None` for plain Kaiming-uniform.
    pub decoder_init_norm: Option<f64>,
    /// Keep decoder rows at unit norm: gradients parallel to a row are removed and rows are
    /// renormalised after each step.
    pub normalize_decoder: bool,
    /// Subtract `b_dec` from the input before encoding.
    pub apply_b_dec_to_input: bool,
    /// Scale inputs to an average norm of √d_in (SAELens's `expected_average_only_in`),
    /// estimated from the first batches and folded into the weights at the end.
    pub normalize_activations: bool,
    /// Steps without firing after which a latent counts as dead (SAELens: 1000).
    pub dead_feature_window: usize,
    /// Seed of the initialisation.
    pub seed: u64,
    /// Matryoshka levels (SAELens's `matryoshka_widths`): the nested prefix widths whose
    /// reconstructions also enter the loss, strictly increasing. Widths at or above `d_sae` are
    /// dropped and `d_sae` is the last level (SAELens appends it too). Only
    /// [`TrainArchitecture::MatryoshkaBatchTopK`] reads it.
    #[serde(default)]
    pub matryoshka_widths: Vec<usize>,
}

impl TrainConfig {
    /// SAELens's defaults for an architecture.
    pub fn new(
        d_in: usize,
        d_sae: usize,
        architecture: TrainArchitecture,
        total_steps: usize,
    ) -> Self {
        let topk = architecture.is_topk();
        Self {
            d_in,
            d_sae,
            architecture,
            lr: 3e-4,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            lr_warm_up_steps: 0,
            lr_decay_steps: 0,
            total_steps,
            clip_grad_norm: 1.0,
            decoder_init_norm: Some(0.1),
            // TopK-style SAEs rank pre-activations, which decoder norms would distort: keep
            // rows at unit norm (SAELens reaches the same end with rescale_acts_by_decoder_norm).
            normalize_decoder: topk,
            apply_b_dec_to_input: false,
            normalize_activations: false,
            dead_feature_window: 1000,
            seed: 42,
            matryoshka_widths: Vec::new(),
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        if self.d_in == 0 || self.d_sae == 0 {
            return Err(StoreError::invalid(
                "d_in / d_sae",
                "positive",
                format!("{} / {}", self.d_in, self.d_sae),
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(StoreError::invalid("lr", "a positive number", self.lr));
        }
        match self.architecture {
            TrainArchitecture::TopK { k, .. } if k == 0 || k > self.d_sae => {
                return Err(StoreError::invalid(
                    "k",
                    format!("in 1..={}", self.d_sae),
                    k,
                ));
            }
            TrainArchitecture::BatchTopK { k, .. }
            | TrainArchitecture::MatryoshkaBatchTopK { k, .. }
                if !(k > 0.0 && k <= self.d_sae as f64) =>
            {
                return Err(StoreError::invalid(
                    "k",
                    format!("in (0, {}]", self.d_sae),
                    k,
                ));
            }
            TrainArchitecture::Standard { l1_coefficient, .. } if l1_coefficient < 0.0 => {
                return Err(StoreError::invalid(
                    "l1_coefficient",
                    "non-negative",
                    l1_coefficient,
                ));
            }
            TrainArchitecture::JumpRelu {
                l0_coefficient,
                bandwidth,
                init_threshold,
                ..
            } => {
                if !(l0_coefficient >= 0.0 && l0_coefficient.is_finite()) {
                    return Err(StoreError::invalid(
                        "l0_coefficient",
                        "non-negative",
                        l0_coefficient,
                    ));
                }
                if !(bandwidth > 0.0 && bandwidth.is_finite()) {
                    return Err(StoreError::invalid("bandwidth", "positive", bandwidth));
                }
                if !(init_threshold >= 0.0 && init_threshold.is_finite()) {
                    return Err(StoreError::invalid(
                        "init_threshold",
                        "non-negative",
                        init_threshold,
                    ));
                }
            }
            _ => {}
        }
        if let TrainArchitecture::MatryoshkaBatchTopK { .. } = self.architecture {
            let w = &self.matryoshka_widths;
            if w.contains(&0) || w.windows(2).any(|p| p[0] >= p[1]) {
                return Err(StoreError::invalid(
                    "matryoshka_widths",
                    "positive and strictly increasing",
                    format!("{w:?}"),
                ));
            }
        }
        if self.lr_warm_up_steps + self.lr_decay_steps > self.total_steps.max(1) {
            return Err(StoreError::invalid(
                "lr_warm_up_steps + lr_decay_steps",
                format!("at most total_steps ({})", self.total_steps),
                self.lr_warm_up_steps + self.lr_decay_steps,
            ));
        }
        Ok(())
    }

    /// The learning rate at `step` (0-based): SAELens's constant schedule with linear warm-up
    /// (from lr/warm_up) and linear decay to 0 over the last `lr_decay_steps`.
    pub fn lr_at(&self, step: usize) -> f64 {
        let w = self.lr_warm_up_steps;
        if w > 0 && step < w {
            if w == 1 {
                return self.lr;
            }
            let start = 1.0 / w as f64;
            return self.lr * (start + (1.0 - start) * step as f64 / (w - 1) as f64);
        }
        let d = self.lr_decay_steps;
        let decay_start = self.total_steps.saturating_sub(d);
        if d > 0 && step >= decay_start {
            return self.lr * (1.0 - (step - decay_start) as f64 / d as f64).max(0.0);
        }
        self.lr
    }

    /// The sparsity coefficient at `step` (linear warm-up): the L1 coefficient of a standard
    /// SAE, the L0 coefficient of a JumpReLU SAE, 0 for the top-k ones.
    pub fn l1_at(&self, step: usize) -> f64 {
        let (c, warm_up) = match self.architecture {
            TrainArchitecture::Standard {
                l1_coefficient,
                l1_warm_up_steps,
            } => (l1_coefficient, l1_warm_up_steps),
            TrainArchitecture::JumpRelu {
                l0_coefficient,
                l0_warm_up_steps,
                ..
            } => (l0_coefficient, l0_warm_up_steps),
            _ => return 0.0,
        };
        if warm_up == 0 {
            c
        } else {
            c * ((step + 1) as f64 / warm_up as f64).min(1.0)
        }
    }

    /// The Matryoshka levels below `d_sae` (the inner reconstructions), for the architecture
    /// that has them; empty otherwise.
    pub fn inner_levels(&self) -> Vec<usize> {
        match self.architecture {
            TrainArchitecture::MatryoshkaBatchTopK { .. } => self
                .matryoshka_widths
                .iter()
                .copied()
                .filter(|&w| w < self.d_sae)
                .collect(),
            _ => Vec::new(),
        }
    }
}

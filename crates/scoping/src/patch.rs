//! The patch: the residual stream entering a layer replaced (or added to) at the placeholder's
//! positions, on the prefill pass only, one scale per batch row.

use gpt2_gemma_models::{Activation, HookPoint, Pass};
use sae_core::burn::tensor::Tensor;
use sae_core::device::tensor_from_vec;
use serde::{Deserialize, Serialize};

use crate::error::{Result, ScopingError};

/// Replace the residual at the placeholder, or add to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PatchMode {
    /// `h ← s·d̂` (the tutorial).
    #[default]
    Replace,
    /// `h ← h + s·d̂`.
    Add,
}

/// What a scale means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScaleKind {
    /// The patched vector's L2 norm is the scale (the tutorial).
    #[default]
    Absolute,
    /// The patched vector's norm is `scale × ‖h‖` of the residual it replaces, per position.
    RelativeToResidual,
}

/// A patch of one direction at one layer, with one scale per batch row.
#[derive(Debug, Clone, PartialEq)]
pub struct Patch {
    /// The hook patched: `blocks.{layer}.hook_resid_pre`.
    pub layer: usize,
    /// Positions of the placeholder.
    pub positions: Vec<usize>,
    /// The direction, normalised to unit L2 norm.
    pub direction: Vec<f32>,
    /// One scale per batch row.
    pub scales: Vec<f32>,
    /// Replace or add.
    pub mode: PatchMode,
    /// Absolute or relative scales.
    pub kind: ScaleKind,
}

/// `v / ‖v‖`; an error for a zero or non-finite vector.
pub fn unit(v: &[f32]) -> Result<Vec<f32>> {
    let n = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if !(n.is_finite() && n > 0.0) {
        return Err(ScopingError::invalid(
            "direction",
            "a finite non-zero vector",
            format!("norm {n}"),
        ));
    }
    Ok(v.iter().map(|x| (f64::from(*x) / n) as f32).collect())
}

impl Patch {
    /// A patch of `direction` (normalised here) at `blocks.{layer}.hook_resid_pre`.
    pub fn new(
        layer: usize,
        positions: Vec<usize>,
        direction: &[f32],
        scales: Vec<f32>,
        mode: PatchMode,
        kind: ScaleKind,
    ) -> Result<Self> {
        if scales.is_empty() || scales.iter().any(|s| !s.is_finite()) {
            return Err(ScopingError::invalid(
                "scales",
                "at least one finite scale",
                format!("{scales:?}"),
            ));
        }
        Ok(Self {
            layer,
            positions,
            direction: unit(direction)?,
            scales,
            mode,
            kind,
        })
    }

    /// The hook point patched.
    pub fn point(&self) -> HookPoint {
        HookPoint::ResidPre(self.layer)
    }

    /// The patched residual.
    ///
    /// # Shapes
    /// - `h`: `[batch = scales.len(), pos, d]` → the same.
    pub fn apply(&self, h: Tensor<3>) -> Tensor<3> {
        let [b, p, d] = h.dims();
        let dev = h.device();
        let mut m = vec![0f32; p];
        for &i in &self.positions {
            if i < p {
                m[i] = 1.0;
            }
        }
        let mask = tensor_from_vec(m, [1, p, 1], &dev);
        let dir = tensor_from_vec(self.direction.clone(), [1, 1, d], &dev);
        let mut sc = self.scales.clone();
        sc.resize(b, *self.scales.last().unwrap_or(&0.0));
        let scales = tensor_from_vec(sc, [b, 1, 1], &dev);
        let v: Tensor<3> = match self.kind {
            ScaleKind::Absolute => dir.mul(scales),
            ScaleKind::RelativeToResidual => {
                let norm = h.clone().powf_scalar(2.0).sum_dim(2).sqrt();
                dir.mul(scales).mul(norm)
            }
        };
        match self.mode {
            PatchMode::Replace => h.mul(mask.clone().neg().add_scalar(1.0)).add(v.mul(mask)),
            PatchMode::Add => h.add(v.mul(mask)),
        }
    }

    /// The hook for [`gpt2_gemma_models::Hooks::add`]: patches on the prefill pass only; later
    /// (KV-cached) passes are left untouched.
    pub fn hook(&self) -> impl FnMut(HookPoint, Pass, Activation) -> Activation + '_ {
        move |_, pass, act| match (pass, act) {
            (Pass::Prefill, Activation::Rank3(h)) => Activation::Rank3(self.apply(h)),
            (_, other) => other,
        }
    }
}

//! The dtype an activation cache stores its activations in (SAELens's `dtype` of
//! `CacheActivationsRunnerConfig`).
//!
//! Activations are always computed in f32; a cache may keep them in bfloat16 or float16 to
//! halve its disk, its reads and its page cache. Every reader ([`crate::cache::Shard`], training
//! from a cache, statistics) gets f32 back: the stored value widened exactly. What is lost is the
//! rounding of each value to the narrower dtype (round to nearest even, as torch's `.to(dtype)`):
//!
//! | dtype | bytes | relative rounding error, at most | range |
//! |---|---|---|---|
//! | `float32` (default) | 4 | 0 (the computed value) | f32's |
//! | `bfloat16` | 2 | 2⁻⁸ ≈ 0.39 % | f32's |
//! | `float16` | 2 | 2⁻¹¹ ≈ 0.049 % (for \|x\| ≥ 2⁻¹⁴; below, absolute 2⁻²⁵) | ±65 504 |
//!
//! A value outside float16's range is an error when the shard is written (never a silent ±∞):
//! residual streams with large outlier dimensions need `bfloat16`. The measured effect on a real
//! model (gemma-3-270m's residual stream, and its next-token loss with the rounded activations
//! spliced back) is in docs/BENCHMARKS.md ("Activation dtypes").

use std::fmt;
use std::str::FromStr;

use safetensors::Dtype;
use serde::{Deserialize, Serialize};

use sae_core::StorageDtype;

/// The dtype of cached activations. Parses SAELens's / torch's names (`float32`, `bfloat16`,
/// `float16`, with or without `torch.`) and the short ones (`f32`, `bf16`, `f16`, `fp16`,
/// `half`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ActivationDtype {
    /// `float32`: the activations as computed.
    #[default]
    #[serde(rename = "float32")]
    F32,
    /// `bfloat16`: f32's range, 8 significant bits.
    #[serde(rename = "bfloat16")]
    Bf16,
    /// `float16`: 11 significant bits, values within ±65 504.
    #[serde(rename = "float16")]
    F16,
}

impl ActivationDtype {
    /// Every dtype, default first.
    pub const ALL: [ActivationDtype; 3] = [Self::F32, Self::Bf16, Self::F16];

    /// SAELens's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::Bf16 => "bfloat16",
            Self::F16 => "float16",
        }
    }

    /// The same dtype as a weight storage dtype (for [`sae_core::safetensors_io::encode_f32`]).
    pub fn storage(self) -> StorageDtype {
        match self {
            Self::F32 => StorageDtype::F32,
            Self::Bf16 => StorageDtype::Bf16,
            Self::F16 => StorageDtype::F16,
        }
    }

    /// The safetensors dtype of a shard's activation tensor.
    pub fn safetensors(self) -> Dtype {
        match self {
            Self::F32 => Dtype::F32,
            Self::Bf16 => Dtype::BF16,
            Self::F16 => Dtype::F16,
        }
    }

    /// Bytes per stored value.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::Bf16 | Self::F16 => 2,
        }
    }

    /// The unit roundoff u: a stored value `x̂` of a value `x` in the normal range satisfies
    /// `|x̂ − x| ≤ u·|x|` (0 for float32, which stores the computed value itself).
    pub fn unit_roundoff(self) -> f32 {
        match self {
            Self::F32 => 0.0,
            Self::Bf16 => 2f32.powi(-8),
            Self::F16 => 2f32.powi(-11),
        }
    }

    /// Whether this is the default (`float32`); manifests omit the field then, so caches written
    /// before the field existed keep their spec and its hash.
    pub fn is_f32(&self) -> bool {
        *self == Self::F32
    }

    /// `x` rounded to this dtype and widened back: the value a reader of the cache gets.
    pub fn round(self, x: f32) -> f32 {
        match self {
            Self::F32 => x,
            Self::Bf16 => half::bf16::from_f32(x).to_f32(),
            Self::F16 => half::f16::from_f32(x).to_f32(),
        }
    }
}

impl fmt::Display for ActivationDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ActivationDtype {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.strip_prefix("torch.").unwrap_or(s) {
            "float32" | "float" | "f32" | "fp32" => Ok(Self::F32),
            "bfloat16" | "bf16" => Ok(Self::Bf16),
            "float16" | "half" | "f16" | "fp16" => Ok(Self::F16),
            _ => Err(format!(
                "unknown activation dtype `{s}` (float32, bfloat16, float16)"
            )),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_round_trip() {
        for d in ActivationDtype::ALL {
            assert_eq!(d.as_str().parse::<ActivationDtype>().unwrap(), d);
            assert_eq!(format!("torch.{d}").parse::<ActivationDtype>().unwrap(), d);
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(json, format!("\"{}\"", d.as_str()));
            assert_eq!(serde_json::from_str::<ActivationDtype>(&json).unwrap(), d);
            assert_eq!(d.storage().as_str(), d.as_str());
        }
        assert_eq!(
            "bf16".parse::<ActivationDtype>().unwrap(),
            ActivationDtype::Bf16
        );
        assert_eq!(
            "half".parse::<ActivationDtype>().unwrap(),
            ActivationDtype::F16
        );
        assert!("float64".parse::<ActivationDtype>().is_err());
        assert!("int8".parse::<ActivationDtype>().is_err());
    }

    proptest! {
        /// The stated bound holds for every normal value, and is tight to within a factor 2.
        #[test]
        fn rounding_error_is_within_the_unit_roundoff(x in -6.0e4f32..6.0e4) {
            for d in ActivationDtype::ALL {
                let r = d.round(x);
                if x.abs() >= 2f32.powi(-14) {
                    prop_assert!((r - x).abs() <= d.unit_roundoff() * x.abs(), "{d}: {x} → {r}");
                }
            }
            prop_assert_eq!(ActivationDtype::F32.round(x), x);
        }
    }

    #[test]
    fn the_bound_is_reached() {
        // 1 + u (halfway between 1 and the next value) rounds to even: down to 1, an error of u.
        for d in [ActivationDtype::Bf16, ActivationDtype::F16] {
            let u = d.unit_roundoff();
            let x = 1.0 + u;
            assert_eq!(d.round(x), 1.0, "{d}");
            assert!(((x - d.round(x)).abs() - u * 1.0).abs() < 1e-12);
        }
    }
}

//! What storing a hook's activations in a narrower dtype costs: the rounding error of the
//! activations themselves, and the model's next-token predictions when the rounded activations
//! are put back at the hook (as an SAE trained on a bfloat16 cache sees them, and as a
//! half-precision activation would carry on through the model).
//!
//! The downstream metrics follow [`crate::eval`]'s definitions (mean next-token cross-entropy,
//! mean KL(clean ‖ rounded) of the next-token distributions), over the same windows; special
//! tokens are left out of them as there. The activation metrics cover every position, because a
//! cache stores every position (BOS included, whose residual norm is often the largest).

use serde::{Deserialize, Serialize};

use gpt2_gemma_models::HookPoint;
use gpt2_gemma_models::hooks::{Activation, CacheFilter, Hooks};
use gpt2_gemma_models::model::LanguageModel;
use sae_core::burn::tensor::Tensor;
use sae_core::burn::tensor::activation::log_softmax;
use sae_core::device::{as_f32, int_tensor_from_vec, store_as, tensor_to_vec, tensors_to_vecs};

use crate::activation_dtype::ActivationDtype;
use crate::error::{Result, StoreError};
use crate::eval::{EvalConfig, ce_and_kl};

/// The cost of one dtype at one hook (see the module docs). In JSON a non-finite number (an
/// overflow's ∞, the NaN loss it causes) is the string `"inf"`, `"-inf"` or `"NaN"`, so results
/// read back as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DtypeEvaluation {
    /// The dtype.
    pub dtype: ActivationDtype,
    /// The hook.
    pub hook: HookPoint,
    /// Positions whose activations were measured (all of them).
    pub n_positions: u64,
    /// Next-token predictions in the downstream metrics (special tokens left out).
    pub n_predictions: u64,
    /// ‖x̂ − x‖ / ‖x‖ over all positions (Frobenius norms).
    #[serde(with = "float")]
    pub relative_error: f64,
    /// The largest per-position ‖x̂ − x‖ / ‖x‖.
    #[serde(with = "float")]
    pub max_position_relative_error: f64,
    /// The largest |x̂ − x| of one value (∞ when a value overflowed: the rounded activation is
    /// ±∞, and the downstream metrics are then NaN, `null` in JSON).
    #[serde(with = "float")]
    pub max_abs_error: f64,
    /// The largest |x| (in float32).
    #[serde(with = "float")]
    pub max_abs_activation: f64,
    /// Finite values that round to ±∞ in the dtype (float16: |x| ≥ 65 520); a cache in that
    /// dtype refuses them.
    pub n_out_of_range: u64,
    /// Mean next-token cross-entropy of the unmodified model.
    #[serde(with = "float")]
    pub ce_clean: f64,
    /// …with the rounded activations put back at the hook.
    #[serde(with = "float")]
    pub ce_rounded: f64,
    /// Mean KL(clean ‖ rounded) of the next-token distributions.
    #[serde(with = "float")]
    pub kl: f64,
    /// Share of positions whose top-1 next token is unchanged.
    #[serde(with = "float")]
    pub top1_agreement: f64,
}

/// Measures, on `windows` (equal lengths), what storing `hook`'s activations in `dtype` costs
/// (see the module docs).
///
/// # Errors
/// No windows or windows of unequal length; a hook the model does not have; model failures.
pub fn evaluate_activation_dtype<M: LanguageModel + ?Sized>(
    model: &M,
    hook: HookPoint,
    dtype: ActivationDtype,
    windows: &[Vec<u32>],
    config: &EvalConfig,
) -> Result<DtypeEvaluation> {
    let ctx = crate::eval::window_length(windows)?;
    let device = model.device();
    let mut out = DtypeEvaluation {
        dtype,
        hook,
        n_positions: 0,
        n_predictions: 0,
        relative_error: 0.0,
        max_position_relative_error: 0.0,
        max_abs_error: 0.0,
        max_abs_activation: 0.0,
        n_out_of_range: 0,
        ce_clean: 0.0,
        ce_rounded: 0.0,
        kl: 0.0,
        top1_agreement: 0.0,
    };
    let (mut err_sq, mut norm_sq, mut n_kl, mut agree) = (0.0f64, 0.0f64, 0u64, 0u64);
    let bar = crate::stats::progress_bar(
        windows.len().div_ceil(config.batch_size.max(1)) as u64,
        "activation dtype: batch",
        config.progress,
    );
    for chunk in windows.chunks(config.batch_size.max(1)) {
        let b = chunk.len();
        let ids: Vec<i64> = chunk.iter().flatten().map(|&t| i64::from(t)).collect();
        let tokens = int_tensor_from_vec(ids, [b, ctx], &device);
        let (logits, cache) =
            model.run_with_cache(tokens.clone(), CacheFilter::Only(vec![hook]), None)?;
        let logits = logits.ok_or_else(|| StoreError::invalid("forward pass", "logits", "none"))?;
        let x = match cache.get3(hook) {
            Some(x) => x,
            None => match cache.get4(hook) {
                Some(x4) => {
                    let [b, p, h, d] = x4.dims();
                    x4.reshape([b, p, h * d])
                }
                None => {
                    return Err(StoreError::invalid(
                        "activation dtype hook",
                        "a hook the model runs",
                        hook.to_string(),
                    ));
                }
            },
        };
        let [_, _, d] = x.dims();
        let n = b * ctx;
        let x = x.reshape([n, d]);
        let r = rounded(x.clone(), dtype);
        let overflowed = out_of_range(x.clone(), r.clone());
        let diff = r - x.clone();
        let abs = x.clone().abs();
        // One read for the batch's statistics (each read is a synchronisation on a GPU).
        let read = tensors_to_vecs(vec![
            diff.clone().powi_scalar(2).sum_dim(1).reshape([n]),
            x.powi_scalar(2).sum_dim(1).reshape([n]),
            abs.clone().max(),
            overflowed,
            diff.abs().max(),
        ])?;
        let (pos_err, pos_norm) = (&read[0], &read[1]);
        for (e, s) in pos_err.iter().zip(pos_norm) {
            let (e, s) = (f64::from(*e), f64::from(*s));
            err_sq += e;
            norm_sq += s;
            if s > 0.0 {
                out.max_position_relative_error =
                    out.max_position_relative_error.max((e / s).sqrt());
            }
        }
        let first = |i: usize| f64::from(read[i].first().copied().unwrap_or(0.0));
        out.max_abs_activation = out.max_abs_activation.max(first(2));
        out.n_out_of_range += first(3) as u64;
        let max_err = first(4);
        out.max_abs_error = if max_err.is_nan() || out.max_abs_error.is_nan() {
            f64::NAN
        } else {
            out.max_abs_error.max(max_err)
        };
        out.n_positions += n as u64;

        let clean_lp = log_softmax(logits, 2);
        let round_hook = Hooks::new().add(hook, move |_, _, act: Activation| match act {
            Activation::Rank3(t) => Activation::Rank3(rounded(t, dtype)),
            Activation::Rank4(t) => Activation::Rank4(rounded(t, dtype)),
            other => other,
        });
        let (logits, _) = model.run_with_hooks(tokens.clone(), round_hook, None)?;
        let logits = logits.ok_or_else(|| StoreError::invalid("forward pass", "logits", "none"))?;
        let top_clean = tensor_to_vec(clean_lp.clone().argmax(2).float())?;
        let top_rounded = tensor_to_vec(logits.clone().argmax(2).float())?;
        let (ce_rounded, kl) = ce_and_kl(&clean_lp, logits, &tokens)?;
        let ce_clean = crate::eval::cross_entropy(&clean_lp, &tokens)?;
        for (i, t) in chunk.iter().flatten().enumerate() {
            if config.ignore_tokens.contains(t) {
                continue;
            }
            let (row, pos) = (i / ctx, i % ctx);
            out.kl += f64::from(kl[i]);
            agree += u64::from(top_clean[i] == top_rounded[i]);
            n_kl += 1;
            if pos + 1 < ctx {
                let j = row * (ctx - 1) + pos;
                out.ce_clean += f64::from(ce_clean[j]);
                out.ce_rounded += f64::from(ce_rounded[j]);
                out.n_predictions += 1;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let np = out.n_predictions.max(1) as f64;
    out.ce_clean /= np;
    out.ce_rounded /= np;
    out.kl /= n_kl.max(1) as f64;
    out.top1_agreement = agree as f64 / n_kl.max(1) as f64;
    out.relative_error = if norm_sq > 0.0 {
        (err_sq / norm_sq).sqrt()
    } else {
        0.0
    };
    Ok(out)
}

/// How many finite values of `x` became ±∞ when rounded (`r`): exactly the values a cache in
/// that dtype refuses (`sae_core::safetensors_io::encode_f32`), e.g. |x| ≥ 65 520 for float16
/// (65 504 < |x| < 65 520 rounds to ±65 504 and is kept). `[1]`.
fn out_of_range<const D: usize>(x: Tensor<D>, r: Tensor<D>) -> Tensor<1> {
    x.is_finite().bool_and(r.is_inf()).float().sum()
}

/// `t` rounded to `dtype` and widened back to f32, elementwise, where it is.
fn rounded<const D: usize>(t: Tensor<D>, dtype: ActivationDtype) -> Tensor<D> {
    as_f32(store_as(t, dtype.storage()))
}

/// f64 fields that may be ±∞ or NaN: finite values as JSON numbers, the others as strings.
mod float {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if *v > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Number(f64),
        Text(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Number(v) => Ok(v),
            Repr::Text(t) => match t.as_str() {
                "NaN" => Ok(f64::NAN),
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                other => Err(serde::de::Error::custom(format!(
                    "expected a number, \"inf\", \"-inf\" or \"NaN\", found \"{other}\""
                ))),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_round_trip_through_json() {
        let e = DtypeEvaluation {
            dtype: ActivationDtype::F16,
            hook: HookPoint::ResidPost(12),
            n_positions: 4,
            n_predictions: 3,
            relative_error: f64::INFINITY,
            max_position_relative_error: f64::INFINITY,
            max_abs_error: f64::NEG_INFINITY,
            max_abs_activation: 1.0e5,
            n_out_of_range: 2,
            ce_clean: 3.5,
            ce_rounded: f64::NAN,
            kl: f64::NAN,
            top1_agreement: 0.0,
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["relative_error"], "inf");
        assert_eq!(json["max_abs_error"], "-inf");
        assert_eq!(json["kl"], "NaN");
        assert_eq!(json["ce_clean"], 3.5);
        let back: DtypeEvaluation = serde_json::from_value(json).unwrap();
        assert_eq!(back.relative_error, f64::INFINITY);
        assert_eq!(back.max_abs_error, f64::NEG_INFINITY);
        assert!(back.kl.is_nan() && back.ce_rounded.is_nan());
        assert_eq!(back.max_abs_activation, 1.0e5);
        assert_eq!(back.hook, e.hook);
        let bad = serde_json::json!({"relative_error": "big"});
        assert!(serde_json::from_value::<DtypeEvaluation>(bad).is_err());
    }

    /// Counted out of range: exactly the values the float16 cache writer refuses (those that
    /// round to ±∞), not every value above float16's largest finite 65 504.
    #[test]
    fn out_of_range_counts_what_a_cache_refuses() {
        let values = vec![
            65_504.0f32,
            65_505.0,
            -65_519.0,
            65_520.0,
            -70_000.0,
            f32::INFINITY,
            f32::NAN,
            1.0,
        ];
        let t = sae_core::device::tensor_from_vec(values.clone(), [8], &sae_core::device::cpu());
        for (dtype, expected) in [
            (ActivationDtype::F16, 2.0),
            (ActivationDtype::Bf16, 0.0),
            (ActivationDtype::F32, 0.0),
        ] {
            let r = rounded(t.clone(), dtype);
            let n = sae_core::device::tensor_to_vec(out_of_range(t.clone(), r)).unwrap();
            assert_eq!(n, vec![expected], "{dtype:?}");
            let refused: Vec<usize> = values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .filter(|(_, v)| {
                    sae_core::safetensors_io::encode_f32(dtype.storage(), &[**v]).is_err()
                })
                .map(|(i, _)| i)
                .collect();
            assert_eq!(refused.len() as f32, expected, "{dtype:?}: {refused:?}");
        }
    }
}

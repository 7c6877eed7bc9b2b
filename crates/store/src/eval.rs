//! How well an SAE stands in for the activations it reconstructs: SAELens's evaluation metrics
//! (MSE, explained variance, L0) and the cross-entropy loss recovered when the reconstruction is
//! spliced into the model, relative to zero-ablating the hook.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};

use gpt2_gemma_models::hooks::{Activation, Hooks};
use gpt2_gemma_models::model::LanguageModel;
use gpt2_gemma_models::{HookPoint, Pass};
use sae_core::Sae;
use sae_core::burn::tensor::activation::log_softmax;
use sae_core::burn::tensor::{Int, Tensor};
use sae_core::device::{int_tensor_from_vec, tensor_to_vec};

use crate::error::{Result, StoreError};

/// Reconstruction and downstream metrics over a set of windows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SaeEvaluation {
    /// Tokens evaluated.
    pub n_tokens: u64,
    /// Mean next-token cross-entropy of the unmodified model.
    pub ce_clean: f64,
    /// …with the hook's activations replaced by the SAE's reconstruction.
    pub ce_with_sae: f64,
    /// …with the hook's activations replaced by zeros.
    pub ce_zero_ablation: f64,
    /// (ce_zero − ce_sae) / (ce_zero − ce_clean).
    pub ce_loss_recovered: f64,
    /// Mean ‖x̂ − x‖² per token.
    pub mse: f64,
    /// 1 − Σ‖x̂ − x‖² / Σ‖x − x̄‖².
    pub explained_variance: f64,
    /// Mean active latents per token.
    pub l0: f64,
}

/// Mean next-token cross-entropy of `[B, P, V]` logits for `[B, P]` tokens (positions 0..P−1
/// predict 1..P), summed and counted.
fn ce_sum(logits: Tensor<3>, tokens: &Tensor<2, Int>) -> Result<(f64, u64)> {
    let [b, p, v] = logits.dims();
    if p < 2 {
        return Ok((0.0, 0));
    }
    let lp = log_softmax(logits.slice([0..b, 0..p - 1, 0..v]), 2);
    let targets = tokens.clone().slice([0..b, 1..p]).unsqueeze_dim::<3>(2);
    let picked = lp.gather(2, targets);
    let total = tensor_to_vec(picked.sum())?;
    Ok((
        -f64::from(total.first().copied().unwrap_or(0.0)),
        (b * (p - 1)) as u64,
    ))
}

/// Evaluates `sae` at `hook` on `windows` (equal lengths), `batch` windows per forward pass.
pub fn evaluate_sae<M: LanguageModel + ?Sized>(
    model: &M,
    sae: &Sae,
    hook: HookPoint,
    windows: &[Vec<u32>],
    batch: usize,
) -> Result<SaeEvaluation> {
    let mut ce = [0.0f64; 3];
    let mut n_pred = 0u64;
    let (mut sq_err, mut l0_sum, mut n_tok) = (0.0f64, 0.0f64, 0u64);
    let (mut sum_x, mut sum_x2) = (vec![0f64; sae.config().d_in], 0f64);
    for chunk in windows.chunks(batch.max(1)) {
        let ctx = chunk[0].len();
        let ids: Vec<i64> = chunk.iter().flatten().map(|&t| i64::from(t)).collect();
        let tokens = int_tensor_from_vec(ids, [chunk.len(), ctx], &model.device());
        let clean = model.forward(tokens.clone())?;
        let (s, n) = ce_sum(clean, &tokens)?;
        ce[0] += s;
        n_pred += n;
        for (slot, zero) in [(1usize, false), (2, true)] {
            let failure: RefCell<Option<StoreError>> = RefCell::new(None);
            let stats: RefCell<(f64, f64, u64, Vec<f64>, f64)> =
                RefCell::new((0.0, 0.0, 0, Vec::new(), 0.0));
            let hooks = Hooks::new().add(hook, |_, _: Pass, act: Activation| {
                let Activation::Rank3(x) = act else {
                    *failure.borrow_mut() = Some(StoreError::Shape {
                        what: format!("activation at {hook}"),
                        expected: vec![0, 0, 0],
                        found: act.dims(),
                    });
                    return act;
                };
                if zero {
                    return Activation::Rank3(x.zeros_like());
                }
                let [b, p, d] = x.dims();
                let flat = x.clone().reshape([b * p, d]);
                match sae.encode_decode(flat.clone()) {
                    Ok((f, recon)) => {
                        let err = recon.clone().sub(flat.clone()).square().sum();
                        let l0 = f.greater_elem(0.0).float().sum();
                        let mut st = stats.borrow_mut();
                        if let (Ok(e), Ok(l), Ok(xs)) =
                            (tensor_to_vec(err), tensor_to_vec(l0), tensor_to_vec(flat))
                        {
                            st.0 += f64::from(e[0]);
                            st.1 += f64::from(l[0]);
                            st.2 += (b * p) as u64;
                            if st.3.is_empty() {
                                st.3 = vec![0.0; d];
                            }
                            for row in xs.chunks(d) {
                                for (acc, v) in st.3.iter_mut().zip(row) {
                                    *acc += f64::from(*v);
                                }
                                st.4 += row
                                    .iter()
                                    .map(|v| f64::from(*v) * f64::from(*v))
                                    .sum::<f64>();
                            }
                        }
                        Activation::Rank3(recon.reshape([b, p, d]))
                    }
                    Err(e) => {
                        *failure.borrow_mut() = Some(e.into());
                        Activation::Rank3(x)
                    }
                }
            });
            let logits = model.run(tokens.clone(), &mut { hooks }, None, None, Pass::Prefill)?;
            if let Some(e) = failure.into_inner() {
                return Err(e);
            }
            let logits =
                logits.ok_or_else(|| StoreError::invalid("forward pass", "logits", "none"))?;
            ce[slot] += ce_sum(logits, &tokens)?.0;
            if !zero {
                let st = stats.into_inner();
                sq_err += st.0;
                l0_sum += st.1;
                n_tok += st.2;
                for (a, v) in sum_x.iter_mut().zip(&st.3) {
                    *a += v;
                }
                sum_x2 += st.4;
            }
        }
    }
    let n = n_pred.max(1) as f64;
    let (clean, with_sae, zero) = (ce[0] / n, ce[1] / n, ce[2] / n);
    let nt = n_tok.max(1) as f64;
    let total_var = sum_x2 - sum_x.iter().map(|s| s * s).sum::<f64>() / nt;
    Ok(SaeEvaluation {
        n_tokens: n_tok,
        ce_clean: clean,
        ce_with_sae: with_sae,
        ce_zero_ablation: zero,
        ce_loss_recovered: if zero != clean {
            (zero - with_sae) / (zero - clean)
        } else {
            0.0
        },
        mse: sq_err / nt,
        explained_variance: if total_var > 0.0 {
            1.0 - sq_err / total_var
        } else {
            0.0
        },
        l0: l0_sum / nt,
    })
}

//! How well an SAE stands in for the activations it reconstructs, by SAELens's evaluation
//! definitions (`sae_lens.evals`): the downstream metrics from runs with the SAE spliced in
//! (cross-entropy with the SAE, clean and zero-ablated, the CE loss score, KL divergence to the
//! clean next-token distribution and its score) and the reconstruction metrics (explained
//! variance — the current and the legacy formula —, MSE, cosine similarity, L2 norms and ratio,
//! relative reconstruction bias, L0, L1, per-latent firing density, dead and dense latents).
//!
//! Special tokens (`EvalConfig::ignore_tokens`, usually BOS/EOS/pad) are left out of every
//! metric, and the SAE is bypassed at them, as SAELens's `run_evals` with
//! `exclude_special_tokens=True`. The zero ablation zeroes the hook at every position, as SAELens.

use serde::{Deserialize, Serialize};

use gpt2_gemma_models::hooks::{Activation, CacheFilter, Hooks};
use gpt2_gemma_models::model::LanguageModel;
use gpt2_gemma_models::{HookPoint, SaeHook, Splice, SpliceOutput};
use sae_core::Sae;
use sae_core::burn::tensor::activation::log_softmax;
use sae_core::burn::tensor::{Int, Tensor};
use sae_core::device::{int_tensor_from_vec, tensor_from_vec, tensor_to_vec};

use crate::error::{Result, StoreError};

/// How to evaluate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalConfig {
    /// Windows per forward pass.
    pub batch_size: usize,
    /// Tokens left out of every metric and at which the SAE is bypassed (SAELens's
    /// `exclude_special_tokens`; usually the tokenizer's BOS, EOS and pad).
    pub ignore_tokens: Vec<u32>,
    /// A latent firing on more than this fraction of the evaluated tokens counts as dense.
    pub dense_threshold: f64,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            batch_size: 8,
            ignore_tokens: Vec::new(),
            dense_threshold: 0.1,
            progress: false,
        }
    }
}

/// Reconstruction and downstream metrics over a set of windows. Names follow SAELens's
/// `run_evals` output where it has one (given in each field's doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaeEvaluation {
    /// Tokens evaluated (special tokens left out).
    pub n_tokens: u64,
    /// Next-token predictions evaluated (those made at non-special tokens).
    pub n_predictions: u64,
    /// Mean next-token cross-entropy of the unmodified model (`ce_loss_without_sae`).
    pub ce_clean: f64,
    /// …with the SAE spliced in (`ce_loss_with_sae`).
    pub ce_with_sae: f64,
    /// …with the hook's activations replaced by zeros (`ce_loss_with_ablation`).
    pub ce_zero_ablation: f64,
    /// (ce_zero − ce_sae) / (ce_zero − ce_clean) (`ce_loss_score`, "CE loss recovered").
    pub ce_loss_recovered: f64,
    /// Mean KL(clean ‖ with SAE) of the next-token distributions (`kl_div_with_sae`).
    pub kl_with_sae: f64,
    /// Mean KL(clean ‖ zero-ablated) (`kl_div_with_ablation`).
    pub kl_zero_ablation: f64,
    /// (kl_zero − kl_sae) / kl_zero (`kl_div_score`).
    pub kl_div_score: f64,
    /// Mean ‖x̂ − x‖² per token (`mse`).
    pub mse: f64,
    /// 1 − E‖x − x̂‖² / (E‖x‖² − ‖E x‖²) over all tokens (`explained_variance`).
    pub explained_variance: f64,
    /// Mean over tokens of 1 − ‖x − x̂‖² / ‖x − x̄_batch‖² (`explained_variance_legacy`).
    pub explained_variance_legacy: f64,
    /// Mean cos(x, x̂) (`cossim`).
    pub cossim: f64,
    /// Mean ‖x‖ (`l2_norm_in`).
    pub l2_norm_in: f64,
    /// Mean ‖x̂‖ (`l2_norm_out`).
    pub l2_norm_out: f64,
    /// Mean ‖x̂‖ / ‖x‖ (`l2_ratio`; ‖x‖ below 1e-4 counted as 1).
    pub l2_ratio: f64,
    /// Mean over batches of E‖x̂‖² / E⟨x, x̂⟩ (`relative_reconstruction_bias`, Wright & Sharkey
    /// eq. 10).
    pub relative_reconstruction_bias: f64,
    /// Mean active latents per token (`l0`).
    pub l0: f64,
    /// Mean Σ|f| per token (`l1`).
    pub l1: f64,
    /// Latents that never fired on the evaluated tokens.
    pub dead_latents: usize,
    /// Latents that fired on more than `dense_threshold` of them.
    pub dense_latents: usize,
    /// Per latent, the fraction of evaluated tokens it fired on (`feature_density`).
    pub feature_density: Vec<f64>,
}

/// Running sums over batches.
#[derive(Default)]
struct Acc {
    ce: [f64; 3],
    kl: [f64; 2],
    n_pred: u64,
    n_tok: u64,
    sum_x: Vec<f64>,
    sum_sq_norm: f64,
    rss: f64,
    ev_legacy: f64,
    cossim: f64,
    norm_in: f64,
    norm_out: f64,
    ratio: f64,
    rrb: Vec<f64>,
    l0: f64,
    l1: f64,
    fired: Vec<f64>,
}

/// Per-position next-token cross-entropy `[b, p−1]` and KL(clean ‖ new) `[b, p]`.
pub(crate) fn ce_and_kl(
    clean_lp: &Tensor<3>,
    logits: Tensor<3>,
    tokens: &Tensor<2, Int>,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let lp = log_softmax(logits, 2);
    let kl = clean_lp
        .clone()
        .exp()
        .mul(clean_lp.clone().sub(lp.clone()))
        .sum_dim(2);
    Ok((cross_entropy(&lp, tokens)?, tensor_to_vec(kl)?))
}

/// Per-position next-token cross-entropy `[b, p−1]` from log-probabilities.
pub(crate) fn cross_entropy(lp: &Tensor<3>, tokens: &Tensor<2, Int>) -> Result<Vec<f32>> {
    let [b, p, v] = lp.dims();
    if p < 2 {
        return Ok(Vec::new());
    }
    let targets = tokens.clone().slice([0..b, 1..p]).unsqueeze_dim::<3>(2);
    Ok(tensor_to_vec(
        lp.clone()
            .slice([0..b, 0..p - 1, 0..v])
            .gather(2, targets)
            .neg(),
    )?)
}

/// The common length of evaluation windows: an error when there are none or they differ.
pub(crate) fn window_length(windows: &[Vec<u32>]) -> Result<usize> {
    let Some(ctx) = windows.first().map(Vec::len) else {
        return Err(StoreError::invalid(
            "evaluation windows",
            "at least one",
            "none",
        ));
    };
    if let Some(w) = windows.iter().find(|w| w.len() != ctx) {
        return Err(StoreError::invalid(
            "evaluation windows",
            format!("all of length {ctx}"),
            format!("one of length {}", w.len()),
        ));
    }
    Ok(ctx)
}

/// Evaluates `sae` at `hook` on `windows` (equal lengths).
///
/// # Errors
/// Windows of unequal length, an SAE whose width does not match the hook, model failures.
pub fn evaluate_sae<M: LanguageModel + ?Sized>(
    model: &M,
    sae: &Sae,
    hook: HookPoint,
    windows: &[Vec<u32>],
    config: &EvalConfig,
) -> Result<SaeEvaluation> {
    let d_sae = sae.d_sae();
    let mut acc = Acc {
        sum_x: vec![0.0; sae.d_in()],
        fired: vec![0.0; d_sae],
        ..Acc::default()
    };
    let ctx = window_length(windows)?;
    let device = model.device();
    let batch = config.batch_size.max(1);
    let bar = crate::stats::progress_bar(
        windows.len().div_ceil(batch) as u64,
        "evaluation: batch",
        config.progress,
    );
    for chunk in windows.chunks(batch) {
        let b = chunk.len();
        let ids: Vec<i64> = chunk.iter().flatten().map(|&t| i64::from(t)).collect();
        let keep: Vec<bool> = chunk
            .iter()
            .flatten()
            .map(|t| !config.ignore_tokens.contains(t))
            .collect();
        let tokens = int_tensor_from_vec(ids, [b, ctx], &device);
        let logits_of = |l: Option<Tensor<3>>| {
            l.ok_or_else(|| StoreError::invalid("forward pass", "logits", "none"))
        };

        let clean_lp = log_softmax(model.forward(tokens.clone())?, 2);
        let ce_clean = cross_entropy(&clean_lp, &tokens)?;

        let splice = Splice::at(sae, hook)?
            .output(SpliceOutput::Reconstruction)
            .exclude_tokens(config.ignore_tokens.iter().copied());
        let (logits, cache) = model.run_with_cache_with_saes(
            tokens.clone(),
            &[splice],
            CacheFilter::Only(
                [SaeHook::Input, SaeHook::ActsPost, SaeHook::Output]
                    .map(|h| hook.sae(h))
                    .to_vec(),
            ),
            None,
        )?;
        let (ce_sae, kl_sae) = ce_and_kl(&clean_lp, logits_of(logits)?, &tokens)?;

        let zero = Hooks::new().add(hook, |_, _, act: Activation| match act {
            Activation::Rank3(t) => Activation::Rank3(t.zeros_like()),
            Activation::Rank4(t) => Activation::Rank4(t.zeros_like()),
            other => other,
        });
        let (logits, _) = model.run_with_hooks(tokens.clone(), zero, None)?;
        let (ce_zero, kl_zero) = ce_and_kl(&clean_lp, logits_of(logits)?, &tokens)?;
        drop(clean_lp);

        for (i, k) in keep.iter().enumerate() {
            let (row, pos) = (i / ctx, i % ctx);
            if !*k {
                continue;
            }
            acc.kl[0] += f64::from(kl_sae[i]);
            acc.kl[1] += f64::from(kl_zero[i]);
            if pos + 1 < ctx {
                let j = row * (ctx - 1) + pos;
                acc.ce[0] += f64::from(ce_clean[j]);
                acc.ce[1] += f64::from(ce_sae[j]);
                acc.ce[2] += f64::from(ce_zero[j]);
                acc.n_pred += 1;
            }
        }

        // The spliced run's own input, latents and reconstruction (at bypassed positions the
        // output is the input, but those rows are left out of every metric).
        let get = |h: SaeHook| {
            cache
                .get3(hook.sae(h))
                .ok_or_else(|| StoreError::invalid("spliced run", h.name(), "not cached"))
        };
        let (x, f, recon) = (
            get(SaeHook::Input)?,
            get(SaeHook::ActsPost)?,
            get(SaeHook::Output)?,
        );
        let [_, _, d] = x.dims();
        let n = b * ctx;
        reconstruction_metrics(
            x.reshape([n, d]),
            f.reshape([n, d_sae]),
            recon.reshape([n, d]),
            &keep,
            &mut acc,
        )?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(finish(acc, config.dense_threshold))
}

/// Accumulates the reconstruction metrics of one batch: inputs `x` (`[n, d_in]`), latents `f`
/// (`[n, d_sae]`) and reconstructions (`[n, d_in]`), rows kept where `keep`.
fn reconstruction_metrics(
    x: Tensor<2>,
    f: Tensor<2>,
    recon: Tensor<2>,
    keep: &[bool],
    acc: &mut Acc,
) -> Result<()> {
    let [n, d] = x.dims();
    let device = x.device();
    let kept = keep.iter().filter(|k| **k).count();
    if kept == 0 {
        return Ok(());
    }
    let mask = tensor_from_vec(
        keep.iter().map(|&k| if k { 1.0 } else { 0.0 }).collect(),
        [n, 1],
        &device,
    );
    let active = f.clone().not_equal_elem(0.0).float();
    let l0 = tensor_to_vec(active.clone().sum_dim(1))?;
    let l1 = tensor_to_vec(f.abs().sum_dim(1))?;
    let fired = tensor_to_vec((active * mask.clone()).sum_dim(0))?;
    let sq_in = tensor_to_vec(x.clone().powi_scalar(2).sum_dim(1))?;
    let sq_out = tensor_to_vec(recon.clone().powi_scalar(2).sum_dim(1))?;
    let dot = tensor_to_vec((x.clone() * recon.clone()).sum_dim(1))?;
    let rss = tensor_to_vec((x.clone() - recon).powi_scalar(2).sum_dim(1))?;
    let sum_x = tensor_to_vec((x.clone() * mask).sum_dim(0))?;
    // ‖x_i − x̄‖² = ‖x_i‖² − 2⟨x_i, x̄⟩ + ‖x̄‖², with x̄ the mean of this batch's kept rows.
    let mean: Vec<f32> = sum_x.iter().map(|s| s / kept as f32).collect();
    let mean_sq: f64 = mean.iter().map(|m| f64::from(*m) * f64::from(*m)).sum();
    let x_dot_mean = tensor_to_vec(x.matmul(tensor_from_vec(mean, [d, 1], &device)))?;

    let (mut batch_sq_out, mut batch_dot) = (0.0f64, 0.0f64);
    for i in (0..n).filter(|&i| keep[i]) {
        let (si, so) = (f64::from(sq_in[i]), f64::from(sq_out[i]));
        let (ni, no) = (si.sqrt(), so.sqrt());
        acc.l0 += f64::from(l0[i]);
        acc.l1 += f64::from(l1[i]);
        acc.sum_sq_norm += si;
        acc.rss += f64::from(rss[i]);
        let var_i = si - 2.0 * f64::from(x_dot_mean[i]) + mean_sq;
        acc.ev_legacy += 1.0 - f64::from(rss[i]) / var_i;
        acc.cossim += f64::from(dot[i]) / (ni * no);
        acc.norm_in += ni;
        acc.norm_out += no;
        acc.ratio += no / if ni.abs() < 1e-4 { 1.0 } else { ni };
        batch_sq_out += so;
        batch_dot += f64::from(dot[i]);
        acc.n_tok += 1;
    }
    acc.rrb.push(batch_sq_out / batch_dot);
    for (a, v) in acc.sum_x.iter_mut().zip(&sum_x) {
        *a += f64::from(*v);
    }
    for (a, v) in acc.fired.iter_mut().zip(&fired) {
        *a += f64::from(*v);
    }
    Ok(())
}

fn finish(acc: Acc, dense_threshold: f64) -> SaeEvaluation {
    let np = acc.n_pred.max(1) as f64;
    let nt = acc.n_tok.max(1) as f64;
    let [ce_clean, ce_with_sae, ce_zero] = acc.ce.map(|s| s / np);
    let [kl_with_sae, kl_zero] = acc.kl.map(|s| s / nt);
    let mse = acc.rss / nt;
    let total_var = acc.sum_sq_norm / nt - acc.sum_x.iter().map(|s| (s / nt).powi(2)).sum::<f64>();
    let explained_variance = if total_var < 1e-10 {
        if mse < 1e-10 { 1.0 } else { 0.0 }
    } else {
        1.0 - mse / total_var
    };
    let feature_density: Vec<f64> = acc.fired.iter().map(|c| c / nt).collect();
    SaeEvaluation {
        n_tokens: acc.n_tok,
        n_predictions: acc.n_pred,
        ce_clean,
        ce_with_sae,
        ce_zero_ablation: ce_zero,
        ce_loss_recovered: (ce_zero - ce_with_sae) / (ce_zero - ce_clean),
        kl_with_sae,
        kl_zero_ablation: kl_zero,
        kl_div_score: (kl_zero - kl_with_sae) / kl_zero,
        mse,
        explained_variance,
        explained_variance_legacy: acc.ev_legacy / nt,
        cossim: acc.cossim / nt,
        l2_norm_in: acc.norm_in / nt,
        l2_norm_out: acc.norm_out / nt,
        l2_ratio: acc.ratio / nt,
        relative_reconstruction_bias: acc.rrb.iter().sum::<f64>() / acc.rrb.len().max(1) as f64,
        l0: acc.l0 / nt,
        l1: acc.l1 / nt,
        dead_latents: feature_density.iter().filter(|d| **d == 0.0).count(),
        dense_latents: feature_density
            .iter()
            .filter(|d| **d > dense_threshold)
            .count(),
        feature_density,
    }
}

/// Up to `n` windows of `source`, keeping one in `every` (so that they span more of the corpus:
/// a book is thousands of windows long, and densities from one book's opening undercount).
///
/// # Errors
/// [`StoreError::EmptyCorpus`] when the corpus gives no whole window; corpus failures.
pub fn sample_windows(
    source: crate::TextSource,
    tok: &gpt2_gemma_models::AnyTokenizer,
    store: &crate::StoreConfig,
    n: usize,
    every: usize,
) -> Result<Vec<Vec<u32>>> {
    let mut w = crate::TokenWindows::new(source, tok, store.packing(tok))?;
    let mut windows = Vec::with_capacity(n);
    let mut seen = 0usize;
    while windows.len() < n {
        match w.next_window()? {
            Some(x) => {
                if seen.is_multiple_of(every.max(1)) {
                    windows.push(x);
                }
                seen += 1;
            }
            None => break,
        }
    }
    if windows.is_empty() {
        return Err(StoreError::EmptyCorpus {
            context_size: store.context_size,
        });
    }
    if windows.len() < n {
        tracing::warn!("the corpus gave only {} windows", windows.len());
    }
    Ok(windows)
}

/// The header of the evaluation table ([`SaeEvaluation::csv_row`]).
pub const CSV_COLUMNS: &str = "sae,hook,d_sae,n_tokens,ce_clean,ce_with_sae,ce_zero_ablation,ce_loss_recovered,kl_with_sae,kl_zero_ablation,kl_div_score,explained_variance,explained_variance_legacy,mse,cossim,l2_norm_in,l2_norm_out,l2_ratio,relative_reconstruction_bias,l0,l1,dead_latents,dense_latents";

impl SaeEvaluation {
    /// This evaluation as a row of the table whose header is [`CSV_COLUMNS`].
    pub fn csv_row(&self, sae: &str, hook: HookPoint, d_sae: usize) -> String {
        let ev = self;
        format!(
            "\"{}\",{hook},{d_sae},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            sae.replace('"', "\"\""),
            ev.n_tokens,
            ev.ce_clean,
            ev.ce_with_sae,
            ev.ce_zero_ablation,
            ev.ce_loss_recovered,
            ev.kl_with_sae,
            ev.kl_zero_ablation,
            ev.kl_div_score,
            ev.explained_variance,
            ev.explained_variance_legacy,
            ev.mse,
            ev.cossim,
            ev.l2_norm_in,
            ev.l2_norm_out,
            ev.l2_ratio,
            ev.relative_reconstruction_bias,
            ev.l0,
            ev.l1,
            ev.dead_latents,
            ev.dense_latents
        )
    }
}

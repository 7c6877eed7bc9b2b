//! Scale tuning after "Self-explaining SAE features" (Kharlapenko et al.): per scale, the
//! self-similarity at a probe layer, the entropy of the next-token distribution at the last
//! prompt position, and its cross-entropy against a baseline that patches the normalised mean
//! token embedding; the chosen scale maximises `0.4·minmax(selfsim) − 0.6·minmax(CE)`.
//!
//! Definitions (the Python reference computes the same):
//! - `self_similarity(s) = cos(r(s), d) − cos(r(0), d)`, with `r(s)` the residual after block
//!   `probe_layer` (`blocks.{probe}.hook_resid_post`) at the last prompt position when the
//!   patch has scale `s`, and `d` the patched direction;
//! - `entropy(s) = −Σ p_s log p_s` of the next-token distribution at the last prompt position,
//!   `entropy_change(s) = entropy(s) − entropy(0)`;
//! - `cross_entropy(s) = −Σ p_s log q_s`, with `q_s` the distribution when the normalised
//!   mean token embedding is patched at the same scale instead;
//! - the chosen scale is the non-zero scale with the largest score.

use gpt2_gemma_models::{Activation, CacheFilter, HookPoint, Hooks, LanguageModel, Pass};
use sae_core::burn::tensor::activation::log_softmax;
use sae_core::device::{int_tensor_from_vec, tensor_to_vec};
use serde::{Deserialize, Serialize};

use crate::error::{Result, ScopingError};
use crate::patch::{Patch, PatchMode, ScaleKind, unit};
use crate::prompt::PatchPrompt;

/// One scale's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScaleMetrics {
    /// The scale.
    pub scale: f32,
    /// `cos(r(s), d) − cos(r(0), d)` at the probe layer.
    pub self_similarity: f64,
    /// Next-token entropy at the last prompt position (nats).
    pub entropy: f64,
    /// `entropy(s) − entropy(0)`.
    pub entropy_change: f64,
    /// Cross-entropy against the mean-embedding baseline (nats).
    pub cross_entropy: f64,
    /// `0.4·minmax(self_similarity) − 0.6·minmax(cross_entropy)`.
    pub score: f64,
}

/// Scale-tuning settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TuningConfig {
    /// The patched layer.
    pub layer: usize,
    /// The probe layer (default: about 2/3 of the depth).
    pub probe_layer: usize,
    /// Replace or add.
    pub mode: PatchMode,
    /// What the scales mean.
    pub kind: ScaleKind,
}

impl TuningConfig {
    /// Probe at `round(2/3 · n_layers)` (clamped to the last block).
    pub fn new(layer: usize, n_layers: usize) -> Self {
        Self {
            layer,
            probe_layer: ((2 * n_layers + 1) / 3).min(n_layers.saturating_sub(1)),
            mode: PatchMode::Replace,
            kind: ScaleKind::Absolute,
        }
    }
}

/// The normalised mean of the model's token embeddings (`hook_embed` over the whole
/// vocabulary, in chunks).
pub fn mean_token_embedding<M: LanguageModel + ?Sized>(model: &M) -> Result<Vec<f32>> {
    let v = model.vocab_size();
    let d = model.d_model();
    let dev = model.device();
    let mut sum = vec![0f64; d];
    let chunk = 4096;
    for start in (0..v).step_by(chunk) {
        let n = chunk.min(v - start);
        let ids: Vec<i64> = (start..start + n).map(|i| i as i64).collect();
        let t = int_tensor_from_vec(ids, [1, n], &dev);
        let (_, cache) =
            model.run_with_cache(t, CacheFilter::Only(vec![HookPoint::Embed]), Some(0))?;
        let e = cache
            .get3(HookPoint::Embed)
            .ok_or_else(|| ScopingError::invalid("hook_embed", "an activation", "none"))?;
        let s = tensor_to_vec(e.sum_dim(1).reshape([d]))?;
        for (a, b) in sum.iter_mut().zip(s) {
            *a += f64::from(b);
        }
    }
    unit(
        &sum.iter()
            .map(|x| (*x / v as f64) as f32)
            .collect::<Vec<_>>(),
    )
}

/// Last-position log-probabilities `[S, vocab]` and probe residuals `[S, d]` with `direction`
/// patched at each scale.
fn probe<M: LanguageModel + ?Sized>(
    model: &M,
    prompt: &PatchPrompt,
    direction: &[f32],
    scales: &[f32],
    cfg: &TuningConfig,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let s = scales.len();
    let t = prompt.ids.len();
    let patch = Patch::new(
        cfg.layer,
        prompt.positions.clone(),
        direction,
        scales.to_vec(),
        cfg.mode,
        cfg.kind,
    )?;
    let point = HookPoint::ResidPost(cfg.probe_layer);
    let mut hooks = Hooks::new()
        .add(patch.point(), patch.hook())
        .cache(CacheFilter::Only(vec![point]));
    let ids: Vec<i64> = (0..s)
        .flat_map(|_| prompt.ids.iter().map(|&x| i64::from(x)))
        .collect();
    let tokens = int_tensor_from_vec(ids, [s, t], &model.device());
    let logits = model
        .run(tokens, &mut hooks, None, None, Pass::Prefill)?
        .ok_or_else(|| ScopingError::invalid("forward", "logits", "none"))?;
    let v = logits.dims()[2];
    let last = logits.narrow(1, t - 1, 1).reshape([s, v]);
    let logp = tensor_to_vec(log_softmax(last, 1))?;
    let cache = hooks.into_cache();
    let r = match cache.get(point) {
        Some(Activation::Rank3(r)) => r.clone(),
        _ => {
            return Err(ScopingError::invalid(
                "probe residual",
                "a [batch, pos, d] activation",
                "none",
            ));
        }
    };
    let d = r.dims()[2];
    let r_last = tensor_to_vec(r.narrow(1, t - 1, 1).reshape([s, d]))?;
    Ok((logp, r_last))
}

fn minmax(v: &[f64]) -> Vec<f64> {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    v.iter()
        .map(|x| if hi > lo { (x - lo) / (hi - lo) } else { 0.0 })
        .collect()
}

/// The metrics at every scale, and the index of the chosen scale.
pub fn tune_scales<M: LanguageModel + ?Sized>(
    model: &M,
    prompt: &PatchPrompt,
    direction: &[f32],
    scales: &[f32],
    cfg: &TuningConfig,
) -> Result<(Vec<ScaleMetrics>, usize)> {
    if scales.is_empty() {
        return Err(ScopingError::invalid("scales", "at least one", 0));
    }
    let d_hat = unit(direction)?;
    // Scale 0 rides along as the last row (the reference point of the differences).
    let mut all = scales.to_vec();
    all.push(0.0);
    let (logp, r) = probe(model, prompt, &d_hat, &all, cfg)?;
    let baseline = mean_token_embedding(model)?;
    let (logq, _) = probe(model, prompt, &baseline, &all, cfg)?;
    let v = logp.len() / all.len();
    let d = d_hat.len();
    let cos = |row: &[f32]| {
        let (mut dot, mut nr) = (0f64, 0f64);
        for (a, b) in row.iter().zip(&d_hat) {
            dot += f64::from(*a) * f64::from(*b);
            nr += f64::from(*a) * f64::from(*a);
        }
        if nr > 0.0 { dot / nr.sqrt() } else { 0.0 }
    };
    let entropy = |lp: &[f32]| -> f64 {
        lp.iter()
            .map(|&l| {
                let l = f64::from(l);
                -l.exp() * l
            })
            .filter(|x| x.is_finite())
            .sum()
    };
    let n = scales.len();
    let cos0 = cos(&r[n * d..(n + 1) * d]);
    let h0 = entropy(&logp[n * v..(n + 1) * v]);
    let mut out = Vec::with_capacity(n);
    for (i, &scale) in scales.iter().enumerate() {
        let lp = &logp[i * v..(i + 1) * v];
        let lq = &logq[i * v..(i + 1) * v];
        let h = entropy(lp);
        let ce: f64 = lp
            .iter()
            .zip(lq)
            .map(|(&p, &q)| -f64::from(p).exp() * f64::from(q))
            .sum();
        out.push(ScaleMetrics {
            scale,
            self_similarity: cos(&r[i * d..(i + 1) * d]) - cos0,
            entropy: h,
            entropy_change: h - h0,
            cross_entropy: ce,
            score: 0.0,
        });
    }
    let ss = minmax(&out.iter().map(|m| m.self_similarity).collect::<Vec<_>>());
    let ce = minmax(&out.iter().map(|m| m.cross_entropy).collect::<Vec<_>>());
    for (m, (a, b)) in out.iter_mut().zip(ss.iter().zip(&ce)) {
        m.score = 0.4 * a - 0.6 * b;
    }
    // Scale 0 patches nothing in replace mode's direction (the placeholder becomes zero) and
    // carries no information about the latent: it is chosen only when it is the only scale.
    let candidates: Vec<usize> = (0..out.len()).filter(|&i| out[i].scale != 0.0).collect();
    let candidates = if candidates.is_empty() {
        (0..out.len()).collect()
    } else {
        candidates
    };
    let chosen = candidates
        .into_iter()
        .max_by(|&a, &b| out[a].score.total_cmp(&out[b].score))
        .unwrap_or(0);
    Ok((out, chosen))
}

/// The typical residual norm entering `layer` at the placeholder positions of the unpatched
/// prompt (the unit of relative scales).
pub fn residual_norm<M: LanguageModel + ?Sized>(
    model: &M,
    prompt: &PatchPrompt,
    layer: usize,
) -> Result<f32> {
    let t = prompt.ids.len();
    let ids: Vec<i64> = prompt.ids.iter().map(|&x| i64::from(x)).collect();
    let tokens = int_tensor_from_vec(ids, [1, t], &model.device());
    let point = HookPoint::ResidPre(layer);
    let (_, cache) =
        model.run_with_cache(tokens, CacheFilter::Only(vec![point]), Some(layer + 1))?;
    let h = cache
        .get3(point)
        .ok_or_else(|| ScopingError::invalid("residual", "an activation", "none"))?;
    let d = h.dims()[2];
    let h = tensor_to_vec(h.reshape([t, d]))?;
    let norms: Vec<f64> = prompt
        .positions
        .iter()
        .map(|&p| {
            h[p * d..(p + 1) * d]
                .iter()
                .map(|x| f64::from(*x).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    Ok((norms.iter().sum::<f64>() / norms.len().max(1) as f64) as f32)
}

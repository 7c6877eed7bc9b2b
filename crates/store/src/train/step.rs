//! One training step's loss and its gradients, derived by hand.
//!
//! The SAE is two matrix products and an activation, so its gradients are three more matrix
//! products; writing them out avoids burn's autodiff (a second copy of every backend op to
//! compile, and a tape per step) and makes the unusual parts explicit: the decoder-norm-weighted
//! L1, the top-k masks and the AuxK loss on dead latents. Finite-difference tests
//! (tests/train_gradients.rs) check every gradient.
//!
//! Notation, for a batch `x` of B rows:
//! `x′ = x − b_dec` (when applied), `h = x′·W_enc + b_enc`, `f = h ⊙ m` with `m` the active
//! mask (h > 0, and in the top k of its row or of the batch), `x̂ = f·W_dec + b_dec`,
//! `e = x̂ − x`, `MSE = Σ e² / B`.
//!
//! Two paths ([`StepPath`]): on the CPU backends the TopK family's sparse host step and host
//! selections (reading a tensor there is a copy, and a partial selection on the host is the
//! fastest); on a GPU every product dense and every selection where the data is
//! ([`sae_core::threshold`], burn's top-k), the step's statistics left on the device as
//! tensors, so that a step reads nothing back (a [`Trainer`](crate::train::Trainer) reads them
//! every `log_every` steps). Both give the same result (unit tests compare them).

use sae_core::burn::tensor::{Bool, Device, Int, Tensor};
use sae_core::device::{
    bool_tensor_from_vec, is_host_memory, tensor_from_vec, tensor_to_vec, tensors_to_vecs,
    with_host_values,
};
use sae_core::threshold::{kth_largest_where, row_kth_largest_where};
use sae_core::topk::{SelectOn, kth_largest, row_kth_largest, row_kth_largest_tensor_on};

use crate::error::Result;
use crate::train::active::ActiveLatents;
use crate::train::config::TrainArchitecture;

/// The trainable tensors.
#[derive(Debug, Clone)]
pub struct SaeTensors {
    /// `[d_in, d_sae]`.
    pub w_enc: Tensor<2>,
    /// `[d_sae]`.
    pub b_enc: Tensor<1>,
    /// `[d_sae, d_in]`.
    pub w_dec: Tensor<2>,
    /// `[d_in]`.
    pub b_dec: Tensor<1>,
    /// JumpReLU's threshold θ, `[d_sae]` (trained); `None` for the other architectures.
    pub threshold: Option<Tensor<1>>,
}

impl SaeTensors {
    /// The same tensors with every value 0 (Adam's moments at the start).
    pub fn zeros_like(&self) -> Self {
        Self {
            w_enc: self.w_enc.zeros_like(),
            b_enc: self.b_enc.zeros_like(),
            w_dec: self.w_dec.zeros_like(),
            b_dec: self.b_dec.zeros_like(),
            threshold: self.threshold.as_ref().map(Tensor::zeros_like),
        }
    }

    /// Every tensor times `c`.
    pub fn mul_scalar(self, c: f64) -> Self {
        Self {
            w_enc: self.w_enc.mul_scalar(c),
            b_enc: self.b_enc.mul_scalar(c),
            w_dec: self.w_dec.mul_scalar(c),
            b_dec: self.b_dec.mul_scalar(c),
            threshold: self.threshold.map(|t| t.mul_scalar(c)),
        }
    }

    /// Every tensor times the one value of `c` (`[1]`, on their device: nothing read back).
    pub fn mul_by(self, c: Tensor<1>) -> Self {
        let c2 = c.clone().reshape([1, 1]);
        Self {
            w_enc: self.w_enc.mul(c2.clone()),
            b_enc: self.b_enc.mul(c.clone()),
            w_dec: self.w_dec.mul(c2),
            b_dec: self.b_dec.mul(c.clone()),
            threshold: self.threshold.map(|t| t.mul(c)),
        }
    }
}

/// Where a step computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StepPath {
    /// On host memory (the CPU backends): the TopK family's sparse host step where it applies,
    /// selections on the host; elsewhere (a GPU): [`StepPath::DeviceResident`].
    #[default]
    Auto,
    /// Every product dense and every selection on the tensors' device, nothing read back during
    /// the step: what a GPU runs, selectable on the CPU to test it.
    DeviceResident,
}

impl StepPath {
    /// Whether a step on `device` keeps everything there.
    pub fn is_resident(self, device: &Device) -> bool {
        self == Self::DeviceResident || !is_host_memory(device)
    }
}

/// What a step computed, read back ([`loss_and_grads`] and the functions beside it).
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// Gradients, shaped as the parameters.
    pub grads: SaeTensors,
    /// Total loss.
    pub loss: f64,
    /// Σ e² / B.
    pub mse: f64,
    /// The sparsity (standard: L1; JumpReLU: L0) or AuxK (top-k) term.
    pub aux: f64,
    /// The Matryoshka inner reconstructions' MSE, summed over the inner levels (0 without).
    pub inner_mse: f64,
    /// Mean active latents per row.
    pub l0: f64,
    /// 1 − mean ‖e‖² / mean ‖x − x̄‖².
    pub explained_variance: f64,
    /// Which latents fired on some row.
    pub fired: Vec<bool>,
    /// The smallest positive kept activation (the BatchTopK threshold update), if any.
    pub min_active: Option<f64>,
    /// `x̂ − x`, `[B, d_in]`.
    pub residual: Tensor<2>,
}

/// Positions in [`StepTensors::stats`].
pub(crate) mod stat {
    /// Σ e² / B.
    pub(crate) const MSE: usize = 0;
    /// Σ (x − x̄)² / B.
    pub(crate) const TOTAL_VARIANCE: usize = 1;
    /// Active entries / B.
    pub(crate) const L0: usize = 2;
    /// The sparsity or AuxK term.
    pub(crate) const AUX: usize = 3;
    /// Matryoshka's inner MSE.
    pub(crate) const INNER_MSE: usize = 4;
}

/// What a step computed, where it was computed (nothing read back).
#[derive(Debug, Clone)]
pub(crate) struct StepTensors {
    /// Gradients, shaped as the parameters.
    pub grads: SaeTensors,
    /// `[5]`: the statistics at the positions of [`stat`].
    pub stats: Tensor<1>,
    /// `[d_sae]`: rows on which each latent was active.
    pub active_per_latent: Tensor<1>,
    /// `[1]`: BatchTopK's smallest kept activation, 0 when none is positive and finite.
    pub min_active: Option<Tensor<1>>,
    /// `x̂ − x`, `[B, d_in]`.
    pub residual: Tensor<2>,
}

/// The statistics of [`StepTensors::stats`], read back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepStats {
    pub mse: f64,
    pub total_variance: f64,
    pub l0: f64,
    pub aux: f64,
    pub inner_mse: f64,
}

impl StepStats {
    /// From the values of [`StepTensors::stats`] (a missing one reads as NaN).
    pub(crate) fn from_values(v: &[f32]) -> Self {
        let s = |i: usize| f64::from(v.get(i).copied().unwrap_or(f32::NAN));
        Self {
            mse: s(stat::MSE),
            total_variance: s(stat::TOTAL_VARIANCE),
            l0: s(stat::L0),
            aux: s(stat::AUX),
            inner_mse: s(stat::INNER_MSE),
        }
    }

    /// MSE + the sparsity/AuxK term + Matryoshka's inner MSE.
    pub(crate) fn loss(&self) -> f64 {
        self.mse + self.aux + self.inner_mse
    }

    /// `1 − mse / total variance` (0 for a constant batch).
    pub(crate) fn explained_variance(&self) -> f64 {
        if self.total_variance > 0.0 {
            1.0 - self.mse / self.total_variance
        } else {
            0.0
        }
    }
}

impl StepOutput {
    /// Reads a step's statistics back, in one transfer.
    fn read(t: StepTensors) -> Result<Self> {
        let mut parts = vec![t.stats, t.active_per_latent];
        if let Some(m) = t.min_active {
            parts.push(m);
        }
        let read = tensors_to_vecs(parts)?;
        let s = StepStats::from_values(&read[0]);
        Ok(Self {
            grads: t.grads,
            loss: s.loss(),
            mse: s.mse,
            aux: s.aux,
            inner_mse: s.inner_mse,
            l0: s.l0,
            explained_variance: s.explained_variance(),
            fired: read[1].iter().map(|c| *c > 0.0).collect(),
            min_active: read
                .get(2)
                .and_then(|m| m.first())
                .filter(|m| **m > 0.0 && m.is_finite())
                .map(|m| f64::from(*m)),
            residual: t.residual,
        })
    }
}

/// The statistics vector of [`StepTensors`] from its parts (`[1]` each).
fn stats_tensor(
    mse: Tensor<1>,
    total_var: Tensor<1>,
    l0: Tensor<1>,
    aux: Tensor<1>,
    inner_mse: Tensor<1>,
) -> Tensor<1> {
    Tensor::cat(vec![mse, total_var, l0, aux, inner_mse], 0)
}

/// What a step's loss is made of besides the parameters and the batch.
#[derive(Debug, Clone, Copy)]
pub struct LossSpec<'a> {
    /// The architecture.
    pub arch: TrainArchitecture,
    /// The sparsity coefficient now (L1 of a standard SAE, L0 of a JumpReLU SAE).
    pub coefficient: f64,
    /// Subtract `b_dec` from the input before encoding.
    pub apply_b_dec_to_input: bool,
    /// Latents counted as dead (`[d_sae]`), for AuxK.
    pub dead: Option<&'a [bool]>,
    /// Matryoshka inner levels (prefix widths below d_sae, increasing); empty without.
    pub inner_levels: &'a [usize],
}

/// Latents counted as dead, for AuxK: a host mask, or one on the device (a trainer's, kept
/// there so that the step reads nothing back).
#[derive(Debug, Clone)]
pub(crate) enum Dead<'a> {
    /// `[d_sae]` on the host.
    Host(&'a [bool]),
    /// `[d_sae]` on the step's device; AuxK runs (its loss is 0 when none is dead).
    Device(Box<Tensor<1, Bool>>),
}

/// Loss and gradients for one batch.
///
/// # Shapes
/// - `x`: `[B, d_in]`; `dead`: `[d_sae]` (latents counted as dead, for AuxK).
pub fn loss_and_grads(
    p: &SaeTensors,
    x: Tensor<2>,
    arch: TrainArchitecture,
    l1_coefficient: f64,
    apply_b_dec_to_input: bool,
    dead: Option<&[bool]>,
) -> Result<StepOutput> {
    loss_and_grads_for(
        p,
        x,
        &LossSpec {
            arch,
            coefficient: l1_coefficient,
            apply_b_dec_to_input,
            dead,
            inner_levels: &[],
        },
        None,
    )
}

/// [`loss_and_grads`] for any [`LossSpec`] (JumpReLU's coefficient, Matryoshka's levels), with
/// the AuxK residual given or computed (see [`loss_and_grads_with_residual`]).
///
/// # Errors
/// [`StoreError::InvalidOption`](crate::StoreError::InvalidOption) when a JumpReLU step has no
/// threshold tensor or a Matryoshka level is not below d_sae; device read errors.
pub fn loss_and_grads_for(
    p: &SaeTensors,
    x: Tensor<2>,
    spec: &LossSpec<'_>,
    residual: Option<Tensor<2>>,
) -> Result<StepOutput> {
    loss_and_grads_on(p, x, spec, residual, StepPath::Auto)
}

/// [`loss_and_grads_for`] on a chosen [`StepPath`]; the statistics are read back once, at the
/// end.
pub fn loss_and_grads_on(
    p: &SaeTensors,
    x: Tensor<2>,
    spec: &LossSpec<'_>,
    residual: Option<Tensor<2>>,
    path: StepPath,
) -> Result<StepOutput> {
    let dead = spec.dead.map(Dead::Host);
    StepOutput::read(step_tensors(p, x, spec, dead, residual, path)?)
}

/// [`loss_and_grads`] with the AuxK target residual given (`e = x̂ − x` from other
/// parameters) instead of computed: the residual is a constant of the AuxK loss (detached, as
/// in SAELens), which this makes checkable by finite differences.
pub fn loss_and_grads_with_residual(
    p: &SaeTensors,
    x: Tensor<2>,
    arch: TrainArchitecture,
    l1_coefficient: f64,
    apply_b_dec_to_input: bool,
    dead: Option<&[bool]>,
    residual: Option<Tensor<2>>,
) -> Result<StepOutput> {
    loss_and_grads_for(
        p,
        x,
        &LossSpec {
            arch,
            coefficient: l1_coefficient,
            apply_b_dec_to_input,
            dead,
            inner_levels: &[],
        },
        residual,
    )
}

/// The step, its results left where they were computed. `spec.dead` is not read: `dead` says
/// which latents are dead (`None`: AuxK does not run).
pub(crate) fn step_tensors(
    p: &SaeTensors,
    x: Tensor<2>,
    spec: &LossSpec<'_>,
    dead: Option<Dead<'_>>,
    residual: Option<Tensor<2>>,
    path: StepPath,
) -> Result<StepTensors> {
    let resident = path.is_resident(&x.device());
    let (x_in, h) = encoder_input_and_pre(p, &x, spec.apply_b_dec_to_input);
    let inputs = StepInputs {
        p,
        x,
        x_in,
        h,
        dead,
        residual,
    };
    if !resident && let Some(rule) = sparse_host_step(spec, p.w_enc.dims()[1]) {
        return step_topk_host(inputs, spec, rule);
    }
    step_dense(inputs, spec, resident)
}

/// What both step paths start from.
struct StepInputs<'a> {
    p: &'a SaeTensors,
    x: Tensor<2>,
    /// `x′`.
    x_in: Tensor<2>,
    /// `h`.
    h: Tensor<2>,
    dead: Option<Dead<'a>>,
    /// AuxK's target, when given instead of computed.
    residual: Option<Tensor<2>>,
}

/// `x′` (`x − b_dec` when applied) and the pre-activations `h = x′·W_enc + b_enc`.
fn encoder_input_and_pre(
    p: &SaeTensors,
    x: &Tensor<2>,
    apply_b_dec_to_input: bool,
) -> (Tensor<2>, Tensor<2>) {
    let x_in = if apply_b_dec_to_input {
        x.clone().sub(p.b_dec.clone().unsqueeze_dim(0))
    } else {
        x.clone()
    };
    let h = x_in
        .clone()
        .matmul(p.w_enc.clone())
        .add(p.b_enc.clone().unsqueeze_dim(0));
    (x_in, h)
}

/// How the TopK family keeps latents active, for [`step_topk_host`].
#[derive(Debug, Clone, Copy)]
enum TopKRule {
    /// The k largest of each row.
    PerRow(usize),
    /// The k·B largest of the batch.
    PerBatch(f64),
}

/// The rule when the TopK family's sparse host path ([`step_topk_host`]) serves a step off the
/// device-resident path: without Matryoshka levels, and with at most 1/16 of the latents active
/// on average (above that the dense products' better arithmetic rate wins).
fn sparse_host_step(spec: &LossSpec<'_>, d_sae: usize) -> Option<TopKRule> {
    let (rule, k) = match spec.arch {
        TrainArchitecture::TopK { k, .. } => (TopKRule::PerRow(k), k as f64),
        TrainArchitecture::BatchTopK { k, .. } => (TopKRule::PerBatch(k), k),
        _ => return None,
    };
    (spec.inner_levels.is_empty() && k * 16.0 <= d_sae as f64).then_some(rule)
}

/// A `[1]` tensor holding `v`.
fn scalar_tensor(v: f64, device: &Device) -> Tensor<1> {
    Tensor::full([1], v, device)
}

/// The step with every product dense, on any device and for every architecture; with
/// `resident`, every selection where the data is and nothing read back.
fn step_dense(inputs: StepInputs<'_>, spec: &LossSpec<'_>, resident: bool) -> Result<StepTensors> {
    let StepInputs {
        p,
        x,
        x_in,
        h,
        dead,
        residual,
    } = inputs;
    let LossSpec {
        arch,
        coefficient: l1_coefficient,
        apply_b_dec_to_input,
        inner_levels,
        ..
    } = *spec;
    let device = x.device();
    let [b, d_in] = x.dims();
    let d_sae = p.w_enc.dims()[1];
    let bf = b as f64;
    let select_on = if resident {
        SelectOn::Device
    } else {
        SelectOn::Auto
    };
    let positive = h.clone().greater_elem(0.0);
    let (mask, min_active) = match arch {
        TrainArchitecture::Standard { .. } => (positive, None),
        TrainArchitecture::TopK { k, .. } => {
            let thr = row_kth_largest_tensor_on(&h, k, select_on)?;
            let top = h.clone().sub(thr).greater_equal_elem(0.0);
            (positive.bool_and(top), None)
        }
        TrainArchitecture::JumpRelu { .. } => {
            let theta = jumprelu_threshold(p)?;
            (
                h.clone().sub(theta.unsqueeze_dim(0)).greater_elem(0.0),
                None,
            )
        }
        TrainArchitecture::BatchTopK { k, .. }
        | TrainArchitecture::MatryoshkaBatchTopK { k, .. } => {
            let n_keep = ((k * bf) as usize).min(b * d_sae);
            let clamped = h.clone().clamp_min(0.0);
            let thr = if resident {
                kth_largest_where(clamped, n_keep)
            } else {
                let t = with_host_values(clamped, |v| kth_largest(v, n_keep))?;
                Tensor::full([1, 1], t, &device)
            };
            let m = positive.bool_and(h.clone().greater_equal(thr.clone().expand([b, d_sae])));
            // The smallest kept activation when positive and finite, else 0 (no update).
            let thr = thr.reshape([1]);
            let invalid = thr
                .clone()
                .lower_equal_elem(0.0)
                .bool_or(thr.clone().is_finite().bool_not());
            (m, Some(thr.mask_fill(invalid, 0.0)))
        }
    };
    let mask_f = mask.float();
    let f = h.clone().mul(mask_f.clone());
    let x_hat = f
        .clone()
        .matmul(p.w_dec.clone())
        .add(p.b_dec.clone().unsqueeze_dim(0));
    let e = x_hat.sub(x.clone());
    let centred = x.clone().sub(x.clone().mean_dim(0));
    let active_per_latent = mask_f.clone().sum_dim(0).reshape([d_sae]);
    let mse = e.clone().square().sum().div_scalar(bf);
    let total_var = centred.square().sum().div_scalar(bf);
    let l0 = active_per_latent.clone().sum().div_scalar(bf);

    // d(MSE)/dx̂ = 2e/B.
    let g_out = e.clone().mul_scalar(2.0 / bf);
    let mut g_b_dec = g_out.clone().sum_dim(0).reshape([d_in]);
    let mut g_w_dec = f.clone().transpose().matmul(g_out.clone());
    let mut g_f = g_out.matmul(p.w_dec.clone().transpose());
    let mut aux = scalar_tensor(0.0, &device);
    let mut g_h_extra: Option<Tensor<2>> = None;
    let mut g_threshold: Option<Tensor<1>> = None;
    let mut inner_mse = scalar_tensor(0.0, &device);

    if !inner_levels.is_empty() {
        inner_mse = matryoshka_levels(
            MatryoshkaInputs {
                f: &f,
                x: &x,
                w_dec: &p.w_dec,
                b_dec: &p.b_dec,
                levels: inner_levels,
            },
            &mut g_f,
            &mut g_w_dec,
            &mut g_b_dec,
        )?;
    }

    match arch {
        TrainArchitecture::Standard { .. } => {
            if l1_coefficient > 0.0 {
                // L1 = c/B · Σ_b Σ_j f_bj ‖W_dec_j‖ (f ≥ 0).
                let norms = p.w_dec.clone().square().sum_dim(1).sqrt().clamp_min(1e-12); // [S,1]
                let l1_sum = f.clone().sum_dim(0).reshape([d_sae, 1]); // Σ_b f_bj
                aux = l1_sum
                    .clone()
                    .mul(norms.clone())
                    .sum()
                    .mul_scalar(l1_coefficient / bf);
                // ∂/∂f_bj = c/B · ‖W_dec_j‖
                g_f = g_f.add(
                    norms
                        .clone()
                        .reshape([1, d_sae])
                        .mul_scalar(l1_coefficient / bf),
                );
                // ∂/∂W_dec_j = c/B · (Σ_b f_bj) · W_dec_j / ‖W_dec_j‖
                g_w_dec = g_w_dec.add(
                    p.w_dec
                        .clone()
                        .div(norms)
                        .mul(l1_sum)
                        .mul_scalar(l1_coefficient / bf),
                );
            }
        }
        TrainArchitecture::JumpRelu { bandwidth, .. } => {
            // L0 = c · mean_b Σ_j H(h_bj − θ_j): c · l0 in value. Its gradient and the MSE's
            // with respect to θ go through the straight-through estimator (SAELens's `Step` and
            // `JumpReLU` backward): with the rectangle window w = 1{|h − θ| < ε/2},
            // ∂/∂θ_j = −(1/ε) Σ_b w_bj (θ_j · ∂L/∂f_bj + c/B). The pre-activations get the plain
            // JumpReLU gradient (mask · ∂L/∂f) and nothing from the L0 term.
            let theta = jumprelu_threshold(p)?;
            aux = l0.clone().mul_scalar(l1_coefficient);
            let window = h
                .clone()
                .sub(theta.clone().unsqueeze_dim(0))
                .div_scalar(bandwidth);
            let window = window
                .clone()
                .greater_elem(-0.5)
                .bool_and(window.lower_elem(0.5))
                .float();
            let per = g_f
                .clone()
                .mul(theta.unsqueeze_dim(0))
                .add_scalar(l1_coefficient / bf);
            g_threshold = Some(
                window
                    .mul(per)
                    .sum_dim(0)
                    .reshape([d_sae])
                    .mul_scalar(-1.0 / bandwidth),
            );
        }
        TrainArchitecture::TopK {
            aux_coefficient, ..
        }
        | TrainArchitecture::BatchTopK {
            aux_coefficient, ..
        }
        | TrainArchitecture::MatryoshkaBatchTopK {
            aux_coefficient, ..
        } => {
            if let Some(dead) = &dead {
                let target = residual.clone().unwrap_or_else(|| e.clone());
                if let Some(a) = aux_k(&h, target, &p.w_dec, dead, aux_coefficient, resident)? {
                    aux = a.loss;
                    g_w_dec = g_w_dec.add(a.g_w_dec);
                    g_h_extra = Some(a.g_h);
                }
            }
        }
    }

    let mut g_h = g_f.mul(mask_f);
    if let Some(extra) = g_h_extra {
        g_h = g_h.add(extra);
    }
    let g_b_enc = g_h.clone().sum_dim(0).reshape([d_sae]);
    let g_w_enc = x_in.transpose().matmul(g_h.clone());
    if apply_b_dec_to_input {
        g_b_dec = g_b_dec.sub(
            g_h.matmul(p.w_enc.clone().transpose())
                .sum_dim(0)
                .reshape([d_in]),
        );
    }
    Ok(StepTensors {
        grads: SaeTensors {
            w_enc: g_w_enc,
            b_enc: g_b_enc,
            w_dec: g_w_dec,
            b_dec: g_b_dec,
            threshold: g_threshold,
        },
        stats: stats_tensor(mse, total_var, l0, aux, inner_mse),
        active_per_latent,
        min_active,
        residual: e,
    })
}

/// AuxK's loss and its gradient contributions.
struct AuxK {
    /// `[1]`.
    loss: Tensor<1>,
    /// Added to W_dec's gradient, `[d_sae, d_in]`.
    g_w_dec: Tensor<2>,
    /// Added to the pre-activations' gradient, `[B, d_sae]`.
    g_h: Tensor<2>,
}

/// AuxK: the top `k_aux = min(d_in / 2, dead)` dead latents of each row reconstruct the
/// (detached) residual `target`, the loss scaled by `min(dead / (d_in / 2), 1)`; `None` when
/// the coefficient is 0 or (a host mask) no latent is dead. A device mask stays on the device:
/// its count, k_aux and the scale are tensors, and with no dead latent the loss and gradients
/// are 0.
fn aux_k(
    h: &Tensor<2>,
    target: Tensor<2>,
    w_dec: &Tensor<2>,
    dead: &Dead<'_>,
    aux_coefficient: f64,
    resident: bool,
) -> Result<Option<AuxK>> {
    if aux_coefficient <= 0.0 {
        return Ok(None);
    }
    let device = h.device();
    let [b, d_sae] = h.dims();
    let d_in = w_dec.dims()[1];
    let bf = b as f64;
    let k_aux_full = d_in / 2;
    let (thr, dead_t, scale) = match dead {
        Dead::Host(mask) => {
            let n_dead = mask.iter().filter(|d| **d).count();
            if n_dead == 0 {
                return Ok(None);
            }
            let scale = (n_dead as f64 / k_aux_full.max(1) as f64).min(1.0);
            let k_aux = k_aux_full.min(n_dead).max(1);
            let dead_t = bool_tensor_from_vec(mask.to_vec(), [1, d_sae], &device);
            let thr = if resident {
                let k = Tensor::<2, Int>::full([1, 1], k_aux as i64, &device);
                row_kth_largest_where(h.clone(), k, Some(dead_t.clone()))
            } else {
                let thr =
                    with_host_values(h.clone(), |v| row_kth_largest(v, d_sae, k_aux, Some(mask)))?;
                tensor_from_vec(thr, [b, 1], &device)
            };
            (thr, dead_t, Tensor::full([1, 1], scale, &device))
        }
        Dead::Device(mask) => {
            let mask = mask.as_ref().clone();
            let dead_t = mask.clone().reshape([1, d_sae]);
            let n_dead = mask.int().sum().reshape([1, 1]);
            let k_aux = n_dead.clone().clamp_max(k_aux_full.max(1) as i64);
            let thr = row_kth_largest_where(h.clone(), k_aux, Some(dead_t.clone()));
            let scale = n_dead
                .float()
                .div_scalar(k_aux_full.max(1) as f64)
                .clamp_max(1.0);
            (thr, dead_t, scale)
        }
    };
    let aux_mask = h
        .clone()
        .greater_equal(thr.expand([b, d_sae]))
        .bool_and(dead_t.expand([b, d_sae]))
        .float();
    let a = h.clone().mul(aux_mask.clone());
    // r = a·W_dec − (x − x̂) = a·W_dec + e (e detached)
    let r = a.clone().matmul(w_dec.clone()).add(target);
    let loss = r
        .clone()
        .square()
        .sum()
        .mul(scale.clone().reshape([1]))
        .mul_scalar(aux_coefficient / bf);
    let g_r = r.mul(scale).mul_scalar(2.0 * aux_coefficient / bf);
    Ok(Some(AuxK {
        loss,
        g_w_dec: a.transpose().matmul(g_r.clone()),
        g_h: g_r.matmul(w_dec.clone().transpose()).mul(aux_mask),
    }))
}

/// The TopK / BatchTopK step on host memory with the decode and the gradient products over the
/// active entries only ([`ActiveLatents`]): the encoder product `x′·W_enc` stays dense, and so
/// does AuxK when latents are dead (its top `d_in / 2` dead latents per row are not sparse).
/// Equal to [`step_dense`] up to f32 summation order (a unit test checks both paths).
fn step_topk_host(
    inputs: StepInputs<'_>,
    spec: &LossSpec<'_>,
    rule: TopKRule,
) -> Result<StepTensors> {
    let StepInputs {
        p,
        x,
        x_in,
        h,
        dead,
        residual,
    } = inputs;
    let device = x.device();
    let [b, d_in] = x.dims();
    let d_sae = p.w_enc.dims()[1];
    let bf = b as f64;
    let (active, min_active) = with_host_values(h.clone(), |v| match rule {
        TopKRule::PerBatch(k) => {
            let n_keep = ((k * bf) as usize).min(v.len());
            let clamped: Vec<f32> = v.iter().map(|x| x.max(0.0)).collect();
            let thr = kth_largest(&clamped, n_keep);
            let min_active = if thr > 0.0 && thr.is_finite() {
                thr
            } else {
                0.0
            };
            (ActiveLatents::select(v, d_sae, |_| thr), Some(min_active))
        }
        TopKRule::PerRow(k) => {
            let thr = row_kth_largest(v, d_sae, k, None);
            (ActiveLatents::select(v, d_sae, |r| thr[r]), None)
        }
    })?;
    let x_h = tensor_to_vec(x)?;
    let w_dec_h = tensor_to_vec(p.w_dec.clone())?;
    let b_dec_h = tensor_to_vec(p.b_dec.clone())?;

    let x_hat = active.decode(&w_dec_h, &b_dec_h);
    let e_h: Vec<f32> = x_hat.iter().zip(&x_h).map(|(a, b)| a - b).collect();
    let mut mean = vec![0f64; d_in];
    for row in x_h.chunks(d_in) {
        mean.iter_mut()
            .zip(row)
            .for_each(|(m, v)| *m += f64::from(*v));
    }
    mean.iter_mut().for_each(|m| *m /= bf);
    let total_var = x_h
        .chunks(d_in)
        .flat_map(|row| {
            row.iter()
                .zip(&mean)
                .map(|(v, m)| (f64::from(*v) - m).powi(2))
        })
        .sum::<f64>()
        / bf;
    let mse = e_h.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / bf;
    let l0 = active.nnz() as f64 / bf;
    let counts: Vec<f32> = active.counts().iter().map(|c| *c as f32).collect();

    // d(MSE)/dx̂ = 2e/B.
    let two_over_b = (2.0 / bf) as f32;
    let g_out: Vec<f32> = e_h.iter().map(|v| v * two_over_b).collect();
    let mut g_b_dec_h = vec![0f32; d_in];
    for row in g_out.chunks(d_in) {
        g_b_dec_h.iter_mut().zip(row).for_each(|(g, v)| *g += v);
    }
    let g_w_dec_h = active.transposed_product(&g_out, active.values(), d_in);
    let g_h_entries = active.entry_dots(&g_out, &w_dec_h, d_in);
    let e = tensor_from_vec(e_h, [b, d_in], &device);
    let mut g_w_dec = tensor_from_vec(g_w_dec_h, [d_sae, d_in], &device);
    let g_b_dec = tensor_from_vec(g_b_dec_h, [d_in], &device);

    let aux_coefficient = match spec.arch {
        TrainArchitecture::TopK {
            aux_coefficient, ..
        }
        | TrainArchitecture::BatchTopK {
            aux_coefficient, ..
        } => aux_coefficient,
        _ => 0.0,
    };
    let aux_k = match &dead {
        Some(dead) => {
            let target = residual.unwrap_or_else(|| e.clone());
            aux_k(&h, target, &p.w_dec, dead, aux_coefficient, false)?
        }
        None => None,
    };
    let mut aux = scalar_tensor(0.0, &device);
    let (g_w_enc, g_b_enc) = match aux_k {
        Some(a) => {
            // AuxK's gradient is dense: the encoder's products run dense too.
            aux = a.loss;
            g_w_dec = g_w_dec.add(a.g_w_dec);
            let g_h =
                tensor_from_vec(active.to_dense(&g_h_entries), [b, d_sae], &device).add(a.g_h);
            (
                x_in.transpose().matmul(g_h.clone()),
                g_h.sum_dim(0).reshape([d_sae]),
            )
        }
        None => {
            let mut g_b_enc = vec![0f32; d_sae];
            for (j, g) in active.latents().iter().zip(&g_h_entries) {
                g_b_enc[*j as usize] += g;
            }
            // x′ᵀ·g_h, computed as (g_hᵀ·x′) [d_sae, d_in] and transposed on the host.
            // x′ on the host: the batch itself unless b_dec was subtracted.
            let x_in_h = if spec.apply_b_dec_to_input {
                std::borrow::Cow::Owned(tensor_to_vec(x_in)?)
            } else {
                std::borrow::Cow::Borrowed(x_h.as_slice())
            };
            let t = active.transposed_product(&x_in_h, &g_h_entries, d_in);
            let mut g_w_enc = vec![0f32; d_in * d_sae];
            for (j, row) in t.chunks(d_in).enumerate() {
                for (i, v) in row.iter().enumerate() {
                    g_w_enc[i * d_sae + j] = *v;
                }
            }
            (
                tensor_from_vec(g_w_enc, [d_in, d_sae], &device),
                tensor_from_vec(g_b_enc, [d_sae], &device),
            )
        }
    };
    let g_b_dec = if spec.apply_b_dec_to_input {
        // Σ_b g_h·W_encᵀ = W_enc·(Σ_b g_h) = W_enc·g_b_enc.
        g_b_dec.sub(
            p.w_enc
                .clone()
                .matmul(g_b_enc.clone().reshape([d_sae, 1]))
                .reshape([d_in]),
        )
    } else {
        g_b_dec
    };
    Ok(StepTensors {
        grads: SaeTensors {
            w_enc: g_w_enc,
            b_enc: g_b_enc,
            w_dec: g_w_dec,
            b_dec: g_b_dec,
            threshold: None,
        },
        stats: stats_tensor(
            scalar_tensor(mse, &device),
            scalar_tensor(total_var, &device),
            scalar_tensor(l0, &device),
            aux,
            scalar_tensor(0.0, &device),
        ),
        active_per_latent: tensor_from_vec(counts, [d_sae], &device),
        min_active: min_active.map(|m| scalar_tensor(f64::from(m), &device)),
        residual: e,
    })
}

/// JumpReLU's threshold, or an error naming what is missing.
fn jumprelu_threshold(p: &SaeTensors) -> Result<Tensor<1>> {
    p.threshold.clone().ok_or_else(|| {
        crate::error::StoreError::invalid(
            "JumpReLU parameters",
            "a threshold tensor [d_sae]",
            "none",
        )
    })
}

/// What the Matryoshka levels read.
struct MatryoshkaInputs<'a> {
    f: &'a Tensor<2>,
    x: &'a Tensor<2>,
    w_dec: &'a Tensor<2>,
    b_dec: &'a Tensor<1>,
    levels: &'a [usize],
}

/// The inner levels' reconstructions: for each level `w`, `x̂_w = f[:, :w]·W_dec[:w] + b_dec`
/// and its MSE `Σ (x̂_w − x)² / B`, added to the loss (returned, summed, `[1]`). Their gradients are
/// added to `g_f`, `g_w_dec` and `g_b_dec`: the latents of segment `s` (between levels s−1 and
/// s) are in every level from s on, so they receive the sum `G_s` of those levels' output
/// gradients `2(x̂_w − x)/B`.
fn matryoshka_levels(
    m: MatryoshkaInputs<'_>,
    g_f: &mut Tensor<2>,
    g_w_dec: &mut Tensor<2>,
    g_b_dec: &mut Tensor<1>,
) -> Result<Tensor<1>> {
    let [b, d_in] = m.x.dims();
    let d_sae = m.w_dec.dims()[0];
    let bf = b as f64;
    if m.levels.windows(2).any(|w| w[0] >= w[1]) || m.levels.iter().any(|&w| w == 0 || w >= d_sae) {
        return Err(crate::error::StoreError::invalid(
            "Matryoshka inner levels",
            format!("increasing, in 1..{d_sae}"),
            format!("{:?}", m.levels),
        ));
    }
    let mut bounds = vec![0];
    bounds.extend_from_slice(m.levels);
    let mut recon = m.b_dec.clone().unsqueeze_dim(0).repeat_dim(0, b);
    let mut g_outs = Vec::with_capacity(m.levels.len());
    let mut sums = Vec::with_capacity(m.levels.len());
    for s in 0..m.levels.len() {
        let (lo, hi) = (bounds[s], bounds[s + 1]);
        recon = recon.add(
            m.f.clone()
                .slice([0..b, lo..hi])
                .matmul(m.w_dec.clone().slice([lo..hi, 0..d_in])),
        );
        let e = recon.clone().sub(m.x.clone());
        sums.push(e.clone().square().sum());
        g_outs.push(e.mul_scalar(2.0 / bf));
    }
    let inner = sums
        .into_iter()
        .reduce(|a, b| a.add(b))
        .unwrap_or_else(|| Tensor::zeros([1], &m.x.device()))
        .div_scalar(bf);
    // Suffix sums: G_s = Σ_{l ≥ s} g_out_l for the segments below the last level.
    let mut acc: Option<Tensor<2>> = None;
    let mut g_seg: Vec<Tensor<2>> = vec![Tensor::zeros([b, d_in], &m.x.device()); m.levels.len()];
    for s in (0..m.levels.len()).rev() {
        let next = match acc {
            Some(a) => a.add(g_outs[s].clone()),
            None => g_outs[s].clone(),
        };
        g_seg[s] = next.clone();
        acc = Some(next);
    }
    let mut f_parts = Vec::with_capacity(m.levels.len() + 1);
    let mut w_parts = Vec::with_capacity(m.levels.len() + 1);
    for (s, g) in g_seg.iter().enumerate() {
        let (lo, hi) = (bounds[s], bounds[s + 1]);
        let w_seg = m.w_dec.clone().slice([lo..hi, 0..d_in]);
        f_parts.push(g.clone().matmul(w_seg.transpose()));
        w_parts.push(
            m.f.clone()
                .slice([0..b, lo..hi])
                .transpose()
                .matmul(g.clone()),
        );
    }
    let last = bounds[m.levels.len()];
    f_parts.push(Tensor::zeros([b, d_sae - last], &m.x.device()));
    w_parts.push(Tensor::zeros([d_sae - last, d_in], &m.x.device()));
    *g_f = g_f.clone().add(Tensor::cat(f_parts, 1));
    *g_w_dec = g_w_dec.clone().add(Tensor::cat(w_parts, 0));
    if let Some(a) = acc {
        *g_b_dec = g_b_dec.clone().add(a.sum_dim(0).reshape([d_in]));
    }
    Ok(inner)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sae_core::device::cpu;

    fn values(seed: u64, n: usize, scale: f32) -> Vec<f32> {
        sae_core::testing::Lcg(seed).vec(n, scale)
    }

    fn max_rel_diff<const D: usize>(a: &Tensor<D>, b: &Tensor<D>) -> f32 {
        let (a, b) = (
            tensor_to_vec(a.clone()).unwrap(),
            tensor_to_vec(b.clone()).unwrap(),
        );
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
        a.iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs() / scale))
    }

    /// The sparse host path, the dense one with host selections and the device-resident one
    /// (device selections, the dead mask given on the host or on the device) agree (loss,
    /// statistics, every gradient) for TopK and BatchTopK, with and without `b_dec` subtracted
    /// and with and without dead latents (AuxK).
    #[test]
    fn every_step_path_gives_the_same_step() {
        let dev = cpu();
        let (b, d, s) = (24usize, 12usize, 64usize);
        let p = SaeTensors {
            w_enc: tensor_from_vec(values(1, d * s, 0.5), [d, s], &dev),
            b_enc: tensor_from_vec(values(2, s, 0.2), [s], &dev),
            w_dec: tensor_from_vec(values(3, s * d, 0.3), [s, d], &dev),
            b_dec: tensor_from_vec(values(4, d, 0.1), [d], &dev),
            threshold: None,
        };
        let x = tensor_from_vec(values(5, b * d, 1.0), [b, d], &dev);
        let dead: Vec<bool> = (0..s).map(|j| j % 3 == 0).collect();
        // Fewer dead latents than k_aux = d_in / 2: all of them reconstruct, scaled down.
        let few: Vec<bool> = (0..s).map(|j| j == 5 || j == 40).collect();
        let archs = [
            TrainArchitecture::TopK {
                k: 3,
                aux_coefficient: 1.0 / 32.0,
            },
            TrainArchitecture::BatchTopK {
                k: 2.5,
                aux_coefficient: 1.0 / 32.0,
                threshold_lr: 0.01,
            },
        ];
        // The dense step serves denser TopK settings and the other architectures.
        for arch in [
            TrainArchitecture::TopK {
                k: 5,
                aux_coefficient: 0.0,
            },
            TrainArchitecture::Standard {
                l1_coefficient: 1.0,
                l1_warm_up_steps: 0,
            },
        ] {
            let spec = LossSpec {
                arch,
                coefficient: 0.0,
                apply_b_dec_to_input: false,
                dead: None,
                inner_levels: &[],
            };
            assert!(sparse_host_step(&spec, s).is_none(), "{arch:?}");
        }
        for arch in archs {
            for apply_b_dec_to_input in [false, true] {
                for dead in [None, Some(dead.as_slice()), Some(few.as_slice())] {
                    let spec = LossSpec {
                        arch,
                        coefficient: 0.0,
                        apply_b_dec_to_input,
                        dead,
                        inner_levels: &[],
                    };
                    let rule = sparse_host_step(&spec, s).unwrap();
                    let run = |path: usize| {
                        let (x_in, h) = encoder_input_and_pre(&p, &x, apply_b_dec_to_input);
                        let dead = match (path, dead) {
                            // The trainer's form on a GPU: a device mask, all-false for none.
                            (3, d) => Some(Dead::Device(Box::new(
                                sae_core::device::bool_tensor_from_vec(
                                    d.map_or_else(|| vec![false; s], <[bool]>::to_vec),
                                    [s],
                                    &dev,
                                ),
                            ))),
                            (_, d) => d.map(Dead::Host),
                        };
                        let inputs = StepInputs {
                            p: &p,
                            x: x.clone(),
                            x_in,
                            h,
                            dead,
                            residual: None,
                        };
                        let t = match path {
                            0 => step_topk_host(inputs, &spec, rule),
                            1 => step_dense(inputs, &spec, false),
                            _ => step_dense(inputs, &spec, true),
                        };
                        StepOutput::read(t.unwrap()).unwrap()
                    };
                    let sp = run(0);
                    for (path, de) in [(1, run(1)), (2, run(2)), (3, run(3))] {
                        let what = format!(
                            "path {path}, {arch:?}, b_dec {apply_b_dec_to_input}, dead {}",
                            dead.is_some()
                        );
                        assert!(de.l0 > 0.5, "{what}: too few active latents to test");
                        assert_eq!(sp.fired, de.fired, "{what}");
                        assert_eq!(sp.l0, de.l0, "{what}");
                        assert_eq!(sp.min_active, de.min_active, "{what}");
                        for (a, e, name) in [
                            (sp.loss, de.loss, "loss"),
                            (sp.mse, de.mse, "mse"),
                            (sp.aux, de.aux, "aux"),
                            (
                                sp.explained_variance,
                                de.explained_variance,
                                "explained variance",
                            ),
                        ] {
                            assert!(
                                (a - e).abs() <= 1e-5 * (1.0 + e.abs()),
                                "{what}: {name} {a} vs {e}"
                            );
                        }
                        if dead.is_some() {
                            assert!(de.aux > 0.0, "{what}: AuxK did not run");
                        }
                        for (diff, name) in [
                            (max_rel_diff(&sp.grads.w_enc, &de.grads.w_enc), "W_enc"),
                            (max_rel_diff(&sp.grads.b_enc, &de.grads.b_enc), "b_enc"),
                            (max_rel_diff(&sp.grads.w_dec, &de.grads.w_dec), "W_dec"),
                            (max_rel_diff(&sp.grads.b_dec, &de.grads.b_dec), "b_dec"),
                            (max_rel_diff(&sp.residual, &de.residual), "residual"),
                        ] {
                            assert!(diff <= 1e-5, "{what}: ∂{name} differs by {diff}");
                        }
                    }
                }
            }
        }
    }
}

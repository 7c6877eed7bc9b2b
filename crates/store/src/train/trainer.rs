//! One SAE's training state: parameters, Adam moments, dead-latent counters, checkpoints.
//!
//! A step reads nothing back from the device: the firing counters, BatchTopK's running
//! threshold, gradient clipping and the step's statistics stay there as tensors, and
//! [`Trainer::metrics`] reads the last step's statistics in one transfer when asked (a family
//! run asks every `log_every` steps and before each checkpoint). On a GPU each read is a
//! synchronisation that stalls the queue of kernels; a test counts them
//! ([`sae_core::device::host_reads`]). A divergence (a non-finite loss or gradient norm) is
//! therefore reported by the read that sees it, and no checkpoint is written after it.

use std::collections::BTreeMap;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use sae_core::burn::tensor::{Device, Int, Tensor};
use sae_core::device::{int_tensor_from_vec, int_tensor_to_vec, tensor_to_vec};
use sae_core::safetensors_io::{SafetensorsFile, write_safetensors};
use sae_core::{Architecture, HostTensor, Sae, SaeConfig, SaeMetadata, StorageDtype};

use crate::error::{Result, StoreError};
use crate::train::config::{TrainArchitecture, TrainConfig};
use crate::train::step::{Dead, LossSpec, SaeTensors, StepPath, StepStats, step_tensors};

/// Metrics of one step (SAELens's names).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// The step (1-based, after it ran).
    pub step: usize,
    /// Total loss.
    pub loss: f64,
    /// MSE (summed over features, averaged over rows).
    pub mse: f64,
    /// L1 or AuxK term.
    pub aux: f64,
    /// Mean active latents per row.
    pub l0: f64,
    /// Explained variance of the batch.
    pub explained_variance: f64,
    /// Share of latents that have not fired for `dead_feature_window` steps.
    pub dead_fraction: f64,
    /// The learning rate used.
    pub lr: f64,
}

/// Adam moments for the four tensors.
#[derive(Debug, Clone)]
struct Moments {
    m: SaeTensors,
    v: SaeTensors,
}

/// Positions after the step's statistics ([`StepStats`]) in [`Pending::stats`].
const GRAD_NORM: usize = 5;
const DEAD: usize = 6;

/// A step's statistics, on the device until [`Trainer::metrics`] reads them.
#[derive(Debug, Clone)]
struct Pending {
    /// Steps taken after it.
    step: usize,
    lr: f64,
    /// `[7]`: the step's statistics ([`StepStats`]), the gradient norm, the dead latents after
    /// it.
    stats: Tensor<1>,
}

/// Training state of one SAE.
#[derive(Debug, Clone)]
pub struct Trainer {
    cfg: TrainConfig,
    params: SaeTensors,
    moments: Moments,
    step: usize,
    /// Steps since each latent last fired, `[d_sae]`.
    since_fired: Tensor<1, Int>,
    /// BatchTopK's running threshold, `[1]`.
    threshold: Tensor<1>,
    scaling_factor: Option<f64>,
    pending: Option<Pending>,
    /// The divergence a read saw (step, quantity, value): every later read reports it again, so
    /// that no checkpoint follows it.
    diverged: Option<(usize, &'static str, f64)>,
    last: Option<StepMetrics>,
    path: StepPath,
    device: Device,
}

fn t2(data: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
    sae_core::device::tensor_from_vec(data, shape, device)
}

fn t1(data: Vec<f32>, device: &Device) -> Tensor<1> {
    let n = data.len();
    sae_core::device::tensor_from_vec(data, [n], device)
}

fn row_normalised(w: Tensor<2>, norm: f64) -> Tensor<2> {
    let n = w.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
    w.div(n).mul_scalar(norm)
}

impl Trainer {
    /// A fresh SAE initialised as SAELens does: Kaiming-uniform decoder rows scaled to
    /// `decoder_init_norm` (unit norm when `normalize_decoder`), encoder = decoderᵀ, zero biases.
    pub fn new(cfg: TrainConfig, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let (d_in, d_sae) = (cfg.d_in, cfg.d_sae);
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let bound = (6.0 / d_in as f64).sqrt() as f32;
        let w: Vec<f32> = (0..d_sae * d_in)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let mut w_dec = t2(w, [d_sae, d_in], device);
        if cfg.normalize_decoder {
            w_dec = row_normalised(w_dec, 1.0);
        } else if let Some(n) = cfg.decoder_init_norm {
            w_dec = row_normalised(w_dec, n);
        }
        let params = SaeTensors {
            w_enc: w_dec.clone().transpose(),
            b_enc: Tensor::zeros([d_sae], device),
            w_dec,
            b_dec: Tensor::zeros([d_in], device),
            threshold: match cfg.architecture {
                TrainArchitecture::JumpRelu { init_threshold, .. } => {
                    Some(Tensor::full([d_sae], init_threshold, device))
                }
                _ => None,
            },
        };
        Self::with_params(cfg, params, device)
    }

    /// A trainer starting from given parameters instead of the seeded initialisation (e.g. to
    /// continue from another tool's weights, or to compare one step with SAELens's on the same
    /// weights). Adam's moments start at zero.
    ///
    /// # Errors
    /// [`StoreError::InvalidOption`] for a bad config; [`StoreError::Shape`] when a tensor does
    /// not match it, or the threshold is missing (JumpReLU) or present (the others).
    pub fn with_params(cfg: TrainConfig, params: SaeTensors, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let (d_in, d_sae) = (cfg.d_in, cfg.d_sae);
        let check = |what: &str, found: Vec<usize>, expected: Vec<usize>| {
            if found == expected {
                Ok(())
            } else {
                Err(StoreError::Shape {
                    what: format!("initial {what}"),
                    expected,
                    found,
                })
            }
        };
        check("W_enc", params.w_enc.dims().to_vec(), vec![d_in, d_sae])?;
        check("b_enc", params.b_enc.dims().to_vec(), vec![d_sae])?;
        check("W_dec", params.w_dec.dims().to_vec(), vec![d_sae, d_in])?;
        check("b_dec", params.b_dec.dims().to_vec(), vec![d_in])?;
        let wants_threshold = matches!(cfg.architecture, TrainArchitecture::JumpRelu { .. });
        match (&params.threshold, wants_threshold) {
            (Some(t), true) => check("threshold", t.dims().to_vec(), vec![d_sae])?,
            (None, false) => {}
            (t, _) => {
                return Err(StoreError::Shape {
                    what: format!("initial threshold of a {} SAE", cfg.architecture.as_str()),
                    expected: if wants_threshold { vec![d_sae] } else { vec![] },
                    found: t.as_ref().map(|t| t.dims().to_vec()).unwrap_or_default(),
                });
            }
        }
        let moments = Moments {
            m: params.zeros_like(),
            v: params.zeros_like(),
        };
        Ok(Self {
            since_fired: Tensor::zeros([d_sae], device),
            cfg,
            params,
            moments,
            step: 0,
            threshold: Tensor::zeros([1], device),
            scaling_factor: None,
            pending: None,
            diverged: None,
            last: None,
            path: StepPath::Auto,
            device: device.clone(),
        })
    }

    /// The same trainer taking its steps on `path` ([`StepPath::Auto`] unless set: the host
    /// paths on the CPU, everything on the device on a GPU).
    pub fn with_step_path(mut self, path: StepPath) -> Self {
        self.path = path;
        self
    }

    /// BatchTopK's (and Matryoshka's) running threshold: the moving average of the smallest
    /// kept activation, saved as every latent's JumpReLU threshold. Reads it from the device.
    pub fn batch_topk_threshold(&self) -> Result<f64> {
        let t = tensor_to_vec(self.threshold.clone())?;
        Ok(f64::from(t.first().copied().unwrap_or(0.0)))
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Steps taken.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// The metrics last read by [`Trainer::metrics`] (kept in checkpoints, so a resumed run
    /// that has nothing left to train still reports them).
    pub fn last_metrics(&self) -> Option<StepMetrics> {
        self.last
    }

    /// The metrics of the last step taken, read from the device if not read yet (one transfer);
    /// `None` before any step.
    ///
    /// # Errors
    /// [`StoreError::Diverged`] when that step's loss or gradient norm is not finite (`step`:
    /// the steps taken; an earlier unread step may have diverged first), and from then on;
    /// device read errors.
    pub fn metrics(&mut self) -> Result<Option<StepMetrics>> {
        let diverged = |(step, what, value)| StoreError::Diverged { step, what, value };
        if let Some(d) = self.diverged {
            return Err(diverged(d));
        }
        let Some(p) = self.pending.take() else {
            return Ok(self.last);
        };
        let v = tensor_to_vec(p.stats)?;
        let s = |i: usize| f64::from(v.get(i).copied().unwrap_or(f32::NAN));
        let stats = StepStats::from_values(&v);
        let loss = stats.loss();
        for (what, value) in [("loss", loss), ("gradient norm", s(GRAD_NORM))] {
            if !value.is_finite() {
                self.diverged = Some((p.step, what, value));
                return Err(diverged((p.step, what, value)));
            }
        }
        let m = StepMetrics {
            step: p.step,
            loss,
            mse: stats.mse,
            aux: stats.aux,
            l0: stats.l0,
            explained_variance: stats.explained_variance(),
            dead_fraction: s(DEAD) / self.cfg.d_sae as f64,
            lr: p.lr,
        };
        self.last = Some(m);
        Ok(Some(m))
    }

    /// The current parameters.
    pub fn params(&self) -> &SaeTensors {
        &self.params
    }

    /// The input scaling factor (with `normalize_activations`), once estimated.
    pub fn scaling_factor(&self) -> Option<f64> {
        self.scaling_factor
    }

    /// Which latents count as dead now (not fired for more than `dead_feature_window` steps).
    /// Reads the counters from the device.
    pub fn dead_mask(&self) -> Result<Vec<bool>> {
        let window = self.cfg.dead_feature_window as i64;
        Ok(int_tensor_to_vec(self.since_fired.clone())?
            .into_iter()
            .map(|s| s > window)
            .collect())
    }

    /// Which latents count as dead now, on the device (`[d_sae]`, nothing read).
    fn dead_on_device(&self) -> Tensor<1, sae_core::burn::tensor::Bool> {
        self.since_fired
            .clone()
            .greater_elem(self.cfg.dead_feature_window as i64)
    }

    /// Share of dead latents (reads the counters from the device).
    pub fn dead_fraction(&self) -> Result<f64> {
        let dead = self.dead_mask()?.iter().filter(|d| **d).count();
        Ok(dead as f64 / self.cfg.d_sae as f64)
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// One optimisation step on a batch `[rows, d_in]` (row-major), uploaded here, and its
    /// metrics ([`Trainer::metrics`]: one read back; a loop that wants none per step calls
    /// [`Trainer::prepare`] and [`Trainer::step_uploaded`]).
    pub fn step(&mut self, batch: &[f32]) -> Result<StepMetrics> {
        let rows = self.prepare(batch)?;
        let x = t2(batch.to_vec(), [rows, self.cfg.d_in], &self.device);
        self.step_uploaded(x)?;
        self.metrics()?
            .ok_or_else(|| StoreError::invalid("training step", "metrics after a step", "none"))
    }

    /// Checks a host batch (`[rows, d_in]`, row-major) and, on the first batch of a run with
    /// `normalize_activations`, estimates the input scaling factor from it; returns its rows.
    /// [`Trainer::step`] calls it; a width family calls it for each trainer before uploading the
    /// batch once for all of them ([`Trainer::step_uploaded`]).
    pub fn prepare(&mut self, batch: &[f32]) -> Result<usize> {
        let d_in = self.cfg.d_in;
        if batch.is_empty() || !batch.len().is_multiple_of(d_in) {
            return Err(StoreError::Shape {
                what: "training batch".into(),
                expected: vec![batch.len() / d_in, d_in],
                found: vec![batch.len()],
            });
        }
        let rows = batch.len() / d_in;
        if self.cfg.normalize_activations && self.scaling_factor.is_none() {
            // SAELens's expected_average_only_in: √d_in / mean ‖x‖, here from the first batch.
            let mean_norm = batch
                .chunks(d_in)
                .map(|r| {
                    r.iter()
                        .map(|v| f64::from(*v) * f64::from(*v))
                        .sum::<f64>()
                        .sqrt()
                })
                .sum::<f64>()
                / rows as f64;
            self.scaling_factor = Some(if mean_norm > 0.0 {
                (d_in as f64).sqrt() / mean_norm
            } else {
                1.0
            });
        }
        Ok(rows)
    }

    /// One optimisation step on a batch already on this trainer's device, after
    /// [`Trainer::prepare`] saw its host copy: a width family trained from the same batches
    /// uploads each batch once ([`crate::train::train_family`]). On the device-resident path
    /// ([`StepPath::is_resident`]: any GPU) nothing is read back; [`Trainer::metrics`] reads the
    /// step's statistics.
    ///
    /// # Shapes
    /// - `x`: `[rows, d_in]`.
    pub fn step_uploaded(&mut self, x: Tensor<2>) -> Result<()> {
        let [rows, d_in] = x.dims();
        if rows == 0 || d_in != self.cfg.d_in {
            return Err(StoreError::Shape {
                what: "uploaded training batch".into(),
                expected: vec![rows.max(1), self.cfg.d_in],
                found: x.dims().to_vec(),
            });
        }
        if self.cfg.normalize_activations && self.scaling_factor.is_none() {
            return Err(StoreError::invalid(
                "scaling factor",
                "estimated by Trainer::prepare from the first batch's host copy",
                "none",
            ));
        }
        let mut x = x;
        if let Some(s) = self.scaling_factor {
            x = x.mul_scalar(s);
        }
        let window = self.cfg.dead_feature_window as i64;
        let host_dead;
        let dead = if self.path.is_resident(&self.device) {
            // A latent is dead after more than `window` steps without firing: none can be
            // before then, and AuxK (with its selection) waits.
            (self.step as i64 > window).then(|| Dead::Device(Box::new(self.dead_on_device())))
        } else {
            // Host memory: the mask is a copy away, and the host selection is the fast one.
            host_dead = self.dead_mask()?;
            Some(Dead::Host(&host_dead))
        };
        let l1 = self.cfg.l1_at(self.step);
        // SAELens keeps θ ≥ 0 by projecting it before each forward pass.
        if let Some(t) = &self.params.threshold {
            self.params.threshold = Some(t.clone().clamp_min(0.0));
        }
        let levels = self.cfg.inner_levels();
        let out = step_tensors(
            &self.params,
            x,
            &LossSpec {
                arch: self.cfg.architecture,
                coefficient: l1,
                apply_b_dec_to_input: self.cfg.apply_b_dec_to_input,
                dead: None,
                inner_levels: &levels,
            },
            dead,
            None,
            self.path,
        )?;
        let fired = out.active_per_latent.clone().greater_elem(0.0);
        self.since_fired = self.since_fired.clone().add_scalar(1).mask_fill(fired, 0);
        if let (
            TrainArchitecture::BatchTopK { threshold_lr, .. }
            | TrainArchitecture::MatryoshkaBatchTopK { threshold_lr, .. },
            Some(m),
        ) = (self.cfg.architecture, out.min_active)
        {
            // The moving average moves only on a batch with a positive kept minimum.
            let moved = self
                .threshold
                .clone()
                .mul_scalar(1.0 - threshold_lr)
                .add(m.clone().mul_scalar(threshold_lr));
            self.threshold = self
                .threshold
                .clone()
                .mask_where(m.greater_elem(0.0), moved);
        }
        let lr = self.cfg.lr_at(self.step);
        let grad_norm = self.apply(out.grads, lr)?;
        self.step += 1;
        let dead_now = self.dead_on_device().int().sum().float();
        self.pending = Some(Pending {
            step: self.step,
            lr,
            stats: Tensor::cat(vec![out.stats, grad_norm, dead_now], 0),
        });
        Ok(())
    }

    /// Gradient clipping, decoder-parallel removal, Adam, decoder renormalisation; returns the
    /// gradient norm (`[1]`, before clipping). On the device-resident path the clipping factor
    /// is a tensor (nothing read); on host memory the norm is read (a copy there).
    fn apply(&mut self, mut g: SaeTensors, lr: f64) -> Result<Tensor<1>> {
        if self.cfg.normalize_decoder {
            // Remove the component of each row's gradient along the (unit) row.
            let w = self.params.w_dec.clone();
            let along = g.w_dec.clone().mul(w.clone()).sum_dim(1);
            g.w_dec = g.w_dec.sub(w.mul(along));
        }
        let mut squares = g
            .w_enc
            .clone()
            .square()
            .sum()
            .add(g.b_enc.clone().square().sum())
            .add(g.w_dec.clone().square().sum())
            .add(g.b_dec.clone().square().sum());
        if let Some(t) = &g.threshold {
            squares = squares.add(t.clone().square().sum());
        }
        let total = squares.sqrt();
        let max_norm = self.cfg.clip_grad_norm;
        if max_norm > 0.0 {
            if self.path.is_resident(&self.device) {
                // min(1, c / (‖g‖ + 1e-6)), as torch's clip_grad_norm_, without reading ‖g‖.
                let clip = total
                    .clone()
                    .add_scalar(1e-6)
                    .recip()
                    .mul_scalar(max_norm)
                    .clamp_max(1.0);
                g = g.mul_by(clip);
            } else {
                // Host memory: reading ‖g‖ is a copy, and scaling by a host scalar only when
                // clipping beats a broadcast product over every gradient on every step.
                let norm = tensor_to_vec(total.clone())?.first().copied();
                let clip = max_norm / (f64::from(norm.unwrap_or(f32::NAN)) + 1e-6);
                if clip < 1.0 {
                    g = g.mul_scalar(clip);
                }
            }
        }
        let t = (self.step + 1) as i32;
        let (b1, b2) = (self.cfg.adam_beta1, self.cfg.adam_beta2);
        let step_size = lr / (1.0 - b1.powi(t));
        let bc2 = (1.0 - b2.powi(t)).sqrt();
        macro_rules! adam {
            ($field:ident) => {{
                let m = self
                    .moments
                    .m
                    .$field
                    .clone()
                    .mul_scalar(b1)
                    .add(g.$field.clone().mul_scalar(1.0 - b1));
                let v = self
                    .moments
                    .v
                    .$field
                    .clone()
                    .mul_scalar(b2)
                    .add(g.$field.clone().square().mul_scalar(1.0 - b2));
                let denom = v.clone().sqrt().div_scalar(bc2).add_scalar(1e-8);
                self.params.$field = self
                    .params
                    .$field
                    .clone()
                    .sub(m.clone().div(denom).mul_scalar(step_size));
                self.moments.m.$field = m;
                self.moments.v.$field = v;
            }};
        }
        adam!(w_enc);
        adam!(b_enc);
        adam!(w_dec);
        adam!(b_dec);
        if let (Some(gt), Some(pt), Some(mt), Some(vt)) = (
            g.threshold.clone(),
            self.params.threshold.clone(),
            self.moments.m.threshold.clone(),
            self.moments.v.threshold.clone(),
        ) {
            let m = mt.mul_scalar(b1).add(gt.clone().mul_scalar(1.0 - b1));
            let v = vt.mul_scalar(b2).add(gt.square().mul_scalar(1.0 - b2));
            let denom = v.clone().sqrt().div_scalar(bc2).add_scalar(1e-8);
            self.params.threshold = Some(pt.sub(m.clone().div(denom).mul_scalar(step_size)));
            self.moments.m.threshold = Some(m);
            self.moments.v.threshold = Some(v);
        }
        if self.cfg.normalize_decoder {
            self.params.w_dec = row_normalised(self.params.w_dec.clone(), 1.0);
        }
        Ok(total)
    }

    /// The trained SAE for inference, in SAELens's format: `standard`, `topk`, or (BatchTopK)
    /// `jumprelu` with the learned threshold; an input scaling factor is folded into the
    /// weights.
    pub fn to_sae(&self, metadata: SaeMetadata) -> Result<Sae> {
        let (d_in, d_sae) = (self.cfg.d_in, self.cfg.d_sae);
        let arch = match self.cfg.architecture {
            TrainArchitecture::Standard { .. } => Architecture::Standard,
            TrainArchitecture::TopK { .. } => Architecture::TopK,
            TrainArchitecture::BatchTopK { .. }
            | TrainArchitecture::JumpRelu { .. }
            | TrainArchitecture::MatryoshkaBatchTopK { .. } => Architecture::JumpRelu,
        };
        let mut config = SaeConfig::new(d_in, d_sae, arch);
        config.apply_b_dec_to_input = self.cfg.apply_b_dec_to_input;
        config.metadata = metadata;
        if let TrainArchitecture::TopK { k, .. } = self.cfg.architecture {
            config.k = Some(k);
        }
        let host = |name: &str, t: Vec<f32>, shape: Vec<usize>| {
            (name.to_string(), HostTensor::new(shape, t))
        };
        let mut tensors: BTreeMap<String, HostTensor> = [
            host(
                "W_enc",
                tensor_to_vec(self.params.w_enc.clone())?,
                vec![d_in, d_sae],
            ),
            host(
                "b_enc",
                tensor_to_vec(self.params.b_enc.clone())?,
                vec![d_sae],
            ),
            host(
                "W_dec",
                tensor_to_vec(self.params.w_dec.clone())?,
                vec![d_sae, d_in],
            ),
            host(
                "b_dec",
                tensor_to_vec(self.params.b_dec.clone())?,
                vec![d_in],
            ),
        ]
        .into_iter()
        .collect();
        match (&self.params.threshold, self.cfg.architecture) {
            (Some(t), _) => {
                // JumpReLU: its trained θ, kept ≥ 0 as in training.
                let t = tensor_to_vec(t.clone().clamp_min(0.0))?;
                tensors.insert("threshold".into(), HostTensor::new(vec![d_sae], t));
            }
            (
                None,
                TrainArchitecture::BatchTopK { .. } | TrainArchitecture::MatryoshkaBatchTopK { .. },
            ) => {
                let t = self.batch_topk_threshold()? as f32;
                tensors.insert(
                    "threshold".into(),
                    HostTensor::new(vec![d_sae], vec![t; d_sae]),
                );
            }
            _ => {}
        }
        let (mut sae, _) =
            Sae::from_host_tensors(config, tensors, Path::new("<trainer>"), &self.device)?;
        if let Some(s) = self.scaling_factor {
            // h = (s·x)·W_enc + b_enc = x·(s·W_enc) + b_enc: pre-activations, and so the
            // BatchTopK threshold, are unchanged by the fold.
            sae.fold_activation_norm_scaling_factor(s as f32);
        }
        Ok(sae)
    }

    /// Writes the full training state (parameters, Adam moments, counters) to `dir`, atomically
    /// per file, so a run can resume from it. Reads the last step's metrics first
    /// ([`Trainer::metrics`]): a diverged state is an error, not a checkpoint.
    pub fn save_checkpoint(&mut self, dir: &Path) -> Result<()> {
        self.metrics()?;
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let mut tensors = BTreeMap::new();
        for (prefix, set) in [
            ("param", &self.params),
            ("adam_m", &self.moments.m),
            ("adam_v", &self.moments.v),
        ] {
            tensors.insert(
                format!("{prefix}.W_enc"),
                HostTensor::new(set.w_enc.dims().to_vec(), tensor_to_vec(set.w_enc.clone())?),
            );
            tensors.insert(
                format!("{prefix}.b_enc"),
                HostTensor::new(set.b_enc.dims().to_vec(), tensor_to_vec(set.b_enc.clone())?),
            );
            tensors.insert(
                format!("{prefix}.W_dec"),
                HostTensor::new(set.w_dec.dims().to_vec(), tensor_to_vec(set.w_dec.clone())?),
            );
            tensors.insert(
                format!("{prefix}.b_dec"),
                HostTensor::new(set.b_dec.dims().to_vec(), tensor_to_vec(set.b_dec.clone())?),
            );
            if let Some(t) = &set.threshold {
                tensors.insert(
                    format!("{prefix}.threshold"),
                    HostTensor::new(t.dims().to_vec(), tensor_to_vec(t.clone())?),
                );
            }
        }
        write_safetensors(
            dir.join("trainer_state.safetensors"),
            &tensors,
            StorageDtype::F32,
        )?;
        let state = CheckpointState {
            config: self.cfg.clone(),
            step: self.step,
            since_fired: int_tensor_to_vec(self.since_fired.clone())?
                .into_iter()
                .map(|s| s.max(0) as u64)
                .collect(),
            threshold: self.batch_topk_threshold()?,
            scaling_factor: self.scaling_factor,
            last: self.last,
        };
        let path = dir.join("trainer_state.json");
        let json = serde_json::to_vec_pretty(&state).map_err(|e| StoreError::Json {
            path: path.clone(),
            message: e.to_string(),
        })?;
        sae_core::atomic::write(&path, &json)?;
        Ok(())
    }

    /// Restores a state written by [`Trainer::save_checkpoint`].
    pub fn load_checkpoint(dir: &Path, device: &Device) -> Result<Self> {
        let path = dir.join("trainer_state.json");
        let text = std::fs::read_to_string(&path).map_err(|e| StoreError::io(&path, e))?;
        let state: CheckpointState = serde_json::from_str(&text).map_err(|e| StoreError::Json {
            path: path.clone(),
            message: e.to_string(),
        })?;
        state.config.validate()?;
        let (d_in, d_sae) = (state.config.d_in, state.config.d_sae);
        if state.since_fired.len() != d_sae || state.last.is_some_and(|m| m.step != state.step) {
            return Err(StoreError::Json {
                path,
                message: format!(
                    "inconsistent checkpoint: {} firing counters for d_sae {d_sae}, step {}, last metrics at step {:?}",
                    state.since_fired.len(),
                    state.step,
                    state.last.map(|m| m.step)
                ),
            });
        }
        let file = SafetensorsFile::open(dir.join("trainer_state.safetensors"))?;
        let load2 = |name: &str, shape: [usize; 2]| -> Result<Tensor<2>> {
            let t = file.tensor_f32(name)?;
            if t.shape != shape {
                return Err(StoreError::Shape {
                    what: name.into(),
                    expected: shape.to_vec(),
                    found: t.shape,
                });
            }
            Ok(t2(t.data, shape, device))
        };
        let load1 = |name: &str, n: usize| -> Result<Tensor<1>> {
            let t = file.tensor_f32(name)?;
            if t.shape != [n] {
                return Err(StoreError::Shape {
                    what: name.into(),
                    expected: vec![n],
                    found: t.shape,
                });
            }
            Ok(t1(t.data, device))
        };
        let set = |prefix: &str| -> Result<SaeTensors> {
            Ok(SaeTensors {
                w_enc: load2(&format!("{prefix}.W_enc"), [d_in, d_sae])?,
                b_enc: load1(&format!("{prefix}.b_enc"), d_sae)?,
                w_dec: load2(&format!("{prefix}.W_dec"), [d_sae, d_in])?,
                b_dec: load1(&format!("{prefix}.b_dec"), d_in)?,
                threshold: match state.config.architecture {
                    TrainArchitecture::JumpRelu { .. } => {
                        Some(load1(&format!("{prefix}.threshold"), d_sae)?)
                    }
                    _ => None,
                },
            })
        };
        Ok(Self {
            params: set("param")?,
            moments: Moments {
                m: set("adam_m")?,
                v: set("adam_v")?,
            },
            cfg: state.config,
            step: state.step,
            since_fired: int_tensor_from_vec(
                state.since_fired.iter().map(|&s| s as i64).collect(),
                [d_sae],
                device,
            ),
            threshold: Tensor::full([1], state.threshold, device),
            scaling_factor: state.scaling_factor,
            pending: None,
            diverged: None,
            last: state.last,
            path: StepPath::Auto,
            device: device.clone(),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointState {
    config: TrainConfig,
    step: usize,
    since_fired: Vec<u64>,
    threshold: f64,
    scaling_factor: Option<f64>,
    #[serde(default)]
    last: Option<StepMetrics>,
}

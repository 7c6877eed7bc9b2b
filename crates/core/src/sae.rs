//! `Sae`: an SAELens SAE on burn — loading, the encode/decode semantics, and saving.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::tensor::activation::relu;
use burn::tensor::{Device, IndexingUpdateOp, Tensor};

use crate::config::{Architecture, CFG_FILENAME, SPARSITY_FILENAME, SaeConfig, WEIGHTS_FILENAME};
use crate::device::{tensor_from_vec, tensor_to_vec};
use crate::error::{INPUT_PATH, Result, SaeError};
use crate::normalization::{NormState, normalize_in, normalize_out};
use crate::safetensors_io::{HostTensor, SafetensorsFile, write_safetensors};

/// The trainable tensors of an SAE, by SAELens's names (`W_enc` → `w_enc`, …).
///
/// Which optional tensors are present depends on the architecture
/// ([`Architecture::tensor_names`]).
#[derive(Module, Debug)]
pub struct SaeParams {
    /// `W_enc`, `[d_in, d_sae]`.
    pub w_enc: Param<Tensor<2>>,
    /// `W_dec`, `[d_sae, d_in]` (`[d_sae, d_out]` for transcoders).
    pub w_dec: Param<Tensor<2>>,
    /// `b_enc`, `[d_sae]` (all but gated).
    pub b_enc: Option<Param<Tensor<1>>>,
    /// `b_dec`, `[d_in]` (`[d_out]` for transcoders).
    pub b_dec: Param<Tensor<1>>,
    /// `threshold`, `[d_sae]` (jumprelu).
    pub threshold: Option<Param<Tensor<1>>>,
    /// `b_gate`, `[d_sae]` (gated).
    pub b_gate: Option<Param<Tensor<1>>>,
    /// `b_mag`, `[d_sae]` (gated).
    pub b_mag: Option<Param<Tensor<1>>>,
    /// `r_mag`, `[d_sae]` (gated).
    pub r_mag: Option<Param<Tensor<1>>>,
    /// `W_skip`, `[d_out, d_in]` (skip transcoders).
    pub w_skip: Option<Param<Tensor<2>>>,
}

/// An SAE: its config, its parameters on a device, and optionally its latents' log10 firing
/// rates (`sparsity.safetensors`).
#[derive(Debug, Clone)]
pub struct Sae {
    config: SaeConfig,
    params: SaeParams,
    log_sparsity: Option<Vec<f32>>,
}

/// What [`Sae::load`] did with the weights file, in burn's loader style.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Tensors that were loaded.
    pub applied: Vec<String>,
    /// Tensors that were present but ignored (a `scaling_factor` of all ones).
    pub ignored: Vec<String>,
    /// Whether a `sparsity.safetensors` file was found and loaded.
    pub sparsity: bool,
}

fn shape_err(path: &Path, tensor: &str, expected: Vec<usize>, found: Vec<usize>) -> SaeError {
    SaeError::ShapeMismatch {
        path: path.to_path_buf(),
        tensor: tensor.to_string(),
        expected,
        found,
    }
}

impl Sae {
    /// Loads an SAE saved by SAELens (or by [`Sae::save`]) from a directory holding `cfg.json`,
    /// `sae_weights.safetensors` and optionally `sparsity.safetensors`.
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        Self::load_with_report(dir, device).map(|(sae, _)| sae)
    }

    /// [`Sae::load`], also saying which tensors were applied or ignored.
    pub fn load_with_report(dir: impl AsRef<Path>, device: &Device) -> Result<(Self, LoadReport)> {
        let dir = dir.as_ref();
        let config = SaeConfig::from_file(dir.join(CFG_FILENAME))?;
        let weights_path = dir.join(WEIGHTS_FILENAME);
        let tensors = SafetensorsFile::open(&weights_path)?.read_all()?;
        let sparsity_path = dir.join(SPARSITY_FILENAME);
        let log_sparsity = if sparsity_path.exists() {
            Some(read_sparsity(&sparsity_path, config.d_sae)?)
        } else {
            None
        };
        let (mut sae, mut report) =
            Self::from_host_tensors(config, tensors, &weights_path, device)?;
        report.sparsity = log_sparsity.is_some();
        sae.log_sparsity = log_sparsity;
        Ok((sae, report))
    }

    /// Builds an SAE from host tensors named as in `sae_weights.safetensors`, checking names,
    /// shapes and finiteness against the config. `path` is used in error messages.
    pub fn from_host_tensors(
        config: SaeConfig,
        mut tensors: BTreeMap<String, HostTensor>,
        path: &Path,
        device: &Device,
    ) -> Result<(Self, LoadReport)> {
        let mut report = LoadReport::default();
        let arch = config.architecture;
        // Old checkpoints carry a `scaling_factor` of ones (SAELens drops it; anything else was a
        // finetuning factor, which SAELens 6 refuses).
        if let Some(sf) = tensors.remove("scaling_factor") {
            if sf.data.iter().all(|v| *v == 1.0) {
                report.ignored.push("scaling_factor".into());
            } else {
                return Err(SaeError::UnsupportedScalingFactor {
                    path: path.to_path_buf(),
                });
            }
        }
        let names = arch.tensor_names();
        if let Some(extra) = tensors.keys().find(|k| !names.contains(&k.as_str())) {
            return Err(SaeError::UnexpectedTensor {
                path: path.to_path_buf(),
                tensor: extra.clone(),
                architecture: arch.to_string(),
            });
        }
        let (d_in, d_sae, d_out) = (config.d_in, config.d_sae, config.output_width());
        let mut take = |name: &str| -> Result<HostTensor> {
            let t = tensors
                .remove(name)
                .ok_or_else(|| SaeError::MissingTensor {
                    path: path.to_path_buf(),
                    tensor: name.to_string(),
                    architecture: arch.to_string(),
                })?;
            let expected = match name {
                "W_enc" => vec![d_in, d_sae],
                "W_dec" => vec![d_sae, d_out],
                "b_dec" => vec![d_out],
                "W_skip" => vec![d_out, d_in],
                _ => vec![d_sae],
            };
            if t.shape != expected {
                return Err(shape_err(path, name, expected, t.shape));
            }
            let bad = t.data.iter().filter(|v| !v.is_finite()).count();
            if bad > 0 {
                return Err(SaeError::NonFinite {
                    path: path.to_path_buf(),
                    tensor: name.to_string(),
                    count: bad,
                });
            }
            report.applied.push(name.to_string());
            Ok(t)
        };
        let p2 = |t: HostTensor| {
            Param::from_tensor(tensor_from_vec(t.data, [t.shape[0], t.shape[1]], device))
        };
        let p1 = |t: HostTensor| Param::from_tensor(tensor_from_vec(t.data, [t.shape[0]], device));
        let w_enc = p2(take("W_enc")?);
        let w_dec = p2(take("W_dec")?);
        let b_dec = p1(take("b_dec")?);
        let mut opt = |name: &str| -> Result<Option<Param<Tensor<1>>>> {
            if names.contains(&name) {
                Ok(Some(p1(take(name)?)))
            } else {
                Ok(None)
            }
        };
        let params = SaeParams {
            w_enc,
            w_dec,
            b_enc: opt("b_enc")?,
            b_dec,
            threshold: opt("threshold")?,
            b_gate: opt("b_gate")?,
            b_mag: opt("b_mag")?,
            r_mag: opt("r_mag")?,
            w_skip: if names.contains(&"W_skip") {
                Some(p2(take("W_skip")?))
            } else {
                None
            },
        };
        Ok((
            Self {
                config,
                params,
                log_sparsity: None,
            },
            report,
        ))
    }

    /// An SAE from a config and parameters built elsewhere (e.g. by a trainer). The parameters
    /// are checked against the config's architecture and shapes.
    pub fn from_parts(
        config: SaeConfig,
        params: SaeParams,
        log_sparsity: Option<Vec<f32>>,
    ) -> Result<Self> {
        let path = Path::new(INPUT_PATH);
        let (d_in, d_sae, d_out) = (config.d_in, config.d_sae, config.output_width());
        let check2 = |name: &str, t: &Param<Tensor<2>>, expected: [usize; 2]| {
            let found = t.val().dims();
            if found == expected {
                Ok(())
            } else {
                Err(shape_err(path, name, expected.to_vec(), found.to_vec()))
            }
        };
        check2("W_enc", &params.w_enc, [d_in, d_sae])?;
        check2("W_dec", &params.w_dec, [d_sae, d_out])?;
        let b_dec = params.b_dec.val().dims();
        if b_dec != [d_out] {
            return Err(shape_err(path, "b_dec", vec![d_out], b_dec.to_vec()));
        }
        let arch_name = || config.architecture.to_string();
        match (config.architecture.has_skip(), &params.w_skip) {
            (true, Some(w)) => check2("W_skip", w, [d_out, d_in])?,
            (true, None) => {
                return Err(SaeError::MissingTensor {
                    path: path.to_path_buf(),
                    tensor: "W_skip".into(),
                    architecture: arch_name(),
                });
            }
            (false, Some(_)) => {
                return Err(SaeError::UnexpectedTensor {
                    path: path.to_path_buf(),
                    tensor: "W_skip".into(),
                    architecture: arch_name(),
                });
            }
            (false, None) => {}
        }
        let names = config.architecture.tensor_names();
        let optional: [(&str, &Option<Param<Tensor<1>>>); 5] = [
            ("b_enc", &params.b_enc),
            ("threshold", &params.threshold),
            ("b_gate", &params.b_gate),
            ("b_mag", &params.b_mag),
            ("r_mag", &params.r_mag),
        ];
        for (name, t) in optional {
            match (names.contains(&name), t) {
                (true, None) => {
                    return Err(SaeError::MissingTensor {
                        path: path.to_path_buf(),
                        tensor: name.into(),
                        architecture: config.architecture.to_string(),
                    });
                }
                (false, Some(_)) => {
                    return Err(SaeError::UnexpectedTensor {
                        path: path.to_path_buf(),
                        tensor: name.into(),
                        architecture: config.architecture.to_string(),
                    });
                }
                (true, Some(t)) => {
                    let found = t.val().dims();
                    if found != [d_sae] {
                        return Err(shape_err(path, name, vec![d_sae], found.to_vec()));
                    }
                }
                (false, None) => {}
            }
        }
        if let Some(sp) = &log_sparsity
            && sp.len() != d_sae
        {
            return Err(shape_err(path, "sparsity", vec![d_sae], vec![sp.len()]));
        }
        Ok(Self {
            config,
            params,
            log_sparsity,
        })
    }

    /// The config.
    pub fn config(&self) -> &SaeConfig {
        &self.config
    }

    /// Mutable access to the config (e.g. to set metadata before saving).
    pub fn config_mut(&mut self) -> &mut SaeConfig {
        &mut self.config
    }

    /// The parameters.
    pub fn params(&self) -> &SaeParams {
        &self.params
    }

    /// Consumes the SAE, returning its parameters (e.g. to train them).
    pub fn into_params(self) -> SaeParams {
        self.params
    }

    /// log10 firing rate per latent, from `sparsity.safetensors`, when the SAE shipped one.
    pub fn log_sparsity(&self) -> Option<&[f32]> {
        self.log_sparsity.as_deref()
    }

    /// Sets the log10 firing rates (saved as `sparsity.safetensors`).
    pub fn set_log_sparsity(&mut self, log_sparsity: Option<Vec<f32>>) {
        self.log_sparsity = log_sparsity;
    }

    /// The device the parameters live on.
    pub fn device(&self) -> Device {
        self.params.w_dec.val().device()
    }

    /// Input width.
    pub fn d_in(&self) -> usize {
        self.config.d_in
    }

    /// Number of latents.
    pub fn d_sae(&self) -> usize {
        self.config.d_sae
    }

    /// The decoder, `W_dec`.
    ///
    /// # Shapes
    /// `[d_sae, d_in]`.
    pub fn w_dec(&self) -> Tensor<2> {
        self.params.w_dec.val()
    }

    /// The encoder, `W_enc`.
    ///
    /// # Shapes
    /// `[d_in, d_sae]`.
    pub fn w_enc(&self) -> Tensor<2> {
        self.params.w_enc.val()
    }

    fn check_input(&self, x: &Tensor<2>, width: usize, tensor: &str) -> Result<()> {
        let [n, d] = x.dims();
        if d != width {
            return Err(shape_err(
                Path::new(INPUT_PATH),
                tensor,
                vec![n, width],
                vec![n, d],
            ));
        }
        Ok(())
    }

    /// SAELens's `process_sae_in`: normalise, then subtract b_dec when `apply_b_dec_to_input`.
    fn process_in(&self, x: Tensor<2>) -> (Tensor<2>, NormState) {
        let (x, state) = normalize_in(self.config.normalize_activations, x);
        let x = if self.config.apply_b_dec_to_input && !self.config.architecture.is_transcoder() {
            x - self.params.b_dec.val().unsqueeze::<2>()
        } else {
            x
        };
        (x, state)
    }

    fn decoder_row_norms(&self) -> Tensor<1> {
        self.params
            .w_dec
            .val()
            .powi_scalar(2)
            .sum_dim(1)
            .sqrt()
            .squeeze_dim::<1>(1)
    }

    /// The latents' pre-activations from a processed input (the `hook_sae_acts_pre` value; for
    /// gated SAEs the magnitude path's pre-activation, as in SAELens).
    fn hidden_pre(&self, x: Tensor<2>) -> Tensor<2> {
        let p = &self.params;
        match self.config.architecture {
            Architecture::Gated => {
                let r_mag = opt_val(&p.r_mag);
                let b_mag = opt_val(&p.b_mag);
                let w_mag = p.w_enc.val() * r_mag.exp().unsqueeze::<2>();
                x.matmul(w_mag) + b_mag.unsqueeze::<2>()
            }
            _ => x.matmul(p.w_enc.val()) + opt_val(&p.b_enc).unsqueeze::<2>(),
        }
    }

    fn encode_processed(&self, x: Tensor<2>) -> Tensor<2> {
        self.activate(self.hidden_pre(x.clone()), x)
    }

    /// The activation function: latent activations (`hook_sae_acts_post`) from pre-activations
    /// (`hook_sae_acts_pre`, possibly edited by a hook) and the processed input (which gated
    /// SAEs' gate reads), as SAELens's `encode` does after its `hook_sae_acts_pre`. TopK SAEs
    /// with `rescale_acts_by_decoder_norm` rescale here, after the hook, as SAELens.
    ///
    /// # Shapes
    /// - `pre`: `[n, d_sae]`, `sae_in`: `[n, d_in]` → `[n, d_sae]`.
    pub fn activate(&self, pre: Tensor<2>, sae_in: Tensor<2>) -> Tensor<2> {
        let p = &self.params;
        match self.config.architecture {
            Architecture::Standard | Architecture::Transcoder | Architecture::SkipTranscoder => {
                relu(pre)
            }
            Architecture::JumpRelu
            | Architecture::JumpReluTranscoder
            | Architecture::JumpReluSkipTranscoder => {
                let threshold = opt_val(&p.threshold).unsqueeze::<2>();
                let mask = pre.clone().greater(threshold.expand(pre.dims()));
                relu(pre).mask_fill(mask.bool_not(), 0.0)
            }
            Architecture::TopK => {
                let mut h = pre;
                if self.config.rescale_acts_by_decoder_norm {
                    h = h * self.decoder_row_norms().unsqueeze::<2>();
                }
                let k = self.config.topk_k();
                if k == 0 {
                    return h.zeros_like();
                }
                // The host partial selection on the CPU (k ≤ d_sae is checked at load; a failed
                // read-back falls back to burn's own top-k, the same selection).
                let (values, indices) =
                    crate::topk::row_top_k_tensors(h.clone(), k, crate::topk::Extreme::Largest)
                        .unwrap_or_else(|_| h.clone().topk_with_indices(k, 1));
                h.zeros_like()
                    .scatter(1, indices, relu(values), IndexingUpdateOp::Assign)
            }
            Architecture::Gated => {
                let gate = sae_in.matmul(p.w_enc.val()) + opt_val(&p.b_gate).unsqueeze::<2>();
                let open = gate.greater_elem(0.0);
                relu(pre).mask_fill(open.bool_not(), 0.0)
            }
        }
    }

    /// SAELens's `process_sae_in` after its `hook_sae_input`: the input normalisation, then
    /// `b_dec` subtracted when `apply_b_dec_to_input`. Returns the SAE's processed input and the
    /// state [`Sae::denormalize`] needs.
    ///
    /// # Shapes
    /// - `x`: `[n, d_in]` → `[n, d_in]`.
    pub fn process_input(&self, x: Tensor<2>) -> Result<(Tensor<2>, NormState)> {
        self.check_input(&x, self.config.d_in, "input")?;
        Ok(self.process_in(x))
    }

    /// The latents' pre-activations from a processed input ([`Sae::process_input`]): the value
    /// at `hook_sae_acts_pre` (for gated SAEs the magnitude path's).
    ///
    /// # Shapes
    /// - `sae_in`: `[n, d_in]` → `[n, d_sae]`.
    pub fn pre_activation(&self, sae_in: Tensor<2>) -> Result<Tensor<2>> {
        self.check_input(&sae_in, self.config.d_in, "processed input")?;
        Ok(self.hidden_pre(sae_in))
    }

    /// The decoder's affine map, before the output de-normalisation: the value at
    /// `hook_sae_recons` (SAELens applies that hook before `run_time_activation_norm_fn_out`).
    ///
    /// # Shapes
    /// - `features`: `[n, d_sae]` → `[n, d_in]`.
    pub fn decode_affine(&self, features: Tensor<2>) -> Result<Tensor<2>> {
        self.check_input(&features, self.config.d_sae, "features")?;
        let mut f = features;
        if self.config.architecture == Architecture::TopK
            && self.config.rescale_acts_by_decoder_norm
        {
            f = f / self.decoder_row_norms().unsqueeze::<2>();
        }
        Ok(f.matmul(self.params.w_dec.val()) + self.params.b_dec.val().unsqueeze::<2>())
    }

    /// Undoes the input normalisation on a reconstruction from [`Sae::decode_affine`].
    /// Transcoders write another hook, so their output is never de-normalised (as SAELens).
    ///
    /// # Shapes
    /// - `y`: `[n, d_in]` → `[n, d_in]` (`[n, d_out]` for transcoders).
    pub fn denormalize(&self, y: Tensor<2>, state: &NormState) -> Tensor<2> {
        if self.config.architecture.is_transcoder() {
            y
        } else {
            normalize_out(y, state)
        }
    }

    /// Encodes activations into latent activations (`SAE.encode`), keeping the normalisation
    /// state needed to decode back into the input's scale.
    ///
    /// # Shapes
    /// - `x`: `[n, d_in]` → features `[n, d_sae]`.
    pub fn encode_with_state(&self, x: Tensor<2>) -> Result<(Tensor<2>, NormState)> {
        self.check_input(&x, self.config.d_in, "input")?;
        let (x, state) = self.process_in(x);
        Ok((self.encode_processed(x), state))
    }

    /// Encodes activations into latent activations (`SAE.encode`).
    ///
    /// # Shapes
    /// - `x`: `[n, d_in]` → `[n, d_sae]`.
    pub fn encode(&self, x: Tensor<2>) -> Result<Tensor<2>> {
        self.encode_with_state(x).map(|(f, _)| f)
    }

    /// The pre-activations (`hook_sae_acts_pre`).
    ///
    /// # Shapes
    /// - `x`: `[n, d_in]` → `[n, d_sae]`.
    pub fn encode_pre(&self, x: Tensor<2>) -> Result<Tensor<2>> {
        self.check_input(&x, self.config.d_in, "input")?;
        let (x, _) = self.process_in(x);
        Ok(self.hidden_pre(x))
    }

    /// Decodes latent activations, undoing the input normalisation with the state from
    /// [`Sae::encode_with_state`].
    ///
    /// # Shapes
    /// - `features`: `[n, d_sae]` → `[n, d_in]`.
    pub fn decode_with_state(&self, features: Tensor<2>, state: &NormState) -> Result<Tensor<2>> {
        Ok(self.denormalize(self.decode_affine(features)?, state))
    }

    /// Decodes latent activations (`SAE.decode`). For SAEs whose normalisation is per input
    /// (`constant_norm_rescale`, `layer_norm`) use [`Sae::decode_with_state`]: this returns
    /// [`SaeError::NormStateRequired`].
    ///
    /// # Shapes
    /// - `features`: `[n, d_sae]` → `[n, d_in]`.
    pub fn decode(&self, features: Tensor<2>) -> Result<Tensor<2>> {
        let mode = self.config.normalize_activations;
        if mode.is_per_input() && !self.config.architecture.is_transcoder() {
            return Err(SaeError::NormStateRequired {
                mode: mode.to_string(),
            });
        }
        self.decode_with_state(features, &NormState::Identity)
    }

    /// Encode then decode (`SAE.forward` without the error term); skip transcoders add their
    /// skip connection x·W_skipᵀ of the raw input, as SAELens's `SkipTranscoder.forward`.
    ///
    /// # Shapes
    /// - `x`: `[n, d_in]` → `[n, d_in]` (`[n, d_out]` for transcoders).
    pub fn forward(&self, x: Tensor<2>) -> Result<Tensor<2>> {
        self.encode_decode(x).map(|(_, recon)| recon)
    }

    /// Encode and decode at once, returning both (the reconstruction as [`Sae::forward`]).
    ///
    /// # Shapes
    /// - `x`: `[n, d_in]` → (`[n, d_sae]`, `[n, d_in]` or `[n, d_out]`).
    pub fn encode_decode(&self, x: Tensor<2>) -> Result<(Tensor<2>, Tensor<2>)> {
        let skip = self
            .params
            .w_skip
            .as_ref()
            .map(|w| x.clone().matmul(w.val().transpose()));
        let (f, state) = self.encode_with_state(x)?;
        let recon = self.decode_with_state(f.clone(), &state)?;
        Ok((
            f,
            match skip {
                Some(s) => recon + s,
                None => recon,
            },
        ))
    }

    /// The parameters as host tensors named as in `sae_weights.safetensors`.
    pub fn to_host_tensors(&self) -> Result<BTreeMap<String, HostTensor>> {
        let p = &self.params;
        let mut out = BTreeMap::new();
        let mut put2 = |name: &str, t: Tensor<2>| -> Result<()> {
            let shape = t.dims().to_vec();
            out.insert(name.to_string(), HostTensor::new(shape, tensor_to_vec(t)?));
            Ok(())
        };
        put2("W_enc", p.w_enc.val())?;
        put2("W_dec", p.w_dec.val())?;
        if let Some(w) = &p.w_skip {
            put2("W_skip", w.val())?;
        }
        let ones: [(&str, &Option<Param<Tensor<1>>>); 5] = [
            ("b_enc", &p.b_enc),
            ("threshold", &p.threshold),
            ("b_gate", &p.b_gate),
            ("b_mag", &p.b_mag),
            ("r_mag", &p.r_mag),
        ];
        let b_dec = p.b_dec.val();
        out.insert(
            "b_dec".into(),
            HostTensor::new(b_dec.dims().to_vec(), tensor_to_vec(b_dec)?),
        );
        for (name, t) in ones {
            if let Some(t) = t {
                let t = t.val();
                out.insert(
                    name.into(),
                    HostTensor::new(t.dims().to_vec(), tensor_to_vec(t)?),
                );
            }
        }
        Ok(out)
    }

    /// Saves the SAE in SAELens's layout: `cfg.json`, `sae_weights.safetensors` (in the config's
    /// dtype) and, when present, `sparsity.safetensors`. Each file is written atomically.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<PathBuf> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| SaeError::io(dir, e))?;
        let tensors = self.to_host_tensors()?;
        write_safetensors(dir.join(WEIGHTS_FILENAME), &tensors, self.config.dtype)?;
        if let Some(sp) = &self.log_sparsity {
            let mut m = BTreeMap::new();
            m.insert(
                "sparsity".to_string(),
                HostTensor::new(vec![sp.len()], sp.clone()),
            );
            write_safetensors(
                dir.join(SPARSITY_FILENAME),
                &m,
                crate::config::StorageDtype::F32,
            )?;
        }
        let cfg_path = dir.join(CFG_FILENAME);
        let text = serde_json::to_string_pretty(&self.config.to_json()).map_err(|e| {
            SaeError::MalformedConfig {
                path: cfg_path.clone(),
                message: e.to_string(),
            }
        })?;
        crate::atomic::write(&cfg_path, text.as_bytes())?;
        Ok(dir.to_path_buf())
    }
}

fn opt_val(p: &Option<Param<Tensor<1>>>) -> Tensor<1> {
    // Presence is guaranteed by construction: `from_host_tensors` and `from_parts` both check
    // that exactly the architecture's tensors are present.
    match p {
        Some(p) => p.val(),
        None => unreachable_param(),
    }
}

#[cold]
#[allow(clippy::panic)]
fn unreachable_param() -> ! {
    panic!("SaeParams is missing a tensor its architecture needs (an invariant of Sae was broken)")
}

fn read_sparsity(path: &Path, d_sae: usize) -> Result<Vec<f32>> {
    let file = SafetensorsFile::open(path)?;
    let mut all = file.read_all()?;
    let t = all
        .remove("sparsity")
        .ok_or_else(|| SaeError::MissingTensor {
            path: path.to_path_buf(),
            tensor: "sparsity".into(),
            architecture: "sparsity file".into(),
        })?;
    if t.shape != [d_sae] {
        return Err(shape_err(path, "sparsity", vec![d_sae], t.shape));
    }
    Ok(t.data)
}

impl Sae {
    /// SAELens's `fold_activation_norm_scaling_factor`: W_enc·s, W_dec/s, b_dec/s, and the
    /// normalisation becomes `none`.
    pub fn fold_activation_norm_scaling_factor(&mut self, scaling_factor: f32) {
        let p = &mut self.params;
        p.w_enc = Param::from_tensor(p.w_enc.val().mul_scalar(scaling_factor));
        p.w_dec = Param::from_tensor(p.w_dec.val().div_scalar(scaling_factor));
        p.b_dec = Param::from_tensor(p.b_dec.val().div_scalar(scaling_factor));
        self.config.normalize_activations = crate::config::NormalizeActivations::None;
    }
}

//! The decoder-only transformer that Gemma 1/2/3, Llama 3.x, Qwen 2.5 and Qwen 3 share: RMSNorm,
//! grouped-query attention with rotary embeddings (half-split, as transformers), a gated MLP, and
//! TransformerLens's hook points. Each family's file (`gemma.rs`, `llama.rs`) mirrors its HF
//! config, owns its checkpoint-name table and turns both into a [`DecoderSpec`] and
//! [`DecoderWeights`]; the forward pass is here, once.
//!
//! Hook points (TransformerLens names): `hook_embed` is the (scaled, for Gemma) embedding;
//! `blocks.{L}.hook_resid_pre` equals transformers' `hidden_states[L]`; `attn.hook_q`/`hook_k`
//! are the projections (with bias), before the q/k norm and RoPE, as TransformerLens's; `hook_attn_out` and `hook_mlp_out` are
//! what is added to the residual stream (after Gemma 2/3's post norms); `mlp.hook_pre` is the
//! gate pre-activation and `mlp.hook_post` is act(gate)·up; `ln_final.hook_normalized` is the
//! final norm before its weight.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sae_core::StorageDtype;
use sae_core::burn::module::{Module, Param};
use sae_core::burn::tensor::activation::{silu, softmax};
use sae_core::burn::tensor::{Bool, Device, Int, Tensor};
use sae_core::device::as_f32;
use sae_core::safetensors_io::{HostTensor, SafetensorsFile};

use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;
use crate::hook::HookPoint;
use crate::hooks::{Hooks, LogitRows, Pass};
use crate::kv::KvCache;
use crate::ops::matmul3;
use sae_core::gelu::gelu_tanh;

/// The MLP's gate activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MlpActivation {
    /// `gelu_pytorch_tanh` (Gemma).
    GeluTanh,
    /// `silu` (Llama, Qwen).
    Silu,
}

/// How RoPE's inverse frequencies are rescaled for long contexts (`rope_scaling` /
/// `rope_parameters` in HF configs).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// `linear`: every inverse frequency divided by `factor` (Gemma 3 4B+ global layers).
    Linear {
        /// The divisor.
        factor: f64,
    },
    /// `llama3`: low frequencies divided by `factor`, high ones kept, a smooth ramp between
    /// (transformers' `_compute_llama3_parameters`).
    Llama3 {
        /// Divisor of the low frequencies.
        factor: f64,
        /// Wavelengths above `original_max_position_embeddings / low_freq_factor` are scaled.
        low_freq_factor: f64,
        /// Wavelengths below `original_max_position_embeddings / high_freq_factor` are kept.
        high_freq_factor: f64,
        /// The pre-training context length.
        original_max_position_embeddings: f64,
    },
}

/// Per-layer attention facts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerAttention {
    /// Local (sliding-window) attention.
    pub sliding: bool,
    /// RoPE base.
    pub rope_theta: f64,
    /// RoPE frequency scaling of this layer.
    pub rope_scaling: RopeScaling,
}

/// Everything the forward pass needs to know about a model, resolved from its config.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderSpec {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// d_model.
    pub d_model: usize,
    /// MLP width.
    pub d_mlp: usize,
    /// Blocks.
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Head width.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub eps: f64,
    /// Embeddings multiplied by this (Gemma: √d_model).
    pub embed_scale: Option<f32>,
    /// The MLP's gate activation.
    pub activation: MlpActivation,
    /// Attention-score scale (1/√head_dim, or Gemma 2/3's `query_pre_attn_scalar^-0.5`).
    pub attn_scale: f64,
    /// Gemma 2: tanh soft-capping of attention scores.
    pub attn_softcap: Option<f64>,
    /// Gemma 2: tanh soft-capping of the logits.
    pub final_softcap: Option<f64>,
    /// Window of the sliding layers.
    pub sliding_window: Option<usize>,
    /// Each layer's attention.
    pub layers: Vec<LayerAttention>,
}

/// RMSNorm scale: the multiplier of the normalised input (Gemma's 1 + w already added).
#[derive(Module, Debug)]
pub struct NormScale {
    /// The multiplier of the normalised input.
    pub scale: Param<Tensor<1>>,
}

/// One block. Weights are stored `[in, out]`.
#[derive(Module, Debug)]
pub struct DecoderBlock {
    /// Norm before attention.
    pub input_norm: NormScale,
    /// Query weights, `[d_model, n_heads·head_dim]`.
    pub w_q: Param<Tensor<2>>,
    /// Key weights, `[d_model, n_kv_heads·head_dim]`.
    pub w_k: Param<Tensor<2>>,
    /// Value weights.
    pub w_v: Param<Tensor<2>>,
    /// Output weights, `[n_heads·head_dim, d_model]`.
    pub w_o: Param<Tensor<2>>,
    /// Query bias (Qwen 2, Llama/Qwen 3 with `attention_bias`).
    pub b_q: Option<Param<Tensor<1>>>,
    /// Key bias.
    pub b_k: Option<Param<Tensor<1>>>,
    /// Value bias.
    pub b_v: Option<Param<Tensor<1>>>,
    /// Output bias (Llama/Qwen 3 with `attention_bias`).
    pub b_o: Option<Param<Tensor<1>>>,
    /// Per-head query norm (Gemma 3, Qwen 3).
    pub q_norm: Option<NormScale>,
    /// Per-head key norm.
    pub k_norm: Option<NormScale>,
    /// Gemma 2/3: norm of the attention output.
    pub post_attn_norm: Option<NormScale>,
    /// Norm before the MLP.
    pub pre_mlp_norm: NormScale,
    /// Gemma 2/3: norm of the MLP output.
    pub post_mlp_norm: Option<NormScale>,
    /// Gate projection.
    pub w_gate: Param<Tensor<2>>,
    /// Up projection.
    pub w_up: Param<Tensor<2>>,
    /// Down projection.
    pub w_down: Param<Tensor<2>>,
}

/// The parameters.
#[derive(Module, Debug)]
pub struct DecoderWeights {
    /// Token embeddings `[vocab, d_model]`.
    pub w_e: Param<Tensor<2>>,
    /// Untied unembedding as the checkpoint stores it (`lm_head`), `[vocab, d_model]`; `None`
    /// when tied to `w_e`. Either way it is used transposed, without a copy.
    pub w_u: Option<Param<Tensor<2>>>,
    /// Blocks.
    pub blocks: Vec<DecoderBlock>,
    /// Final norm.
    pub final_norm: NormScale,
}

/// How a model's weights are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadOptions {
    /// Storage of the projection and embedding matrices: `F32` (default), or `F16`/`Bf16` to
    /// halve their memory (each is read back as f32 for its matmul, one at a time; norms and
    /// biases stay f32; activations are f32 throughout).
    pub weight_dtype: StorageDtype,
}

/// Where tensors come from while loading: HF safetensors (memory-mapped, each tensor converted
/// to f32 only when taken, so loading never holds a second full copy) or a GGUF file.
pub(crate) enum WeightSource<'a> {
    /// HF safetensors files (single or shards).
    Hf {
        /// The (first) weights file, for errors.
        path: PathBuf,
        /// The files.
        files: Vec<SafetensorsFile>,
        /// Tensor name → index into `files`.
        index: BTreeMap<String, usize>,
    },
    /// A GGUF file.
    Gguf(&'a GgufFile),
}

/// A checkpoint-name table: (ours, HF name, GGUF name), `{L}` the layer.
pub(crate) type CheckpointTable = [(&'static str, &'static str, &'static str)];

impl WeightSource<'_> {
    /// Opens the safetensors files (memory-mapped) and indexes their tensors by name.
    pub(crate) fn hf(paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut index = BTreeMap::new();
        for (i, p) in paths.iter().enumerate() {
            let f = SafetensorsFile::open(p)?;
            for name in f.tensors()?.names() {
                index.insert(name.to_string(), i);
            }
            files.push(f);
        }
        Ok(WeightSource::Hf {
            path: paths.first().cloned().unwrap_or_default(),
            files,
            index,
        })
    }

    pub(crate) fn path(&self) -> PathBuf {
        match self {
            WeightSource::Hf { path, .. } => path.clone(),
            WeightSource::Gguf(f) => f.path().to_path_buf(),
        }
    }

    pub(crate) fn is_gguf(&self) -> bool {
        matches!(self, WeightSource::Gguf(_))
    }

    fn names(table: &CheckpointTable, ours: &str, l: usize) -> Result<(String, String)> {
        table
            .iter()
            .find(|(o, _, _)| *o == ours)
            .map(|(_, h, g)| {
                (
                    h.replace("{L}", &l.to_string()),
                    g.replace("{L}", &l.to_string()),
                )
            })
            .ok_or_else(|| ModelError::InvalidInput(format!("no checkpoint name for {ours}")))
    }

    /// A `[rows, cols]` matrix kept in the checkpoint's orientation (embeddings, `lm_head`),
    /// stored in `dtype` as it is read: GGUF tensors are dequantised and converted in runs, so
    /// the largest matrices never exist whole in f32.
    pub(crate) fn take_stored(
        &mut self,
        table: &CheckpointTable,
        ours: &str,
        expected: [usize; 2],
        dtype: StorageDtype,
        device: &sae_core::burn::tensor::Device,
    ) -> Result<Tensor<2>> {
        match self {
            WeightSource::Gguf(f) => {
                let (_, gguf) = Self::names(table, ours, 0)?;
                let info = f.tensor_info(&gguf)?;
                if info.shape() != expected {
                    return Err(ModelError::ShapeMismatch {
                        path: f.path().to_path_buf(),
                        tensor: gguf,
                        expected: expected.to_vec(),
                        found: info.shape(),
                    });
                }
                let file: &GgufFile = f;
                Ok(sae_core::device::tensor_from_f32_runs(
                    expected,
                    dtype,
                    device,
                    |sink| {
                        file.dequantize_runs(&gguf, sink)
                            .map(|_| ())
                            .map_err(|e| sae_core::SaeError::Backend(e.to_string()))
                    },
                )?)
            }
            WeightSource::Hf { .. } => {
                // The f32 values exist already (read from the mmap): upload them, then store.
                let t = self.take(table, ours, 0, &expected)?;
                Ok(sae_core::device::store_as(
                    sae_core::device::tensor_from_vec(t.data, expected, device),
                    dtype,
                ))
            }
        }
    }

    /// The tensor for our name `ours` at layer `l`, row-major as stored (`[out, in]`), checked
    /// against `expected`.
    pub(crate) fn take(
        &mut self,
        table: &CheckpointTable,
        ours: &str,
        l: usize,
        expected: &[usize],
    ) -> Result<HostTensor> {
        let (hf, gguf) = Self::names(table, ours, l)?;
        let path = self.path();
        let t = match self {
            WeightSource::Hf { files, index, .. } => {
                let prefixed = format!("language_model.{hf}");
                let key = [hf.as_str(), prefixed.as_str()]
                    .into_iter()
                    .find(|k| index.contains_key(*k))
                    .map(str::to_string)
                    .ok_or_else(|| ModelError::MissingTensor {
                        path: path.clone(),
                        tensor: hf.clone(),
                        tried: format!("{hf}, {prefixed}"),
                    })?;
                let file = index.remove(&key).unwrap_or(0);
                files[file].tensor_f32(&key)?
            }
            WeightSource::Gguf(f) => f.dequantize(&gguf)?,
        };
        if t.shape != expected {
            return Err(ModelError::ShapeMismatch {
                path,
                tensor: if self.is_gguf() { gguf } else { hf },
                expected: expected.to_vec(),
                found: t.shape,
            });
        }
        Ok(t)
    }
}

/// A checkpoint matrix (`[out, in]`) as our `[in, out]` parameter, stored in `dtype`.
pub(crate) fn matrix_param(
    t: HostTensor,
    dtype: StorageDtype,
    device: &sae_core::burn::tensor::Device,
) -> Param<Tensor<2>> {
    let t = crate::ops::transpose_host(&t);
    let [rows, cols] = [t.shape[0], t.shape[1]];
    Param::from_tensor(sae_core::device::store_as(
        sae_core::device::tensor_from_vec(t.data, [rows, cols], device),
        dtype,
    ))
}

/// A checkpoint vector (bias, norm scale) as an f32 parameter.
pub(crate) fn vector_param(
    t: HostTensor,
    device: &sae_core::burn::tensor::Device,
) -> Param<Tensor<1>> {
    let n = t.shape[0];
    Param::from_tensor(sae_core::device::tensor_from_vec(t.data, [n], device))
}

/// RMSNorm: x · rsqrt(mean(x²) + eps) over the last dim; returns (normalised, scaled).
pub(crate) fn rms_norm<const D: usize>(
    x: Tensor<D>,
    norm: Option<&NormScale>,
    eps: f64,
) -> (Tensor<D>, Tensor<D>) {
    let ms = (x.clone() * x.clone()).mean_dim(D - 1);
    let normalized = x / ms.add_scalar(eps).sqrt();
    let out = match norm {
        Some(n) => normalized.clone() * n.scale.val().unsqueeze::<D>(),
        None => normalized.clone(),
    };
    (normalized, out)
}

/// RoPE's inverse frequencies for `head_dim`, in float32 as transformers computes them.
pub fn inv_frequencies(theta: f64, head_dim: usize, scaling: RopeScaling) -> Vec<f32> {
    let half = head_dim / 2;
    let base: Vec<f32> = (0..half)
        .map(|i| 1.0f32 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
        .collect();
    match scaling {
        RopeScaling::None => base,
        RopeScaling::Linear { factor } => base.iter().map(|f| f / factor as f32).collect(),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings: old,
        } => {
            let (factor, low, high, old) = (
                factor as f32,
                low_freq_factor as f32,
                high_freq_factor as f32,
                old as f32,
            );
            let low_wavelen = old / low;
            let high_wavelen = old / high;
            base.iter()
                .map(|&f| {
                    let wavelen = 2.0 * std::f32::consts::PI / f;
                    let scaled = if wavelen > low_wavelen { f / factor } else { f };
                    // transformers: ~(wavelen < high) & ~(wavelen > low); wavelengths are finite.
                    let medium = wavelen >= high_wavelen && wavelen <= low_wavelen;
                    if medium {
                        let smooth = (old / wavelen - low) / (high - low);
                        (1.0 - smooth) * scaled / factor + smooth * scaled
                    } else {
                        scaled
                    }
                })
                .collect()
        }
    }
}

/// `mask[i, j]` is true where query `past + i` may not see key `j`: the future, and for
/// sliding layers keys `window` or more positions back.
fn attention_mask(t: usize, past: usize, window: Option<usize>, dev: &Device) -> Tensor<2, Bool> {
    let total = past + t;
    let data: Vec<bool> = (0..t)
        .flat_map(|i| {
            (0..total).map(move |j| {
                let q = past + i;
                j > q || window.is_some_and(|w| q - j >= w)
            })
        })
        .collect();
    sae_core::device::bool_tensor_from_vec(data, [t, total], dev)
}

/// The model: its resolved spec and its weights.
#[derive(Debug, Clone)]
pub struct Decoder {
    /// What the forward pass needs to know.
    pub spec: DecoderSpec,
    /// The parameters.
    pub weights: DecoderWeights,
}

impl Decoder {
    /// The unembedding as stored (f16/bf16 under [`LoadOptions::weight_dtype`]), `[d_model, vocab]`.
    fn w_u_stored(&self) -> Tensor<2> {
        match &self.weights.w_u {
            Some(w) => w.val().transpose(),
            None => self.weights.w_e.val().transpose(),
        }
    }

    /// The unembedding in f32, `[d_model, vocab]`.
    pub fn w_u(&self) -> Tensor<2> {
        as_f32(self.w_u_stored())
    }

    /// `x · W_U`; a half-precision unembedding is read as f32 in column blocks, so the forward
    /// pass never holds a full f32 copy of it.
    ///
    /// # Shapes
    /// - `x`: `[n, d_model]` → `[n, vocab]`.
    fn unembed(&self, x: Tensor<2>) -> Tensor<2> {
        unembed_blocked(x, self.w_u_stored(), 16_384)
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.weights.w_e.val().device()
    }

    fn rope_tables(
        &self,
        la: &LayerAttention,
        past: usize,
        t: usize,
        dev: &Device,
    ) -> (Tensor<2>, Tensor<2>) {
        let hd = self.spec.head_dim;
        let half = hd / 2;
        let inv = inv_frequencies(la.rope_theta, hd, la.rope_scaling);
        let mut cos = Vec::with_capacity(t * hd);
        let mut sin = Vec::with_capacity(t * hd);
        for p in past..past + t {
            for k in 0..hd {
                let a = p as f32 * inv[k % half];
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        (
            sae_core::device::tensor_from_vec(cos, [t, hd], dev),
            sae_core::device::tensor_from_vec(sin, [t, hd], dev),
        )
    }

    /// The hooked forward pass (see [`crate::LanguageModel::run`]).
    ///
    /// # Shapes
    /// - `tokens`: `[batch, seq]` → logits `[batch, seq, vocab]` (`None` with `stop_at_layer`).
    pub fn run(
        &self,
        tokens: Tensor<2, Int>,
        hooks: &mut Hooks<'_>,
        stop_at_layer: Option<usize>,
        kv: Option<&mut KvCache>,
        pass: Pass,
    ) -> Result<Option<Tensor<3>>> {
        self.run_rows(tokens, hooks, stop_at_layer, kv, pass, LogitRows::All)
    }

    /// [`Self::run`] with the logits of `rows` only (`[batch, 1, vocab]` for the last).
    pub(crate) fn run_rows(
        &self,
        tokens: Tensor<2, Int>,
        hooks: &mut Hooks<'_>,
        stop_at_layer: Option<usize>,
        mut kv: Option<&mut KvCache>,
        pass: Pass,
        rows: LogitRows,
    ) -> Result<Option<Tensor<3>>> {
        let spec = &self.spec;
        let past = kv.as_ref().map_or(0, |c| c.len());
        let [b, t] = tokens.dims();
        if b == 0 || t == 0 {
            return Err(ModelError::InvalidInput(format!(
                "empty token batch [{b}, {t}]"
            )));
        }
        let ids = sae_core::device::int_tensor_to_vec(tokens.clone())?;
        if let Some(bad) = ids
            .iter()
            .find(|&&i| i < 0 || i as usize >= spec.vocab_size)
        {
            return Err(ModelError::InvalidInput(format!(
                "token id {bad} outside [0, {})",
                spec.vocab_size
            )));
        }
        let d = spec.d_model;
        let dev = self.device();
        let w = &self.weights;
        let mut embed = as_f32(w.w_e.val().select(0, tokens.reshape([b * t]))).reshape([b, t, d]);
        if let Some(s) = spec.embed_scale {
            embed = embed.mul_scalar(s);
        }
        let mut resid = hooks.apply3(HookPoint::Embed, pass, embed);
        let n_layers = spec.n_layers;
        let stop = stop_at_layer.unwrap_or(n_layers).min(n_layers);
        if let Some(c) = kv.as_deref_mut()
            && c.layers.len() < n_layers
        {
            c.layers.resize(n_layers, None);
        }
        let eps = spec.eps;
        for l in 0..stop {
            let blk = &w.blocks[l];
            resid = hooks.apply3(HookPoint::ResidPre(l), pass, resid);
            let (_, x) = rms_norm(resid.clone(), Some(&blk.input_norm), eps);
            let layer_kv = kv.as_deref_mut().map(|c| &mut c.layers[l]);
            let attn = self.attention(l, blk, x, hooks, pass, layer_kv, past, &dev);
            let attn = match &blk.post_attn_norm {
                Some(n) => rms_norm(attn, Some(n), eps).1,
                None => attn,
            };
            let attn = hooks.apply3(HookPoint::AttnOut(l), pass, attn);
            resid = hooks.apply3(HookPoint::ResidMid(l), pass, resid + attn);
            let (_, x) = rms_norm(resid.clone(), Some(&blk.pre_mlp_norm), eps);
            let gate = hooks.apply3(HookPoint::MlpPre(l), pass, matmul3(x.clone(), &blk.w_gate));
            let up = matmul3(x, &blk.w_up);
            let act = match spec.activation {
                MlpActivation::GeluTanh => gelu_tanh(gate),
                MlpActivation::Silu => silu(gate),
            };
            let post = hooks.apply3(HookPoint::MlpPost(l), pass, act * up);
            let out = matmul3(post, &blk.w_down);
            let out = match &blk.post_mlp_norm {
                Some(n) => rms_norm(out, Some(n), eps).1,
                None => out,
            };
            let out = hooks.apply3(HookPoint::MlpOut(l), pass, out);
            resid = hooks.apply3(HookPoint::ResidPost(l), pass, resid + out);
        }
        if let Some(e) = hooks.take_error() {
            return Err(e);
        }
        if stop_at_layer.is_some() {
            return Ok(None);
        }
        let (normalized, _) = rms_norm(resid, None, eps);
        let normalized = hooks.apply3(HookPoint::LnFinalNormalized, pass, normalized);
        let out = rows.select(normalized) * w.final_norm.scale.val().unsqueeze::<3>();
        let [_, tt, dd] = out.dims();
        let mut logits = self
            .unembed(out.reshape([b * tt, dd]))
            .reshape([b, tt, spec.vocab_size]);
        if let Some(cap) = spec.final_softcap {
            logits = logits.div_scalar(cap as f32).tanh().mul_scalar(cap as f32);
        }
        if let Some(e) = hooks.take_error() {
            return Err(e);
        }
        Ok(Some(logits))
    }

    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        l: usize,
        blk: &DecoderBlock,
        x: Tensor<3>,
        hooks: &mut Hooks<'_>,
        pass: Pass,
        kv: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
        past: usize,
        dev: &Device,
    ) -> Tensor<3> {
        let spec = &self.spec;
        let [b, t, _] = x.dims();
        let (h, kvh, hd) = (spec.n_heads, spec.n_kv_heads, spec.head_dim);
        let eps = spec.eps;
        let proj = |w: &Param<Tensor<2>>, bias: &Option<Param<Tensor<1>>>| {
            let y = matmul3(x.clone(), w);
            match bias {
                Some(bias) => y + bias.val().unsqueeze::<3>(),
                None => y,
            }
        };
        // TransformerLens's order: hook_q/hook_k see the projections; the q/k norms (Gemma 3,
        // Qwen 3) come after the hooks, before RoPE.
        let mut q = hooks.apply4(
            HookPoint::AttnQ(l),
            pass,
            proj(&blk.w_q, &blk.b_q).reshape([b, t, h, hd]),
        );
        let mut k = hooks.apply4(
            HookPoint::AttnK(l),
            pass,
            proj(&blk.w_k, &blk.b_k).reshape([b, t, kvh, hd]),
        );
        let v = hooks.apply4(
            HookPoint::AttnV(l),
            pass,
            proj(&blk.w_v, &blk.b_v).reshape([b, t, kvh, hd]),
        );
        if let Some(n) = &blk.q_norm {
            q = rms_norm(q, Some(n), eps).1;
        }
        if let Some(n) = &blk.k_norm {
            k = rms_norm(k, Some(n), eps).1;
        }
        let la = spec.layers[l];
        let (cos, sin) = self.rope_tables(&la, past, t, dev);
        let rope = |x: Tensor<4>| {
            let half = hd / 2;
            let x1 = x.clone().narrow(3, 0, half);
            let x2 = x.clone().narrow(3, half, half);
            let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
            let c = cos.clone().unsqueeze_dim::<3>(1).unsqueeze::<4>();
            let s = sin.clone().unsqueeze_dim::<3>(1).unsqueeze::<4>();
            x * c + rotated * s
        };
        let q = rope(q);
        let k = rope(k);
        let (k, v) = crate::kv::append(kv, k, v);
        let total = k.dims()[1];
        let rep = h / kvh;
        let expand = |x: Tensor<4>| {
            // [b, T, kvh, hd] → [b, h, T, hd], each KV head shared by `rep` query heads.
            let x = x.swap_dims(1, 2); // [b, kvh, T, hd]
            x.unsqueeze_dim::<5>(2)
                .expand([b, kvh, rep, total, hd])
                .reshape([b, h, total, hd])
        };
        let kh = expand(k);
        let vh = expand(v);
        let qh = q.swap_dims(1, 2);
        let mut scores = qh
            .matmul(kh.swap_dims(2, 3))
            .mul_scalar(spec.attn_scale as f32);
        if let Some(cap) = spec.attn_softcap {
            scores = scores.div_scalar(cap as f32).tanh().mul_scalar(cap as f32);
        }
        let window = if la.sliding {
            spec.sliding_window
        } else {
            None
        };
        let mask = attention_mask(t, past, window, dev);
        let scores = scores.mask_fill(
            mask.unsqueeze::<4>().expand([b, h, t, total]),
            f32::NEG_INFINITY,
        );
        let scores = hooks.apply4(HookPoint::AttnScores(l), pass, scores);
        let pattern = hooks.apply4(HookPoint::AttnPattern(l), pass, softmax(scores, 3));
        let z = pattern.matmul(vh).swap_dims(1, 2); // [b, t, h, hd]
        let z = hooks.apply4(HookPoint::AttnZ(l), pass, z);
        let out = matmul3(z.reshape([b, t, h * hd]), &blk.w_o);
        match &blk.b_o {
            Some(bias) => out + bias.val().unsqueeze::<3>(),
            None => out,
        }
    }
}

/// The API every model type built on a [`Decoder`] shares (Gemma, Llama), for a type with
/// fields `config: $config`, `variant: $variant` and `decoder: Decoder` and an associated
/// `build(config, WeightSource, &LoadOptions, &Device)`: the loaders from an HF directory, the
/// default-options GGUF loader (each type writes its `load_gguf_with`), the accessors, and
/// [`crate::LanguageModel`], whose facts come from the resolved spec and whose forward pass is the
/// decoder's.
macro_rules! language_model_via_decoder {
    ($t:ty, $config:ty, $variant:ty) => {
        impl $t {
            /// Loads a model from a directory with `config.json` and `model.safetensors` (or a
            /// sharded `model.safetensors.index.json`).
            pub fn load(
                dir: impl AsRef<std::path::Path>,
                device: &sae_core::burn::tensor::Device,
            ) -> $crate::error::Result<Self> {
                Self::load_with(dir, &$crate::decoder::LoadOptions::default(), device)
            }

            /// [`Self::load`] with the weights held as `options` says (f16/bf16 halve their
            /// memory).
            pub fn load_with(
                dir: impl AsRef<std::path::Path>,
                options: &$crate::decoder::LoadOptions,
                device: &sae_core::burn::tensor::Device,
            ) -> $crate::error::Result<Self> {
                let dir = dir.as_ref();
                let config = <$config>::from_file(dir.join("config.json"))?;
                let files = $crate::config::safetensors_files(dir)?;
                Self::build(
                    config,
                    $crate::decoder::WeightSource::hf(&files)?,
                    options,
                    device,
                )
            }

            /// Loads a model from a GGUF file with the default options (see
            /// `load_gguf_with`).
            pub fn load_gguf(
                file: &$crate::gguf::GgufFile,
                device: &sae_core::burn::tensor::Device,
            ) -> $crate::error::Result<Self> {
                Self::load_gguf_with(file, &$crate::decoder::LoadOptions::default(), device)
            }

            /// The config.
            pub fn config(&self) -> &$config {
                &self.config
            }

            /// The family member.
            pub fn variant(&self) -> $variant {
                self.variant
            }

            /// The weights.
            pub fn weights(&self) -> &$crate::decoder::DecoderWeights {
                &self.decoder.weights
            }

            /// The unembedding, `[d_model, vocab]` (the embeddings transposed when tied).
            pub fn w_u(&self) -> sae_core::burn::tensor::Tensor<2> {
                self.decoder.w_u()
            }

            /// The hooked forward pass (see [`crate::LanguageModel::run`]).
            pub fn run(
                &self,
                tokens: sae_core::burn::tensor::Tensor<2, sae_core::burn::tensor::Int>,
                hooks: &mut $crate::hooks::Hooks<'_>,
                stop_at_layer: Option<usize>,
                kv: Option<&mut $crate::kv::KvCache>,
                pass: $crate::hooks::Pass,
            ) -> $crate::error::Result<Option<sae_core::burn::tensor::Tensor<3>>> {
                self.decoder.run(tokens, hooks, stop_at_layer, kv, pass)
            }

            /// The device the weights live on.
            pub fn device(&self) -> sae_core::burn::tensor::Device {
                self.decoder.device()
            }
        }

        impl $crate::model::LanguageModel for $t {
            fn run(
                &self,
                tokens: sae_core::burn::tensor::Tensor<2, sae_core::burn::tensor::Int>,
                hooks: &mut $crate::hooks::Hooks<'_>,
                stop_at_layer: Option<usize>,
                kv: Option<&mut $crate::kv::KvCache>,
                pass: $crate::hooks::Pass,
            ) -> $crate::error::Result<Option<sae_core::burn::tensor::Tensor<3>>> {
                <$t>::run(self, tokens, hooks, stop_at_layer, kv, pass)
            }

            fn run_last(
                &self,
                tokens: sae_core::burn::tensor::Tensor<2, sae_core::burn::tensor::Int>,
                hooks: &mut $crate::hooks::Hooks<'_>,
                kv: Option<&mut $crate::kv::KvCache>,
                pass: $crate::hooks::Pass,
            ) -> $crate::error::Result<sae_core::burn::tensor::Tensor<2>> {
                $crate::hooks::last_logits(self.decoder.run_rows(
                    tokens,
                    hooks,
                    None,
                    kv,
                    pass,
                    $crate::hooks::LogitRows::Last,
                )?)
            }

            fn vocab_size(&self) -> usize {
                self.decoder.spec.vocab_size
            }

            fn n_layers(&self) -> usize {
                self.decoder.spec.n_layers
            }

            fn d_model(&self) -> usize {
                self.decoder.spec.d_model
            }

            fn device(&self) -> sae_core::burn::tensor::Device {
                self.decoder.device()
            }

            fn unembed(&self) -> sae_core::burn::tensor::Tensor<2> {
                self.decoder.w_u()
            }
        }
    };
}
pub(crate) use language_model_via_decoder;

/// `x · w` with `w` read as f32 in column blocks of `block` when it is stored in half precision,
/// written block by block into one output (a concatenation would hold the logits twice).
///
/// # Shapes
/// - `x`: `[n, d]`, `w`: `[d, vocab]` → `[n, vocab]`.
fn unembed_blocked(x: Tensor<2>, w: Tensor<2>, block: usize) -> Tensor<2> {
    let vocab = w.dims()[1];
    if w.dtype() == sae_core::burn::tensor::DType::F32 || vocab <= block {
        return x.matmul(as_f32(w));
    }
    let rows = x.dims()[0];
    let mut out = Tensor::<2>::zeros([rows, vocab], &x.device());
    for start in (0..vocab).step_by(block) {
        let n = block.min(vocab - start);
        let part = x.clone().matmul(as_f32(w.clone().narrow(1, start, n)));
        out = out.slice_assign([0..rows, start..start + n], part);
    }
    out
}

/// Parses an HF RoPE-scaling object (`rope_scaling`, or one entry of transformers 5's
/// `rope_parameters`): `default`, `linear` and `llama3`; other types (`dynamic`, `yarn`,
/// `longrope`, ...) are a typed error naming the type.
pub fn parse_rope_scaling(v: &serde_json::Value, path: &std::path::Path) -> Result<RopeScaling> {
    let ty = v
        .get("rope_type")
        .or_else(|| v.get("type"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("default");
    let num = |k: &str| -> Result<f64> {
        v.get(k)
            .and_then(serde_json::Value::as_f64)
            .filter(|x| x.is_finite() && *x > 0.0)
            .ok_or_else(|| ModelError::Config {
                path: path.to_path_buf(),
                message: format!("RoPE scaling `{ty}` needs a positive `{k}`"),
            })
    };
    match ty {
        "default" => Ok(RopeScaling::None),
        "linear" => Ok(RopeScaling::Linear {
            factor: num("factor")?,
        }),
        "llama3" => {
            let s = RopeScaling::Llama3 {
                factor: num("factor")?,
                low_freq_factor: num("low_freq_factor")?,
                high_freq_factor: num("high_freq_factor")?,
                original_max_position_embeddings: num("original_max_position_embeddings")?,
            };
            if let RopeScaling::Llama3 {
                low_freq_factor,
                high_freq_factor,
                ..
            } = s
                && high_freq_factor <= low_freq_factor
            {
                return Err(ModelError::Config {
                    path: path.to_path_buf(),
                    message: format!(
                        "llama3 RoPE scaling needs high_freq_factor > low_freq_factor (found {high_freq_factor} and {low_freq_factor})"
                    ),
                });
            }
            Ok(s)
        }
        other => Err(ModelError::Config {
            path: path.to_path_buf(),
            message: format!(
                "RoPE scaling type `{other}` is not implemented (default, linear, llama3)"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sae_core::device::{cpu, store_as, tensor_from_vec, tensor_to_vec};

    #[test]
    fn blocked_unembedding_equals_one_matmul() {
        let dev = cpu();
        let (n, d, vocab) = (3, 5, 23);
        let x: Vec<f32> = (0..n * d).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..d * vocab).map(|i| (i as f32 * 0.11).cos()).collect();
        let x = tensor_from_vec(x, [n, d], &dev);
        let w = store_as(tensor_from_vec(w, [d, vocab], &dev), StorageDtype::Bf16);
        let direct = tensor_to_vec(x.clone().matmul(as_f32(w.clone()))).unwrap();
        for block in [1, 4, 7, 23, 64] {
            let blocked = tensor_to_vec(unembed_blocked(x.clone(), w.clone(), block)).unwrap();
            // The same products; only the GEMM's summation order may differ with the width.
            let d = blocked
                .iter()
                .zip(&direct)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(d < 1e-5, "block {block}: {d}");
        }
    }
}

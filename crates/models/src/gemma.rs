//! Gemma 1, 2 and 3 (text) on burn with TransformerLens-style hook points, from HF safetensors
//! or GGUF.
//!
//! One code path, switched by [`GemmaVariant`]:
//! - Gemma 1: RMSNorm before attention and MLP, one RoPE base, scaling 1/√head_dim.
//! - Gemma 2: also post-attention and post-MLP norms, attention and final-logit soft-capping,
//!   alternating sliding-window layers, `query_pre_attn_scalar`.
//! - Gemma 3: Gemma 2's norms, q/k RMSNorm before RoPE, RoPE base per layer type (local 10 000 on
//!   sliding layers, global `rope_theta` on full-attention layers), no soft-capping.
//!
//! All: embeddings scaled by √d_model, tied unembedding, GeGLU with tanh-approximate GELU, and
//! RMSNorm weights in the (1 + w) convention (GGUF files store 1 + w already).
//!
//! Hook points (TransformerLens names): `hook_embed` is the scaled embedding;
//! `blocks.{L}.hook_resid_pre` equals transformers' `hidden_states[L]`; `attn.hook_q`/`hook_k`
//! are after the q/k norm and before RoPE; `hook_attn_out` and `hook_mlp_out` are what is added
//! to the residual stream (after the post norms in Gemma 2/3); `mlp.hook_pre` is the gate
//! pre-activation and `mlp.hook_post` is gelu(gate)·up; `ln_final.hook_normalized` is the final
//! norm before its weight.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sae_core::burn::module::{Module, Param};
use sae_core::burn::tensor::activation::softmax;
use sae_core::burn::tensor::{Bool, Device, Int, Tensor};
use sae_core::device::tensor_from_vec;
use sae_core::safetensors_io::{HostTensor, SafetensorsFile};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;
use crate::hook::HookPoint;
use crate::hooks::{Hooks, Pass};
use crate::kv::KvCache;
use crate::model::LanguageModel;
use crate::ops::transpose_host as transpose;
use crate::ops::{gelu_tanh, matmul3};

/// Gemma generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GemmaVariant {
    /// Gemma 1 (`gemma`).
    Gemma1,
    /// Gemma 2 (`gemma2`).
    Gemma2,
    /// Gemma 3 text (`gemma3_text`, `gemma3`).
    Gemma3,
}

/// HF `config.json` of Gemma 1/2/3 text models (serde mirror; unknown fields ignored).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GemmaConfig {
    /// `gemma`, `gemma2`, `gemma3_text`.
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// d_model.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Head width.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// Attention scale is `query_pre_attn_scalar^-0.5` (Gemma 2/3); else `head_dim^-0.5`.
    #[serde(default)]
    pub query_pre_attn_scalar: Option<f64>,
    /// Sliding window of local layers.
    #[serde(default)]
    pub sliding_window: Option<usize>,
    /// `sliding_attention` / `full_attention` per layer.
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
    /// Gemma 3's sliding-window pattern (every n-th layer is global) when `layer_types` is absent.
    #[serde(default, alias = "_sliding_window_pattern")]
    pub sliding_window_pattern: Option<usize>,
    /// transformers 5 layout: RoPE parameters per layer type.
    #[serde(default)]
    pub rope_parameters: Option<Value>,
    /// Older layout: the (global) RoPE base.
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// Older Gemma 3 layout: the local RoPE base.
    #[serde(default)]
    pub rope_local_base_freq: Option<f64>,
    /// Gemma 2: tanh soft-capping of attention scores.
    #[serde(default)]
    pub attn_logit_softcapping: Option<f64>,
    /// Gemma 2: tanh soft-capping of the logits.
    #[serde(default)]
    pub final_logit_softcapping: Option<f64>,
    /// Context length.
    #[serde(default = "default_ctx")]
    pub max_position_embeddings: usize,
    /// BOS id.
    #[serde(default = "default_bos")]
    pub bos_token_id: u32,
    /// EOS id (a list in some configs: the first is used).
    #[serde(default)]
    pub eos_token_id: Option<Value>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_ctx() -> usize {
    8192
}
fn default_bos() -> u32 {
    2
}

/// Per-layer attention facts derived from the config.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerAttention {
    /// Local (sliding-window) attention.
    pub sliding: bool,
    /// RoPE base.
    pub rope_theta: f64,
}

impl GemmaConfig {
    /// Reads and checks `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let cfg: GemmaConfig = crate::config::read_json(path, "Gemma config")?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Checks every size, count and divisor the forward pass relies on (a hostile or corrupt
    /// header must not reach an allocation or a division).
    pub fn validate(&self, path: &Path) -> Result<()> {
        use crate::config::{MAX_DIM, MAX_LAYERS, check_sizes};
        self.variant(path)?;
        let bad = |message: String| ModelError::Config {
            path: path.to_path_buf(),
            message,
        };
        let (h, kvh, hd) = (self.num_attention_heads, self.n_kv_heads(), self.head_dim());
        check_sizes(
            path,
            &[
                ("vocab_size", self.vocab_size, MAX_DIM),
                ("hidden_size", self.hidden_size, MAX_DIM),
                ("intermediate_size", self.intermediate_size, MAX_DIM),
                ("num_hidden_layers", self.num_hidden_layers, MAX_LAYERS),
                ("num_attention_heads", h, MAX_DIM),
                ("num_key_value_heads", kvh, MAX_DIM),
                ("head_dim", hd, MAX_DIM),
                (
                    "num_attention_heads × head_dim",
                    h.saturating_mul(hd),
                    MAX_DIM,
                ),
                (
                    "max_position_embeddings",
                    self.max_position_embeddings,
                    usize::MAX,
                ),
            ],
        )?;
        if !h.is_multiple_of(kvh) {
            return Err(bad(format!(
                "num_attention_heads {h} is not a multiple of num_key_value_heads {kvh}"
            )));
        }
        if !hd.is_multiple_of(2) {
            return Err(bad(format!(
                "head_dim {hd} is odd; RoPE needs an even width"
            )));
        }
        if self.sliding_window_pattern == Some(0) || self.sliding_window == Some(0) {
            return Err(bad(
                "sliding_window and sliding_window_pattern must be positive".into(),
            ));
        }
        if let Some(t) = &self.layer_types
            && t.len() != self.num_hidden_layers
        {
            return Err(bad(format!(
                "layer_types has {} entries for {} layers",
                t.len(),
                self.num_hidden_layers
            )));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps >= 0.0) {
            return Err(bad(format!("rms_norm_eps is {}", self.rms_norm_eps)));
        }
        Ok(())
    }

    /// The generation, from `model_type`.
    pub fn variant(&self, path: &Path) -> Result<GemmaVariant> {
        match self.model_type.as_str() {
            "gemma" => Ok(GemmaVariant::Gemma1),
            "gemma2" => Ok(GemmaVariant::Gemma2),
            "gemma3_text" | "gemma3" => Ok(GemmaVariant::Gemma3),
            other => Err(ModelError::Config {
                path: path.to_path_buf(),
                message: format!(
                    "model_type `{other}` is not a Gemma text model (gemma, gemma2, gemma3_text)"
                ),
            }),
        }
    }

    /// Head width.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Key/value heads.
    pub fn n_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// EOS id.
    pub fn eos(&self) -> u32 {
        match &self.eos_token_id {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(1) as u32,
            Some(Value::Array(a)) => a.first().and_then(Value::as_u64).unwrap_or(1) as u32,
            _ => 1,
        }
    }

    fn rope_base(&self, layer_type: &str) -> Option<f64> {
        self.rope_parameters
            .as_ref()?
            .get(layer_type)?
            .get("rope_theta")?
            .as_f64()
    }

    /// Each layer's attention: sliding or global, and its RoPE base.
    pub fn layer_attention(&self, variant: GemmaVariant) -> Vec<LayerAttention> {
        let global_theta = self
            .rope_base("full_attention")
            .or(self.rope_theta)
            .or_else(|| self.rope_parameters.as_ref()?.get("rope_theta")?.as_f64())
            .unwrap_or(10_000.0);
        let local_theta = match variant {
            GemmaVariant::Gemma3 => self
                .rope_base("sliding_attention")
                .or(self.rope_local_base_freq)
                .unwrap_or(10_000.0),
            _ => global_theta,
        };
        (0..self.num_hidden_layers)
            .map(|l| {
                let sliding = match (&self.layer_types, variant) {
                    (Some(types), _) => types.get(l).is_some_and(|t| t == "sliding_attention"),
                    (None, GemmaVariant::Gemma1) => false,
                    (None, GemmaVariant::Gemma2) => l % 2 == 0,
                    (None, GemmaVariant::Gemma3) => {
                        (l + 1) % self.sliding_window_pattern.unwrap_or(6) != 0
                    }
                } && self.sliding_window.is_some();
                LayerAttention {
                    sliding,
                    rope_theta: if sliding { local_theta } else { global_theta },
                }
            })
            .collect()
    }
}

/// RMSNorm scale (already 1 + w).
#[derive(Module, Debug)]
pub struct NormScale {
    /// The multiplier of the normalised input.
    pub scale: Param<Tensor<1>>,
}

/// One Gemma block. Weights are stored `[in, out]`.
#[derive(Module, Debug)]
pub struct GemmaBlock {
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
    /// Gemma 3: per-head query norm.
    pub q_norm: Option<NormScale>,
    /// Gemma 3: per-head key norm.
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

/// Gemma's parameters.
#[derive(Module, Debug)]
pub struct GemmaWeights {
    /// Token embeddings `[vocab, d_model]` (tied to the unembedding).
    pub w_e: Param<Tensor<2>>,
    /// Blocks.
    pub blocks: Vec<GemmaBlock>,
    /// Final norm.
    pub final_norm: NormScale,
}

/// A Gemma model.
#[derive(Debug, Clone)]
pub struct Gemma {
    config: GemmaConfig,
    variant: GemmaVariant,
    layers: Vec<LayerAttention>,
    weights: GemmaWeights,
}

/// Checkpoint names → ours, for HF safetensors and GGUF, in one place. `{L}` is the layer.
pub const GEMMA_CHECKPOINT_TABLE: &[(&str, &str, &str)] = &[
    ("w_e", "model.embed_tokens.weight", "token_embd.weight"),
    ("final_norm", "model.norm.weight", "output_norm.weight"),
    (
        "blocks.{L}.input_norm",
        "model.layers.{L}.input_layernorm.weight",
        "blk.{L}.attn_norm.weight",
    ),
    (
        "blocks.{L}.w_q",
        "model.layers.{L}.self_attn.q_proj.weight",
        "blk.{L}.attn_q.weight",
    ),
    (
        "blocks.{L}.w_k",
        "model.layers.{L}.self_attn.k_proj.weight",
        "blk.{L}.attn_k.weight",
    ),
    (
        "blocks.{L}.w_v",
        "model.layers.{L}.self_attn.v_proj.weight",
        "blk.{L}.attn_v.weight",
    ),
    (
        "blocks.{L}.w_o",
        "model.layers.{L}.self_attn.o_proj.weight",
        "blk.{L}.attn_output.weight",
    ),
    (
        "blocks.{L}.q_norm",
        "model.layers.{L}.self_attn.q_norm.weight",
        "blk.{L}.attn_q_norm.weight",
    ),
    (
        "blocks.{L}.k_norm",
        "model.layers.{L}.self_attn.k_norm.weight",
        "blk.{L}.attn_k_norm.weight",
    ),
    // Gemma 1 calls its pre-MLP norm `post_attention_layernorm`; Gemma 2/3 use that name for the
    // norm of the attention output and `pre_feedforward_layernorm` for the pre-MLP one.
    (
        "blocks.{L}.post_attn_norm",
        "model.layers.{L}.post_attention_layernorm.weight",
        "blk.{L}.post_attention_norm.weight",
    ),
    (
        "blocks.{L}.pre_mlp_norm",
        "model.layers.{L}.pre_feedforward_layernorm.weight",
        "blk.{L}.ffn_norm.weight",
    ),
    (
        "blocks.{L}.post_mlp_norm",
        "model.layers.{L}.post_feedforward_layernorm.weight",
        "blk.{L}.post_ffw_norm.weight",
    ),
    (
        "blocks.{L}.w_gate",
        "model.layers.{L}.mlp.gate_proj.weight",
        "blk.{L}.ffn_gate.weight",
    ),
    (
        "blocks.{L}.w_up",
        "model.layers.{L}.mlp.up_proj.weight",
        "blk.{L}.ffn_up.weight",
    ),
    (
        "blocks.{L}.w_down",
        "model.layers.{L}.mlp.down_proj.weight",
        "blk.{L}.ffn_down.weight",
    ),
];

/// Where tensors come from while loading.
enum Source<'a> {
    Hf {
        path: PathBuf,
        tensors: BTreeMap<String, HostTensor>,
    },
    Gguf(&'a GgufFile),
}

impl Source<'_> {
    fn path(&self) -> PathBuf {
        match self {
            Source::Hf { path, .. } => path.clone(),
            Source::Gguf(f) => f.path().to_path_buf(),
        }
    }

    /// The tensor for our name `ours` at layer `l`, row-major `[out, in]` as stored.
    fn take(&mut self, ours: &str, l: usize, expected: &[usize]) -> Result<HostTensor> {
        let (hf, gguf) = GEMMA_CHECKPOINT_TABLE
            .iter()
            .find(|(o, _, _)| *o == ours)
            .map(|(_, h, g)| {
                (
                    h.replace("{L}", &l.to_string()),
                    g.replace("{L}", &l.to_string()),
                )
            })
            .ok_or_else(|| ModelError::InvalidInput(format!("no checkpoint name for {ours}")))?;
        let path = self.path();
        let t = match self {
            Source::Hf { tensors, .. } => {
                let prefixed = format!("language_model.{hf}");
                let key = [hf.as_str(), prefixed.as_str()]
                    .into_iter()
                    .find(|k| tensors.contains_key(*k))
                    .map(str::to_string);
                key.and_then(|k| tensors.remove(&k))
                    .ok_or_else(|| ModelError::MissingTensor {
                        path: path.clone(),
                        tensor: hf.clone(),
                        tried: format!("{hf}, {prefixed}"),
                    })?
            }
            Source::Gguf(f) => f.dequantize(&gguf)?,
        };
        if t.shape != expected {
            return Err(ModelError::ShapeMismatch {
                path,
                tensor: match self {
                    Source::Hf { .. } => hf,
                    Source::Gguf(_) => gguf,
                },
                expected: expected.to_vec(),
                found: t.shape,
            });
        }
        Ok(t)
    }
}

/// RMSNorm: x · rsqrt(mean(x²) + eps) over the last dim; returns (normalised, scaled).
fn rms_norm<const D: usize>(
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

impl Gemma {
    /// Loads a Gemma model from a directory with `config.json` and `model.safetensors` (or a
    /// sharded `model.safetensors.index.json`).
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let config = GemmaConfig::from_file(dir.join("config.json"))?;
        let mut tensors = BTreeMap::new();
        let index = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if index.exists() {
            let v: Value = crate::config::read_json(&index, "safetensors index")?;
            let mut shards: Vec<String> = v
                .get("weight_map")
                .and_then(Value::as_object)
                .map(|m| {
                    m.values()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            shards.sort();
            shards.dedup();
            shards.into_iter().map(|s| dir.join(s)).collect()
        } else {
            vec![dir.join("model.safetensors")]
        };
        for f in &files {
            tensors.extend(SafetensorsFile::open(f)?.read_all()?);
        }
        let path = files.first().cloned().unwrap_or_else(|| dir.to_path_buf());
        Self::build(config, Source::Hf { path, tensors }, device)
    }

    /// Loads Gemma 3 from a GGUF file. The config comes from the file's metadata plus the
    /// architecture's known defaults that GGUF does not store (local RoPE base 10 000, a global
    /// layer every 6th, `query_pre_attn_scalar` = head_dim).
    pub fn load_gguf(file: &GgufFile, device: &Device) -> Result<Self> {
        let arch = file.architecture().unwrap_or("");
        if arch != "gemma3" {
            return Err(ModelError::Config {
                path: file.path().to_path_buf(),
                message: format!("GGUF architecture `{arch}` is not gemma3"),
            });
        }
        let u = |k: &str| -> Result<usize> {
            file.get(&format!("gemma3.{k}"))
                .and_then(|v| v.as_u64())
                .map(|v| v as usize)
                .ok_or_else(|| ModelError::Config {
                    path: file.path().to_path_buf(),
                    message: format!("GGUF metadata lacks gemma3.{k}"),
                })
        };
        let f = |k: &str| file.get(&format!("gemma3.{k}")).and_then(|v| v.as_f64());
        let vocab = file
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.as_array())
            .map(<[_]>::len)
            .ok_or_else(|| ModelError::Config {
                path: file.path().to_path_buf(),
                message: "GGUF metadata lacks tokenizer.ggml.tokens".into(),
            })?;
        let head_dim = u("attention.key_length")?;
        let config = GemmaConfig {
            model_type: "gemma3_text".into(),
            vocab_size: vocab,
            hidden_size: u("embedding_length")?,
            intermediate_size: u("feed_forward_length")?,
            num_hidden_layers: u("block_count")?,
            num_attention_heads: u("attention.head_count")?,
            num_key_value_heads: Some(u("attention.head_count_kv")?),
            head_dim: Some(head_dim),
            rms_norm_eps: f("attention.layer_norm_rms_epsilon").unwrap_or(1e-6),
            query_pre_attn_scalar: Some(head_dim as f64),
            sliding_window: Some(u("attention.sliding_window")?),
            layer_types: None,
            sliding_window_pattern: Some(6),
            rope_parameters: None,
            rope_theta: Some(f("rope.freq_base").unwrap_or(1_000_000.0)),
            rope_local_base_freq: Some(10_000.0),
            attn_logit_softcapping: None,
            final_logit_softcapping: None,
            max_position_embeddings: u("context_length")?,
            bos_token_id: file
                .get("tokenizer.ggml.bos_token_id")
                .and_then(|v| v.as_u64())
                .unwrap_or(2) as u32,
            eos_token_id: file
                .get("tokenizer.ggml.eos_token_id")
                .and_then(|v| v.as_u64())
                .map(Value::from),
        };
        Self::build(config, Source::Gguf(file), device)
    }

    fn build(config: GemmaConfig, mut src: Source<'_>, device: &Device) -> Result<Self> {
        let path = src.path();
        config.validate(&path)?;
        let variant = config.variant(&path)?;
        let is_gguf = matches!(src, Source::Gguf(_));
        let (d, v, dm) = (
            config.hidden_size,
            config.vocab_size,
            config.intermediate_size,
        );
        let (h, kvh, hd) = (
            config.num_attention_heads,
            config.n_kv_heads(),
            config.head_dim(),
        );
        let p2 = |t: HostTensor| {
            let t = transpose(&t);
            Param::from_tensor(tensor_from_vec(t.data, [t.shape[0], t.shape[1]], device))
        };
        // HF stores w (scale 1 + w); GGUF stores 1 + w.
        let norm = |t: HostTensor| {
            let n = t.shape[0];
            let data = if is_gguf {
                t.data
            } else {
                t.data.iter().map(|w| 1.0 + w).collect()
            };
            NormScale {
                scale: Param::from_tensor(tensor_from_vec(data, [n], device)),
            }
        };
        let emb = src.take("w_e", 0, &[v, d])?;
        let w_e = Param::from_tensor(tensor_from_vec(emb.data, [v, d], device));
        let mut blocks = Vec::with_capacity(config.num_hidden_layers);
        let sandwich = variant != GemmaVariant::Gemma1;
        for l in 0..config.num_hidden_layers {
            let input_norm = norm(src.take("blocks.{L}.input_norm", l, &[d])?);
            let w_q = p2(src.take("blocks.{L}.w_q", l, &[h * hd, d])?);
            let w_k = p2(src.take("blocks.{L}.w_k", l, &[kvh * hd, d])?);
            let w_v = p2(src.take("blocks.{L}.w_v", l, &[kvh * hd, d])?);
            let w_o = p2(src.take("blocks.{L}.w_o", l, &[d, h * hd])?);
            let (q_norm, k_norm) = if variant == GemmaVariant::Gemma3 {
                (
                    Some(norm(src.take("blocks.{L}.q_norm", l, &[hd])?)),
                    Some(norm(src.take("blocks.{L}.k_norm", l, &[hd])?)),
                )
            } else {
                (None, None)
            };
            let (post_attn_norm, pre_mlp_norm, post_mlp_norm) = if sandwich {
                (
                    Some(norm(src.take("blocks.{L}.post_attn_norm", l, &[d])?)),
                    norm(src.take("blocks.{L}.pre_mlp_norm", l, &[d])?),
                    Some(norm(src.take("blocks.{L}.post_mlp_norm", l, &[d])?)),
                )
            } else {
                // Gemma 1's `post_attention_layernorm` is its pre-MLP norm.
                (
                    None,
                    norm(src.take("blocks.{L}.post_attn_norm", l, &[d])?),
                    None,
                )
            };
            blocks.push(GemmaBlock {
                input_norm,
                w_q,
                w_k,
                w_v,
                w_o,
                q_norm,
                k_norm,
                post_attn_norm,
                pre_mlp_norm,
                post_mlp_norm,
                w_gate: p2(src.take("blocks.{L}.w_gate", l, &[dm, d])?),
                w_up: p2(src.take("blocks.{L}.w_up", l, &[dm, d])?),
                w_down: p2(src.take("blocks.{L}.w_down", l, &[d, dm])?),
            });
        }
        let final_norm = norm(src.take("final_norm", 0, &[d])?);
        let layers = config.layer_attention(variant);
        Ok(Self {
            config,
            variant,
            layers,
            weights: GemmaWeights {
                w_e,
                blocks,
                final_norm,
            },
        })
    }

    /// The config.
    pub fn config(&self) -> &GemmaConfig {
        &self.config
    }

    /// The generation.
    pub fn variant(&self) -> GemmaVariant {
        self.variant
    }

    /// Each layer's attention kind and RoPE base.
    pub fn layer_attention(&self) -> &[LayerAttention] {
        &self.layers
    }

    /// The weights.
    pub fn weights(&self) -> &GemmaWeights {
        &self.weights
    }

    /// The unembedding, `[d_model, vocab]` (the embeddings transposed).
    pub fn w_u(&self) -> Tensor<2> {
        self.weights.w_e.val().transpose()
    }

    fn rope_tables(
        &self,
        theta: f64,
        past: usize,
        t: usize,
        dev: &Device,
    ) -> (Tensor<2>, Tensor<2>) {
        let hd = self.config.head_dim();
        let half = hd / 2;
        // As transformers: inverse frequencies and angles in float32.
        let inv: Vec<f32> = (0..half)
            .map(|i| 1.0f32 / (theta as f32).powf((2 * i) as f32 / hd as f32))
            .collect();
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
            tensor_from_vec(cos, [t, hd], dev),
            tensor_from_vec(sin, [t, hd], dev),
        )
    }

    /// The hooked forward pass (see [`LanguageModel::run`]).
    pub fn run(
        &self,
        tokens: Tensor<2, Int>,
        hooks: &mut Hooks<'_>,
        stop_at_layer: Option<usize>,
        mut kv: Option<&mut KvCache>,
        pass: Pass,
    ) -> Result<Option<Tensor<3>>> {
        let cfg = &self.config;
        let past = kv.as_ref().map_or(0, |c| c.len());
        let [b, t] = tokens.dims();
        if b == 0 || t == 0 {
            return Err(ModelError::InvalidInput(format!(
                "empty token batch [{b}, {t}]"
            )));
        }
        let ids = sae_core::device::int_tensor_to_vec(tokens.clone())?;
        if let Some(bad) = ids.iter().find(|&&i| i < 0 || i as usize >= cfg.vocab_size) {
            return Err(ModelError::InvalidInput(format!(
                "token id {bad} outside [0, {})",
                cfg.vocab_size
            )));
        }
        let d = cfg.hidden_size;
        let dev = self.device();
        let w = &self.weights;
        let embed = w
            .w_e
            .val()
            .select(0, tokens.reshape([b * t]))
            .reshape([b, t, d]);
        let embed = embed.mul_scalar((d as f64).sqrt() as f32);
        let mut resid = hooks.apply3(HookPoint::Embed, pass, embed);
        let n_layers = cfg.num_hidden_layers;
        let stop = stop_at_layer.unwrap_or(n_layers).min(n_layers);
        if let Some(c) = kv.as_deref_mut()
            && c.layers.len() < n_layers
        {
            c.layers.resize(n_layers, None);
        }
        let eps = cfg.rms_norm_eps;
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
            let post = hooks.apply3(HookPoint::MlpPost(l), pass, gelu_tanh(gate) * up);
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
        let out = normalized * w.final_norm.scale.val().unsqueeze::<3>();
        let [_, _, dd] = out.dims();
        let mut logits = out
            .reshape([b * t, dd])
            .matmul(w.w_e.val().transpose())
            .reshape([b, t, cfg.vocab_size]);
        if let Some(cap) = cfg.final_logit_softcapping {
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
        blk: &GemmaBlock,
        x: Tensor<3>,
        hooks: &mut Hooks<'_>,
        pass: Pass,
        kv: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
        past: usize,
        dev: &Device,
    ) -> Tensor<3> {
        let cfg = &self.config;
        let [b, t, _] = x.dims();
        let (h, kvh, hd) = (cfg.num_attention_heads, cfg.n_kv_heads(), cfg.head_dim());
        let eps = cfg.rms_norm_eps;
        let mut q = matmul3(x.clone(), &blk.w_q).reshape([b, t, h, hd]);
        let mut k = matmul3(x.clone(), &blk.w_k).reshape([b, t, kvh, hd]);
        let v = matmul3(x, &blk.w_v).reshape([b, t, kvh, hd]);
        if let Some(n) = &blk.q_norm {
            q = rms_norm(q, Some(n), eps).1;
        }
        if let Some(n) = &blk.k_norm {
            k = rms_norm(k, Some(n), eps).1;
        }
        let q = hooks.apply4(HookPoint::AttnQ(l), pass, q);
        let k = hooks.apply4(HookPoint::AttnK(l), pass, k);
        let v = hooks.apply4(HookPoint::AttnV(l), pass, v);
        let la = self.layers[l];
        let (cos, sin) = self.rope_tables(la.rope_theta, past, t, dev);
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
        let scale = cfg.query_pre_attn_scalar.unwrap_or(hd as f64).powf(-0.5);
        let mut scores = qh.matmul(kh.swap_dims(2, 3)).mul_scalar(scale as f32);
        if let Some(cap) = cfg.attn_logit_softcapping {
            scores = scores.div_scalar(cap as f32).tanh().mul_scalar(cap as f32);
        }
        let window = if la.sliding { cfg.sliding_window } else { None };
        let mask = attention_mask(t, past, window, dev);
        let scores = scores.mask_fill(
            mask.unsqueeze::<4>().expand([b, h, t, total]),
            f32::NEG_INFINITY,
        );
        let scores = hooks.apply4(HookPoint::AttnScores(l), pass, scores);
        let pattern = hooks.apply4(HookPoint::AttnPattern(l), pass, softmax(scores, 3));
        let z = pattern.matmul(vh).swap_dims(1, 2); // [b, t, h, hd]
        let z = hooks.apply4(HookPoint::AttnZ(l), pass, z);
        matmul3(z.reshape([b, t, h * hd]), &blk.w_o)
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.weights.w_e.val().device()
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

impl LanguageModel for Gemma {
    fn run(
        &self,
        tokens: Tensor<2, Int>,
        hooks: &mut Hooks<'_>,
        stop_at_layer: Option<usize>,
        kv: Option<&mut KvCache>,
        pass: Pass,
    ) -> Result<Option<Tensor<3>>> {
        Gemma::run(self, tokens, hooks, stop_at_layer, kv, pass)
    }

    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    fn n_layers(&self) -> usize {
        self.config.num_hidden_layers
    }

    fn d_model(&self) -> usize {
        self.config.hidden_size
    }

    fn device(&self) -> Device {
        Gemma::device(self)
    }

    fn unembed(&self) -> Tensor<2> {
        self.w_u()
    }
}

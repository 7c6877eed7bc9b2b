//! Gemma 1, 2 and 3 (text) from HF safetensors or GGUF: the config mirror, the checkpoint-name
//! table and the loaders; the forward pass is the shared [`crate::decoder`].
//!
//! One code path, switched by [`GemmaVariant`]:
//! - Gemma 1: RMSNorm before attention and MLP, one RoPE base, scaling 1/√head_dim.
//! - Gemma 2: also post-attention and post-MLP norms, attention and final-logit soft-capping,
//!   alternating sliding-window layers, `query_pre_attn_scalar`.
//! - Gemma 3: Gemma 2's norms, q/k RMSNorm before RoPE, RoPE base per layer type (local 10 000 on
//!   sliding layers, global `rope_theta` on full-attention layers, with the global layers'
//!   `linear` RoPE scaling of the 4B+ models), no soft-capping.
//!
//! All: embeddings scaled by √d_model, tied unembedding, GeGLU with tanh-approximate GELU, and
//! RMSNorm weights in the (1 + w) convention (GGUF files store 1 + w already).

use std::path::Path;

use sae_core::burn::module::Param;
use sae_core::burn::tensor::Device;
use sae_core::device::tensor_from_vec;
use sae_core::safetensors_io::HostTensor;
use serde::Deserialize;
use serde_json::Value;

pub use crate::decoder::LayerAttention;
use crate::decoder::{
    Decoder, DecoderBlock, DecoderSpec, DecoderWeights, LoadOptions, MlpActivation, NormScale,
    RopeScaling, WeightSource, matrix_param,
};
use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;

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
    /// Older layout: RoPE scaling of the global layers (`{"rope_type": "linear", "factor": 8}`).
    #[serde(default)]
    pub rope_scaling: Option<Value>,
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

    /// The global layers' RoPE scaling: `rope_parameters.full_attention` (transformers 5) or
    /// `rope_scaling` (older configs; Gemma 3 applies it to global layers only).
    pub fn global_rope_scaling(&self, path: &Path) -> Result<RopeScaling> {
        let v = self
            .rope_parameters
            .as_ref()
            .and_then(|p| p.get("full_attention"))
            .or(self.rope_scaling.as_ref());
        match v {
            Some(v) => crate::decoder::parse_rope_scaling(v, path),
            None => Ok(RopeScaling::None),
        }
    }

    /// Each layer's attention: sliding or global, and its RoPE base.
    pub fn layer_attention(&self, variant: GemmaVariant) -> Vec<LayerAttention> {
        let global_scaling = self
            .global_rope_scaling(Path::new(""))
            .unwrap_or(RopeScaling::None);
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
                    rope_scaling: if sliding {
                        RopeScaling::None
                    } else {
                        global_scaling
                    },
                }
            })
            .collect()
    }
}

/// Gemma's parameters (the shared decoder's).
pub type GemmaWeights = DecoderWeights;

/// A Gemma model.
#[derive(Debug, Clone)]
pub struct Gemma {
    config: GemmaConfig,
    variant: GemmaVariant,
    decoder: Decoder,
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

impl Gemma {
    /// Loads Gemma 2 or Gemma 3 from a GGUF file (architecture `gemma2` or `gemma3`), the weights
    /// held as `options` says (each tensor is dequantised to f32, then stored in
    /// `options.weight_dtype`). The config comes from the file's metadata plus what llama.cpp
    /// assumes and GGUF does not store: Gemma 3's local RoPE base 10 000 and a global layer every
    /// 6th, Gemma 2's alternating sliding layers, and `query_pre_attn_scalar` = head_dim
    /// (d_model / heads for the 27B Gemma 2, as llama.cpp).
    pub fn load_gguf_with(file: &GgufFile, options: &LoadOptions, device: &Device) -> Result<Self> {
        let arch = file.architecture().unwrap_or("").to_string();
        if !matches!(arch.as_str(), "gemma2" | "gemma3") {
            return Err(ModelError::Config {
                path: file.path().to_path_buf(),
                message: format!("GGUF architecture `{arch}` is not gemma2 or gemma3"),
            });
        }
        let u = |k: &str| file.arch_usize(k);
        let f = |k: &str| file.arch_f64(k);
        let vocab = file
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.as_array())
            .map(<[_]>::len)
            .ok_or_else(|| ModelError::Config {
                path: file.path().to_path_buf(),
                message: "GGUF metadata lacks tokenizer.ggml.tokens".into(),
            })?;
        let head_dim = u("attention.key_length")?;
        let (d, heads) = (u("embedding_length")?, u("attention.head_count")?);
        let gemma3 = arch == "gemma3";
        let query_pre_attn_scalar = if !gemma3 && d == 4608 {
            d / heads.max(1)
        } else {
            head_dim
        };
        let config = GemmaConfig {
            model_type: if gemma3 { "gemma3_text" } else { "gemma2" }.into(),
            vocab_size: vocab,
            hidden_size: d,
            intermediate_size: u("feed_forward_length")?,
            num_hidden_layers: u("block_count")?,
            num_attention_heads: heads,
            num_key_value_heads: Some(u("attention.head_count_kv")?),
            head_dim: Some(head_dim),
            rms_norm_eps: f("attention.layer_norm_rms_epsilon").unwrap_or(1e-6),
            query_pre_attn_scalar: Some(query_pre_attn_scalar as f64),
            sliding_window: Some(u("attention.sliding_window")?),
            layer_types: None,
            sliding_window_pattern: gemma3.then_some(6),
            rope_parameters: None,
            rope_theta: Some(f("rope.freq_base").unwrap_or(if gemma3 {
                1_000_000.0
            } else {
                10_000.0
            })),
            rope_local_base_freq: gemma3.then_some(10_000.0),
            rope_scaling: match (
                f("rope.scaling.factor"),
                file.get(&format!("{arch}.rope.scaling.type"))
                    .and_then(|v| v.as_str()),
            ) {
                (Some(factor), Some("linear")) => {
                    Some(serde_json::json!({"rope_type": "linear", "factor": factor}))
                }
                _ => None,
            },
            attn_logit_softcapping: if gemma3 {
                None
            } else {
                f("attn_logit_softcapping")
            },
            final_logit_softcapping: if gemma3 {
                None
            } else {
                f("final_logit_softcapping")
            },
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
        Self::build(config, WeightSource::Gguf(file), options, device)
    }

    fn build(
        config: GemmaConfig,
        mut src: WeightSource<'_>,
        options: &LoadOptions,
        device: &Device,
    ) -> Result<Self> {
        let path = src.path();
        config.validate(&path)?;
        config.global_rope_scaling(&path)?;
        let variant = config.variant(&path)?;
        let is_gguf = src.is_gguf();
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
        let table = GEMMA_CHECKPOINT_TABLE;
        let p2 = |t: HostTensor| matrix_param(t, options.weight_dtype, device);
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
        let w_e = Param::from_tensor(src.take_stored(
            table,
            "w_e",
            [v, d],
            options.weight_dtype,
            device,
        )?);
        let mut blocks = Vec::with_capacity(config.num_hidden_layers);
        let sandwich = variant != GemmaVariant::Gemma1;
        for l in 0..config.num_hidden_layers {
            let mut take = |ours: &str, shape: &[usize]| src.take(table, ours, l, shape);
            let input_norm = norm(take("blocks.{L}.input_norm", &[d])?);
            let w_q = p2(take("blocks.{L}.w_q", &[h * hd, d])?);
            let w_k = p2(take("blocks.{L}.w_k", &[kvh * hd, d])?);
            let w_v = p2(take("blocks.{L}.w_v", &[kvh * hd, d])?);
            let w_o = p2(take("blocks.{L}.w_o", &[d, h * hd])?);
            let (q_norm, k_norm) = if variant == GemmaVariant::Gemma3 {
                (
                    Some(norm(take("blocks.{L}.q_norm", &[hd])?)),
                    Some(norm(take("blocks.{L}.k_norm", &[hd])?)),
                )
            } else {
                (None, None)
            };
            let (post_attn_norm, pre_mlp_norm, post_mlp_norm) = if sandwich {
                (
                    Some(norm(take("blocks.{L}.post_attn_norm", &[d])?)),
                    norm(take("blocks.{L}.pre_mlp_norm", &[d])?),
                    Some(norm(take("blocks.{L}.post_mlp_norm", &[d])?)),
                )
            } else {
                // Gemma 1's `post_attention_layernorm` is its pre-MLP norm.
                (None, norm(take("blocks.{L}.post_attn_norm", &[d])?), None)
            };
            blocks.push(DecoderBlock {
                input_norm,
                w_q,
                w_k,
                w_v,
                w_o,
                b_q: None,
                b_k: None,
                b_v: None,
                b_o: None,
                q_norm,
                k_norm,
                post_attn_norm,
                pre_mlp_norm,
                post_mlp_norm,
                w_gate: p2(take("blocks.{L}.w_gate", &[dm, d])?),
                w_up: p2(take("blocks.{L}.w_up", &[dm, d])?),
                w_down: p2(take("blocks.{L}.w_down", &[d, dm])?),
            });
        }
        let final_norm = norm(src.take(table, "final_norm", 0, &[d])?);
        let spec = DecoderSpec {
            vocab_size: v,
            d_model: d,
            d_mlp: dm,
            n_layers: config.num_hidden_layers,
            n_heads: h,
            n_kv_heads: kvh,
            head_dim: hd,
            eps: config.rms_norm_eps,
            embed_scale: Some((d as f64).sqrt() as f32),
            activation: MlpActivation::GeluTanh,
            attn_scale: config.query_pre_attn_scalar.unwrap_or(hd as f64).powf(-0.5),
            attn_softcap: config.attn_logit_softcapping,
            final_softcap: config.final_logit_softcapping,
            sliding_window: config.sliding_window,
            layers: config.layer_attention(variant),
        };
        Ok(Self {
            config,
            variant,
            decoder: Decoder {
                spec,
                weights: DecoderWeights {
                    w_e,
                    w_u: None,
                    blocks,
                    final_norm,
                },
            },
        })
    }

    /// Each layer's attention kind and RoPE base.
    pub fn layer_attention(&self) -> &[LayerAttention] {
        &self.decoder.spec.layers
    }
}

crate::decoder::language_model_via_decoder!(Gemma, GemmaConfig, GemmaVariant);

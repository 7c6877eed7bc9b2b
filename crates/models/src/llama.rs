//! Llama 3.x, Qwen 2.5 and Qwen 3 from HF safetensors (single or sharded) or GGUF (`llama`,
//! `qwen2`, `qwen3`): the config mirror, the checkpoint-name table and the loaders; the forward
//! pass is the shared [`crate::decoder`].
//!
//! One code path, switched by [`LlamaVariant`]:
//! - Llama: RMSNorm (weights used as they are), SwiGLU, grouped-query attention, RoPE with
//!   `rope_scaling` (`llama3`, `linear`), optional `attention_bias` (q, k, v and o), tied or untied
//!   unembedding (`tie_word_embeddings`).
//! - Qwen 2 / 2.5: Llama with q/k/v biases (no o bias).
//! - Qwen 3: Llama with per-head q/k RMSNorm before RoPE, `attention_bias` as Llama.
//!
//! GGUF files of the `llama` architecture store q/k rows permuted for llama.cpp's interleaved
//! RoPE; they are permuted back here, so both sources run the same half-split RoPE.

use std::path::{Path, PathBuf};

use sae_core::burn::module::Param;
use sae_core::burn::tensor::Device;
use sae_core::safetensors_io::HostTensor;
use serde::Deserialize;
use serde_json::Value;

use crate::decoder::{
    CheckpointTable, Decoder, DecoderBlock, DecoderSpec, DecoderWeights, LayerAttention,
    LoadOptions, MlpActivation, NormScale, RopeScaling, WeightSource, matrix_param,
    parse_rope_scaling, vector_param,
};
use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;

/// The family member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LlamaVariant {
    /// Llama 2/3.x (`llama`).
    Llama,
    /// Qwen 2 / 2.5 (`qwen2`): q/k/v biases.
    Qwen2,
    /// Qwen 3 (`qwen3`): q/k RMSNorm.
    Qwen3,
}

/// HF `config.json` of Llama, Qwen 2 and Qwen 3 models (serde mirror; unknown fields ignored).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LlamaConfig {
    /// `llama`, `qwen2`, `qwen3`.
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
    /// Head width (Qwen 3, Llama 3.2 can state it).
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base (older layout).
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// RoPE scaling (older layout), e.g. Llama 3.1's `llama3`.
    #[serde(default)]
    pub rope_scaling: Option<Value>,
    /// transformers 5 layout: `{rope_type, rope_theta, factor, ...}`.
    #[serde(default)]
    pub rope_parameters: Option<Value>,
    /// Unembedding tied to the embeddings.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Biases on q, k, v and o (Llama, Qwen 3; Qwen 2 always has q/k/v biases).
    #[serde(default)]
    pub attention_bias: bool,
    /// Biases in the MLP (not implemented: a config error).
    #[serde(default)]
    pub mlp_bias: bool,
    /// The MLP activation (`silu`).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Qwen's sliding-window switch (not implemented when true: a config error).
    #[serde(default)]
    pub use_sliding_window: Option<bool>,
    /// Context length.
    #[serde(default = "default_ctx")]
    pub max_position_embeddings: usize,
    /// BOS id.
    #[serde(default)]
    pub bos_token_id: Option<Value>,
    /// EOS id (a list in some configs).
    #[serde(default)]
    pub eos_token_id: Option<Value>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_ctx() -> usize {
    8192
}
fn default_act() -> String {
    "silu".into()
}

fn first_id(v: &Option<Value>) -> Option<u32> {
    match v {
        Some(Value::Number(n)) => n.as_u64().map(|x| x as u32),
        Some(Value::Array(a)) => a.first().and_then(Value::as_u64).map(|x| x as u32),
        _ => None,
    }
}

impl LlamaConfig {
    /// Reads and checks `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let cfg: LlamaConfig = crate::config::read_json(path, "Llama/Qwen config")?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// The family member, from `model_type`.
    pub fn variant(&self, path: &Path) -> Result<LlamaVariant> {
        match self.model_type.as_str() {
            "llama" => Ok(LlamaVariant::Llama),
            "qwen2" => Ok(LlamaVariant::Qwen2),
            "qwen3" => Ok(LlamaVariant::Qwen3),
            other => Err(ModelError::Config {
                path: path.to_path_buf(),
                message: format!("model_type `{other}` is not llama, qwen2 or qwen3"),
            }),
        }
    }

    /// Checks every size, count and divisor the forward pass relies on, and refuses what is not
    /// implemented (MLP biases, Qwen's sliding window, activations other than SiLU, RoPE scaling
    /// types other than default/linear/llama3).
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
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps >= 0.0) {
            return Err(bad(format!("rms_norm_eps is {}", self.rms_norm_eps)));
        }
        if self.mlp_bias {
            return Err(bad("mlp_bias = true is not implemented".into()));
        }
        if self.use_sliding_window == Some(true) {
            return Err(bad("use_sliding_window = true is not implemented".into()));
        }
        if self.hidden_act != "silu" {
            return Err(bad(format!(
                "hidden_act `{}` (only silu is implemented)",
                self.hidden_act
            )));
        }
        self.rope(path)?;
        Ok(())
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

    /// RoPE base and scaling, from either config layout.
    pub fn rope(&self, path: &Path) -> Result<(f64, RopeScaling)> {
        let theta = self
            .rope_parameters
            .as_ref()
            .and_then(|p| p.get("rope_theta"))
            .and_then(Value::as_f64)
            .or(self.rope_theta)
            .unwrap_or(10_000.0);
        let scaling = match self.rope_parameters.as_ref().or(self.rope_scaling.as_ref()) {
            Some(v) if !v.is_null() => parse_rope_scaling(v, path)?,
            _ => RopeScaling::None,
        };
        Ok((theta, scaling))
    }

    /// BOS id, if the config has one.
    pub fn bos(&self) -> Option<u32> {
        first_id(&self.bos_token_id)
    }

    /// EOS id, if the config has one (the first of a list).
    pub fn eos(&self) -> Option<u32> {
        first_id(&self.eos_token_id)
    }
}

/// Checkpoint names → ours, for HF safetensors and GGUF, in one place. `{L}` is the layer.
pub const LLAMA_CHECKPOINT_TABLE: &[(&str, &str, &str)] = &[
    ("w_e", "model.embed_tokens.weight", "token_embd.weight"),
    ("w_u", "lm_head.weight", "output.weight"),
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
        "blocks.{L}.b_q",
        "model.layers.{L}.self_attn.q_proj.bias",
        "blk.{L}.attn_q.bias",
    ),
    (
        "blocks.{L}.b_k",
        "model.layers.{L}.self_attn.k_proj.bias",
        "blk.{L}.attn_k.bias",
    ),
    (
        "blocks.{L}.b_v",
        "model.layers.{L}.self_attn.v_proj.bias",
        "blk.{L}.attn_v.bias",
    ),
    (
        "blocks.{L}.b_o",
        "model.layers.{L}.self_attn.o_proj.bias",
        "blk.{L}.attn_output.bias",
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
    (
        "blocks.{L}.pre_mlp_norm",
        "model.layers.{L}.post_attention_layernorm.weight",
        "blk.{L}.ffn_norm.weight",
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

/// Undoes llama.cpp's q/k row permutation (`convert_hf_to_gguf.LlamaModel.permute`): within
/// each head, GGUF row `2j + i` is HF row `i·head_dim/2 + j`.
fn unpermute_rows(t: HostTensor, n_heads: usize) -> HostTensor {
    let rows = t.shape[0];
    let cols: usize = t.shape[1..].iter().product();
    let hd = rows / n_heads.max(1);
    let half = hd / 2;
    let mut out = vec![0f32; t.data.len()];
    for h in 0..n_heads {
        for j in 0..half {
            for i in 0..2 {
                let src = h * hd + 2 * j + i;
                let dst = h * hd + i * half + j;
                out[dst * cols..(dst + 1) * cols]
                    .copy_from_slice(&t.data[src * cols..(src + 1) * cols]);
            }
        }
    }
    HostTensor::new(t.shape, out)
}

/// A Llama / Qwen model.
#[derive(Debug, Clone)]
pub struct Llama {
    config: LlamaConfig,
    variant: LlamaVariant,
    decoder: Decoder,
}

impl Llama {
    /// Loads a model from a GGUF file of architecture `llama`, `qwen2` or `qwen3`, the weights
    /// held as `options` says (each tensor is dequantised to f32, then stored in
    /// `options.weight_dtype`); the config comes from the file's metadata.
    pub fn load_gguf_with(file: &GgufFile, options: &LoadOptions, device: &Device) -> Result<Self> {
        let arch = file.architecture().unwrap_or("").to_string();
        if !matches!(arch.as_str(), "llama" | "qwen2" | "qwen3") {
            return Err(ModelError::Config {
                path: file.path().to_path_buf(),
                message: format!("GGUF architecture `{arch}` is not llama, qwen2 or qwen3"),
            });
        }
        let u = |k: &str| file.arch_usize(k);
        let f = |k: &str| file.arch_f64(k);
        let vocab = match u("vocab_size") {
            Ok(v) => v,
            Err(_) => file
                .get("tokenizer.ggml.tokens")
                .and_then(|v| v.as_array())
                .map(<[_]>::len)
                .ok_or_else(|| ModelError::Config {
                    path: file.path().to_path_buf(),
                    message: format!(
                        "GGUF metadata lacks {arch}.vocab_size (or tokenizer.ggml.tokens)"
                    ),
                })?,
        };
        let n_heads = u("attention.head_count")?;
        let d = u("embedding_length")?;
        let head_dim = u("attention.key_length").unwrap_or(d / n_heads.max(1));
        let rope_scaling = match file
            .get(&format!("{arch}.rope.scaling.type"))
            .and_then(|v| v.as_str())
        {
            Some("linear") => Some(serde_json::json!({
                "rope_type": "linear",
                "factor": f("rope.scaling.factor").unwrap_or(1.0),
            })),
            Some("none") | None => None,
            Some(other) => Some(serde_json::json!({ "rope_type": other })),
        };
        let config = LlamaConfig {
            model_type: arch.clone(),
            vocab_size: vocab,
            hidden_size: d,
            intermediate_size: u("feed_forward_length")?,
            num_hidden_layers: u("block_count")?,
            num_attention_heads: n_heads,
            num_key_value_heads: Some(u("attention.head_count_kv").unwrap_or(n_heads)),
            head_dim: Some(head_dim),
            rms_norm_eps: f("attention.layer_norm_rms_epsilon").unwrap_or(1e-6),
            rope_theta: Some(f("rope.freq_base").unwrap_or(10_000.0)),
            rope_scaling,
            rope_parameters: None,
            tie_word_embeddings: file.tensor_info("output.weight").is_err(),
            attention_bias: file.tensor_info("blk.0.attn_output.bias").is_ok(),
            mlp_bias: false,
            hidden_act: "silu".into(),
            use_sliding_window: None,
            max_position_embeddings: u("context_length").unwrap_or(8192),
            bos_token_id: file
                .get("tokenizer.ggml.bos_token_id")
                .and_then(|v| v.as_u64())
                .map(Value::from),
            eos_token_id: file
                .get("tokenizer.ggml.eos_token_id")
                .and_then(|v| v.as_u64())
                .map(Value::from),
        };
        Self::build(config, WeightSource::Gguf(file), options, device)
    }

    fn build(
        config: LlamaConfig,
        mut src: WeightSource<'_>,
        options: &LoadOptions,
        device: &Device,
    ) -> Result<Self> {
        let path = src.path();
        config.validate(&path)?;
        let variant = config.variant(&path)?;
        let (theta, scaling) = config.rope(&path)?;
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
        let table: &CheckpointTable = LLAMA_CHECKPOINT_TABLE;
        // llama.cpp permutes q/k rows of `llama` GGUFs for its interleaved RoPE.
        let permuted = src.is_gguf() && variant == LlamaVariant::Llama;
        let p2 = |t: HostTensor| matrix_param(t, options.weight_dtype, device);
        let p1 = |t: HostTensor| vector_param(t, device);
        let norm = |t: HostTensor| NormScale { scale: p1(t) };
        let qk = |t: HostTensor, heads: usize| {
            if permuted {
                unpermute_rows(t, heads)
            } else {
                t
            }
        };
        let w_e = Param::from_tensor(src.take_stored(
            table,
            "w_e",
            [v, d],
            options.weight_dtype,
            device,
        )?);
        // Some tied checkpoints still carry lm_head; a GGUF without `output.weight` is tied.
        let w_u = if config.tie_word_embeddings {
            None
        } else {
            Some(Param::from_tensor(src.take_stored(
                table,
                "w_u",
                [v, d],
                options.weight_dtype,
                device,
            )?))
        };
        let qkv_bias = variant == LlamaVariant::Qwen2 || config.attention_bias;
        let o_bias = variant != LlamaVariant::Qwen2 && config.attention_bias;
        let mut blocks = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            let mut take = |ours: &str, shape: &[usize]| src.take(table, ours, l, shape);
            let input_norm = norm(take("blocks.{L}.input_norm", &[d])?);
            let w_q = p2(qk(take("blocks.{L}.w_q", &[h * hd, d])?, h));
            let w_k = p2(qk(take("blocks.{L}.w_k", &[kvh * hd, d])?, kvh));
            let w_v = p2(take("blocks.{L}.w_v", &[kvh * hd, d])?);
            let w_o = p2(take("blocks.{L}.w_o", &[d, h * hd])?);
            let (b_q, b_k, b_v) = if qkv_bias {
                (
                    Some(p1(qk(take("blocks.{L}.b_q", &[h * hd])?, h))),
                    Some(p1(qk(take("blocks.{L}.b_k", &[kvh * hd])?, kvh))),
                    Some(p1(take("blocks.{L}.b_v", &[kvh * hd])?)),
                )
            } else {
                (None, None, None)
            };
            let b_o = if o_bias {
                Some(p1(take("blocks.{L}.b_o", &[d])?))
            } else {
                None
            };
            let (q_norm, k_norm) = if variant == LlamaVariant::Qwen3 {
                (
                    Some(norm(take("blocks.{L}.q_norm", &[hd])?)),
                    Some(norm(take("blocks.{L}.k_norm", &[hd])?)),
                )
            } else {
                (None, None)
            };
            blocks.push(DecoderBlock {
                input_norm,
                w_q,
                w_k,
                w_v,
                w_o,
                b_q,
                b_k,
                b_v,
                b_o,
                q_norm,
                k_norm,
                post_attn_norm: None,
                pre_mlp_norm: norm(take("blocks.{L}.pre_mlp_norm", &[d])?),
                post_mlp_norm: None,
                w_gate: p2(take("blocks.{L}.w_gate", &[dm, d])?),
                w_up: p2(take("blocks.{L}.w_up", &[dm, d])?),
                w_down: p2(take("blocks.{L}.w_down", &[d, dm])?),
            });
        }
        let final_norm = norm(src.take(table, "final_norm", 0, &[d])?);
        let layer = LayerAttention {
            sliding: false,
            rope_theta: theta,
            rope_scaling: scaling,
        };
        let spec = DecoderSpec {
            vocab_size: v,
            d_model: d,
            d_mlp: dm,
            n_layers: config.num_hidden_layers,
            n_heads: h,
            n_kv_heads: kvh,
            head_dim: hd,
            eps: config.rms_norm_eps,
            embed_scale: None,
            activation: MlpActivation::Silu,
            attn_scale: (hd as f64).powf(-0.5),
            attn_softcap: None,
            final_softcap: None,
            sliding_window: None,
            layers: vec![layer; config.num_hidden_layers],
        };
        Ok(Self {
            config,
            variant,
            decoder: Decoder {
                spec,
                weights: DecoderWeights {
                    w_e,
                    w_u,
                    blocks,
                    final_norm,
                },
            },
        })
    }

    /// The resolved spec (sizes, RoPE per layer).
    pub fn spec(&self) -> &DecoderSpec {
        &self.decoder.spec
    }

    /// The directory's weight files, for callers that want to know what [`Llama::load`] reads.
    pub fn weight_files(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
        crate::config::safetensors_files(dir.as_ref())
    }
}

crate::decoder::language_model_via_decoder!(Llama, LlamaConfig, LlamaVariant);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // permute: reshape(n_head, 2, hd/2, cols).swapaxes(1, 2).reshape(...)
        let (n_heads, hd, cols) = (2, 4, 3);
        let hf: Vec<f32> = (0..n_heads * hd * cols).map(|v| v as f32).collect();
        let mut gguf = vec![0f32; hf.len()];
        for h in 0..n_heads {
            for i in 0..2 {
                for j in 0..hd / 2 {
                    let src = h * hd + i * (hd / 2) + j; // HF row
                    let dst = h * hd + j * 2 + i; // after swapaxes
                    gguf[dst * cols..(dst + 1) * cols]
                        .copy_from_slice(&hf[src * cols..(src + 1) * cols]);
                }
            }
        }
        let back = unpermute_rows(HostTensor::new(vec![n_heads * hd, cols], gguf), n_heads);
        assert_eq!(back.data, hf);
    }
}

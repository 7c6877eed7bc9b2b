//! BERT encoders (the transformer of sentence-transformers models such as all-MiniLM-L6-v2), on
//! burn: post-LayerNorm blocks, bidirectional attention with a padding mask, exact (erf) GELU.

use std::collections::BTreeMap;
use std::path::Path;

use sae_core::burn::module::{Module, Param};
use sae_core::burn::tensor::module;
use sae_core::burn::tensor::ops::AttentionModuleOptions;
use sae_core::burn::tensor::{Device, Tensor};
use sae_core::device::{bool_tensor_from_vec, int_tensor_from_vec};
use sae_core::gelu::gelu;
use sae_core::safetensors_io::HostTensor;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::gpt2::LayerNormParams;
use crate::ops::{Checkpoint, linear, p1, p2, transpose_host};

/// BERT's `config.json` (the fields the encoder needs; others are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// d_model.
    pub hidden_size: usize,
    /// Number of blocks.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Position embeddings (the longest input).
    pub max_position_embeddings: usize,
    /// Token-type embeddings.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// MLP activation: `gelu` (exact) is the one supported.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// `absolute` is the one supported.
    #[serde(default = "default_pos")]
    pub position_embedding_type: String,
    /// `model_type`, checked to be `bert`.
    #[serde(default)]
    pub model_type: Option<String>,
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}
fn default_pos() -> String {
    "absolute".into()
}

impl BertConfig {
    /// Parses `config.json` text (`path` names it in errors) and checks it describes an encoder
    /// this module runs.
    ///
    /// # Errors
    /// [`ModelError::Config`] when it does not parse, is not BERT, or uses another activation
    /// or position embedding.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let bad = |message: String| ModelError::Config {
            path: path.to_path_buf(),
            message,
        };
        let c: BertConfig = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if c.model_type.as_deref().is_some_and(|m| m != "bert") {
            return Err(bad(format!(
                "model_type {:?}, expected \"bert\"",
                c.model_type
            )));
        }
        if c.hidden_act != "gelu" {
            return Err(bad(format!(
                "hidden_act {:?}: only \"gelu\" is supported",
                c.hidden_act
            )));
        }
        if c.position_embedding_type != "absolute" {
            return Err(bad(format!(
                "position_embedding_type {:?}: only \"absolute\" is supported",
                c.position_embedding_type
            )));
        }
        if c.num_attention_heads == 0 || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            return Err(bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                c.hidden_size, c.num_attention_heads
            )));
        }
        Ok(c)
    }

    /// Width of one head.
    pub fn d_head(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// Which checkpoint names feed which of our tensors (the one place that maps them). `{L}` is the
/// block. Names may carry a `bert.` prefix (a head model's checkpoint). Linear weights are stored
/// `[out, in]` in the checkpoint and `[in, out]` here. `embeddings.position_ids` is a buffer and
/// `pooler.*` is BERT's classification pooler, which sentence embeddings do not use: both ignored.
pub const BERT_CHECKPOINT_TABLE: &[(&str, &str)] = &[
    ("word_embeddings", "embeddings.word_embeddings.weight"),
    (
        "position_embeddings",
        "embeddings.position_embeddings.weight",
    ),
    (
        "token_type_embeddings",
        "embeddings.token_type_embeddings.weight",
    ),
    ("embeddings_ln.w", "embeddings.LayerNorm.weight"),
    ("embeddings_ln.b", "embeddings.LayerNorm.bias"),
    (
        "blocks.{L}.w_q",
        "encoder.layer.{L}.attention.self.query.weight",
    ),
    (
        "blocks.{L}.b_q",
        "encoder.layer.{L}.attention.self.query.bias",
    ),
    (
        "blocks.{L}.w_k",
        "encoder.layer.{L}.attention.self.key.weight",
    ),
    (
        "blocks.{L}.b_k",
        "encoder.layer.{L}.attention.self.key.bias",
    ),
    (
        "blocks.{L}.w_v",
        "encoder.layer.{L}.attention.self.value.weight",
    ),
    (
        "blocks.{L}.b_v",
        "encoder.layer.{L}.attention.self.value.bias",
    ),
    (
        "blocks.{L}.w_o",
        "encoder.layer.{L}.attention.output.dense.weight",
    ),
    (
        "blocks.{L}.b_o",
        "encoder.layer.{L}.attention.output.dense.bias",
    ),
    (
        "blocks.{L}.ln_attn.w",
        "encoder.layer.{L}.attention.output.LayerNorm.weight",
    ),
    (
        "blocks.{L}.ln_attn.b",
        "encoder.layer.{L}.attention.output.LayerNorm.bias",
    ),
    (
        "blocks.{L}.w_in",
        "encoder.layer.{L}.intermediate.dense.weight",
    ),
    (
        "blocks.{L}.b_in",
        "encoder.layer.{L}.intermediate.dense.bias",
    ),
    ("blocks.{L}.w_out", "encoder.layer.{L}.output.dense.weight"),
    ("blocks.{L}.b_out", "encoder.layer.{L}.output.dense.bias"),
    (
        "blocks.{L}.ln_out.w",
        "encoder.layer.{L}.output.LayerNorm.weight",
    ),
    (
        "blocks.{L}.ln_out.b",
        "encoder.layer.{L}.output.LayerNorm.bias",
    ),
];

/// One encoder block (weights `[in, out]`).
#[derive(Module, Debug)]
pub struct BertBlock {
    /// Query weights.
    pub w_q: Param<Tensor<2>>,
    /// Query bias.
    pub b_q: Param<Tensor<1>>,
    /// Key weights.
    pub w_k: Param<Tensor<2>>,
    /// Key bias.
    pub b_k: Param<Tensor<1>>,
    /// Value weights.
    pub w_v: Param<Tensor<2>>,
    /// Value bias.
    pub b_v: Param<Tensor<1>>,
    /// Attention output weights.
    pub w_o: Param<Tensor<2>>,
    /// Attention output bias.
    pub b_o: Param<Tensor<1>>,
    /// LayerNorm after attention (post-norm).
    pub ln_attn: LayerNormParams,
    /// MLP input weights.
    pub w_in: Param<Tensor<2>>,
    /// MLP input bias.
    pub b_in: Param<Tensor<1>>,
    /// MLP output weights.
    pub w_out: Param<Tensor<2>>,
    /// MLP output bias.
    pub b_out: Param<Tensor<1>>,
    /// LayerNorm after the MLP.
    pub ln_out: LayerNormParams,
}

/// A BERT encoder's parameters.
#[derive(Module, Debug)]
pub struct BertWeights {
    /// `[vocab, d]`.
    pub word_embeddings: Param<Tensor<2>>,
    /// `[max_positions, d]`.
    pub position_embeddings: Param<Tensor<2>>,
    /// `[type_vocab, d]`.
    pub token_type_embeddings: Param<Tensor<2>>,
    /// LayerNorm of the summed embeddings.
    pub embeddings_ln: LayerNormParams,
    /// Blocks.
    pub blocks: Vec<BertBlock>,
}

/// Which checkpoint tensors a load used, skipped as known, or found unused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BertLoadReport {
    /// Used.
    pub applied: Vec<String>,
    /// Known and not needed (`position_ids`, `pooler.*`).
    pub ignored: Vec<String>,
    /// Nobody asked for them (logged as a warning).
    pub unused: Vec<String>,
}

/// A BERT encoder: config and weights.
#[derive(Debug, Clone)]
pub struct Bert {
    config: BertConfig,
    weights: BertWeights,
}

impl Bert {
    /// Builds the encoder from checkpoint tensors (HF names; `path` names the file in errors).
    ///
    /// # Errors
    /// [`ModelError::MissingTensor`] / [`ModelError::ShapeMismatch`] naming the tensor.
    pub fn from_checkpoint(
        config: BertConfig,
        tensors: BTreeMap<String, HostTensor>,
        path: &Path,
        device: &Device,
    ) -> Result<(Self, BertLoadReport)> {
        let c = &config;
        let (d, m) = (c.hidden_size, c.intermediate_size);
        let mut ck = Checkpoint::new(path, tensors, "bert.");
        // Our name → the checkpoint's, through the table only.
        let hf = |ours: &str, l: usize| -> String {
            BERT_CHECKPOINT_TABLE
                .iter()
                .find(|(o, _)| *o == ours)
                .map(|(_, h)| h.replace("{L}", &l.to_string()))
                .unwrap_or_else(|| ours.to_string())
        };
        let ln = |ck: &mut Checkpoint, ours: &str, l: usize| -> Result<LayerNormParams> {
            Ok(LayerNormParams {
                w: p1(ck.take(&hf(&format!("{ours}.w"), l), &[d])?, device),
                b: p1(ck.take(&hf(&format!("{ours}.b"), l), &[d])?, device),
            })
        };
        let word_embeddings = p2(
            ck.take(&hf("word_embeddings", 0), &[c.vocab_size, d])?,
            device,
        );
        let position_embeddings = p2(
            ck.take(
                &hf("position_embeddings", 0),
                &[c.max_position_embeddings, d],
            )?,
            device,
        );
        let token_type_embeddings = p2(
            ck.take(&hf("token_type_embeddings", 0), &[c.type_vocab_size, d])?,
            device,
        );
        let embeddings_ln = ln(&mut ck, "embeddings_ln", 0)?;
        let mut blocks = Vec::with_capacity(c.num_hidden_layers);
        for l in 0..c.num_hidden_layers {
            // A linear layer: `[out, in]` in the checkpoint, `[in, out]` here.
            let lin = |ck: &mut Checkpoint, w: &str, b: &str, d_in: usize, d_out: usize| {
                let w = ck.take(&hf(&format!("blocks.{{L}}.{w}"), l), &[d_out, d_in])?;
                let b = ck.take(&hf(&format!("blocks.{{L}}.{b}"), l), &[d_out])?;
                Ok::<_, ModelError>((p2(transpose_host(&w), device), p1(b, device)))
            };
            let (w_q, b_q) = lin(&mut ck, "w_q", "b_q", d, d)?;
            let (w_k, b_k) = lin(&mut ck, "w_k", "b_k", d, d)?;
            let (w_v, b_v) = lin(&mut ck, "w_v", "b_v", d, d)?;
            let (w_o, b_o) = lin(&mut ck, "w_o", "b_o", d, d)?;
            let ln_attn = ln(&mut ck, "blocks.{L}.ln_attn", l)?;
            let (w_in, b_in) = lin(&mut ck, "w_in", "b_in", d, m)?;
            let (w_out, b_out) = lin(&mut ck, "w_out", "b_out", m, d)?;
            let ln_out = ln(&mut ck, "blocks.{L}.ln_out", l)?;
            blocks.push(BertBlock {
                w_q,
                b_q,
                w_k,
                b_k,
                w_v,
                b_v,
                w_o,
                b_o,
                ln_attn,
                w_in,
                b_in,
                w_out,
                b_out,
                ln_out,
            });
        }
        let mut report = BertLoadReport {
            applied: std::mem::take(&mut ck.used),
            ..Default::default()
        };
        for k in std::mem::take(&mut ck.tensors).into_keys() {
            let base = k.strip_prefix("bert.").unwrap_or(&k);
            if base == "embeddings.position_ids" || base.starts_with("pooler.") {
                report.ignored.push(k);
            } else {
                report.unused.push(k);
            }
        }
        if !report.unused.is_empty() {
            tracing::warn!(unused = ?report.unused, "checkpoint tensors not used by BERT");
        }
        let weights = BertWeights {
            word_embeddings,
            position_embeddings,
            token_type_embeddings,
            embeddings_ln,
            blocks,
        };
        Ok((Self { config, weights }, report))
    }

    /// The config.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The device the weights are on.
    pub fn device(&self) -> Device {
        self.weights.word_embeddings.val().device()
    }

    /// The last hidden states of a batch of token-id rows padded to one length, token type 0.
    ///
    /// # Shapes
    /// - `ids`, `mask`: `[b, t]` row-major (`mask[i]` true for real tokens, false for padding)
    /// - returns `[b, t, d]`
    ///
    /// # Errors
    /// [`ModelError::InvalidInput`] when the rows are empty, longer than the position table, the
    /// buffers disagree, a row has no real token, or an id is outside the vocabulary.
    pub fn forward(&self, ids: &[u32], mask: &[bool], b: usize) -> Result<Tensor<3>> {
        let c = &self.config;
        let t = ids.len() / b.max(1);
        if b == 0 || t == 0 || ids.len() != b * t || mask.len() != ids.len() {
            return Err(ModelError::InvalidInput(format!(
                "BERT input: {} ids and {} mask values for {b} rows",
                ids.len(),
                mask.len()
            )));
        }
        if t > c.max_position_embeddings {
            return Err(ModelError::InvalidInput(format!(
                "BERT input of {t} tokens, the model has {} positions",
                c.max_position_embeddings
            )));
        }
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= c.vocab_size) {
            return Err(ModelError::InvalidInput(format!(
                "token id {bad} outside BERT's vocabulary of {}",
                c.vocab_size
            )));
        }
        if mask.chunks(t).any(|row| !row.iter().any(|m| *m)) {
            return Err(ModelError::InvalidInput(
                "a BERT input row has no real token (its mask is all padding)".into(),
            ));
        }
        let dev = self.device();
        let w = &self.weights;
        let d = c.hidden_size;
        let (h, dh) = (c.num_attention_heads, c.d_head());
        let tokens =
            int_tensor_from_vec(ids.iter().map(|&i| i64::from(i)).collect(), [b * t], &dev);
        let x = w.word_embeddings.val().select(0, tokens).reshape([b, t, d])
            + w.position_embeddings
                .val()
                .slice([0..t, 0..d])
                .unsqueeze::<3>()
            + w.token_type_embeddings
                .val()
                .slice([0..1, 0..d])
                .unsqueeze::<3>();
        let ln = |x: Tensor<3>, p: &LayerNormParams| {
            module::layer_norm(x, p.w.val(), Some(p.b.val()), c.layer_norm_eps)
        };
        let mut x = ln(x, &w.embeddings_ln);
        // Padding keys are masked out of every query's softmax.
        let pad = bool_tensor_from_vec(mask.iter().map(|m| !m).collect(), [b, t], &dev)
            .reshape([b, 1, 1, t])
            .expand([b, h, t, t]);
        for blk in &w.blocks {
            let heads = |y: Tensor<3>| y.reshape([b, t, h, dh]).swap_dims(1, 2);
            let q = heads(linear(x.clone(), &blk.w_q, &blk.b_q));
            let k = heads(linear(x.clone(), &blk.w_k, &blk.b_k));
            let v = heads(linear(x.clone(), &blk.w_v, &blk.b_v));
            // softmax(q·kᵀ/√d_head, padding masked)·v in one op (fused on the CPU backend).
            let z = module::attention(
                q,
                k,
                v,
                Some(pad.clone()),
                None,
                AttentionModuleOptions::default(),
            )
            .swap_dims(1, 2)
            .reshape([b, t, d]);
            let attn = linear(z, &blk.w_o, &blk.b_o);
            let y = ln(attn + x, &blk.ln_attn);
            let mlp = linear(
                gelu(linear(y.clone(), &blk.w_in, &blk.b_in)),
                &blk.w_out,
                &blk.b_out,
            );
            x = ln(mlp + y, &blk.ln_out);
        }
        Ok(x)
    }
}

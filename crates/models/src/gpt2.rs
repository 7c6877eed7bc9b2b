//! GPT-2 on burn, in TransformerLens's weight layout, with hook points, TransformerLens's weight
//! processing as an explicit option, and a KV cache.

use std::collections::BTreeMap;
use std::path::Path;

use sae_core::burn::module::{Module, Param};
use sae_core::burn::tensor::activation::softmax;
use sae_core::burn::tensor::{Bool, Device, Int, Tensor};
use sae_core::safetensors_io::{HostTensor, SafetensorsFile};

use crate::config::Gpt2Config;
use crate::error::{ModelError, Result};
use crate::hook::HookPoint;
use crate::hooks::{Hooks, LogitRows, Pass};
use crate::kv::KvCache;
use crate::model::LanguageModel;
use crate::ops::transpose_host as transpose;
use crate::ops::{Checkpoint, linear, p1, p2};
use sae_core::gelu::gelu_tanh;

/// Which weights the model runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Processing {
    /// TransformerLens's `from_pretrained` default: `fold_ln`, `center_writing_weights`,
    /// `center_unembed`, `fold_value_biases`. The residual stream has zero mean over d_model at
    /// every position and logits have zero mean over the vocabulary. SAEs such as
    /// `gpt2-small-res-jb` were trained in this space.
    #[default]
    TransformerLens,
    /// The checkpoint as it is (TransformerLens's `from_pretrained_no_processing`, and
    /// transformers' hidden states).
    None,
}

/// How a prompt starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BosPolicy {
    /// Prepend BOS, as TransformerLens does by default.
    #[default]
    Prepend,
    /// Leave the tokens as they are, as transformers does.
    Keep,
}

/// LayerNorm weights (absent once folded).
#[derive(Module, Debug)]
pub struct LayerNormParams {
    /// Scale.
    pub w: Param<Tensor<1>>,
    /// Shift.
    pub b: Param<Tensor<1>>,
}

/// One transformer block in TransformerLens's layout (`W_Q` is `[d_model, n_heads·d_head]`).
#[derive(Module, Debug)]
pub struct Gpt2Block {
    /// `ln_1`; `None` once folded (TransformerLens's `LNPre`).
    pub ln1: Option<LayerNormParams>,
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
    /// Output weights, `[n_heads·d_head, d_model]`.
    pub w_o: Param<Tensor<2>>,
    /// Output bias.
    pub b_o: Param<Tensor<1>>,
    /// `ln_2`; `None` once folded.
    pub ln2: Option<LayerNormParams>,
    /// MLP input weights, `[d_model, d_mlp]`.
    pub w_in: Param<Tensor<2>>,
    /// MLP input bias.
    pub b_in: Param<Tensor<1>>,
    /// MLP output weights, `[d_mlp, d_model]`.
    pub w_out: Param<Tensor<2>>,
    /// MLP output bias.
    pub b_out: Param<Tensor<1>>,
}

/// GPT-2's parameters.
#[derive(Module, Debug)]
pub struct Gpt2Weights {
    /// Token embeddings, `[vocab, d_model]`.
    pub w_e: Param<Tensor<2>>,
    /// Positional embeddings, `[n_ctx, d_model]`.
    pub w_pos: Param<Tensor<2>>,
    /// Blocks.
    pub blocks: Vec<Gpt2Block>,
    /// `ln_f`; `None` once folded.
    pub ln_f: Option<LayerNormParams>,
    /// Unembedding, `[d_model, vocab]` (tied to `w_e` in the checkpoint).
    pub w_u: Param<Tensor<2>>,
    /// Unembedding bias (zero in the checkpoint; non-zero once `ln_f` is folded).
    pub b_u: Param<Tensor<1>>,
}

/// GPT-2: config, processing mode, weights.
#[derive(Debug, Clone)]
pub struct Gpt2 {
    config: Gpt2Config,
    processing: Processing,
    weights: Gpt2Weights,
}

/// Which checkpoint names feed which of our tensors (the one place that maps them). Each name may
/// appear with a `transformer.` prefix (what `save_pretrained` writes) or without it (the hub
/// file). `h.N.attn.bias` / `h.N.attn.masked_bias` are mask buffers and `lm_head.weight` is tied to
/// `wte.weight`: all three are ignored.
pub const GPT2_CHECKPOINT_TABLE: &[(&str, &str)] = &[
    ("w_e", "wte.weight"),
    ("w_pos", "wpe.weight"),
    ("blocks.{L}.ln1.w", "h.{L}.ln_1.weight"),
    ("blocks.{L}.ln1.b", "h.{L}.ln_1.bias"),
    (
        "blocks.{L}.w_qkv (Conv1D [in, out], q|k|v)",
        "h.{L}.attn.c_attn.weight",
    ),
    ("blocks.{L}.b_qkv", "h.{L}.attn.c_attn.bias"),
    (
        "blocks.{L}.w_o (Conv1D [in, out])",
        "h.{L}.attn.c_proj.weight",
    ),
    ("blocks.{L}.b_o", "h.{L}.attn.c_proj.bias"),
    ("blocks.{L}.ln2.w", "h.{L}.ln_2.weight"),
    ("blocks.{L}.ln2.b", "h.{L}.ln_2.bias"),
    ("blocks.{L}.w_in", "h.{L}.mlp.c_fc.weight"),
    ("blocks.{L}.b_in", "h.{L}.mlp.c_fc.bias"),
    ("blocks.{L}.w_out", "h.{L}.mlp.c_proj.weight"),
    ("blocks.{L}.b_out", "h.{L}.mlp.c_proj.bias"),
    ("ln_f.w", "ln_f.weight"),
    ("ln_f.b", "ln_f.bias"),
];

/// What loading did with the checkpoint's tensors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gpt2LoadReport {
    /// Checkpoint tensors used.
    pub applied: Vec<String>,
    /// Known buffers and tied weights skipped (`attn.bias`, `attn.masked_bias`, `lm_head.weight`).
    pub ignored: Vec<String>,
    /// Tensors nobody asked for (logged as a warning).
    pub unused: Vec<String>,
}

/// Columns `[start, start + width)` of a row-major `[rows, cols]` matrix.
fn columns(t: &HostTensor, start: usize, width: usize) -> HostTensor {
    let (rows, cols) = (t.shape[0], t.shape[1]);
    let mut data = Vec::with_capacity(rows * width);
    for r in 0..rows {
        data.extend_from_slice(&t.data[r * cols + start..r * cols + start + width]);
    }
    HostTensor::new(vec![rows, width], data)
}

/// TransformerLens's LayerNorm: centre, divide by √(mean(x²) + eps), then the affine weights if
/// any. Returns (normalized before the weights, output).
pub(crate) fn layer_norm(
    x: Tensor<3>,
    ln: Option<&LayerNormParams>,
    eps: f64,
) -> (Tensor<3>, Tensor<3>) {
    let x = x.clone() - x.mean_dim(2);
    let scale = ((x.clone() * x.clone()).mean_dim(2).add_scalar(eps)).sqrt();
    let normalized = x / scale;
    let out = match ln {
        Some(ln) => normalized.clone() * ln.w.val().unsqueeze::<3>() + ln.b.val().unsqueeze::<3>(),
        None => normalized.clone(),
    };
    (normalized, out)
}

impl Gpt2 {
    /// Loads GPT-2 from a directory holding `config.json` and `model.safetensors`.
    pub fn load(dir: impl AsRef<Path>, processing: Processing, device: &Device) -> Result<Self> {
        Self::load_with_report(dir, processing, device).map(|(m, _)| m)
    }

    /// [`Gpt2::load`], also reporting applied, ignored and unused checkpoint tensors.
    pub fn load_with_report(
        dir: impl AsRef<Path>,
        processing: Processing,
        device: &Device,
    ) -> Result<(Self, Gpt2LoadReport)> {
        let dir = dir.as_ref();
        let config = Gpt2Config::from_file(dir.join("config.json"))?;
        let path = dir.join("model.safetensors");
        let tensors = SafetensorsFile::open(&path)?.read_all()?;
        Self::from_checkpoint(config, tensors, &path, processing, device)
    }

    /// Builds the model from checkpoint tensors (HF names).
    pub fn from_checkpoint(
        config: Gpt2Config,
        tensors: BTreeMap<String, HostTensor>,
        path: &Path,
        processing: Processing,
        device: &Device,
    ) -> Result<(Self, Gpt2LoadReport)> {
        let (d, v, n_ctx, d_mlp) = (
            config.n_embd,
            config.vocab_size,
            config.n_positions,
            config.d_mlp(),
        );
        let mut ck = Checkpoint::new(path, tensors, "transformer.");
        let w_e_host = ck.take("wte.weight", &[v, d])?;
        let w_u_host = transpose(&w_e_host);
        let w_e = p2(w_e_host, device);
        let w_pos = p2(ck.take("wpe.weight", &[n_ctx, d])?, device);
        let mut blocks = Vec::with_capacity(config.n_layer);
        for l in 0..config.n_layer {
            let n = |s: &str| format!("h.{l}.{s}");
            let ln1 = LayerNormParams {
                w: p1(ck.take(&n("ln_1.weight"), &[d])?, device),
                b: p1(ck.take(&n("ln_1.bias"), &[d])?, device),
            };
            let c_attn = ck.take(&n("attn.c_attn.weight"), &[d, 3 * d])?;
            let c_attn_b = ck.take(&n("attn.c_attn.bias"), &[3 * d])?;
            let bias =
                |i: usize| HostTensor::new(vec![d], c_attn_b.data[i * d..(i + 1) * d].to_vec());
            let ln2 = LayerNormParams {
                w: p1(ck.take(&n("ln_2.weight"), &[d])?, device),
                b: p1(ck.take(&n("ln_2.bias"), &[d])?, device),
            };
            blocks.push(Gpt2Block {
                ln1: Some(ln1),
                w_q: p2(columns(&c_attn, 0, d), device),
                b_q: p1(bias(0), device),
                w_k: p2(columns(&c_attn, d, d), device),
                b_k: p1(bias(1), device),
                w_v: p2(columns(&c_attn, 2 * d, d), device),
                b_v: p1(bias(2), device),
                w_o: p2(ck.take(&n("attn.c_proj.weight"), &[d, d])?, device),
                b_o: p1(ck.take(&n("attn.c_proj.bias"), &[d])?, device),
                ln2: Some(ln2),
                w_in: p2(ck.take(&n("mlp.c_fc.weight"), &[d, d_mlp])?, device),
                b_in: p1(ck.take(&n("mlp.c_fc.bias"), &[d_mlp])?, device),
                w_out: p2(ck.take(&n("mlp.c_proj.weight"), &[d_mlp, d])?, device),
                b_out: p1(ck.take(&n("mlp.c_proj.bias"), &[d])?, device),
            });
        }
        let ln_f = LayerNormParams {
            w: p1(ck.take("ln_f.weight", &[d])?, device),
            b: p1(ck.take("ln_f.bias", &[d])?, device),
        };
        let mut report = Gpt2LoadReport {
            applied: ck.used,
            ..Default::default()
        };
        for k in ck.tensors.into_keys() {
            let base = k.strip_prefix("transformer.").unwrap_or(&k);
            if base.ends_with(".attn.bias")
                || base.ends_with(".attn.masked_bias")
                || base == "lm_head.weight"
            {
                report.ignored.push(k);
            } else {
                report.unused.push(k);
            }
        }
        if !report.unused.is_empty() {
            tracing::warn!(unused = ?report.unused, "checkpoint tensors not used by GPT-2");
        }
        let weights = Gpt2Weights {
            w_e,
            w_pos,
            blocks,
            ln_f: Some(ln_f),
            w_u: p2(w_u_host, device),
            b_u: Param::from_tensor(Tensor::zeros([v], device)),
        };
        let mut model = Self {
            config,
            processing: Processing::None,
            weights,
        };
        if processing == Processing::TransformerLens {
            model.process_transformer_lens();
        }
        Ok((model, report))
    }

    /// The config.
    pub fn config(&self) -> &Gpt2Config {
        &self.config
    }

    /// The processing the weights went through.
    pub fn processing(&self) -> Processing {
        self.processing
    }

    /// The weights.
    pub fn weights(&self) -> &Gpt2Weights {
        &self.weights
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.weights.w_e.val().device()
    }

    /// The unembedding, `[d_model, vocab]`.
    pub fn w_u(&self) -> Tensor<2> {
        self.weights.w_u.val()
    }

    /// TransformerLens's `fold_ln`, `center_writing_weights`, `center_unembed` and
    /// `fold_value_biases`, in that order.
    fn process_transformer_lens(&mut self) {
        let w = &mut self.weights;
        let centre_rows = |m: Tensor<2>| m.clone() - m.mean_dim(0); // mean over the input dim
        let centre_cols = |m: Tensor<2>| m.clone() - m.mean_dim(1); // mean over the output dim
        let centre_vec = |v: Tensor<1>| v.clone() - v.mean();
        let fold = |ln: &LayerNormParams, wm: &Param<Tensor<2>>, bv: &Param<Tensor<1>>| {
            let lw = ln.w.val().unsqueeze_dim::<2>(1);
            let lb = ln.b.val().unsqueeze::<2>();
            let b = bv.val() + lb.matmul(wm.val()).squeeze_dim::<1>(0);
            let wm = centre_rows(wm.val() * lw);
            (Param::from_tensor(wm), Param::from_tensor(b))
        };
        for blk in w.blocks.iter_mut() {
            if let Some(ln) = blk.ln1.take() {
                (blk.w_q, blk.b_q) = fold(&ln, &blk.w_q, &blk.b_q);
                (blk.w_k, blk.b_k) = fold(&ln, &blk.w_k, &blk.b_k);
                (blk.w_v, blk.b_v) = fold(&ln, &blk.w_v, &blk.b_v);
            }
            if let Some(ln) = blk.ln2.take() {
                (blk.w_in, blk.b_in) = fold(&ln, &blk.w_in, &blk.b_in);
            }
        }
        if let Some(ln) = w.ln_f.take() {
            (w.w_u, w.b_u) = fold(&ln, &w.w_u, &w.b_u);
        }
        // center_writing_weights: everything that writes to the residual stream has zero mean over
        // d_model.
        w.w_e = Param::from_tensor(centre_cols(w.w_e.val()));
        w.w_pos = Param::from_tensor(centre_cols(w.w_pos.val()));
        for blk in w.blocks.iter_mut() {
            blk.w_o = Param::from_tensor(centre_cols(blk.w_o.val()));
            blk.b_o = Param::from_tensor(centre_vec(blk.b_o.val()));
            blk.w_out = Param::from_tensor(centre_cols(blk.w_out.val()));
            blk.b_out = Param::from_tensor(centre_vec(blk.b_out.val()));
        }
        // center_unembed: logits have zero mean over the vocabulary.
        w.w_u = Param::from_tensor(centre_cols(w.w_u.val()));
        w.b_u = Param::from_tensor(centre_vec(w.b_u.val()));
        // fold_value_biases: b_O += b_V·W_O, b_V = 0 (the pattern rows sum to one).
        for blk in w.blocks.iter_mut() {
            let bv = blk.b_v.val().unsqueeze::<2>();
            let shift = bv.matmul(blk.w_o.val()).squeeze_dim::<1>(0);
            blk.b_o = Param::from_tensor(blk.b_o.val() + shift);
            blk.b_v = Param::from_tensor(blk.b_v.val().zeros_like());
        }
        self.processing = Processing::TransformerLens;
    }

    /// Checks token ids and lengths.
    fn check_tokens(&self, tokens: &Tensor<2, Int>, past: usize) -> Result<()> {
        let [b, t] = tokens.dims();
        if b == 0 || t == 0 {
            return Err(ModelError::InvalidInput(format!(
                "empty token batch [{b}, {t}]"
            )));
        }
        if past + t > self.config.n_positions {
            return Err(ModelError::InvalidInput(format!(
                "{} positions exceed the context length {}",
                past + t,
                self.config.n_positions
            )));
        }
        let max = tokens.clone().max().into_scalar_i64()?;
        let min = tokens.clone().min().into_scalar_i64()?;
        if min < 0 || max as usize >= self.config.vocab_size {
            return Err(ModelError::InvalidInput(format!(
                "token ids must lie in [0, {}), found [{min}, {max}]",
                self.config.vocab_size
            )));
        }
        Ok(())
    }

    /// The forward pass with hooks. Blocks from `stop_at_layer` on are not computed (and their
    /// hooks never fire); with any `stop_at_layer` (even `n_layers`, as in TransformerLens) the
    /// final norm and unembedding are skipped and no logits are returned.
    ///
    /// # Shapes
    /// - `tokens`: `[batch, pos]` → logits `[batch, pos, vocab]`.
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
    fn run_rows(
        &self,
        tokens: Tensor<2, Int>,
        hooks: &mut Hooks<'_>,
        stop_at_layer: Option<usize>,
        mut kv: Option<&mut KvCache>,
        pass: Pass,
        rows: LogitRows,
    ) -> Result<Option<Tensor<3>>> {
        let past = kv.as_ref().map_or(0, |c| c.len());
        self.check_tokens(&tokens, past)?;
        let cfg = &self.config;
        let w = &self.weights;
        let [b, t] = tokens.dims();
        let d = cfg.n_embd;
        let dev = self.device();
        let embed = w
            .w_e
            .val()
            .select(0, tokens.reshape([b * t]))
            .reshape([b, t, d]);
        let embed = hooks.apply3(HookPoint::Embed, pass, embed);
        let pos = w
            .w_pos
            .val()
            .narrow(0, past, t)
            .unsqueeze::<3>()
            .expand([b, t, d]);
        let pos = hooks.apply3(HookPoint::PosEmbed, pass, pos);
        let mut resid = embed + pos;
        let stop = stop_at_layer.unwrap_or(cfg.n_layer).min(cfg.n_layer);
        if let Some(c) = kv.as_deref_mut()
            && c.layers.len() < cfg.n_layer
        {
            c.layers.resize(cfg.n_layer, None);
        }
        let mask = causal_mask(t, past, &dev);
        for l in 0..stop {
            let blk = &w.blocks[l];
            resid = hooks.apply3(HookPoint::ResidPre(l), pass, resid);
            let (_, x) = layer_norm(resid.clone(), blk.ln1.as_ref(), cfg.layer_norm_epsilon);
            let layer_kv = kv.as_deref_mut().map(|c| &mut c.layers[l]);
            let attn = self.attention(l, blk, x, hooks, pass, layer_kv, &mask);
            let attn = hooks.apply3(HookPoint::AttnOut(l), pass, attn);
            resid = hooks.apply3(HookPoint::ResidMid(l), pass, resid + attn);
            let (_, x) = layer_norm(resid.clone(), blk.ln2.as_ref(), cfg.layer_norm_epsilon);
            let pre = hooks.apply3(HookPoint::MlpPre(l), pass, linear(x, &blk.w_in, &blk.b_in));
            let post = hooks.apply3(HookPoint::MlpPost(l), pass, gelu_tanh(pre));
            let out = hooks.apply3(
                HookPoint::MlpOut(l),
                pass,
                linear(post, &blk.w_out, &blk.b_out),
            );
            resid = hooks.apply3(HookPoint::ResidPost(l), pass, resid + out);
        }
        if let Some(e) = hooks.take_error() {
            return Err(e);
        }
        // As TransformerLens: any explicit stop returns before the final norm and unembedding,
        // even when it equals the number of layers.
        if stop_at_layer.is_some() {
            return Ok(None);
        }
        let (normalized, out) = layer_norm(resid, w.ln_f.as_ref(), cfg.layer_norm_epsilon);
        let normalized = hooks.apply3(HookPoint::LnFinalNormalized, pass, normalized);
        let out = if w.ln_f.is_some() { out } else { normalized };
        let logits = linear(rows.select(out), &w.w_u, &w.b_u);
        if let Some(e) = hooks.take_error() {
            return Err(e);
        }
        Ok(Some(logits))
    }

    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        l: usize,
        blk: &Gpt2Block,
        x: Tensor<3>,
        hooks: &mut Hooks<'_>,
        pass: Pass,
        kv: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
        mask: &Tensor<2, Bool>,
    ) -> Tensor<3> {
        let cfg = &self.config;
        let [b, t, d] = x.dims();
        let (h, dh) = (cfg.n_head, cfg.d_head());
        let q = linear(x.clone(), &blk.w_q, &blk.b_q).reshape([b, t, h, dh]);
        let k = linear(x.clone(), &blk.w_k, &blk.b_k).reshape([b, t, h, dh]);
        let v = linear(x, &blk.w_v, &blk.b_v).reshape([b, t, h, dh]);
        let q = hooks.apply4(HookPoint::AttnQ(l), pass, q);
        let k = hooks.apply4(HookPoint::AttnK(l), pass, k);
        let v = hooks.apply4(HookPoint::AttnV(l), pass, v);
        let (k, v) = crate::kv::append(kv, k, v);
        let total = k.dims()[1];
        let qh = q.swap_dims(1, 2);
        let kh = k.swap_dims(1, 2);
        let vh = v.swap_dims(1, 2);
        let scores = qh.matmul(kh.swap_dims(2, 3)).div_scalar((dh as f64).sqrt());
        let scores = scores.mask_fill(
            mask.clone().unsqueeze::<4>().expand([b, h, t, total]),
            f32::NEG_INFINITY,
        );
        let scores = hooks.apply4(HookPoint::AttnScores(l), pass, scores);
        let pattern = hooks.apply4(HookPoint::AttnPattern(l), pass, softmax(scores, 3));
        let z = pattern.matmul(vh).swap_dims(1, 2);
        let z = hooks.apply4(HookPoint::AttnZ(l), pass, z);
        linear(z.reshape([b, t, d]), &blk.w_o, &blk.b_o)
    }
}

/// `mask[i, j]` is true where query `past + i` may not see key `j`.
fn causal_mask(t: usize, past: usize, dev: &Device) -> Tensor<2, Bool> {
    let total = past + t;
    let data: Vec<bool> = (0..t)
        .flat_map(|i| (0..total).map(move |j| j > past + i))
        .collect();
    sae_core::device::bool_tensor_from_vec(data, [t, total], dev)
}

trait ScalarI64 {
    fn into_scalar_i64(self) -> Result<i64>;
}

impl ScalarI64 for Tensor<1, Int> {
    fn into_scalar_i64(self) -> Result<i64> {
        let v = sae_core::device::int_tensor_to_vec(self)?;
        v.first()
            .copied()
            .ok_or_else(|| ModelError::InvalidInput("empty tensor".into()))
    }
}

impl LanguageModel for Gpt2 {
    fn run(
        &self,
        tokens: Tensor<2, Int>,
        hooks: &mut Hooks<'_>,
        stop_at_layer: Option<usize>,
        kv: Option<&mut KvCache>,
        pass: Pass,
    ) -> Result<Option<Tensor<3>>> {
        Gpt2::run(self, tokens, hooks, stop_at_layer, kv, pass)
    }

    fn run_last(
        &self,
        tokens: Tensor<2, Int>,
        hooks: &mut Hooks<'_>,
        kv: Option<&mut KvCache>,
        pass: Pass,
    ) -> Result<Tensor<2>> {
        crate::hooks::last_logits(self.run_rows(tokens, hooks, None, kv, pass, LogitRows::Last)?)
    }

    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    fn n_layers(&self) -> usize {
        self.config.n_layer
    }

    fn d_model(&self) -> usize {
        self.config.n_embd
    }

    fn device(&self) -> Device {
        Gpt2::device(self)
    }

    fn unembed(&self) -> Tensor<2> {
        self.w_u()
    }
}

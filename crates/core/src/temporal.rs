//! Temporal SAEs (SAELens's `TemporalSAE`, arXiv 2511.01836): each activation x_t is split into
//! a part predicted from the earlier positions by causal attention over the SAE's own codes, and
//! a sparse code of the novel remainder. Unlike [`crate::Sae`], encoding reads a whole sequence,
//! so the API takes `[batch, positions, d_in]`.
//!
//! Semantics follow SAELens 6's `temporal_sae.py` step for step: the input is scaled by
//! `activation_normalization_factor` (`constant_scalar_rescale`) and shifted by b_dec; each
//! attention layer reads ReLU(λ·x_res·W_enc) (λ = 1/(4·d_in)) of the previous positions (keys and
//! values) and of the current one (queries), its ReLU'd output is decoded, projected onto the
//! residual and removed from it; the novel code is ReLU(λ·x_res·W_enc), top-k when
//! `sae_diff_type` is `topk`. `forward` decodes novel + predicted codes; `decode` only the codes
//! it is given (SAELens warns that this misses the predicted part).

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, Param};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, IndexingUpdateOp, Tensor};
use serde_json::{Map, Value};

use crate::config::SaeMetadata;
use crate::device::{bool_tensor_from_vec, tensor_from_vec};
use crate::error::{Result, SaeError};
use crate::safetensors_io::HostTensor;

/// How the novel code is sparsified (`sae_diff_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TemporalSparsity {
    /// `relu`: the ReLU code as it is.
    Relu,
    /// `topk`: the `kval_topk` largest ReLU values of each position.
    TopK,
}

/// A temporal SAE's configuration (SAELens's `TemporalSAEConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct TemporalConfig {
    /// Input width.
    pub d_in: usize,
    /// Number of latents.
    pub d_sae: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Attention layers.
    pub n_attn_layers: usize,
    /// Query/key width is d_sae / bottleneck_factor.
    pub bottleneck_factor: usize,
    /// How the novel code is sparsified.
    pub sparsity: TemporalSparsity,
    /// k of the top-k (none: no top-k even when `sparsity` is `TopK`, as SAELens).
    pub kval_topk: Option<usize>,
    /// W_enc = W_decᵀ.
    pub tied_weights: bool,
    /// The input is multiplied by this (`constant_scalar_rescale`; 1 for `none`).
    pub activation_normalization_factor: f64,
    /// Whether b_dec is subtracted from the scaled input.
    pub apply_b_dec_to_input: bool,
    /// Where the SAE was trained.
    pub metadata: SaeMetadata,
}

impl TemporalConfig {
    /// From the config dict SAELens's `temporal` converter builds (after overrides); `path` names
    /// it in errors.
    pub fn from_json(cfg: &Map<String, Value>, path: &Path) -> Result<Self> {
        let invalid = |field: &'static str, expected: &str, found: Option<&Value>| {
            SaeError::InvalidConfigField {
                path: path.to_path_buf(),
                field,
                expected: expected.into(),
                found: found.map_or("nothing".into(), Value::to_string),
            }
        };
        let pos = |field: &'static str| -> Result<usize> {
            cfg.get(field)
                .and_then(Value::as_u64)
                .filter(|v| *v > 0)
                .map(|v| v as usize)
                .ok_or_else(|| invalid(field, "a positive integer", cfg.get(field)))
        };
        let (d_in, d_sae) = (pos("d_in")?, pos("d_sae")?);
        let (n_heads, bf) = (pos("n_heads")?, pos("bottleneck_factor")?);
        if !d_sae.is_multiple_of(bf * n_heads) {
            return Err(invalid(
                "bottleneck_factor",
                &format!("a divisor of d_sae / n_heads = {d_sae} / {n_heads}"),
                cfg.get("bottleneck_factor"),
            ));
        }
        let sparsity = match cfg.get("sae_diff_type").and_then(Value::as_str) {
            Some("relu") => TemporalSparsity::Relu,
            Some("topk") | None => TemporalSparsity::TopK,
            _ => {
                return Err(invalid(
                    "sae_diff_type",
                    "relu or topk",
                    cfg.get("sae_diff_type"),
                ));
            }
        };
        let kval_topk = cfg
            .get("kval_topk")
            .and_then(Value::as_u64)
            .map(|k| k as usize)
            .filter(|k| *k > 0);
        if kval_topk.is_some_and(|k| k > d_sae) {
            return Err(invalid("kval_topk", "at most d_sae", cfg.get("kval_topk")));
        }
        let factor = match cfg.get("normalize_activations").and_then(Value::as_str) {
            Some("constant_scalar_rescale") => cfg
                .get("activation_normalization_factor")
                .and_then(Value::as_f64)
                .filter(|f| f.is_finite() && *f != 0.0)
                .ok_or_else(|| {
                    invalid(
                        "activation_normalization_factor",
                        "a finite non-zero number",
                        cfg.get("activation_normalization_factor"),
                    )
                })?,
            Some("none") | None => 1.0,
            _ => {
                return Err(invalid(
                    "normalize_activations",
                    "constant_scalar_rescale or none (for a temporal SAE)",
                    cfg.get("normalize_activations"),
                ));
            }
        };
        let metadata_keys = [
            "model_name",
            "hook_name",
            "hook_head_index",
            "prepend_bos",
            "context_size",
            "dataset_path",
            "neuronpedia_id",
        ];
        let metadata: Map<String, Value> = metadata_keys
            .iter()
            .filter_map(|k| cfg.get(*k).map(|v| ((*k).to_string(), v.clone())))
            .collect();
        Ok(Self {
            d_in,
            d_sae,
            n_heads,
            n_attn_layers: cfg
                .get("n_attn_layers")
                .and_then(Value::as_u64)
                .map_or(1, |v| v as usize),
            bottleneck_factor: bf,
            sparsity,
            kval_topk,
            tied_weights: cfg
                .get("tied_weights")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            activation_normalization_factor: factor,
            apply_b_dec_to_input: cfg
                .get("apply_b_dec_to_input")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            metadata: serde_json::from_value(Value::Object(metadata)).unwrap_or_default(),
        })
    }
}

/// One causal attention layer over codes (`ManualAttention`). Weights stored `[in, out]`.
#[derive(Module, Debug)]
pub struct TemporalAttention {
    /// Keys from the context codes, `[d_sae, d_sae / bottleneck]`.
    pub w_k: Param<Tensor<2>>,
    /// Key bias.
    pub b_k: Param<Tensor<1>>,
    /// Queries from the current codes.
    pub w_q: Param<Tensor<2>>,
    /// Query bias.
    pub b_q: Param<Tensor<1>>,
    /// Values from the context codes, `[d_sae, d_sae]`.
    pub w_v: Param<Tensor<2>>,
    /// Value bias.
    pub b_v: Param<Tensor<1>>,
    /// Output projection, `[d_sae, d_sae]`.
    pub w_o: Param<Tensor<2>>,
    /// Output bias.
    pub b_o: Param<Tensor<1>>,
}

/// A temporal SAE.
#[derive(Debug, Clone)]
pub struct TemporalSae {
    config: TemporalConfig,
    w_dec: Param<Tensor<2>>,
    b_dec: Param<Tensor<1>>,
    w_enc: Option<Param<Tensor<2>>>,
    attn: Vec<TemporalAttention>,
}

fn linear(x: Tensor<3>, w: &Param<Tensor<2>>, b: &Param<Tensor<1>>) -> Tensor<3> {
    let [bs, t, d] = x.dims();
    let w = w.val();
    let out = w.dims()[1];
    (x.reshape([bs * t, d]).matmul(w) + b.val().unsqueeze::<2>()).reshape([bs, t, out])
}

fn matmul3(x: Tensor<3>, w: Tensor<2>) -> Tensor<3> {
    let [bs, t, d] = x.dims();
    let out = w.dims()[1];
    x.reshape([bs * t, d]).matmul(w).reshape([bs, t, out])
}

impl TemporalSae {
    /// Builds the SAE from SAELens's state dict (`W_dec`, `b_dec`, optional `W_enc`,
    /// `attn_layers.{i}.{k_ctx,q_target,v_ctx,c_proj}.{weight,bias}`), shapes checked.
    pub fn from_host_tensors(
        config: TemporalConfig,
        mut tensors: BTreeMap<String, HostTensor>,
        path: &Path,
        device: &Device,
    ) -> Result<Self> {
        let mut take = |name: &str, shape: Vec<usize>| -> Result<HostTensor> {
            let t = tensors
                .remove(name)
                .ok_or_else(|| SaeError::MissingTensor {
                    path: path.to_path_buf(),
                    tensor: name.into(),
                    architecture: "temporal".into(),
                })?;
            if t.shape != shape {
                return Err(SaeError::ShapeMismatch {
                    path: path.to_path_buf(),
                    tensor: name.into(),
                    expected: shape,
                    found: t.shape,
                });
            }
            Ok(t)
        };
        let p2 = |t: HostTensor| {
            Param::from_tensor(tensor_from_vec(t.data, [t.shape[0], t.shape[1]], device))
        };
        let p1 = |t: HostTensor| Param::from_tensor(tensor_from_vec(t.data, [t.shape[0]], device));
        let (d_in, d_sae) = (config.d_in, config.d_sae);
        let e = d_sae / config.bottleneck_factor;
        let w_dec = p2(take("W_dec", vec![d_sae, d_in])?);
        let b_dec = p1(take("b_dec", vec![d_in])?);
        let w_enc = if config.tied_weights {
            None
        } else {
            Some(p2(take("W_enc", vec![d_in, d_sae])?))
        };
        let mut attn = Vec::with_capacity(config.n_attn_layers);
        for i in 0..config.n_attn_layers {
            let mut lin =
                |name: &str, out: usize| -> Result<(Param<Tensor<2>>, Param<Tensor<1>>)> {
                    let key = format!("attn_layers.{i}.{name}.weight");
                    let w = take(&key, vec![out, d_sae])?;
                    let b = take(&format!("attn_layers.{i}.{name}.bias"), vec![out])?;
                    // nn.Linear stores [out, in]; we multiply by [in, out].
                    let w = crate::convert::files::transpose(w, &key, path, "temporal")?;
                    Ok((p2(w), p1(b)))
                };
            let (w_k, b_k) = lin("k_ctx", e)?;
            let (w_q, b_q) = lin("q_target", e)?;
            let (w_v, b_v) = lin("v_ctx", d_sae)?;
            let (w_o, b_o) = lin("c_proj", d_sae)?;
            attn.push(TemporalAttention {
                w_k,
                b_k,
                w_q,
                b_q,
                w_v,
                b_v,
                w_o,
                b_o,
            });
        }
        if let Some(extra) = tensors.keys().next() {
            return Err(SaeError::UnexpectedTensor {
                path: path.to_path_buf(),
                tensor: extra.clone(),
                architecture: "temporal".into(),
            });
        }
        Ok(Self {
            config,
            w_dec,
            b_dec,
            w_enc,
            attn,
        })
    }

    /// The config.
    pub fn config(&self) -> &TemporalConfig {
        &self.config
    }

    /// The decoder, `[d_sae, d_in]`.
    pub fn w_dec(&self) -> Tensor<2> {
        self.w_dec.val()
    }

    fn w_enc(&self) -> Tensor<2> {
        match &self.w_enc {
            Some(w) => w.val(),
            None => self.w_dec.val().transpose(),
        }
    }

    fn check(&self, x: &Tensor<3>, width: usize, what: &str) -> Result<()> {
        let [b, l, d] = x.dims();
        if d != width || b == 0 || l == 0 {
            return Err(SaeError::ShapeMismatch {
                path: Path::new(crate::error::INPUT_PATH).to_path_buf(),
                tensor: what.into(),
                expected: vec![b.max(1), l.max(1), width],
                found: vec![b, l, d],
            });
        }
        Ok(())
    }

    /// Causal attention of `layer` with queries from `target` and keys/values from `ctx`.
    fn attend(&self, layer: &TemporalAttention, ctx: Tensor<3>, target: Tensor<3>) -> Tensor<3> {
        let [b, l, _] = ctx.dims();
        let h = self.config.n_heads;
        let e = self.config.d_sae / self.config.bottleneck_factor;
        let (hk, hv) = (e / h, self.config.d_sae / h);
        let heads = |x: Tensor<3>, w: usize| x.reshape([b, l, h, w]).swap_dims(1, 2);
        let k = heads(linear(ctx.clone(), &layer.w_k, &layer.b_k), hk);
        let v = heads(linear(ctx, &layer.w_v, &layer.b_v), hv);
        let q = heads(linear(target, &layer.w_q, &layer.b_q), hk);
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .mul_scalar(1.0 / (hk as f32).sqrt());
        let mask: Vec<bool> = (0..l).flat_map(|i| (0..l).map(move |j| j > i)).collect();
        let mask = bool_tensor_from_vec(mask, [l, l], &scores.device())
            .unsqueeze::<4>()
            .expand([b, h, l, l]);
        let pattern = softmax(scores.mask_fill(mask, f32::NEG_INFINITY), 3);
        let out = pattern
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([b, l, self.config.d_sae]);
        linear(out, &layer.w_o, &layer.b_o)
    }

    /// The novel codes and the codes predicted from context (SAELens's
    /// `encode_with_predictions`).
    ///
    /// # Shapes
    /// - `x`: `[batch, positions, d_in]` → (`[batch, positions, d_sae]`, the same).
    pub fn encode_with_predictions(&self, x: Tensor<3>) -> Result<(Tensor<3>, Tensor<3>)> {
        self.check(&x, self.config.d_in, "input")?;
        let cfg = &self.config;
        let mut x = x.mul_scalar(cfg.activation_normalization_factor as f32);
        if cfg.apply_b_dec_to_input {
            x = x - self.b_dec.val().unsqueeze::<3>();
        }
        let [b, l, _] = x.dims();
        let lam = 1.0 / (4.0 * cfg.d_in as f32);
        let w_enc = self.w_enc();
        let mut resid = x;
        let mut pred = Tensor::<3>::zeros([b, l, cfg.d_sae], &resid.device());
        for layer in &self.attn {
            let z_input = relu(matmul3(resid.clone().mul_scalar(lam), w_enc.clone()));
            let zeros = z_input.clone().narrow(1, 0, 1).zeros_like();
            let z_ctx = if l > 1 {
                Tensor::cat(vec![zeros, z_input.clone().narrow(1, 0, l - 1)], 1)
            } else {
                zeros
            };
            let z_pred = relu(self.attend(layer, z_ctx, z_input));
            let dz = matmul3(z_pred.clone(), self.w_dec.val());
            let norm = dz.clone().powi_scalar(2).sum_dim(2).sqrt().add_scalar(1e-6);
            let scale = (dz.clone() * resid.clone()).sum_dim(2) / norm.powi_scalar(2);
            pred = pred + z_pred * scale.clone();
            resid = resid - dz * scale;
        }
        let mut novel = relu(matmul3(resid.mul_scalar(lam), w_enc));
        if let (TemporalSparsity::TopK, Some(k)) = (cfg.sparsity, cfg.kval_topk) {
            let (_, idx) = novel.clone().topk_with_indices(k, 2);
            let ones = idx.clone().float().ones_like();
            let mask = novel
                .clone()
                .zeros_like()
                .scatter(2, idx, ones, IndexingUpdateOp::Assign);
            novel = novel * mask;
        }
        Ok((novel, pred))
    }

    /// The novel codes (SAELens's `encode`).
    ///
    /// # Shapes
    /// - `x`: `[batch, positions, d_in]` → `[batch, positions, d_sae]`.
    pub fn encode(&self, x: Tensor<3>) -> Result<Tensor<3>> {
        self.encode_with_predictions(x).map(|(n, _)| n)
    }

    fn decode_codes(&self, codes: Tensor<3>) -> Tensor<3> {
        let mut out = matmul3(codes, self.w_dec.val());
        if !self.config.tied_weights || self.config.apply_b_dec_to_input {
            out = out + self.b_dec.val().unsqueeze::<3>();
        }
        out.div_scalar(self.config.activation_normalization_factor as f32)
    }

    /// Decodes codes alone (SAELens's `decode`: the novel part of a reconstruction).
    ///
    /// # Shapes
    /// - `codes`: `[batch, positions, d_sae]` → `[batch, positions, d_in]`.
    pub fn decode(&self, codes: Tensor<3>) -> Result<Tensor<3>> {
        self.check(&codes, self.config.d_sae, "codes")?;
        Ok(self.decode_codes(codes))
    }

    /// The full reconstruction from novel and predicted codes (SAELens's `forward`).
    ///
    /// # Shapes
    /// - `x`: `[batch, positions, d_in]` → `[batch, positions, d_in]`.
    pub fn forward(&self, x: Tensor<3>) -> Result<Tensor<3>> {
        let (novel, pred) = self.encode_with_predictions(x)?;
        Ok(self.decode_codes(novel + pred))
    }
}

//! dictionary_learning (`dictionary_learning_1`): `FOLDER/config.json` (the trainer's settings)
//! and `FOLDER/ae.pt` (the autoencoder's state dict), for standard, TopK, gated, JumpReLU,
//! BatchTopK and Matryoshka BatchTopK dictionaries (the last two load as JumpReLU with their
//! learned global threshold, as SAELens loads them).

use serde_json::{Value, json};

use super::files::{read_torch, take, transpose};
use super::{Converted, Source, field, obj, read_json, usize_at};
use crate::error::Result;
use crate::safetensors_io::HostTensor;

/// SAELens's `get_dictionary_learning_config_1_from_hf` and
/// `dictionary_learning_sae_huggingface_loader_1`.
pub(super) fn dictionary_learning_1(src: &Source<'_>) -> Result<Converted> {
    let folder = src.folder;
    let cfg_file = format!("{folder}/config.json");
    let config = read_json(&src.get(&cfg_file)?, src)?;
    let trainer = field(&config, "trainer", &cfg_file, src)?
        .as_object()
        .ok_or_else(|| src.error(&cfg_file, "`trainer` is not an object"))?;
    let buffer = field(&config, "buffer", &cfg_file, src)?
        .as_object()
        .ok_or_else(|| src.error(&cfg_file, "`buffer` is not an object"))?;
    let layer = usize_at(trainer, "layer", &cfg_file, src)?;
    let dict_class = field(trainer, "dict_class", &cfg_file, src)?
        .as_str()
        .unwrap_or_default()
        .to_string();
    let topk = dict_class == "AutoEncoderTopK";
    let (activation_fn, kwargs) = if topk {
        ("topk", json!({"k": field(trainer, "k", &cfg_file, src)?}))
    } else {
        ("relu", json!({}))
    };
    let (architecture, apply_b_dec) = match dict_class.as_str() {
        "GatedAutoEncoder" => ("gated", true),
        "MatryoshkaBatchTopKSAE" | "BatchTopKSAE" => ("jumprelu", true),
        // dictionary_learning's JumpReluAutoEncoder does not subtract b_dec before encoding.
        "JumpReluAutoEncoder" => ("jumprelu", false),
        _ => ("standard", true),
    };
    let lm_name = field(trainer, "lm_name", &cfg_file, src)?
        .as_str()
        .unwrap_or_default();
    let model_name = lm_name.rsplit('/').next().unwrap_or(lm_name);
    let cfg = obj([
        ("architecture", json!(architecture)),
        (
            "d_in",
            json!(usize_at(trainer, "activation_dim", &cfg_file, src)?),
        ),
        (
            "d_sae",
            json!(usize_at(trainer, "dict_size", &cfg_file, src)?),
        ),
        ("dtype", json!("float32")),
        ("device", json!("cpu")),
        ("model_name", json!(model_name)),
        (
            "hook_name",
            json!(format!("blocks.{layer}.hook_resid_post")),
        ),
        ("hook_head_index", Value::Null),
        ("activation_fn", json!(activation_fn)),
        ("activation_fn_kwargs", kwargs),
        ("apply_b_dec_to_input", json!(apply_b_dec)),
        ("finetuning_scaling_factor", json!(false)),
        ("sae_lens_training_version", Value::Null),
        ("prepend_bos", json!(true)),
        ("dataset_path", json!("monology/pile-uncopyrighted")),
        (
            "context_size",
            field(buffer, "ctx_len", &cfg_file, src)?.clone(),
        ),
        ("normalize_activations", json!("none")),
        ("neuronpedia_id", Value::Null),
        ("dataset_trust_remote_code", json!(true)),
    ]);
    let weights = src.get(&format!("{folder}/ae.pt"))?;
    let conv = src.conversion.as_str();
    let mut enc = read_torch(&weights, conv)?;
    let mut tensors = std::collections::BTreeMap::new();
    let w_enc = match enc.remove("W_enc") {
        Some(w) => w,
        None => transpose(
            take(&mut enc, "encoder.weight", &weights, conv)?,
            "encoder.weight",
            &weights,
            conv,
        )?,
    };
    let d_sae = w_enc.shape.get(1).copied().unwrap_or(0);
    tensors.insert("W_enc".to_string(), w_enc);
    let w_dec = match enc.remove("W_dec") {
        Some(w) => w,
        None => transpose(
            take(&mut enc, "decoder.weight", &weights, conv)?,
            "decoder.weight",
            &weights,
            conv,
        )?,
    };
    tensors.insert("W_dec".to_string(), w_dec);
    let b_dec = ["b_dec", "bias", "decoder_bias"]
        .iter()
        .find_map(|k| enc.remove(*k))
        .ok_or_else(|| {
            src.error(
                &weights.display().to_string(),
                "no decoder bias (b_dec, bias, decoder_bias)",
            )
        })?;
    tensors.insert("b_dec".to_string(), b_dec);
    if let Some(b) = enc.remove("encoder.bias") {
        tensors.insert("b_enc".to_string(), b);
    }
    if let Some(b) = enc.remove("b_enc") {
        tensors.insert("b_enc".to_string(), b);
    }
    for (from, to) in [
        ("mag_bias", "b_mag"),
        ("gate_bias", "b_gate"),
        ("r_mag", "r_mag"),
    ] {
        if let Some(t) = enc.remove(from) {
            tensors.insert(to.to_string(), t);
        }
    }
    // AutoEncoderTopK also saves a threshold, but its encode is a per-token top-k.
    if architecture == "jumprelu"
        && let Some(t) = enc.remove("threshold")
    {
        let t = if t.shape.is_empty() {
            HostTensor::new(
                vec![d_sae],
                vec![t.data.first().copied().unwrap_or(0.0); d_sae],
            )
        } else {
            t
        };
        tensors.insert("threshold".to_string(), t);
    }
    Ok(Converted {
        cfg,
        tensors,
        weights,
    })
}

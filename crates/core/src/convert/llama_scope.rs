//! Llama Scope (Llama 3.1 8B, OpenMOSS): `llama_scope` (`FOLDER/hyperparams.json` and
//! `FOLDER/checkpoints/final.safetensors`, one scalar JumpReLU threshold) and
//! `llama_scope_r1_distill` (`FOLDER/config.json` and `FOLDER/sae_weights.safetensors`, per-latent
//! log thresholds). Both are `expected_average_only_in`: the registry's norm scaling factor is
//! folded in after loading, as SAELens does.

use serde_json::{Value, json};

use super::files::{read_safetensors, take, transpose};
use super::{Converted, Source, field, obj, read_json, usize_at};
use crate::error::Result;
use crate::safetensors_io::HostTensor;

/// SAELens's `get_llama_scope_config_from_hf` and `llama_scope_sae_huggingface_loader`.
pub(super) fn llama_scope(src: &Source<'_>) -> Result<Converted> {
    let folder = src.folder;
    let hp_file = format!("{folder}/hyperparams.json");
    let hp = read_json(&src.get(&hp_file)?, src)?;
    let d_in = usize_at(&hp, "d_model", &hp_file, src)?;
    let d_sae = usize_at(&hp, "d_sae", &hp_file, src)?;
    let avg_in = field(&hp, "dataset_average_activation_norm", &hp_file, src)?
        .get("in")
        .and_then(Value::as_f64)
        .filter(|v| *v > 0.0)
        .ok_or_else(|| {
            src.error(
                &hp_file,
                "dataset_average_activation_norm.in is not a positive number",
            )
        })?;
    let raw_threshold = field(&hp, "jump_relu_threshold", &hp_file, src)?
        .as_f64()
        .ok_or_else(|| src.error(&hp_file, "jump_relu_threshold is not a number"))?;
    // The scalar threshold is scaled as the later fold of the norm scaling factor scales W_enc.
    let threshold = raw_threshold * ((d_in as f64).sqrt() / avg_in);
    let hook = field(&hp, "hook_point_in", &hp_file, src)?.clone();
    let cfg = obj([
        ("architecture", json!("jumprelu")),
        ("jump_relu_threshold", json!(threshold)),
        ("d_in", json!(d_in)),
        ("d_sae", json!(d_sae)),
        ("dtype", json!("bfloat16")),
        ("model_name", json!("meta-llama/Llama-3.1-8B")),
        ("hook_name", hook),
        ("hook_head_index", Value::Null),
        ("activation_fn", json!("relu")),
        ("finetuning_scaling_factor", json!(false)),
        ("sae_lens_training_version", Value::Null),
        ("prepend_bos", json!(true)),
        ("dataset_path", json!("cerebras/SlimPajama-627B")),
        ("context_size", json!(1024)),
        ("dataset_trust_remote_code", json!(true)),
        ("apply_b_dec_to_input", json!(false)),
        ("normalize_activations", json!("expected_average_only_in")),
        ("device", json!("cpu")),
    ]);
    let weights = src.get(&format!("{folder}/checkpoints/final.safetensors"))?;
    let conv = src.conversion.as_str();
    let mut raw = read_safetensors(&weights)?;
    let mut tensors = encoder_decoder(&mut raw, &weights, conv)?;
    tensors.insert(
        "threshold".into(),
        HostTensor::new(vec![d_sae], vec![threshold as f32; d_sae]),
    );
    Ok(Converted {
        cfg,
        tensors,
        weights,
    })
}

/// SAELens's `get_llama_scope_r1_distill_config_from_hf` and its loader.
pub(super) fn llama_scope_r1_distill(src: &Source<'_>) -> Result<Converted> {
    let folder = src.folder;
    let cfg_file = format!("{folder}/config.json");
    let hf = read_json(&src.get(&cfg_file)?, src)?;
    let d_in = usize_at(&hf, "d_model", &cfg_file, src)?;
    let expansion = usize_at(&hf, "expansion_factor", &cfg_file, src)?;
    let hook = field(&hf, "hook_point_in", &cfg_file, src)?.clone();
    let cfg = obj([
        ("architecture", json!("jumprelu")),
        ("d_in", json!(d_in)),
        ("d_sae", json!(d_in * expansion)),
        ("dtype", json!("float32")),
        ("device", json!("cpu")),
        ("model_name", json!("meta-llama/Llama-3.1-8B")),
        ("hook_name", hook),
        ("hook_head_index", Value::Null),
        ("activation_fn", json!("relu")),
        ("finetuning_scaling_factor", json!(false)),
        ("sae_lens_training_version", Value::Null),
        ("prepend_bos", json!(true)),
        ("dataset_path", json!("cerebras/SlimPajama-627B")),
        ("context_size", json!(1024)),
        ("dataset_trust_remote_code", json!(true)),
        ("apply_b_dec_to_input", json!(false)),
        ("normalize_activations", json!("expected_average_only_in")),
    ]);
    let weights = src.get(&format!("{folder}/{}", crate::config::WEIGHTS_FILENAME))?;
    let conv = src.conversion.as_str();
    let mut raw = read_safetensors(&weights)?;
    let mut tensors = encoder_decoder(&mut raw, &weights, conv)?;
    let mut log_t = take(&mut raw, "log_jumprelu_threshold", &weights, conv)?;
    log_t.data.iter_mut().for_each(|v| *v = v.exp());
    tensors.insert("threshold".into(), log_t);
    Ok(Converted {
        cfg,
        tensors,
        weights,
    })
}

/// `encoder.weight`ᵀ, `decoder.weight`ᵀ, `encoder.bias`, `decoder.bias` (nn.Linear layouts) as
/// `W_enc`, `W_dec`, `b_enc`, `b_dec`.
pub(super) fn encoder_decoder(
    raw: &mut std::collections::BTreeMap<String, HostTensor>,
    path: &std::path::Path,
    conv: &str,
) -> Result<std::collections::BTreeMap<String, HostTensor>> {
    let mut out = std::collections::BTreeMap::new();
    let enc = take(raw, "encoder.weight", path, conv)?;
    out.insert(
        "W_enc".into(),
        transpose(enc, "encoder.weight", path, conv)?,
    );
    let dec = take(raw, "decoder.weight", path, conv)?;
    out.insert(
        "W_dec".into(),
        transpose(dec, "decoder.weight", path, conv)?,
    );
    out.insert("b_enc".into(), take(raw, "encoder.bias", path, conv)?);
    out.insert("b_dec".into(), take(raw, "decoder.bias", path, conv)?);
    Ok(out)
}

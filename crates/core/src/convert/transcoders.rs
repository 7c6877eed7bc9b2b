//! Per-layer transcoder releases: `mwhanna_transcoder` (one `layer_N.safetensors` per layer,
//! with `wandb-config.yaml` and `config.yaml` at the repository root) and
//! `mntss_clt_layer_transcoder` (one layer of a cross-layer transcoder: `W_enc_N.safetensors` and
//! `W_dec_N.safetensors`, its decoders to every later layer summed into one, as SAELens loads it
//! for finding feature activations; the sum is not the CLT's reconstruction).

use serde_json::{Value, json};

use super::files::{read_safetensors, safetensors_shapes, sum_axis1, take, transpose};
use super::{Converted, Source, field, obj, read_yaml};
use crate::error::Result;

/// A W&B config value: `{key: {value: V}}`.
fn wandb_value<'m>(
    m: &'m serde_json::Map<String, Value>,
    key: &str,
    file: &str,
    src: &Source<'_>,
) -> Result<&'m Value> {
    field(m, key, file, src)?
        .get("value")
        .ok_or_else(|| src.error(file, format!("`{key}` has no `value`")))
}

/// SAELens's `get_mwhanna_transcoder_config_from_hf` and its loader.
pub(super) fn mwhanna(src: &Source<'_>) -> Result<Converted> {
    let folder = src.folder;
    let layer: usize = folder
        .replace(".safetensors", "")
        .rsplit('_')
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| src.error(folder, "the file name does not end in _<layer>"))?;
    // Some of these repositories misspell the W&B config's name.
    let (wandb_file, wandb_path) = match src.get_optional("wandb-config.yaml") {
        Some(p) => ("wandb-config.yaml", p),
        None => ("wanb-config.yaml", src.get("wanb-config.yaml")?),
    };
    let wandb = read_yaml(&wandb_path, src)?;
    let model_name = match src.get_optional("config.yaml") {
        Some(p) => field(&read_yaml(&p, src)?, "model_name", "config.yaml", src)?.clone(),
        None => {
            // The 14B transcoders have no config file: SAELens reads the size off the repo id.
            let lower = src.repo_id;
            let size = lower
                .find("qwen3-")
                .map(|i| &lower[i + 6..])
                .and_then(|rest| {
                    let n: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_digit() || *c == '.')
                        .collect();
                    rest[n.len()..].starts_with('b').then_some(n)
                })
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    src.error(
                        "config.yaml",
                        "absent, and the repository names no Qwen3 size",
                    )
                })?;
            json!(format!("Qwen/Qwen3-{size}B"))
        }
    };
    let d_model = wandb_value(&wandb, "d_model", wandb_file, src)?.clone();
    let cfg = obj([
        ("architecture", json!("transcoder")),
        ("d_in", d_model.clone()),
        ("d_out", d_model),
        (
            "d_sae",
            wandb_value(&wandb, "d_feature", wandb_file, src)?.clone(),
        ),
        ("dtype", json!("float32")),
        ("device", json!("cpu")),
        ("activation_fn", json!("relu")),
        ("normalize_activations", json!("none")),
        ("model_name", model_name),
        ("hook_name", json!(format!("blocks.{layer}.mlp.hook_in"))),
        (
            "hook_name_out",
            json!(format!("blocks.{layer}.hook_mlp_out")),
        ),
        ("dataset_path", json!("monology/pile-uncopyrighted")),
        (
            "context_size",
            wandb_value(&wandb, "batch_size", wandb_file, src)?.clone(),
        ),
        ("apply_b_dec_to_input", json!(false)),
        ("model_from_pretrained_kwargs", json!({"fold_ln": false})),
    ]);
    let weights = src.get(folder)?;
    let conv = src.conversion.as_str();
    let mut tensors = read_safetensors(&weights)?;
    let w_enc = take(&mut tensors, "W_enc", &weights, conv)?;
    tensors.insert("W_enc".into(), transpose(w_enc, "W_enc", &weights, conv)?);
    Ok(Converted {
        cfg,
        tensors,
        weights,
    })
}

/// SAELens's `get_mntss_clt_layer_config_from_hf` and `mntss_clt_layer_huggingface_loader`.
pub(super) fn mntss_clt_layer(src: &Source<'_>) -> Result<Converted> {
    let l = src.folder;
    tracing::warn!(
        layer = l,
        "a CLT layer loads as one transcoder with its decoders summed: use it to find feature activations, not to reconstruct"
    );
    let info = read_yaml(&src.get("config.yaml")?, src)?;
    let enc_file = format!("W_enc_{l}.safetensors");
    let enc_path = src.get(&enc_file)?;
    let shapes = safetensors_shapes(&enc_path)?;
    let width = |key: String| {
        shapes
            .get(&key)
            .and_then(|s| s.first().copied())
            .ok_or_else(|| src.error(&enc_file, format!("no `{key}`")))
    };
    let d_in = width(format!("b_dec_{l}"))?;
    let d_sae = width(format!("b_enc_{l}"))?;
    let hook = |key: &str| -> Result<String> {
        let v = field(&info, key, "config.yaml", src)?;
        let s = v
            .as_str()
            .ok_or_else(|| src.error("config.yaml", format!("`{key}` is not a string")))?;
        Ok(format!("blocks.{l}.{s}"))
    };
    let cfg = obj([
        ("architecture", json!("transcoder")),
        ("d_in", json!(d_in)),
        ("d_out", json!(d_in)),
        ("d_sae", json!(d_sae)),
        ("dtype", json!("float32")),
        ("device", json!("cpu")),
        ("activation_fn", json!("relu")),
        ("normalize_activations", json!("none")),
        (
            "model_name",
            field(&info, "model_name", "config.yaml", src)?.clone(),
        ),
        ("hook_name", json!(hook("feature_input_hook")?)),
        ("hook_name_out", json!(hook("feature_output_hook")?)),
        ("apply_b_dec_to_input", json!(false)),
        ("model_from_pretrained_kwargs", json!({"fold_ln": false})),
    ]);
    let conv = src.conversion.as_str();
    let mut enc = read_safetensors(&enc_path)?;
    let dec_path = src.get(&format!("W_dec_{l}.safetensors"))?;
    let mut dec = read_safetensors(&dec_path)?;
    let mut tensors = std::collections::BTreeMap::new();
    let w_enc = take(&mut enc, &format!("W_enc_{l}"), &enc_path, conv)?;
    tensors.insert("W_enc".into(), transpose(w_enc, "W_enc", &enc_path, conv)?);
    tensors.insert(
        "b_enc".into(),
        take(&mut enc, &format!("b_enc_{l}"), &enc_path, conv)?,
    );
    tensors.insert(
        "b_dec".into(),
        take(&mut enc, &format!("b_dec_{l}"), &enc_path, conv)?,
    );
    let w_dec = take(&mut dec, &format!("W_dec_{l}"), &dec_path, conv)?;
    tensors.insert("W_dec".into(), sum_axis1(w_dec, "W_dec", &dec_path, conv)?);
    Ok(Converted {
        cfg,
        tensors,
        weights: enc_path,
    })
}

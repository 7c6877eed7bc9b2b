//! Temporal SAEs (`temporal`): `FOLDER/conf.yaml` and `FOLDER/latest_ckpt.safetensors`
//! (canrager/temporalSAEs), loaded into [`crate::temporal::TemporalSae`].

use serde_json::{Value, json};

use super::files::{read_safetensors, take};
use super::{Converted, Source, field, number_after, obj, read_yaml};
use crate::error::Result;

/// SAELens's `get_temporal_sae_config_from_hf` and `temporal_sae_huggingface_loader`.
pub(super) fn temporal(src: &Source<'_>) -> Result<Converted> {
    let folder = src.folder;
    let conf_file = format!("{folder}/conf.yaml");
    let conf = read_yaml(&src.get(&conf_file)?, src)?;
    let section = |name: &str| -> Result<&serde_json::Map<String, Value>> {
        field(&conf, name, &conf_file, src)?
            .as_object()
            .ok_or_else(|| src.error(&conf_file, format!("`{name}` is not a mapping")))
    };
    let (llm, sae, data) = (section("llm")?, section("sae")?, section("data")?);
    let d_in = field(llm, "dimin", &conf_file, src)?
        .as_u64()
        .ok_or_else(|| src.error(&conf_file, "llm.dimin is not an integer"))?;
    let exp = field(sae, "exp_factor", &conf_file, src)?
        .as_f64()
        .ok_or_else(|| src.error(&conf_file, "sae.exp_factor is not a number"))?;
    let layer = number_after(folder, "layer_")
        .ok_or_else(|| src.error(folder, "the folder names no layer (layer_N)"))?;
    let get = |m: &serde_json::Map<String, Value>, k: &str| -> Result<Value> {
        Ok(field(m, k, &conf_file, src)?.clone())
    };
    let cfg = obj([
        ("architecture", json!("temporal")),
        (
            "hook_name",
            json!(format!("blocks.{layer}.hook_resid_post")),
        ),
        ("d_in", json!(d_in)),
        ("d_sae", json!((d_in as f64 * exp) as u64)),
        ("n_heads", get(sae, "n_heads")?),
        ("n_attn_layers", get(sae, "n_attn_layers")?),
        ("bottleneck_factor", get(sae, "bottleneck_factor")?),
        ("sae_diff_type", get(sae, "sae_diff_type")?),
        ("kval_topk", get(sae, "kval_topk")?),
        ("tied_weights", get(sae, "tied_weights")?),
        ("dtype", get(data, "dtype")?),
        ("device", json!("cpu")),
        ("normalize_activations", json!("constant_scalar_rescale")),
        (
            "activation_normalization_factor",
            get(sae, "scaling_factor")?,
        ),
        ("apply_b_dec_to_input", json!(true)),
    ]);
    let weights = src.get(&format!("{folder}/latest_ckpt.safetensors"))?;
    let conv = src.conversion.as_str();
    let mut raw = read_safetensors(&weights)?;
    let mut tensors: std::collections::BTreeMap<_, _> = raw
        .iter()
        .filter(|(k, _)| k.starts_with("attn_layers."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    tensors.insert("W_dec".into(), take(&mut raw, "D", &weights, conv)?);
    tensors.insert("b_dec".into(), take(&mut raw, "b", &weights, conv)?);
    if let Some(e) = raw.remove("E") {
        tensors.insert("W_enc".into(), e);
    }
    Ok(Converted {
        cfg,
        tensors,
        weights,
    })
}

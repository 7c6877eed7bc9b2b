//! Gemma Scope 2 (Gemma 3): `gemma_3`. Residual-stream, attention-output and MLP-output JumpReLU
//! SAEs, per-layer transcoders (with an affine skip connection when the folder says
//! `affine`) and cross-layer-transcoder layers, stored as `FOLDER/params.safetensors` (CLT
//! layers as `FOLDER.safetensors`) with an optional `FOLDER/config.json`; shapes come from the
//! weights' header, as SAELens reads them.

use serde_json::{Map, Value, json};

use super::files::{read_safetensors, safetensors_shapes, sum_axis1, take, transpose};
use super::{Converted, Source, number_after, obj, read_json};
use crate::error::Result;

/// SAELens's `_infer_gemma_3_raw_cfg_dict`, for folders without `config.json`.
fn infer_raw_cfg(src: &Source<'_>, layer: usize) -> Result<Map<String, Value>> {
    let folder = src.folder;
    let transcoder = folder.contains("transcoder") || folder.contains("clt");
    let (hook_in, hook_out) = if transcoder {
        (
            format!("model.layers.{layer}.pre_feedforward_layernorm.output"),
            Some(format!(
                "model.layers.{layer}.post_feedforward_layernorm.output"
            )),
        )
    } else if folder.contains("resid_post") {
        (format!("model.layers.{layer}.output"), None)
    } else if folder.contains("attn_out") {
        (format!("model.layers.{layer}.self_attn.o_proj.input"), None)
    } else if folder.contains("mlp_out") {
        (
            format!("model.layers.{layer}.post_feedforward_layernorm.output"),
            None,
        )
    } else {
        return Err(src.error(folder, "cannot infer the hook type from the folder name"));
    };
    let mut cfg = obj([
        ("architecture", json!("jump_relu")),
        (
            "model_name",
            json!(src.repo_id.replace("gemma-scope-2", "gemma-3")),
        ),
        ("hf_hook_point_in", json!(hook_in)),
    ]);
    if transcoder {
        cfg.insert("affine_connection".into(), json!(folder.contains("affine")));
    }
    if let Some(out) = hook_out {
        cfg.insert("hf_hook_point_out".into(), json!(out));
    }
    Ok(cfg)
}

/// SAELens's `get_gemma_3_config_from_hf` and `gemma_3_sae_huggingface_loader`.
pub(super) fn gemma_3(src: &Source<'_>) -> Result<Converted> {
    let folder = src.folder;
    let layer = number_after(folder, "layer_")
        .ok_or_else(|| src.error(folder, "the folder names no layer (layer_N)"))?;
    let raw = match src.get_optional(&format!("{folder}/config.json")) {
        Some(p) => read_json(&p, src)?,
        None => infer_raw_cfg(src, layer)?,
    };
    if raw.get("architecture").and_then(Value::as_str) != Some("jump_relu") {
        return Err(src.error(
            &format!("{folder}/config.json"),
            format!(
                "architecture {}; Gemma Scope 2 configs say jump_relu",
                raw.get("architecture").unwrap_or(&Value::Null)
            ),
        ));
    }
    let transcoder = folder.contains("transcoder") || folder.contains("clt");
    let (hook_name, hook_name_out) = if folder.contains("resid_post") {
        (format!("blocks.{layer}.hook_resid_post"), None)
    } else if folder.contains("attn_out") {
        (format!("blocks.{layer}.attn.hook_z"), None)
    } else if folder.contains("mlp_out") {
        (format!("blocks.{layer}.hook_mlp_out"), None)
    } else if transcoder {
        (
            format!("blocks.{layer}.hook_mlp_in"),
            Some(format!("blocks.{layer}.hook_mlp_out")),
        )
    } else {
        return Err(src.error(
            folder,
            "the folder names no hook (resid_post, attn_out, mlp_out, transcoder, clt)",
        ));
    };
    // CLT layers are files beside each other; everything else is FOLDER/params.safetensors.
    let file = if folder.contains("clt") {
        format!("{folder}.safetensors")
    } else {
        format!("{folder}/params.safetensors")
    };
    let weights = src.get(&file)?;
    let shapes = safetensors_shapes(&weights)?;
    let [d_in, d_sae] = shapes
        .get("w_enc")
        .and_then(|s| <[usize; 2]>::try_from(s.as_slice()).ok())
        .ok_or_else(|| src.error(&file, "no 2-D `w_enc`"))?;
    let mut model_name = raw
        .get("model_name")
        .and_then(Value::as_str)
        .ok_or_else(|| src.error(&file, "the config has no model_name"))?
        .to_string();
    if !model_name.contains("google") {
        model_name = format!("google/{model_name}");
    }
    model_name = model_name.replace("-v3", "-3");
    if model_name.contains("270m") {
        model_name = model_name.replace("-pt", "");
    }
    let affine = raw
        .get("affine_connection")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let architecture = match (transcoder, affine) {
        (false, _) => "jumprelu",
        (true, true) => "jumprelu_skip_transcoder",
        (true, false) => "jumprelu_transcoder",
    };
    let mut cfg = obj([
        ("architecture", json!(architecture)),
        ("d_in", json!(d_in)),
        ("d_sae", json!(d_sae)),
        ("dtype", json!("float32")),
        ("model_name", json!(model_name)),
        ("hook_name", json!(hook_name)),
        ("hook_head_index", Value::Null),
        ("finetuning_scaling_factor", json!(false)),
        ("sae_lens_training_version", Value::Null),
        ("prepend_bos", json!(true)),
        ("dataset_path", json!("monology/pile-uncopyrighted")),
        ("context_size", json!(1024)),
        ("apply_b_dec_to_input", json!(false)),
        ("normalize_activations", json!("none")),
        ("reshape_activations", json!("none")),
        (
            "hf_hook_name",
            raw.get("hf_hook_point_in").cloned().unwrap_or(Value::Null),
        ),
    ]);
    if let Some(out) = hook_name_out {
        cfg.insert("hook_name_out".into(), json!(out));
        cfg.insert(
            "hf_hook_name_out".into(),
            raw.get("hf_hook_point_out").cloned().unwrap_or(Value::Null),
        );
    }
    if transcoder {
        let d_out = shapes
            .get("w_dec")
            .and_then(|s| s.last().copied())
            .ok_or_else(|| src.error(&file, "no `w_dec`"))?;
        cfg.insert("d_out".into(), json!(d_out));
    }
    cfg.insert("device".into(), json!("cpu"));

    let conv = src.conversion.as_str();
    let mut raw_t = read_safetensors(&weights)?;
    let mut w_dec = take(&mut raw_t, "w_dec", &weights, conv)?;
    // SAELens sums a CLT layer's decoders over the layers it writes when its parent folder
    // names `clt` (the layer file itself is `FOLDER.safetensors`).
    let parent = folder.rsplit_once('/').map_or("", |(p, _)| p);
    if folder.contains("clt") && parent.contains("clt") {
        w_dec = sum_axis1(w_dec, "w_dec", &weights, conv)?;
    }
    let mut tensors = std::collections::BTreeMap::new();
    tensors.insert("W_enc".into(), take(&mut raw_t, "w_enc", &weights, conv)?);
    tensors.insert("W_dec".into(), w_dec);
    tensors.insert("b_enc".into(), take(&mut raw_t, "b_enc", &weights, conv)?);
    tensors.insert("b_dec".into(), take(&mut raw_t, "b_dec", &weights, conv)?);
    tensors.insert(
        "threshold".into(),
        take(&mut raw_t, "threshold", &weights, conv)?,
    );
    if let Some(skip) = raw_t.remove("affine_skip_connection") {
        // Stored [d_in, d_out]; W_skip is [d_out, d_in].
        tensors.insert(
            "W_skip".into(),
            transpose(skip, "affine_skip_connection", &weights, conv)?,
        );
    }
    Ok(Converted {
        cfg,
        tensors,
        weights,
    })
}

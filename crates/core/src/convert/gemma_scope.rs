//! Gemma Scope (Gemma 2): `gemma_2` (JumpReLU SAEs on the residual stream, MLP output,
//! attention `hook_z` and the embedding) and `gemma_2_transcoder`, both stored as
//! `FOLDER/params.npz` with no config file: SAELens derives the config from the repository id
//! and folder name, as here.

use serde_json::{Value, json};

use super::files::read_npz;
use super::{Converted, Source, number_after, obj};
use crate::error::Result;

/// Gemma Scope's width names, in SAELens's order (the first contained in the folder wins).
const WIDTHS: [(&str, usize); 8] = [
    ("width_4k", 4096),
    ("width_16k", 16384),
    ("width_32k", 32768),
    ("width_65k", 65536),
    ("width_131k", 131072),
    ("width_262k", 262144),
    ("width_524k", 524288),
    ("width_1m", 1048576),
];

/// Gemma 2 model keys in SAELens's order (`-it` before the base name), with d_model.
const MODELS: [(&str, &str, usize); 6] = [
    ("2b-it", "gemma-2-2b-it", 2304),
    ("9b-it", "gemma-2-9b-it", 3584),
    ("27b-it", "gemma-2-27b-it", 4608),
    ("2b", "gemma-2-2b", 2304),
    ("9b", "gemma-2-9b", 3584),
    ("27b", "gemma-2-27b", 4608),
];

/// SAELens's `get_gemma_2_config_from_hf` and `gemma_2_sae_huggingface_loader`.
pub(super) fn gemma_2(src: &Source<'_>) -> Result<Converted> {
    let folder = src.folder;
    let file = format!("{folder}/params.npz");
    let d_sae = WIDTHS
        .iter()
        .find(|(k, _)| folder.contains(k))
        .map(|&(_, w)| w)
        .ok_or_else(|| src.error(&file, "the folder names no width (width_16k, ...)"))?;
    let embedding = folder.contains("embedding");
    let layer = match number_after(folder, "layer_") {
        Some(l) => l,
        None if embedding => 0,
        None => return Err(src.error(&file, "the folder names no layer (layer_N)")),
    };
    let (key, model_name, mut d_in) = MODELS
        .iter()
        .find(|(k, _, _)| src.repo_id.contains(k))
        .copied()
        .ok_or_else(|| src.error(&file, "the repository names no Gemma 2 size (2b, 9b, 27b)"))?;
    let repo = src.repo_id;
    let hook_name = if repo.contains("res") && !embedding {
        format!("blocks.{layer}.hook_resid_post")
    } else if repo.contains("res") {
        "hook_embed".to_string()
    } else if repo.contains("mlp") {
        format!("blocks.{layer}.hook_mlp_out")
    } else if repo.contains("att") {
        // SAELens looks the first matching model key up in a table of base sizes only, so an
        // `-it` key keeps d_model; kept as SAELens has it.
        d_in = match key {
            "2b" => 2048,
            "9b" => 4096,
            "27b" => 4608,
            _ => d_in,
        };
        format!("blocks.{layer}.attn.hook_z")
    } else {
        return Err(src.error(&file, "the repository is none of res, mlp, att"));
    };
    let cfg = obj([
        ("architecture", json!("jumprelu")),
        ("d_in", json!(d_in)),
        ("d_sae", json!(d_sae)),
        ("dtype", json!("float32")),
        ("model_name", json!(model_name)),
        ("hook_name", json!(hook_name)),
        ("hook_head_index", Value::Null),
        ("activation_fn", json!("relu")),
        ("finetuning_scaling_factor", json!(false)),
        ("sae_lens_training_version", Value::Null),
        ("prepend_bos", json!(true)),
        ("dataset_path", json!("monology/pile-uncopyrighted")),
        ("context_size", json!(1024)),
        ("dataset_trust_remote_code", json!(true)),
        ("apply_b_dec_to_input", json!(false)),
        ("normalize_activations", Value::Null),
        ("device", json!("cpu")),
    ]);
    let weights = src.get(&file)?;
    let mut tensors: std::collections::BTreeMap<_, _> =
        read_npz(&weights, src.conversion.as_str())?
            .into_iter()
            .map(|(k, v)| match k.strip_prefix("w_") {
                Some(rest) => (format!("W_{rest}"), v),
                None => (k, v),
            })
            .collect();
    if embedding {
        // Trained on embeddings scaled by √d_model: SAELens rescales the weights.
        let s = (d_in as f64).sqrt() as f32;
        if let Some(w) = tensors.get_mut("W_enc") {
            w.data.iter_mut().for_each(|v| *v /= s);
        }
        if let Some(w) = tensors.get_mut("W_dec") {
            w.data.iter_mut().for_each(|v| *v *= s);
        }
    }
    Ok(Converted {
        cfg,
        tensors,
        weights,
    })
}

/// SAELens's `get_gemma_2_transcoder_config_from_hf` and its loader.
pub(super) fn gemma_2_transcoder(src: &Source<'_>) -> Result<Converted> {
    let folder = src.folder;
    let file = format!("{folder}/params.npz");
    let d_sae = [
        ("width_4k", 4096),
        ("width_16k", 16384),
        ("width_65k", 65536),
        ("width_262k", 262144),
        ("width_524k", 524288),
        ("width_1m", 1048576),
    ]
    .iter()
    .find(|(k, _)| folder.contains(k))
    .map(|&(_, w)| w)
    .or_else(|| {
        number_after(folder, "width_")
            .filter(|_| has_k_width(folder))
            .map(|n| n * 1024)
    })
    .ok_or_else(|| src.error(&file, "the folder names no width (width_16k, ...)"))?;
    let layer = number_after(folder, "layer_")
        .or_else(|| number_after(src.repo_id, "layer_"))
        .ok_or_else(|| src.error(&file, "neither the folder nor the repository names a layer"))?;
    let (model_name, d_model) = [
        ("2b-it", "gemma-2-2b-it", 2304),
        ("2b", "gemma-2-2b", 2304),
        ("9b-it", "gemma-2-9b-it", 3584),
        ("9b", "gemma-2-9b", 3584),
        ("27b-it", "gemma-2-27b-it", 4608),
        ("27b", "gemma-2-27b", 4608),
    ]
    .iter()
    .find(|(k, _, _)| src.repo_id.contains(k))
    .map(|&(_, n, d)| (n, d))
    .ok_or_else(|| src.error(&file, "the repository names no Gemma 2 size"))?;
    let cfg = obj([
        ("architecture", json!("jumprelu_transcoder")),
        ("d_in", json!(d_model)),
        ("d_out", json!(d_model)),
        ("d_sae", json!(d_sae)),
        ("dtype", json!("float32")),
        ("device", json!("cpu")),
        ("activation_fn", json!("relu")),
        ("normalize_activations", json!("none")),
        ("model_name", json!(model_name)),
        (
            "hook_name",
            json!(format!("blocks.{layer}.ln2.hook_normalized")),
        ),
        (
            "hook_name_out",
            json!(format!("blocks.{layer}.hook_mlp_out")),
        ),
        ("hook_head_index", Value::Null),
        ("hook_head_index_out", Value::Null),
        ("prepend_bos", json!(true)),
        ("dataset_path", json!("monology/pile-uncopyrighted")),
        ("context_size", json!(1024)),
        ("apply_b_dec_to_input", json!(false)),
    ]);
    let weights = src.get(&file)?;
    let mut tensors = std::collections::BTreeMap::new();
    for (k, v) in read_npz(&weights, src.conversion.as_str())? {
        let name = match k.to_lowercase().as_str() {
            "w_enc" | "wenc" | "w_e" => "W_enc",
            "w_dec" | "wdec" | "w_d" => "W_dec",
            "b_enc" | "benc" | "b_e" => "b_enc",
            "b_dec" | "bdec" | "b_d" => "b_dec",
            "threshold" => "threshold",
            _ => continue,
        };
        tensors.insert(name.to_string(), v);
    }
    Ok(Converted {
        cfg,
        tensors,
        weights,
    })
}

/// Whether the folder has `width_<digits>k` (SAELens's fallback pattern).
fn has_k_width(folder: &str) -> bool {
    let mut rest = folder;
    while let Some(i) = rest.find("width_") {
        let tail = &rest[i + 6..];
        let n = tail.chars().take_while(char::is_ascii_digit).count();
        if n > 0 && tail[n..].starts_with('k') {
            return true;
        }
        rest = tail;
    }
    false
}

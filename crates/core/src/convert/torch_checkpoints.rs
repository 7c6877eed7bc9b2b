//! Releases published as bare PyTorch checkpoints (`torch.save` of a state dict), read without
//! Python by the `pytorch-reader` crate: `connor_rob_hook_z` (GPT-2 attention-output SAEs with a
//! `_cfg.json` beside each), `goodfire` (Llama 3.x), `deepseek_r1` (DeepSeek R1 distill Llama 8B)
//! and `qwen_scope` (Qwen 3 / 3.5 TopK SAEs). Configs are derived as SAELens derives them.

use serde_json::{Value, json};

use super::files::{read_torch, take, transpose};
use super::llama_scope::encoder_decoder;
use super::{Converted, Source, field, number_after, obj, read_json};
use crate::error::Result;

/// SAELens's `get_connor_rob_hook_z_config_from_hf` and its loader.
pub(super) fn connor_rob_hook_z(src: &Source<'_>) -> Result<Converted> {
    let folder = src.folder;
    let cfg_file = format!("{}_cfg.json", folder.split(".pt").next().unwrap_or(folder));
    let old = read_json(&src.get(&cfg_file)?, src)?;
    let cfg = obj([
        ("architecture", json!("standard")),
        ("d_in", field(&old, "act_size", &cfg_file, src)?.clone()),
        ("d_sae", field(&old, "dict_size", &cfg_file, src)?.clone()),
        ("dtype", json!("float32")),
        ("device", json!("cpu")),
        ("model_name", json!("gpt2-small")),
        (
            "hook_name",
            field(&old, "act_name", &cfg_file, src)?.clone(),
        ),
        ("hook_head_index", Value::Null),
        ("activation_fn", json!("relu")),
        ("apply_b_dec_to_input", json!(true)),
        ("finetuning_scaling_factor", json!(false)),
        ("sae_lens_training_version", Value::Null),
        ("prepend_bos", json!(true)),
        ("dataset_path", json!("Skylion007/openwebtext")),
        ("context_size", json!(128)),
        ("normalize_activations", json!("none")),
        ("dataset_trust_remote_code", json!(true)),
        ("reshape_activations", json!("hook_z")),
    ]);
    let weights = src.get(folder)?;
    let tensors = read_torch(&weights, src.conversion.as_str())?;
    Ok(Converted {
        cfg,
        tensors,
        weights,
    })
}

/// SAELens's `get_goodfire_config_from_hf` and its loader: two known SAEs, each with a fixed
/// config.
pub(super) fn goodfire(src: &Source<'_>) -> Result<Converted> {
    let (file, d_in, model, layer, apply) = match src.repo_id {
        "Goodfire/Llama-3.3-70B-Instruct-SAE-l50" => (
            "Llama-3.3-70B-Instruct-SAE-l50.pt",
            8192,
            "meta-llama/Llama-3.3-70B-Instruct",
            50,
            false,
        ),
        "Goodfire/Llama-3.1-8B-Instruct-SAE-l19" => (
            "Llama-3.1-8B-Instruct-SAE-l19.pth",
            4096,
            "meta-llama/Llama-3.1-8B-Instruct",
            19,
            false,
        ),
        other => {
            return Err(src.error(
                src.folder,
                format!("unsupported Goodfire repository {other}"),
            ));
        }
    };
    if src.folder != file {
        return Err(src.error(
            src.folder,
            format!("unsupported Goodfire SAE (expected {file})"),
        ));
    }
    let cfg = obj([
        ("architecture", json!("standard")),
        ("d_in", json!(d_in)),
        ("d_sae", json!(65536)),
        ("model_name", json!(model)),
        (
            "hook_name",
            json!(format!("blocks.{layer}.hook_resid_post")),
        ),
        ("hook_head_index", Value::Null),
        ("dataset_path", json!("lmsys/lmsys-chat-1m")),
        ("apply_b_dec_to_input", json!(apply)),
        ("device", json!("cpu")),
    ]);
    let weights = src.get(file)?;
    let conv = src.conversion.as_str();
    let mut raw = read_torch(&weights, conv)?;
    let mut tensors = std::collections::BTreeMap::new();
    for (from, to, t) in [
        ("encoder_linear.weight", "W_enc", true),
        ("decoder_linear.weight", "W_dec", true),
        ("encoder_linear.bias", "b_enc", false),
        ("decoder_linear.bias", "b_dec", false),
    ] {
        let v = take(&mut raw, from, &weights, conv)?;
        let v = if t {
            transpose(v, from, &weights, conv)?
        } else {
            v
        };
        tensors.insert(to.to_string(), v);
    }
    Ok(Converted {
        cfg,
        tensors,
        weights,
    })
}

/// SAELens's `get_deepseek_r1_config_from_hf` and its loader.
pub(super) fn deepseek_r1(src: &Source<'_>) -> Result<Converted> {
    let folder = src.folder;
    let layer = number_after(folder, "l")
        .ok_or_else(|| src.error(folder, "the file name has no layer (l<N>)"))?;
    let cfg = obj([
        ("architecture", json!("standard")),
        ("d_in", json!(4096)),
        ("d_sae", json!(4096 * 16)),
        ("dtype", json!("bfloat16")),
        ("context_size", json!(1024)),
        (
            "model_name",
            json!("deepseek-ai/DeepSeek-R1-Distill-Llama-8B"),
        ),
        (
            "hook_name",
            json!(format!("blocks.{layer}.hook_resid_post")),
        ),
        ("hook_head_index", Value::Null),
        ("prepend_bos", json!(true)),
        ("dataset_path", json!("lmsys/lmsys-chat-1m")),
        ("dataset_trust_remote_code", json!(true)),
        ("sae_lens_training_version", Value::Null),
        ("activation_fn", json!("relu")),
        ("normalize_activations", json!("none")),
        ("device", json!("cpu")),
        ("apply_b_dec_to_input", json!(false)),
        ("finetuning_scaling_factor", json!(false)),
    ]);
    let weights = src.get(folder)?;
    let conv = src.conversion.as_str();
    let mut raw = read_torch(&weights, conv)?;
    let tensors = encoder_decoder(&mut raw, &weights, conv)?;
    Ok(Converted {
        cfg,
        tensors,
        weights,
    })
}

/// Qwen Scope's base models: the model key in the repository id, the HF id and d_model.
const QWEN_SCOPE_MODELS: [(&str, &str, usize); 7] = [
    ("Qwen3-1.7B-Base", "Qwen/Qwen3-1.7B-Base", 2048),
    ("Qwen3-8B-Base", "Qwen/Qwen3-8B-Base", 4096),
    ("Qwen3-30B-A3B-Base", "Qwen/Qwen3-30B-A3B-Base", 2048),
    ("Qwen3.5-2B-Base", "Qwen/Qwen3.5-2B-Base", 2048),
    ("Qwen3.5-9B-Base", "Qwen/Qwen3.5-9B-Base", 4096),
    ("Qwen3.5-27B", "Qwen/Qwen3.5-27B", 5120),
    ("Qwen3.5-35B-A3B-Base", "Qwen/Qwen3.5-35B-A3B-Base", 2048),
];

/// `SAE-Res-{model}-W{N}K-L0_{K}` → (model, N·1024, K), as SAELens's greedy regex.
fn parse_qwen_scope_repo(repo: &str) -> Option<(&str, usize, usize)> {
    let start = repo.find("SAE-Res-")? + "SAE-Res-".len();
    let rest = &repo[start..];
    // Greedy `(.+)`: the last `-W<digits>K-L0_<digits>` wins.
    let mut found = None;
    for (i, _) in rest.match_indices("-W") {
        let tail = &rest[i + 2..];
        let n: String = tail.chars().take_while(char::is_ascii_digit).collect();
        if n.is_empty() || i == 0 {
            continue;
        }
        let Some(after) = tail[n.len()..].strip_prefix("K-L0_") else {
            continue;
        };
        let k: String = after.chars().take_while(char::is_ascii_digit).collect();
        if k.is_empty() {
            continue;
        }
        found = Some((&rest[..i], n.parse::<usize>().ok()? * 1024, k.parse().ok()?));
    }
    found
}

/// SAELens's `get_qwen_scope_config_from_hf` and `qwen_scope_sae_huggingface_loader`.
pub(super) fn qwen_scope(src: &Source<'_>) -> Result<Converted> {
    let folder = src.folder;
    let layer = number_after(folder, "layer")
        .filter(|_| folder.contains(".sae.pt"))
        .ok_or_else(|| src.error(folder, "the file is not layer<N>.sae.pt"))?;
    let (key, d_sae, k) = parse_qwen_scope_repo(src.repo_id).ok_or_else(|| {
        src.error(
            folder,
            "the repository id is not SAE-Res-<model>-W<N>K-L0_<K>",
        )
    })?;
    let (_, model_name, d_in) = QWEN_SCOPE_MODELS
        .iter()
        .find(|(m, _, _)| *m == key)
        .copied()
        .ok_or_else(|| src.error(folder, format!("unknown Qwen Scope base model {key}")))?;
    let cfg = obj([
        ("architecture", json!("topk")),
        ("activation_fn", json!("topk")),
        ("activation_fn_kwargs", json!({"k": k})),
        ("d_in", json!(d_in)),
        ("d_sae", json!(d_sae)),
        ("dtype", json!("float32")),
        ("context_size", json!(1024)),
        ("model_name", json!(model_name)),
        (
            "hook_name",
            json!(format!("blocks.{layer}.hook_resid_post")),
        ),
        ("hf_hook_name", json!(format!("model.layers.{layer}"))),
        ("hook_head_index", Value::Null),
        ("prepend_bos", json!(true)),
        ("dataset_path", Value::Null),
        ("sae_lens_training_version", Value::Null),
        ("normalize_activations", json!("none")),
        ("device", json!("cpu")),
        ("apply_b_dec_to_input", json!(false)),
        ("finetuning_scaling_factor", json!(false)),
    ]);
    let weights = src.get(folder)?;
    let conv = src.conversion.as_str();
    let mut raw = read_torch(&weights, conv)?;
    let mut tensors = std::collections::BTreeMap::new();
    for (name, t) in [
        ("W_enc", true),
        ("W_dec", true),
        ("b_enc", false),
        ("b_dec", false),
    ] {
        let v = take(&mut raw, name, &weights, conv)?;
        let v = if t {
            transpose(v, name, &weights, conv)?
        } else {
            v
        };
        tensors.insert(name.to_string(), v);
    }
    Ok(Converted {
        cfg,
        tensors,
        weights,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_qwen_scope_repo;

    #[test]
    fn qwen_scope_repo_ids_parse_as_saelens_regex() {
        assert_eq!(
            parse_qwen_scope_repo("Qwen/SAE-Res-Qwen3-1.7B-Base-W32K-L0_50"),
            Some(("Qwen3-1.7B-Base", 32 * 1024, 50))
        );
        assert_eq!(
            parse_qwen_scope_repo("Qwen/SAE-Res-Qwen3.5-35B-A3B-Base-W64K-L0_100"),
            Some(("Qwen3.5-35B-A3B-Base", 64 * 1024, 100))
        );
        assert_eq!(parse_qwen_scope_repo("Qwen/other"), None);
    }
}

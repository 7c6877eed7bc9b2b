//! Small models for tests and examples that need GPT-2's real tokenizer.
//!
//! The committed tiny GPT-2 fixture has a 1 000-token vocabulary; corpora tokenised with GPT-2's
//! real tokenizer need all 50 257 ids. [`widen_gpt2_vocab`] writes a copy of a small checkpoint
//! whose embedding is tiled up to a larger vocabulary (row `i` = original row `i mod V`), so
//! the model is tiny, deterministic and real-valued, and accepts any GPT-2 token.

// Writes test fixtures, not research outputs.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::Path;

use sae_core::StorageDtype;
use sae_core::safetensors_io::{SafetensorsFile, write_safetensors};

use crate::error::{ModelError, Result};

/// Copies the GPT-2 checkpoint in `src` (config.json + model.safetensors) to `dst` with its
/// vocabulary widened to `vocab_size` by tiling `wte`, and places GPT-2's tokenizer files
/// (`encoder.json`, `vocab.bpe`) from `tokenizer_dir` beside it.
pub fn widen_gpt2_vocab(
    src: &Path,
    tokenizer_dir: &Path,
    dst: &Path,
    vocab_size: usize,
) -> Result<()> {
    std::fs::create_dir_all(dst).map_err(|e| ModelError::Io {
        path: dst.to_path_buf(),
        source: e,
    })?;
    let cfg_path = src.join("config.json");
    let mut cfg: serde_json::Value = crate::config::read_json(&cfg_path, "config.json")?;
    let old_vocab = cfg["vocab_size"].as_u64().unwrap_or(0) as usize;
    cfg["vocab_size"] = vocab_size.into();
    cfg["bos_token_id"] = (vocab_size - 1).into();
    cfg["eos_token_id"] = (vocab_size - 1).into();
    let cfg_out = dst.join("config.json");
    std::fs::write(
        &cfg_out,
        serde_json::to_vec_pretty(&cfg).unwrap_or_default(),
    )
    .map_err(|e| ModelError::Io {
        path: cfg_out.clone(),
        source: e,
    })?;
    let mut tensors = SafetensorsFile::open(src.join("model.safetensors"))?.read_all()?;
    let key = if tensors.contains_key("wte.weight") {
        "wte.weight"
    } else {
        "transformer.wte.weight"
    };
    let wte = tensors
        .remove(key)
        .ok_or_else(|| ModelError::InvalidInput(format!("{}: no wte.weight", src.display())))?;
    let d = wte.shape.get(1).copied().unwrap_or(0);
    if old_vocab == 0 || wte.shape[0] != old_vocab {
        return Err(ModelError::InvalidInput(format!(
            "{}: wte shape {:?} vs vocab {old_vocab}",
            src.display(),
            wte.shape
        )));
    }
    let mut data = Vec::with_capacity(vocab_size * d);
    for i in 0..vocab_size {
        let r = i % old_vocab;
        data.extend_from_slice(&wte.data[r * d..(r + 1) * d]);
    }
    tensors.insert(
        key.to_string(),
        sae_core::HostTensor::new(vec![vocab_size, d], data),
    );
    let tensors: BTreeMap<_, _> = tensors.into_iter().collect();
    write_safetensors(dst.join("model.safetensors"), &tensors, StorageDtype::F32)?;
    for f in ["encoder.json", "vocab.bpe"] {
        std::fs::copy(tokenizer_dir.join(f), dst.join(f)).map_err(|e| ModelError::Io {
            path: tokenizer_dir.join(f),
            source: e,
        })?;
    }
    Ok(())
}

/// A gemma3 GGUF holding metadata only (no tensors): enough to reach the model builder's
/// checks. `overrides` replace `gemma3.*` integers by key suffix (e.g. `("block_count", 0)`); a key
/// not among them is added.
pub fn gemma3_metadata_gguf(overrides: &[(&str, u64)]) -> Vec<u8> {
    fn s(b: &mut Vec<u8>, x: &str) {
        b.extend_from_slice(&(x.len() as u64).to_le_bytes());
        b.extend_from_slice(x.as_bytes());
    }
    let mut ints: Vec<(String, u64)> = [
        ("embedding_length", 64),
        ("feed_forward_length", 128),
        ("block_count", 2),
        ("attention.head_count", 4),
        ("attention.head_count_kv", 1),
        ("attention.key_length", 16),
        ("attention.sliding_window", 32),
        ("context_length", 128),
    ]
    .iter()
    .map(|(k, v)| (format!("gemma3.{k}"), *v))
    .collect();
    for (k, v) in overrides {
        match ints.iter_mut().find(|(n, _)| n.ends_with(k)) {
            Some(e) => e.1 = *v,
            None => ints.push((format!("gemma3.{k}"), *v)),
        }
    }
    let mut b = b"GGUF".to_vec();
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes()); // tensors
    b.extend_from_slice(&(ints.len() as u64 + 2).to_le_bytes());
    s(&mut b, "general.architecture");
    b.extend_from_slice(&8u32.to_le_bytes());
    s(&mut b, "gemma3");
    s(&mut b, "tokenizer.ggml.tokens");
    b.extend_from_slice(&9u32.to_le_bytes());
    b.extend_from_slice(&8u32.to_le_bytes());
    b.extend_from_slice(&3u64.to_le_bytes());
    for t in ["<pad>", "<eos>", "<bos>"] {
        s(&mut b, t);
    }
    for (k, v) in &ints {
        s(&mut b, k);
        b.extend_from_slice(&10u32.to_le_bytes());
        b.extend_from_slice(&v.to_le_bytes());
    }
    b
}

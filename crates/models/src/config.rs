//! Model configs: serde mirrors of HF `config.json`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// GPT-2's `config.json` (the fields the forward pass needs; others are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpt2Config {
    /// Vocabulary size (50257 for the released models).
    #[serde(default = "default_vocab")]
    pub vocab_size: usize,
    /// Context length.
    #[serde(default = "default_positions")]
    pub n_positions: usize,
    /// d_model.
    #[serde(default = "default_embd")]
    pub n_embd: usize,
    /// Number of blocks.
    #[serde(default = "default_layers")]
    pub n_layer: usize,
    /// Attention heads.
    #[serde(default = "default_heads")]
    pub n_head: usize,
    /// MLP width; `null` means 4·d_model.
    #[serde(default)]
    pub n_inner: Option<usize>,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// Activation; GPT-2 uses `gelu_new`.
    #[serde(default = "default_act")]
    pub activation_function: String,
    /// BOS token id.
    #[serde(default = "default_bos")]
    pub bos_token_id: u32,
    /// EOS token id.
    #[serde(default = "default_bos")]
    pub eos_token_id: u32,
    /// Scale attention scores by 1/√d_head (always true for GPT-2).
    #[serde(default = "default_true")]
    pub scale_attn_weights: bool,
    /// `model_type`, checked to be `gpt2`.
    #[serde(default)]
    pub model_type: Option<String>,
}

fn default_vocab() -> usize {
    50257
}
fn default_positions() -> usize {
    1024
}
fn default_embd() -> usize {
    768
}
fn default_layers() -> usize {
    12
}
fn default_heads() -> usize {
    12
}
fn default_eps() -> f64 {
    1e-5
}
fn default_act() -> String {
    "gelu_new".into()
}
fn default_bos() -> u32 {
    50256
}
fn default_true() -> bool {
    true
}

impl Gpt2Config {
    /// GPT-2 small's config.
    pub fn gpt2_small() -> Self {
        serde_json::from_str("{}").unwrap_or_else(|_| unreachable_default())
    }

    /// Reads and checks `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let cfg: Gpt2Config = read_json(path, "GPT-2 config")?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Checks the values the forward pass relies on.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |message: String| ModelError::Config {
            path: path.to_path_buf(),
            message,
        };
        if let Some(t) = &self.model_type
            && t != "gpt2"
        {
            return Err(bad(format!("model_type is `{t}`, expected `gpt2`")));
        }
        if self.n_head == 0 || !self.n_embd.is_multiple_of(self.n_head) {
            return Err(bad(format!(
                "n_embd {} is not a multiple of n_head {}",
                self.n_embd, self.n_head
            )));
        }
        if !matches!(
            self.activation_function.as_str(),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu"
        ) {
            return Err(bad(format!(
                "activation_function `{}` is not supported (gelu_new, gelu_pytorch_tanh, gelu)",
                self.activation_function
            )));
        }
        if self.vocab_size == 0 || self.n_layer == 0 || self.n_positions == 0 {
            return Err(bad(
                "vocab_size, n_layer and n_positions must be positive".into()
            ));
        }
        check_sizes(
            path,
            &[
                ("vocab_size", self.vocab_size, MAX_DIM),
                ("n_positions", self.n_positions, MAX_DIM),
                ("n_embd", self.n_embd, MAX_DIM),
                ("n_inner", self.d_mlp(), MAX_DIM),
                ("n_layer", self.n_layer, MAX_LAYERS),
            ],
        )
    }

    /// MLP width.
    pub fn d_mlp(&self) -> usize {
        // Saturating: validation calls this before it has bounded n_embd.
        self.n_inner.unwrap_or(self.n_embd.saturating_mul(4))
    }

    /// Head width.
    pub fn d_head(&self) -> usize {
        self.n_embd / self.n_head
    }
}

/// The most blocks a config may declare (the largest released models have under 200); a header
/// beyond it is corrupt, and would otherwise size allocations.
pub const MAX_LAYERS: usize = 1024;
/// The most a width, a vocabulary or a context length may be (2^20).
pub const MAX_DIM: usize = 1 << 20;

/// Checks that each `(field, value, max)` is in `1..=max` (so that every product of two of them
/// fits in memory arithmetic), as [`ModelError::Config`] naming the field.
pub(crate) fn check_sizes(path: &Path, fields: &[(&str, usize, usize)]) -> Result<()> {
    for &(field, value, max) in fields {
        if value == 0 || value > max {
            return Err(ModelError::Config {
                path: path.to_path_buf(),
                message: format!("{field} is {value}, expected 1..={max}"),
            });
        }
    }
    Ok(())
}

#[cold]
#[allow(clippy::panic)]
fn unreachable_default() -> ! {
    panic!("the empty GPT-2 config parses with serde defaults")
}

/// Reads a JSON file into `T`; I/O and parse failures name the file (`what` says what it is).
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ModelError::Config {
        path: path.to_path_buf(),
        message: format!("malformed {what}: {e}"),
    })
}

/// The weight files of an HF model directory: the shards named by
/// `model.safetensors.index.json` when it exists, else `model.safetensors`.
pub fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if !index.exists() {
        return Ok(vec![dir.join("model.safetensors")]);
    }
    let v: serde_json::Value = read_json(&index, "safetensors index")?;
    let mut shards: Vec<String> = v
        .get("weight_map")
        .and_then(serde_json::Value::as_object)
        .map(|m| {
            m.values()
                .filter_map(serde_json::Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    shards.sort();
    shards.dedup();
    Ok(shards.into_iter().map(|s| dir.join(s)).collect())
}

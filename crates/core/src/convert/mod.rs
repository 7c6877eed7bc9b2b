//! SAELens's converters: SAEs published in third-party layouts (Gemma Scope's `params.npz`,
//! Gemma Scope 2, Llama Scope, dictionary_learning's `ae.pt`, Qwen Scope, Goodfire, the transcoder releases, ...) loaded into the same [`Sae`] as SAELens's own
//! layout, with the config SAELens derives for each (from folder names, repository ids and the
//! release's own config files) and the same folded/unfolded semantics.
//!
//! Each converter mirrors one function of SAELens's `pretrained_sae_loaders.py`: it builds the
//! config dict and state dict SAELens builds; the shared tail then applies the release's config
//! overrides, SAELens's `handle_config_defaulting` (configs without a version take the pre-6
//! path, [`SaeConfig::from_json_value`]), loads the tensors with their shapes checked against
//! the config, and folds the registry's `norm_scaling_factor` into `expected_average_only_in`
//! SAEs, as `SAE.from_pretrained` does.

mod dictionary_learning;
pub mod files;
mod gemma_scope;
mod gemma_scope_2;
mod llama_scope;
mod temporal;
mod torch_checkpoints;
mod transcoders;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::SaeConfig;
use crate::error::{Result, SaeError};
use crate::hub::{HubClient, HubRepo};
use crate::sae::Sae;
use crate::safetensors_io::HostTensor;

/// SAELens's conversion functions (`conversion_func` in its registry), by SAELens's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Conversion {
    /// `gemma_2`: Gemma Scope (Gemma 2) JumpReLU SAEs, `params.npz`.
    #[serde(rename = "gemma_2")]
    Gemma2,
    /// `gemma_3`: Gemma Scope 2 (Gemma 3) SAEs, transcoders and CLT layers,
    /// `params.safetensors`.
    #[serde(rename = "gemma_3")]
    Gemma3,
    /// `gemma_2_transcoder`: Gemma Scope transcoders, `params.npz`.
    #[serde(rename = "gemma_2_transcoder")]
    Gemma2Transcoder,
    /// `llama_scope`: Llama Scope (Llama 3.1 8B), `hyperparams.json` + `final.safetensors`.
    LlamaScope,
    /// `llama_scope_r1_distill`: Llama Scope R1 distill, `config.json` + safetensors.
    #[serde(rename = "llama_scope_r1_distill")]
    LlamaScopeR1Distill,
    /// `dictionary_learning_1`: dictionary_learning's `config.json` + `ae.pt`.
    #[serde(rename = "dictionary_learning_1")]
    DictionaryLearning1,
    /// `mwhanna_transcoder`: per-layer transcoder safetensors + `wandb-config.yaml`.
    MwhannaTranscoder,
    /// `mntss_clt_layer_transcoder`: one layer of a cross-layer transcoder, decoders summed.
    MntssCltLayerTranscoder,
    /// `connor_rob_hook_z`: attention-output (`hook_z`) SAEs as `.pt` + `_cfg.json`.
    ConnorRobHookZ,
    /// `goodfire`: Goodfire's Llama SAEs, `.pt`/`.pth`.
    Goodfire,
    /// `deepseek_r1`: the DeepSeek R1 distill SAE, `.pt`.
    #[serde(rename = "deepseek_r1")]
    DeepseekR1,
    /// `qwen_scope`: Qwen Scope TopK SAEs, `layer{n}.sae.pt`.
    QwenScope,
    /// `temporal`: temporal SAEs (attention over earlier positions in the encoder), loaded as
    /// [`crate::temporal::TemporalSae`].
    Temporal,
}

impl Conversion {
    /// SAELens's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Conversion::Gemma2 => "gemma_2",
            Conversion::Gemma3 => "gemma_3",
            Conversion::Gemma2Transcoder => "gemma_2_transcoder",
            Conversion::LlamaScope => "llama_scope",
            Conversion::LlamaScopeR1Distill => "llama_scope_r1_distill",
            Conversion::DictionaryLearning1 => "dictionary_learning_1",
            Conversion::MwhannaTranscoder => "mwhanna_transcoder",
            Conversion::MntssCltLayerTranscoder => "mntss_clt_layer_transcoder",
            Conversion::ConnorRobHookZ => "connor_rob_hook_z",
            Conversion::Goodfire => "goodfire",
            Conversion::DeepseekR1 => "deepseek_r1",
            Conversion::QwenScope => "qwen_scope",
            Conversion::Temporal => "temporal",
        }
    }

    /// Whether SAEs of this layout load as a per-position [`Sae`]; `temporal` ones encode
    /// sequences and load as [`crate::temporal::TemporalSae`] instead.
    pub fn is_per_position(self) -> bool {
        self != Conversion::Temporal
    }
}

impl fmt::Display for Conversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a converter reads its files: a hub repository and the registry's folder (or file)
/// name, through the cache or the hub.
pub struct Source<'a> {
    hub: &'a HubClient,
    repo: HubRepo,
    /// The repository id, e.g. `google/gemma-scope-2b-pt-res`.
    pub repo_id: &'a str,
    /// The registry's `path`: a folder for most layouts, a file for `.pt` releases.
    pub folder: &'a str,
    /// The conversion.
    pub conversion: Conversion,
}

impl<'a> Source<'a> {
    /// A source in `repo_id` at `folder`.
    pub fn new(
        hub: &'a HubClient,
        repo_id: &'a str,
        folder: &'a str,
        conversion: Conversion,
    ) -> Self {
        Self {
            hub,
            repo: HubRepo::model(repo_id.to_string()),
            repo_id,
            folder: folder.trim_end_matches('/'),
            conversion,
        }
    }

    /// A file of the repository (cache first, then the hub unless offline).
    pub fn get(&self, file: &str) -> Result<PathBuf> {
        self.hub.get(&self.repo, file)
    }

    /// A file that SAELens treats as optional (it falls back when the hub says it is absent).
    pub fn get_optional(&self, file: &str) -> Option<PathBuf> {
        match self.get(file) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::debug!(repo = self.repo_id, file, error = %e, "optional file absent");
                None
            }
        }
    }

    /// The hub path this source names, for error messages.
    pub fn display_path(&self, file: &str) -> PathBuf {
        PathBuf::from(format!("{}/{}", self.repo_id, file))
    }

    /// A conversion error about `file`.
    pub fn error(&self, file: &str, message: impl Into<String>) -> SaeError {
        SaeError::Conversion {
            path: self.display_path(file),
            conversion: self.conversion.to_string(),
            message: message.into(),
        }
    }
}

/// What a converter produces: SAELens's config dict and state dict, before the shared tail.
pub struct Converted {
    /// The config dict, as SAELens's `get_*_config_from_hf` builds it (before overrides).
    pub cfg: Map<String, Value>,
    /// The state dict, by SAELens's names (`W_enc`, `W_dec`, `b_enc`, `b_dec`, ...).
    pub tensors: BTreeMap<String, HostTensor>,
    /// The weights file, for error messages.
    pub weights: PathBuf,
}

/// Reads one SAE of a converted release: the converter, then the release's config overrides
/// (which SAELens passes to every converter and each merges last), then SAELens's defaulting
/// and the shape-checked load. Folding of `norm_scaling_factor` is the caller's (it is the same
/// for every layout).
pub fn load(source: &Source<'_>, overrides: &Map<String, Value>, device: &Device) -> Result<Sae> {
    if !source.conversion.is_per_position() {
        return Err(SaeError::UnsupportedRelease {
            release: source.repo_id.to_string(),
            conversion: source.conversion.to_string(),
            why: "a temporal SAE encodes whole sequences: load it with \
                  sae_core::temporal_from_pretrained (the CLI's sae-encode does)"
                .into(),
        });
    }
    let Converted {
        mut cfg,
        tensors,
        weights,
    } = convert(source)?;
    for (k, v) in overrides {
        cfg.insert(k.clone(), v.clone());
    }
    let config = SaeConfig::from_json_value(Value::Object(cfg), &weights)?;
    Ok(Sae::from_host_tensors(config, tensors, &weights, device)?.0)
}

/// Reads one temporal SAE (`temporal` layout), with the overrides SAELens passes.
pub fn load_temporal(
    source: &Source<'_>,
    overrides: &Map<String, Value>,
    device: &Device,
) -> Result<crate::temporal::TemporalSae> {
    let Converted {
        mut cfg,
        tensors,
        weights,
    } = convert(source)?;
    for (k, v) in overrides {
        cfg.insert(k.clone(), v.clone());
    }
    let config = crate::temporal::TemporalConfig::from_json(&cfg, &weights)?;
    crate::temporal::TemporalSae::from_host_tensors(config, tensors, &weights, device)
}

/// Runs the converter of `source.conversion`.
pub fn convert(source: &Source<'_>) -> Result<Converted> {
    match source.conversion {
        Conversion::Gemma2 => gemma_scope::gemma_2(source),
        Conversion::Gemma2Transcoder => gemma_scope::gemma_2_transcoder(source),
        Conversion::Gemma3 => gemma_scope_2::gemma_3(source),
        Conversion::LlamaScope => llama_scope::llama_scope(source),
        Conversion::LlamaScopeR1Distill => llama_scope::llama_scope_r1_distill(source),
        Conversion::DictionaryLearning1 => dictionary_learning::dictionary_learning_1(source),
        Conversion::MwhannaTranscoder => transcoders::mwhanna(source),
        Conversion::MntssCltLayerTranscoder => transcoders::mntss_clt_layer(source),
        Conversion::ConnorRobHookZ => torch_checkpoints::connor_rob_hook_z(source),
        Conversion::Goodfire => torch_checkpoints::goodfire(source),
        Conversion::DeepseekR1 => torch_checkpoints::deepseek_r1(source),
        Conversion::QwenScope => torch_checkpoints::qwen_scope(source),
        Conversion::Temporal => temporal::temporal(source),
    }
}

/// Builds a JSON object from `(key, value)` pairs.
pub(crate) fn obj<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Reads a JSON file into a map.
pub(crate) fn read_json(path: &Path, source: &Source<'_>) -> Result<Map<String, Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| SaeError::io(path, e))?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(source.error(&path.display().to_string(), "expected a JSON object")),
        Err(e) => Err(source.error(&path.display().to_string(), format!("invalid JSON: {e}"))),
    }
}

/// Reads a YAML file into a JSON map.
pub(crate) fn read_yaml(path: &Path, source: &Source<'_>) -> Result<Map<String, Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| SaeError::io(path, e))?;
    match serde_yaml_ng::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(source.error(&path.display().to_string(), "expected a YAML mapping")),
        Err(e) => Err(source.error(&path.display().to_string(), format!("invalid YAML: {e}"))),
    }
}

/// A required field of a third-party config, as a positive integer.
pub(crate) fn usize_at(
    m: &Map<String, Value>,
    key: &str,
    file: &str,
    source: &Source<'_>,
) -> Result<usize> {
    m.get(key)
        .and_then(Value::as_u64)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| {
            source.error(
                file,
                format!("`{key}` is missing or not a non-negative integer"),
            )
        })
}

/// A required field of a third-party config.
pub(crate) fn field<'m>(
    m: &'m Map<String, Value>,
    key: &str,
    file: &str,
    source: &Source<'_>,
) -> Result<&'m Value> {
    m.get(key)
        .ok_or_else(|| source.error(file, format!("no `{key}` field")))
}

/// The first integer after `prefix` in `s` (`layer_12` → 12), as SAELens's `re.search`.
pub(crate) fn number_after(s: &str, prefix: &str) -> Option<usize> {
    let mut rest = s;
    while let Some(i) = rest.find(prefix) {
        let tail = &rest[i + prefix.len()..];
        let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            return digits.parse().ok();
        }
        rest = &rest[i + prefix.len()..];
    }
    None
}

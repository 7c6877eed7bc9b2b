//! Where a model comes from: a name resolved through the HF cache / hub, or a local directory.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sae_core::burn::tensor::Device;
use sae_core::{HubClient, HubRepo};

use crate::error::{ModelError, Result};
use crate::gpt2::{Gpt2, Processing};
use crate::tokenizer::Gpt2Tokenizer;

/// A model by name or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelSource {
    /// A GPT-2 size from the hub: `gpt2`, `gpt2-medium`, `gpt2-large`, `gpt2-xl`.
    Gpt2Hub(String),
    /// `gemma-3-270m` (issue 4; not implemented yet).
    Gemma3_270m,
    /// A directory with `config.json`, `model.safetensors` and a tokenizer.
    Dir(PathBuf),
}

impl FromStr for ModelSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gpt2" | "gpt2-small" => Ok(ModelSource::Gpt2Hub("gpt2".into())),
            "gpt2-medium" | "gpt2-large" | "gpt2-xl" => Ok(ModelSource::Gpt2Hub(s.into())),
            "gemma-3-270m" => Ok(ModelSource::Gemma3_270m),
            _ if Path::new(s).is_dir() => Ok(ModelSource::Dir(PathBuf::from(s))),
            _ => Err(format!(
                "`{s}` is not a known model (gpt2, gpt2-medium, gpt2-large, gpt2-xl, gemma-3-270m) nor a directory"
            )),
        }
    }
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSource::Gpt2Hub(n) => f.write_str(n),
            ModelSource::Gemma3_270m => f.write_str("gemma-3-270m"),
            ModelSource::Dir(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The hub repository of a GPT-2 size.
pub fn gpt2_repo(name: &str) -> HubRepo {
    HubRepo::model(format!("openai-community/{name}"))
}

impl ModelSource {
    /// The local directory holding the model's files, fetching them through the hub client when
    /// the source is a name.
    pub fn resolve_dir(&self, hub: &HubClient) -> Result<PathBuf> {
        match self {
            ModelSource::Dir(d) => Ok(d.clone()),
            ModelSource::Gpt2Hub(name) => {
                let repo = gpt2_repo(name);
                let mut dir = PathBuf::new();
                for f in ["config.json", "model.safetensors", "tokenizer.json"] {
                    let p = hub.get(&repo, f)?;
                    dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
                }
                Ok(dir)
            }
            ModelSource::Gemma3_270m => Err(ModelError::InvalidInput(
                "gemma-3-270m is not implemented yet (GGUF loading lands with issue 4)".into(),
            )),
        }
    }

    /// Loads a GPT-2 model and its tokenizer.
    pub fn load_gpt2(
        &self,
        hub: &HubClient,
        processing: Processing,
        device: &Device,
    ) -> Result<(Gpt2, Gpt2Tokenizer)> {
        let dir = self.resolve_dir(hub)?;
        let model = Gpt2::load(&dir, processing, device)?;
        let tok = Gpt2Tokenizer::from_dir(&dir)?;
        Ok((model, tok))
    }
}

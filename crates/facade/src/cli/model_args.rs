//! Flags shared by the commands that run a model.

use std::path::PathBuf;

use anyhow::Context;
use gpt2_gemma_models::{Gpt2, Gpt2Tokenizer, ModelSource, Processing};
use sae_core::{ComputeDevice, HubClient};

/// Which model and how to run it.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// The model: gpt2 (or gpt2-medium/-large/-xl) through the HF cache/hub, gemma-3-270m, or a
    /// directory with config.json, model.safetensors and a tokenizer.
    #[arg(long)]
    pub model: ModelSource,
    /// A GGUF file for --model gemma-3-270m.
    #[arg(long)]
    pub gguf: Option<PathBuf>,
    /// Run the checkpoint's own weights instead of TransformerLens's processed ones (fold_ln,
    /// center_writing_weights, center_unembed, fold_value_biases).
    #[arg(long)]
    pub no_processing: bool,
    /// Compute device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: ComputeDevice,
    /// Never use the network (same as HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
}

impl ModelArgs {
    /// The hub client these flags ask for.
    pub fn hub(&self) -> HubClient {
        let hub = HubClient::from_env();
        let offline = self.offline || hub.is_offline();
        hub.offline(offline)
    }

    /// Loads the model and its tokenizer.
    pub fn load(&self) -> anyhow::Result<(Gpt2, Gpt2Tokenizer)> {
        if self.gguf.is_some() {
            anyhow::bail!("--gguf needs GGUF support, which lands with Gemma (issue 4)");
        }
        let processing = if self.no_processing {
            Processing::None
        } else {
            Processing::TransformerLens
        };
        let dev = self.device.burn_device()?;
        self.model
            .load_gpt2(&self.hub(), processing, &dev)
            .with_context(|| format!("loading model {}", self.model))
    }
}

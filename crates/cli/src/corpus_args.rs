//! Flags naming a corpus and how it is cut into windows (shared by the commands that read text).

use std::path::PathBuf;

use activation_store::{HubDataset, SeparatorToken, StoreConfig, TextSource};
use gpt2_gemma_models::HookPoint;

/// Where the text comes from.
#[derive(Debug, Clone, clap::Args)]
pub struct CorpusArgs {
    /// A local corpus: .jsonl (one JSON object per line), .parquet (or a directory of them, the HF
    /// datasets layout) or plain text (documents separated by blank lines).
    #[arg(
        long,
        visible_alias = "corpus",
        env = "SAE_GEOMETRY_CORPUS",
        conflicts_with = "hub_dataset"
    )]
    pub dataset: Option<PathBuf>,
    /// A dataset on the HuggingFace hub (or in the local HF cache), e.g. NeelNanda/pile-10k.
    #[arg(long)]
    pub hub_dataset: Option<String>,
    /// The hub dataset's split.
    #[arg(long, default_value = "train")]
    pub split: String,
    /// The hub dataset's revision (script datasets such as Skylion007/openwebtext keep Parquet in
    /// refs/convert/parquet).
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// The field (JSONL) or column (Parquet) holding the text, or token ids for pre-tokenised data.
    #[arg(long, default_value = "text")]
    pub text_field: String,
}

impl CorpusArgs {
    /// The text source these flags name.
    pub fn source(&self, offline: bool) -> anyhow::Result<TextSource> {
        match (&self.dataset, &self.hub_dataset) {
            (Some(p), _) => Ok(TextSource::from_path(p, Some(&self.text_field))?),
            (None, Some(repo)) => {
                let mut h = HubDataset::new(repo.clone());
                h.split = self.split.clone();
                h.revision = self.revision.clone();
                h.column = self.text_field.clone();
                h.offline = offline;
                Ok(TextSource::Hub(h))
            }
            (None, None) => anyhow::bail!(
                "no corpus: pass --dataset FILE (or set SAE_GEOMETRY_CORPUS) or --hub-dataset REPO"
            ),
        }
    }
}

/// How windows are formed and batched (SAELens's ActivationsStore options).
#[derive(Debug, Clone, clap::Args)]
pub struct WindowArgs {
    /// The hook whose activations are used, in TransformerLens's naming.
    #[arg(long, default_value = "blocks.6.hook_resid_post")]
    pub hook: HookPoint,
    /// Tokens per window.
    #[arg(long, default_value_t = 128)]
    pub context_size: usize,
    /// Do not start every window with BOS.
    #[arg(long)]
    pub no_prepend_bos: bool,
    /// Token between packed documents: bos, eos, none or an id.
    #[arg(long, default_value = "bos")]
    pub separator: SeparatorToken,
    /// One window per document (shorter documents are dropped).
    #[arg(long)]
    pub disable_concat: bool,
    /// Windows per model forward pass (SAELens's store_batch_size_prompts).
    #[arg(long, default_value_t = 8)]
    pub model_batch_size: usize,
}

impl WindowArgs {
    /// The store configuration.
    pub fn store_config(&self) -> StoreConfig {
        let mut c = StoreConfig::new(self.hook, self.context_size);
        c.prepend_bos = !self.no_prepend_bos;
        c.separator = self.separator;
        c.disable_concat = self.disable_concat;
        c.store_batch_size_prompts = self.model_batch_size;
        c
    }
}

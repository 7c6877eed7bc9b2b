//! Datasets on the HuggingFace hub, such as the tutorial's `Skylion007/openwebtext` and
//! `NeelNanda/pile-10k`, read from their Parquet (or JSONL) files.
//!
//! The files of a split are found by listing the repository (through the hub when online, in
//! the local HF cache otherwise) and keeping those whose path names the split: `data/train-…`,
//! `train/…`, `{config}/train/0000.parquet` (the `refs/convert/parquet` layout). Each file is
//! fetched through [`sae_core::HubClient`], so `HF_HUB_OFFLINE`, `HF_HUB_CACHE` and `HF_ENDPOINT`
//! behave as in Python.

use serde::{Deserialize, Serialize};

use sae_core::{HubClient, HubRepo};

use crate::corpus::{Document, TextSource};
use crate::error::{Result, StoreError};

/// A dataset split on the hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubDataset {
    /// `owner/name`.
    pub repo: String,
    /// Branch, tag or commit. Script-based datasets (openwebtext) keep Parquet in
    /// `refs/convert/parquet`.
    pub revision: String,
    /// The split (`train`).
    pub split: String,
    /// The text (or token) column.
    pub column: String,
    /// Where the HF cache lives (`None`: from the environment, as huggingface_hub).
    pub cache_dir: Option<std::path::PathBuf>,
    /// Never use the network, whatever `HF_HUB_OFFLINE` says.
    pub offline: bool,
}

impl HubDataset {
    /// The `train` split's `text` column at `main`.
    pub fn new(repo: impl Into<String>) -> Self {
        Self {
            repo: repo.into(),
            revision: "main".into(),
            split: "train".into(),
            column: crate::corpus::DEFAULT_TEXT_FIELD.into(),
            cache_dir: None,
            offline: false,
        }
    }

    /// Short description for manifests.
    pub fn describe(&self) -> String {
        format!(
            "hub:{}@{}#{}:{}",
            self.repo, self.revision, self.split, self.column
        )
    }

    fn client(&self) -> HubClient {
        let mut c = HubClient::from_env();
        if self.offline {
            c = c.offline(true);
        }
        match &self.cache_dir {
            Some(d) => c.with_cache_dir(d.clone()),
            None => c,
        }
    }

    /// The files of the split, in order.
    pub fn split_files(&self) -> Result<Vec<String>> {
        let repo = HubRepo::dataset(self.repo.clone()).with_revision(self.revision.clone());
        let files = self.client().list_files_cached_first(&repo)?;
        let data: Vec<&String> = files
            .iter()
            .filter(|f| f.ends_with(".parquet") || f.ends_with(".jsonl") || f.ends_with(".json"))
            .collect();
        let picked: Vec<String> = data
            .iter()
            .filter(|f| names_split(f, &self.split))
            .map(|f| f.to_string())
            .collect();
        if picked.is_empty() {
            return Err(StoreError::HubDataset {
                repo: self.repo.clone(),
                split: self.split.clone(),
                message: format!(
                    "{} data files in the repository, none names the split",
                    data.len()
                ),
            });
        }
        Ok(picked)
    }

    /// Local sources for the split's files (downloading them when online).
    pub fn resolve(&self) -> Result<ResolvedHubDataset> {
        let repo = HubRepo::dataset(self.repo.clone()).with_revision(self.revision.clone());
        let client = self.client();
        let mut sources = Vec::new();
        for f in self.split_files()? {
            let path = client.get(&repo, &f)?;
            sources.push(TextSource::from_path(&path, Some(&self.column))?);
        }
        Ok(ResolvedHubDataset { sources })
    }
}

/// Whether a repository path belongs to `split`: a path component equal to it, or a file name
/// starting with `{split}-`, `{split}.` or `{split}_`.
fn names_split(path: &str, split: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let Some((file, dirs)) = parts.split_last() else {
        return false;
    };
    dirs.contains(&split)
        || [
            format!("{split}-"),
            format!("{split}."),
            format!("{split}_"),
        ]
        .iter()
        .any(|p| file.starts_with(p.as_str()))
}

/// A hub split's files, as local sources.
#[derive(Debug, Clone)]
pub struct ResolvedHubDataset {
    /// One source per file, in order.
    pub sources: Vec<TextSource>,
}

impl ResolvedHubDataset {
    /// All files' documents, one after the other.
    pub fn documents(&self) -> Result<Box<dyn Iterator<Item = Result<Document>> + Send>> {
        let sources = self.sources.clone();
        let mut iters = Vec::with_capacity(sources.len());
        for s in &sources {
            iters.push(s.documents()?);
        }
        Ok(Box::new(iters.into_iter().flatten()))
    }
}

#[cfg(test)]
mod tests {
    use super::names_split;

    #[test]
    fn split_names() {
        assert!(names_split("data/train-00000-of-00001.parquet", "train"));
        assert!(names_split("plain_text/train/0000.parquet", "train"));
        assert!(!names_split("data/validation-00000.parquet", "train"));
        assert!(!names_split("data/trainer.parquet", "train"));
    }
}

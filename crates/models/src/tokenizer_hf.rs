//! The tokenizer of a model directory's `tokenizer.json` (Llama 3, Qwen 2.5/3: byte-level BPE
//! with their own pre-tokenizer regexes and added special tokens), through the `tokenizers`
//! crate, with BOS/EOS from the model's `config.json`.

use std::path::{Path, PathBuf};

use tokenizers::Tokenizer;

use crate::error::{ModelError, Result};
use crate::gpt2::BosPolicy;

/// A `tokenizer.json` tokenizer with the model's BOS and EOS.
#[derive(Clone)]
pub struct HfTokenizer {
    inner: Tokenizer,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    source: PathBuf,
}

impl std::fmt::Debug for HfTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfTokenizer")
            .field("source", &self.source)
            .field("vocab_size", &self.inner.get_vocab_size(true))
            .finish()
    }
}

fn tok_err(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl HfTokenizer {
    /// From a `tokenizer.json`, with the model's BOS (Qwen has none) and EOS ids.
    pub fn from_tokenizer_json(
        path: impl AsRef<Path>,
        bos_id: Option<u32>,
        eos_id: Option<u32>,
    ) -> Result<Self> {
        let path = path.as_ref();
        let inner = Tokenizer::from_file(path).map_err(|e| tok_err(path, e))?;
        Ok(Self {
            inner,
            bos_id,
            eos_id,
            source: path.to_path_buf(),
        })
    }

    /// BOS id, if the model has one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// EOS id, if the model has one.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// Token ids of a text, special tokens in the text recognised, nothing added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| tok_err(&self.source, e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Token ids with BOS prepended when asked and the model has one.
    pub fn encode_with(&self, text: &str, bos: BosPolicy) -> Result<Vec<u32>> {
        let mut ids = self.encode(text)?;
        if let (BosPolicy::Prepend, Some(b)) = (bos, self.bos_id) {
            ids.insert(0, b);
        }
        Ok(ids)
    }

    /// Text of token ids.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| tok_err(&self.source, e))
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}

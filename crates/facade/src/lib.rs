//! # sae-geometry
//!
//! Find out what sparse-autoencoder latents mean, in Rust, on CPU or CUDA: feature splitting
//! across SAE widths, autointerp, patch scoping, and the analyses beyond the ARENA tutorial.
//!
//! This crate re-exports the workspace's libraries (the `sae-geometry` command-line tool is the
//! `sae-geometry-cli` crate, so that depending on this one pulls in no CLI parser, terminal
//! progress bars or log subscriber):
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`core`] | `sae-core` | SAELens SAEs on burn: config, load, encode/decode, save, registry, hub |
//! | [`models`] | `gpt2-gemma-models` | GPT-2 and Gemma with TransformerLens hook points |
//! | [`store`] | `activation-store` | corpora, activation caches, latent statistics, training |
//! | [`geometry`] | `latent-geometry` | UMAP, HDBSCAN, logit lens, feature splitting |
//! | [`autointerp`] | `autointerp` | explanation generation and scoring |
//! | [`patch_scoping`] | `patch-scoping` | the model explains a latent in its own words |
//! | [`plot`] | `sae-geometry-plot` | static figures: PNGs with title, labelled axes and legend |
//!
//! [`evidence`] joins them where one analysis needs another's measurements: cross-width families
//! weighed by co-firing (`store`) and description embeddings (`models`) in `geometry`.

pub mod evidence;

pub use activation_store as store;
pub use autointerp;
pub use gpt2_gemma_models as models;
pub use latent_geometry as geometry;
pub use patch_scoping;
pub use sae_core as core;
pub use sae_geometry_plot as plot;

pub use sae_core::{Result, Sae, SaeConfig, SaeError};

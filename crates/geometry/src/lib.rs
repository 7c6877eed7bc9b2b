//! # latent-geometry
//!
//! Not implemented yet (issue 5). This crate will hold UMAP and HDBSCAN with umap-learn / hdbscan
//! semantics, the logit lens, and the feature-splitting analysis with its tables and plots.

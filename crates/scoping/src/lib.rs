//! # patch-scoping
//!
//! Not implemented yet (issue 7). This crate will hold patch scoping: a latent's decoder direction
//! patched into the residual stream at a placeholder, scale sweeps and scale-tuning metrics.

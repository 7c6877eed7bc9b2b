//! # patch-scoping
//!
//! The model explains an SAE latent in its own words: the latent's decoder direction replaces
//! the residual stream entering a layer at a placeholder token of a "What is the meaning of the
//! word X?" prompt, on the prefill pass only, and the model's continuation is the explanation.
//!
//! - [`PatchPrompt`]: the tutorial's Gemma-turn prompt (or any template), placeholder positions
//!   found by token id;
//! - [`Patch`]: replace or add, absolute scales or relative to the residual's norm;
//! - [`sweep`](mod@sweep): many scales as one batch (one prefill, KV-cached decoding);
//!   [`generate_patch_scoping_explanation`] is the tutorial's single-scale function;
//! - [`tune_scales`]: self-similarity, entropy and cross-entropy per scale and the chosen scale;
//! - [`plot`]: the tuning curves as PNG and offline HTML;
//! - [`run_study`]: all of it in one call ([`StudyConfig`] → [`Study`], saved as JSON + plots).

pub mod error;
pub mod metrics;
pub mod patch;
pub mod plot;
pub mod prompt;
pub mod study;
pub mod sweep;

pub use error::{Result, ScopingError};
pub use metrics::{ScaleMetrics, TuningConfig, mean_token_embedding, residual_norm, tune_scales};
pub use patch::{Patch, PatchMode, ScaleKind, unit};
pub use prompt::{PatchPrompt, TUTORIAL_TEMPLATE, explanation_of};
pub use study::{Scales, Study, StudyConfig, run_study};
pub use sweep::{
    ScaleGeneration, SweepConfig, decoder_row, generate_patch_scoping_explanation, sweep,
    tutorial_sampling,
};

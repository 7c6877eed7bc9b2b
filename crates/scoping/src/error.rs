//! The one error type of `patch-scoping`.

use std::path::PathBuf;

/// Everything that can go wrong building a patch-scoping prompt, patching, generating or
/// writing results.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScopingError {
    /// The prompt holds no placeholder token.
    #[error("the prompt has no placeholder token (id {placeholder}): {prompt:?}")]
    NoPlaceholder {
        /// The placeholder id looked for.
        placeholder: u32,
        /// The prompt text.
        prompt: String,
    },
    /// The tokenizer has no unknown token to use as the placeholder.
    #[error("the tokenizer has no unknown token; pass a placeholder token id")]
    NoUnkToken,
    /// A vector or option has the wrong size or value.
    #[error("invalid {what}: expected {expected}, found {found}")]
    Invalid {
        /// What.
        what: &'static str,
        /// What it may be.
        expected: String,
        /// What it was.
        found: String,
    },
    /// A file could not be written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The model failed.
    #[error(transparent)]
    Model(#[from] gpt2_gemma_models::ModelError),
    /// Tensor plumbing failed.
    #[error(transparent)]
    Sae(#[from] sae_core::SaeError),
    /// A static figure could not be drawn or written.
    #[error(transparent)]
    Plot(#[from] sae_geometry_plot::PlotError),
}

impl ScopingError {
    pub(crate) fn invalid(
        what: &'static str,
        expected: impl Into<String>,
        found: impl std::fmt::Display,
    ) -> Self {
        Self::Invalid {
            what,
            expected: expected.into(),
            found: found.to_string(),
        }
    }
}

/// Result with [`ScopingError`].
pub type Result<T, E = ScopingError> = std::result::Result<T, E>;

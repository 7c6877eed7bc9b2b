//! The one error type of `latent-geometry`.

/// What can go wrong in the geometry analyses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GeometryError {
    /// The input matrix is unusable (empty, ragged, non-finite).
    #[error("invalid input `{what}`: {message}")]
    InvalidInput {
        /// Which input.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// A parameter is outside its range.
    #[error("parameter `{name}`: expected {expected}, found {found}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// The valid range.
        expected: String,
        /// The value given.
        found: String,
    },
    /// A file could not be written or read.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Turning token ids into display strings failed (the caller's tokenizer).
    #[error("tokens of {what}: {source}")]
    Tokens {
        /// Whose tokens (e.g. `the top boosted tokens of SAE 2 (width 2560)`).
        what: String,
        /// The tokenizer's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A download failed or answered something unusable (retries spent, HTML instead of JSON,
    /// a refusal).
    #[error("fetching {url}: {message}")]
    Fetch {
        /// The URL.
        url: String,
        /// What went wrong, last attempt included.
        message: String,
    },
    /// Offline, and the file is not in the cache.
    #[error("{url} is not cached at {path} and the network is off")]
    NotCached {
        /// What would have been fetched.
        url: String,
        /// Where the cache would hold it.
        path: std::path::PathBuf,
    },
    /// An error from sae-core (files, tensors).
    #[error(transparent)]
    Core(#[from] sae_core::SaeError),
    /// A static figure could not be drawn or written.
    #[error(transparent)]
    Plot(#[from] sae_geometry_plot::PlotError),
}

/// `Result` with [`GeometryError`].
pub type Result<T, E = GeometryError> = std::result::Result<T, E>;

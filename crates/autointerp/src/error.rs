//! The one error type of `autointerp`.

use std::path::PathBuf;

/// Everything that can go wrong preparing, running or resuming an autointerp run. Failures of
/// single requests (an unparseable reply, a server that keeps failing) are not errors: they are
/// recorded in the latent's result (see [`crate::LatentStatus`]) and the run goes on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AutoInterpError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A results, cache or configuration file holds something it should not.
    #[error("{path}:{line}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 for a whole-file problem).
        line: usize,
        /// What is wrong.
        message: String,
    },

    /// An option has a value outside what it may hold.
    #[error("invalid {what}: expected {expected}, found {found}")]
    InvalidOption {
        /// The option.
        what: &'static str,
        /// What it may hold.
        expected: String,
        /// What it held.
        found: String,
    },

    /// A results file was written by a run with a different configuration (settings, model,
    /// corpus, or the SAE's weights: a retrained SAE under the same name counts as another).
    #[error(
        "{path}: written by a run with a different configuration or SAE weights (fingerprint {found}, this run {expected}); use another --out or delete it"
    )]
    ConfigMismatch {
        /// The results file.
        path: PathBuf,
        /// This run's fingerprint.
        expected: String,
        /// The file's.
        found: String,
    },

    /// A results file exists but the record of the configuration that made it
    /// (`<out>.meta.json`) does not, so a rerun cannot tell whether resuming is safe.
    #[error(
        "{path}: holds results but {meta} (the configuration that made them) is missing; restore it, or use another --out"
    )]
    MissingRunRecord {
        /// The results file.
        path: PathBuf,
        /// The missing record.
        meta: PathBuf,
    },

    /// The LLM client could not be built (bad base URL, bad header value).
    #[error("LLM client: {0}")]
    Client(String),

    /// Decoding tokens to strings failed.
    #[error(transparent)]
    Model(#[from] gpt2_gemma_models::ModelError),

    /// Building or reading an SAE failed.
    #[error(transparent)]
    Sae(#[from] sae_core::SaeError),

    /// Gathering activation statistics failed.
    #[error(transparent)]
    Store(#[from] activation_store::StoreError),

    /// The logit lens or the decoder-neighbour search failed.
    #[error(transparent)]
    Geometry(#[from] latent_geometry::GeometryError),

    /// A configuration or summary could not be written as JSON.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A static figure could not be drawn or written.
    #[error(transparent)]
    Plot(#[from] sae_geometry_plot::PlotError),

    /// The async runtime the workflow runs its requests on could not be started.
    #[error("starting the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl AutoInterpError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(
        what: &'static str,
        expected: impl Into<String>,
        found: impl std::fmt::Display,
    ) -> Self {
        Self::InvalidOption {
            what,
            expected: expected.into(),
            found: found.to_string(),
        }
    }
}

/// Result with [`AutoInterpError`].
pub type Result<T, E = AutoInterpError> = std::result::Result<T, E>;

//! The one error type of `activation-store`.

use std::path::PathBuf;

/// Everything that can go wrong reading a corpus, computing or caching activations, gathering
/// statistics or training an SAE. Every variant names what it was about; nothing in this crate
/// panics on bad input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A corpus record is malformed: not JSON, or without the text field.
    #[error("{path}:{line}: {message}")]
    Corpus {
        /// The corpus file.
        path: PathBuf,
        /// 1-based line (JSONL) or row (Parquet) number.
        line: usize,
        /// What is wrong.
        message: String,
    },

    /// A Parquet file could not be read or written.
    #[error("{path}: Parquet: {message}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What the parquet reader said.
        message: String,
    },

    /// A hub dataset has no file for the split asked for.
    #[error("dataset `{repo}`: no {split} files ({message})")]
    HubDataset {
        /// The dataset repository.
        repo: String,
        /// The split.
        split: String,
        /// What was looked for and where.
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

    /// A tensor or array has the wrong shape.
    #[error("{what}: expected shape {expected:?}, found {found:?}")]
    Shape {
        /// Which tensor.
        what: String,
        /// The expected shape.
        expected: Vec<usize>,
        /// The shape found.
        found: Vec<usize>,
    },

    /// An activation cache on disk does not match what is asked of it, or is damaged.
    #[error("activation cache {path}: {message}")]
    Cache {
        /// The cache directory or shard.
        path: PathBuf,
        /// What disagrees.
        message: String,
    },

    /// Two statistics summaries cannot be merged (different latents, k or buffer).
    #[error("cannot merge latent statistics: {0}")]
    Merge(String),

    /// The corpus ran out before the store could fill a batch.
    #[error("the corpus yields no complete context window (context size {context_size})")]
    EmptyCorpus {
        /// The context size asked for.
        context_size: usize,
    },

    /// Training diverged (a loss became NaN or infinite).
    #[error("training diverged at step {step}: {what} = {value}")]
    Diverged {
        /// The step.
        step: usize,
        /// Which quantity.
        what: &'static str,
        /// Its value.
        value: f64,
    },

    /// A resumable run's directory was started with other settings than a rerun asks for.
    #[error(
        "{path}: started with other settings ({}); rerun with the same settings or use another output",
        differences.join("; ")
    )]
    ResumeMismatch {
        /// The run directory.
        path: PathBuf,
        /// One `field: recorded X, requested Y` per difference.
        differences: Vec<String>,
    },

    /// From the SAE crate.
    #[error(transparent)]
    Sae(#[from] sae_core::SaeError),

    /// From the model crate.
    #[error(transparent)]
    Model(#[from] gpt2_gemma_models::ModelError),

    /// JSON (de)serialisation of a manifest or summary.
    #[error("{path}: JSON: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What serde said.
        message: String,
    },
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(
        what: &'static str,
        expected: impl Into<String>,
        found: impl ToString,
    ) -> Self {
        StoreError::InvalidOption {
            what,
            expected: expected.into(),
            found: found.to_string(),
        }
    }
}

/// `Result` with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

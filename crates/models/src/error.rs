//! The one error type of `gpt2-gemma-models`.

use std::path::PathBuf;

/// Everything that can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `config.json` is malformed or names an unsupported architecture.
    #[error("{path}: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A checkpoint tensor the model needs is absent.
    #[error("{path}: missing tensor `{tensor}` (tried {tried})")]
    MissingTensor {
        /// The weights file.
        path: PathBuf,
        /// Our name for the tensor.
        tensor: String,
        /// The checkpoint names looked for.
        tried: String,
    },
    /// A tensor's shape disagrees with the config.
    #[error("{path}: tensor `{tensor}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The file, or `<input>`.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Expected shape.
        expected: Vec<usize>,
        /// Found shape.
        found: Vec<usize>,
    },
    /// Token ids or positions out of range, empty inputs, and similar caller mistakes.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The tokenizer could not be built or failed.
    #[error("tokenizer ({path}): {message}")]
    Tokenizer {
        /// The tokenizer file(s).
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A GGUF file is truncated, corrupt, or of an unsupported version.
    #[error("{path}: {message}")]
    Gguf {
        /// The file.
        path: PathBuf,
        /// What is wrong and where.
        message: String,
    },
    /// A tensor is stored in a quantisation type this crate does not dequantise.
    #[error(
        "{path}: tensor `{tensor}` is stored as {ggml_type}, which is not supported (F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q4_K, Q6_K)"
    )]
    UnsupportedQuantization {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Its type.
        ggml_type: String,
    },
    /// A downloaded or assembled file is not the one pinned.
    #[error("{path}: SHA-256 {found}, expected {expected}")]
    Digest {
        /// The file.
        path: PathBuf,
        /// The pinned digest (hex).
        expected: String,
        /// The file's digest (hex).
        found: String,
    },
    /// An error from sae-core (safetensors, hub, device).
    #[error(transparent)]
    Core(#[from] sae_core::SaeError),
}

/// `Result` with [`ModelError`].
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

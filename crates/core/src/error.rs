//! The one error type of `sae-core`.

use std::path::PathBuf;

/// Everything that can go wrong while reading, running or writing an SAE.
///
/// Every variant names what it was about (a path, a tensor, a config field) and, where it applies,
/// what was expected and what was found. Nothing in this crate panics on bad input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaeError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// `cfg.json` is not valid JSON, or a field has the wrong JSON type.
    #[error("{path}: malformed SAE config: {message}")]
    MalformedConfig {
        /// The config file (or `<memory>` for an in-memory config).
        path: PathBuf,
        /// What the parser said.
        message: String,
    },

    /// A field every SAE config must have is absent.
    #[error("{path}: SAE config has no `{field}` field")]
    MissingConfigField {
        /// The config file.
        path: PathBuf,
        /// The missing field.
        field: &'static str,
    },

    /// A config field has a value outside what it may hold.
    #[error("{path}: SAE config field `{field}`: expected {expected}, found {found}")]
    InvalidConfigField {
        /// The config file.
        path: PathBuf,
        /// The field.
        field: &'static str,
        /// What it may hold.
        expected: String,
        /// What it held.
        found: String,
    },

    /// The config names an architecture that sae-core does not implement.
    #[error("{path}: unknown SAE architecture `{found}` (supported: {supported})")]
    UnknownArchitecture {
        /// The config file.
        path: PathBuf,
        /// The architecture named in the config.
        found: String,
        /// The architectures sae-core implements, comma-separated.
        supported: String,
    },

    /// A safetensors file is truncated, corrupt, or not safetensors at all.
    #[error("{path}: not a readable safetensors file: {message}")]
    CorruptSafetensors {
        /// The weights file.
        path: PathBuf,
        /// What the safetensors parser said.
        message: String,
    },

    /// A tensor the architecture needs is absent from the weights file.
    #[error("{path}: tensor `{tensor}` is missing (the `{architecture}` architecture needs it)")]
    MissingTensor {
        /// The weights file.
        path: PathBuf,
        /// The tensor name as SAELens writes it.
        tensor: String,
        /// The architecture that needs it.
        architecture: String,
    },

    /// The weights file holds a tensor the architecture does not use (SAELens refuses these too).
    #[error("{path}: unexpected tensor `{tensor}` for the `{architecture}` architecture")]
    UnexpectedTensor {
        /// The weights file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The architecture.
        architecture: String,
    },

    /// A tensor's shape disagrees with the config (or an input's shape with the SAE).
    #[error("{path}: tensor `{tensor}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The file, or `<input>` for a tensor passed in by the caller.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape found.
        found: Vec<usize>,
    },

    /// A tensor is stored in a dtype sae-core does not read (it reads F64, F32, F16 and BF16).
    #[error("{path}: tensor `{tensor}` has dtype {found}, expected one of F64, F32, F16, BF16")]
    UnsupportedDtype {
        /// The weights file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The dtype found.
        found: String,
    },

    /// A tensor holds NaN or infinite values.
    #[error("{path}: tensor `{tensor}` holds {count} non-finite values")]
    NonFinite {
        /// The file, or `<input>`.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// How many values are NaN or infinite.
        count: usize,
    },

    /// A finite value is too large for the dtype it is to be stored in (float16 holds at most
    /// ±65 504): storing it would silently give ±∞.
    #[error(
        "{path}: tensor `{tensor}` holds {value} at flat index {index}, beyond {dtype}'s range \
         (store it as float32 or bfloat16)"
    )]
    OutOfRange {
        /// The file being written.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The value's flat (row-major) index in the tensor.
        index: usize,
        /// The value.
        value: f32,
        /// The dtype (SAELens's name).
        dtype: &'static str,
    },

    /// An old checkpoint carries a `scaling_factor` that is not all ones (a finetuning scaling
    /// factor, which SAELens 6 no longer supports either).
    #[error(
        "{path}: `scaling_factor` is not all ones; finetuning scaling factors are not supported"
    )]
    UnsupportedScalingFactor {
        /// The weights file.
        path: PathBuf,
    },

    /// `decode` was called without the per-input normalisation state that this SAE's
    /// `normalize_activations` mode needs to undo its input normalisation.
    #[error(
        "normalize_activations = {mode} rescales each input: decode needs the NormState returned by encode_with_state"
    )]
    NormStateRequired {
        /// The normalisation mode.
        mode: String,
    },

    /// The pretrained registry has no release of that name.
    #[error("unknown SAE release `{release}`; valid releases: {valid}")]
    UnknownRelease {
        /// The release asked for.
        release: String,
        /// The releases the registry knows, comma-separated.
        valid: String,
    },

    /// The release exists but has no SAE of that id.
    #[error("release `{release}` has no SAE `{sae_id}`; valid ids: {valid}")]
    UnknownSaeId {
        /// The release.
        release: String,
        /// The id asked for.
        sae_id: String,
        /// The ids the release holds, comma-separated.
        valid: String,
    },

    /// The release's SAEs have an architecture sae-core does not implement (SAELens's
    /// `temporal` SAEs, whose encoder attends over earlier tokens).
    #[error("release `{release}` (`{conversion}` layout) cannot be loaded: {why}")]
    UnsupportedRelease {
        /// The release.
        release: String,
        /// SAELens's name for its conversion function.
        conversion: String,
        /// What is missing.
        why: String,
    },

    /// A third-party SAE file or folder does not have the layout its converter expects (a
    /// folder name without its layer or width, a checkpoint without an expected key, ...).
    #[error("{path}: cannot convert from the `{conversion}` layout: {message}")]
    Conversion {
        /// The file or hub folder.
        path: PathBuf,
        /// SAELens's name for the conversion function.
        conversion: String,
        /// What was expected and what was found.
        message: String,
    },

    /// A file is not in the local HuggingFace cache and the hub may not be asked
    /// (`HF_HUB_OFFLINE` is set, or the crate was built without the `hub` feature).
    #[error(
        "{repo}/{file} is not in the HuggingFace cache at {cache} and the hub is offline ({why})"
    )]
    NotCached {
        /// The hub repository.
        repo: String,
        /// The file within it.
        file: String,
        /// The cache directory searched.
        cache: PathBuf,
        /// Why the network was not used.
        why: String,
    },

    /// The hub could not deliver a file.
    #[error("downloading {repo}/{file} from the HuggingFace hub failed: {message}")]
    Hub {
        /// The hub repository.
        repo: String,
        /// The file.
        file: String,
        /// What went wrong.
        message: String,
    },

    /// A `.npy` file is malformed or holds the wrong dtype or rank.
    #[error("{path}: {message}")]
    Npy {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// The compute backend failed (a device error, or a tensor read back in an unexpected dtype).
    #[error("compute backend: {0}")]
    Backend(String),

    /// A CUDA device was asked for and cannot be used: no driver, no NVRTC, no such GPU.
    #[error("{device}: {reason}")]
    CudaUnavailable {
        /// The device asked for (`cuda:N`).
        device: String,
        /// What is missing.
        reason: CudaUnavailable,
    },

    /// The matmul precision was changed after a GPU had already been set up with another one
    /// (kernels chosen by the autotuner for one precision would run under the other).
    #[error(
        "matmul precision `{requested}` asked for, but the GPUs already run with `{active}`; set it once, before the first device"
    )]
    PrecisionChanged {
        /// The precision in force.
        active: crate::device::Precision,
        /// The precision asked for.
        requested: crate::device::Precision,
    },

    /// A latent selection (`0-99,120`) is malformed or names latents the SAE does not have.
    #[error("latents `{spec}`: {message}")]
    InvalidLatents {
        /// The selection as written.
        spec: String,
        /// What is wrong with it.
        message: String,
    },

    /// Another live run holds the output's lock ([`crate::lock::OutputLock`]).
    #[error(
        "{path}: in use by another run{}; wait for it to finish or choose another output",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    OutputInUse {
        /// The output directory or file.
        path: PathBuf,
        /// The holder's process id, when its lock file says.
        pid: Option<u32>,
    },

    /// A row-wise top-k ([`crate::topk`]) asked for k = 0, more values than a row holds, or got
    /// a buffer that is not a whole number of rows.
    #[error(
        "top-k of rows of {cols} columns ({len} values): k = {k} (expected 1 ≤ k ≤ {cols}, whole rows)"
    )]
    InvalidTopK {
        /// The k asked for.
        k: usize,
        /// The row length.
        cols: usize,
        /// The number of values given.
        len: usize,
    },

    /// The embedded registry file failed to parse (a build defect, reported rather than panicking).
    #[error("the embedded pretrained SAE registry is malformed: {0}")]
    Registry(String),
}

/// Why a CUDA device cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CudaUnavailable {
    /// This build has no GPU support.
    #[error(
        "CUDA devices need the `cuda` cargo feature (`cargo xtask build-cuda` builds it offline)"
    )]
    NotCompiled,
    /// The CUDA driver library (`libcuda.so`) is not on the library path.
    #[error(
        "CUDA driver not found (no libcuda.so on the library path: is an NVIDIA driver installed?)"
    )]
    DriverNotFound,
    /// NVRTC (`libnvrtc.so`), which compiles the kernels at run time, is not on the library path.
    #[error(
        "NVRTC not found (no libnvrtc.so on the library path: install the CUDA toolkit's runtime compiler or add its lib64 to LD_LIBRARY_PATH)"
    )]
    NvrtcNotFound,
    /// The driver loaded but failed to initialise.
    #[error("the CUDA driver failed to initialise: {0}")]
    DriverError(String),
    /// The driver works but there is no GPU of that index.
    #[error("no CUDA device {requested}: the driver sees {found} GPU(s)")]
    NoDevice {
        /// The GPU index asked for.
        requested: usize,
        /// How many GPUs the driver reports.
        found: usize,
    },
}

/// `Result` with [`SaeError`].
pub type Result<T, E = SaeError> = std::result::Result<T, E>;

impl SaeError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// The pseudo-path used in errors about tensors the caller passed in.
pub const INPUT_PATH: &str = "<input>";

//! `SaeConfig`: a typed mirror of SAELens's `cfg.json`, in its v6 layout and the older flat ones.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Result, SaeError};

/// The name of an SAE's config file, as SAELens writes it.
pub const CFG_FILENAME: &str = "cfg.json";
/// The name of an SAE's weights file.
pub const WEIGHTS_FILENAME: &str = "sae_weights.safetensors";
/// The name of the optional file holding each latent's log10 firing rate.
pub const SPARSITY_FILENAME: &str = "sparsity.safetensors";

/// The `metadata.sae_lens_version` written by [`SaeConfig::to_json`] when the config had none:
/// the first SAELens release whose layout we write. SAELens treats configs without a version
/// (or older than 6) as the pre-6 flat layout.
pub const WRITTEN_LAYOUT_VERSION: &str = "6.0.0";

/// SAE architectures, by SAELens's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Architecture {
    /// `standard`: f = ReLU(x′W_enc + b_enc).
    #[serde(rename = "standard")]
    Standard,
    /// `topk`: the k largest pre-activations of each row, then ReLU.
    #[serde(rename = "topk")]
    TopK,
    /// `jumprelu`: h = x′W_enc + b_enc, f = ReLU(h)·\[h > threshold\].
    #[serde(rename = "jumprelu")]
    JumpRelu,
    /// `gated`: f = [x′W_enc + b_gate > 0]·ReLU(x′(W_enc ⊙ exp(r_mag)) + b_mag).
    #[serde(rename = "gated")]
    Gated,
    /// `transcoder`: encodes like `standard` from one hook, decodes to another (`d_out`); no
    /// b_dec subtraction and no output de-normalisation.
    #[serde(rename = "transcoder")]
    Transcoder,
    /// `skip_transcoder`: a `transcoder` whose forward adds the linear skip x·W_skipᵀ.
    #[serde(rename = "skip_transcoder")]
    SkipTranscoder,
    /// `jumprelu_transcoder`: a `transcoder` with JumpReLU's thresholded activation.
    #[serde(rename = "jumprelu_transcoder")]
    JumpReluTranscoder,
    /// `jumprelu_skip_transcoder`: a `jumprelu_transcoder` with the skip connection.
    #[serde(rename = "jumprelu_skip_transcoder")]
    JumpReluSkipTranscoder,
}

impl Architecture {
    /// Every SAE architecture sae-core implements (input and output on the same hook).
    pub const ALL: [Architecture; 4] = [
        Architecture::Standard,
        Architecture::TopK,
        Architecture::JumpRelu,
        Architecture::Gated,
    ];

    /// The transcoder architectures (read one hook, write another of width `d_out`).
    pub const TRANSCODERS: [Architecture; 4] = [
        Architecture::Transcoder,
        Architecture::SkipTranscoder,
        Architecture::JumpReluTranscoder,
        Architecture::JumpReluSkipTranscoder,
    ];

    /// SAELens's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::Standard => "standard",
            Architecture::TopK => "topk",
            Architecture::JumpRelu => "jumprelu",
            Architecture::Gated => "gated",
            Architecture::Transcoder => "transcoder",
            Architecture::SkipTranscoder => "skip_transcoder",
            Architecture::JumpReluTranscoder => "jumprelu_transcoder",
            Architecture::JumpReluSkipTranscoder => "jumprelu_skip_transcoder",
        }
    }

    /// Whether this is a transcoder (decodes to `d_out` at another hook).
    pub fn is_transcoder(self) -> bool {
        Self::TRANSCODERS.contains(&self)
    }

    /// Whether the forward pass adds a skip connection (`W_skip`).
    pub fn has_skip(self) -> bool {
        matches!(
            self,
            Architecture::SkipTranscoder | Architecture::JumpReluSkipTranscoder
        )
    }

    /// Whether the activation is JumpReLU's thresholded ReLU.
    pub fn is_jumprelu(self) -> bool {
        matches!(
            self,
            Architecture::JumpRelu
                | Architecture::JumpReluTranscoder
                | Architecture::JumpReluSkipTranscoder
        )
    }

    /// The tensors of `sae_weights.safetensors` for this architecture, by SAELens's names.
    pub fn tensor_names(self) -> &'static [&'static str] {
        match self {
            Architecture::Standard | Architecture::TopK | Architecture::Transcoder => {
                &["W_enc", "W_dec", "b_enc", "b_dec"]
            }
            Architecture::JumpRelu | Architecture::JumpReluTranscoder => {
                &["W_enc", "W_dec", "b_enc", "b_dec", "threshold"]
            }
            Architecture::Gated => &["W_enc", "W_dec", "b_dec", "b_gate", "b_mag", "r_mag"],
            Architecture::SkipTranscoder => &["W_enc", "W_dec", "b_enc", "b_dec", "W_skip"],
            Architecture::JumpReluSkipTranscoder => {
                &["W_enc", "W_dec", "b_enc", "b_dec", "threshold", "W_skip"]
            }
        }
    }

    fn supported_list() -> String {
        Self::ALL
            .into_iter()
            .chain(Self::TRANSCODERS)
            .map(Self::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Architecture {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .chain(Self::TRANSCODERS)
            .find(|a| a.as_str() == s)
            .ok_or_else(|| s.to_string())
    }
}

/// How the SAE normalises its input (`normalize_activations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum NormalizeActivations {
    /// `none`.
    #[default]
    None,
    /// `expected_average_only_in`: a constant factor, folded into the weights; a no-op at
    /// inference (as in SAELens, where `process_sae_in` leaves the input unchanged).
    ExpectedAverageOnlyIn,
    /// `constant_norm_rescale`: x·√d_in/‖x‖ on the way in, undone on the way out.
    ConstantNormRescale,
    /// `layer_norm`: (x − μ)/(σ + 1e-5) with the unbiased σ, undone on the way out.
    LayerNorm,
    /// `covariance_whitening`: folded into the weights at the end of training; a no-op at
    /// inference (SAELens's `process_sae_in` leaves the input unchanged).
    CovarianceWhitening,
}

impl NormalizeActivations {
    /// Every mode, in SAELens's order.
    pub const ALL: [NormalizeActivations; 5] = [
        NormalizeActivations::None,
        NormalizeActivations::ExpectedAverageOnlyIn,
        NormalizeActivations::ConstantNormRescale,
        NormalizeActivations::LayerNorm,
        NormalizeActivations::CovarianceWhitening,
    ];

    /// SAELens's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            NormalizeActivations::None => "none",
            NormalizeActivations::ExpectedAverageOnlyIn => "expected_average_only_in",
            NormalizeActivations::ConstantNormRescale => "constant_norm_rescale",
            NormalizeActivations::LayerNorm => "layer_norm",
            NormalizeActivations::CovarianceWhitening => "covariance_whitening",
        }
    }

    /// Whether decoding needs per-input state saved by the encode (the input's norm or mean/σ).
    pub fn is_per_input(self) -> bool {
        matches!(
            self,
            NormalizeActivations::ConstantNormRescale | NormalizeActivations::LayerNorm
        )
    }
}

impl fmt::Display for NormalizeActivations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NormalizeActivations {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| s.to_string())
    }
}

/// The dtype an SAE's weights are stored in (`dtype`). Computation is always float32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum StorageDtype {
    /// `float32`.
    #[default]
    F32,
    /// `float16`.
    F16,
    /// `bfloat16`.
    Bf16,
    /// `float64`.
    F64,
}

impl StorageDtype {
    /// SAELens's canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageDtype::F32 => "float32",
            StorageDtype::F16 => "float16",
            StorageDtype::Bf16 => "bfloat16",
            StorageDtype::F64 => "float64",
        }
    }
}

impl FromStr for StorageDtype {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.strip_prefix("torch.").unwrap_or(s) {
            "float32" | "float" => Ok(StorageDtype::F32),
            "float16" | "half" => Ok(StorageDtype::F16),
            "bfloat16" => Ok(StorageDtype::Bf16),
            "float64" | "double" => Ok(StorageDtype::F64),
            _ => Err(s.to_string()),
        }
    }
}

/// `reshape_activations`: whether the SAE reads `hook_z` activations flattened over heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ReshapeActivations {
    /// `none`.
    #[default]
    None,
    /// `hook_z`: inputs are `[.., n_heads, d_head]`, flattened to `d_in` by the caller.
    HookZ,
}

impl ReshapeActivations {
    /// SAELens's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReshapeActivations::None => "none",
            ReshapeActivations::HookZ => "hook_z",
        }
    }
}

/// The `metadata` block: where the SAE was trained. Unknown keys are kept and written back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SaeMetadata {
    /// The model the SAE reads, e.g. `gpt2-small`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    /// The TransformerLens hook name, e.g. `blocks.8.hook_resid_pre`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_name: Option<String>,
    /// The attention head for per-head hooks.
    #[serde(default)]
    pub hook_head_index: Option<i64>,
    /// Whether training prompts started with BOS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepend_bos: Option<bool>,
    /// Training context length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_size: Option<usize>,
    /// Training dataset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_path: Option<String>,
    /// The SAE's Neuronpedia id, e.g. `gpt2-small/8-res_fs768-jb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neuronpedia_id: Option<String>,
    /// The SAELens version whose layout the config follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sae_lens_version: Option<String>,
    /// Every other key, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// An SAE's configuration: SAELens's `cfg.json`, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct SaeConfig {
    /// Input width (the model's d_model at the hook).
    pub d_in: usize,
    /// Number of latents.
    pub d_sae: usize,
    /// Output width of a transcoder (`W_dec` is `[d_sae, d_out]`); `None` for SAEs, whose
    /// output width is `d_in`.
    pub d_out: Option<usize>,
    /// Storage dtype of the weights.
    pub dtype: StorageDtype,
    /// The architecture.
    pub architecture: Architecture,
    /// Whether b_dec is subtracted from the input before encoding.
    pub apply_b_dec_to_input: bool,
    /// Input normalisation.
    pub normalize_activations: NormalizeActivations,
    /// Head reshaping for `hook_z` SAEs.
    pub reshape_activations: ReshapeActivations,
    /// TopK's k (only for [`Architecture::TopK`]; SAELens's default is 100).
    pub k: Option<usize>,
    /// TopK: pre-activations are scaled by ‖W_dec row‖ before selection and divided again before
    /// decoding.
    pub rescale_acts_by_decoder_norm: bool,
    /// Where the SAE was trained.
    pub metadata: SaeMetadata,
}

/// Keys SAELens 6 moves from the old flat layout into `metadata` (`LLM_METADATA_KEYS`).
const LLM_METADATA_KEYS: &[&str] = &[
    "model_name",
    "hook_name",
    "model_class_name",
    "hook_head_index",
    "model_from_pretrained_kwargs",
    "prepend_bos",
    "exclude_special_tokens",
    "neuronpedia_id",
    "context_size",
    "seqpos_slice",
    "dataset_path",
    "sae_lens_version",
    "sae_lens_training_version",
    "hook_name_out",
    "hook_head_index_out",
    "hf_hook_name",
    "hf_hook_name_out",
];

impl SaeConfig {
    /// A config with SAELens's defaults for the given shape and architecture.
    pub fn new(d_in: usize, d_sae: usize, architecture: Architecture) -> Self {
        Self {
            d_in,
            d_sae,
            d_out: architecture.is_transcoder().then_some(d_in),
            dtype: StorageDtype::F32,
            architecture,
            apply_b_dec_to_input: !architecture.is_transcoder(),
            normalize_activations: NormalizeActivations::None,
            reshape_activations: ReshapeActivations::None,
            k: (architecture == Architecture::TopK).then_some(100),
            rescale_acts_by_decoder_norm: false,
            metadata: SaeMetadata::default(),
        }
    }

    /// Reads `cfg.json` from a file (or from `DIR/cfg.json` when given a directory).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let mut path = path.as_ref().to_path_buf();
        if path.is_dir() {
            path = path.join(CFG_FILENAME);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| SaeError::io(&path, e))?;
        Self::from_json_str(&text, &path)
    }

    /// Parses `cfg.json` text; `path` is only used in error messages.
    pub fn from_json_str(text: &str, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let value: Value = serde_json::from_str(text).map_err(|e| SaeError::MalformedConfig {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::from_json_value(value, path)
    }

    /// Parses an already-decoded `cfg.json`, with SAELens's handling of layouts older than 6.0.
    pub fn from_json_value(value: Value, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let Value::Object(obj) = value else {
            return Err(SaeError::MalformedConfig {
                path,
                message: "expected a JSON object".into(),
            });
        };
        let obj = if is_pre_v6(&obj) {
            upgrade_pre_v6(obj)
        } else {
            obj
        };
        Parser { path, obj }.parse()
    }

    /// The config as SAELens 6 writes it (`SAEConfig.to_dict()`).
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("d_in".into(), self.d_in.into());
        obj.insert("d_sae".into(), self.d_sae.into());
        if self.architecture.is_transcoder() {
            obj.insert("d_out".into(), self.output_width().into());
        }
        obj.insert("dtype".into(), self.dtype.as_str().into());
        obj.insert("device".into(), "cpu".into());
        obj.insert(
            "apply_b_dec_to_input".into(),
            self.apply_b_dec_to_input.into(),
        );
        obj.insert(
            "normalize_activations".into(),
            self.normalize_activations.as_str().into(),
        );
        obj.insert(
            "reshape_activations".into(),
            self.reshape_activations.as_str().into(),
        );
        let mut metadata = self.metadata.clone();
        // The version tells SAELens which layout to expect: a config read from a pre-6 flat
        // layout is written in the v6 layout, so its version must say so (SAELens itself keeps
        // the old version here and then misreads its own save).
        let written_is_v6 = metadata
            .sae_lens_version
            .as_deref()
            .is_some_and(|v| version_major(v).is_some_and(|m| m >= 6));
        if !written_is_v6 {
            metadata.sae_lens_version = Some(WRITTEN_LAYOUT_VERSION.into());
        }
        obj.insert(
            "metadata".into(),
            serde_json::to_value(&metadata).unwrap_or(Value::Object(Map::new())),
        );
        if self.architecture == Architecture::TopK {
            obj.insert("k".into(), self.k.unwrap_or(100).into());
            obj.insert(
                "rescale_acts_by_decoder_norm".into(),
                self.rescale_acts_by_decoder_norm.into(),
            );
        }
        obj.insert("architecture".into(), self.architecture.as_str().into());
        Value::Object(obj)
    }

    /// The hook the SAE reads, from its metadata.
    pub fn hook_name(&self) -> Option<&str> {
        self.metadata.hook_name.as_deref()
    }

    /// The layer of a `blocks.{L}.…` hook name.
    pub fn hook_layer(&self) -> Option<usize> {
        let rest = self.hook_name()?.strip_prefix("blocks.")?;
        rest.split('.').next()?.parse().ok()
    }

    /// The width the decoder writes: `d_out` for transcoders, `d_in` for SAEs.
    pub fn output_width(&self) -> usize {
        self.d_out.unwrap_or(self.d_in)
    }

    /// TopK's k, with SAELens's default of 100.
    pub fn topk_k(&self) -> usize {
        self.k.unwrap_or(100)
    }
}

fn sae_lens_version(obj: &Map<String, Value>) -> Option<&str> {
    obj.get("sae_lens_version")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| {
            obj.get("metadata")?
                .get("sae_lens_version")?
                .as_str()
                .filter(|s| !s.is_empty())
        })
}

/// SAELens's `handle_config_defaulting`: no version, or a version below 6.0.0-rc.0, means the
/// pre-6 flat layout.
fn is_pre_v6(obj: &Map<String, Value>) -> bool {
    match sae_lens_version(obj) {
        None => true,
        Some(v) => version_major(v).is_none_or(|m| m < 6),
    }
}

fn version_major(v: &str) -> Option<u64> {
    v.trim_start_matches('v')
        .split(['.', '-'])
        .next()
        .and_then(|m| m.parse::<u64>().ok())
}

/// SAELens's `handle_pre_6_0_config`, key for key.
fn upgrade_pre_v6(obj: Map<String, Value>) -> Map<String, Value> {
    let mut cfg: Map<String, Value> = obj
        .into_iter()
        .map(|(k, v)| {
            let k = match k.as_str() {
                "hook_point" => "hook_name".to_string(),
                "hook_point_head_index" => "hook_head_index".to_string(),
                "activation_fn_str" => "activation_fn".to_string(),
                _ => k,
            };
            (k, v)
        })
        .collect();
    let set_default = |cfg: &mut Map<String, Value>, k: &str, v: Value| {
        cfg.entry(k.to_string()).or_insert(v);
    };
    set_default(&mut cfg, "prepend_bos", Value::Bool(true));
    set_default(&mut cfg, "apply_b_dec_to_input", Value::Bool(true));
    set_default(&mut cfg, "activation_fn", Value::from("relu"));
    set_default(&mut cfg, "architecture", Value::from("standard"));
    let is_hook_z = cfg
        .get("hook_name")
        .and_then(Value::as_str)
        .is_some_and(|h| h.contains("hook_z"));
    set_default(
        &mut cfg,
        "reshape_activations",
        Value::from(if is_hook_z { "hook_z" } else { "none" }),
    );
    let topk_k = (cfg.get("activation_fn").and_then(Value::as_str) == Some("topk"))
        .then(|| {
            cfg.get("activation_fn_kwargs")
                .and_then(|kw| kw.get("k"))
                .cloned()
        })
        .flatten()
        .filter(|k| !k.is_null());
    if let Some(k) = topk_k {
        cfg.insert("architecture".into(), Value::from("topk"));
        cfg.insert("k".into(), k);
    }
    match cfg.get("normalize_activations") {
        Some(Value::Bool(b)) => {
            let mode = if *b {
                "expected_average_only_in"
            } else {
                "none"
            };
            cfg.insert("normalize_activations".into(), Value::from(mode));
        }
        None | Some(Value::Null) => {
            cfg.insert("normalize_activations".into(), Value::from("none"));
        }
        _ => {}
    }
    let metadata: Map<String, Value> = LLM_METADATA_KEYS
        .iter()
        .filter_map(|k| cfg.get(*k).map(|v| ((*k).to_string(), v.clone())))
        .collect();
    cfg.insert("metadata".into(), Value::Object(metadata));
    cfg
}

struct Parser {
    path: PathBuf,
    obj: Map<String, Value>,
}

impl Parser {
    fn invalid(&self, field: &'static str, expected: &str, found: &Value) -> SaeError {
        SaeError::InvalidConfigField {
            path: self.path.clone(),
            field,
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }

    fn usize_field(&self, field: &'static str) -> Result<Option<usize>> {
        match self.obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|&n| n > 0)
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| self.invalid(field, "a positive integer", v)),
        }
    }

    fn required_usize(&self, field: &'static str) -> Result<usize> {
        self.usize_field(field)?
            .ok_or_else(|| SaeError::MissingConfigField {
                path: self.path.clone(),
                field,
            })
    }

    fn bool_field(&self, field: &'static str, default: bool) -> Result<bool> {
        match self.obj.get(field) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.invalid(field, "true or false", v)),
        }
    }

    fn enum_field<T: FromStr>(
        &self,
        field: &'static str,
        expected: &str,
        default: Option<T>,
    ) -> Result<T> {
        match self.obj.get(field) {
            None | Some(Value::Null) => default.ok_or_else(|| SaeError::MissingConfigField {
                path: self.path.clone(),
                field,
            }),
            Some(v) => v
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| self.invalid(field, expected, v)),
        }
    }

    fn parse(self) -> Result<SaeConfig> {
        let d_in = self.required_usize("d_in")?;
        let d_sae = self.required_usize("d_sae")?;
        let architecture = match self.obj.get("architecture") {
            None | Some(Value::Null) => {
                return Err(SaeError::MissingConfigField {
                    path: self.path.clone(),
                    field: "architecture",
                });
            }
            Some(Value::String(s)) => {
                s.parse::<Architecture>()
                    .map_err(|found| SaeError::UnknownArchitecture {
                        path: self.path.clone(),
                        found,
                        supported: Architecture::supported_list(),
                    })?
            }
            Some(v) => return Err(self.invalid("architecture", "a string", v)),
        };
        let dtype = self.enum_field(
            "dtype",
            "float32, float16, bfloat16 or float64",
            Some(StorageDtype::F32),
        )?;
        let normalize_activations = self.enum_field(
            "normalize_activations",
            "none, expected_average_only_in, constant_norm_rescale, layer_norm or covariance_whitening",
            Some(NormalizeActivations::None),
        )?;
        let reshape_activations = match self.obj.get("reshape_activations") {
            None | Some(Value::Null) => ReshapeActivations::None,
            Some(Value::String(s)) if s == "none" => ReshapeActivations::None,
            Some(Value::String(s)) if s == "hook_z" => ReshapeActivations::HookZ,
            Some(v) => return Err(self.invalid("reshape_activations", "none or hook_z", v)),
        };
        let apply_b_dec_to_input = self.bool_field("apply_b_dec_to_input", true)?;
        let d_out = if architecture.is_transcoder() {
            // SAELens's TranscoderConfig: d_out defaults to 768 there; a transcoder's file
            // always states it, and a missing one is an error here rather than a guess.
            if apply_b_dec_to_input {
                return Err(SaeError::InvalidConfigField {
                    path: self.path.clone(),
                    field: "apply_b_dec_to_input",
                    expected: "false for a transcoder (b_dec has the output width)".into(),
                    found: "true".into(),
                });
            }
            Some(self.required_usize("d_out")?)
        } else {
            None
        };
        let (k, rescale_acts_by_decoder_norm) = if architecture == Architecture::TopK {
            let k = self.usize_field("k")?.unwrap_or(100);
            if k > d_sae {
                return Err(SaeError::InvalidConfigField {
                    path: self.path.clone(),
                    field: "k",
                    expected: format!("at most d_sae = {d_sae}"),
                    found: k.to_string(),
                });
            }
            (
                Some(k),
                self.bool_field("rescale_acts_by_decoder_norm", false)?,
            )
        } else {
            (None, false)
        };
        let metadata = match self.obj.get("metadata") {
            None | Some(Value::Null) => SaeMetadata::default(),
            Some(v @ Value::Object(_)) => {
                serde_json::from_value(v.clone()).map_err(|e| SaeError::MalformedConfig {
                    path: self.path.clone(),
                    message: format!("metadata: {e}"),
                })?
            }
            Some(v) => return Err(self.invalid("metadata", "an object", v)),
        };
        Ok(SaeConfig {
            d_in,
            d_sae,
            d_out,
            dtype,
            architecture,
            apply_b_dec_to_input,
            normalize_activations,
            reshape_activations,
            k,
            rescale_acts_by_decoder_norm,
            metadata,
        })
    }
}

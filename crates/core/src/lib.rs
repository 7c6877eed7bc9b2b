//! # sae-core
//!
//! Sparse autoencoders in SAELens's format, on burn.
//!
//! - [`SaeConfig`]: SAELens's `cfg.json` (the v6 layout and the older flat ones), typed.
//! - [`Sae`]: load `sae_weights.safetensors` (f32, f16, bf16) for the `standard`, `topk`,
//!   `jumprelu` and `gated` architectures and the four transcoder architectures; [`Sae::encode`], [`Sae::decode`] and
//!   [`Sae::forward`] with SAELens's semantics, every normalisation mode included;
//!   [`Sae::save`] writes files SAELens loads.
//! - [`Registry`]: SAELens's pretrained registry as data; [`from_pretrained`] through the HF cache
//!   and (feature `hub`) the hub, honouring `HF_HUB_OFFLINE`, for every release: those in
//!   third-party layouts (Gemma Scope's `params.npz`, Llama Scope, dictionary_learning's `ae.pt`,
//!   ...) through [`convert`], as SAELens's converters do.
//! - [`device`]: the one place that touches burn's devices and host data; [`npy`] and
//!   [`safetensors_io`] for files; [`atomic`], the one file writer (temporary sibling, `fsync`,
//!   `rename`) every output goes through; [`lock`], one run per output directory.
//!
//! ```no_run
//! use sae_core::{device, Sae};
//! # fn main() -> sae_core::Result<()> {
//! let dev = device::cpu();
//! let sae = Sae::load("path/to/sae_dir", &dev)?;
//! let x = device::tensor_from_vec(vec![0.0; 4 * sae.d_in()], [4, sae.d_in()], &dev);
//! let features = sae.encode(x)?; // [4, d_sae]
//! # Ok(()) }
//! ```

pub mod atomic;
pub mod config;
pub mod convert;
pub mod device;
pub mod diff;
pub mod error;
pub mod gelu;
pub mod hub;
pub mod latents;
pub mod lock;
pub mod normalization;
pub mod npy;
pub mod registry;
pub mod sae;
pub mod safetensors_io;
pub mod similarity;
pub mod temporal;
pub mod testing;
pub mod threshold;
pub mod topk;

pub use config::{
    Architecture, NormalizeActivations, ReshapeActivations, SaeConfig, SaeMetadata, StorageDtype,
};
pub use device::{ComputeDevice, DeviceConfig, Precision};
pub use error::{CudaUnavailable, Result, SaeError};
pub use hub::{
    HubClient, HubRepo, HubRepoKind, SaeSource, from_pretrained, temporal_from_pretrained,
    token_from_env,
};
pub use normalization::NormState;
pub use registry::{PretrainedSae, Registry, Release};
pub use sae::{LoadReport, Sae, SaeParams};
pub use safetensors_io::HostTensor;

/// Re-export of the burn version sae-geometry is built on, so downstream crates name the same
/// tensor types.
pub use burn;

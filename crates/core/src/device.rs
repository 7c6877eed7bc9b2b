//! burn plumbing: choosing a device and moving data between the host and tensors.
//!
//! This is the one place where sae-geometry touches burn's device and data APIs; the other crates
//! call these helpers instead of repeating the conversions.

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::error::{Result, SaeError};

/// Where tensors live. burn 0.22 picks the backend at run time through the device, so the same
/// model code runs on any of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ComputeDevice {
    /// burn's pure-Rust CPU backend (flex, with SIMD and rayon threads).
    #[default]
    Cpu,
    /// burn's deprecated ndarray CPU backend (the `ndarray` feature), for comparison.
    NdArray,
    /// An NVIDIA GPU by index (the `cuda` feature).
    Cuda(usize),
}

impl ComputeDevice {
    /// The burn device, or an error when the backend was not compiled in.
    pub fn burn_device(self) -> Result<Device> {
        match self {
            ComputeDevice::Cpu => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)] // kept for comparison; flex is the default
            ComputeDevice::NdArray => Ok(Device::ndarray()),
            #[cfg(not(feature = "ndarray"))]
            ComputeDevice::NdArray => Err(SaeError::Backend(
                "the ndarray backend needs the `ndarray` cargo feature".into(),
            )),
            #[cfg(feature = "cuda")]
            ComputeDevice::Cuda(i) => Ok(Device::cuda(i)),
            #[cfg(not(feature = "cuda"))]
            ComputeDevice::Cuda(_) => Err(SaeError::Backend(
                "CUDA devices need the `cuda` cargo feature".into(),
            )),
        }
    }
}

impl fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComputeDevice::Cpu => f.write_str("cpu"),
            ComputeDevice::NdArray => f.write_str("ndarray"),
            ComputeDevice::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl FromStr for ComputeDevice {
    type Err = String;
    /// `cpu`, `ndarray`, `cuda` (GPU 0) or `cuda:N`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" | "flex" => Ok(ComputeDevice::Cpu),
            "ndarray" => Ok(ComputeDevice::NdArray),
            "cuda" | "gpu" => Ok(ComputeDevice::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|i| i.parse().ok())
                .map(ComputeDevice::Cuda)
                .ok_or_else(|| format!("unknown device `{s}` (cpu, ndarray, cuda, cuda:N)")),
        }
    }
}

/// The CPU device (flex). Tests and examples use this rather than `Device::default()`, which
/// prefers a GPU when one is compiled in.
pub fn cpu() -> Device {
    Device::flex()
}

/// A float tensor from row-major host data.
///
/// # Shapes
/// `data.len()` must equal the product of `shape`; the caller guarantees it (checked in debug).
pub fn tensor_from_vec<const D: usize>(
    data: Vec<f32>,
    shape: [usize; D],
    device: &Device,
) -> Tensor<D> {
    debug_assert_eq!(data.len(), shape.iter().product::<usize>());
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// An int tensor from host data.
pub fn int_tensor_from_vec<const D: usize>(
    data: Vec<i64>,
    shape: [usize; D],
    device: &Device,
) -> Tensor<D, Int> {
    debug_assert_eq!(data.len(), shape.iter().product::<usize>());
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// Reads a float tensor back to row-major host data.
pub fn tensor_to_vec<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| SaeError::Backend(format!("reading a tensor back: {e:?}")))
}

/// Reads an int tensor back to host data.
pub fn int_tensor_to_vec<const D: usize>(tensor: Tensor<D, Int>) -> Result<Vec<i64>> {
    tensor
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .map_err(|e| SaeError::Backend(format!("reading a tensor back: {e:?}")))
}

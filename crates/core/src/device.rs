//! burn plumbing: choosing a device and moving data between the host and tensors.
//!
//! This is the one place where sae-geometry touches burn's device and data APIs; the other crates
//! call these helpers instead of repeating the conversions.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use crate::error::{CudaUnavailable, Result, SaeError};

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
    /// The burn device, or an error when the backend was not compiled in or the GPU cannot be
    /// used ([`SaeError::CudaUnavailable`]: no driver, no NVRTC, no such GPU). GPUs run matmuls
    /// in the process's [`Precision`] (exact f32 unless [`set_precision`] said otherwise).
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
            ComputeDevice::Cuda(i) => cuda::device(i).map_err(|reason| SaeError::CudaUnavailable {
                device: self.to_string(),
                reason,
            }),
        }
    }

    /// Whether this is a GPU.
    pub fn is_gpu(self) -> bool {
        matches!(self, ComputeDevice::Cuda(_))
    }
}

/// The arithmetic of float32 matmuls on GPUs, process-wide (like PyTorch's
/// `torch.backends.cuda.matmul.allow_tf32`). CPUs always compute exact f32.
///
/// | precision | matmul inputs | error vs exact f32 (docs/BENCHMARKS.md, "GPU") |
/// |---|---|---|
/// | `Exact` (default) | f32 | the CPU's (parity tolerances hold) |
/// | `Tf32` | rounded to TF32 (10-bit mantissa) on tensor cores | ~1e-3 relative |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Precision {
    /// Exact f32 matmuls (CUDA cores). The default.
    #[default]
    Exact,
    /// f32 matmuls on TF32 tensor cores: faster, ~1e-3 relative error.
    Tf32,
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Exact => "exact",
            Precision::Tf32 => "tf32",
        })
    }
}

impl FromStr for Precision {
    type Err = String;
    /// `exact` (or `f32`) or `tf32`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "exact" | "f32" | "fp32" => Ok(Precision::Exact),
            "tf32" => Ok(Precision::Tf32),
            _ => Err(format!("unknown precision `{s}` (exact, tf32)")),
        }
    }
}

/// (the precision asked for, whether a GPU has been set up with it).
static PRECISION: Mutex<(Precision, bool)> = Mutex::new((Precision::Exact, false));

/// Sets the matmul precision of every GPU of this process. Call it before the first GPU device
/// is made ([`ComputeDevice::burn_device`]); setting another precision afterwards is
/// [`SaeError::PrecisionChanged`] (the autotuner's kernel choices depend on it), setting the same
/// one again is fine.
pub fn set_precision(precision: Precision) -> Result<()> {
    let mut state = PRECISION.lock().unwrap_or_else(|e| e.into_inner());
    if state.1 && state.0 != precision {
        return Err(SaeError::PrecisionChanged {
            active: state.0,
            requested: precision,
        });
    }
    state.0 = precision;
    apply_precision(precision);
    Ok(())
}

/// The matmul precision of this process's GPUs.
pub fn precision() -> Precision {
    PRECISION.lock().unwrap_or_else(|e| e.into_inner()).0
}

/// Marks the precision as in force (a GPU device was made with it).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))] // the CUDA device and the tests call it
fn lock_precision() {
    let mut state = PRECISION.lock().unwrap_or_else(|e| e.into_inner());
    state.1 = true;
    apply_precision(state.0);
}

#[cfg(feature = "cuda")]
fn apply_precision(precision: Precision) {
    cubek_matmul::precision::set_allow_tf32(precision == Precision::Tf32);
}

#[cfg(not(feature = "cuda"))]
fn apply_precision(_: Precision) {}

/// A device and the precision it computes in: what a configuration file or a library caller
/// names to pick where work runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceConfig {
    /// Where tensors live (default: the CPU).
    pub device: ComputeDevice,
    /// Matmul precision on GPUs (default: exact f32).
    pub precision: Precision,
}

impl DeviceConfig {
    /// The environment variable naming the device ([`ComputeDevice`]'s syntax: `cpu`, `cuda:0`).
    pub const DEVICE_VAR: &'static str = "SAE_GEOMETRY_DEVICE";
    /// The environment variable naming the GPU precision (`exact`, `tf32`).
    pub const PRECISION_VAR: &'static str = "SAE_GEOMETRY_PRECISION";

    /// The device and precision named by `SAE_GEOMETRY_DEVICE` and `SAE_GEOMETRY_PRECISION`
    /// (each defaulting to the CPU and exact f32 when unset). The test suites run on this, so
    /// the same tests run on the CPU in CI and on a GPU when one is there.
    pub fn from_env() -> Result<Self> {
        fn var<T: FromStr<Err = String>>(name: &'static str) -> Result<Option<T>> {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => v.trim().parse().map(Some).map_err(|e| {
                    SaeError::Backend(format!("environment variable {name}={v}: {e}"))
                }),
                _ => Ok(None),
            }
        }
        Ok(Self {
            device: var(Self::DEVICE_VAR)?.unwrap_or_default(),
            precision: var(Self::PRECISION_VAR)?.unwrap_or_default(),
        })
    }

    /// Sets the process's precision ([`set_precision`]) and makes the burn device.
    pub fn init(self) -> Result<Device> {
        if self.device.is_gpu() {
            set_precision(self.precision)?;
        }
        self.device.burn_device()
    }
}

/// `cuda:N`, after asking the driver whether it can be used (burn's own set-up panics in a worker
/// thread when the driver or the GPU is missing).
mod cuda {
    use burn::tensor::Device;

    use super::CudaUnavailable;

    #[cfg(not(feature = "cuda"))]
    pub(super) fn device(_: usize) -> Result<Device, CudaUnavailable> {
        Err(CudaUnavailable::NotCompiled)
    }

    #[cfg(feature = "cuda")]
    pub(super) fn device(index: usize) -> Result<Device, CudaUnavailable> {
        use std::sync::OnceLock;
        static DRIVER: OnceLock<Result<usize, CudaUnavailable>> = OnceLock::new();
        let found = DRIVER.get_or_init(probe_driver).clone()?;
        if index >= found {
            return Err(CudaUnavailable::NoDevice {
                requested: index,
                found,
            });
        }
        super::lock_precision();
        Ok(Device::cuda(index))
    }

    /// The number of GPUs, once the driver and NVRTC are known to load.
    #[cfg(feature = "cuda")]
    #[allow(unsafe_code)]
    fn probe_driver() -> Result<usize, CudaUnavailable> {
        // SAFETY: both calls only try to `dlopen` the libraries by their usual names (running
        // their initialisers, which is what using CUDA at all does) and return whether that
        // worked; cudarc's own loaders would panic instead.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(CudaUnavailable::DriverNotFound);
        }
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(CudaUnavailable::NvrtcNotFound);
        }
        cudarc::driver::result::init().map_err(|e| CudaUnavailable::DriverError(e.to_string()))?;
        let count = cudarc::driver::result::device::get_count()
            .map_err(|e| CudaUnavailable::DriverError(e.to_string()))?;
        Ok(usize::try_from(count).unwrap_or(0))
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

/// The device named by `SAE_GEOMETRY_DEVICE` and `SAE_GEOMETRY_PRECISION`
/// ([`DeviceConfig::from_env`]), the CPU when they are unset. The test suites run on it, so
/// `SAE_GEOMETRY_DEVICE=cuda:0 cargo test` runs the same parity tests on a GPU.
pub fn from_env() -> Result<Device> {
    DeviceConfig::from_env()?.init()
}

/// The CPU device (flex). Examples use this rather than `Device::default()`, which prefers a GPU
/// when one is compiled in.
pub fn cpu() -> Device {
    Device::flex()
}

/// A float tensor from row-major host data.
///
/// # Shapes
/// `data.len()` must equal the product of `shape`; the caller guarantees it (checked in debug).
#[allow(clippy::disallowed_methods)] // the one place host data meets burn
pub fn tensor_from_vec<const D: usize>(
    data: Vec<f32>,
    shape: [usize; D],
    device: &Device,
) -> Tensor<D> {
    debug_assert_eq!(data.len(), shape.iter().product::<usize>());
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// An int tensor from host data.
#[allow(clippy::disallowed_methods)] // the one place host data meets burn
pub fn int_tensor_from_vec<const D: usize>(
    data: Vec<i64>,
    shape: [usize; D],
    device: &Device,
) -> Tensor<D, Int> {
    debug_assert_eq!(data.len(), shape.iter().product::<usize>());
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// A boolean tensor (masks) from row-major host data.
#[allow(clippy::disallowed_methods)] // the one place host data meets burn
pub fn bool_tensor_from_vec<const D: usize>(
    data: Vec<bool>,
    shape: [usize; D],
    device: &Device,
) -> Tensor<D, Bool> {
    debug_assert_eq!(data.len(), shape.iter().product::<usize>());
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// A float tensor stored in `dtype` (f16 or bf16 halve a weight's memory; F32 and F64 keep
/// f32, the precision every computation here runs in). Read it back with [`as_f32`].
pub fn store_as<const D: usize>(
    tensor: Tensor<D>,
    dtype: crate::config::StorageDtype,
) -> Tensor<D> {
    use crate::config::StorageDtype;
    match dtype {
        StorageDtype::F16 => tensor.cast(burn::tensor::FloatDType::F16),
        StorageDtype::Bf16 => tensor.cast(burn::tensor::FloatDType::BF16),
        StorageDtype::F32 | StorageDtype::F64 => tensor,
    }
}

/// Builds a tensor stored in `dtype` from f32 values produced in pieces by `fill` (which calls
/// its sink with consecutive runs of values, `shape`'s product in all): half-precision storage
/// is converted run by run, so a large weight never exists in f32 as a whole. A count that does
/// not match `shape` is an error.
#[allow(clippy::disallowed_methods)] // the one place host data meets burn
pub fn tensor_from_f32_runs<const D: usize>(
    shape: [usize; D],
    dtype: crate::config::StorageDtype,
    device: &Device,
    fill: impl FnOnce(&mut dyn FnMut(&[f32])) -> Result<()>,
) -> Result<Tensor<D>> {
    use crate::config::StorageDtype;
    let n: usize = shape.iter().product();
    let check = |got: usize| {
        if got == n {
            Ok(())
        } else {
            Err(SaeError::Backend(format!(
                "{got} values produced for a tensor of shape {shape:?} ({n})"
            )))
        }
    };
    match dtype {
        StorageDtype::Bf16 => {
            let mut v: Vec<half::bf16> = Vec::with_capacity(n);
            fill(&mut |run: &[f32]| v.extend(run.iter().map(|x| half::bf16::from_f32(*x))))?;
            check(v.len())?;
            let opts = burn::tensor::TensorCreationOptions::new(device.clone())
                .with_dtype(burn::tensor::DType::BF16);
            Ok(Tensor::from_data(TensorData::new(v, shape), opts))
        }
        StorageDtype::F16 => {
            let mut v: Vec<half::f16> = Vec::with_capacity(n);
            fill(&mut |run: &[f32]| v.extend(run.iter().map(|x| half::f16::from_f32(*x))))?;
            check(v.len())?;
            let opts = burn::tensor::TensorCreationOptions::new(device.clone())
                .with_dtype(burn::tensor::DType::F16);
            Ok(Tensor::from_data(TensorData::new(v, shape), opts))
        }
        StorageDtype::F32 | StorageDtype::F64 => {
            let mut v: Vec<f32> = Vec::with_capacity(n);
            fill(&mut |run: &[f32]| v.extend_from_slice(run))?;
            check(v.len())?;
            Ok(tensor_from_vec(v, shape, device))
        }
    }
}

/// The tensor in f32 (a no-op when it already is): what a weight stored by [`store_as`] is
/// read as before a matmul.
pub fn as_f32<const D: usize>(tensor: Tensor<D>) -> Tensor<D> {
    tensor.cast(burn::tensor::FloatDType::F32)
}

thread_local! {
    static HOST_READS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn count_host_read() {
    HOST_READS.with(|c| c.set(c.get() + 1));
}

/// How many times this thread has read tensor data back to the host so far (every
/// [`tensor_to_vec`], [`tensors_to_vecs`], [`with_host_values`], [`int_tensor_to_vec`] and
/// host-memory [`map_host_values`]; reading tensors any other way is refused by clippy). On a
/// GPU each read is a synchronisation: the difference across a piece of work is its
/// synchronisation count, which the tests check for the training step (none between metric
/// reads).
pub fn host_reads() -> u64 {
    HOST_READS.with(std::cell::Cell::get)
}

/// Reads a float tensor back to row-major host data (f32; a weight stored in f16/bf16 is read
/// as f32).
#[allow(clippy::disallowed_methods)] // the one place host data meets burn
pub fn tensor_to_vec<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    count_host_read();
    let tensor = as_f32(tensor);
    tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| SaeError::Backend(format!("reading a tensor back: {e:?}")))
}

/// Lends a float tensor's row-major values to `f`, read back as [`tensor_to_vec`] does but
/// without turning them into a `Vec` (no copy where burn's buffer is not a `Vec<f32>`'s, no
/// per-element validity check): for large results read once, like a tile of logits.
#[allow(clippy::disallowed_methods)] // the one place host data meets burn
pub fn with_host_values<const D: usize, R>(
    tensor: Tensor<D>,
    f: impl FnOnce(&[f32]) -> R,
) -> Result<R> {
    count_host_read();
    let data = as_f32(tensor).into_data().convert::<f32>();
    let values: &[f32] = bytemuck::try_cast_slice(data.as_bytes())
        .map_err(|e| SaeError::Backend(format!("reading a tensor back: {e:?}")))?;
    Ok(f(values))
}

/// Applies `on_host` to a float tensor's row-major values in place, on host memory and in f32:
/// a tensor no one else holds is neither copied nor reallocated (burn's CPU backend hands its
/// buffer over and takes it back). Elsewhere (a GPU, another dtype) `on_device` maps the tensor
/// where it is.
#[allow(clippy::disallowed_methods)] // the one place host data meets burn
pub fn map_host_values<const D: usize>(
    tensor: Tensor<D>,
    on_host: impl FnOnce(&mut [f32]),
    on_device: impl FnOnce(Tensor<D>) -> Tensor<D>,
) -> Tensor<D> {
    let device = tensor.device();
    if !is_host_memory(&device) || tensor.dtype() != burn::tensor::DType::F32 {
        return on_device(tensor);
    }
    count_host_read();
    let mut data = tensor.into_data();
    if let Ok(values) = data.as_mut_slice::<f32>() {
        on_host(values);
        Tensor::from_data(data, &device)
    } else {
        on_device(Tensor::from_data(data, &device))
    }
}

/// Reads several 1-D tensors (reductions, counts) back in one transfer: on a GPU every read is a
/// synchronisation, so a training step reads its statistics together. Returns each tensor's
/// values in order.
#[allow(clippy::disallowed_methods)] // the one place host data meets burn
pub fn tensors_to_vecs(parts: Vec<Tensor<1>>) -> Result<Vec<Vec<f32>>> {
    let lens: Vec<usize> = parts.iter().map(|t| t.dims()[0]).collect();
    if parts.is_empty() {
        return Ok(Vec::new());
    }
    let mut flat = tensor_to_vec(Tensor::cat(parts, 0))?.into_iter();
    Ok(lens
        .into_iter()
        .map(|n| flat.by_ref().take(n).collect())
        .collect())
}

/// Whether tensors on `device` live in host memory (the CPU backends), where reading one back is
/// a copy rather than a transfer and a synchronisation: host-side algorithms (a partial
/// selection over a row) are then the fast path, while on a GPU the data should stay put.
pub fn is_host_memory(device: &Device) -> bool {
    *device == Device::flex() || {
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        let ndarray = *device == Device::ndarray();
        #[cfg(not(feature = "ndarray"))]
        let ndarray = false;
        ndarray
    }
}

/// Reads an int tensor back to host data.
#[allow(clippy::disallowed_methods)] // the one place host data meets burn
pub fn int_tensor_to_vec<const D: usize>(tensor: Tensor<D, Int>) -> Result<Vec<i64>> {
    count_host_read();
    tensor
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .map_err(|e| SaeError::Backend(format!("reading a tensor back: {e:?}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    #[test]
    fn precision_and_device_names_round_trip() {
        for p in [Precision::Exact, Precision::Tf32] {
            assert_eq!(p.to_string().parse::<Precision>().unwrap(), p);
        }
        assert_eq!("f32".parse::<Precision>().unwrap(), Precision::Exact);
        assert!("bf16x".parse::<Precision>().is_err());
        for d in [
            ComputeDevice::Cpu,
            ComputeDevice::Cuda(0),
            ComputeDevice::Cuda(3),
        ] {
            assert_eq!(d.to_string().parse::<ComputeDevice>().unwrap(), d);
        }
        assert_eq!(DeviceConfig::default().precision, Precision::Exact);
        assert_eq!(DeviceConfig::default().device, ComputeDevice::Cpu);
    }

    /// Without the `cuda` feature a GPU is a typed error naming the device, not a panic. (With
    /// it, CI runs the CUDA build's CLI on a machine without a GPU: `.ci/run`.)
    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_typed_error() {
        match ComputeDevice::Cuda(1).burn_device() {
            Err(SaeError::CudaUnavailable { device, reason }) => {
                assert_eq!(device, "cuda:1");
                assert_eq!(reason, CudaUnavailable::NotCompiled);
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a CUDA device without the cuda feature"),
        }
        let cfg = DeviceConfig {
            device: ComputeDevice::Cuda(0),
            precision: Precision::Exact,
        };
        assert!(matches!(cfg.init(), Err(SaeError::CudaUnavailable { .. })));
    }

    /// Once a GPU runs with one precision, another is refused (the autotuner's kernel choices
    /// depend on it); the same one again is fine.
    #[test]
    fn precision_is_fixed_once_a_gpu_is_set_up() {
        set_precision(Precision::Exact).unwrap();
        lock_precision();
        set_precision(Precision::Exact).unwrap();
        match set_precision(Precision::Tf32) {
            Err(SaeError::PrecisionChanged { active, requested }) => {
                assert_eq!(active, Precision::Exact);
                assert_eq!(requested, Precision::Tf32);
            }
            other => panic!("expected PrecisionChanged, got {other:?}"),
        }
        assert_eq!(precision(), Precision::Exact);
    }
}

//! Tensor building blocks shared by the models.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sae_core::burn::module::Param;
use sae_core::burn::tensor::{Device, Tensor};
use sae_core::device::tensor_from_vec;
use sae_core::safetensors_io::HostTensor;

use crate::error::{ModelError, Result};

/// A checkpoint's tensors, taken one by one by name and shape; each name may carry a prefix (e.g.
/// `transformer.` where `save_pretrained` wrote the base model inside a head model). What is
/// taken is recorded for the load report; what is left over is the caller's to report.
pub(crate) struct Checkpoint {
    pub(crate) path: PathBuf,
    pub(crate) tensors: BTreeMap<String, HostTensor>,
    pub(crate) used: Vec<String>,
    prefix: &'static str,
}

impl Checkpoint {
    pub(crate) fn new(
        path: &Path,
        tensors: BTreeMap<String, HostTensor>,
        prefix: &'static str,
    ) -> Self {
        Self {
            path: path.to_path_buf(),
            tensors,
            used: Vec::new(),
            prefix,
        }
    }

    /// The tensor `name` (or `prefix + name`), checked to have shape `expected`.
    pub(crate) fn take(&mut self, name: &str, expected: &[usize]) -> Result<HostTensor> {
        let prefixed = format!("{}{name}", self.prefix);
        let key = [name, prefixed.as_str()]
            .into_iter()
            .find(|k| self.tensors.contains_key(*k))
            .map(str::to_string)
            .ok_or_else(|| ModelError::MissingTensor {
                path: self.path.clone(),
                tensor: name.to_string(),
                tried: format!("{name}, {prefixed}"),
            })?;
        let t = self
            .tensors
            .remove(&key)
            .ok_or_else(|| ModelError::MissingTensor {
                path: self.path.clone(),
                tensor: name.to_string(),
                tried: key.clone(),
            })?;
        if t.shape != expected {
            return Err(ModelError::ShapeMismatch {
                path: self.path.clone(),
                tensor: key,
                expected: expected.to_vec(),
                found: t.shape,
            });
        }
        self.used.push(key);
        Ok(t)
    }
}

/// A 1-D host tensor as a parameter on `dev`.
pub(crate) fn p1(t: HostTensor, dev: &Device) -> Param<Tensor<1>> {
    let n = t.shape[0];
    Param::from_tensor(tensor_from_vec(t.data, [n], dev))
}

/// A 2-D host tensor as a parameter on `dev`.
pub(crate) fn p2(t: HostTensor, dev: &Device) -> Param<Tensor<2>> {
    let (r, c) = (t.shape[0], t.shape[1]);
    Param::from_tensor(tensor_from_vec(t.data, [r, c], dev))
}

/// `x·W + b` over the last dimension.
///
/// # Shapes
/// - `x`: `[b, t, d_in]`, `w`: `[d_in, d_out]`, `b`: `[d_out]` → `[b, t, d_out]`.
pub(crate) fn linear(x: Tensor<3>, w: &Param<Tensor<2>>, b: &Param<Tensor<1>>) -> Tensor<3> {
    let [bs, t, d] = x.dims();
    let w = w.val();
    let d_out = w.dims()[1];
    let y = x.reshape([bs * t, d]).matmul(w) + b.val().unsqueeze::<2>();
    y.reshape([bs, t, d_out])
}

/// `x·W` over the last dimension (no bias). A weight stored in f16/bf16 is read as f32 here
/// (one matrix at a time), so the product is f32.
///
/// # Shapes
/// - `x`: `[b, t, d_in]`, `w`: `[d_in, d_out]` → `[b, t, d_out]`.
pub(crate) fn matmul3(x: Tensor<3>, w: &Param<Tensor<2>>) -> Tensor<3> {
    let [bs, t, d] = x.dims();
    let w = sae_core::device::as_f32(w.val());
    let d_out = w.dims()[1];
    x.reshape([bs * t, d]).matmul(w).reshape([bs, t, d_out])
}

/// A row-major `[rows, cols]` host matrix transposed (checkpoints store `[out, in]`, we multiply
/// by `[in, out]`).
pub(crate) fn transpose_host(t: &HostTensor) -> HostTensor {
    let (r, c) = (t.shape[0], t.shape[1]);
    let mut data = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            data[j * r + i] = t.data[i * c + j];
        }
    }
    HostTensor::new(vec![c, r], data)
}

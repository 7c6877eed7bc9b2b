//! The third-party weight files converters read: NumPy `.npz` archives (Gemma Scope), PyTorch
//! checkpoints (`torch.save`, read by the `pytorch-reader` crate, no Python) and safetensors
//! (any float dtype), each to float32 host tensors by name.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use half::{bf16, f16};
use npyz::{DType, NpyFile, Order};

use crate::error::{Result, SaeError};
use crate::safetensors_io::{HostTensor, SafetensorsFile};

fn err(path: &Path, conversion: &str, message: impl Into<String>) -> SaeError {
    SaeError::Conversion {
        path: path.to_path_buf(),
        conversion: conversion.to_string(),
        message: message.into(),
    }
}

/// Every array of an `.npz` archive (`np.savez` or `np.savez_compressed`), float32 or float64
/// in C order, as float32, keyed by its name without `.npy`.
pub fn read_npz(path: &Path, conversion: &str) -> Result<BTreeMap<String, HostTensor>> {
    let file = std::fs::File::open(path).map_err(|e| SaeError::io(path, e))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| err(path, conversion, format!("not a .npz (zip) archive: {e}")))?;
    let mut out = BTreeMap::new();
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| err(path, conversion, format!("zip entry {i}: {e}")))?;
        let name = entry
            .name()
            .map_err(|e| err(path, conversion, format!("zip entry {i}: {e}")))?
            .to_string();
        let Some(key) = name.strip_suffix(".npy") else {
            continue;
        };
        let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| err(path, conversion, format!("{name}: {e}")))?;
        let bad = |m: String| err(path, conversion, format!("{name}: {m}"));
        let npy = NpyFile::new(&bytes[..]).map_err(|e| bad(format!("bad .npy header: {e}")))?;
        if npy.order() == Order::Fortran && npy.shape().len() > 1 {
            return Err(bad("Fortran-ordered array".into()));
        }
        let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
        let count: usize = shape.iter().product();
        let descr = match npy.dtype() {
            DType::Plain(ts) => ts.to_string(),
            other => return Err(bad(format!("dtype {other:?}; expected float32 or float64"))),
        };
        let data: Vec<f32> = match descr.as_str() {
            "<f4" => npy.into_vec::<f32>(),
            "<f8" => npy
                .into_vec::<f64>()
                .map(|v| v.into_iter().map(|x| x as f32).collect()),
            other => return Err(bad(format!("dtype {other}; expected <f4 or <f8"))),
        }
        .map_err(|e| bad(format!("truncated data: {e}")))?;
        if data.len() != count {
            return Err(bad(format!("{} values for shape {shape:?}", data.len())));
        }
        out.insert(key.to_string(), HostTensor::new(shape, data));
    }
    Ok(out)
}

/// Every floating-point tensor of a PyTorch checkpoint (`torch.save` of a state dict, in any
/// container `torch.save` has written), as float32, keyed by its dotted name. Integer and bool
/// tensors are skipped (no converter reads them).
pub fn read_torch(path: &Path, conversion: &str) -> Result<BTreeMap<String, HostTensor>> {
    use pytorch_reader::{DType as T, PytorchReader};
    let reader = PytorchReader::new(path).map_err(|e| {
        err(
            path,
            conversion,
            format!("not a readable PyTorch checkpoint: {e}"),
        )
    })?;
    let mut out = BTreeMap::new();
    for (name, t) in reader.tensors() {
        let bytes = t.read().map_err(|e| SaeError::io(path, e))?;
        let data: Vec<f32> = match t.dtype() {
            T::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            T::F64 => bytes
                .chunks_exact(8)
                .map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    f64::from_ne_bytes(a) as f32
                })
                .collect(),
            T::F16 => bytes
                .chunks_exact(2)
                .map(|c| f16::from_ne_bytes([c[0], c[1]]).to_f32())
                .collect(),
            T::BF16 => bytes
                .chunks_exact(2)
                .map(|c| bf16::from_ne_bytes([c[0], c[1]]).to_f32())
                .collect(),
            _ => continue,
        };
        out.insert(name.clone(), HostTensor::new(t.shape().to_vec(), data));
    }
    Ok(out)
}

/// Every tensor of a safetensors file as float32 (f32, f16, bf16, f64 stored).
pub fn read_safetensors(path: &Path) -> Result<BTreeMap<String, HostTensor>> {
    SafetensorsFile::open(path)?.read_all()
}

/// The shapes in a safetensors file's header, without reading the data (SAELens's
/// `get_safetensors_tensor_shapes`, which asks the hub for the header only).
pub fn safetensors_shapes(path: &Path) -> Result<BTreeMap<String, Vec<usize>>> {
    let file = SafetensorsFile::open(path)?;
    let st = file.tensors()?;
    Ok(st
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.shape().to_vec()))
        .collect())
}

/// A tensor taken out of a converter's state dict, or a typed error naming the file and key.
pub fn take(
    tensors: &mut BTreeMap<String, HostTensor>,
    key: &str,
    path: &Path,
    conversion: &str,
) -> Result<HostTensor> {
    tensors.remove(key).ok_or_else(|| {
        err(
            path,
            conversion,
            format!(
                "no tensor `{key}` (found: {})",
                tensors.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    })
}

/// The transpose of a 2-D tensor (`.T` in the converters), or a typed error for another rank.
pub fn transpose(t: HostTensor, key: &str, path: &Path, conversion: &str) -> Result<HostTensor> {
    let [r, c] = t.shape[..] else {
        return Err(err(
            path,
            conversion,
            format!("`{key}` has shape {:?}; expected a matrix", t.shape),
        ));
    };
    let mut out = vec![0f32; r * c];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = t.data[i * c + j];
        }
    }
    Ok(HostTensor::new(vec![c, r], out))
}

/// The sum over axis 1 of a 3-D tensor (`w_dec.sum(dim=1)` of cross-layer transcoders, whose
/// decoder writes every later layer), accumulated in order as torch's CPU reduction does for
/// short axes.
pub fn sum_axis1(t: HostTensor, key: &str, path: &Path, conversion: &str) -> Result<HostTensor> {
    let [a, b, c] = t.shape[..] else {
        return Err(err(
            path,
            conversion,
            format!("`{key}` has shape {:?}; expected rank 3", t.shape),
        ));
    };
    let mut out = vec![0f32; a * c];
    for i in 0..a {
        for j in 0..b {
            let row = &t.data[(i * b + j) * c..(i * b + j + 1) * c];
            for (o, v) in out[i * c..(i + 1) * c].iter_mut().zip(row) {
                *o += v;
            }
        }
    }
    Ok(HostTensor::new(vec![a, c], out))
}

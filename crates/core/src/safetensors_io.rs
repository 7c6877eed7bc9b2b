//! Reading and writing safetensors files of float tensors, with errors that name the file and the
//! tensor. Files are memory-mapped (zero-copy until the one conversion to f32).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};

use crate::config::StorageDtype;
use crate::error::{Result, SaeError};

/// A float tensor on the host: shape and row-major f32 data.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// The shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// A tensor from its parts; `data.len()` must equal the product of `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Self { shape, data }
    }
}

/// A memory-mapped safetensors file.
pub struct SafetensorsFile {
    path: PathBuf,
    mmap: memmap2::Mmap,
}

impl SafetensorsFile {
    /// Maps the file. Nothing is parsed yet.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| SaeError::io(&path, e))?;
        // SAFETY: the map is read-only and lives as long as `self`. A file truncated by another
        // process while mapped would fault; that is the usual contract of reading model files
        // through mmap (safetensors, candle and transformers all do it).
        #[allow(unsafe_code)]
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| SaeError::io(&path, e))?;
        Ok(Self { path, mmap })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Parses the header. Truncated or corrupt files give [`SaeError::CorruptSafetensors`].
    pub fn tensors(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.mmap).map_err(|e| SaeError::CorruptSafetensors {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }

    /// Reads one float tensor, converted to f32.
    pub fn tensor_f32(&self, name: &str) -> Result<HostTensor> {
        let st = self.tensors()?;
        let view = st.tensor(name).map_err(|_| SaeError::MissingTensor {
            path: self.path.clone(),
            tensor: name.to_string(),
            architecture: "(any)".into(),
        })?;
        view_to_f32(&self.path, name, &view)
    }

    /// Reads one integer tensor (I32, I64, U32, U16, U8), widened to i64, with its shape.
    pub fn tensor_i64(&self, name: &str) -> Result<(Vec<usize>, Vec<i64>)> {
        let st = self.tensors()?;
        let view = st.tensor(name).map_err(|_| SaeError::MissingTensor {
            path: self.path.clone(),
            tensor: name.to_string(),
            architecture: "(any)".into(),
        })?;
        let b = view.data();
        let data: Vec<i64> = match view.dtype() {
            Dtype::I64 => b
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
            Dtype::I32 => b
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            Dtype::U32 => b
                .chunks_exact(4)
                .map(|c| i64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            Dtype::U16 => b
                .chunks_exact(2)
                .map(|c| i64::from(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            Dtype::U8 => b.iter().map(|&v| i64::from(v)).collect(),
            other => {
                return Err(SaeError::UnsupportedDtype {
                    path: self.path.clone(),
                    tensor: name.to_string(),
                    found: format!("{other:?}"),
                });
            }
        };
        Ok((view.shape().to_vec(), data))
    }

    /// Reads every tensor, converted to f32.
    pub fn read_all(&self) -> Result<BTreeMap<String, HostTensor>> {
        let st = self.tensors()?;
        st.tensors()
            .into_iter()
            .map(|(name, view)| {
                let t = view_to_f32(&self.path, &name, &view)?;
                Ok((name, t))
            })
            .collect()
    }
}

/// Converts one tensor view to f32.
pub fn view_to_f32(path: &Path, name: &str, view: &TensorView<'_>) -> Result<HostTensor> {
    let bytes = view.data();
    let data: Vec<f32> = match view.dtype() {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                f64::from_le_bytes(b) as f32
            })
            .collect(),
        other => {
            return Err(SaeError::UnsupportedDtype {
                path: path.to_path_buf(),
                tensor: name.to_string(),
                found: format!("{other:?}"),
            });
        }
    };
    Ok(HostTensor::new(view.shape().to_vec(), data))
}

fn encode(dtype: StorageDtype, data: &[f32]) -> (Dtype, Vec<u8>) {
    match dtype {
        StorageDtype::F32 => (
            Dtype::F32,
            data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        StorageDtype::F16 => (
            Dtype::F16,
            data.iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
        ),
        StorageDtype::Bf16 => (
            Dtype::BF16,
            data.iter()
                .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                .collect(),
        ),
        StorageDtype::F64 => (
            Dtype::F64,
            data.iter()
                .flat_map(|v| f64::from(*v).to_le_bytes())
                .collect(),
        ),
    }
}

/// Writes tensors to a safetensors file in the given storage dtype, atomically (a temporary file
/// renamed into place, so an interrupted save never leaves a half-written file under the name).
pub fn write_safetensors(
    path: impl AsRef<Path>,
    tensors: &BTreeMap<String, HostTensor>,
    dtype: StorageDtype,
) -> Result<()> {
    let path = path.as_ref();
    let encoded: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            let (dt, bytes) = encode(dtype, &t.data);
            (name.clone(), dt, t.shape.clone(), bytes)
        })
        .collect();
    let views = encoded
        .iter()
        .map(|(name, dt, shape, bytes)| {
            TensorView::new(*dt, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| SaeError::CorruptSafetensors {
                    path: path.to_path_buf(),
                    message: format!("tensor `{name}`: {e}"),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, None).map_err(|e| SaeError::CorruptSafetensors {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    crate::atomic::write(path, &bytes)
}

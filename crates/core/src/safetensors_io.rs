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

/// A finite f32 that a narrower dtype cannot hold: float16 tops out at ±65 504, and rounding
/// past its largest finite value would store ±∞ (bfloat16 has f32's range, so only values
/// within half an ulp of `f32::MAX` overflow it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutOfRange {
    /// The value's position in the data.
    pub index: usize,
    /// The value.
    pub value: f32,
    /// The dtype it was to be stored in.
    pub dtype: StorageDtype,
}

/// `values` as little-endian bytes of `dtype` (round to nearest even, as torch's `.to(dtype)`),
/// with the safetensors dtype. NaN and ±∞ are kept as they are; a finite value the dtype cannot
/// hold is an [`OutOfRange`], never a silent ±∞.
pub fn encode_f32(
    dtype: StorageDtype,
    values: &[f32],
) -> std::result::Result<(Dtype, Vec<u8>), OutOfRange> {
    fn narrow<T: Copy>(
        values: &[f32],
        dtype: StorageDtype,
        convert: impl Fn(f32) -> T,
        finite: impl Fn(T) -> bool,
        bytes: impl Fn(T) -> [u8; 2],
    ) -> std::result::Result<Vec<u8>, OutOfRange> {
        let mut out = Vec::with_capacity(values.len() * 2);
        for (index, &value) in values.iter().enumerate() {
            let h = convert(value);
            if value.is_finite() && !finite(h) {
                return Err(OutOfRange {
                    index,
                    value,
                    dtype,
                });
            }
            out.extend_from_slice(&bytes(h));
        }
        Ok(out)
    }
    Ok(match dtype {
        StorageDtype::F32 => (
            Dtype::F32,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        StorageDtype::F16 => (
            Dtype::F16,
            narrow(
                values,
                dtype,
                half::f16::from_f32,
                half::f16::is_finite,
                half::f16::to_le_bytes,
            )?,
        ),
        StorageDtype::Bf16 => (
            Dtype::BF16,
            narrow(
                values,
                dtype,
                half::bf16::from_f32,
                half::bf16::is_finite,
                half::bf16::to_le_bytes,
            )?,
        ),
        StorageDtype::F64 => (
            Dtype::F64,
            values
                .iter()
                .flat_map(|v| f64::from(*v).to_le_bytes())
                .collect(),
        ),
    })
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
            let (dt, bytes) = encode_f32(dtype, &t.data).map_err(|e| SaeError::OutOfRange {
                path: path.to_path_buf(),
                tensor: name.clone(),
                index: e.index,
                value: e.value,
                dtype: dtype.as_str(),
            })?;
            Ok((name.clone(), dt, t.shape.clone(), bytes))
        })
        .collect::<Result<_>>()?;
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn narrow_encodings_round_to_nearest_and_refuse_overflow() {
        let values = [
            0.0,
            -1.5,
            1.0 + 2f32.powi(-10),
            65504.0,
            f32::NAN,
            f32::INFINITY,
        ];
        let (dt, bytes) = encode_f32(StorageDtype::F16, &values).unwrap();
        assert_eq!(dt, Dtype::F16);
        assert_eq!(bytes.len(), 2 * values.len());
        let view = TensorView::new(dt, vec![values.len()], &bytes).unwrap();
        let back = view_to_f32(Path::new("x"), "t", &view).unwrap().data;
        for (b, v) in back.iter().zip(&values) {
            let want = half::f16::from_f32(*v).to_f32();
            assert!(
                b.to_bits() == want.to_bits() || (b.is_nan() && v.is_nan()),
                "{v} → {b}"
            );
        }
        // Non-finite values pass as they are; a finite one beyond the range is refused.
        for (dtype, big) in [
            (StorageDtype::F16, 65520.0f32),
            (StorageDtype::F16, -1.0e5),
            (StorageDtype::Bf16, f32::MAX),
        ] {
            let e = encode_f32(dtype, &[1.0, big, 2.0]).unwrap_err();
            assert_eq!(
                e,
                OutOfRange {
                    index: 1,
                    value: big,
                    dtype
                }
            );
        }
        assert!(encode_f32(StorageDtype::Bf16, &[1.0e38, -65520.0]).is_ok());
        assert!(encode_f32(StorageDtype::F32, &[f32::MAX]).is_ok());
    }

    #[test]
    fn writing_an_overflowing_tensor_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let mut tensors = BTreeMap::new();
        tensors.insert(
            "W_dec".to_string(),
            HostTensor::new(vec![2, 2], vec![0.0, 1.0, 7e4, 3.0]),
        );
        match write_safetensors(&path, &tensors, StorageDtype::F16) {
            Err(SaeError::OutOfRange {
                path: p,
                tensor,
                index,
                value,
                dtype,
            }) => {
                assert_eq!(
                    (p, tensor.as_str(), index, value, dtype),
                    (path.clone(), "W_dec", 2, 7e4, "float16")
                );
            }
            r => panic!("{r:?}"),
        }
        assert!(!path.exists());
        write_safetensors(&path, &tensors, StorageDtype::Bf16).unwrap();
    }
}

//! `.npy` files as researchers exchange them with numpy: float32 matrices in, float32 matrices
//! and int64 label vectors out. Reading converts float64 to float32; other dtypes are errors.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use npyz::{DType, NpyFile, Order, TypeStr, WriterBuilder};

use crate::error::{Result, SaeError};
use crate::safetensors_io::HostTensor;

fn npy_err(path: &Path, message: impl Into<String>) -> SaeError {
    SaeError::Npy {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads a float32 or float64 `.npy` array of any rank (C order) as float32.
pub fn read_f32(path: impl AsRef<Path>) -> Result<HostTensor> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| SaeError::io(path, e))?;
    let npy = NpyFile::new(BufReader::new(file))
        .map_err(|e| npy_err(path, format!("not a .npy file: {e}")))?;
    if npy.order() == Order::Fortran && npy.shape().len() > 1 {
        return Err(npy_err(
            path,
            "Fortran-ordered array; save it with np.ascontiguousarray first",
        ));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let DType::Plain(ts) = npy.dtype() else {
        return Err(npy_err(
            path,
            "structured dtype; expected float32 or float64",
        ));
    };
    let descr = ts.to_string();
    let data: Vec<f32> = match descr.as_str() {
        "<f4" => npy.into_vec::<f32>(),
        "<f8" => npy
            .into_vec::<f64>()
            .map(|v| v.into_iter().map(|x| x as f32).collect()),
        other => {
            return Err(npy_err(
                path,
                format!("dtype {other}; expected float32 (<f4) or float64 (<f8)"),
            ));
        }
    }
    .map_err(|e| npy_err(path, format!("truncated or unreadable data: {e}")))?;
    if data.len() != shape.iter().product::<usize>() {
        return Err(npy_err(
            path,
            "data length does not match the header's shape",
        ));
    }
    Ok(HostTensor::new(shape, data))
}

/// Reads a 2-D float matrix, checking the number of columns when `cols` is given.
pub fn read_f32_matrix(path: impl AsRef<Path>, cols: Option<usize>) -> Result<HostTensor> {
    let path = path.as_ref();
    let t = read_f32(path)?;
    if t.shape.len() != 2 || cols.is_some_and(|c| t.shape[1] != c) {
        let expected = match cols {
            Some(c) => format!("[rows, {c}]"),
            None => "[rows, cols]".to_string(),
        };
        return Err(npy_err(
            path,
            format!("array has shape {:?}, expected {expected}", t.shape),
        ));
    }
    Ok(t)
}

/// Writes a float32 array of the given shape.
pub fn write_f32(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> Result<()> {
    let path = path.as_ref();
    let mut w = NpyStreamWriter::create(path, shape)?;
    w.push(data)?;
    w.finish()
}

/// Writes an int64 vector (e.g. cluster labels).
pub fn write_i64(path: impl AsRef<Path>, data: &[i64]) -> Result<()> {
    let path = path.as_ref();
    let file = File::create(path).map_err(|e| SaeError::io(path, e))?;
    let mut w = npyz::WriteOptions::new()
        .dtype(DType::Plain(
            "<i8"
                .parse::<TypeStr>()
                .map_err(|e| npy_err(path, e.to_string()))?,
        ))
        .shape(&[data.len() as u64])
        .writer(BufWriter::new(file))
        .begin_nd()
        .map_err(|e| SaeError::io(path, e))?;
    w.extend(data.iter().copied())
        .map_err(|e| SaeError::io(path, e))?;
    w.finish().map_err(|e| SaeError::io(path, e))
}

/// Reads an int64 (or int32) vector.
pub fn read_i64(path: impl AsRef<Path>) -> Result<Vec<i64>> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| SaeError::io(path, e))?;
    let npy = NpyFile::new(BufReader::new(file))
        .map_err(|e| npy_err(path, format!("not a .npy file: {e}")))?;
    let descr = match npy.dtype() {
        DType::Plain(ts) => ts.to_string(),
        _ => String::from("structured"),
    };
    match descr.as_str() {
        "<i8" => npy.into_vec::<i64>(),
        "<i4" => npy
            .into_vec::<i32>()
            .map(|v| v.into_iter().map(i64::from).collect()),
        other => {
            return Err(npy_err(
                path,
                format!("dtype {other}; expected int64 or int32"),
            ));
        }
    }
    .map_err(|e| npy_err(path, format!("truncated or unreadable data: {e}")))
}

/// Writes a float32 array row block by row block, so outputs larger than memory stream to disk.
pub struct NpyStreamWriter {
    path: PathBuf,
    expected: usize,
    written: usize,
    inner: npyz::NpyWriter<f32, BufWriter<File>>,
}

impl NpyStreamWriter {
    /// Creates the file with the final shape in its header.
    pub fn create(path: impl AsRef<Path>, shape: &[usize]) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::create(&path).map_err(|e| SaeError::io(&path, e))?;
        let shape64: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let inner = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&shape64)
            .writer(BufWriter::new(file))
            .begin_nd()
            .map_err(|e| SaeError::io(&path, e))?;
        Ok(Self {
            path,
            expected: shape.iter().product(),
            written: 0,
            inner,
        })
    }

    /// Appends values in row-major order.
    pub fn push(&mut self, data: &[f32]) -> Result<()> {
        self.written += data.len();
        if self.written > self.expected {
            return Err(npy_err(
                &self.path,
                "more values written than the header's shape holds",
            ));
        }
        self.inner
            .extend(data.iter().copied())
            .map_err(|e| SaeError::io(&self.path, e))
    }

    /// Checks the count and flushes.
    pub fn finish(self) -> Result<()> {
        if self.written != self.expected {
            return Err(npy_err(
                &self.path,
                format!(
                    "wrote {} values, the header promises {}",
                    self.written, self.expected
                ),
            ));
        }
        self.inner.finish().map_err(|e| SaeError::io(&self.path, e))
    }
}

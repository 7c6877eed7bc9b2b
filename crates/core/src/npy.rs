//! `.npy` files as researchers exchange them with numpy: float32 matrices in, float32 matrices
//! and int64 label vectors out. Reading converts float64 to float32; other dtypes are errors.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use npyz::{DType, NpyFile, Order, TypeStr, WriterBuilder};

use crate::atomic::{AtomicFile, PendingFile};
use crate::error::{Result, SaeError};
use crate::safetensors_io::HostTensor;

/// Checks a header's shape before anything is allocated: its element count must be
/// representable and its data must fit in the file (`item_bytes` per element).
fn checked_count(path: &Path, shape: &[u64], item_bytes: u64, file_len: u64) -> Result<usize> {
    let count = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n.checked_mul(item_bytes).is_some_and(|b| b <= file_len))
        .and_then(|n| usize::try_from(n).ok());
    count.ok_or_else(|| {
        npy_err(
            path,
            format!("header shape {shape:?} needs more data than the file's {file_len} bytes hold"),
        )
    })
}

/// The header's `shape`, read before npyz sees the file (npyz multiplies the dimensions
/// unchecked, which overflows on a hostile header).
fn peek_shape(path: &Path, file: &mut File) -> Result<Vec<u64>> {
    use std::io::Read;
    let not_npy = |what: &str| npy_err(path, format!("not a .npy file: {what}"));
    let mut pre = [0u8; 8];
    file.read_exact(&mut pre)
        .map_err(|_| not_npy("shorter than its magic"))?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err(not_npy("bad magic"));
    }
    let header_len = match pre[6] {
        1 => {
            let mut b = [0u8; 2];
            file.read_exact(&mut b)
                .map_err(|_| not_npy("truncated header"))?;
            usize::from(u16::from_le_bytes(b))
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            file.read_exact(&mut b)
                .map_err(|_| not_npy("truncated header"))?;
            u32::from_le_bytes(b) as usize
        }
        v => return Err(not_npy(&format!("format version {v}"))),
    };
    if header_len > 1 << 20 {
        return Err(not_npy(&format!("a {header_len}-byte header")));
    }
    let mut header = vec![0u8; header_len];
    file.read_exact(&mut header)
        .map_err(|_| not_npy("truncated header"))?;
    let header = String::from_utf8_lossy(&header);
    let tuple = header
        .find("'shape'")
        .map(|i| &header[i..])
        .and_then(|h| {
            let open = h.find('(')? + 1;
            let close = open + h[open..].find(')')?;
            Some(&h[open..close])
        })
        .ok_or_else(|| not_npy("no shape in the header"))?;
    tuple
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.trim_end_matches('L')
                .parse::<u64>()
                .map_err(|_| npy_err(path, format!("header shape has a dimension `{d}`")))
        })
        .collect()
}

fn open_npy(
    path: &Path,
    item_bytes: impl Fn(&str) -> u64,
) -> Result<(NpyFile<BufReader<File>>, usize)> {
    use std::io::{Seek, SeekFrom};
    let mut file = File::open(path).map_err(|e| SaeError::io(path, e))?;
    let len = file.metadata().map_err(|e| SaeError::io(path, e))?.len();
    let shape = peek_shape(path, &mut file)?;
    // The widest dtype read here is 8 bytes; the exact check follows once the dtype is known.
    checked_count(path, &shape, 1, len)?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| SaeError::io(path, e))?;
    let npy = NpyFile::new(BufReader::new(file))
        .map_err(|e| npy_err(path, format!("not a .npy file: {e}")))?;
    let descr = match npy.dtype() {
        DType::Plain(ts) => ts.to_string(),
        _ => String::new(),
    };
    let count = checked_count(path, &shape, item_bytes(&descr), len)?;
    Ok((npy, count))
}

fn npy_err(path: &Path, message: impl Into<String>) -> SaeError {
    SaeError::Npy {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads a float32 or float64 `.npy` array of any rank (C order) as float32.
pub fn read_f32(path: impl AsRef<Path>) -> Result<HostTensor> {
    let path = path.as_ref();
    let (npy, count) = open_npy(path, |d| if d == "<f8" { 8 } else { 4 })?;
    if npy.order() == Order::Fortran && npy.shape().len() > 1 {
        return Err(npy_err(
            path,
            "Fortran-ordered array; save it with np.ascontiguousarray first",
        ));
    }
    let DType::Plain(ts) = npy.dtype() else {
        return Err(npy_err(
            path,
            "structured dtype; expected float32 or float64",
        ));
    };
    let descr = ts.to_string();
    // Every dimension fits in usize: their product does.
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
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
    if data.len() != count {
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
    let (file, pending) = AtomicFile::create(path)?.into_parts();
    let mut w = npyz::WriteOptions::new()
        .dtype(DType::Plain(
            "<i8"
                .parse::<TypeStr>()
                .map_err(|e| npy_err(path, e.to_string()))?,
        ))
        .shape(&[data.len() as u64])
        .writer(file)
        .begin_nd()
        .map_err(|e| SaeError::io(path, e))?;
    w.extend(data.iter().copied())
        .map_err(|e| SaeError::io(path, e))?;
    w.finish().map_err(|e| SaeError::io(path, e))?;
    pending.commit()
}

/// Reads an int64 (or int32) vector.
pub fn read_i64(path: impl AsRef<Path>) -> Result<Vec<i64>> {
    let path = path.as_ref();
    let (npy, _) = open_npy(path, |d| if d == "<i4" { 4 } else { 8 })?;
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
///
/// The file appears under its name only when [`NpyStreamWriter::finish`] succeeds.
pub struct NpyStreamWriter {
    path: PathBuf,
    expected: usize,
    written: usize,
    inner: npyz::NpyWriter<f32, BufWriter<File>>,
    pending: PendingFile,
}

impl NpyStreamWriter {
    /// Creates the file with the final shape in its header.
    pub fn create(path: impl AsRef<Path>, shape: &[usize]) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let expected = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| npy_err(&path, format!("shape {shape:?} overflows")))?;
        let (file, pending) = AtomicFile::create(&path)?.into_parts();
        let shape64: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let inner = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&shape64)
            .writer(file)
            .begin_nd()
            .map_err(|e| SaeError::io(&path, e))?;
        Ok(Self {
            path,
            expected,
            written: 0,
            inner,
            pending,
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
        self.inner
            .finish()
            .map_err(|e| SaeError::io(&self.path, e))?;
        self.pending.commit()
    }
}

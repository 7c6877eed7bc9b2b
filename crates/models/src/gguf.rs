//! GGUF: header, metadata, tensor table, and dequantisation of F32, F16, BF16, Q8_0, Q4_0, Q5_0,
//! Q4_K and Q6_K to float32, bit for bit as the `gguf` Python package and llama.cpp compute them.
//!
//! Written here rather than bought: the Rust GGUF readers on crates.io are either part of a large
//! framework (candle), GPL-licensed, or young; this one is ~400 lines, reads every byte through
//! bounds-checked cursors, and is property-tested on mutated files (no input panics).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use sae_core::safetensors_io::HostTensor;

use crate::error::{ModelError, Result};

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum GgufValue {
    /// `uint8`.
    U8(u8),
    /// `int8`.
    I8(i8),
    /// `uint16`.
    U16(u16),
    /// `int16`.
    I16(i16),
    /// `uint32`.
    U32(u32),
    /// `int32`.
    I32(i32),
    /// `float32`.
    F32(f32),
    /// `bool`.
    Bool(bool),
    /// `string` (UTF-8; invalid sequences replaced).
    String(String),
    /// `array`.
    Array(Vec<GgufValue>),
    /// `uint64`.
    U64(u64),
    /// `int64`.
    I64(i64),
    /// `float64`.
    F64(f64),
}

impl GgufValue {
    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v.into()),
            GgufValue::U16(v) => Some(v.into()),
            GgufValue::U32(v) => Some(v.into()),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v.into()),
            GgufValue::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64).or(match *self {
                GgufValue::I8(v) => Some(v.into()),
                GgufValue::I16(v) => Some(v.into()),
                GgufValue::I32(v) => Some(v.into()),
                GgufValue::I64(v) => Some(v as f64),
                _ => None,
            }),
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The bool, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            GgufValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The items, if this is an array.
    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            GgufValue::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// ggml tensor types (the ones with a fixed block layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GgmlType {
    /// 0
    F32,
    /// 1
    F16,
    /// 2
    Q4_0,
    /// 3
    Q4_1,
    /// 6
    Q5_0,
    /// 7
    Q5_1,
    /// 8
    Q8_0,
    /// 10
    Q2K,
    /// 11
    Q3K,
    /// 12
    Q4K,
    /// 13
    Q5K,
    /// 14
    Q6K,
    /// 30
    BF16,
    /// Any other id (readable as metadata; not dequantisable).
    Other(u32),
}

impl GgmlType {
    fn from_id(id: u32) -> Self {
        match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            10 => Self::Q2K,
            11 => Self::Q3K,
            12 => Self::Q4K,
            13 => Self::Q5K,
            14 => Self::Q6K,
            30 => Self::BF16,
            other => Self::Other(other),
        }
    }

    /// (elements per block, bytes per block), for the types whose layout is known.
    pub fn block_layout(self) -> Option<(usize, usize)> {
        Some(match self {
            Self::F32 => (1, 4),
            Self::F16 | Self::BF16 => (1, 2),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q5_0 => (32, 22),
            Self::Q5_1 => (32, 24),
            Self::Q8_0 => (32, 34),
            Self::Q2K => (256, 84),
            Self::Q3K => (256, 110),
            Self::Q4K => (256, 144),
            Self::Q5K => (256, 176),
            Self::Q6K => (256, 210),
            Self::Other(_) => return None,
        })
    }

    /// Whether [`GgufFile::dequantize`] supports it.
    pub fn is_dequantizable(self) -> bool {
        matches!(
            self,
            Self::F32
                | Self::F16
                | Self::BF16
                | Self::Q4_0
                | Self::Q4_1
                | Self::Q5_0
                | Self::Q5_1
                | Self::Q8_0
                | Self::Q2K
                | Self::Q3K
                | Self::Q4K
                | Self::Q5K
                | Self::Q6K
        )
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Other(id) => match other_type_name(*id) {
                Some(name) => write!(f, "{name} (ggml type {id})"),
                None => write!(f, "ggml type {id}"),
            },
            Self::Q2K => f.write_str("Q2_K"),
            Self::Q3K => f.write_str("Q3_K"),
            Self::Q4K => f.write_str("Q4_K"),
            Self::Q5K => f.write_str("Q5_K"),
            Self::Q6K => f.write_str("Q6_K"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// The names of the ggml types this crate does not dequantise (llama.cpp's `ggml_type`).
fn other_type_name(id: u32) -> Option<&'static str> {
    Some(match id {
        4 => "Q4_2 (removed)",
        5 => "Q4_3 (removed)",
        9 => "Q8_1",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => return None,
    })
}

/// One entry of the tensor table.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufTensorInfo {
    /// Name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions in ggml order (`ne[0]` varies fastest: the row length).
    pub dims: Vec<u64>,
    /// Storage type.
    pub ggml_type: GgmlType,
    /// Offset from the start of the data section.
    pub offset: u64,
}

impl GgufTensorInfo {
    /// The row-major shape (ggml dims reversed), e.g. `[262144, 640]` for Gemma 3's embeddings.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }

    /// Number of elements (saturating: a corrupt table cannot overflow).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().fold(1u64, |a, &d| a.saturating_mul(d))
    }
}

enum Bytes {
    Mmap(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mmap(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// A parsed GGUF file: metadata and tensor table; tensor data is read on demand.
pub struct GgufFile {
    path: PathBuf,
    bytes: Bytes,
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata by key.
    pub metadata: BTreeMap<String, GgufValue>,
    /// The tensor table, in file order.
    pub tensors: Vec<GgufTensorInfo>,
    data_start: usize,
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn err(&self, what: &str) -> ModelError {
        ModelError::Gguf {
            path: self.path.to_path_buf(),
            message: format!(
                "{what} at byte {} (file is {} bytes)",
                self.pos,
                self.buf.len()
            ),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(self.err(&format!("truncated: {what} needs {n} bytes"))),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A length that must fit what is left of the file at `min_item` bytes per item.
    fn len(&mut self, what: &str, min_item: usize) -> Result<usize> {
        let n = self.u64(what)?;
        let left = (self.buf.len() - self.pos) as u64;
        if n.saturating_mul(min_item.max(1) as u64) > left {
            return Err(self.err(&format!(
                "{what} of {n} items cannot fit in the {left} bytes left"
            )));
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.len(what, 1)?;
        Ok(String::from_utf8_lossy(self.take(n, what)?).into_owned())
    }

    fn value(&mut self, ty: u32, depth: usize) -> Result<GgufValue> {
        Ok(match ty {
            0 => GgufValue::U8(self.array::<1>("u8")?[0]),
            1 => GgufValue::I8(i8::from_le_bytes(self.array("i8")?)),
            2 => GgufValue::U16(u16::from_le_bytes(self.array("u16")?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array("i16")?)),
            4 => GgufValue::U32(self.u32("u32")?),
            5 => GgufValue::I32(i32::from_le_bytes(self.array("i32")?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array("f32")?)),
            7 => match self.array::<1>("bool")?[0] {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                b => return Err(self.err(&format!("bool byte {b}"))),
            },
            8 => GgufValue::String(self.string("string")?),
            9 => {
                if depth > 4 {
                    return Err(self.err("arrays nested deeper than 4"));
                }
                let item_ty = self.u32("array type")?;
                let min = match item_ty {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    t => return Err(self.err(&format!("unknown array item type {t}"))),
                };
                let n = self.len("array", min)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.value(item_ty, depth + 1)?);
                }
                GgufValue::Array(v)
            }
            10 => GgufValue::U64(self.u64("u64")?),
            11 => GgufValue::I64(i64::from_le_bytes(self.array("i64")?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array("f64")?)),
            t => return Err(self.err(&format!("unknown metadata value type {t}"))),
        })
    }
}

impl GgufFile {
    /// Memory-maps and parses a GGUF file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = std::fs::File::open(&path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        // SAFETY: read-only map kept alive by `self`; see sae_core::safetensors_io.
        #[allow(unsafe_code)]
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        Self::parse(path, Bytes::Mmap(mmap))
    }

    /// Parses GGUF bytes held in memory (`path` names them in errors).
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self> {
        Self::parse(path.into(), Bytes::Owned(bytes))
    }

    fn parse(path: PathBuf, bytes: Bytes) -> Result<Self> {
        let (version, metadata, tensors, data_start) = {
            let buf = bytes.as_slice();
            let mut c = Cursor {
                buf,
                pos: 0,
                path: &path,
            };
            if c.take(4, "magic")? != MAGIC {
                return Err(c.err("not a GGUF file (bad magic)"));
            }
            let version = c.u32("version")?;
            if !(2..=3).contains(&version) {
                return Err(c.err(&format!("GGUF version {version} is not supported (2, 3)")));
            }
            let n_tensors = c.len("tensor count", 24)?;
            let n_kv = c.len("metadata count", 13)?;
            let mut metadata = BTreeMap::new();
            for _ in 0..n_kv {
                let key = c.string("metadata key")?;
                let ty = c.u32("metadata type")?;
                let v = c.value(ty, 0)?;
                metadata.insert(key, v);
            }
            let mut tensors = Vec::with_capacity(n_tensors);
            for _ in 0..n_tensors {
                let name = c.string("tensor name")?;
                let n_dims = c.u32("tensor rank")?;
                if n_dims == 0 || n_dims > 4 {
                    return Err(c.err(&format!("tensor `{name}` has rank {n_dims} (1 to 4)")));
                }
                let mut dims = Vec::with_capacity(n_dims as usize);
                for _ in 0..n_dims {
                    dims.push(c.u64("tensor dim")?);
                }
                let ggml_type = GgmlType::from_id(c.u32("tensor type")?);
                let offset = c.u64("tensor offset")?;
                tensors.push(GgufTensorInfo {
                    name,
                    dims,
                    ggml_type,
                    offset,
                });
            }
            let alignment = match metadata.get("general.alignment") {
                None => DEFAULT_ALIGNMENT,
                Some(v) => v
                    .as_u64()
                    .filter(|a| *a > 0 && a.is_power_of_two())
                    .ok_or_else(|| c.err("general.alignment is not a power of two"))?,
            };
            let pos = c.pos as u64;
            let data_start = pos.div_ceil(alignment).saturating_mul(alignment);
            let data_start =
                usize::try_from(data_start).map_err(|_| c.err("data offset overflows"))?;
            (version, metadata, tensors, data_start)
        };
        let file = Self {
            path,
            bytes,
            version,
            metadata,
            tensors,
            data_start,
        };
        for t in &file.tensors {
            file.tensor_bytes(t)?; // every tensor's extent must lie inside the file
        }
        Ok(file)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture").and_then(GgufValue::as_str)
    }

    /// `{general.architecture}.{key}` as a count (e.g. `block_count`), or a config error naming
    /// the key the file lacks.
    pub fn arch_usize(&self, key: &str) -> Result<usize> {
        let arch = self.architecture().unwrap_or("");
        self.get(&format!("{arch}.{key}"))
            .and_then(GgufValue::as_u64)
            .map(|v| v as usize)
            .ok_or_else(|| ModelError::Config {
                path: self.path.clone(),
                message: format!("GGUF metadata lacks {arch}.{key}"),
            })
    }

    /// `{general.architecture}.{key}` as a number, if present (e.g. `rope.freq_base`).
    pub fn arch_f64(&self, key: &str) -> Option<f64> {
        let arch = self.architecture().unwrap_or("");
        self.get(&format!("{arch}.{key}"))
            .and_then(GgufValue::as_f64)
    }

    /// The tensor table, in file order.
    pub fn tensors(&self) -> &[GgufTensorInfo] {
        &self.tensors
    }

    /// A tensor's table entry.
    pub fn tensor_info(&self, name: &str) -> Result<&GgufTensorInfo> {
        self.tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| ModelError::MissingTensor {
                path: self.path.clone(),
                tensor: name.to_string(),
                tried: name.to_string(),
            })
    }

    fn err(&self, message: String) -> ModelError {
        ModelError::Gguf {
            path: self.path.clone(),
            message,
        }
    }

    /// The stored bytes of a tensor, checked against the file's length.
    pub fn tensor_bytes(&self, t: &GgufTensorInfo) -> Result<&[u8]> {
        let Some((block, size)) = t.ggml_type.block_layout() else {
            return Err(ModelError::UnsupportedQuantization {
                path: self.path.clone(),
                tensor: t.name.clone(),
                ggml_type: t.ggml_type.to_string(),
            });
        };
        let row = t.dims.first().copied().unwrap_or(0);
        if row % block as u64 != 0 {
            return Err(self.err(format!(
                "tensor `{}`: row length {row} is not a multiple of the {} block size {block}",
                t.name, t.ggml_type
            )));
        }
        let n_bytes = (t.n_elements() / block as u64).saturating_mul(size as u64);
        let start = (self.data_start as u64).saturating_add(t.offset);
        let end = start.saturating_add(n_bytes);
        let buf = self.bytes.as_slice();
        if end > buf.len() as u64 {
            return Err(self.err(format!(
                "tensor `{}` ({} bytes at offset {start}) runs past the end of the file ({} bytes): truncated?",
                t.name,
                n_bytes,
                buf.len()
            )));
        }
        Ok(&buf[start as usize..end as usize])
    }

    /// A tensor dequantised to float32, row-major with the ggml dims reversed.
    pub fn dequantize(&self, name: &str) -> Result<HostTensor> {
        let t = self.tensor_info(name)?;
        if !t.ggml_type.is_dequantizable() {
            return Err(ModelError::UnsupportedQuantization {
                path: self.path.clone(),
                tensor: t.name.clone(),
                ggml_type: t.ggml_type.to_string(),
            });
        }
        let bytes = self.tensor_bytes(t)?;
        let data = dequantize_bytes(t.ggml_type, bytes);
        Ok(HostTensor::new(t.shape(), data))
    }

    /// A tensor dequantised in runs of about a million values, each handed to `sink` in order
    /// (what [`GgufFile::dequantize`] would return, without holding it all in f32 at once).
    /// Returns the row-major shape.
    pub fn dequantize_runs(&self, name: &str, sink: &mut dyn FnMut(&[f32])) -> Result<Vec<usize>> {
        let t = self.tensor_info(name)?;
        if !t.ggml_type.is_dequantizable() {
            return Err(ModelError::UnsupportedQuantization {
                path: self.path.clone(),
                tensor: t.name.clone(),
                ggml_type: t.ggml_type.to_string(),
            });
        }
        let bytes = self.tensor_bytes(t)?;
        let (block, size) = t.ggml_type.block_layout().unwrap_or((1, 4));
        let blocks_per_run = (1 << 20) / block.max(1);
        for run in bytes.chunks(blocks_per_run.max(1) * size) {
            sink(&dequantize_bytes(t.ggml_type, run));
        }
        Ok(t.shape())
    }
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Dequantises whole blocks of a supported type (the caller checked the length).
pub fn dequantize_bytes(ty: GgmlType, b: &[u8]) -> Vec<f32> {
    match ty {
        GgmlType::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        GgmlType::F16 => b
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        GgmlType::BF16 => b
            .chunks_exact(2)
            .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        GgmlType::Q8_0 => b
            .chunks_exact(34)
            .flat_map(|blk| {
                let d = f16_at(blk, 0);
                blk[2..34].iter().map(move |&q| d * f32::from(q as i8))
            })
            .collect(),
        GgmlType::Q4_0 => b
            .chunks_exact(18)
            .flat_map(|blk| {
                let d = f16_at(blk, 0);
                let qs = &blk[2..18];
                let lo = qs.iter().map(move |&q| d * f32::from((q & 0x0F) as i8 - 8));
                let hi = qs.iter().map(move |&q| d * f32::from((q >> 4) as i8 - 8));
                lo.chain(hi).collect::<Vec<_>>()
            })
            .collect(),
        GgmlType::Q4_1 => b
            .chunks_exact(20)
            .flat_map(|blk| {
                let (d, m) = (f16_at(blk, 0), f16_at(blk, 2));
                let qs = &blk[4..20];
                let mut out = [0f32; 32];
                for j in 0..16 {
                    out[j] = f32::from(qs[j] & 0x0F) * d + m;
                    out[j + 16] = f32::from(qs[j] >> 4) * d + m;
                }
                out
            })
            .collect(),
        GgmlType::Q5_1 => b
            .chunks_exact(24)
            .flat_map(|blk| {
                let (d, m) = (f16_at(blk, 0), f16_at(blk, 2));
                let qh = u32::from_le_bytes([blk[4], blk[5], blk[6], blk[7]]);
                let qs = &blk[8..24];
                let mut out = [0f32; 32];
                for j in 0..16 {
                    let xh0 = (((qh >> j) << 4) & 0x10) as u8;
                    let xh1 = ((qh >> (j + 12)) & 0x10) as u8;
                    out[j] = f32::from((qs[j] & 0x0F) | xh0) * d + m;
                    out[j + 16] = f32::from((qs[j] >> 4) | xh1) * d + m;
                }
                out
            })
            .collect(),
        GgmlType::Q2K => b
            .chunks_exact(84)
            .flat_map(|blk| {
                let scales = &blk[0..16];
                let qs = &blk[16..80];
                let (d, dmin) = (f16_at(blk, 80), f16_at(blk, 82));
                let mut out = [0f32; 256];
                let mut y = 0;
                let mut is = 0;
                for n in 0..2 {
                    let q = &qs[n * 32..n * 32 + 32];
                    for shift in [0u8, 2, 4, 6] {
                        for half in 0..2 {
                            let sc = scales[is];
                            is += 1;
                            let dl = d * f32::from(sc & 0x0F);
                            let ml = dmin * f32::from(sc >> 4);
                            for l in 0..16 {
                                out[y] = dl * f32::from((q[half * 16 + l] >> shift) & 3) - ml;
                                y += 1;
                            }
                        }
                    }
                }
                out
            })
            .collect(),
        GgmlType::Q3K => b
            .chunks_exact(110)
            .flat_map(|blk| {
                let hm = &blk[0..32];
                let qs = &blk[32..96];
                let sc = scales_q3k(&blk[96..108]);
                let d = f16_at(blk, 108);
                let mut out = [0f32; 256];
                let mut y = 0;
                let mut is = 0;
                let mut m = 1u8;
                for n in 0..2 {
                    let q = &qs[n * 32..n * 32 + 32];
                    for shift in [0u8, 2, 4, 6] {
                        for half in 0..2 {
                            let dl = d * f32::from(sc[is] - 32);
                            is += 1;
                            for l in 0..16 {
                                let k = half * 16 + l;
                                let low = i8::try_from((q[k] >> shift) & 3).unwrap_or(0);
                                let high = if hm[k] & m != 0 { 0 } else { 4 };
                                out[y] = dl * f32::from(low - high);
                                y += 1;
                            }
                        }
                        m = m.wrapping_shl(1);
                    }
                }
                out
            })
            .collect(),
        GgmlType::Q5K => b
            .chunks_exact(176)
            .flat_map(|blk| {
                let d = f16_at(blk, 0);
                let dmin = f16_at(blk, 2);
                let scales = &blk[4..16];
                let qh = &blk[16..48];
                let qs = &blk[48..176];
                let mut out = [0f32; 256];
                let (mut u1, mut u2) = (1u8, 2u8);
                for (i, j) in (0..256).step_by(64).enumerate() {
                    let (sc1, m1) = scale_min_k4(2 * i, scales);
                    let (sc2, m2) = scale_min_k4(2 * i + 1, scales);
                    let (d1, min1) = (d * f32::from(sc1), dmin * f32::from(m1));
                    let (d2, min2) = (d * f32::from(sc2), dmin * f32::from(m2));
                    let ql = &qs[i * 32..i * 32 + 32];
                    for l in 0..32 {
                        let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
                        let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
                        out[j + l] = d1 * f32::from((ql[l] & 0x0F) + h1) - min1;
                        out[j + 32 + l] = d2 * f32::from((ql[l] >> 4) + h2) - min2;
                    }
                    u1 = u1.wrapping_shl(2);
                    u2 = u2.wrapping_shl(2);
                }
                out
            })
            .collect(),
        GgmlType::Q5_0 => b
            .chunks_exact(22)
            .flat_map(|blk| {
                let d = f16_at(blk, 0);
                let qh = u32::from_le_bytes([blk[2], blk[3], blk[4], blk[5]]);
                let qs = &blk[6..22];
                let mut out = [0f32; 32];
                for j in 0..16 {
                    let xh0 = (((qh >> j) << 4) & 0x10) as u8;
                    let xh1 = ((qh >> (j + 12)) & 0x10) as u8;
                    let x0 = i32::from((qs[j] & 0x0F) | xh0) - 16;
                    let x1 = i32::from((qs[j] >> 4) | xh1) - 16;
                    out[j] = d * x0 as f32;
                    out[j + 16] = d * x1 as f32;
                }
                out
            })
            .collect(),
        GgmlType::Q4K => b
            .chunks_exact(144)
            .flat_map(|blk| {
                let d = f16_at(blk, 0);
                let dmin = f16_at(blk, 2);
                let scales = &blk[4..16];
                let qs = &blk[16..144];
                let mut out = [0f32; 256];
                for (i, j) in (0..256).step_by(64).enumerate() {
                    let (sc1, m1) = scale_min_k4(2 * i, scales);
                    let (sc2, m2) = scale_min_k4(2 * i + 1, scales);
                    let (d1, min1) = (d * f32::from(sc1), dmin * f32::from(m1));
                    let (d2, min2) = (d * f32::from(sc2), dmin * f32::from(m2));
                    let q = &qs[i * 32..i * 32 + 32];
                    for l in 0..32 {
                        out[j + l] = d1 * f32::from(q[l] & 0x0F) - min1;
                        out[j + 32 + l] = d2 * f32::from(q[l] >> 4) - min2;
                    }
                }
                out
            })
            .collect(),
        GgmlType::Q6K => b
            .chunks_exact(210)
            .flat_map(|blk| {
                let ql = &blk[0..128];
                let qh = &blk[128..192];
                let sc = &blk[192..208];
                let d = f16_at(blk, 208);
                let mut out = [0f32; 256];
                for n in 0..2 {
                    let (ql, qh, sc) = (&ql[n * 64..], &qh[n * 32..], &sc[n * 8..]);
                    for l in 0..32 {
                        let is = l / 16;
                        let q1 = i32::from((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) - 32;
                        let q2 = i32::from((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
                        let q3 = i32::from((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                        let q4 = i32::from((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                        let s = |k: usize| d * f32::from(sc[is + k] as i8);
                        out[n * 128 + l] = s(0) * q1 as f32;
                        out[n * 128 + l + 32] = s(2) * q2 as f32;
                        out[n * 128 + l + 64] = s(4) * q3 as f32;
                        out[n * 128 + l + 96] = s(6) * q4 as f32;
                    }
                }
                out
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The sixteen 6-bit scales of a Q3_K block, as signed bytes before the −32 offset (llama.cpp's
/// `kmask1`/`kmask2` unpacking of the 12 packed bytes).
fn scales_q3k(packed: &[u8]) -> [i8; 16] {
    let word = |i: usize| {
        u32::from_le_bytes([
            packed[4 * i],
            packed[4 * i + 1],
            packed[4 * i + 2],
            packed[4 * i + 3],
        ])
    };
    let (k1, k2) = (0x0303_0303u32, 0x0f0f_0f0fu32);
    let (a0, a1, tmp) = (word(0), word(1), word(2));
    let aux = [
        (a0 & k2) | ((tmp & k1) << 4),
        (a1 & k2) | (((tmp >> 2) & k1) << 4),
        ((a0 >> 4) & k2) | (((tmp >> 4) & k1) << 4),
        ((a1 >> 4) & k2) | (((tmp >> 6) & k1) << 4),
    ];
    let mut out = [0i8; 16];
    for (i, w) in aux.iter().enumerate() {
        for (k, b) in w.to_le_bytes().iter().enumerate() {
            out[4 * i + k] = *b as i8;
        }
    }
    out
}

/// llama.cpp's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` of a Q4_K block.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

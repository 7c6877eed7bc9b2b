//! A `.npz` writer (what `np.savez` writes: a stored zip of `.npy` arrays), for tests that lay
//! out releases in Gemma Scope's `params.npz` layout.

use std::io::Write;

use npyz::WriterBuilder;
use std::path::Path;

/// Writes float32 arrays `(name, shape, data)` as `path` in `np.savez`'s layout (a test
/// fixture written once into a temporary directory, so not through `AtomicFile`).
#[allow(clippy::disallowed_methods)]
pub fn write_npz(path: &Path, arrays: &[(&str, Vec<usize>, &[f32])]) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    for (name, shape, data) in arrays {
        let mut bytes = Vec::with_capacity(data.len() * 4 + 128);
        {
            let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
            let mut w = npyz::WriteOptions::<f32>::new()
                .dtype(npyz::DType::Plain(
                    "<f4"
                        .parse::<npyz::TypeStr>()
                        .map_err(std::io::Error::other)?,
                ))
                .shape(&shape)
                .writer(&mut bytes)
                .begin_nd()?;
            w.extend(data.iter().copied())?;
            w.finish()?;
        }
        zip.start_file(format!("{name}.npy"), opts)
            .map_err(std::io::Error::other)?;
        zip.write_all(&bytes)?;
    }
    zip.finish().map_err(std::io::Error::other)?.flush()
}

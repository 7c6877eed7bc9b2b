//! The one way sae-geometry writes a file: a temporary sibling, `fsync`, `rename`.
//!
//! Every output of every crate (safetensors, manifests, `.npy`, CSV, Parquet, HTML, PNG, JSON)
//! goes through [`write()`] or [`AtomicFile`], so a file under its final name is always complete:
//! a run killed mid-write leaves at most a temporary file, which a rerun does not mistake for a
//! finished output. clippy's `disallowed-methods` (`clippy.toml`) forbids `std::fs::write`,
//! `File::create` and `std::fs::rename` everywhere else.
//!
//! Temporary files are named `.{name}.{pid}-{n}.sgtmp` in the target's directory (same file
//! system, so the rename is atomic); [`is_temporary`] recognises exactly that pattern and
//! [`remove_temporaries`] deletes only such files, so a user's `draft.tmp` is never touched.
//!
//! ```
//! # fn main() -> sae_core::Result<()> {
//! # let dir = std::env::temp_dir().join(format!("atomic-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! use std::io::Write;
//! sae_core::atomic::write(&dir.join("a.json"), b"{}")?;
//! let mut f = sae_core::atomic::AtomicFile::create(dir.join("b.csv"))?;
//! writeln!(f, "latent,score").map_err(|e| f.io_error(e))?;
//! f.commit()?; // dropped without commit: nothing appears under b.csv
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(()) }
//! ```

#![allow(clippy::disallowed_methods)] // the one module allowed to create and rename files

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Result, SaeError};

/// The suffix of every temporary file.
pub const TEMP_SUFFIX: &str = ".sgtmp";

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}-{n}{TEMP_SUFFIX}", std::process::id()))
}

/// Whether `file_name` is one of this module's temporary files (`.{name}.{pid}-{n}.sgtmp`).
pub fn is_temporary(file_name: &str) -> bool {
    let Some(stem) = file_name
        .strip_prefix('.')
        .and_then(|s| s.strip_suffix(TEMP_SUFFIX))
    else {
        return false;
    };
    let Some((name, tag)) = stem.rsplit_once('.') else {
        return false;
    };
    let Some((pid, n)) = tag.split_once('-') else {
        return false;
    };
    !name.is_empty()
        && !pid.is_empty()
        && !n.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && n.bytes().all(|b| b.is_ascii_digit())
}

/// Deletes this module's temporary files in `dir` (not recursively) and returns how many.
///
/// Only call it while holding the directory's [`crate::lock::OutputLock`]: then no live writer
/// owns them, they are what a killed run left.
pub fn remove_temporaries(dir: &Path) -> Result<usize> {
    let entries = std::fs::read_dir(dir).map_err(|e| SaeError::io(dir, e))?;
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| SaeError::io(dir, e))?;
        let name = entry.file_name();
        if name.to_str().is_some_and(is_temporary) && entry.path().is_file() {
            let p = entry.path();
            std::fs::remove_file(&p).map_err(|e| SaeError::io(&p, e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Writes `bytes` to `path` atomically (temporary sibling, `fsync`, `rename`, directory `fsync`).
///
/// # Errors
/// [`SaeError::Io`] naming the temporary file or the target.
/// The same signature as `std::fs::write`, for which it stands in.
pub fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(contents.as_ref()).map_err(|e| f.io_error(e))?;
    f.commit()
}

/// A file being written; it appears under its name only on [`AtomicFile::commit`].
///
/// Buffered; dropping it without `commit` deletes the temporary file.
#[derive(Debug)]
pub struct AtomicFile {
    // Field order matters: the file is closed before `pending` deletes it.
    file: BufWriter<File>,
    pending: PendingFile,
}

impl AtomicFile {
    /// Starts writing `path` (its directory must exist).
    ///
    /// # Errors
    /// [`SaeError::Io`] naming the temporary file.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let tmp = temp_path(&path);
        let file = File::create(&tmp).map_err(|e| SaeError::io(&tmp, e))?;
        Ok(Self {
            file: BufWriter::new(file),
            pending: PendingFile {
                path,
                tmp,
                armed: true,
            },
        })
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.pending.path
    }

    /// An I/O error of this file as [`SaeError::Io`] naming the final path.
    pub fn io_error(&self, e: std::io::Error) -> SaeError {
        SaeError::io(&self.pending.path, e)
    }

    /// Splits into the open (buffered) temporary file and the handle that renames it into place,
    /// for writers that take ownership of their sink (npyz, PNG and Parquet encoders).
    ///
    /// Finish the writer (which flushes the buffer), then call [`PendingFile::commit`].
    pub fn into_parts(self) -> (BufWriter<File>, PendingFile) {
        (self.file, self.pending)
    }

    /// Flushes, `fsync`s and renames the file into place, then `fsync`s the directory.
    ///
    /// # Errors
    /// [`SaeError::Io`] naming the file.
    pub fn commit(self) -> Result<()> {
        let Self { file, pending } = self;
        let file = file
            .into_inner()
            .map_err(|e| SaeError::io(&pending.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| SaeError::io(&pending.tmp, e))?;
        drop(file);
        pending.rename()
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.file.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// The temporary file of an [`AtomicFile`] split by [`AtomicFile::into_parts`]: renamed into
/// place by [`PendingFile::commit`], deleted if dropped.
#[derive(Debug)]
pub struct PendingFile {
    path: PathBuf,
    tmp: PathBuf,
    armed: bool,
}

impl PendingFile {
    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `fsync`s the (flushed and closed) temporary file and renames it into place.
    ///
    /// # Errors
    /// [`SaeError::Io`] naming the file.
    pub fn commit(self) -> Result<()> {
        let f = File::open(&self.tmp).map_err(|e| SaeError::io(&self.tmp, e))?;
        f.sync_all().map_err(|e| SaeError::io(&self.tmp, e))?;
        drop(f);
        self.rename()
    }

    fn rename(mut self) -> Result<()> {
        std::fs::rename(&self.tmp, &self.path).map_err(|e| SaeError::io(&self.path, e))?;
        self.armed = false;
        sync_dir(&self.path);
        Ok(())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Makes the rename durable (best effort: not every platform can open a directory).
fn sync_dir(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sae-atomic-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn write_replaces_and_leaves_no_temporary() {
        let d = tmpdir("write");
        let p = d.join("x.json");
        write(&p, b"one").unwrap();
        write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(names(&d), vec!["x.json"]);
    }

    #[test]
    fn uncommitted_file_never_appears() {
        let d = tmpdir("drop");
        let p = d.join("out.csv");
        write(&p, b"old complete").unwrap();
        {
            let mut f = AtomicFile::create(&p).unwrap();
            f.write_all(b"half of a new").unwrap();
            f.flush().unwrap();
            let tmps: Vec<_> = names(&d).into_iter().filter(|n| is_temporary(n)).collect();
            assert_eq!(tmps.len(), 1, "{tmps:?}");
        }
        assert_eq!(std::fs::read(&p).unwrap(), b"old complete");
        assert_eq!(names(&d), vec!["out.csv"]);
    }

    #[test]
    fn only_own_temporaries_are_recognised_and_removed() {
        let d = tmpdir("clean");
        for n in [
            "draft.tmp",
            "page.tmpl",
            "a.tmp.bak",
            "shard.safetensors.tmp123",
            ".x.sgtmp",
            ".x.12.sgtmp",
            ".x.12-a.sgtmp",
            "x.1-2.sgtmp",
        ] {
            write(d.join(n), b"user").unwrap();
        }
        let own = [
            ".shard-00001.safetensors.4242-7.sgtmp",
            ".manifest.json.1-0.sgtmp",
        ];
        for n in own {
            assert!(is_temporary(n), "{n}");
            std::fs::write(d.join(n), b"partial").unwrap();
        }
        assert_eq!(remove_temporaries(&d).unwrap(), 2);
        let left = names(&d);
        assert_eq!(left.len(), 8, "{left:?}");
        assert!(left.iter().all(|n| !own.contains(&n.as_str())));
    }

    #[test]
    fn missing_directory_names_the_file() {
        let d = tmpdir("missing").join("no/such/dir");
        let e = write(d.join("f.npy"), b"x").unwrap_err();
        assert!(e.to_string().contains("f.npy"), "{e}");
    }
}

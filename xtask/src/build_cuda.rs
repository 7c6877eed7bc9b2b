//! `cargo xtask build-cuda`: the CUDA-enabled CLI, xtask and test binaries, built without the
//! internet.
//!
//! burn-cuda 0.22.1 → cubecl-cuda 0.11.3 → cubecl-llvm, whose build scripts (and
//! tracel-llvm-bundler's) download an LLVM bundle. Kernels are compiled from CUDA C++ by NVRTC at
//! run time (cubecl-cuda's `cpp` feature, on through `sae-core/cuda`), so LLVM is never called,
//! but it is still linked. The offline build therefore:
//! 1. sets `DOCS_RS=1`, which makes those two build scripts skip the download;
//! 2. links a static archive of stubs for the LLVM-C symbols (and cubecl's three LLVM shims) that
//!    the rlibs of pliron-llvm, cubecl-llvm and llvm-sys leave undefined. Each stub prints its
//!    name and aborts; none is ever reached (docs/ARCHITECTURE.md, "CUDA build").
//!
//! The symbol list is `xtask/data/llvm-stubs.txt`; `--refresh-stubs` recomputes it with `nm`
//! after a dependency update. With the internet, a plain `cargo build --features cuda` links the
//! real LLVM instead.

// Build tooling writing into target/ (stubs, sources, archives), not research outputs.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail, ensure};

use crate::bench::workspace_root;

/// Arguments of `build-cuda`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Cargo profile (`release` for benchmarks and the GPU check, `dev` to share the test
    /// build's settings).
    #[arg(long, default_value = "release")]
    profile: String,
    /// Also build the test binaries of the GPU parity suite (`cargo test --no-run`).
    #[arg(long)]
    tests: bool,
    /// Recompute the stub list from the built rlibs (after a dependency update) and rebuild.
    #[arg(long)]
    refresh_stubs: bool,
    /// Also pack xtask and the parity test binaries, stripped, into one xz stream
    /// (`target/cuda/gpu-bundle.tar.xz`, ~40 MB) for a GPU machine without Rust
    /// (`xtask/data/gpu-check-remote.sh` unpacks and runs it). Implies `--tests`.
    #[arg(long)]
    bundle: bool,
}

/// Where the CUDA build's artifacts go (apart from the CPU build's `target/`).
pub(crate) fn target_dir() -> PathBuf {
    workspace_root().join("target/cuda")
}

/// The packages whose test binaries form the GPU parity suite, with their test targets.
pub(crate) const GPU_TESTS: &[(&str, &[&str])] = &[
    ("sae-core", &["saelens_parity"]),
    (
        "gpt2-gemma-models",
        &["gpt2_parity", "gemma_parity", "gemma12_parity", "splice"],
    ),
    (
        "activation-store",
        &["train_gradients", "train_device_path", "eval_parity"],
    ),
];

fn stubs_list() -> PathBuf {
    workspace_root().join("xtask/data/llvm-stubs.txt")
}

fn archive() -> PathBuf {
    target_dir().join("llvm-stubs/libllvmstubs.a")
}

pub(crate) fn run(mut args: Args) -> anyhow::Result<()> {
    args.tests |= args.bundle;
    let names = read_stub_names()?;
    write_archive(&names)?;
    let first = cargo_build(&args);
    if args.refresh_stubs {
        let fresh = undefined_llvm_symbols(&args.profile)?;
        std::fs::write(
            stubs_list(),
            fresh.iter().map(|n| format!("{n}\n")).collect::<String>(),
        )
        .context("writing the stub list")?;
        println!("stub list: {} names ({} before)", fresh.len(), names.len());
        write_archive(&fresh.into_iter().collect::<Vec<_>>())?;
        cargo_build(&args)?;
    } else {
        first.context(
            "the offline CUDA build failed; after a dependency update, rerun with --refresh-stubs",
        )?;
    }
    if args.bundle {
        bundle(&args.profile)?;
    }
    Ok(())
}

/// Strips xtask and the parity tests into `target/cuda/gpu-bundle/` and packs them into one xz
/// stream whose dictionary spans every binary (they share most of their code: 39 MB instead of
/// 13 MB each).
fn bundle(profile: &str) -> anyhow::Result<()> {
    let built = target_dir().join(profile_dir(profile));
    let stage = target_dir().join("gpu-bundle");
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(stage.join("bins"))?;
    let strip = |from: &Path, to: &Path| -> anyhow::Result<()> {
        let st = Command::new("strip").arg("-o").arg(to).arg(from).status()?;
        ensure!(st.success(), "strip {} failed", from.display());
        Ok(())
    };
    strip(&built.join("xtask"), &stage.join("xtask"))?;
    for (_, tests) in GPU_TESTS {
        for t in *tests {
            let bin = crate::gpu_check::find_test_binary(&built.join("deps"), t)?
                .with_context(|| format!("no {t} test binary under {}", built.display()))?;
            let name = bin.file_name().context("test binary name")?;
            strip(&bin, &stage.join("bins").join(name))?;
        }
    }
    let out = target_dir().join("gpu-bundle.tar.xz");
    let st = Command::new("sh")
        .arg("-c")
        .arg("tar cf - xtask bins | xz -T1 --lzma2=preset=9,dict=768MiB > \"$0\"")
        .arg(&out)
        .current_dir(&stage)
        .status()
        .context("running tar | xz")?;
    ensure!(st.success(), "packing the GPU bundle failed ({st})");
    println!(
        "GPU bundle: {} ({:.1} MB)",
        out.display(),
        out.metadata()?.len() as f64 / 1e6
    );
    Ok(())
}

fn read_stub_names() -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(stubs_list())
        .with_context(|| format!("reading {}", stubs_list().display()))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    for n in &names {
        ensure!(
            n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{}: `{n}` is not a C identifier",
            stubs_list().display()
        );
    }
    Ok(names)
}

/// Compiles one aborting C function per name into `target/cuda/llvm-stubs/libllvmstubs.a`.
fn write_archive(names: &[String]) -> anyhow::Result<()> {
    let dir = archive()
        .parent()
        .map(Path::to_path_buf)
        .context("archive path")?;
    std::fs::create_dir_all(&dir)?;
    let mut c = String::from(
        "/* Generated by `cargo xtask build-cuda` from xtask/data/llvm-stubs.txt. */\n\
         #include <stdio.h>\n#include <stdlib.h>\n\
         static void sae_geometry_llvm_stub(const char *name) {\n\
         \x20   fprintf(stderr, \"sae-geometry: LLVM function %s called, but this CUDA build compiles \
         kernels with NVRTC and has no LLVM (cargo xtask build-cuda)\\n\", name);\n\
         \x20   abort();\n}\n",
    );
    for n in names {
        c.push_str(&format!(
            "void {n}(void) {{ sae_geometry_llvm_stub(\"{n}\"); }}\n"
        ));
    }
    let src = dir.join("stubs.c");
    std::fs::write(&src, c)?;
    let obj = dir.join("stubs.o");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let st = Command::new(&cc)
        .args(["-c", "-O1", "-fPIC", "-o"])
        .arg(&obj)
        .arg(&src)
        .status()
        .with_context(|| format!("running the C compiler `{cc}` (set CC to another)"))?;
    ensure!(st.success(), "compiling the LLVM stubs failed ({st})");
    let tmp = dir.join("libllvmstubs.a.tmp");
    let _ = std::fs::remove_file(&tmp);
    let st = Command::new("ar")
        .arg("rcs")
        .arg(&tmp)
        .arg(&obj)
        .status()
        .context("running `ar`")?;
    ensure!(st.success(), "archiving the LLVM stubs failed ({st})");
    std::fs::rename(&tmp, archive())?;
    Ok(())
}

/// The environment of every offline CUDA cargo command.
pub(crate) fn offline_cuda_env(cmd: &mut Command) {
    cmd.env("DOCS_RS", "1")
        .env("RUSTFLAGS", format!("-C link-arg={}", archive().display()));
}

/// One cargo invocation for the binaries and the parity tests, so that features unify once
/// (a `cargo test -p <package>` per package resolves other features and rebuilds the CUDA stack).
fn cargo_build(args: &Args) -> anyhow::Result<()> {
    let mut cmd = crate::cargo::cargo();
    cmd.current_dir(workspace_root())
        .args(["build", "--profile", &args.profile, "--features", "cuda"])
        .args(["-p", "sae-geometry-cli", "-p", "xtask"])
        .args(["--bin", "sae-geometry", "--bin", "xtask"]);
    if args.tests {
        for (package, tests) in GPU_TESTS {
            cmd.args(["-p", package]);
            for t in *tests {
                cmd.args(["--test", t]);
            }
        }
    }
    cmd.arg("--target-dir").arg(target_dir());
    offline_cuda_env(&mut cmd);
    let st = cmd.status().context("running cargo")?;
    if !st.success() {
        bail!("cargo build --features cuda failed ({st})");
    }
    let dir = target_dir().join(profile_dir(&args.profile));
    println!(
        "built {} and {}{} (kernels compiled by NVRTC at run time)",
        dir.join("sae-geometry").display(),
        dir.join("xtask").display(),
        if args.tests {
            format!(
                ", and the GPU parity tests in {}",
                dir.join("deps").display()
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

pub(crate) fn profile_dir(profile: &str) -> &str {
    if profile == "dev" { "debug" } else { profile }
}

/// `nm -u` over the LLVM-carrying rlibs, minus what they define among themselves: the `LLVM*`
/// and `cubecl_*` names the final link cannot find.
fn undefined_llvm_symbols(profile: &str) -> anyhow::Result<BTreeSet<String>> {
    let deps = target_dir().join(profile_dir(profile)).join("deps");
    let rlibs: Vec<PathBuf> = std::fs::read_dir(&deps)
        .with_context(|| format!("reading {}", deps.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.ends_with(".rlib")
                && ["libpliron_llvm-", "libcubecl_llvm-", "libllvm_sys-"]
                    .iter()
                    .any(|pre| n.starts_with(pre))
        })
        .collect();
    ensure!(
        !rlibs.is_empty(),
        "no pliron-llvm / cubecl-llvm / llvm-sys rlibs under {}",
        deps.display()
    );
    let nm = |flag: &str| -> anyhow::Result<BTreeSet<String>> {
        let out = Command::new("nm")
            .arg(flag)
            .args(&rlibs)
            .output()
            .context("running `nm`")?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                match (flag, f.as_slice()) {
                    ("-u", ["U", name]) => Some((*name).to_string()),
                    ("--defined-only", [.., name]) if f.len() >= 2 => Some((*name).to_string()),
                    _ => None,
                }
            })
            .collect())
    };
    let defined = nm("--defined-only")?;
    Ok(nm("-u")?
        .into_iter()
        .filter(|n| (n.starts_with("LLVM") || n.starts_with("cubecl_")) && !defined.contains(n))
        .collect())
}

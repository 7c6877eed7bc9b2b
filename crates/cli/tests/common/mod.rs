//! Helpers shared by the CLI tests: the tiny GPT-2 with GPT-2's real vocabulary, a seeded
//! random SAE for it, and a small corpus.
#![allow(dead_code, clippy::unwrap_used, clippy::disallowed_methods)]

pub(crate) mod kill;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sae_core::config::{Architecture, SaeConfig};
use sae_core::{HostTensor, Sae};

/// The `sae-geometry` binary of this build.
pub(crate) fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sae-geometry"))
}

/// `crates/`.
pub(crate) fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The tiny GPT-2 (d_model 64, 2 layers) widened to GPT-2's vocabulary, with its real tokenizer.
pub(crate) fn tiny_model(tmp: &Path) -> PathBuf {
    let d = tmp.join("tiny");
    let m = fixtures().join("models/tests/fixtures");
    gpt2_gemma_models::testing::widen_gpt2_vocab(
        &m.join("gpt2-tiny/model"),
        &m.join("gpt2-tokenizer"),
        &d,
        50257,
    )
    .unwrap();
    d
}

/// The packing fixture's documents repeated `n` times, as JSONL.
pub(crate) fn corpus(tmp: &Path, n: usize) -> PathBuf {
    let docs = std::fs::read_to_string(fixtures().join("store/tests/fixtures/packing/docs.jsonl"))
        .unwrap();
    let p = tmp.join(format!("corpus{n}.jsonl"));
    std::fs::write(&p, docs.repeat(n)).unwrap();
    p
}

/// A seeded random SAE on the tiny GPT-2's residual stream entering block 1 (context 48,
/// BOS prepended), saved in `tmp/name`. `k` makes it TopK, else standard.
pub(crate) fn random_sae(
    tmp: &Path,
    name: &str,
    d_sae: usize,
    k: Option<usize>,
    seed: u64,
) -> PathBuf {
    let d_in = 64;
    let arch = if k.is_some() {
        Architecture::TopK
    } else {
        Architecture::Standard
    };
    let mut cfg = SaeConfig::new(d_in, d_sae, arch);
    cfg.k = k;
    cfg.metadata.hook_name = Some("blocks.1.hook_resid_pre".into());
    cfg.metadata.context_size = Some(48);
    cfg.metadata.prepend_bos = Some(true);
    let mut s = seed;
    let mut rnd = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    };
    let mut t = BTreeMap::new();
    t.insert(
        "W_enc".to_string(),
        HostTensor::new(vec![d_in, d_sae], rnd(d_in * d_sae)),
    );
    t.insert(
        "W_dec".to_string(),
        HostTensor::new(vec![d_sae, d_in], rnd(d_in * d_sae)),
    );
    t.insert(
        "b_enc".to_string(),
        HostTensor::new(vec![d_sae], vec![0.0; d_sae]),
    );
    t.insert(
        "b_dec".to_string(),
        HostTensor::new(vec![d_in], vec![0.0; d_in]),
    );
    let (sae, _) = Sae::from_host_tensors(cfg, t, Path::new("test"), &Default::default()).unwrap();
    let dir = tmp.join(name);
    sae.save(&dir).unwrap();
    dir
}

/// `sae-geometry cache-activations` of `corpus` through `model` at `blocks.1.hook_resid_pre`
/// (context 16, 3 windows per shard, model batches of 2) into `out`.
pub(crate) fn cache_cmd(model: &Path, corpus: &Path, out: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sae-geometry"));
    c.args(["--log", "warn", "cache-activations", "--offline", "--model"])
        .arg(model)
        .arg("--dataset")
        .arg(corpus)
        .args([
            "--hook",
            "blocks.1.hook_resid_pre",
            "--context-size",
            "16",
            "--sequences-per-shard",
            "3",
            "--model-batch-size",
            "2",
            "--out",
        ])
        .arg(out);
    c
}

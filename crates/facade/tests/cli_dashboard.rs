//! `sae-geometry dashboard` on the tiny GPT-2: an index and a page per latent, rendered in
//! headless Chromium without console errors.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sae_core::config::{Architecture, SaeConfig};
use sae_core::{HostTensor, Sae};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn sae_dir(tmp: &Path) -> PathBuf {
    let (d_in, d_sae) = (64, 32);
    let mut cfg = SaeConfig::new(d_in, d_sae, Architecture::TopK);
    cfg.k = Some(4);
    cfg.metadata.hook_name = Some("blocks.1.hook_resid_pre".into());
    cfg.metadata.context_size = Some(48);
    cfg.metadata.prepend_bos = Some(true);
    let mut s = 7u64;
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
    let dir = tmp.join("sae");
    sae.save(&dir).unwrap();
    dir
}

/// Console lines (errors, uncaught exceptions) and the DOM of a page loaded headless.
fn chromium(page: &Path) -> (String, Vec<String>) {
    let bin = std::env::var("SAE_GEOMETRY_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let out = Command::new(&bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap_or_else(|e| {
            panic!("headless Chromium ({bin}) is needed (.ci/run installs it): {e}")
        });
    let log = String::from_utf8_lossy(&out.stderr);
    let console = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .map(str::to_string)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

#[test]
fn dashboards_render_offline_without_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    let m = fixtures().join("models/tests/fixtures");
    gpt2_gemma_models::testing::widen_gpt2_vocab(
        &m.join("gpt2-tiny/model"),
        &m.join("gpt2-tokenizer"),
        &model,
        50257,
    )
    .unwrap();
    let docs = std::fs::read_to_string(fixtures().join("store/tests/fixtures/packing/docs.jsonl"))
        .unwrap();
    let corpus = tmp.path().join("corpus.jsonl");
    std::fs::write(&corpus, docs.repeat(10)).unwrap();
    let sae = sae_dir(tmp.path());
    let out = tmp.path().join("dash");
    let o = Command::new(env!("CARGO_BIN_EXE_sae-geometry"))
        .args(["--log", "warn", "dashboard", "--offline", "--model"])
        .arg(&model)
        .arg("--sae")
        .arg(&sae)
        .arg("--corpus")
        .arg(&corpus)
        .args(["--latents", "0-7", "--total-tokens", "4000", "--family"])
        .arg(&sae)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (dom, console) = chromium(&out.join("index.html"));
    assert!(console.is_empty(), "console: {console:?}");
    assert!(
        dom.contains("data-latents=\"8\""),
        "{}",
        &dom[..dom.len().min(400)]
    );
    let mut windows = 0;
    for l in 0..8 {
        let page = out.join(format!("latent-{l}.html"));
        let (dom, console) = chromium(&page);
        assert!(console.is_empty(), "latent {l}: {console:?}");
        assert!(dom.contains(&format!("data-latent=\"{l}\"")));
        assert!(!dom.contains("http://") || dom.contains("xmlns=\"http://www.w3.org/2000/svg\""));
        windows += dom.matches("class=\"w\"").count();
    }
    assert!(windows > 8, "only {windows} windows across 8 latents");
}

//! `kill -9` at random points, twenty times over, of `cache-activations`, `train-sae` and
//! `latent-stats` (autointerp's loop is in `cli_autointerp.rs`): after every kill no output file
//! under its final name is truncated or different from an uninterrupted run's, and the run that
//! finishes leaves outputs identical to the uninterrupted run's.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::bin;
use common::kill::{KillAt, assert_complete, files, kill_loop, run_ok};

#[test]
fn cache_activations_survives_twenty_kills() {
    let tmp = tempfile::tempdir().unwrap();
    let model = common::tiny_model(tmp.path());
    let text = common::corpus(tmp.path(), 40);
    let a = tmp.path().join("a");
    let span = run_ok(common::cache_cmd(&model, &text, &a));
    let want = files(&a);
    let b = tmp.path().join("b");
    let manifest = |n: &str| n == "manifest.json";
    let _ = span;
    let recorded = || -> u64 {
        std::fs::read(b.join("manifest.json"))
            .ok()
            .and_then(|m| serde_json::from_slice::<serde_json::Value>(&m).ok())
            .map_or(0, |v| v["shards"].as_array().map_or(0, Vec::len) as u64)
    };
    kill_loop(
        KillAt::AfterProgress(&recorded, Duration::from_millis(30)),
        1,
        || common::cache_cmd(&model, &text, &b),
        |k| {
            let got = files(&b);
            // Shards are final once written; the manifest is rewritten after each and must parse,
            // naming only shards that are there.
            assert_complete(&got, &want, &manifest, k);
            if let Some(m) = got.get("manifest.json") {
                let v: serde_json::Value = serde_json::from_slice(m)
                    .unwrap_or_else(|e| panic!("kill {k}: manifest.json is torn: {e}"));
                for s in v["shards"].as_array().unwrap() {
                    assert!(
                        got.contains_key(s["file"].as_str().unwrap()),
                        "kill {k}: {s}"
                    );
                }
            }
        },
        || {
            assert_eq!(files(&b), want, "a resumed cache that finished differs");
            std::fs::remove_dir_all(&b).unwrap();
        },
    );
    run_ok(common::cache_cmd(&model, &text, &b));
    assert_eq!(files(&b), want, "the resumed cache differs");
}

fn train_cmd(cache: &Path, out: &Path) -> Command {
    let mut c = bin();
    c.args(["--log", "error", "train-sae", "--cache"])
        .arg(cache)
        .args([
            "--widths",
            "32,64",
            "--k",
            "4",
            "--steps",
            "120",
            "--checkpoint-every",
            "4",
            "--batch-size",
            "64",
            "--lr",
            "3e-3",
            "--out",
        ])
        .arg(out);
    c
}

/// `summary.json` without its timings and output paths.
fn summary(bytes: &[u8]) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("seconds");
    o.remove("steps_per_second");
    for s in o["saes"].as_array_mut().unwrap() {
        s.as_object_mut().unwrap().remove("dir");
    }
    v
}

#[test]
fn train_sae_survives_twenty_kills() {
    let tmp = tempfile::tempdir().unwrap();
    let model = common::tiny_model(tmp.path());
    let text = common::corpus(tmp.path(), 10);
    let cache = tmp.path().join("cache");
    run_ok(common::cache_cmd(&model, &text, &cache));
    let a = tmp.path().join("a");
    let span = run_ok(train_cmd(&cache, &a));
    let want = files(&a);
    let b = tmp.path().join("b");
    // Checkpoints are replaced as training goes, the metrics log grows, the summary holds
    // timings: each is checked on its own.
    let moving = |n: &str| {
        n.starts_with("run/checkpoint") || n == "run/metrics.jsonl" || n == "summary.json"
    };
    let want_metrics = String::from_utf8(want["run/metrics.jsonl"].clone()).unwrap();
    let _ = span;
    let step = || -> u64 {
        std::fs::read(b.join("run/checkpoint/trainer-0/trainer_state.json"))
            .ok()
            .and_then(|m| serde_json::from_slice::<serde_json::Value>(&m).ok())
            .and_then(|v| v["step"].as_u64())
            .unwrap_or(0)
    };
    kill_loop(
        KillAt::AfterProgress(&step, Duration::from_millis(40)),
        2,
        || train_cmd(&cache, &b),
        |k| {
            let got = files(&b);
            assert_complete(&got, &want, &moving, k);
            if let Some(m) = got.get("run/metrics.jsonl") {
                // Whole lines only, each one of the uninterrupted run's (a resumed run rewrites
                // those after its checkpoint).
                let m = String::from_utf8(m.clone()).unwrap();
                assert!(
                    m.is_empty() || m.ends_with('\n'),
                    "kill {k}: torn metrics line"
                );
                for l in m.lines() {
                    assert!(
                        want_metrics.lines().any(|w| w == l),
                        "kill {k}: metrics line {l}"
                    );
                }
            }
            if let Some(s) = got.get("summary.json") {
                assert_eq!(summary(s), summary(&want["summary.json"]), "kill {k}");
            }
        },
        || {
            same_training(&files(&b), &want);
            std::fs::remove_dir_all(&b).unwrap();
        },
    );
    run_ok(train_cmd(&cache, &b));
    same_training(&files(&b), &want);
}

/// A finished training's outputs equal the uninterrupted run's (checkpoints and timings aside).
fn same_training(got: &BTreeMap<String, Vec<u8>>, want: &BTreeMap<String, Vec<u8>>) {
    let finals = |m: &BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        m.iter()
            .filter(|(n, _)| !n.starts_with("run/checkpoint") && *n != "summary.json")
            .map(|(n, b)| (n.clone(), b.clone()))
            .collect()
    };
    assert_eq!(finals(got), finals(want), "the resumed training differs");
    assert_eq!(
        summary(&got["summary.json"]),
        summary(&want["summary.json"])
    );
}

fn stats_cmd(cache: &Path, sae: &Path, out: &Path) -> Command {
    let mut c = bin();
    c.args(["--log", "error", "latent-stats", "--cache"])
        .arg(cache)
        .arg("--sae")
        .arg(sae)
        .args(["--k", "5", "--buffer", "3", "--latents", "0-63", "--out"])
        .arg(out);
    c
}

#[test]
fn latent_stats_survives_twenty_kills() {
    let tmp = tempfile::tempdir().unwrap();
    let model = common::tiny_model(tmp.path());
    let text = common::corpus(tmp.path(), 10);
    let cache = tmp.path().join("cache");
    run_ok(common::cache_cmd(&model, &text, &cache));
    let sae: PathBuf = common::random_sae(tmp.path(), "sae", 96, Some(4), 7);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let span = run_ok(stats_cmd(&cache, &sae, &a.join("stats.json")));
    let want = files(&a);
    assert_eq!(want.len(), 2, "{:?}", want.keys());
    kill_loop(
        KillAt::Random {
            span,
            from: 0.05,
            to: 0.4,
        },
        3,
        || stats_cmd(&cache, &sae, &b.join("stats.json")),
        |k| {
            assert_complete(&files(&b), &want, &|_| false, k);
        },
        || {
            assert_eq!(files(&b), want);
            std::fs::remove_dir_all(&b).unwrap();
            std::fs::create_dir_all(&b).unwrap();
        },
    );
    run_ok(stats_cmd(&cache, &sae, &b.join("stats.json")));
    assert_eq!(files(&b), want);
}

//! `kill -9` at random points, twenty times over, of `cargo xtask reproduce-splitting` (offline,
//! on gemma-3-270m, the smoke profile: every stage of the pipeline — caching activations,
//! training the SAE family, latent statistics and descriptions, the 2-D UMAP of all widths and the
//! HDBSCAN clusters — in well under a minute). After every kill no output under its final name is
//! truncated or different from an uninterrupted run's, and every run that finishes leaves outputs
//! identical to the uninterrupted run's (timings and the output directory's own path aside).
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

#[path = "../../crates/cli/tests/common/kill.rs"]
mod kill;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kill::{KillAt, files, kill_loop, run_ok};

/// The packing fixture's documents, repeated to about 13 000 tokens.
fn corpus(tmp: &Path) -> PathBuf {
    let docs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../crates/store/tests/fixtures/packing/docs.jsonl"),
    )
    .unwrap();
    let p = tmp.join("corpus.jsonl");
    std::fs::write(&p, docs.repeat(10)).unwrap();
    p
}

fn reproduce(gguf: &Path, corpus: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args([
        "reproduce-splitting",
        "--profile",
        "smoke",
        "--mode",
        "offline",
    ])
    .arg("--gguf")
    .arg(gguf)
    .arg("--corpus")
    .arg(corpus)
    .arg("--out")
    .arg(out)
    .env("RUST_LOG", "error")
    .env_remove("SAE_GEOMETRY_CORPUS");
    c
}

/// Keys holding timings, which differ between runs.
const TIMINGS: [&str; 4] = [
    "seconds",
    "total_seconds",
    "stage_seconds",
    "steps_per_second",
];

fn strip_timings(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(o) => {
            for k in TIMINGS {
                o.remove(k);
            }
            o.values_mut().for_each(strip_timings);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_timings),
        _ => {}
    }
}

/// A file's content with the output directory's path and timings taken out of JSON (the rest
/// byte for byte). A JSON file that does not parse is torn: the test fails naming it.
fn normal(name: &str, bytes: &[u8], root: &Path, kill: &str) -> Vec<u8> {
    if !name.ends_with(".json") {
        return bytes.to_vec();
    }
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let text = text.replace(&root.display().to_string(), "<OUT>");
    let mut v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{kill}: {name} is torn ({} bytes): {e}", bytes.len()));
    strip_timings(&mut v);
    serde_json::to_vec(&v).unwrap()
}

/// Every visible file under `root`, normalised.
fn outputs(root: &Path, kill: &str) -> BTreeMap<String, Vec<u8>> {
    files(root)
        .into_iter()
        .map(|(n, b)| {
            let b = normal(&n, &b, root, kill);
            (n, b)
        })
        .collect()
}

/// Rewritten as the run goes (checked on their own after each kill).
fn moving(name: &str) -> bool {
    name == "work/stages.json"
        || name == "work/cache/manifest.json"
        || name == "work/saes/run/metrics.jsonl"
        || name.starts_with("work/saes/run/checkpoint/")
}

/// A finished run's outputs equal the uninterrupted run's (training checkpoints aside: the
/// SAEs they produce are compared).
fn assert_same_run(got: &BTreeMap<String, Vec<u8>>, want: &BTreeMap<String, Vec<u8>>) {
    let finals = |m: &BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        m.iter()
            .filter(|(n, _)| !n.starts_with("work/saes/run/checkpoint/"))
            .map(|(n, b)| (n.clone(), b.clone()))
            .collect()
    };
    let (g, w) = (finals(got), finals(want));
    assert_eq!(
        g.keys().collect::<Vec<_>>(),
        w.keys().collect::<Vec<_>>(),
        "a resumed reproduction wrote other files"
    );
    for (n, b) in &g {
        assert!(b == &w[n], "a resumed reproduction's {n} differs");
    }
}

/// How many visible files are under `dir` (names only: polled every millisecond).
fn count_files(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| {
            if e.path().is_dir() {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn reproduce_splitting_survives_twenty_kills() {
    let gguf = gpt2_gemma_models::offline::install_gemma3_270m_gguf().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let text = corpus(tmp.path());
    let a = tmp.path().join("a");
    let span = run_ok(reproduce(&gguf, &text, &a));
    let want = outputs(&a, "uninterrupted run");
    for f in [
        "splitting.csv",
        "splitting.parquet",
        "splitting.html",
        "splitting.png",
        "families.json",
        "clusters/splitting.csv",
        "reproduction.json",
        "work/saes/topk-256/sae_weights.safetensors",
        "work/descriptions-256.json",
    ] {
        assert!(want.contains_key(f), "the reproduction wrote no {f}");
    }
    let want_stages: serde_json::Value = serde_json::from_slice(&want["work/stages.json"]).unwrap();
    let want_metrics = String::from_utf8(want["work/saes/run/metrics.jsonl"].clone()).unwrap();
    let b = tmp.path().join("b");
    let quiet = || {
        let mut c = reproduce(&gguf, &text, &b);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        c
    };
    // Progress: stages recorded, then files written (shards, checkpoints, SAEs, tables, plots).
    let progress = || -> u64 {
        let stages = std::fs::read(b.join("work/stages.json"))
            .ok()
            .and_then(|s| serde_json::from_slice::<serde_json::Value>(&s).ok())
            .and_then(|v| v.as_object().map(|o| o.len() as u64))
            .unwrap_or(0);
        stages * 1000 + count_files(&b)
    };
    let completed = kill_loop(
        // Each run is killed once it has moved the work on, after a random delay of up to a
        // eighth of an uninterrupted run: kills land at every stage, early and late in it.
        KillAt::AfterProgress(&progress, span / 8),
        4,
        quiet,
        |k| {
            let kill = format!("kill {k}");
            let got = outputs(&b, &kill);
            kill::assert_complete(&got, &want, &moving, k);
            // Stages are recorded only once done, with the uninterrupted run's fingerprints.
            if let Some(s) = got.get("work/stages.json") {
                let s: serde_json::Value = serde_json::from_slice(s).unwrap();
                for (stage, v) in s.as_object().unwrap() {
                    assert_eq!(
                        v["fingerprint"], want_stages[stage]["fingerprint"],
                        "{kill}: stage {stage}"
                    );
                }
            }
            if let Some(m) = got.get("work/cache/manifest.json") {
                let m: serde_json::Value = serde_json::from_slice(m).unwrap();
                for s in m["shards"].as_array().unwrap() {
                    let f = format!("work/cache/{}", s["file"].as_str().unwrap());
                    assert!(got.contains_key(&f), "{kill}: the manifest names {f}");
                }
            }
            if let Some(m) = got.get("work/saes/run/metrics.jsonl") {
                let m = String::from_utf8(m.clone()).unwrap();
                assert!(m.is_empty() || m.ends_with('\n'), "{kill}: torn metrics");
                for l in m.lines() {
                    assert!(want_metrics.lines().any(|w| w == l), "{kill}: metrics {l}");
                }
            }
        },
        || {
            assert_same_run(&outputs(&b, "a finished run"), &want);
            std::fs::remove_dir_all(&b).unwrap();
        },
    );
    run_ok(reproduce(&gguf, &text, &b));
    assert_same_run(&outputs(&b, "the resumed run"), &want);
    eprintln!("20 kills; {completed} runs finished between them and were compared");
}

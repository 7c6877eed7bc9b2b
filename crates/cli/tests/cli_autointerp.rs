//! `sae-geometry autointerp` end to end on the tiny GPT-2 against the in-process mock server:
//! killed twenty times mid-run and restarted, the final results equal an uninterrupted run's and no request
//! whose reply reached the client is sent again.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use autointerp::mock::MockServer;

mod common;

fn cmd(model: &Path, sae: &Path, corpus: &Path, base: &str, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sae-geometry"));
    c.env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .args(["--log", "warn", "autointerp", "--offline", "--model"])
        .arg(model)
        .arg("--sae")
        .arg(sae)
        .arg("--corpus")
        .arg(corpus)
        .args([
            "--latents",
            "0-29",
            "--total-tokens",
            "8000",
            "--scoring",
            "--concurrency",
            "2",
        ])
        .args(["--api-base", base, "--out"])
        .arg(out);
    c
}

fn results(out: &Path) -> BTreeMap<u64, serde_json::Value> {
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let latent = v["latent"].as_u64().unwrap();
            // What was sent versus cached differs between the runs by design.
            let o = v.as_object_mut().unwrap();
            for k in ["requests_sent", "requests_cached", "usage"] {
                o.remove(k);
            }
            (latent, v)
        })
        .collect()
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).map_or(0, |s| s.lines().count())
}

#[test]
fn killed_mid_run_resumes_to_the_same_results_without_resending() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, sae, corpus) = (
        common::tiny_model(tmp.path()),
        common::random_sae(tmp.path(), "sae", 96, Some(4), 0x9E37_79B9_7F4A_7C15),
        common::corpus(tmp.path(), 20),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();

    // Uninterrupted.
    let server_a = rt
        .block_on(MockServer::start(Duration::from_millis(100), None))
        .unwrap();
    let out_a = tmp.path().join("a/results.jsonl");
    let st = cmd(&model, &sae, &corpus, &server_a.base_url(), &out_a)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let table = String::from_utf8_lossy(&st.stdout);
    assert!(
        table.contains("correct seqs") && table.contains("score"),
        "{table}"
    );
    let a = results(&out_a);
    assert_eq!(a.len(), 30);
    let ok = a
        .values()
        .filter(|v| v["status"] == "ok" && v["score"].is_number())
        .count();
    let dead = a.values().filter(|v| v["status"] == "dead").count();
    assert!(
        ok >= 20 && ok + dead == 30,
        "{ok} explained and scored, {dead} dead"
    );
    let sent_a = server_a.log().len();
    assert!(
        sent_a >= 40,
        "too few requests ({sent_a}) for the test to mean much"
    );

    // Killed twenty times (each after one more finished latent, plus a pseudo-random delay that
    // lands inside a request), then finished. After every kill the results file holds whole
    // lines only, each equal to the uninterrupted run's.
    let server_b = rt
        .block_on(MockServer::start(Duration::from_millis(100), None))
        .unwrap();
    let out_b = tmp.path().join("b/results.jsonl");
    let mut kills = Vec::new();
    let mut s = 0x5EED_u64;
    for at in 1..=20 {
        let mut child = cmd(&model, &sae, &corpus, &server_b.base_url(), &out_b)
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while lines(&out_b) < at {
            assert!(t0.elapsed() < Duration::from_secs(120), "no progress");
            if child.try_wait().unwrap().is_some() {
                panic!("finished before being killed");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis((s >> 33) % 150));
        child.kill().unwrap_or(()); // SIGKILL
        kills.push(server_b.now());
        child.wait().unwrap();
        let text = std::fs::read_to_string(&out_b).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "kill {at}: torn line"
        );
        for (latent, v) in results(&out_b) {
            if v["status"] != "request_failure" {
                assert_eq!(v, a[&latent], "kill {at}: latent {latent}");
            }
        }
    }
    let st = cmd(&model, &sae, &corpus, &server_b.base_url(), &out_b)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        results(&out_b),
        a,
        "resumed results differ from the uninterrupted run"
    );

    // Requests: each distinct request answered once; only those in flight at a kill (the reply
    // never reached the client) may have been received twice.
    let log = server_b.log();
    let mut by_hash: HashMap<u64, Vec<&autointerp::mock::LogEntry>> = HashMap::new();
    for e in &log {
        by_hash.entry(e.hash).or_default().push(e);
    }
    let distinct_a: std::collections::HashSet<u64> =
        server_a.log().iter().map(|e| e.hash).collect();
    assert_eq!(by_hash.len(), distinct_a.len());
    for (h, es) in &by_hash {
        let interrupted = es
            .iter()
            .filter(|e| {
                kills
                    .iter()
                    .any(|&k| e.started <= k && e.finished.is_none_or(|f| f >= k))
            })
            .count();
        assert!(
            es.len() <= 1 + interrupted,
            "request {h:x} sent {} times, {interrupted} interrupted by a kill",
            es.len()
        );
    }
    assert!(
        log.len() < sent_a + kills.len() * 2 + 1,
        "{} requests vs {sent_a}",
        log.len()
    );
}

/// `--request-timeout -1` (or NaN, 0, 1e20) panicked in `Duration::from_secs_f64` (issue #23):
/// now a flag error naming the value, exit code 2.
#[test]
fn bad_request_timeouts_are_flag_errors() {
    for bad in ["-1", "NaN", "0", "1e20", "soon"] {
        for form in [
            vec!["--request-timeout".to_string(), bad.to_string()],
            vec![format!("--request-timeout={bad}")],
        ] {
            let out = Command::new(env!("CARGO_BIN_EXE_sae-geometry"))
                .args(["autointerp"])
                .args(&form)
                .args(["--model", "gpt2", "--sae", "x", "--out", "y"])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{form:?}: {err}");
            assert!(!err.contains("panicked"), "{form:?}: {err}");
            assert!(err.contains("--request-timeout"), "{form:?}: {err}");
        }
    }
}

/// A results file is continued only by a run on the same SAE weights: the same directory with a
/// retrained SAE saved over it is refused with the typed error (naming the file), and the
/// original weights resume it.
#[test]
fn other_weights_under_the_same_name_do_not_resume_a_results_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, corpus) = (
        common::tiny_model(tmp.path()),
        common::corpus(tmp.path(), 20),
    );
    let original = common::random_sae(tmp.path(), "original", 96, Some(4), 11);
    let retrained = common::random_sae(tmp.path(), "retrained", 96, Some(4), 12);
    let sae = tmp.path().join("sae");
    let copy = |from: &Path| {
        let _ = std::fs::remove_dir_all(&sae);
        std::fs::create_dir_all(&sae).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), sae.join(e.file_name())).unwrap();
        }
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(MockServer::start(Duration::ZERO, None))
        .unwrap();
    let out = tmp.path().join("out/results.jsonl");
    let run = || {
        cmd(&model, &sae, &corpus, &server.base_url(), &out)
            .output()
            .unwrap()
    };

    copy(&original);
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let done = std::fs::read_to_string(&out).unwrap();

    copy(&retrained);
    let refused = run();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "resumed with other weights");
    assert!(
        err.contains("different configuration or SAE weights") && err.contains("results.jsonl"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        done,
        "the file was touched"
    );

    copy(&original);
    let sent = server.log().len();
    let again = run();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        server.log().len(),
        sent,
        "the finished run asked the API again"
    );
}

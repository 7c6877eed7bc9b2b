//! Generation and scoring end to end against the in-process mock OpenAI-compatible server:
//! correct scores, injected faults, resumption without resending, and the key kept secret.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use autointerp::mock::{Fault, MockServer, mixed_faults};
use autointerp::{
    CachedBackend, ClientConfig, LatentResult, LatentStatus, LlmJudge, OfflineJudge, OpenAiBackend,
    PromptOptions, RunOptions, run, score_predictions,
};

mod common;
use common::*;

fn opts(fingerprint: &str) -> RunOptions {
    run_opts(fingerprint, true)
}

fn by_latent(rs: &[LatentResult]) -> BTreeMap<usize, LatentResult> {
    rs.iter().map(|r| (r.latent, r.clone())).collect()
}

/// What a run's results must hold regardless of cache state.
type Essentials = (
    LatentStatus,
    Option<String>,
    Option<Vec<usize>>,
    Vec<usize>,
    Option<f64>,
);

fn essentials(r: &LatentResult) -> Essentials {
    (
        r.status,
        r.explanation.clone(),
        r.predictions.clone(),
        r.correct_seqs.clone(),
        r.score,
    )
}

#[test]
fn data_invariants() {
    let cfg = cfg();
    let exs = examples(&cfg);
    assert_eq!(exs.len(), N_LATENTS);
    for ex in &exs {
        assert_eq!(ex.generation.len(), cfg.n_top_ex_for_generation);
        assert_eq!(ex.scoring.len(), cfg.n_ex_for_scoring());
        // Generation windows never reappear among the scoring ones.
        for g in &ex.generation {
            assert!(
                !ex.scoring
                    .iter()
                    .any(|s| s.tokens == g.tokens && s.acts == g.acts)
            );
        }
        // The held-out top windows are active; the threshold is 10% of the max.
        assert!(ex.scoring.iter().filter(|s| s.is_active()).count() >= cfg.n_top_ex_for_scoring);
        assert!((ex.act_threshold - 0.1 * ex.max_activation).abs() < 1e-6);
    }
    // Deterministic.
    assert_eq!(exs, examples(&cfg));
    // Some random window is active (it carries its real activations).
    let extra_active: usize = exs
        .iter()
        .map(|e| e.scoring.iter().filter(|s| s.is_active()).count() - cfg.n_top_ex_for_scoring)
        .sum();
    assert!(
        extra_active > 0,
        "no random window fired; the test data should make some fire"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_and_scoring_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let server = MockServer::start(Duration::from_millis(5), None)
        .await
        .unwrap();
    let exs = examples(&cfg());
    let j = judge(&server, &tmp.path().join("cache"), Duration::from_secs(10));
    let out = tmp.path().join("results.jsonl");
    let summary = run(&j, &exs, &out, &opts("a")).await.unwrap();
    assert_eq!(summary.results.len(), N_LATENTS);
    for (r, ex) in summary.results.iter().zip(&exs) {
        assert_eq!(r.status, LatentStatus::Ok, "{r:?}");
        // The mock names the first marked token: latent j's token.
        let tok = format!(" w{}", 100 + (ex.latent - 1) / 3);
        assert_eq!(
            r.explanation.as_deref().unwrap(),
            format!("the token {}", serde_json::to_string(&tok).unwrap())
        );
        // Predictions are the examples containing the token; score is recomputed here.
        let expect: Vec<usize> = ex
            .scoring
            .iter()
            .enumerate()
            .filter(|(_, s)| s.str_tokens.contains(&tok))
            .map(|(i, _)| i + 1)
            .collect();
        assert_eq!(r.predictions.as_ref().unwrap(), &expect);
        let truth = ex.scoring_truth();
        let correct = truth
            .iter()
            .enumerate()
            .filter(|(i, t)| expect.contains(&(i + 1)) == **t)
            .count();
        assert_eq!(r.score.unwrap(), correct as f64 / truth.len() as f64);
        assert_eq!(r.detection.unwrap(), score_predictions(&expect, &truth));
        assert_eq!(r.requests_sent, 3);
        assert!(r.fuzzing.is_some());
    }
    assert_eq!(summary.requests_sent, 3 * N_LATENTS as u64);
    assert_eq!(summary.usage.prompt_tokens, 100 * 3 * N_LATENTS as u64);
    // The offline judge on the same data agrees with the mock's logic.
    let off = run(
        &OfflineJudge,
        &exs,
        &tmp.path().join("offline.jsonl"),
        &opts("o"),
    )
    .await
    .unwrap();
    for (a, b) in off.results.iter().zip(&summary.results) {
        assert_eq!(essentials(a), essentials(b));
    }
    // Results file: one JSON object per latent with the contract's fields.
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), N_LATENTS);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for k in [
            "latent",
            "explanation",
            "predictions",
            "correct_seqs",
            "score",
        ] {
            assert!(v.get(k).is_some(), "{k} missing");
        }
    }
    // A rerun sends nothing (every reply cached, every latent finished).
    let before = server.log().len();
    let again = run(&j, &exs, &out, &opts("a")).await.unwrap();
    assert_eq!(again.resumed, N_LATENTS);
    assert_eq!(server.log().len(), before);
    // With a fresh results file but the same cache, nothing is sent either.
    let again = run(&j, &exs, &tmp.path().join("r2.jsonl"), &opts("a"))
        .await
        .unwrap();
    assert_eq!(server.log().len(), before);
    assert_eq!(again.requests_cached, 3 * N_LATENTS as u64);
    // The key reached the server as a header and nothing on disk.
    assert!(server.log().iter().all(|e| e.had_auth));
    for entry in walk(tmp.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(SECRET),
            "key in {}",
            entry.display()
        );
    }
    // Another configuration refuses the same results file.
    assert!(matches!(
        run(&j, &exs, &out, &opts("b")).await,
        Err(autointerp::AutoInterpError::ConfigMismatch { .. })
    ));
}

fn walk(d: &Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(walk(&p));
        } else {
            v.push(p);
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_survived_and_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let exs = examples(&cfg());
    // Reference: a clean run.
    let clean = MockServer::start(Duration::ZERO, None).await.unwrap();
    let reference = run(
        &judge(&clean, &tmp.path().join("c0"), Duration::from_secs(10)),
        &exs,
        &tmp.path().join("ref.jsonl"),
        &opts("x"),
    )
    .await
    .unwrap();
    // Faulty: 429 + Retry-After, 500s, hangs past the 300 ms timeout, malformed JSON, garbage.
    let server = MockServer::start(
        Duration::from_millis(2),
        Some(mixed_faults(Duration::from_secs(2))),
    )
    .await
    .unwrap();
    let j = judge(&server, &tmp.path().join("c1"), Duration::from_millis(300));
    let out = tmp.path().join("faulty.jsonl");
    let got = run(&j, &exs, &out, &opts("x")).await.unwrap();
    assert_eq!(got.results.len(), N_LATENTS, "a latent was lost");
    let log = server.log();
    let faults: Vec<&Fault> = log.iter().map(|e| &e.fault).collect();
    for kind in [
        Fault::RateLimit(0.05),
        Fault::ServerError,
        Fault::Hang(Duration::from_secs(2)),
        Fault::MalformedJson,
    ] {
        assert!(
            faults.contains(&&kind),
            "fault {kind:?} never injected; pick other data"
        );
    }
    let stats = j.backend.inner().stats();
    assert!(stats.retries.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert!(stats.timeouts.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert!(
        stats
            .rate_limited
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    // Retry-After was honoured: the retry of a 429 started at least 50 ms after it.
    for e in log.iter().filter(|e| e.fault == Fault::RateLimit(0.05)) {
        let next = log
            .iter()
            .find(|n| n.hash == e.hash && n.attempt == e.attempt + 1)
            .unwrap();
        let done = e.finished.unwrap();
        assert!(
            next.started >= done + Duration::from_millis(45),
            "{done:?} then {:?}",
            next.started
        );
    }
    // Garbage predictions are parse failures, recorded with the raw text; all else equals the
    // clean run.
    let clean_by = by_latent(&reference.results);
    let mut failures = 0;
    for r in &got.results {
        match r.status {
            LatentStatus::ParseFailure => {
                failures += 1;
                let f = serde_json::to_string(r.failure.as_ref().unwrap()).unwrap();
                assert!(f.contains("I like turtles"), "{f}");
            }
            // A garbage explanation is still text (the tutorial's parser takes any reply);
            // it is kept and scored as it is.
            LatentStatus::Ok if r.explanation.as_deref() == Some("I like turtles") => {
                assert_eq!(r.predictions.as_deref(), Some(&[][..]));
            }
            LatentStatus::Ok => assert_eq!(essentials(r), essentials(&clean_by[&r.latent])),
            other => panic!("latent {} ended {other:?}", r.latent),
        }
    }
    assert!(failures > 0, "no garbage injected; pick other data");
    // Every result is on disk.
    assert_eq!(
        std::fs::read_to_string(&out).unwrap().lines().count(),
        N_LATENTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_recovers_gives_request_failures_that_a_rerun_redoes() {
    let tmp = tempfile::tempdir().unwrap();
    let exs = examples(&cfg());
    let dead = MockServer::start(Duration::ZERO, Some(Arc::new(|_, _| Fault::ServerError)))
        .await
        .unwrap();
    let mut c = ClientConfig::new(dead.base_url(), None);
    c.max_retries = 2;
    c.backoff_base = Duration::from_millis(1);
    let j = LlmJudge {
        backend: CachedBackend::new(OpenAiBackend::new(c).unwrap(), tmp.path().join("cache"))
            .unwrap(),
        model: "m".into(),
        cfg: cfg(),
        prompts: PromptOptions::default(),
        temperature: None,
    };
    let out = tmp.path().join("r.jsonl");
    let got = run(&j, &exs[..4], &out, &opts("f")).await.unwrap();
    assert!(
        got.results
            .iter()
            .all(|r| r.status == LatentStatus::RequestFailure)
    );
    assert_eq!(dead.log().len(), 4 * 3, "1 attempt + 2 retries each");
    // The server recovers: the rerun redoes exactly the failed latents.
    let alive = MockServer::start(Duration::ZERO, None).await.unwrap();
    let again = run(
        &judge(&alive, &tmp.path().join("cache"), Duration::from_secs(5)),
        &exs[..4],
        &out,
        &opts("f"),
    )
    .await
    .unwrap();
    assert_eq!(again.resumed, 0);
    assert!(again.results.iter().all(|r| r.status == LatentStatus::Ok));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 4);
}

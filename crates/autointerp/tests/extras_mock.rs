//! The tutorial's bonus list, end to end against the mock server and offline: generation
//! scoring with its counter-example round, neighbour scoring with hard negatives, and the
//! arithmetic of both.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::time::Duration;

use autointerp::mock::MockServer;
use autointerp::{
    GenerationScoringConfig, GenerationScoringResult, Judge, LatentExamples, Neighbour,
    NeighbourConfig, NeighbourScoringResult, OfflineJudge, RunOptions, measure_sequences,
    neighbour_set, run_resumable, score_against_neighbours, score_by_generation, score_predictions,
};

mod common;
use common::*;

fn opts(fingerprint: &str) -> RunOptions {
    run_opts(fingerprint, false)
}

fn explanation(latent: usize) -> String {
    format!(
        "the token {}",
        serde_json::to_string(&token_of(latent)).unwrap()
    )
}

#[test]
fn precision_is_the_fraction_of_written_sequences_that_fire() {
    let texts: Vec<String> = ["w1 w100 w2", "w3 w4", "w100", "w101 w5"]
        .map(String::from)
        .to_vec();
    let (p, examples) = measure_sequences(&TokenOracle, 1, 0.15, "x", &texts).unwrap();
    assert_eq!(p.precision, Some(0.5));
    let fps: Vec<&str> = p.false_positives().map(|s| s.text.as_str()).collect();
    assert_eq!(fps, ["w3 w4", "w101 w5"]);
    assert_eq!(p.sequences[0].max_activation, 1.5);
    assert!(examples[0].is_active() && !examples[1].is_active());
    // Above the threshold, not at it.
    let (p, _) = measure_sequences(&TokenOracle, 1, 1.5, "x", &texts).unwrap();
    assert_eq!(p.precision, Some(0.0));
    let (p, _) = measure_sequences(&TokenOracle, 1, 0.15, "x", &[]).unwrap();
    assert_eq!(p.precision, None);
}

async fn generate<J: Judge>(
    j: &J,
    ex: &LatentExamples,
    cfg: GenerationScoringConfig,
) -> GenerationScoringResult {
    score_by_generation(j, &TokenOracle, ex, &explanation(ex.latent), cfg).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_scoring_with_counter_examples_against_the_mock_server() {
    let tmp = tempfile::tempdir().unwrap();
    let server = MockServer::start(Duration::from_millis(5), None)
        .await
        .unwrap();
    let exs = examples(&cfg());
    let j = judge(&server, &tmp.path().join("cache"), Duration::from_secs(10));
    let gcfg = GenerationScoringConfig {
        n_sequences: 10,
        counter_example_round: true,
    };
    let out = tmp.path().join("generation.jsonl");
    let work = |ex| generate(&j, ex, gcfg);
    let (results, resumed) = run_resumable(&exs, &out, &opts("g"), "generation", work)
        .await
        .unwrap();
    assert_eq!(resumed, 0);
    assert_eq!(results.len(), exs.len());
    for (r, ex) in results.iter().map(|r| &r.value).zip(&exs) {
        assert!(r.tally.failure.is_none(), "{r:?}");
        // The mock leaves the token out of every third line: 7 of 10 fire.
        let first = r.first.as_ref().unwrap();
        assert_eq!(first.sequences.len(), 10);
        assert_eq!(first.precision, Some(0.7));
        assert!(first.false_positives().all(|s| s.text == "w1 w2 w3"));
        // Round two: the mock explains again by the first highlighted token.
        let second = r.second.as_ref().unwrap();
        assert_eq!(second.explanation, explanation(ex.latent));
        assert_eq!(second.precision, Some(0.7));
        assert_eq!(r.precision_change, Some(0.0));
        // The second explanation's detection score is recomputed here.
        let tok = token_of(ex.latent);
        let predicted: Vec<usize> = ex
            .scoring
            .iter()
            .enumerate()
            .filter(|(_, e)| e.str_tokens.contains(&tok))
            .map(|(i, _)| i + 1)
            .collect();
        assert_eq!(
            r.second_detection.unwrap(),
            score_predictions(&predicted, &ex.scoring_truth())
        );
        // write, explain with counter-examples, write (the same explanation: answered by
        // the cache), detect.
        assert_eq!((r.tally.requests_sent, r.tally.requests_cached), (3, 1));
    }
    // Killed or not, a rerun resumes every latent and sends nothing.
    let before = server.log().len();
    let (again, resumed) = run_resumable(&exs, &out, &opts("g"), "generation", work)
        .await
        .unwrap();
    assert_eq!(resumed, exs.len());
    assert_eq!(server.log().len(), before);
    let a: Vec<&GenerationScoringResult> = results.iter().map(|r| &r.value).collect();
    let b: Vec<&GenerationScoringResult> = again.iter().map(|r| &r.value).collect();
    assert_eq!(a, b);

    // A rerun on a subset of the latents keeps the others' finished results in the file.
    let lines = |p: &std::path::Path| std::fs::read_to_string(p).unwrap().lines().count();
    let all = lines(&out);
    assert_eq!(all, exs.len());
    let (sub, resumed) = run_resumable(&exs[..1], &out, &opts("g"), "generation", work)
        .await
        .unwrap();
    assert_eq!((sub.len(), resumed), (1, 1));
    assert_eq!(
        lines(&out),
        all,
        "results of latents outside the request were dropped"
    );

    // Without the record of the configuration, results are not silently rewritten.
    let meta = autointerp::meta_path(&out);
    std::fs::remove_file(&meta).unwrap();
    let kept = std::fs::read(&out).unwrap();
    match run_resumable(&exs[..1], &out, &opts("g"), "generation", work).await {
        Err(autointerp::AutoInterpError::MissingRunRecord { path, meta: m }) => {
            assert_eq!((path, m), (out.clone(), meta));
        }
        r => panic!("{:?}", r.map(|(v, n)| (v.len(), n))),
    }
    assert_eq!(std::fs::read(&out).unwrap(), kept);

    // A second run on the same results file fails at once.
    let _held = sae_core::lock::OutputLock::for_file(&out).unwrap();
    match run_resumable(&exs, &out, &opts("g"), "generation", work).await {
        Err(autointerp::AutoInterpError::Sae(sae_core::SaeError::OutputInUse { path, .. })) => {
            assert_eq!(path, out)
        }
        r => panic!("{:?}", r.map(|(v, n)| (v.len(), n))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_scoring_offline() {
    let exs = examples(&cfg());
    for ex in &exs {
        let r = score_by_generation(
            &OfflineJudge,
            &TokenOracle,
            ex,
            &explanation(ex.latent),
            GenerationScoringConfig {
                n_sequences: 10,
                counter_example_round: true,
            },
        )
        .await;
        // The offline writer puts the token into inactive windows; the latent fires on the
        // token in any context, so every sequence fires and there is no second round.
        let first = r.first.unwrap();
        assert_eq!(first.sequences.len(), 10);
        assert_eq!(first.precision, Some(1.0));
        assert!(
            first
                .sequences
                .iter()
                .all(|s| s.text.contains(&token_of(ex.latent)))
        );
        assert!(r.second.is_none());
        assert_eq!(r.tally.requests_sent, 0);
    }
}

/// Latent 1's neighbours: four other latents of the synthetic corpus.
fn neighbours() -> Vec<Neighbour> {
    [4, 7, 10, 13]
        .iter()
        .enumerate()
        .map(|(i, &l)| Neighbour {
            latent: l,
            cosine: 0.9 - 0.1 * i as f32,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neighbour_scoring_arithmetic_offline_and_against_the_mock() {
    let c = cfg();
    let stats = synthetic_stats(&c);
    let exs = examples(&c);
    let ex = exs.iter().find(|e| e.latent == 1).unwrap();
    let ncfg = NeighbourConfig {
        hard_negatives: true,
        seed: 5,
        ..NeighbourConfig::default()
    };
    let set = neighbour_set(ex, &neighbours(), &stats, &ncfg, &TokenOracle).unwrap();
    // 4 held-out top windows + 4 neighbours × 2 windows.
    assert_eq!(set.examples.len(), 12);
    assert_eq!(set.sources.iter().filter(|s| s.is_none()).count(), 4);
    for n in neighbours() {
        assert_eq!(
            set.sources.iter().filter(|s| **s == Some(n.latent)).count(),
            2
        );
    }
    // Truth is latent 1's own activation: windows containing its token.
    let tok = token_of(1);
    let truth = set.truth();
    for (e, t) in set.examples.iter().zip(&truth) {
        assert_eq!(*t, e.str_tokens.contains(&tok));
    }
    // Held-out top windows fire; hard negatives never do.
    for (e, s) in set.examples.iter().zip(&set.sources) {
        if s.is_none() {
            assert!(e.is_active());
        }
    }
    assert!(!set.hard_negatives.is_empty());
    assert!(set.hard_negatives.iter().all(|e| !e.is_active()));
    // Deterministic.
    assert_eq!(
        set,
        neighbour_set(ex, &neighbours(), &stats, &ncfg, &TokenOracle).unwrap()
    );

    // Scores: the right explanation detects exactly the active windows.
    let r: NeighbourScoringResult = score_against_neighbours(
        &OfflineJudge,
        ex,
        &neighbours(),
        &set,
        &explanation(1),
        &ncfg,
    )
    .await;
    let d = r.detection.unwrap();
    assert_eq!((d.tp + d.fn_, d.fp + d.tn), (r.n_active, 12 - r.n_active));
    assert_eq!(d.accuracy, 1.0);
    assert_eq!(
        r.neighbour_windows_active,
        r.n_active - 4,
        "active neighbour windows are those holding latent 1's token"
    );
    // A neighbour's explanation (latent 4's token) is scored against latent 1's truth.
    let wrong = score_against_neighbours(
        &OfflineJudge,
        ex,
        &neighbours(),
        &set,
        &explanation(4),
        &ncfg,
    )
    .await;
    let predicted: Vec<usize> = set
        .examples
        .iter()
        .enumerate()
        .filter(|(_, e)| e.str_tokens.contains(&token_of(4)))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(
        wrong.detection.unwrap(),
        score_predictions(&predicted, &truth)
    );
    assert!(wrong.detection.unwrap().accuracy < 1.0);
    // Hard negatives hold no latent-1 token, so the offline contrastive explanation stays
    // the plain one and scores the same.
    assert_eq!(
        r.contrastive_explanation.as_deref(),
        Some(explanation(1).as_str())
    );
    assert_eq!(r.contrastive_detection, r.detection);
    assert!(r.contrastive_standard_detection.is_some());

    // The same through the mock server.
    let tmp = tempfile::tempdir().unwrap();
    let server = MockServer::start(Duration::from_millis(5), None)
        .await
        .unwrap();
    let j = judge(&server, &tmp.path().join("cache"), Duration::from_secs(10));
    let m = score_against_neighbours(&j, ex, &neighbours(), &set, &explanation(1), &ncfg).await;
    assert!(m.tally.failure.is_none(), "{m:?}");
    assert_eq!(m.detection, r.detection);
    assert_eq!(m.contrastive_detection, r.contrastive_detection);
    // detect, explain with hard negatives, detect on both sets (the first repeats: cached).
    assert_eq!((m.tally.requests_sent, m.tally.requests_cached), (3, 1));
}

#[tokio::test]
async fn offline_contrastive_explanation_narrows_to_the_context() {
    use autointerp::{Example, OfflineExplanation};
    let mk = |toks: &[&str], active: usize| {
        let acts = (0..toks.len())
            .map(|i| if i == active { 1.0 } else { 0.0 })
            .collect();
        Example::new(
            vec![0; toks.len()],
            toks.iter().map(|t| t.to_string()).collect(),
            acts,
            0.1,
        )
        .unwrap()
    };
    let generation = vec![
        mk(&[" the", " bank", " of"], 1),
        mk(&[" river", " bank", " was"], 1),
        mk(&[" river", " bank", " flood"], 1),
    ];
    let ex = LatentExamples {
        latent: 0,
        max_activation: 1.0,
        act_threshold: 0.1,
        generation,
        scoring: vec![mk(&[" a", " b", " c", " d"], 9)],
        held_out: Vec::new(),
        fuzzing: Vec::new(),
        logit_tokens: None,
    };
    let plain = OfflineJudge.explain(&ex).await.unwrap().value;
    assert_eq!(plain, "the token \" bank\"");
    // A negative holding the token narrows the explanation to its most frequent context.
    let negatives = vec![mk(&[" money", " bank", " loan"], 9)];
    let narrowed = OfflineJudge
        .explain_contrastive(&ex, &negatives)
        .await
        .unwrap()
        .value;
    assert_eq!(narrowed, "the token \" bank\" after \" river\"");
    let e = OfflineExplanation::parse(&narrowed).unwrap();
    assert_eq!(e.after.as_deref(), Some(" river"));
    assert_eq!(e.render(), narrowed);
    // Detection by the narrowed explanation needs the context.
    let d = OfflineJudge
        .detect(
            &narrowed,
            &[mk(&[" river", " bank"], 9), mk(&[" money", " bank"], 9)],
        )
        .await
        .unwrap();
    assert_eq!(d.value, vec![1]);
    // Written sequences carry the context and the token, inserted into inactive windows.
    let w = OfflineJudge
        .write_sequences(&narrowed, &ex, 2)
        .await
        .unwrap();
    assert_eq!(w.value.len(), 2);
    assert!(w.value.iter().all(|s| s.contains(" river bank")));
    // Tokens that look like the syntax round-trip.
    for t in ["\" after \"", "\n", " after ", "\\"] {
        let e = OfflineExplanation {
            token: t.into(),
            after: Some(t.into()),
        };
        assert_eq!(OfflineExplanation::parse(&e.render()), Some(e));
    }
    // A negative without the token keeps the plain explanation.
    let kept = OfflineJudge
        .explain_contrastive(&ex, &[mk(&[" x", " y"], 9)])
        .await
        .unwrap()
        .value;
    assert_eq!(kept, plain);
}

#[test]
fn counter_examples_are_appended_to_the_tutorials_prompt() {
    use autointerp::{PromptOptions, contrastive_generation_prompt, generation_prompt};
    let c = cfg();
    let exs = examples(&c);
    let ex = &exs[0];
    let opts = PromptOptions::default();
    let plain = generation_prompt(&c, &opts, &ex.generation, None);
    assert_eq!(
        contrastive_generation_prompt(&c, &opts, &ex.generation, None, &[]),
        plain
    );
    let negatives: Vec<_> = ex
        .scoring
        .iter()
        .filter(|e| !e.is_active())
        .take(2)
        .cloned()
        .collect();
    let with = contrastive_generation_prompt(&c, &opts, &ex.generation, None, &negatives);
    assert_eq!(with.len(), plain.len());
    let (last, base) = (
        &with[with.len() - 1].content,
        &plain[plain.len() - 1].content,
    );
    let tail = last.strip_prefix(base.as_str()).unwrap();
    assert!(tail.contains("does NOT activate"));
    assert!(tail.ends_with(&format!("2. {}", negatives[1].to_str(false))));
    assert!(!tail.contains("<<"), "counter-examples are shown unmarked");
}

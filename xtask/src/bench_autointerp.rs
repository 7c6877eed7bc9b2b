//! `cargo xtask bench autointerp`: 200 latents × 2 requests (explanation, then detection) against
//! the in-process mock server with 100 ms of latency per request, at concurrency 32, beside the
//! tutorial's Python loop (sequential, the `openai` client) and an asyncio version of it
//! (semaphore of 32), all on the same requests and server.

use std::process::Command;
use std::time::{Duration, Instant};

use autointerp::mock::MockServer;
use autointerp::{
    AutoInterpConfig, ClientConfig, Example, LatentExamples, LlmJudge, OpenAiBackend,
    PromptOptions, RunOptions, generation_prompt, scoring_prompt,
};

use crate::bench::{Args, run_reference, workspace_root};

const N_LATENTS: usize = 200;
const LATENCY: Duration = Duration::from_millis(100);
const CONCURRENCY: usize = 32;

/// Deterministic examples: latent `j` is active on the word ` t{j}`.
fn latents(cfg: &AutoInterpConfig) -> Vec<LatentExamples> {
    let window = |j: usize, i: usize, active: bool| {
        let toks: Vec<String> = (0..21)
            .map(|p| {
                if active && p == 10 {
                    format!(" t{j}")
                } else {
                    format!(" w{}", (i * 31 + p * 7 + j) % 97)
                }
            })
            .collect();
        let acts: Vec<f32> = (0..21)
            .map(|p| if active && p == 10 { 2.0 } else { 0.0 })
            .collect();
        Example::new((0..21).collect(), toks, acts, 0.2).unwrap_or_else(|_| unreachable!())
    };
    (0..N_LATENTS)
        .map(|j| LatentExamples {
            latent: j,
            max_activation: 2.0,
            act_threshold: 0.2,
            generation: (0..cfg.n_top_ex_for_generation)
                .map(|i| window(j, i, true))
                .collect(),
            scoring: (0..cfg.n_ex_for_scoring())
                .map(|i| window(j, 100 + i, i % 3 == 0))
                .collect(),
            held_out: Vec::new(),
            fuzzing: Vec::new(),
            logit_tokens: None,
        })
        .collect()
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let cfg = AutoInterpConfig {
        scoring: true,
        ..AutoInterpConfig::default()
    };
    let exs = latents(&cfg);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let server = rt.block_on(MockServer::start(LATENCY, None))?;
    let ideal = (N_LATENTS * 2) as f64 * LATENCY.as_secs_f64() / CONCURRENCY as f64;

    // Ours.
    let mut c = ClientConfig::new(server.base_url(), Some("bench".into()));
    c.concurrency = CONCURRENCY;
    let judge = LlmJudge {
        backend: OpenAiBackend::new(c)?,
        model: "gpt-4o-mini".into(),
        cfg: cfg.clone(),
        prompts: PromptOptions::default(),
        temperature: None,
    };
    let scratch = crate::bench::scratch_dir("autointerp")?;
    let tmp = scratch.path();
    let mut ours = Vec::new();
    for rep in 0..args.repeats.max(1) {
        let out = tmp.join(format!("r{rep}.jsonl"));
        let opts = RunOptions {
            scoring: true,
            fuzzing: false,
            parallel_latents: 4 * CONCURRENCY,
            fingerprint: "bench".into(),
            progress: false,
        };
        let t0 = Instant::now();
        let s = rt.block_on(autointerp::run(&judge, &exs, &out, &opts))?;
        ours.push(t0.elapsed().as_secs_f64());
        anyhow::ensure!(
            s.requests_sent == (2 * N_LATENTS) as u64
                && s.results.iter().all(|r| r.score == Some(1.0)),
            "the benchmark run did not explain and score every latent correctly"
        );
    }
    let ours_s = crate::bench::median(ours);

    // The same requests for Python: each latent's generation prompt, and its scoring prompt
    // with the explanation the mock gives.
    let requests: Vec<serde_json::Value> = exs
        .iter()
        .map(|e| {
            let g = generation_prompt(&cfg, &PromptOptions::default(), &e.generation, None);
            let reply = autointerp::mock::answer(&serde_json::json!({ "messages": g }));
            let s = scoring_prompt(&cfg, &autointerp::parse_explanation(&reply), &e.scoring);
            serde_json::json!({ "generation": g, "scoring": s })
        })
        .collect();
    let req_path = tmp.join("requests.json");
    sae_core::atomic::write(&req_path, serde_json::to_vec(&requests)?)?;
    let mut reference = None;
    if let Some(py) = &args.python {
        // The server must keep serving while Python runs: run it from a blocking thread.
        let mut cmd = Command::new(py);
        cmd.arg(workspace_root().join("benches/python/autointerp_ref.py"))
            .arg(&req_path)
            .arg(server.base_url())
            .arg(CONCURRENCY.to_string())
            .arg(cfg.max_tokens_in_explanation.to_string())
            .arg(cfg.max_tokens_in_prediction().to_string());
        reference = Some(rt.block_on(async move {
            tokio::task::spawn_blocking(move || run_reference(&mut cmd)).await
        })??);
    }
    println!(
        "autointerp: {N_LATENTS} latents × 2 requests, {} ms latency, concurrency {CONCURRENCY}",
        LATENCY.as_millis()
    );
    println!("  ideal (requests × latency / concurrency): {ideal:.3} s");
    println!("  ours: {ours_s:.3} s ({:.2}× ideal)", ours_s / ideal);
    if let Some(r) = reference {
        let seq = r["sequential_s"].as_f64().unwrap_or(f64::NAN);
        let asy = r["asyncio_s"].as_f64().unwrap_or(f64::NAN);
        println!(
            "  python, the tutorial's sequential loop: {seq:.3} s (ours {:.1}× faster)",
            seq / ours_s
        );
        println!(
            "  python, asyncio with a semaphore of {CONCURRENCY}: {asy:.3} s (ours {:.2}× faster)",
            asy / ours_s
        );
    }
    Ok(())
}

//! Shared test data: a synthetic corpus where latent `3j + 1` fires on token `100 + j`, token
//! `i` reads " w{i}", and an LLM judge on the mock server.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use activation_store::LatentStats;
use autointerp::mock::MockServer;
use autointerp::{
    AutoInterpConfig, CachedBackend, ClientConfig, LatentExamples, LlmJudge, OpenAiBackend,
    PromptOptions, RunOptions, build_examples,
};

pub const N_LATENTS: usize = 24;
pub const CTX: usize = 64;
pub const SECRET: &str = "sk-test-SECRET-0123456789";

/// Latent `3j + 1` fires on token `100 + j`, with activations from 1 to 3.
pub fn synthetic_stats(cfg: &AutoInterpConfig) -> LatentStats {
    let latents: Vec<usize> = (0..N_LATENTS).map(|j| 3 * j + 1).collect();
    let mut stats = LatentStats::new(cfg.stats_config(7), &latents, CTX).unwrap();
    let mut state = 0x1234_5678_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for batch in 0..40u64 {
        let n_seq = 8;
        let mut tokens = Vec::with_capacity(n_seq * CTX);
        for _ in 0..n_seq * CTX {
            let r = next() % 100;
            tokens.push(if r < 6 {
                100 + (next() % N_LATENTS as u64) as u32
            } else {
                (next() % 60) as u32
            });
        }
        let mut acts = vec![0.0f32; n_seq * CTX * N_LATENTS];
        for (i, &t) in tokens.iter().enumerate() {
            if (100..100 + N_LATENTS as u32).contains(&t) {
                let j = (t - 100) as usize;
                acts[i * N_LATENTS + j] = 1.0 + (next() % 1000) as f32 / 500.0;
            }
        }
        stats.update(batch * n_seq as u64, &tokens, &acts).unwrap();
    }
    stats
}

pub fn str_tokens(ids: &[u32]) -> autointerp::Result<Vec<String>> {
    Ok(ids.iter().map(|i| format!(" w{i}")).collect())
}

pub fn examples(cfg: &AutoInterpConfig) -> Vec<LatentExamples> {
    build_examples(&synthetic_stats(cfg), cfg, 11, &str_tokens).unwrap()
}

pub fn cfg() -> AutoInterpConfig {
    AutoInterpConfig {
        scoring: true,
        ..AutoInterpConfig::default()
    }
}

pub fn judge(
    server: &MockServer,
    cache: &Path,
    timeout: Duration,
) -> LlmJudge<CachedBackend<OpenAiBackend>> {
    let mut c = ClientConfig::new(server.base_url(), Some(SECRET.into()));
    c.concurrency = 8;
    c.request_timeout = timeout;
    c.backoff_base = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(400);
    LlmJudge {
        backend: CachedBackend::new(OpenAiBackend::new(c).unwrap(), cache).unwrap(),
        model: "gpt-4o-mini".into(),
        cfg: cfg(),
        prompts: PromptOptions::default(),
        temperature: None,
    }
}

/// The synthetic corpus's truth as an oracle: text is whitespace-separated `wN` tokens (id
/// N); latent `3j + 1` is 1.5 on token `100 + j` and 0 elsewhere, in any context.
pub struct TokenOracle;

impl autointerp::ActivationOracle for TokenOracle {
    fn tokenize(&self, text: &str) -> autointerp::Result<Vec<u32>> {
        Ok(text
            .split_whitespace()
            .map(|w| w.trim_start_matches('w').parse().unwrap())
            .collect())
    }

    fn str_tokens(&self, ids: &[u32]) -> autointerp::Result<Vec<String>> {
        str_tokens(ids)
    }

    fn activations(
        &self,
        latent: usize,
        sequences: &[Vec<u32>],
    ) -> autointerp::Result<Vec<Vec<f32>>> {
        let fires = 100 + (latent as u32 - 1) / 3;
        Ok(sequences
            .iter()
            .map(|s| {
                s.iter()
                    .map(|&t| if t == fires { 1.5 } else { 0.0 })
                    .collect()
            })
            .collect())
    }
}

/// The token latent `latent` fires on, as a string token.
pub fn token_of(latent: usize) -> String {
    format!(" w{}", 100 + (latent - 1) / 3)
}

/// Run options with scoring on, no progress bar, 16 latents at once.
pub fn run_opts(fingerprint: &str, fuzzing: bool) -> RunOptions {
    RunOptions {
        scoring: true,
        fuzzing,
        parallel_latents: 16,
        fingerprint: fingerprint.into(),
        progress: false,
    }
}

//! The resumable run: latents concurrently, each result appended to a JSONL file the moment it
//! is finished, finished latents skipped on restart.
//!
//! Invariants:
//! - a line is written with one `write` call and flushed before the next latent's result, so a
//!   killed run leaves whole lines and at most one torn last line, which the next run cuts off;
//! - a latent whose requests failed for good (`request_failure`) is retried by the next run;
//!   every other status is final;
//! - a results file is only continued by a run with the same fingerprint (configuration,
//!   prompts, model, data), recorded in `<out>.meta.json`.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::client::Usage;
use crate::data::LatentExamples;
use crate::judge::{Failure, Judge};
use crate::score::{DetectionScores, score_predictions};

/// How a latent's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatentStatus {
    /// Explained (and scored when asked).
    Ok,
    /// Never active on the corpus: nothing to explain.
    Dead,
    /// A reply could not be parsed (recorded, final).
    ParseFailure,
    /// A request failed after all retries (retried by the next run).
    RequestFailure,
    /// The model or SAE failed on a written sequence (recorded, final).
    ModelFailure,
}

/// One latent's result: one line of the results JSONL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatentResult {
    /// The latent's index.
    pub latent: usize,
    /// How it ended.
    pub status: LatentStatus,
    /// The explanation (parsed).
    pub explanation: Option<String>,
    /// The explainer's raw reply.
    pub raw_explanation: Option<String>,
    /// 1-based example numbers predicted active.
    pub predictions: Option<Vec<usize>>,
    /// 1-based numbers of the examples that are active.
    pub correct_seqs: Vec<usize>,
    /// The tutorial's score (accuracy).
    pub score: Option<f64>,
    /// All detection scores.
    pub detection: Option<DetectionScores>,
    /// Fuzzing scores (real vs decoy highlighting), when asked.
    pub fuzzing: Option<DetectionScores>,
    /// What failed, when something did.
    pub failure: Option<Failure>,
    /// Tokens used by requests sent for this latent.
    pub usage: Usage,
    /// Requests sent.
    pub requests_sent: u32,
    /// Requests answered from the cache.
    pub requests_cached: u32,
}

/// Options of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Score explanations by detection.
    pub scoring: bool,
    /// Score explanations by fuzzing too.
    pub fuzzing: bool,
    /// Latents in progress at once (requests are limited by the backend).
    pub parallel_latents: usize,
    /// Identifies the configuration; a results file from another is refused.
    pub fingerprint: String,
    /// Show a progress bar.
    pub progress: bool,
}

/// Prices per million tokens, to report a run's cost.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Pricing {
    /// USD per million prompt tokens.
    pub input_per_million: f64,
    /// USD per million completion tokens.
    pub output_per_million: f64,
}

impl Pricing {
    /// gpt-4o-mini's list price.
    pub const GPT_4O_MINI: Self = Self {
        input_per_million: 0.15,
        output_per_million: 0.60,
    };

    /// The cost of `usage` in USD.
    pub fn cost(&self, usage: Usage) -> f64 {
        (usage.prompt_tokens as f64 * self.input_per_million
            + usage.completion_tokens as f64 * self.output_per_million)
            / 1e6
    }
}

/// What a run did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    /// Every latent's result (finished earlier or now), by latent.
    pub results: Vec<LatentResult>,
    /// Latents taken from an earlier run's file.
    pub resumed: usize,
    /// Tokens used by requests this run sent.
    pub usage: Usage,
    /// Requests this run sent.
    pub requests_sent: u64,
    /// Requests this run answered from the cache.
    pub requests_cached: u64,
}

/// The sidecar holding the fingerprint of the run that wrote `out`.
pub fn meta_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".meta.json");
    PathBuf::from(s)
}

/// A per-latent result that a resumable run streams to JSONL.
pub trait Resumable: Serialize + serde::de::DeserializeOwned {
    /// The latent it is about.
    fn latent(&self) -> usize;
    /// Whether it is final; a non-final result (a request that failed for good) is redone by
    /// the next run.
    fn is_final(&self) -> bool;
}

impl Resumable for LatentResult {
    fn latent(&self) -> usize {
        self.latent
    }
    fn is_final(&self) -> bool {
        self.status != LatentStatus::RequestFailure
    }
}

/// Reads finished results from `out`, cutting a torn last line and dropping
/// `request_failure` lines (they are redone). Returns them by latent.
pub fn read_results(out: &Path) -> crate::Result<Vec<LatentResult>> {
    read_lines(out)
}

/// Reads the final results of a resumable run from `out` (a torn last line is cut, non-final
/// results are dropped, the last line for a latent wins), by latent.
pub fn read_lines<T: Resumable>(out: &Path) -> crate::Result<Vec<T>> {
    let text = match std::fs::read_to_string(out) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(crate::AutoInterpError::io(out, e)),
    };
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    let mut by: std::collections::BTreeMap<usize, T> = Default::default();
    for (i, line) in complete.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: T = serde_json::from_str(line).map_err(|e| crate::AutoInterpError::Corrupt {
            path: out.to_path_buf(),
            line: i + 1,
            message: e.to_string(),
        })?;
        by.insert(r.latent(), r);
    }
    Ok(by.into_values().filter(Resumable::is_final).collect())
}

fn write_lines<T: Serialize>(out: &Path, results: &[T]) -> crate::Result<()> {
    let mut buf = Vec::new();
    for r in results {
        serde_json::to_writer(&mut buf, r).map_err(|e| crate::AutoInterpError::Corrupt {
            path: out.to_path_buf(),
            line: 0,
            message: e.to_string(),
        })?;
        buf.push(b'\n');
    }
    Ok(sae_core::atomic::write(out, &buf)?)
}

/// Explains (and scores) one latent.
pub async fn run_latent<J: Judge>(
    judge: &J,
    ex: &LatentExamples,
    opts: &RunOptions,
) -> LatentResult {
    let correct_seqs: Vec<usize> = ex
        .scoring_truth()
        .iter()
        .enumerate()
        .filter(|(_, t)| **t)
        .map(|(i, _)| i + 1)
        .collect();
    let mut r = LatentResult {
        latent: ex.latent,
        status: LatentStatus::Ok,
        explanation: None,
        raw_explanation: None,
        predictions: None,
        correct_seqs,
        score: None,
        detection: None,
        fuzzing: None,
        failure: None,
        usage: Usage::default(),
        requests_sent: 0,
        requests_cached: 0,
    };
    if ex.is_dead() {
        r.status = LatentStatus::Dead;
        return r;
    }
    let fail = |r: &mut LatentResult, f: Failure| {
        r.status = match f {
            Failure::Parse { .. } => LatentStatus::ParseFailure,
            Failure::Request { .. } => LatentStatus::RequestFailure,
            Failure::Model { .. } => LatentStatus::ModelFailure,
        };
        r.failure = Some(f);
    };
    let explanation = match judge.explain(ex).await {
        Ok(j) => {
            r.usage += j.usage;
            r.requests_sent += j.sent;
            r.requests_cached += j.cached;
            r.raw_explanation = Some(j.raw);
            j.value
        }
        Err(f) => {
            if let Failure::Parse { raw, .. } = &f {
                r.raw_explanation = Some(raw.clone());
            }
            fail(&mut r, f);
            return r;
        }
    };
    r.explanation = Some(explanation.clone());
    if opts.scoring && !ex.scoring.is_empty() {
        match judge.detect(&explanation, &ex.scoring).await {
            Ok(j) => {
                r.usage += j.usage;
                r.requests_sent += j.sent;
                r.requests_cached += j.cached;
                let s = score_predictions(&j.value, &ex.scoring_truth());
                r.score = Some(s.accuracy);
                r.detection = Some(s);
                r.predictions = Some(j.value);
            }
            Err(f) => {
                fail(&mut r, f);
                return r;
            }
        }
    }
    if opts.fuzzing && !ex.fuzzing.is_empty() {
        let (examples, truth): (Vec<_>, Vec<bool>) = ex.fuzzing.iter().cloned().unzip();
        match judge.fuzz(&explanation, &examples).await {
            Ok(j) => {
                r.usage += j.usage;
                r.requests_sent += j.sent;
                r.requests_cached += j.cached;
                r.fuzzing = Some(score_predictions(&j.value, &truth));
            }
            Err(f) => fail(&mut r, f),
        }
    }
    r
}

/// Runs every latent of `examples` not already finished in `out`, appending each result as it
/// finishes.
pub async fn run<J: Judge>(
    judge: &J,
    examples: &[LatentExamples],
    out: &Path,
    opts: &RunOptions,
) -> crate::Result<RunSummary> {
    let (results, resumed) = run_resumable(examples, out, opts, "autointerp", |ex| {
        run_latent(judge, ex, opts)
    })
    .await?;
    let new = results.iter().filter(|r| r.fresh);
    let (mut usage, mut sent, mut cached) = (Usage::default(), 0u64, 0u64);
    for r in new {
        usage += r.value.usage;
        sent += u64::from(r.value.requests_sent);
        cached += u64::from(r.value.requests_cached);
    }
    Ok(RunSummary {
        results: results.into_iter().map(|r| r.value).collect(),
        resumed,
        usage,
        requests_sent: sent,
        requests_cached: cached,
    })
}

/// A result of [`run_resumable`], and whether this run produced it.
#[derive(Debug, Clone)]
pub struct Streamed<T> {
    /// The result.
    pub value: T,
    /// Made by this run (not read back from an earlier one).
    pub fresh: bool,
}

/// [`crate::AutoInterpError::ConfigMismatch`] when `out` exists and its record names another
/// run's fingerprint (nothing to refuse when there is no record yet). [`run_resumable`] checks
/// under the output's lock; workflows call it first too, before any costly work.
pub fn refuse_other_run(out: &Path, fingerprint: &str) -> crate::Result<()> {
    let meta = meta_path(out);
    let text = match std::fs::read_to_string(&meta) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(crate::AutoInterpError::io(&meta, e)),
    };
    let found = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["fingerprint"].as_str().map(str::to_string))
        .unwrap_or_default();
    if found != fingerprint && out.exists() {
        return Err(crate::AutoInterpError::ConfigMismatch {
            path: out.to_path_buf(),
            expected: fingerprint.to_string(),
            found,
        });
    }
    Ok(())
}

/// The resumable loop under [`run`]: for every latent of `examples` not finished in `out`,
/// `work(latent)` (up to `opts.parallel_latents` at once), each result appended to `out` and
/// flushed as it finishes. Refuses a file written under another fingerprint (kept in
/// `<out>.meta.json`). Returns every result by latent and how many were resumed.
pub async fn run_resumable<'e, T, F, Fut>(
    examples: &'e [LatentExamples],
    out: &Path,
    opts: &RunOptions,
    what: &str,
    work: F,
) -> crate::Result<(Vec<Streamed<T>>, usize)>
where
    T: Resumable,
    F: Fn(&'e LatentExamples) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    if opts.parallel_latents == 0 {
        return Err(crate::AutoInterpError::invalid(
            "parallel latents",
            "at least 1",
            0,
        ));
    }
    // One run per results file.
    let _lock = sae_core::lock::OutputLock::for_file(out)?;
    let meta = meta_path(out);
    let all_earlier: Vec<T> = read_lines::<T>(out)?;
    // Reads the record once: another run's fingerprint or an unreadable record is an error.
    refuse_other_run(out, &opts.fingerprint)?;
    if !all_earlier.is_empty() && !meta.exists() {
        return Err(crate::AutoInterpError::MissingRunRecord {
            path: out.to_path_buf(),
            meta,
        });
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| crate::AutoInterpError::io(dir, e))?;
    }
    sae_core::atomic::write(
        &meta,
        serde_json::json!({ "fingerprint": opts.fingerprint })
            .to_string()
            .as_bytes(),
    )?;

    // Rewrite the file with exactly the finished lines (drops a torn line and failures), those
    // of latents outside this request included: a run on a subset never loses the others.
    write_lines(out, &all_earlier)?;
    let wanted: std::collections::BTreeSet<usize> = examples.iter().map(|e| e.latent).collect();
    let earlier: Vec<T> = all_earlier
        .into_iter()
        .filter(|r| wanted.contains(&r.latent()))
        .collect();
    let done: std::collections::BTreeSet<usize> = earlier.iter().map(Resumable::latent).collect();
    let todo: Vec<&LatentExamples> = examples
        .iter()
        .filter(|e| !done.contains(&e.latent))
        .collect();
    let resumed = earlier.len();
    if resumed > 0 {
        tracing::info!(
            resumed,
            remaining = todo.len(),
            "{what}: resuming from {}",
            out.display()
        );
    }
    let bar = if opts.progress {
        let b = indicatif::ProgressBar::new(todo.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(&format!(
                "{{spinner}} {what}: {{pos}}/{{len}} latents [{{elapsed_precise}}<{{eta_precise}}]"
            ))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    // Results are appended (each line flushed as it finishes); a torn last line is cut on resume.
    #[allow(clippy::disallowed_methods)]
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(out)
        .map_err(|e| crate::AutoInterpError::io(out, e))?;
    let mut results: Vec<Streamed<T>> = earlier
        .into_iter()
        .map(|value| Streamed {
            value,
            fresh: false,
        })
        .collect();
    let mut stream = futures::stream::iter(todo)
        .map(work)
        .buffer_unordered(opts.parallel_latents);
    while let Some(r) = stream.next().await {
        let mut line = serde_json::to_vec(&r).map_err(|e| crate::AutoInterpError::Corrupt {
            path: out.to_path_buf(),
            line: 0,
            message: e.to_string(),
        })?;
        line.push(b'\n');
        file.write_all(&line)
            .and_then(|()| file.flush())
            .map_err(|e| crate::AutoInterpError::io(out, e))?;
        bar.inc(1);
        results.push(Streamed {
            value: r,
            fresh: true,
        });
    }
    bar.finish_and_clear();
    results.sort_by_key(|r| r.value.latent());
    Ok((results, resumed))
}

/// The random-explanation baseline: each latent's scoring set judged against another latent's
/// explanation (a seeded derangement of the finished explanations). Returns
/// `(latent, explanation used, scores)`.
pub async fn random_explanation_baseline<J: Judge>(
    judge: &J,
    examples: &[LatentExamples],
    results: &[LatentResult],
    seed: u64,
) -> Vec<(usize, String, Option<DetectionScores>)> {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let explained: Vec<(usize, String)> = results
        .iter()
        .filter_map(|r| r.explanation.clone().map(|e| (r.latent, e)))
        .collect();
    if explained.len() < 2 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..explained.len()).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    order.shuffle(&mut rng);
    // Rotate the shuffled order by one: a derangement.
    let mut out = Vec::new();
    for k in 0..order.len() {
        let (latent, _) = &explained[order[k]];
        let (_, other) = &explained[order[(k + 1) % order.len()]];
        let Some(ex) = examples.iter().find(|e| e.latent == *latent) else {
            continue;
        };
        let s = match judge.detect(other, &ex.scoring).await {
            Ok(j) => Some(score_predictions(&j.value, &ex.scoring_truth())),
            Err(_) => None,
        };
        out.push((*latent, other.clone(), s));
    }
    out.sort_by_key(|x| x.0);
    out
}

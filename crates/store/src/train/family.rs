//! Training several SAEs (a family of widths) from the same batches in one pass over the data,
//! with checkpoints that survive interruption.

use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use sae_core::burn::tensor::Device;

use crate::batches::BatchSource;
use crate::error::{Result, StoreError};
use crate::train::config::TrainConfig;
use crate::train::trainer::{StepMetrics, Trainer};

/// How a family run behaves.
#[derive(Debug, Clone)]
pub struct FamilyOptions {
    /// Steps to train in total (a resumed run continues to this count).
    pub steps: usize,
    /// Where checkpoints and `metrics.jsonl` go (`None`: nowhere, no resumption).
    pub run_dir: Option<PathBuf>,
    /// Steps between checkpoints.
    pub checkpoint_every: usize,
    /// Steps between metric lines (log and `metrics.jsonl`).
    pub log_every: usize,
    /// Show a progress bar.
    pub progress: bool,
}

impl Default for FamilyOptions {
    fn default() -> Self {
        Self {
            steps: 1000,
            run_dir: None,
            checkpoint_every: 500,
            log_every: 50,
            progress: false,
        }
    }
}

const CHECKPOINT: &str = "checkpoint";
/// The next checkpoint while it is written, and the previous one while it is swapped out: hidden,
/// as every temporary (a killed run's are not outputs; `checkpoint.tmp` / `checkpoint.old`, the
/// names before 2026-12-06, are still read and cleaned).
const WRITING: &str = ".checkpoint.tmp";
const SWAPPED: &str = ".checkpoint.old";
const LEGACY: [&str; 2] = ["checkpoint.tmp", "checkpoint.old"];
const REQUEST: &str = "request.json";
const METRICS: &str = "metrics.jsonl";

/// What a family run is asked to do; recorded in the run directory when it starts, and a
/// resumed run must ask for exactly the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyRequest {
    /// One configuration per SAE, in order.
    pub configs: Vec<TrainConfig>,
    /// Everything else that decides the result (data, batching, shuffling), as the caller
    /// describes it.
    pub data: serde_json::Value,
}

/// The trainers of a run directory: restored from its latest checkpoint when there is one (after
/// checking that `request` equals the recorded one), otherwise fresh, with `request` recorded.
///
/// # Errors
/// [`StoreError::ResumeMismatch`] listing every setting that differs from the recorded run;
/// errors of reading the checkpoint or building the trainers.
pub fn start_or_resume_family(
    run_dir: &Path,
    request: &FamilyRequest,
    device: &Device,
) -> Result<Vec<Trainer>> {
    std::fs::create_dir_all(run_dir).map_err(|e| StoreError::io(run_dir, e))?;
    let req_path = run_dir.join(REQUEST);
    let requested = serde_json::to_value(request).map_err(|e| StoreError::Json {
        path: req_path.clone(),
        message: e.to_string(),
    })?;
    let recorded: Option<serde_json::Value> = match std::fs::read_to_string(&req_path) {
        Ok(text) => Some(serde_json::from_str(&text).map_err(|e| StoreError::Json {
            path: req_path.clone(),
            message: e.to_string(),
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(StoreError::io(&req_path, e)),
    };
    let resumed = resume_family(run_dir, device)?;
    // A checkpoint without a request record (older runs): its configurations are the record.
    let recorded = match (recorded, &resumed) {
        (Some(r), _) => Some(r),
        (None, Some(t)) => Some(serde_json::json!({
            "configs": t.iter().map(|t| t.config().clone()).collect::<Vec<_>>(),
            "data": request.data,
        })),
        (None, None) => None,
    };
    if let Some(recorded) = &recorded {
        let differences = sae_core::diff::json_differences(recorded, &requested);
        if !differences.is_empty() {
            return Err(StoreError::ResumeMismatch {
                path: run_dir.to_path_buf(),
                differences,
            });
        }
    }
    if let Some(trainers) = resumed {
        if trainers.len() != request.configs.len() {
            return Err(StoreError::ResumeMismatch {
                path: run_dir.to_path_buf(),
                differences: vec![format!(
                    "checkpoint holds {} SAEs, requested {}",
                    trainers.len(),
                    request.configs.len()
                )],
            });
        }
        return Ok(trainers);
    }
    let json = serde_json::to_vec_pretty(&requested).map_err(|e| StoreError::Json {
        path: req_path.clone(),
        message: e.to_string(),
    })?;
    sae_core::atomic::write(&req_path, &json)?;
    request
        .configs
        .iter()
        .map(|c| Trainer::new(c.clone(), device))
        .collect()
}

/// Keeps the lines of `metrics.jsonl` up to `step` (those a killed run wrote after its last
/// checkpoint are written again by the resumed run).
fn truncate_metrics(path: &Path, step: usize) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    let mut kept = String::new();
    for line in text.lines() {
        let s = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("step").and_then(serde_json::Value::as_u64));
        match s {
            Some(s) if s as usize <= step => {
                kept.push_str(line);
                kept.push('\n');
            }
            // A torn last line (killed mid-write) or a later step: dropped.
            _ => {}
        }
    }
    if kept.len() != text.len() {
        sae_core::atomic::write(path, kept.as_bytes())?;
    }
    Ok(())
}

/// The latest complete checkpoint of a run directory, if any.
pub fn latest_checkpoint(run_dir: &Path) -> Option<PathBuf> {
    [CHECKPOINT, SWAPPED, LEGACY[1]]
        .iter()
        .map(|n| run_dir.join(n))
        .find(|p| p.join("complete").exists())
}

/// Restores every trainer of a family from a run directory's latest checkpoint.
pub fn resume_family(run_dir: &Path, device: &Device) -> Result<Option<Vec<Trainer>>> {
    let Some(dir) = latest_checkpoint(run_dir) else {
        return Ok(None);
    };
    let mut trainers = Vec::new();
    let mut i = 0;
    while dir.join(format!("trainer-{i}")).is_dir() {
        trainers.push(Trainer::load_checkpoint(
            &dir.join(format!("trainer-{i}")),
            device,
        )?);
        i += 1;
    }
    Ok(Some(trainers))
}

// Swaps whole checkpoint directories (each file in them written atomically) by renames.
#[allow(clippy::disallowed_methods)]
fn save_family(run_dir: &Path, trainers: &mut [Trainer]) -> Result<()> {
    let remove = |d: &Path| -> Result<()> {
        if d.exists() {
            std::fs::remove_dir_all(d).map_err(|e| StoreError::io(d, e))?;
        }
        Ok(())
    };
    let tmp = run_dir.join(WRITING);
    remove(&tmp)?;
    for (i, t) in trainers.iter_mut().enumerate() {
        t.save_checkpoint(&tmp.join(format!("trainer-{i}")))?;
    }
    sae_core::atomic::write(tmp.join("complete"), b"")?;
    let cur = run_dir.join(CHECKPOINT);
    let old = run_dir.join(SWAPPED);
    remove(&old)?;
    if cur.exists() {
        std::fs::rename(&cur, &old).map_err(|e| StoreError::io(&cur, e))?;
    }
    std::fs::rename(&tmp, &cur).map_err(|e| StoreError::io(&tmp, e))?;
    remove(&old)?;
    for legacy in LEGACY {
        remove(&run_dir.join(legacy))?;
    }
    Ok(())
}

/// Trains every trainer on each batch of `source` until `opts.steps`. Trainers restored from a
/// checkpoint (all at the same step) continue where they stopped: that many batches are
/// skipped first, so a deterministic source gives the same result as an uninterrupted run.
/// `on_metrics` sees every logged step. Returns the last metrics of each trainer (those of the
/// checkpoint when nothing was left to train).
pub fn train_family(
    source: &mut dyn BatchSource,
    trainers: &mut [Trainer],
    opts: &FamilyOptions,
    mut on_metrics: impl FnMut(&[StepMetrics]),
) -> Result<Vec<StepMetrics>> {
    let Some(first) = trainers.first() else {
        return Ok(Vec::new());
    };
    let start = first.steps();
    if let Some(t) = trainers.iter().find(|t| t.steps() != start) {
        return Err(StoreError::invalid(
            "trainer steps",
            format!("all trainers at step {start}"),
            t.steps(),
        ));
    }
    if let Some(t) = trainers.iter().find(|t| t.config().d_in != source.d_in()) {
        return Err(StoreError::Shape {
            what: "trainer d_in vs activations".into(),
            expected: vec![source.d_in()],
            found: vec![t.config().d_in],
        });
    }
    let device = first.device().clone();
    if trainers.iter().any(|t| t.device() != &device) {
        return Err(StoreError::invalid(
            "trainers",
            "one device for the whole family",
            "trainers on different devices",
        ));
    }
    for _ in 0..start {
        if source.next_batch()?.is_none() {
            return Err(StoreError::invalid(
                "resume point",
                "within the data",
                format!("step {start}"),
            ));
        }
    }
    if let Some(d) = &opts.run_dir {
        std::fs::create_dir_all(d).map_err(|e| StoreError::io(d, e))?;
        truncate_metrics(&d.join(METRICS), start)?;
    }
    let mut log = match &opts.run_dir {
        Some(d) => {
            let p = d.join(METRICS);
            // An append-only log, not an output file: a torn last line is dropped on resume
            // (`truncate_metrics`).
            #[allow(clippy::disallowed_methods)]
            let opened = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .map_err(|e| StoreError::io(&p, e))?;
            Some(opened)
        }
        None => None,
    };
    let bar = if opts.progress {
        let b = ProgressBar::new(opts.steps as u64);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} training {pos}/{len} steps [{elapsed_precise}<{eta_precise}] {per_sec} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.set_position(start as u64);
        b
    } else {
        ProgressBar::hidden()
    };
    let mut last: Vec<StepMetrics> = trainers.iter().filter_map(Trainer::last_metrics).collect();
    if last.len() != trainers.len() {
        last.clear();
    }
    for step in start..opts.steps {
        let Some(batch) = source.next_batch()? else {
            tracing::warn!(step, "the data ran out before the last step");
            break;
        };
        // One upload per step for the whole family (the trainers share a device), after each
        // trainer has checked the host batch and, on the first, estimated its scaling.
        let mut rows = 0;
        for t in trainers.iter_mut() {
            rows = t.prepare(&batch)?;
        }
        let x = sae_core::device::tensor_from_vec(batch, [rows, source.d_in()], &device);
        for t in trainers.iter_mut() {
            t.step_uploaded(x.clone())?;
        }
        let done = step + 1;
        let log_now = done % opts.log_every.max(1) == 0 || done == opts.steps;
        let checkpoint_now = opts.run_dir.is_some()
            && (done % opts.checkpoint_every.max(1) == 0 || done == opts.steps);
        if log_now || checkpoint_now {
            // The only reads of a run's steps (each a synchronisation on a GPU): the metrics,
            // which also catch a divergence before a checkpoint could keep it.
            last = read_metrics(trainers)?.unwrap_or_default();
        }
        if log_now {
            on_metrics(&last);
            if let Some(m) = last.first() {
                bar.set_message(format!(
                    "mse {:.4} ev {:.3} l0 {:.1} dead {:.3}",
                    m.mse, m.explained_variance, m.l0, m.dead_fraction
                ));
            }
            tracing::debug!(step = done, ?last, "training metrics");
            if let Some(f) = log.as_mut() {
                let line = serde_json::json!({ "step": done, "saes": last });
                writeln!(f, "{line}").map_err(|e| StoreError::io(METRICS, e))?;
            }
        }
        if let Some(d) = &opts.run_dir
            && checkpoint_now
        {
            save_family(d, trainers)?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    // A run whose data ran out between logged steps reads its last step here.
    Ok(read_metrics(trainers)?.unwrap_or(last))
}

/// Every trainer's last metrics ([`Trainer::metrics`]: one read each); `None` before any step.
fn read_metrics(trainers: &mut [Trainer]) -> Result<Option<Vec<StepMetrics>>> {
    trainers.iter_mut().map(Trainer::metrics).collect()
}

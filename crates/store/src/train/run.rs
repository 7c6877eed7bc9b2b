//! `train-sae` as one call: a family of SAEs trained together from an activation cache, saved in
//! SAELens's format, optionally evaluated, resumable from the last checkpoint.

use std::path::{Path, PathBuf};

use gpt2_gemma_models::{ModelSource, Processing};
use sae_core::SaeMetadata;
use sae_core::burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::cache::ActivationCacheDir;
use crate::error::{Result, StoreError};
use crate::eval::{EvalConfig, SaeEvaluation, evaluate_sae};
use crate::train::family::{FamilyOptions, FamilyRequest, start_or_resume_family, train_family};
use crate::train::{StepMetrics, TrainArchitecture, TrainConfig, Trainer};
use crate::{CacheBatches, TextSource, TokenWindows};

/// How a family is trained (the defaults are `sae-geometry train-sae`'s).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainRunConfig {
    /// The objective (and its k or L1 coefficient).
    pub architecture: TrainArchitecture,
    /// Widths (d_sae) trained together from the same batches.
    pub widths: Vec<usize>,
    /// Training steps (default 1000).
    pub steps: usize,
    /// Tokens per batch (SAELens's train_batch_size_tokens; default 4096).
    pub batch_size: usize,
    /// Shuffle buffer in batches (default 16).
    pub buffer_batches: usize,
    /// Adam's learning rate (default 3e-4).
    pub lr: f64,
    /// Learning-rate warm-up steps (default 0).
    pub lr_warm_up_steps: usize,
    /// Linear decay to zero over the last steps (default 0).
    pub lr_decay_steps: usize,
    /// Scale activations to an average norm of √d_in (folded into the saved weights).
    pub normalize_activations: bool,
    /// Subtract b_dec from the input before encoding.
    pub apply_b_dec_to_input: bool,
    /// Steps without firing after which a latent counts as dead (default 1000).
    pub dead_feature_window: usize,
    /// Steps between checkpoints (default 200).
    pub checkpoint_every: usize,
    /// Seed of initialisation (width i gets seed + i) and shuffling (default 42).
    pub seed: u64,
    /// Steps between metric reports to `on_metrics` (default 50).
    pub log_every: usize,
    /// Draw a progress bar.
    pub progress: bool,
    /// Matryoshka levels of every SAE ([`TrainConfig::matryoshka_widths`]); empty: each SAE's
    /// levels are the family's narrower widths, so the width-2560 SAE of a 640/1280/2560 family
    /// nests 640 and 1280 prefixes.
    pub matryoshka_widths: Vec<usize>,
}

impl TrainRunConfig {
    /// `architecture` at `widths`, every other option at its default.
    pub fn new(architecture: TrainArchitecture, widths: Vec<usize>) -> Self {
        Self {
            architecture,
            widths,
            steps: 1000,
            batch_size: 4096,
            buffer_batches: 16,
            lr: 3e-4,
            lr_warm_up_steps: 0,
            lr_decay_steps: 0,
            normalize_activations: false,
            apply_b_dec_to_input: false,
            dead_feature_window: 1000,
            checkpoint_every: 200,
            seed: 42,
            log_every: 50,
            progress: false,
            matryoshka_widths: Vec::new(),
        }
    }

    /// The per-width training configurations.
    pub fn train_configs(&self, d_in: usize) -> Vec<TrainConfig> {
        self.widths
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let mut c = TrainConfig::new(d_in, w, self.architecture, self.steps);
                c.lr = self.lr;
                c.lr_warm_up_steps = self.lr_warm_up_steps;
                c.lr_decay_steps = self.lr_decay_steps;
                c.normalize_activations = self.normalize_activations;
                c.apply_b_dec_to_input = self.apply_b_dec_to_input;
                c.dead_feature_window = self.dead_feature_window;
                c.seed = self.seed + i as u64;
                c.matryoshka_widths = if self.matryoshka_widths.is_empty() {
                    self.widths.iter().copied().filter(|&v| v < w).collect()
                } else {
                    self.matryoshka_widths.clone()
                };
                c.matryoshka_widths.sort_unstable();
                c.matryoshka_widths.dedup();
                c
            })
            .collect()
    }
}

/// Evaluation of each trained SAE (SAELens's `run_evals` metrics, CE loss recovered included)
/// on windows of a corpus, with the model the cache's manifest names.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainEval {
    /// The corpus.
    pub dataset: PathBuf,
    /// Windows evaluated.
    pub windows: usize,
    /// The GGUF file when the cache's model is gemma-3-270m (default: found automatically).
    pub gguf: Option<PathBuf>,
}

/// One trained SAE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedSae {
    /// Its width.
    pub d_sae: usize,
    /// Its architecture's SAELens name.
    pub architecture: String,
    /// Steps trained.
    pub steps: usize,
    /// Metrics of the last batch.
    pub last_batch: StepMetrics,
    /// The evaluation, when asked for.
    pub eval: Option<SaeEvaluation>,
    /// Where it was saved (`{architecture}-{width}/` under the output directory).
    pub dir: PathBuf,
}

/// What [`train_from_cache`] did (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainRun {
    /// The activation cache trained on.
    pub cache: PathBuf,
    /// Wall-clock seconds of the training loop (this run's part when resumed).
    pub seconds: f64,
    /// Steps per second.
    pub steps_per_second: f64,
    /// The SAEs, in width order as asked.
    pub saes: Vec<TrainedSae>,
}

/// Trains `config.widths` together on the cache at `cache` and saves each as a SAELens SAE under
/// `out/{architecture}-{width}/`, with `out/run/` (checkpoints, `metrics.jsonl`, the recorded
/// request) and `out/summary.json`. A rerun with the same settings resumes from the last
/// checkpoint; other settings are an error listing the differences. Holds `out`'s lock.
/// `on_metrics` receives each width's metrics every `log_every` steps.
///
/// # Errors
/// A cache that cannot be read, settings that differ from the recorded run, a cache that yields
/// no batch ([`StoreError::InvalidOption`] naming `cache`), and the evaluation's errors.
pub fn train_from_cache(
    cache: &Path,
    config: &TrainRunConfig,
    eval: Option<&TrainEval>,
    device: &Device,
    out: &Path,
    mut on_metrics: impl FnMut(&[StepMetrics]),
) -> Result<TrainRun> {
    let cache_dir = ActivationCacheDir::open(cache)?;
    let spec = cache_dir.manifest().spec.clone();
    let _lock = sae_core::lock::OutputLock::acquire(out)?;
    let run_dir = out.join("run");
    let request = FamilyRequest {
        configs: config.train_configs(spec.d_in),
        data: serde_json::json!({
            "cache_spec_hash": cache_dir.manifest().spec_hash,
            "batch_size": config.batch_size,
            "buffer_batches": config.buffer_batches,
            "seed": config.seed,
        }),
    };
    let mut trainers = start_or_resume_family(&run_dir, &request, device)?;
    if let Some(step) = trainers.first().map(Trainer::steps).filter(|&s| s > 0) {
        tracing::info!(step, "resuming from the last checkpoint");
    }
    let mut source = CacheBatches::new(
        &cache_dir,
        config.batch_size,
        config.batch_size * config.buffer_batches,
        0.5,
        config.seed,
        usize::MAX,
    )?;
    let opts = FamilyOptions {
        steps: config.steps,
        run_dir: Some(run_dir),
        checkpoint_every: config.checkpoint_every,
        log_every: config.log_every,
        progress: config.progress,
    };
    let started = std::time::Instant::now();
    let last = train_family(&mut source, &mut trainers, &opts, &mut on_metrics)?;
    let seconds = started.elapsed().as_secs_f64();
    if last.len() != trainers.len() {
        return Err(StoreError::invalid(
            "cache",
            "at least one training batch",
            format!("{}: none", cache.display()),
        ));
    }
    let metadata = SaeMetadata {
        model_name: Some(spec.model.clone()),
        hook_name: Some(spec.hook.to_string()),
        prepend_bos: Some(spec.packing.begin_batch_token.is_some()),
        context_size: Some(spec.packing.context_size),
        dataset_path: Some(spec.dataset.clone()),
        ..SaeMetadata::default()
    };
    let eval_model = match eval {
        Some(e) => {
            let src: ModelSource = spec.model.parse().map_err(|m: String| {
                StoreError::invalid("cache manifest model", "a model name", m)
            })?;
            let hub = sae_core::HubClient::from_env().offline(true);
            Some((
                e,
                src.load(&hub, Processing::TransformerLens, e.gguf.as_deref(), device)?,
            ))
        }
        None => None,
    };
    let mut saes = Vec::with_capacity(trainers.len());
    for (t, m) in trainers.iter().zip(&last) {
        let sae = t.to_sae(metadata.clone())?;
        let dir = out.join(format!(
            "{}-{}",
            t.config().architecture.as_str(),
            t.config().d_sae
        ));
        sae.save(&dir)?;
        let evaluation = match &eval_model {
            Some((e, (model, tok))) => {
                let mut w =
                    TokenWindows::new(TextSource::from_path(&e.dataset, None)?, tok, spec.packing)?;
                let mut windows = Vec::new();
                while windows.len() < e.windows {
                    match w.next_window()? {
                        Some(x) => windows.push(x),
                        None => break,
                    }
                }
                let cfg = EvalConfig {
                    ignore_tokens: tok.special_ids(),
                    ..EvalConfig::default()
                };
                Some(evaluate_sae(model, &sae, spec.hook, &windows, &cfg)?)
            }
            None => None,
        };
        saes.push(TrainedSae {
            d_sae: t.config().d_sae,
            architecture: t.config().architecture.as_str().to_string(),
            steps: t.steps(),
            last_batch: *m,
            eval: evaluation,
            dir,
        });
    }
    let run = TrainRun {
        cache: cache.to_path_buf(),
        seconds,
        steps_per_second: last.first().map_or(0, |m| m.step) as f64 / seconds.max(1e-9),
        saes,
    };
    // Through a `Value`, whose map sorts its keys: the file's layout since it was first written.
    let text = serde_json::to_value(&run)
        .and_then(|v| serde_json::to_vec_pretty(&v))
        .map_err(|e| StoreError::Io {
            path: out.join("summary.json"),
            source: std::io::Error::other(e),
        })?;
    sae_core::atomic::write(out.join("summary.json"), text)?;
    Ok(run)
}

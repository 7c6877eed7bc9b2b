//! `sae-geometry train-sae`.

use std::path::PathBuf;

use activation_store::cache::ActivationCacheDir;
use activation_store::eval::{EvalConfig, SaeEvaluation, evaluate_sae};
use activation_store::train::family::{
    FamilyOptions, FamilyRequest, start_or_resume_family, train_family,
};
use activation_store::{
    CacheBatches, StepMetrics, TextSource, TokenWindows, TrainArchitecture, TrainConfig, Trainer,
};
use anyhow::Context;
use gpt2_gemma_models::ModelSource;
use sae_core::{ComputeDevice, SaeMetadata};

/// The training objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArchitectureArg {
    /// ReLU + L1 weighted by decoder norms (SAELens `standard`).
    Standard,
    /// k largest pre-activations per token (SAELens `topk`).
    Topk,
    /// k·batch largest pre-activations per batch, saved as JumpReLU (SAELens `batchtopk`).
    Batchtopk,
}

/// Arguments of `train-sae`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The activation cache to train on (made by `cache-activations`).
    #[arg(long)]
    pub cache: PathBuf,
    /// Architecture.
    #[arg(long, value_enum, default_value = "topk")]
    pub architecture: ArchitectureArg,
    /// Widths (d_sae) to train together from the same batches, comma-separated
    /// (e.g. 640,1280,2560,5120,10240).
    #[arg(long, value_delimiter = ',', required = true)]
    pub widths: Vec<usize>,
    /// Active latents per token (topk, batchtopk).
    #[arg(long, default_value_t = 32.0)]
    pub k: f64,
    /// L1 coefficient (standard).
    #[arg(long, default_value_t = 5.0)]
    pub l1_coefficient: f64,
    /// Steps over which the L1 coefficient warms up (standard).
    #[arg(long, default_value_t = 0)]
    pub l1_warm_up_steps: usize,
    /// AuxK loss weight for dead latents (topk, batchtopk).
    #[arg(long, default_value_t = 1.0 / 32.0)]
    pub aux_coefficient: f64,
    /// Adam learning rate.
    #[arg(long, default_value_t = 3e-4)]
    pub lr: f64,
    /// Learning-rate warm-up steps.
    #[arg(long, default_value_t = 0)]
    pub lr_warm_up_steps: usize,
    /// Linear decay to zero over the last steps.
    #[arg(long, default_value_t = 0)]
    pub lr_decay_steps: usize,
    /// Training steps.
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// Tokens per batch (SAELens's train_batch_size_tokens).
    #[arg(long, default_value_t = 4096)]
    pub batch_size: usize,
    /// Shuffle buffer, in batches.
    #[arg(long, default_value_t = 16)]
    pub buffer_batches: usize,
    /// Scale activations to an average norm of √d_in while training (SAELens's
    /// expected_average_only_in); folded into the saved weights.
    #[arg(long)]
    pub normalize_activations: bool,
    /// Subtract b_dec from the input before encoding.
    #[arg(long)]
    pub apply_b_dec_to_input: bool,
    /// Steps without firing after which a latent counts as dead.
    #[arg(long, default_value_t = 1000)]
    pub dead_feature_window: usize,
    /// Steps between checkpoints (an interrupted run resumes from the last one).
    #[arg(long, default_value_t = 200)]
    pub checkpoint_every: usize,
    /// Seed of initialisation and shuffling.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Evaluate each SAE on this corpus (CE loss recovered needs the model named in the cache's
    /// manifest; see --gguf).
    #[arg(long)]
    pub eval_dataset: Option<PathBuf>,
    /// Windows evaluated.
    #[arg(long, default_value_t = 64)]
    pub eval_windows: usize,
    /// The GGUF file when the cache's model is gemma-3-270m (default: found automatically).
    #[arg(long)]
    pub gguf: Option<PathBuf>,
    /// Compute device.
    #[arg(long, default_value = "cpu")]
    pub device: ComputeDevice,
    /// Output directory: one SAELens-format SAE per width (`{architecture}-{width}/`),
    /// `run/` (checkpoints, metrics.jsonl) and `summary.json`.
    #[arg(long)]
    pub out: PathBuf,
}

fn arch(args: &Args) -> TrainArchitecture {
    match args.architecture {
        ArchitectureArg::Standard => TrainArchitecture::Standard {
            l1_coefficient: args.l1_coefficient,
            l1_warm_up_steps: args.l1_warm_up_steps,
        },
        ArchitectureArg::Topk => TrainArchitecture::TopK {
            k: args.k.round() as usize,
            aux_coefficient: args.aux_coefficient,
        },
        ArchitectureArg::Batchtopk => TrainArchitecture::BatchTopK {
            k: args.k,
            aux_coefficient: args.aux_coefficient,
            threshold_lr: 0.01,
        },
    }
}

/// Runs `train-sae`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let device = args.device.burn_device()?;
    let cache = ActivationCacheDir::open(&args.cache)?;
    let spec = cache.manifest().spec.clone();
    let _lock = sae_core::lock::OutputLock::acquire(&args.out)?;
    let run_dir = args.out.join("run");
    let request = FamilyRequest {
        configs: args
            .widths
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let mut c = TrainConfig::new(spec.d_in, w, arch(&args), args.steps);
                c.lr = args.lr;
                c.lr_warm_up_steps = args.lr_warm_up_steps;
                c.lr_decay_steps = args.lr_decay_steps;
                c.normalize_activations = args.normalize_activations;
                c.apply_b_dec_to_input = args.apply_b_dec_to_input;
                c.dead_feature_window = args.dead_feature_window;
                c.seed = args.seed + i as u64;
                c
            })
            .collect(),
        data: serde_json::json!({
            "cache_spec_hash": cache.manifest().spec_hash,
            "batch_size": args.batch_size,
            "buffer_batches": args.buffer_batches,
            "seed": args.seed,
        }),
    };
    let mut trainers = start_or_resume_family(&run_dir, &request, &device)?;
    if let Some(step) = trainers.first().map(Trainer::steps).filter(|&s| s > 0) {
        tracing::info!(step, "resuming from the last checkpoint");
    }
    let mut source = CacheBatches::new(
        &cache,
        args.batch_size,
        args.batch_size * args.buffer_batches,
        0.5,
        args.seed,
        usize::MAX,
    )?;
    let opts = FamilyOptions {
        steps: args.steps,
        run_dir: Some(run_dir),
        checkpoint_every: args.checkpoint_every,
        log_every: 50,
        progress: true,
    };
    let started = std::time::Instant::now();
    let last = train_family(&mut source, &mut trainers, &opts, |m: &[StepMetrics]| {
        for (t, m) in m.iter().enumerate() {
            tracing::info!(
                sae = t,
                step = m.step,
                mse = m.mse,
                ev = m.explained_variance,
                l0 = m.l0,
                dead = m.dead_fraction
            );
        }
    })?;
    let secs = started.elapsed().as_secs_f64();
    let metadata = SaeMetadata {
        model_name: Some(spec.model.clone()),
        hook_name: Some(spec.hook.to_string()),
        prepend_bos: Some(spec.packing.begin_batch_token.is_some()),
        context_size: Some(spec.packing.context_size),
        dataset_path: Some(spec.dataset.clone()),
        ..SaeMetadata::default()
    };
    let eval_model = match &args.eval_dataset {
        Some(_) => {
            let src: ModelSource = spec.model.parse().map_err(anyhow::Error::msg)?;
            let hub = sae_core::HubClient::from_env().offline(true);
            Some(src.load(
                &hub,
                gpt2_gemma_models::Processing::TransformerLens,
                args.gguf.as_deref(),
                &device,
            )?)
        }
        None => None,
    };
    let mut summary = Vec::new();
    if last.len() != trainers.len() {
        anyhow::bail!("the cache yielded no training batch; nothing to save");
    }
    for (t, m) in trainers.iter().zip(&last) {
        let sae = t.to_sae(metadata.clone())?;
        let dir = args.out.join(format!(
            "{}-{}",
            t.config().architecture.as_str(),
            t.config().d_sae
        ));
        sae.save(&dir)
            .with_context(|| format!("saving {}", dir.display()))?;
        let eval: Option<SaeEvaluation> = match (&eval_model, &args.eval_dataset) {
            (Some((model, tok)), Some(path)) => {
                let mut w =
                    TokenWindows::new(TextSource::from_path(path, None)?, tok, spec.packing)?;
                let mut windows = Vec::new();
                while windows.len() < args.eval_windows {
                    match w.next_window()? {
                        Some(x) => windows.push(x),
                        None => break,
                    }
                }
                let config = EvalConfig {
                    ignore_tokens: tok.special_ids(),
                    ..EvalConfig::default()
                };
                Some(evaluate_sae(model, &sae, spec.hook, &windows, &config)?)
            }
            _ => None,
        };
        eprintln!(
            "d_sae {:>6}: mse {:.4}  explained variance {:.4}  L0 {:.1}  dead {:.3}{}  → {}",
            t.config().d_sae,
            m.mse,
            m.explained_variance,
            m.l0,
            m.dead_fraction,
            eval.as_ref().map(|e| format!("  CE recovered {:.4} (clean {:.3}, SAE {:.3}, zero {:.3}; eval EV {:.4}, L0 {:.1})", e.ce_loss_recovered, e.ce_clean, e.ce_with_sae, e.ce_zero_ablation, e.explained_variance, e.l0)).unwrap_or_default(),
            dir.display()
        );
        summary.push(serde_json::json!({
            "d_sae": t.config().d_sae,
            "architecture": t.config().architecture.as_str(),
            "steps": t.steps(),
            "last_batch": m,
            "eval": eval,
            "dir": dir,
        }));
    }
    let s = serde_json::json!({
        "cache": args.cache,
        "seconds": secs,
        "steps_per_second": last.first().map(|m| m.step).unwrap_or(0) as f64 / secs.max(1e-9),
        "saes": summary,
    });
    sae_core::atomic::write(
        args.out.join("summary.json"),
        &serde_json::to_vec_pretty(&s)?,
    )?;
    Ok(())
}

//! `sae-geometry train-sae`.

use std::path::PathBuf;

use activation_store::train::{TrainEval, TrainRunConfig, train_from_cache};
use activation_store::{StepMetrics, TrainArchitecture};
use sae_core::ComputeDevice;

/// The training objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArchitectureArg {
    /// ReLU + L1 weighted by decoder norms (SAELens `standard`).
    Standard,
    /// k largest pre-activations per token (SAELens `topk`).
    Topk,
    /// k·batch largest pre-activations per batch, saved as JumpReLU (SAELens `batchtopk`).
    Batchtopk,
    /// JumpReLU with trained thresholds, L0 penalty through a straight-through estimator
    /// (SAELens `jumprelu`, sparsity loss `step`).
    Jumprelu,
    /// BatchTopK with nested prefix reconstructions (SAELens `matryoshka_batchtopk`), saved as
    /// JumpReLU.
    MatryoshkaBatchtopk,
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
    /// Active latents per token (topk, batchtopk, matryoshka-batchtopk).
    #[arg(long, default_value_t = 32.0)]
    pub k: f64,
    /// L1 coefficient (standard).
    #[arg(long, default_value_t = 5.0)]
    pub l1_coefficient: f64,
    /// Steps over which the L1 coefficient warms up (standard).
    #[arg(long, default_value_t = 0)]
    pub l1_warm_up_steps: usize,
    /// L0 coefficient (jumprelu).
    #[arg(long, default_value_t = 1.0)]
    pub l0_coefficient: f64,
    /// Steps over which the L0 coefficient warms up (jumprelu).
    #[arg(long, default_value_t = 0)]
    pub l0_warm_up_steps: usize,
    /// Width of the straight-through estimator's rectangle kernel (jumprelu).
    #[arg(long, default_value_t = 0.05)]
    pub jumprelu_bandwidth: f64,
    /// Initial threshold (jumprelu).
    #[arg(long, default_value_t = 0.01)]
    pub jumprelu_init_threshold: f64,
    /// Matryoshka levels, comma-separated and increasing (matryoshka-batchtopk); default: the
    /// family's narrower widths.
    #[arg(long, value_delimiter = ',')]
    pub matryoshka_widths: Vec<usize>,
    /// AuxK loss weight for dead latents (topk, batchtopk, matryoshka-batchtopk).
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
        ArchitectureArg::Jumprelu => TrainArchitecture::JumpRelu {
            l0_coefficient: args.l0_coefficient,
            l0_warm_up_steps: args.l0_warm_up_steps,
            bandwidth: args.jumprelu_bandwidth,
            init_threshold: args.jumprelu_init_threshold,
        },
        ArchitectureArg::MatryoshkaBatchtopk => TrainArchitecture::MatryoshkaBatchTopK {
            k: args.k,
            aux_coefficient: args.aux_coefficient,
            threshold_lr: 0.01,
        },
    }
}

/// Runs `train-sae`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let device = args.device.burn_device()?;
    let config = TrainRunConfig {
        architecture: arch(&args),
        widths: args.widths.clone(),
        steps: args.steps,
        batch_size: args.batch_size,
        buffer_batches: args.buffer_batches,
        lr: args.lr,
        lr_warm_up_steps: args.lr_warm_up_steps,
        lr_decay_steps: args.lr_decay_steps,
        normalize_activations: args.normalize_activations,
        apply_b_dec_to_input: args.apply_b_dec_to_input,
        dead_feature_window: args.dead_feature_window,
        checkpoint_every: args.checkpoint_every,
        seed: args.seed,
        log_every: 50,
        progress: true,
        matryoshka_widths: args.matryoshka_widths.clone(),
    };
    let eval = args.eval_dataset.as_ref().map(|dataset| TrainEval {
        dataset: dataset.clone(),
        windows: args.eval_windows,
        gguf: args.gguf.clone(),
    });
    let run = train_from_cache(
        &args.cache,
        &config,
        eval.as_ref(),
        &device,
        &args.out,
        log_metrics,
    )?;
    for s in &run.saes {
        let m = &s.last_batch;
        eprintln!(
            "d_sae {:>6}: mse {:.4}  explained variance {:.4}  L0 {:.1}  dead {:.3}{}  → {}",
            s.d_sae,
            m.mse,
            m.explained_variance,
            m.l0,
            m.dead_fraction,
            s.eval.as_ref().map(|e| format!("  CE recovered {:.4} (clean {:.3}, SAE {:.3}, zero {:.3}; eval EV {:.4}, L0 {:.1})", e.ce_loss_recovered, e.ce_clean, e.ce_with_sae, e.ce_zero_ablation, e.explained_variance, e.l0)).unwrap_or_default(),
            s.dir.display()
        );
    }
    Ok(())
}

/// The per-step log lines (`--log info`).
pub fn log_metrics(metrics: &[StepMetrics]) {
    for (t, m) in metrics.iter().enumerate() {
        tracing::info!(
            sae = t,
            step = m.step,
            mse = m.mse,
            ev = m.explained_variance,
            l0 = m.l0,
            dead = m.dead_fraction
        );
    }
}

//! The `sae-geometry` CLI: one subcommand per file.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod absorption;
pub mod activation_dtypes;
pub mod autointerp;
pub mod autointerp_compare;
pub mod cache_activations;
pub mod corpus_args;
pub mod dashboard;
pub mod download;
pub mod eval_sae;
pub mod feature_splitting;
pub mod forward;
pub mod generate;
pub mod hdbscan;
pub mod latent_stats;
pub mod logit_enrichment;
pub mod logit_lens;
pub mod meta_sae;
pub mod model_args;
pub mod patch_scope;
pub mod registry;
pub mod sae_encode;
pub mod tokenize;
pub mod train_sae;
pub mod umap;

/// Find out what sparse-autoencoder latents mean.
#[derive(Debug, Parser)]
#[command(name = "sae-geometry", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log level filter (`error`, `warn`, `info`, `debug`, `trace`, or a tracing directive);
    /// `RUST_LOG` overrides it.
    #[arg(long, global = true, default_value = "info")]
    pub log: String,

    /// Matmul arithmetic on GPUs: `exact` (f32, the default; results match the CPU's) or
    /// `tf32` (TensorFloat-32 tensor cores, like PyTorch's allow_tf32: faster, ~1e-3 relative
    /// error). The CPU always computes exact f32.
    #[arg(
        long,
        global = true,
        env = "SAE_GEOMETRY_PRECISION",
        default_value = "exact"
    )]
    pub precision: sae_core::Precision,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Encode activations (.npy, rows × d_in) through an SAE into latent activations
    /// (rows × d_sae), optionally writing the reconstruction.
    SaeEncode(sae_encode::Args),
    /// List SAELens's pretrained releases, or the SAEs of one release.
    Registry(registry::Args),
    /// Run a model and save activations at hook points (.npy per hook) and the logits.
    Forward(forward::Args),
    /// Print a text's token ids as JSON.
    Tokenize(tokenize::Args),
    /// Fetch files of a hub repository into the HF cache (for offline work later); prints
    /// their paths.
    Download(download::Args),
    /// Continue a prompt (KV-cached; greedy or sampled).
    Generate(generate::Args),
    /// Cluster points (.npy) with HDBSCAN, the hdbscan library's semantics; labels as int64 .npy.
    Hdbscan(hdbscan::Args),
    /// Each latent's most boosted and suppressed tokens (top/bottom-k of W_dec · W_U), as JSONL.
    LogitLens(logit_lens::Args),
    /// Run a model over a corpus and cache activations at a hook (safetensors shards plus a
    /// manifest; resumable).
    CacheActivations(cache_activations::Args),
    /// What caching activations in bfloat16 or float16 costs at each hook: rounding error, and
    /// the model's CE loss, KL and top-1 agreement with the rounded activations put back.
    ActivationDtypes(activation_dtypes::Args),
    /// Train SAEs (standard, TopK, BatchTopK; several widths in one pass) on cached activations.
    TrainSae(train_sae::Args),
    /// One-pass latent statistics over cached activations: top-k windows, frequencies, quantile
    /// samples, random windows (mergeable across shards).
    LatentStats(latent_stats::Args),
    /// Train a meta-SAE on an SAE's decoder rows and decompose every latent into meta-latents.
    MetaSae(meta_sae::Args),
    /// UMAP (umap-learn's semantics) of points in a .npy file.
    Umap(umap::Args),
    /// The feature-splitting study: a 2-D UMAP of several SAEs' decoders (optionally HDBSCAN
    /// clusters on a 10-D UMAP), top tokens, descriptions and cross-width matches, as Parquet,
    /// CSV, JSON, an offline HTML plot and a PNG.
    FeatureSplitting(feature_splitting::Args),
    /// Explain latents (and score the explanations) through an OpenAI-compatible API, or with
    /// the offline explainer when none is configured; resumable JSONL results and a score table.
    Autointerp(Box<autointerp::Args>),
    /// Detection scores of unit populations (SAE latents, neurons, random latents) side by
    /// side on the same number of units, with their floors: CSV, JSON, HTML and PNG.
    AutointerpCompare(autointerp_compare::Args),
    /// Patch scoping: the model explains a latent patched into its residual stream at a
    /// placeholder; a sweep of scales in one batch, scale tuning, PNG and HTML plots.
    PatchScope(Box<patch_scope::Args>),
    /// Each latent's logit-weight moments (skewness, kurtosis) and token-set enrichment
    /// (hypergeometric and Mann–Whitney tests), as tables and a skewness × kurtosis plot.
    LogitEnrichment(logit_enrichment::Args),
    /// Offline latent dashboards: an HTML page per latent (top and quantile windows with
    /// per-token shading, activation histogram, logit lens, nearest latents, explanation) and an
    /// index page.
    Dashboard(Box<dashboard::Args>),
    /// Evaluate SAEs spliced into the model by SAELens's definitions: CE loss recovered, KL
    /// score, explained variance, cosine similarity, L2 ratio, L0/L1, dead and dense latents.
    EvalSae(Box<eval_sae::Args>),
    /// Feature absorption on the first-letter task (Chanin et al.): probes on the residual,
    /// k-sparse probing for each letter's main latents, SAEBench's full-absorption rate and
    /// absorption fraction per letter and per SAE.
    Absorption(Box<absorption::Args>),
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs one command given as arguments (the first is the program name), in this process:
/// how `cargo xtask` reproductions chain commands without spawning cargo.
pub fn run_from<I, T>(args: I) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::try_parse_from(args)?;
    sae_core::device::set_precision(cli.precision)?;
    dispatch(cli.command)
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::SaeEncode(a) => sae_encode::run(a),
        Command::Registry(a) => registry::run(a),
        Command::Forward(a) => forward::run(a),
        Command::Tokenize(a) => tokenize::run(a),
        Command::Download(a) => download::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Hdbscan(a) => hdbscan::run(a),
        Command::LogitLens(a) => logit_lens::run(a),
        Command::CacheActivations(a) => cache_activations::run(a),
        Command::ActivationDtypes(a) => activation_dtypes::run(a),
        Command::TrainSae(a) => train_sae::run(a),
        Command::LatentStats(a) => latent_stats::run(a),
        Command::MetaSae(a) => meta_sae::run(a),
        Command::Umap(a) => umap::run(a),
        Command::FeatureSplitting(a) => feature_splitting::run(a),
        Command::Autointerp(a) => autointerp::run(*a),
        Command::AutointerpCompare(a) => autointerp_compare::run(a),
        Command::PatchScope(a) => patch_scope::run(*a),
        Command::LogitEnrichment(a) => logit_enrichment::run(a),
        Command::Dashboard(a) => dashboard::run(*a),
        Command::EvalSae(a) => eval_sae::run(*a),
        Command::Absorption(a) => absorption::run(*a),
    }
}

/// Runs the CLI on the process's arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log);
    let result = sae_core::device::set_precision(cli.precision)
        .map_err(anyhow::Error::from)
        .and_then(|()| dispatch(cli.command));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

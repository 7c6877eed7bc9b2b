//! `cargo xtask`: project automation. See `cargo xtask --help`.

use clap::{Parser, Subcommand};

mod bench;
mod bench_absorption;
mod bench_autointerp;
mod bench_eval;
mod bench_families;
mod bench_gemma;
mod bench_gpt2;
mod bench_hdbscan;
mod bench_latent_stats;
mod bench_logit_enrichment;
mod bench_logit_lens;
mod bench_meta_sae;
mod bench_scoping;
mod bench_store;
mod bench_umap;
mod build_cuda;
mod cargo;
mod check_gemma;
mod check_gpt2;
mod check_splitting;
mod fixture_servers;
mod fuzz;
mod gpu_check;
mod reproduce;
mod reproduce_analyses;
mod study_architectures;
mod test;
mod train_family;

/// Project automation for sae-geometry.
#[derive(Debug, Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The test suite as the README gives it: gets the offline model and headless Chromium when
    /// they are missing, then `cargo test --workspace` (arguments after `--` go to cargo test).
    Test(test::Args),
    /// Start the tests' HF-hub and Neuronpedia protocol servers for manual runs; writes
    /// HF_ENDPOINT and NEURONPEDIA_BASE_URL lines to --port-file once they listen.
    FixtureServers(fixture_servers::Args),
    /// Run a whole-capability benchmark beside its Python reference and print the ratio.
    Bench(bench::Args),
    /// Check a full-size random-weight GPT-2 (from gen_fixtures.py --full-size) against
    /// transformers and TransformerLens.
    CheckGpt2(check_gpt2::Args),
    /// Check gemma-3-270m loaded from GGUF against transformers' loading of the same file
    /// (reference from crates/models/tests/fixtures/gemma3-gguf/gen_reference.py).
    CheckGemmaGguf(check_gemma::Args),
    /// Cache gemma-3-270m layer-6 residuals from a corpus and train the TopK SAE family of widths
    /// 640·{1, 2, 4, 8, 16} with evaluation (resumable; the numbers in docs/BENCHMARKS.md).
    TrainGemmaFamily(train_family::Args),
    /// The tutorial's feature-splitting study end to end: online with GPT-2 small and the
    /// feature-splitting SAEs, or offline (the default without the hub) with gemma-3-270m and a
    /// family of SAEs trained here; every stage cached.
    ReproduceSplitting(reproduce::Args),
    /// The tutorial's autointerp section: explanations and detection scores for SAE latents,
    /// random latents and MLP neurons, with the random-explanation floor (online: GPT-2 small and
    /// an OpenAI-compatible API; offline: gemma-3-270m and the offline explainer).
    ReproduceAutointerp(reproduce_analyses::AutointerpArgs),
    /// The tutorial's patch-scoping section: the tutorial's scales and a sweep relative to the
    /// residual norm, with scale tuning (online: gemma-2b-it + gemma-2b-res-jb; offline:
    /// gemma-3-270m and an SAE trained here).
    ReproducePatchScoping(reproduce_analyses::ScopingArgs),
    /// Standard, TopK, BatchTopK, JumpReLU and Matryoshka BatchTopK SAE families trained on the
    /// same activations of the offline model, side by side: CE loss recovered, explained
    /// variance, L0, dead latents, absorption, cross-width families, autointerp detection
    /// (table + PNGs; every stage cached).
    StudyArchitectures(study_architectures::Args),
    /// Check a reproduction's outputs (rows, embedding, clusters, the HTML in headless Chromium).
    CheckSplitting(check_splitting::Args),
    /// Build the CUDA-enabled CLI, xtask (and with --tests the GPU parity test binaries) without
    /// the internet: NVRTC kernels, LLVM stubbed out (target/cuda/).
    BuildCuda(build_cuda::Args),
    /// On a GPU: the parity suite on cuda:N in exact f32, then GPU-vs-PyTorch benchmarks
    /// (forward, decode, SAE encode, training, caching) in one run; JSON + markdown report.
    GpuCheck(gpu_check::Args),
    /// The fuzz campaign with a time budget: every parser fed mutated files (bit flips,
    /// truncations, splices, huge counts); reports inputs tried per parser and fails on any panic
    /// or abort.
    Fuzz(fuzz::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    match cli.command {
        Command::Test(a) => test::run(a),
        Command::FixtureServers(a) => fixture_servers::run(a),
        Command::Bench(a) => bench::run(a),
        Command::CheckGpt2(a) => check_gpt2::run(a),
        Command::CheckGemmaGguf(a) => check_gemma::run(a),
        Command::TrainGemmaFamily(a) => train_family::run(a),
        Command::ReproduceSplitting(a) => reproduce::run(a),
        Command::CheckSplitting(a) => check_splitting::run(a),
        Command::StudyArchitectures(a) => study_architectures::run(a),
        Command::ReproduceAutointerp(a) => reproduce_analyses::autointerp(a),
        Command::ReproducePatchScoping(a) => reproduce_analyses::patch_scoping(a),
        Command::BuildCuda(a) => build_cuda::run(a),
        Command::GpuCheck(a) => gpu_check::run(a),
        Command::Fuzz(a) => fuzz::run(a),
    }
}

//! `cargo xtask bench`: whole-capability benchmarks that run our code and the Python reference on
//! the same input in one run and report the ratio.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use sae_core::device::{tensor_from_vec, tensor_to_vec};
use sae_core::npy::write_f32;
use sae_core::{Architecture, Sae, SaeConfig, SaeParams};

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Which benchmark.
    #[arg(value_enum)]
    pub(crate) which: Which,
    /// Python interpreter with the reference packages (sae-lens, torch) installed; without it
    /// the reference is skipped.
    #[arg(long, env = "SAE_GEOMETRY_PYTHON")]
    pub(crate) python: Option<String>,
    /// Threads for both sides (rayon for ours, torch.set_num_threads for the reference).
    #[arg(long, default_value_t = 2)]
    pub(crate) threads: usize,
    /// Device for our side: cpu (flex), ndarray (needs `--features ndarray`), cuda:N.
    #[arg(long, default_value = "cpu")]
    pub(crate) device: sae_core::ComputeDevice,
    /// The corpus for `store` (JSONL with a `text` field).
    #[arg(long, env = "SAE_GEOMETRY_CORPUS")]
    pub(crate) corpus: Option<PathBuf>,
    /// Timed repetitions (median reported).
    #[arg(long, default_value_t = 5)]
    pub(crate) repeats: usize,
    /// `gemma`: how the model's weight matrices are held (float32, float16, bfloat16).
    #[arg(long, default_value = "float32")]
    pub(crate) weight_dtype: sae_core::StorageDtype,
}

/// Benchmarks.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Which {
    /// Encode [4096, 768] through a 24 576-wide standard SAE.
    SaeEncode,
    /// GPT-2 small (random weights): forward tokens/s at batch 8 × 128, KV-cached decode
    /// tokens/s, load time and peak RSS, beside transformers; checks the logits agree.
    Gpt2,
    /// gemma-3-270m from its GGUF: forward tokens/s at batch 8 × 128, KV-cached decode tokens/s,
    /// load time and peak RSS, beside transformers loading the same GGUF.
    Gemma,
    /// Activation caching (gemma-3-270m, blocks.6.hook_resid_post, 16 384 tokens) and TopK SAE
    /// training (640 → 2560, k 32, batch 4096) beside SAELens + TransformerLens.
    Store,
    /// 2-D UMAP of 16 128 × 768 clustered unit vectors (cosine) beside umap-learn, parallel and
    /// seeded, with trustworthiness.
    Umap,
    /// The same in 10-D (the embedding HDBSCAN clusters).
    Umap10,
    /// HDBSCAN on a 10-D UMAP of 24 576 decoder-like points beside the hdbscan library (time and
    /// adjusted Rand index).
    Hdbscan,
    /// autointerp: 200 latents × 2 requests at 100 ms latency and concurrency 32 against the
    /// in-process mock server, beside the tutorial's Python loop and an asyncio version.
    Autointerp,
    /// Patch scoping: a 64-scale sweep on gemma-3-270m (one batch, 30 greedy tokens per scale)
    /// beside transformers with the tutorial's pre-hook.
    PatchScoping,
    /// SAE evaluation with the SAE spliced in (CE/KL scores, explained variance, L0, density)
    /// on GPT-2 small (random weights), 16 windows × 128, beside SAELens's `evals`.
    EvalSae,
    /// Feature absorption: the 26 class-balanced first-letter probes on 12 000 × 640 words
    /// beside scikit-learn (newton-cholesky and lbfgs), and one SAE's absorption metrics.
    Absorption,
    /// Loading a converted release: Gemma Scope's `gemma-scope-2b-pt-res-canonical`
    /// `layer_12/width_16k/canonical` (`params.npz`, 2304 × 16 384, random weights) from an
    /// offline HF cache, beside SAELens's `SAE.from_pretrained` on the same cache.
    Convert,
    /// Families with evidence: sentence embeddings of 512 latent descriptions (all-MiniLM-L6-v2)
    /// beside sentence-transformers, and co-firing of 640 × 2560 latents over 16 384 tokens
    /// beside numpy's dense products, with their agreement.
    Families,
    /// The logit lens of 4096 latents over GPT-2's 50 257 tokens (W_dec · W_U, top and bottom
    /// 10) beside torch's `topk`, with the share of identical token lists.
    LogitLens,
    /// Logit-lens statistics and token-set enrichment (moments, hypergeometric and Mann–Whitney
    /// tests over the 30 default sets) of 256 latents over gemma-3-270m's 262 144 tokens beside
    /// numpy/scipy, with the largest differences.
    LogitEnrichment,
    /// Gathering every latent's top activating windows (with frequencies, samples and random
    /// windows) from a cache of 32 768 gemma-3-270m activations through a 2560-wide TopK SAE,
    /// beside the tutorial's `gather_data` loop in torch, with the share of identical lists.
    LatentStats,
    /// Training a BatchTopK meta-SAE (k 4) on 16 384 structured decoder rows beside SAELens's
    /// `BatchTopKTrainingSAE`: steps/s and the explained variance each reaches.
    MetaSae,
}

/// A scratch directory for one benchmark's files (`sae-geometry-bench-<name>-…` under the
/// system's temporary directory), removed when the returned guard is dropped: on success, on an
/// early error and on a panic alike — unless `SAE_GEOMETRY_BENCH_KEEP` is set, which keeps it
/// (and says where) for looking at the inputs and outputs both sides saw.
pub(crate) fn scratch_dir(name: &str) -> anyhow::Result<tempfile::TempDir> {
    let keep = std::env::var_os("SAE_GEOMETRY_BENCH_KEEP").is_some();
    let dir = tempfile::Builder::new()
        .prefix(&format!("sae-geometry-bench-{name}-"))
        .disable_cleanup(keep)
        .tempdir()?;
    if keep {
        println!("scratch files kept in {}", dir.path().display());
    }
    Ok(dir)
}

pub(crate) fn splitmix(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Parameters of a standard or TopK SAE drawn from [`splitmix`] streams `seed..seed + 4`
/// (W_enc, W_dec uniform in ±`w_scale`; b_enc, b_dec in ±`b_scale`).
pub(crate) fn random_sae_params(
    d_in: usize,
    d_sae: usize,
    seed: u64,
    w_scale: f32,
    b_scale: f32,
    dev: &sae_core::burn::tensor::Device,
) -> SaeParams {
    use sae_core::burn::module::Param;
    let m = |s, r: usize, c: usize| {
        Param::from_tensor(tensor_from_vec(splitmix(s, r * c, w_scale), [r, c], dev))
    };
    let v = |s, r: usize| Param::from_tensor(tensor_from_vec(splitmix(s, r, b_scale), [r], dev));
    SaeParams {
        w_enc: m(seed, d_in, d_sae),
        w_dec: m(seed + 1, d_sae, d_in),
        b_enc: Some(v(seed + 2, d_sae)),
        b_dec: v(seed + 3, d_in),
        threshold: None,
        b_gate: None,
        b_mag: None,
        r_mag: None,
        w_skip: None,
    }
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Fit times as "1.03 1.05 …".
pub(crate) fn seconds_list(times: &[f64]) -> String {
    times
        .iter()
        .map(|t| format!("{t:.2}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A reference script's per-fit times (its JSON `all_seconds`; empty when absent).
pub(crate) fn reference_seconds(j: &serde_json::Value) -> Vec<f64> {
    j["all_seconds"]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
        .unwrap_or_default()
}

/// Re-runs this benchmark from a release build of xtask (`cargo xtask` itself runs the dev
/// profile, which the reproductions share with the test build). Returns `false` when this
/// process is already the release build.
fn reexec_in_release() -> anyhow::Result<bool> {
    if !cfg!(debug_assertions) {
        return Ok(false);
    }
    let st = crate::cargo::cargo()
        .args(["run", "--release", "--quiet", "-p", "xtask", "--"])
        .args(std::env::args_os().skip(1))
        .status()
        .context("re-running the benchmark from a release build")?;
    if !st.success() {
        bail!("the release benchmark failed ({st})");
    }
    Ok(true)
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    if reexec_in_release()? {
        return Ok(());
    }
    check_rayon_threads(args.threads);
    match args.which {
        Which::SaeEncode => sae_encode(&args),
        Which::Gpt2 => crate::bench_gpt2::run(&args),
        Which::Gemma => crate::bench_gemma::run(&args),
        Which::Store => crate::bench_store::run(&args),
        Which::Umap => crate::bench_umap::run(&args, 2),
        Which::Umap10 => crate::bench_umap::run(&args, 10),
        Which::Hdbscan => crate::bench_hdbscan::run(&args),
        Which::Autointerp => crate::bench_autointerp::run(&args),
        Which::PatchScoping => crate::bench_scoping::run(&args),
        Which::EvalSae => crate::bench_eval::run(&args),
        Which::Absorption => crate::bench_absorption::run(&args),
        Which::Convert => convert(&args),
        Which::Families => crate::bench_families::run(&args),
        Which::LogitLens => crate::bench_logit_lens::run(&args),
        Which::LogitEnrichment => crate::bench_logit_enrichment::run(&args),
        Which::LatentStats => crate::bench_latent_stats::run(&args),
        Which::MetaSae => crate::bench_meta_sae::run(&args),
    }
}

/// burn's flex backend runs on rayon's global pool, sized by `RAYON_NUM_THREADS` (default: all
/// cores). Warn when it disagrees with the thread count given to the reference.
fn check_rayon_threads(n: usize) {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let ours = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cores);
    if ours != n {
        eprintln!(
            "note: our side uses {ours} threads; set RAYON_NUM_THREADS={n} to match the reference"
        );
    }
}

fn sae_encode(args: &Args) -> anyhow::Result<()> {
    let (n, d_in, d_sae) = (4096usize, 768usize, 24_576usize);
    let dev = args.device.burn_device()?;
    let params = random_sae_params(d_in, d_sae, 1, 1.0 / (d_in as f32).sqrt(), 0.1, &dev);
    let sae = Sae::from_parts(
        SaeConfig::new(d_in, d_sae, Architecture::Standard),
        params,
        None,
    )?;
    let xs = splitmix(5, n * d_in, 1.0);
    let scratch = scratch_dir("sae-encode")?;
    let tmp = scratch.path();
    let sae_dir = tmp.join("sae");
    sae.save(&sae_dir)?;
    let input = tmp.join("x.npy");
    write_f32(&input, &[n, d_in], &xs)?;

    let x = tensor_from_vec(xs, [n, d_in], &dev);
    let first = tensor_to_vec(sae.encode(x.clone())?)?; // warm-up
    let check_rows = 64;
    let check = tmp.join("ours.npy");
    write_f32(&check, &[check_rows, d_sae], &first[..check_rows * d_sae])?;
    let mut times = Vec::new();
    for _ in 0..args.repeats {
        let t0 = Instant::now();
        let f = sae.encode(x.clone())?;
        let _ = tensor_to_vec(f)?;
        times.push(t0.elapsed().as_secs_f64());
    }
    let ours = median(times);
    println!(
        "sae-encode [{n}, {d_in}] -> {d_sae}: sae-geometry (burn {} device, {} threads): {ours:.3} s",
        args.device, args.threads
    );
    let Some(python) = &args.python else {
        println!(
            "reference skipped: pass --python or set SAE_GEOMETRY_PYTHON to a venv with sae-lens"
        );
        return Ok(());
    };
    let script = workspace_root().join("benches/python/sae_encode_ref.py");
    let reference = run_reference(
        Command::new(python)
            .arg(&script)
            .arg("--sae")
            .arg(&sae_dir)
            .arg("--input")
            .arg(&input)
            .arg("--threads")
            .arg(args.threads.to_string())
            .arg("--repeats")
            .arg(args.repeats.to_string())
            .arg("--check")
            .arg(&check),
    )?;
    let theirs = reference["median_s"].as_f64().unwrap_or(f64::NAN);
    println!(
        "reference ({}, {} threads): {theirs:.3} s; max |Δ| on {check_rows} rows = {}",
        reference["impl"].as_str().unwrap_or("?"),
        reference["threads"],
        reference["max_abs_diff_vs_ours"]
    );
    println!("ratio (reference / ours): {:.2}×", theirs / ours);
    Ok(())
}

fn convert(args: &Args) -> anyhow::Result<()> {
    let (d_in, d_sae) = (2304usize, 16_384usize);
    let (release, sae_id) = (
        "gemma-scope-2b-pt-res-canonical",
        "layer_12/width_16k/canonical",
    );
    let scratch = scratch_dir("convert")?;
    let tmp = scratch.path();
    let cache = tmp.join("hub");
    let folder = sae_core::testing::hf_cache_snapshot(
        &cache,
        "google/gemma-scope-2b-pt-res",
        "0000000000000000000000000000000000000001",
    )?
    .join("layer_12/width_16k/average_l0_82");
    std::fs::create_dir_all(&folder)?;
    let w_enc = splitmix(11, d_in * d_sae, 0.02);
    let w_dec = splitmix(12, d_sae * d_in, 0.02);
    let threshold: Vec<f32> = splitmix(13, d_sae, 0.05).iter().map(|v| v.abs()).collect();
    sae_geometry_tests::npz::write_npz(
        &folder.join("params.npz"),
        &[
            ("W_enc", vec![d_in, d_sae], &w_enc),
            ("W_dec", vec![d_sae, d_in], &w_dec),
            ("b_enc", vec![d_sae], &splitmix(14, d_sae, 0.01)),
            ("b_dec", vec![d_in], &splitmix(15, d_in, 0.1)),
            ("threshold", vec![d_sae], &threshold),
        ],
    )?;
    drop((w_enc, w_dec));
    let dev = args.device.burn_device()?;
    let hub = sae_core::HubClient::from_env()
        .with_cache_dir(&cache)
        .offline(true);
    let mut times = Vec::new();
    let mut row0 = Vec::new();
    for _ in 0..args.repeats.max(1) {
        let t0 = Instant::now();
        let sae = sae_core::from_pretrained(release, sae_id, &hub, &dev)?;
        let _ = tensor_to_vec(sae.w_enc().slice([0..1, 0..d_sae]))?;
        times.push(t0.elapsed().as_secs_f64());
        row0 = tensor_to_vec(sae.w_enc().slice([0..1, 0..d_sae]))?;
    }
    let ours = median(times);
    println!(
        "convert {release}/{sae_id} ({d_in} x {d_sae}, params.npz): sae-geometry ({} device): {ours:.3} s",
        args.device
    );
    let check = tmp.join("ours_row0.npy");
    write_f32(&check, &[d_sae], &row0)?;
    let Some(python) = &args.python else {
        println!(
            "reference skipped: pass --python or set SAE_GEOMETRY_PYTHON to a venv with sae-lens"
        );
        return Ok(());
    };
    let reference = run_reference(
        Command::new(python)
            .arg(workspace_root().join("benches/python/convert_ref.py"))
            .arg("--cache")
            .arg(&cache)
            .args(["--release", release, "--sae-id", sae_id])
            .arg("--threads")
            .arg(args.threads.to_string())
            .arg("--repeats")
            .arg(args.repeats.max(1).to_string())
            .arg("--check")
            .arg(&check),
    )?;
    let theirs = reference["median_s"].as_f64().unwrap_or(f64::NAN);
    println!(
        "reference ({}, {} threads): {theirs:.3} s; max |Δ| of W_enc row 0 = {}",
        reference["impl"].as_str().unwrap_or("?"),
        reference["threads"],
        reference["max_abs_diff_vs_ours"]
    );
    println!("ratio (reference / ours): {:.2}×", theirs / ours);
    Ok(())
}

/// Runs a Python reference script and parses the JSON object on the last line of its stdout.
pub(crate) fn run_reference(cmd: &mut Command) -> anyhow::Result<serde_json::Value> {
    let out = cmd
        .output()
        .with_context(|| format!("running the reference {cmd:?}"))?;
    if !out.status.success() {
        bail!("reference failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok(serde_json::from_str(stdout.lines().last().unwrap_or("{}"))?)
}

/// The checkout xtask was built from; a binary copied to another machine (the GPU check) uses
/// the current directory, which must then be a checkout.
pub(crate) fn workspace_root() -> PathBuf {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    if built.join("Cargo.toml").exists() {
        built
    } else {
        std::env::current_dir().unwrap_or(built)
    }
}

/// What [`measure_model`] times: the forward pass on a batch, and KV-cached greedy decoding.
pub(crate) struct ModelTimings {
    /// Median seconds of three forward passes (after one warm-up).
    pub(crate) forward_s: f64,
    /// Last-position logits of every row, `[batch, vocab]`, for the parity check.
    pub(crate) last_logits: Vec<f32>,
    /// Decoded tokens per second.
    pub(crate) decode_tokens_per_s: f64,
    /// The greedy continuation of the first row's first 16 tokens.
    pub(crate) greedy: Vec<u32>,
}

/// Forward `[b, t]` tokens (median of 3 after a warm-up) and greedy-decode `n_dec` tokens from
/// the first row's first 16 tokens (after a 4-token warm-up), as both model benchmarks do.
pub(crate) fn measure_model<M: gpt2_gemma_models::LanguageModel>(
    model: &M,
    ids: &[i64],
    b: usize,
    t: usize,
    n_dec: usize,
) -> anyhow::Result<ModelTimings> {
    use gpt2_gemma_models::{GenerateConfig, Hooks, generate};
    let vocab = model.vocab_size();
    let x = sae_core::device::int_tensor_from_vec(ids.to_vec(), [b, t], &model.device());
    let _ = model.forward(x.clone())?;
    let mut times = Vec::new();
    let mut last_logits = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        let l = model.forward(x.clone())?;
        last_logits = tensor_to_vec(l.narrow(1, t - 1, 1).reshape([b, vocab]))?;
        times.push(t0.elapsed().as_secs_f64());
    }
    let prompt: Vec<u32> = ids[..16].iter().map(|&v| v as u32).collect();
    let _ = generate(
        model,
        std::slice::from_ref(&prompt),
        &GenerateConfig::greedy(4, None),
        &mut Hooks::new(),
    )?;
    let t0 = Instant::now();
    let greedy = generate(
        model,
        &[prompt],
        &GenerateConfig::greedy(n_dec, None),
        &mut Hooks::new(),
    )?;
    let decode_tokens_per_s = n_dec as f64 / t0.elapsed().as_secs_f64();
    Ok(ModelTimings {
        forward_s: median(times),
        last_logits,
        decode_tokens_per_s,
        greedy: greedy.into_iter().next().unwrap_or_default(),
    })
}

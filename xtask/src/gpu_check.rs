//! `cargo xtask gpu-check`: the GPU parity suite and GPU-vs-PyTorch benchmarks in one run, with
//! a JSON and a markdown report.
//!
//! 1. **Parity**: the parity test binaries (`build_cuda::GPU_TESTS`: SAELens SAE variants, GPT-2
//!    and Gemma hooks/logits, splicing, training gradients, the device-resident training step
//!    against the CPU's, evaluation) run with
//!    `SAE_GEOMETRY_DEVICE=cuda:N` and exact precision, so they assert the CPU's tolerances on
//!    the GPU.
//! 2. **Benchmarks**, ours and PyTorch eager (`benches/python/gpu_ref.py`) on the same GPU in the
//!    same run: GPT-2 small forward and KV-cached decode tokens/s, SAE encode TFLOP/s, TopK SAE
//!    training steps/s, activation caching tokens/s; ours in exact f32 and in TF32 (a second
//!    process: the precision is process-wide), PyTorch with TF32 off and on, and each mode's
//!    error against PyTorch's exact f32 outputs.
//!
//! On the GPU machine no Rust toolchain is needed: copy `target/cuda/release/xtask` and the test
//! binaries (`cargo xtask build-cuda --tests`) and pass `--test-bins DIR`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use activation_store::cache::{CacheConfig, CacheRunOptions, cache_activations};
use activation_store::{StoreConfig, TextSource, TrainArchitecture, TrainConfig, Trainer};
use anyhow::{Context, bail, ensure};
use gpt2_gemma_models::source::{AnyModel, AnyTokenizer};
use gpt2_gemma_models::tokenizer::Gpt2Tokenizer;
use gpt2_gemma_models::{Gpt2, HookPoint, Processing};
use sae_core::burn::tensor::Device;
use sae_core::device::{DeviceConfig, Precision, tensor_from_vec, tensor_to_vec};
use sae_core::npy::{read_f32, write_f32};
use sae_core::{Architecture, ComputeDevice, Sae, SaeConfig};
use serde_json::{Value, json};

use crate::bench::{measure_model, median, random_sae_params, splitmix, workspace_root};
use crate::build_cuda::{GPU_TESTS, profile_dir, target_dir};

/// Arguments of `gpu-check`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The GPU.
    #[arg(long, default_value = "cuda:0")]
    device: ComputeDevice,
    /// Matmul precision of our benchmark side in this process (the report runs both: the
    /// `tf32` pass is a child process).
    #[arg(long, default_value = "exact")]
    precision: Precision,
    /// Python with torch and transformers (the PyTorch side).
    #[arg(long, env = "SAE_GEOMETRY_PYTHON", default_value = "python3")]
    python: String,
    /// Report folder (report.json, report.md, parity.log).
    #[arg(long, default_value = "target/gpu-check")]
    out: PathBuf,
    /// Scratch folder for the benchmark inputs (a random GPT-2 small, an SAE, activations;
    /// about 1 GB); default `<out>/work`.
    #[arg(long)]
    work: Option<PathBuf>,
    /// Folder of prebuilt parity test binaries (named `<test>-<hash>` as cargo names them);
    /// default: `target/cuda/release/deps`, built first by `cargo xtask build-cuda --tests`
    /// when cargo is there.
    #[arg(long)]
    test_bins: Option<PathBuf>,
    /// Seconds the parity binaries (run side by side) may take in all before they are stopped
    /// and reported as `timeout`.
    #[arg(long, default_value_t = 240)]
    parity_timeout: u64,
    /// What to run.
    #[arg(long, value_enum, default_value = "all")]
    only: Part,
    /// Skip the TF32 pass of our side.
    #[arg(long)]
    no_tf32: bool,
    /// Text corpus (JSONL with a `text` field) for the caching benchmark; without it that row is
    /// skipped.
    #[arg(long, env = "SAE_GEOMETRY_CORPUS")]
    corpus: Option<PathBuf>,
    /// Timed repetitions per benchmark (median reported).
    #[arg(long, default_value_t = 10)]
    repeats: usize,
}

/// Parts of the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    /// Parity, then benchmarks.
    All,
    /// The parity test binaries only.
    Parity,
    /// The benchmarks only.
    Bench,
    /// Our benchmark side only, in this process's precision (the TF32 child).
    OursOnly,
}

const SAE_N: usize = 16_384;
const D_IN: usize = 768;
const SAE_WIDTH: usize = 24_576;
const FWD_B: usize = 64;
const FWD_T: usize = 128;
const DECODE: usize = 32;
const TRAIN_WIDTH: usize = 3072;
const TRAIN_K: usize = 32;
const TRAIN_BATCH: usize = 4096;
const TRAIN_STEPS: usize = 50;
const CACHE_SEQS: u64 = 2560;
const CHECK_ROWS: usize = 64;

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)?;
    let mut report = json!({
        "device": args.device.to_string(),
        "date": utc_now(),
        "machine": machine(),
    });
    if matches!(args.only, Part::All | Part::Parity) {
        report["parity"] = parity(&args)?;
        write_report(&args.out, &report)?;
    }
    if args.only == Part::OursOnly {
        let ours = ours(&args, &args.out)?;
        sae_core::atomic::write(
            args.out.join("ours.json"),
            serde_json::to_string_pretty(&ours)?,
        )?;
        return Ok(());
    }
    if matches!(args.only, Part::All | Part::Bench) {
        let work = args.work.clone().unwrap_or_else(|| args.out.join("work"));
        std::fs::create_dir_all(&work)?;
        let gpt2 = work.join("gpt2-small-random");
        if !gpt2.join("model.safetensors").exists() {
            python(&args, &["make-gpt2", &gpt2.display().to_string()])?;
        }
        make_inputs(&work)?;
        let mut reference = python(
            &args,
            &[
                "bench",
                &work.display().to_string(),
                "--repeats",
                &args.repeats.to_string(),
                "--device",
                &match args.device {
                    ComputeDevice::Cuda(i) => format!("cuda:{i}"),
                    _ => "cpu".to_string(),
                },
            ],
        )?;
        report["pytorch"] = reference.take();
        write_report(&args.out, &report)?;
        report["ours_exact"] = ours(&args, &work)?;
        write_report(&args.out, &report)?;
        if !args.no_tf32 {
            report["ours_tf32"] = tf32_child(&args, &work)?;
            write_report(&args.out, &report)?;
        }
    }
    write_report(&args.out, &report)?;
    println!("report: {}", args.out.join("report.md").display());
    Ok(())
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> Value {
    let gpu = Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,driver_version,memory.total",
            "--format=csv,noheader",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "nvidia-smi not found".into());
    json!({
        "gpu": gpu,
        "cpu_threads": std::thread::available_parallelism().map_or(1, usize::from),
    })
}

// ---------------------------------------------------------------------------------------------
// Parity

fn parity(args: &Args) -> anyhow::Result<Value> {
    let dir = match &args.test_bins {
        Some(d) => d.clone(),
        None => {
            let st = crate::cargo::cargo()
                .current_dir(workspace_root())
                .args([
                    "run",
                    "--quiet",
                    "-p",
                    "xtask",
                    "--",
                    "build-cuda",
                    "--tests",
                ])
                .status()
                .context(
                    "building the GPU test binaries (pass --test-bins on a machine without cargo)",
                )?;
            ensure!(st.success(), "cargo xtask build-cuda --tests failed");
            target_dir().join(profile_dir("release")).join("deps")
        }
    };
    // Every binary at once: each process compiles its kernels with NVRTC on the CPU, so running
    // them side by side takes the time of the slowest rather than the sum.
    let mut running = Vec::new();
    let mut results = Vec::new();
    for (package, tests) in GPU_TESTS {
        for test in *tests {
            let Some(bin) = find_test_binary(&dir, test)? else {
                results.push(json!({"package": package, "test": test, "status": "missing"}));
                continue;
            };
            let logs = args.out.join(format!("parity-{test}.out"));
            // The child's live logs, written as it runs (not an output read back as done).
            #[allow(clippy::disallowed_methods)]
            let (stdout, stderr) = (
                std::fs::File::create(&logs)?,
                std::fs::File::create(logs.with_extension("err"))?,
            );
            let child = Command::new(&bin)
                .env(DeviceConfig::DEVICE_VAR, args.device.to_string())
                .env(DeviceConfig::PRECISION_VAR, "exact")
                .current_dir(workspace_root())
                .stdout(stdout)
                .stderr(stderr)
                .spawn()
                .with_context(|| format!("running {}", bin.display()))?;
            running.push((package, test, Instant::now(), child, logs));
        }
    }
    let deadline = Instant::now() + std::time::Duration::from_secs(args.parity_timeout);
    let mut log = String::new();
    for (package, test, t0, mut child, logs) in running {
        let status = loop {
            if let Some(st) = child.try_wait()? {
                break if st.success() { "pass" } else { "fail" };
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break "timeout";
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        let secs = t0.elapsed().as_secs_f64();
        let text = format!(
            "{}{}",
            std::fs::read_to_string(&logs).unwrap_or_default(),
            std::fs::read_to_string(logs.with_extension("err")).unwrap_or_default()
        );
        let _ = std::fs::remove_file(&logs);
        let _ = std::fs::remove_file(logs.with_extension("err"));
        log.push_str(&format!("===== {package}/{test}: {status}\n{text}\n"));
        sae_core::atomic::write(args.out.join("parity.log"), &log)?;
        let (passed, failed) = test_counts(&text);
        println!(
            "parity {package}/{test}: {status} ({passed} passed, {failed} failed, {secs:.1} s)"
        );
        results.push(json!({
            "package": package, "test": test, "status": status,
            "passed": passed, "failed": failed, "seconds": secs,
            "failures": failure_lines(&text),
        }));
    }
    Ok(Value::Array(results))
}

/// The newest executable `<test>-<16 hex>` in `dir`.
pub(crate) fn find_test_binary(dir: &Path, test: &str) -> anyhow::Result<Option<PathBuf>> {
    let prefix = format!("{test}-");
    let mut found: Option<(std::time::SystemTime, PathBuf)> = None;
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(hash) = name.strip_prefix(&prefix) else {
            continue;
        };
        if hash.len() != 16 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        let t = p.metadata()?.modified()?;
        if found.as_ref().is_none_or(|(best, _)| t > *best) {
            found = Some((t, p));
        }
    }
    Ok(found.map(|(_, p)| p))
}

/// Sums libtest's `test result: … N passed; M failed` lines.
fn test_counts(text: &str) -> (u64, u64) {
    let mut sums = (0, 0);
    for line in text.lines().filter(|l| l.starts_with("test result:")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        for w in words.windows(2) {
            let n = w[0].parse::<u64>().unwrap_or(0);
            if w[1].starts_with("passed") {
                sums.0 += n;
            } else if w[1].starts_with("failed") {
                sums.1 += n;
            }
        }
    }
    sums
}

fn failure_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains("panicked at") || l.starts_with("---- ") || l.contains("differs"))
        .take(40)
        .map(String::from)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Benchmarks

/// The benchmark inputs both sides read: random token ids, SAE weights, activations.
fn make_inputs(work: &Path) -> anyhow::Result<()> {
    let ids: Vec<f32> = splitmix(11, FWD_B * FWD_T, 1.0)
        .into_iter()
        .map(|u| (((u + 1.0) / 2.0) * 50_256.0).floor())
        .collect();
    write_f32(work.join("tokens.npy"), &[FWD_B, FWD_T], &ids)?;
    let sae_dir = work.join("sae");
    if !sae_dir.join("sae_weights.safetensors").exists() {
        let cpu = sae_core::device::cpu();
        let params = random_sae_params(D_IN, SAE_WIDTH, 1, 1.0 / (D_IN as f32).sqrt(), 0.1, &cpu);
        Sae::from_parts(
            SaeConfig::new(D_IN, SAE_WIDTH, Architecture::Standard),
            params,
            None,
        )?
        .save(&sae_dir)?;
    }
    write_f32(
        work.join("sae_x.npy"),
        &[SAE_N, D_IN],
        &splitmix(5, SAE_N * D_IN, 1.0),
    )?;
    Ok(())
}

fn python(args: &Args, script_args: &[&str]) -> anyhow::Result<Value> {
    let script = workspace_root().join("benches/python/gpu_ref.py");
    let out = Command::new(&args.python)
        .arg(&script)
        .args(script_args)
        .output()
        .with_context(|| format!("running {} {}", args.python, script.display()))?;
    if !out.status.success() {
        bail!(
            "{} {:?} failed: {}",
            script.display(),
            script_args,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok(serde_json::from_str(stdout.lines().last().unwrap_or("{}")).unwrap_or(Value::Null))
}

fn tf32_child(args: &Args, work: &Path) -> anyhow::Result<Value> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(["gpu-check", "--only", "ours-only", "--precision", "tf32"])
        .arg("--device")
        .arg(args.device.to_string())
        .arg("--out")
        .arg(work)
        .args(["--repeats", &args.repeats.to_string()]);
    if let Some(c) = &args.corpus {
        cmd.arg("--corpus").arg(c);
    }
    let st = cmd.status().context("running the TF32 pass")?;
    ensure!(st.success(), "the TF32 pass failed ({st})");
    Ok(serde_json::from_str(&std::fs::read_to_string(
        work.join("ours.json"),
    )?)?)
}

/// Our side of every benchmark, in this process's precision.
fn ours(args: &Args, work: &Path) -> anyhow::Result<Value> {
    let dev = DeviceConfig {
        device: args.device,
        precision: args.precision,
    }
    .init()?;
    let mut r = json!({ "precision": args.precision.to_string() });
    r["sae_encode"] = bench_sae_encode(args, work, &dev)?;
    println!("ours ({}): sae encode {}", args.precision, r["sae_encode"]);
    r["gpt2"] = bench_gpt2(work, &dev)?;
    println!("ours ({}): gpt2 {}", args.precision, r["gpt2"]);
    r["train"] = bench_train(&dev)?;
    println!("ours ({}): train {}", args.precision, r["train"]);
    if let Some(corpus) = &args.corpus {
        r["cache"] = bench_cache(work, corpus, &dev)?;
        println!("ours ({}): cache {}", args.precision, r["cache"]);
    }
    Ok(r)
}

fn sync(dev: &Device) -> anyhow::Result<()> {
    dev.sync()
        .map_err(|e| anyhow::anyhow!("device sync: {e:?}"))
}

fn bench_sae_encode(args: &Args, work: &Path, dev: &Device) -> anyhow::Result<Value> {
    let sae = Sae::load(work.join("sae"), dev)?;
    let x = read_f32(work.join("sae_x.npy"))?;
    let x = tensor_from_vec(x.data, [SAE_N, D_IN], dev);
    let feats = sae.encode(x.clone())?;
    let check = tensor_to_vec(feats.narrow(0, 0, CHECK_ROWS))?;
    let reference = work.join("ref_sae_feats.npy");
    let err = if reference.exists() {
        Some(max_abs_diff(&check, &read_f32(&reference)?.data))
    } else {
        None
    };
    for _ in 0..2 {
        let _ = sae.encode(x.clone())?;
    }
    sync(dev)?;
    let mut times = Vec::new();
    for _ in 0..args.repeats {
        let t0 = Instant::now();
        let f = sae.encode(x.clone())?;
        sync(dev)?;
        times.push(t0.elapsed().as_secs_f64());
        drop(f);
    }
    let s = median(times);
    let flops = 2.0 * (SAE_N * D_IN * SAE_WIDTH) as f64;
    Ok(json!({
        "seconds": s, "tflops": flops / s / 1e12,
        "max_abs_diff_vs_pytorch_fp32": err,
    }))
}

fn bench_gpt2(work: &Path, dev: &Device) -> anyhow::Result<Value> {
    let model = Gpt2::load(work.join("gpt2-small-random"), Processing::None, dev)
        .context("loading the random GPT-2 small")?;
    let ids: Vec<i64> = read_f32(work.join("tokens.npy"))?
        .data
        .into_iter()
        .map(|v| v as i64)
        .collect();
    let m = measure_model(&model, &ids, FWD_B, FWD_T, DECODE)?;
    let reference = work.join("ref_gpt2_last_logits.npy");
    let (err, agree) = if reference.exists() {
        let r = read_f32(&reference)?.data;
        let vocab = r.len() / FWD_B;
        let agree = (0..FWD_B)
            .filter(|&i| {
                argmax(&m.last_logits[i * vocab..(i + 1) * vocab])
                    == argmax(&r[i * vocab..(i + 1) * vocab])
            })
            .count() as f64
            / FWD_B as f64;
        (Some(max_abs_diff(&m.last_logits, &r)), Some(agree))
    } else {
        (None, None)
    };
    Ok(json!({
        "forward_seconds": m.forward_s,
        "forward_tokens_per_s": (FWD_B * FWD_T) as f64 / m.forward_s,
        "decode_tokens_per_s": m.decode_tokens_per_s,
        "max_abs_diff_vs_pytorch_fp32": err,
        "argmax_agreement_vs_pytorch_fp32": agree,
    }))
}

fn bench_train(dev: &Device) -> anyhow::Result<Value> {
    let cfg = TrainConfig::new(
        D_IN,
        TRAIN_WIDTH,
        TrainArchitecture::TopK {
            k: TRAIN_K,
            aux_coefficient: 1.0 / 32.0,
        },
        10_000,
    );
    let mut trainer = Trainer::new(cfg, dev)?;
    let batches: Vec<Vec<f32>> = (0..4)
        .map(|i| splitmix(100 + i, TRAIN_BATCH * D_IN, 1.0))
        .collect();
    for b in &batches {
        trainer.step(b)?;
    }
    // Batches staged on the device, steps that read nothing back, one metrics read at the end
    // (as a training run between its logged steps).
    let staged: Vec<_> = batches
        .iter()
        .map(|b| tensor_from_vec(b.clone(), [TRAIN_BATCH, D_IN], dev))
        .collect();
    sync(dev)?;
    let reads = sae_core::device::host_reads();
    let t0 = Instant::now();
    for i in 0..TRAIN_STEPS {
        trainer.step_uploaded(staged[i % staged.len()].clone())?;
    }
    let last = trainer.metrics()?;
    sync(dev)?;
    let s = t0.elapsed().as_secs_f64();
    let reads = sae_core::device::host_reads() - reads;
    Ok(json!({
        "steps_per_s": TRAIN_STEPS as f64 / s,
        "steps": TRAIN_STEPS, "batch": TRAIN_BATCH, "d_sae": TRAIN_WIDTH, "k": TRAIN_K,
        "auxk": true,
        "host_reads": reads,
        "final_mse": last.map(|m| m.mse),
    }))
}

fn bench_cache(work: &Path, corpus: &Path, dev: &Device) -> anyhow::Result<Value> {
    let model = AnyModel::Gpt2(Gpt2::load(
        work.join("gpt2-small-random"),
        Processing::TransformerLens,
        dev,
    )?);
    let tok_dir = workspace_root().join("crates/models/tests/fixtures/gpt2-tokenizer");
    let tok = AnyTokenizer::Gpt2(Gpt2Tokenizer::from_vocab_merges(
        tok_dir.join("encoder.json"),
        tok_dir.join("vocab.bpe"),
    )?);
    let mut cfg = StoreConfig::new(HookPoint::ResidPre(6), FWD_T);
    cfg.store_batch_size_prompts = FWD_B;
    let run = |dir: &Path, seqs: u64| -> anyhow::Result<f64> {
        let _ = std::fs::remove_dir_all(dir);
        let t0 = Instant::now();
        cache_activations(
            &model,
            "gpt2-small-random",
            &tok,
            TextSource::from_path(corpus, None)?,
            &cfg,
            &CacheConfig::new(256).max_sequences(Some(seqs)),
            dir,
            &CacheRunOptions::default(),
        )?;
        Ok(t0.elapsed().as_secs_f64())
    };
    run(&work.join("cache-warm"), 2 * FWD_B as u64)?;
    let s = run(&work.join("cache"), CACHE_SEQS)?;
    let _ = std::fs::remove_dir_all(work.join("cache"));
    let _ = std::fs::remove_dir_all(work.join("cache-warm"));
    Ok(json!({
        "tokens_per_s": (CACHE_SEQS * FWD_T as u64) as f64 / s,
        "sequences": CACHE_SEQS, "batch": FWD_B, "context": FWD_T,
        "includes": "tokenising, forward to blocks.6.hook_resid_pre, shards written",
    }))
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::NAN;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from((x - y).abs()))
        .fold(0.0, f64::max)
}

// ---------------------------------------------------------------------------------------------
// Report

fn write_report(out: &Path, r: &Value) -> anyhow::Result<()> {
    sae_core::atomic::write(out.join("report.json"), serde_json::to_string_pretty(r)?)?;
    sae_core::atomic::write(out.join("report.md"), markdown(r))?;
    Ok(())
}

fn markdown(r: &Value) -> String {
    let mut s = format!(
        "# GPU check\n\n{} · {} · {}\n\n",
        r["device"].as_str().unwrap_or("?"),
        r["machine"]["gpu"].as_str().unwrap_or("?"),
        r["date"].as_str().unwrap_or("?")
    );
    if let Some(p) = r["parity"].as_array() {
        s.push_str("## Parity (exact f32, the CPU's tolerances)\n\n| test | status | passed | failed | s |\n|---|---|---|---|---|\n");
        for t in p {
            s.push_str(&format!(
                "| {}/{} | {} | {} | {} | {:.1} |\n",
                t["package"].as_str().unwrap_or(""),
                t["test"].as_str().unwrap_or(""),
                t["status"].as_str().unwrap_or(""),
                t["passed"],
                t["failed"],
                t["seconds"].as_f64().unwrap_or(f64::NAN)
            ));
        }
        s.push('\n');
    }
    if r["pytorch"].is_object() {
        let f = |v: &Value| v.as_f64().map_or("—".to_string(), |x| format!("{x:.4}"));
        let n = |v: &Value| v.as_f64().map_or("—".to_string(), |x| format!("{x:.0}"));
        let t = |v: &Value| v.as_f64().map_or("—".to_string(), |x| format!("{x:.1}"));
        let (oe, ot, pt) = (&r["ours_exact"], &r["ours_tf32"], &r["pytorch"]);
        let (p32, ptf) = (&pt["fp32"], &pt["tf32"]);
        s.push_str(&format!(
            "## Speed ({})\n\n| what | ours exact f32 | PyTorch fp32 | ratio | ours TF32 | PyTorch TF32 | ratio |\n|---|---|---|---|---|---|---|\n",
            pt["impl"].as_str().unwrap_or("PyTorch")
        ));
        type Row<'a> = (&'a str, &'a [&'a str], &'a dyn Fn(&Value) -> String);
        let rows: [Row<'_>; 5] = [
            (
                "GPT-2 small forward 64×128, tokens/s",
                &["gpt2", "forward_tokens_per_s"],
                &n,
            ),
            (
                "GPT-2 small KV decode (batch 1), tokens/s",
                &["gpt2", "decode_tokens_per_s"],
                &t,
            ),
            (
                "SAE encode 16384×768→24576, TFLOP/s",
                &["sae_encode", "tflops"],
                &t,
            ),
            (
                "TopK SAE 768→3072 k 32 batch 4096 (AuxK), steps/s",
                &["train", "steps_per_s"],
                &t,
            ),
            (
                "caching GPT-2 → blocks.6.hook_resid_pre, tokens/s",
                &["cache", "tokens_per_s"],
                &n,
            ),
        ];
        for (label, path, fmt) in rows {
            let get = |v: &Value| path.iter().fold(v.clone(), |v, k| v[*k].clone());
            let ratio = |a: &Value, b: &Value| match (a.as_f64(), b.as_f64()) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
                _ => "—".into(),
            };
            let (a, b, c, d) = (get(oe), get(p32), get(ot), get(ptf));
            s.push_str(&format!(
                "| {label} | {} | {} | {} | {} | {} | {} |\n",
                fmt(&a),
                fmt(&b),
                ratio(&a, &b),
                fmt(&c),
                fmt(&d),
                ratio(&c, &d)
            ));
        }
        s.push_str("\nratio = ours / PyTorch (higher is better for ours).\n\n## Error against PyTorch fp32 (TF32 off)\n\n| mode | GPT-2 last logits max abs diff | argmax agreement | SAE encode max abs diff |\n|---|---|---|---|\n");
        for (mode, v) in [("ours exact", oe), ("ours TF32", ot), ("PyTorch TF32", ptf)] {
            s.push_str(&format!(
                "| {mode} | {} | {} | {} |\n",
                f(&v["gpt2"]["max_abs_diff_vs_pytorch_fp32"]),
                f(&v["gpt2"]["argmax_agreement_vs_pytorch_fp32"]),
                f(&v["sae_encode"]["max_abs_diff_vs_pytorch_fp32"])
            ));
        }
    }
    s
}

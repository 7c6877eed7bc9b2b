//! `cargo xtask bench gpt2`: GPT-2 small forward and decode beside transformers.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use gpt2_gemma_models::{Gpt2, Processing};
use sae_core::device::tensor_to_vec;
use sae_core::npy::read_f32;

use crate::bench::{Args, measure_model, run_reference, splitmix, workspace_root};

pub(crate) fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let Some(python) = &args.python else {
        bail!(
            "bench gpt2 needs --python (a venv with transformers) to make the random-weight model"
        );
    };
    let dir = std::env::temp_dir().join("sae-geometry-gpt2-small-random");
    let script = workspace_root().join("benches/python/gpt2_ref.py");
    if !dir.join("model.safetensors").exists() {
        let st = Command::new(python)
            .arg(&script)
            .arg("make")
            .arg(&dir)
            .status()?;
        anyhow::ensure!(st.success(), "making the random GPT-2 failed");
    }
    // The tokenizer is not needed: random token ids.
    let (b, t) = (8usize, 128usize);
    let ids: Vec<i64> = splitmix(11, b * t, 1.0)
        .into_iter()
        .map(|u| (((u + 1.0) / 2.0) * 50256.0) as i64)
        .collect();
    let rows: Vec<Vec<i64>> = ids.chunks(t).map(<[i64]>::to_vec).collect();
    let tokens_path = dir.join("bench_tokens.json");
    sae_core::atomic::write(&tokens_path, serde_json::to_string(&rows)?)?;

    let dev = args.device.burn_device()?;
    let t0 = Instant::now();
    let model = Gpt2::load(&dir, Processing::None, &dev).context("loading the random GPT-2")?;
    let load_s = t0.elapsed().as_secs_f64();
    let n_dec = 32;
    let m = measure_model(&model, &ids, b, t, n_dec)?;
    let (fwd, last) = (m.forward_s, m.last_logits);
    let dec_s = n_dec as f64 / m.decode_tokens_per_s;
    let ours_greedy = [m.greedy];
    let rss = peak_rss_mib();
    let gemm = matmul_share(&dev, b, t)?;
    println!(
        "of which the same matrix products alone take {gemm:.3} s ({:.0}%)",
        100.0 * gemm / fwd
    );
    println!(
        "GPT-2 small (random weights), sae-geometry (burn {} device, {} threads): load {load_s:.2} s, forward [{b}×{t}] {fwd:.3} s = {:.0} tokens/s, decode {:.1} tokens/s, peak RSS {rss:.0} MiB",
        args.device,
        args.threads,
        (b * t) as f64 / fwd,
        n_dec as f64 / dec_s
    );
    let ref_logits = dir.join("ref_last_logits.npy");
    let r = run_reference(
        Command::new(python)
            .arg(&script)
            .arg("bench")
            .arg(&dir)
            .arg("--tokens")
            .arg(&tokens_path)
            .arg("--threads")
            .arg(args.threads.to_string())
            .arg("--decode-tokens")
            .arg(n_dec.to_string())
            .arg("--out-logits")
            .arg(&ref_logits),
    )?;
    let theirs = read_f32(&ref_logits)?;
    let diff = last
        .iter()
        .zip(&theirs.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let greedy_equal = r["greedy"].as_array().map(|g| {
        g.iter()
            .map(|v| v.as_u64().unwrap_or(0) as u32)
            .collect::<Vec<_>>()
            == ours_greedy[0]
    });
    println!(
        "reference ({}, {} threads): load {:.2} s, forward {:.0} tokens/s, decode {:.1} tokens/s, peak RSS {:.0} MiB",
        r["impl"].as_str().unwrap_or("?"),
        r["threads"],
        r["load_s"].as_f64().unwrap_or(f64::NAN),
        r["forward_tokens_per_s"].as_f64().unwrap_or(f64::NAN),
        r["decode_tokens_per_s"].as_f64().unwrap_or(f64::NAN),
        r["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
    );
    println!(
        "ratio (ours / reference): forward {:.2}×, decode {:.2}×; last-position logits max |Δ| = {diff:.2e}; greedy {} tokens equal: {:?}",
        ((b * t) as f64 / fwd) / r["forward_tokens_per_s"].as_f64().unwrap_or(f64::NAN),
        (n_dec as f64 / dec_s) / r["decode_tokens_per_s"].as_f64().unwrap_or(f64::NAN),
        n_dec,
        greedy_equal
    );
    let _ = PathBuf::new();
    Ok(())
}

/// Times the forward pass's matrix products alone (same shapes, same backend), to say how much of
/// the forward time is GEMM and how much everything else.
pub(crate) fn matmul_share(
    dev: &sae_core::burn::tensor::Device,
    b: usize,
    t: usize,
) -> anyhow::Result<f64> {
    use sae_core::device::tensor_from_vec;
    let (d, h, dh, dm, v, layers) = (768usize, 12usize, 64usize, 3072usize, 50257usize, 12usize);
    let n = b * t;
    let m = |r: usize, c: usize| tensor_from_vec(splitmix(3, r * c, 0.02), [r, c], dev);
    let x = m(n, d);
    let (wd, wi, wo, wu) = (m(d, d), m(d, dm), m(dm, d), m(d, v));
    let hidden = m(n, dm);
    let q = tensor_from_vec(splitmix(4, b * h * t * dh, 0.1), [b * h, t, dh], dev);
    let p = tensor_from_vec(splitmix(5, b * h * t * t, 0.1), [b * h, t, t], dev);
    let t0 = Instant::now();
    let mut sink = 0.0f32;
    for _ in 0..layers {
        for _ in 0..4 {
            sink += tensor_to_vec(x.clone().matmul(wd.clone()).narrow(0, 0, 1))?[0];
        }
        sink += tensor_to_vec(x.clone().matmul(wi.clone()).narrow(0, 0, 1))?[0];
        sink += tensor_to_vec(hidden.clone().matmul(wo.clone()).narrow(0, 0, 1))?[0];
        let s = q.clone().matmul(q.clone().swap_dims(1, 2));
        sink += tensor_to_vec(
            p.clone()
                .matmul(q.clone())
                .narrow(0, 0, 1)
                .reshape([t * dh]),
        )?[0]
            + tensor_to_vec(s.narrow(0, 0, 1).reshape([t * t]))?[0];
    }
    sink += tensor_to_vec(x.matmul(wu).narrow(0, 0, 1))?[0];
    let secs = t0.elapsed().as_secs_f64();
    std::hint::black_box(sink);
    Ok(secs)
}

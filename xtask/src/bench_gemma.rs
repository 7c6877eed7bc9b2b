//! `cargo xtask bench gemma`: gemma-3-270m (GGUF) forward and decode beside transformers.

use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use gpt2_gemma_models::Gemma;
use gpt2_gemma_models::gguf::GgufFile;
use sae_core::npy::read_f32;

use crate::bench::{Args, measure_model, run_reference, splitmix, workspace_root};
use crate::bench_gpt2::peak_rss_mib;

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let gguf = gpt2_gemma_models::offline::install_gemma3_270m_gguf()?;
    let dev = args.device.burn_device()?;
    let t0 = Instant::now();
    let file = GgufFile::open(&gguf)?;
    let opts = gpt2_gemma_models::LoadOptions {
        weight_dtype: args.weight_dtype,
    };
    let model = Gemma::load_gguf_with(&file, &opts, &dev).context("loading gemma-3-270m")?;
    let load_s = t0.elapsed().as_secs_f64();
    let rss_load = peak_rss_mib();
    let (b, t) = (8usize, 128usize);
    let ids: Vec<i64> = splitmix(13, b * t, 1.0)
        .into_iter()
        .map(|u| 1000 + (((u + 1.0) / 2.0) * 200_000.0) as i64)
        .collect();
    let n_dec = 32;
    let m = measure_model(&model, &ids, b, t, n_dec)?;
    let (fwd, last, dec) = (m.forward_s, m.last_logits, m.decode_tokens_per_s);
    let ours_greedy = [m.greedy];
    let rss = peak_rss_mib();
    println!(
        "gemma-3-270m (Q4_K_M GGUF → weights {}), sae-geometry (burn {} device, {} threads): load {load_s:.2} s, forward [{b}×{t}] {:.0} tokens/s, decode {dec:.1} tokens/s, peak RSS {rss_load:.0} MiB after loading, {rss:.0} MiB after the [{b}×{t}] forward (its logits alone are {:.0} MiB)",
        args.weight_dtype.as_str(),
        args.device,
        args.threads,
        (b * t) as f64 / fwd,
        (b * t * model.config().vocab_size * 4) as f64 / (1024.0 * 1024.0)
    );
    let Some(python) = &args.python else {
        println!("reference skipped: pass --python (a venv with transformers, torch, gguf)");
        return Ok(());
    };
    let scratch = crate::bench::scratch_dir("gemma")?;
    let tmp = scratch.path();
    let tokens = tmp.join("tokens.json");
    let rows: Vec<Vec<i64>> = ids.chunks(t).map(<[i64]>::to_vec).collect();
    sae_core::atomic::write(&tokens, serde_json::to_string(&rows)?)?;
    let logits_path = tmp.join("ref_logits.npy");
    let r = run_reference(
        Command::new(python)
            .arg(workspace_root().join("benches/python/gemma_ref.py"))
            .arg(&gguf)
            .arg("--tokens")
            .arg(&tokens)
            .arg("--threads")
            .arg(args.threads.to_string())
            .arg("--decode-tokens")
            .arg(n_dec.to_string())
            .arg("--out-logits")
            .arg(&logits_path),
    )?;
    let theirs = read_f32(&logits_path)?;
    let scale = theirs.data.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    let rel = last
        .iter()
        .zip(&theirs.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max)
        / scale;
    let greedy_equal = r["greedy"].as_array().map(|g| {
        g.iter()
            .map(|v| v.as_u64().unwrap_or(0) as u32)
            .collect::<Vec<_>>()
            == ours_greedy[0]
    });
    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    println!(
        "reference ({}, {} threads): load {:.2} s, forward {:.0} tokens/s, decode {:.1} tokens/s, peak RSS {:.0} MiB",
        r["impl"].as_str().unwrap_or("?"),
        r["threads"],
        f("load_s"),
        f("forward_tokens_per_s"),
        f("decode_tokens_per_s"),
        f("peak_rss_mib")
    );
    println!(
        "ratio (ours / reference): forward {:.2}×, decode {:.2}×; last-position logits max relative |Δ| = {rel:.2e}; greedy {n_dec} tokens equal: {greedy_equal:?}",
        ((b * t) as f64 / fwd) / f("forward_tokens_per_s"),
        dec / f("decode_tokens_per_s"),
    );
    if greedy_equal != Some(true) {
        println!(
            "ours:      {:?}\nreference: {}",
            ours_greedy[0], r["greedy"]
        );
    }
    Ok(())
}

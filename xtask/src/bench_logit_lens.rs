//! `cargo xtask bench logit-lens`: the top boosted and suppressed tokens of every latent
//! (`latent_geometry::logit_lens`, the feature-splitting table's token columns): W_dec · W_U over
//! GPT-2's vocabulary for 4096 latents, top and bottom 10, beside torch's `topk` on the same
//! matrices, with the share of identical token lists.

use std::process::Command;
use std::time::Instant;

use sae_core::device::tensor_from_vec;

use crate::bench::{
    Args, median, reference_seconds, run_reference, seconds_list, splitmix, workspace_root,
};

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let (n, d, vocab, k) = (4096usize, 768usize, 50_257usize, 10usize);
    let scratch = crate::bench::scratch_dir("logit-lens")?;
    let tmp = scratch.path();
    let w_dec = splitmix(31, n * d, 0.1);
    let w_u = splitmix(32, d * vocab, 0.1);
    let dev = args.device.burn_device()?;
    let wd = tensor_from_vec(w_dec.clone(), [n, d], &dev);
    let wu = tensor_from_vec(w_u.clone(), [d, vocab], &dev);
    // The batch the splitting stage uses.
    let config = latent_geometry::LogitLensConfig { k, batch: 1000 };
    let mut times = Vec::new();
    let mut out = Vec::new();
    for _ in 0..args.repeats.max(1) {
        let t0 = Instant::now();
        out = latent_geometry::logit_lens(&wd, &wu, None, config)?;
        times.push(t0.elapsed().as_secs_f64());
    }
    let ours = median(times.clone());
    println!(
        "logit lens: {n} latents × {d} · [{d}, {vocab}], top and bottom {k}, sae-geometry ({} device, {} threads): median {ours:.3} s ({})",
        args.device,
        args.threads,
        seconds_list(&times)
    );
    let ids: Vec<f32> = out
        .iter()
        .flat_map(|t| t.top_ids.iter().chain(&t.bottom_ids).map(|&i| i as f32))
        .collect();
    sae_core::npy::write_f32(tmp.join("ours_ids.npy"), &[n, 2 * k], &ids)?;
    sae_core::npy::write_f32(tmp.join("w_dec.npy"), &[n, d], &w_dec)?;
    sae_core::npy::write_f32(tmp.join("w_u.npy"), &[d, vocab], &w_u)?;
    let Some(python) = &args.python else {
        println!("reference skipped: pass --python (a venv with torch and numpy)");
        return Ok(());
    };
    let j = run_reference(
        Command::new(python)
            .arg(workspace_root().join("benches/python/logit_lens_ref.py"))
            .arg(tmp)
            .args(["--repeats", &args.repeats.max(1).to_string()])
            .args(["--threads", &args.threads.to_string()])
            .args(["--k", &k.to_string(), "--batch", "1000"])
            .env("OMP_NUM_THREADS", args.threads.to_string()),
    )?;
    let theirs = j["median_s"].as_f64().unwrap_or(f64::NAN);
    println!(
        "reference (torch {} topk, {} threads): median {theirs:.3} s ({}); ratio (reference / ours) {:.2}×; identical top-{k} lists {:.4}, bottom-{k} {:.4}",
        j["torch"].as_str().unwrap_or("?"),
        args.threads,
        seconds_list(&reference_seconds(&j)),
        theirs / ours,
        j["top_identical"].as_f64().unwrap_or(f64::NAN),
        j["bottom_identical"].as_f64().unwrap_or(f64::NAN),
    );
    Ok(())
}

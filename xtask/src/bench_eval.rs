//! `cargo xtask bench eval-sae`: SAE evaluation with the SAE spliced in (CE/KL scores and the
//! reconstruction metrics) on GPT-2 small (random weights), beside SAELens's `sae_lens.evals` on a
//! HookedSAETransformer, same model, SAE and tokens; reports the time ratio and every metric's
//! difference.

use std::process::Command;
use std::time::Instant;

use activation_store::eval::{EvalConfig, evaluate_sae};
use anyhow::{Context, bail};
use gpt2_gemma_models::{Gpt2, HookPoint, Processing};
use sae_core::{Architecture, Sae, SaeConfig};

use crate::bench::{Args, median, random_sae_params, run_reference, splitmix, workspace_root};

const BOS: u32 = 50256;

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let Some(python) = &args.python else {
        bail!("bench eval-sae needs --python (a venv with transformers and sae-lens)");
    };
    let dir = std::env::temp_dir().join("sae-geometry-gpt2-small-random");
    if !dir.join("model.safetensors").exists() {
        let st = Command::new(python)
            .arg(workspace_root().join("benches/python/gpt2_ref.py"))
            .arg("make")
            .arg(&dir)
            .status()?;
        anyhow::ensure!(st.success(), "making the random GPT-2 failed");
    }
    let dev = args.device.burn_device()?;
    let model =
        Gpt2::load(&dir, Processing::TransformerLens, &dev).context("loading the random GPT-2")?;

    // A standard SAE at blocks.6.hook_resid_pre: d_sae 6144, W_dec = W_encᵀ-like random.
    let (d_in, d_sae) = (768usize, 6144usize);
    let mut cfg = SaeConfig::new(d_in, d_sae, Architecture::Standard);
    cfg.metadata.hook_name = Some("blocks.6.hook_resid_pre".into());
    cfg.metadata.context_size = Some(128);
    cfg.metadata.prepend_bos = Some(true);
    let sae = Sae::from_parts(
        cfg,
        random_sae_params(d_in, d_sae, 21, 0.05, 0.05, &dev),
        None,
    )?;
    let scratch = crate::bench::scratch_dir("eval")?;
    let tmp = scratch.path();
    let sae_dir = tmp.join("sae");
    sae.save(&sae_dir)?;

    let (n_windows, ctx, batch) = (16usize, 128usize, 4usize);
    let windows: Vec<Vec<u32>> = splitmix(31, n_windows * ctx, 1.0)
        .chunks(ctx)
        .map(|r| {
            let mut w: Vec<u32> = r
                .iter()
                .map(|u| (((u + 1.0) / 2.0) * 50255.0) as u32)
                .collect();
            w[0] = BOS;
            w
        })
        .collect();
    let tokens_path = tmp.join("tokens.json");
    sae_core::atomic::write(&tokens_path, serde_json::to_string(&windows)?)?;
    let config = EvalConfig {
        batch_size: batch,
        ignore_tokens: vec![BOS],
        ..EvalConfig::default()
    };
    let hook = HookPoint::ResidPre(6);
    let _ = evaluate_sae(&model, &sae, hook, &windows[..batch], &config)?; // warm-up
    let mut times = Vec::new();
    let mut ours = None;
    for _ in 0..args.repeats.clamp(1, 3) {
        let t0 = Instant::now();
        ours = Some(evaluate_sae(&model, &sae, hook, &windows, &config)?);
        times.push(t0.elapsed().as_secs_f64());
    }
    let ours = ours.context("no run")?;
    let ours_s = median(times);
    println!(
        "eval-sae on GPT-2 small (random weights), {n_windows} windows × {ctx}, batch {batch}, SAE 768 → {d_sae} at {hook}: sae-geometry (burn {} device, {} threads) {ours_s:.2} s",
        args.device, args.threads
    );
    let r = run_reference(
        Command::new(python)
            .arg(workspace_root().join("benches/python/eval_sae_ref.py"))
            .arg(&dir)
            .arg(&sae_dir)
            .arg(&tokens_path)
            .arg("--threads")
            .arg(args.threads.to_string())
            .arg("--batch")
            .arg(batch.to_string()),
    )?;
    let theirs_s = r["seconds"].as_f64().unwrap_or(f64::NAN);
    println!(
        "reference ({}, {} threads): {theirs_s:.2} s; ratio (reference / ours) {:.2}×",
        r["impl"].as_str().unwrap_or("?"),
        r["threads"],
        theirs_s / ours_s
    );
    let m = &r["metrics"];
    for (name, key, v) in [
        ("CE clean", "ce_loss_without_sae", ours.ce_clean),
        ("CE with SAE", "ce_loss_with_sae", ours.ce_with_sae),
        (
            "CE zero-ablated",
            "ce_loss_with_ablation",
            ours.ce_zero_ablation,
        ),
        ("CE loss score", "ce_loss_score", ours.ce_loss_recovered),
        ("KL with SAE", "kl_div_with_sae", ours.kl_with_sae),
        ("KL score", "kl_div_score", ours.kl_div_score),
        (
            "explained variance",
            "explained_variance",
            ours.explained_variance,
        ),
        ("MSE", "mse", ours.mse),
        ("cossim", "cossim", ours.cossim),
        ("L0", "l0", ours.l0),
    ] {
        let t = m[key].as_f64().unwrap_or(f64::NAN);
        println!(
            "  {name:<20} ours {v:>12.6}  SAELens {t:>12.6}  |Δ| {:.2e}",
            (v - t).abs()
        );
    }
    Ok(())
}

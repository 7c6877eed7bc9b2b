//! `cargo xtask bench absorption`: the 26 first-letter probes of the absorption analysis
//! (class-balanced logistic regression, one-vs-rest) beside scikit-learn on the same data, and
//! the absorption metrics of one SAE on it.

use std::process::Command;
use std::time::Instant;

use anyhow::bail;
use latent_geometry::absorption::{AbsorptionConfig, LetterData, absorption, train_letter_probes};
use sae_core::npy::{write_f32, write_i64};
use sae_core::{Architecture, Sae, SaeConfig};

use crate::bench::{Args, random_sae_params, run_reference, splitmix, workspace_root};

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    // 12 000 words in d = 640 (gemma-3-270m's width): each letter a random direction, each word
    // its letter's direction plus noise of the same size.
    let (n, d) = (12_000usize, 640usize);
    let dirs = splitmix(41, 26 * d, 1.0);
    let noise = splitmix(42, n * d, 1.0);
    let labels: Vec<u8> = splitmix(43, n, 1.0)
        .iter()
        .map(|u| (((u + 1.0) / 2.0 * 25.999) as u8).min(25))
        .collect();
    let x: Vec<f32> = (0..n)
        .flat_map(|i| {
            let l = labels[i] as usize;
            let (dirs, noise) = (&dirs, &noise);
            (0..d).map(move |k| 0.25 * dirs[l * d + k] + noise[i * d + k])
        })
        .collect();
    let cfg = AbsorptionConfig::default();
    let data = LetterData::new(x.clone(), d, labels.clone(), &cfg)?;
    let t0 = Instant::now();
    let probes = train_letter_probes(&data, &cfg)?;
    let ours_s = t0.elapsed().as_secs_f64();
    anyhow::ensure!(probes.len() == 26, "only {} letters probed", probes.len());
    let f1 = probes.iter().map(|p| p.test_f1).sum::<f64>() / 26.0;
    println!(
        "absorption probes: 26 × logistic regression on [{}, {d}] (class-balanced, C = 1): sae-geometry ({} threads) {ours_s:.2} s, mean test F1 {f1:.3}",
        data.train.len(),
        args.threads
    );

    // The metrics of a random 640 → 5120 SAE on the same words.
    let dev = args.device.burn_device()?;
    let d_sae = 5120;
    let mut scfg = SaeConfig::new(d, d_sae, Architecture::TopK);
    scfg.k = Some(32);
    let sae = Sae::from_parts(
        scfg,
        random_sae_params(d, d_sae, 51, 0.05, 0.01, &dev),
        None,
    )?;
    let t0 = Instant::now();
    let r = absorption(&sae, &data, &probes, &cfg)?;
    println!(
        "absorption metrics of a random TopK 640 → {d_sae} SAE on the same words: {:.2} s (mean full-absorption rate {:.3})",
        t0.elapsed().as_secs_f64(),
        r.mean_full_absorption_rate
    );

    let Some(python) = &args.python else {
        bail!("bench absorption needs --python (a venv with scikit-learn) for the reference");
    };
    let scratch = crate::bench::scratch_dir("absorption")?;
    let tmp = scratch.path();
    write_f32(tmp.join("x.npy"), &[n, d], &x)?;
    write_i64(
        tmp.join("labels.npy"),
        &labels.iter().map(|l| i64::from(*l)).collect::<Vec<_>>(),
    )?;
    write_i64(
        tmp.join("train.npy"),
        &data.train.iter().map(|i| *i as i64).collect::<Vec<_>>(),
    )?;
    let coef: Vec<f32> = probes
        .iter()
        .flat_map(|p| {
            p.probe
                .weights
                .iter()
                .chain([&p.probe.bias])
                .map(|w| *w as f32)
        })
        .collect();
    write_f32(tmp.join("coef.npy"), &[26, d + 1], &coef)?;
    let r = run_reference(
        Command::new(python)
            .arg(workspace_root().join("benches/python/absorption_ref.py"))
            .arg(tmp.join("x.npy"))
            .arg(tmp.join("labels.npy"))
            .arg(tmp.join("train.npy"))
            .arg(tmp.join("coef.npy"))
            .arg("--threads")
            .arg(args.threads.to_string()),
    )?;
    for solver in ["newton-cholesky", "lbfgs"] {
        let s = r[format!("{solver}_s")].as_f64().unwrap_or(f64::NAN);
        println!(
            "reference ({} {solver}, {} threads): {s:.2} s; ratio (reference / ours) {:.2}×; max |Δcoef| / max |coef| = {:.1e}; objective summed over letters: theirs {:.6}, ours {:.6}",
            r["impl"].as_str().unwrap_or("?"),
            r["threads"],
            s / ours_s,
            r[format!("{solver}_max_rel_coef_diff")]
                .as_f64()
                .unwrap_or(f64::NAN),
            r[format!("{solver}_objective")]
                .as_f64()
                .unwrap_or(f64::NAN),
            r["ours_objective"].as_f64().unwrap_or(f64::NAN),
        );
    }
    Ok(())
}

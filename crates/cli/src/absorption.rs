//! `sae-geometry absorption`: feature absorption on the first-letter task (Chanin et al.), with
//! SAEBench's metrics, for one SAE or a family of widths.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use gpt2_gemma_models::{BosPolicy, CacheFilter, HookPoint, LanguageModel};
use indicatif::{ProgressBar, ProgressStyle};
use latent_geometry::absorption::{
    AbsorptionConfig, LETTERS, LetterData, absorption, train_letter_probes,
};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use sae_core::SaeSource;
use sae_core::device::{int_tensor_from_vec, tensor_to_vec};

use super::model_args::ModelArgs;

/// Arguments of `absorption`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model the SAEs read.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The SAEs (directories or RELEASE/SAE_ID), all at one hook; repeat for a family of widths.
    #[arg(long, required = true)]
    pub sae: Vec<SaeSource>,
    /// Words evaluated (single-token words with a leading space, sampled from the vocabulary).
    #[arg(long, default_value_t = 3000)]
    pub words: usize,
    /// In-context examples before each word ("{word} has the first letter: {L}").
    #[arg(long, default_value_t = 5)]
    pub icl_examples: usize,
    /// Words per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Seed of the word sample and the train/test split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Largest k of the k-sparse probes.
    #[arg(long, default_value_t = 5)]
    pub max_k: usize,
    /// Output directory: absorption.csv (a row per SAE × letter), summary.json (per SAE, with
    /// the configuration), words.json (the words and the prompt prefix).
    #[arg(long)]
    pub out: PathBuf,
}

/// A word token: a leading space then letters only.
fn is_word(s: &str) -> bool {
    s.strip_prefix(' ')
        .is_some_and(|w| w.len() >= 2 && w.chars().all(|c| c.is_ascii_alphabetic()))
}

/// Runs `absorption`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (model, tok) = args.model.load()?;
    let loaded = args.model.load_saes(&args.sae, &model.device())?;
    let hooks: Vec<HookPoint> = loaded.iter().map(|(_, h)| *h).collect();
    let saes: Vec<_> = loaded.into_iter().map(|(s, _)| s).collect();
    let hook = hooks[0];
    anyhow::ensure!(
        hooks.iter().all(|h| *h == hook),
        "the SAEs sit at different hooks: {hooks:?}"
    );
    let layer = hook.layer().context("the hook belongs to no block")?;

    let mut vocab: Vec<(u32, String)> = (0..model.vocab_size() as u32)
        .filter_map(|i| tok.decode(&[i]).ok().map(|s| (i, s)))
        .filter(|(_, s)| is_word(s))
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    vocab.shuffle(&mut rng);
    anyhow::ensure!(
        vocab.len() > args.icl_examples + 26,
        "the vocabulary has only {} word tokens",
        vocab.len()
    );
    let (icl, rest) = vocab.split_at(args.icl_examples);
    let words: Vec<&(u32, String)> = rest.iter().take(args.words).collect();
    let prefix: String = icl
        .iter()
        .map(|(_, w)| {
            let first = w
                .trim_start()
                .chars()
                .next()
                .unwrap_or('?')
                .to_ascii_uppercase();
            format!("{w} has the first letter: {first}\n")
        })
        .collect();
    let prefix_ids = tok.encode_with(&prefix, BosPolicy::Prepend)?;
    let labels: Vec<u8> = words
        .iter()
        .map(|(_, w)| {
            let c = w
                .trim_start()
                .chars()
                .next()
                .unwrap_or('a')
                .to_ascii_lowercase();
            LETTERS.iter().position(|l| *l == c).unwrap_or(0) as u8
        })
        .collect();

    // The residual at each word's position (the prompt ends there: the model is causal).
    let t = prefix_ids.len() + 1;
    let d = model.d_model();
    let bar = ProgressBar::new(words.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} words {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut x = Vec::with_capacity(words.len() * d);
    for chunk in words.chunks(args.batch_size.max(1)) {
        let ids: Vec<i64> = chunk
            .iter()
            .flat_map(|(w, _)| {
                prefix_ids
                    .iter()
                    .map(|&i| i64::from(i))
                    .chain([i64::from(*w)])
            })
            .collect();
        let tokens = int_tensor_from_vec(ids, [chunk.len(), t], &model.device());
        let (_, cache) =
            model.run_with_cache(tokens, CacheFilter::Only(vec![hook]), Some(layer + 1))?;
        let a = cache.get3(hook).context("the hook was not cached")?;
        let last = a
            .slice([0..chunk.len(), t - 1..t, 0..d])
            .reshape([chunk.len(), d]);
        x.extend(tensor_to_vec(last)?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();

    let cfg = AbsorptionConfig {
        seed: args.seed,
        max_k: args.max_k,
        ..AbsorptionConfig::default()
    };
    let data = LetterData::new(x, d, labels, &cfg)?;
    let probes = train_letter_probes(&data, &cfg)?;
    let mean_probe_f1 = probes.iter().map(|p| p.test_f1).sum::<f64>() / probes.len().max(1) as f64;
    eprintln!(
        "{} words ({} test), {} letters probed at {hook}: mean probe F1 {mean_probe_f1:.3}",
        data.labels.len(),
        data.test.len(),
        probes.len()
    );
    std::fs::create_dir_all(&args.out)?;
    let mut csv = sae_core::atomic::AtomicFile::create(args.out.join("absorption.csv"))?;
    writeln!(
        csv,
        "sae,d_sae,letter,probe_f1,main_latents,main_f1,probe_true_positives,main_false_negatives,full_absorptions,full_absorption_rate,mean_absorption_fraction,top_absorbers"
    )?;
    let mut summary = Vec::new();
    for (src, sae) in args.sae.iter().zip(&saes) {
        let r = absorption(sae, &data, &probes, &cfg)
            .with_context(|| format!("absorption of {src}"))?;
        for l in &r.letters {
            let join = |v: Vec<String>| v.join(" ");
            writeln!(
                csv,
                "\"{}\",{},{},{},{},{},{},{},{},{},{},{}",
                src.to_string().replace('"', "\"\""),
                sae.d_sae(),
                l.letter,
                l.probe_f1,
                join(l.main_latents.iter().map(ToString::to_string).collect()),
                l.main_f1,
                l.probe_true_positives,
                l.main_false_negatives,
                l.full_absorptions,
                l.full_absorption_rate,
                l.mean_absorption_fraction,
                join(
                    l.top_absorbers
                        .iter()
                        .map(|(j, c)| format!("{j}:{c}"))
                        .collect()
                ),
            )?;
        }
        eprintln!(
            "{src} (d_sae {}): mean full-absorption rate {:.4}, mean absorption fraction {:.4}, {:.2} main latents per letter",
            sae.d_sae(),
            r.mean_full_absorption_rate,
            r.mean_absorption_fraction,
            r.mean_main_latents
        );
        summary.push(serde_json::json!({
            "sae": src.to_string(),
            "d_sae": sae.d_sae(),
            "mean_full_absorption_rate": r.mean_full_absorption_rate,
            "mean_absorption_fraction": r.mean_absorption_fraction,
            "mean_main_latents": r.mean_main_latents,
            "letters": r.letters,
        }));
    }
    csv.commit()?;
    let out = serde_json::json!({
        "model": args.model.model.to_string(),
        "hook": hook.to_string(),
        "n_words": data.labels.len(),
        "n_test": data.test.len(),
        "mean_probe_f1": mean_probe_f1,
        "config": cfg,
        "saes": summary,
    });
    sae_core::atomic::write(
        args.out.join("summary.json"),
        serde_json::to_string_pretty(&out)?,
    )?;
    let words_json = serde_json::json!({
        "prefix": prefix,
        "words": words.iter().map(|(i, w)| serde_json::json!([i, w])).collect::<Vec<_>>(),
    });
    sae_core::atomic::write(
        args.out.join("words.json"),
        serde_json::to_string(&words_json)?,
    )?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

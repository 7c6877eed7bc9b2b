//! `sae-geometry absorption`: feature absorption on the first-letter task (Chanin et al.), with
//! SAEBench's metrics, for one SAE or a family of widths.

use std::path::PathBuf;

use activation_store::{FirstLetterConfig, first_letter_prompts, first_letter_residuals};
use gpt2_gemma_models::{HookPoint, LanguageModel};
use latent_geometry::absorption::{AbsorptionConfig, absorption_study};
use sae_core::SaeSource;

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

/// Runs `absorption`: the probing dataset and residuals ([`first_letter_prompts`],
/// [`first_letter_residuals`]), one [`absorption_study`] call, the outputs.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (model, tok) = args.model.load()?;
    let loaded = args.model.load_saes(&args.sae, &model.device())?;
    let hook = loaded[0].1;
    let hooks: Vec<HookPoint> = loaded.iter().map(|(_, h)| *h).collect();
    anyhow::ensure!(
        hooks.iter().all(|h| *h == hook),
        "the SAEs sit at different hooks: {hooks:?}"
    );
    let fl = FirstLetterConfig {
        words: args.words,
        icl_examples: args.icl_examples,
        batch_size: args.batch_size,
        seed: args.seed,
    };
    let prompts = first_letter_prompts(&tok, model.vocab_size(), &fl)?;
    let x = first_letter_residuals(&model, &tok, hook, &prompts, &fl, true)?;
    let cfg = AbsorptionConfig {
        seed: args.seed,
        max_k: args.max_k,
        ..AbsorptionConfig::default()
    };
    let names: Vec<(String, &sae_core::Sae)> = args
        .sae
        .iter()
        .zip(&loaded)
        .map(|(src, (sae, _))| (src.to_string(), sae))
        .collect();
    let study = absorption_study(x, model.d_model(), &prompts.first_letters(), &names, &cfg)?;
    eprintln!(
        "{} words ({} test), {} letters probed at {hook}: mean probe F1 {:.3}",
        study.data.labels.len(),
        study.data.test.len(),
        study.probes.len(),
        study.mean_probe_f1
    );
    for (name, d_sae, r) in &study.saes {
        eprintln!(
            "{name} (d_sae {d_sae}): mean full-absorption rate {:.4}, mean absorption fraction {:.4}, {:.2} main latents per letter",
            r.mean_full_absorption_rate, r.mean_absorption_fraction, r.mean_main_latents
        );
    }
    study.save(&args.out, &args.model.model.to_string(), &hook.to_string())?;
    let words_json = serde_json::json!({
        "prefix": prompts.prefix,
        "words": prompts.words.iter().map(|(i, w)| serde_json::json!([i, w])).collect::<Vec<_>>(),
    });
    sae_core::atomic::write(
        args.out.join("words.json"),
        serde_json::to_string(&words_json)?,
    )?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

//! Feature absorption, which the tutorial describes (Chanin et al., "A is for Absorption"), as
//! library calls: first-letter probes on gemma-3-270m's residual stream at the SAE's hook, then
//! for each letter the SAE's main latents and how often other latents absorb the feature
//! (SAEBench's metrics).
//!
//! ```sh
//! cargo run -p sae-geometry --example absorption -- SAE_DIR [SAE_DIR …] --out absorption
//! ```
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use sae_geometry::Sae;
use sae_geometry::core::device::cpu;
use sae_geometry::geometry::absorption::{AbsorptionConfig, absorption_study};
use sae_geometry::models::gguf::GgufFile;
use sae_geometry::models::{
    AnyTokenizer, Gemma, GemmaTokenizer, HookPoint, LanguageModel, offline,
};
use sae_geometry::store::{FirstLetterConfig, first_letter_prompts, first_letter_residuals};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Arguments: SAE directories (one hook), then `--out DIR`.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dirs, out) = match args.iter().position(|a| a == "--out") {
        Some(i) => (
            &args[..i],
            PathBuf::from(args.get(i + 1).ok_or("--out DIR")?),
        ),
        None => (&args[..], PathBuf::from("absorption-example")),
    };
    if dirs.is_empty() {
        return Err("pass the SAE directories".into());
    }

    let file = GgufFile::open(offline::install_gemma3_270m_gguf()?)?;
    let device = cpu();
    let model = Gemma::load_gguf(&file, &device)?;
    let tokenizer = AnyTokenizer::Gemma(GemmaTokenizer::from_gguf(&file)?);
    let saes = dirs
        .iter()
        .map(|d| Sae::load(d, &device))
        .collect::<Result<Vec<_>, _>>()?;
    let hook: HookPoint = saes[0]
        .config()
        .hook_name()
        .ok_or("no hook_name")?
        .parse()?;

    // The probing data: single-token words after five "{word} has the first letter: {L}" lines.
    let words = FirstLetterConfig {
        words: 1000, // SAEBench: 3000
        ..FirstLetterConfig::default()
    };
    let prompts = first_letter_prompts(&tokenizer, model.vocab_size(), &words)?;
    let x = first_letter_residuals(&model, &tokenizer, hook, &prompts, &words, true)?;

    // Probes, main latents (k-sparse probing) and absorption, for every SAE.
    let named: Vec<(String, &Sae)> = dirs.iter().cloned().zip(&saes).collect();
    let study = absorption_study(
        x,
        model.d_model(),
        &prompts.first_letters(),
        &named,
        &AbsorptionConfig::default(),
    )?;

    println!("mean probe F1 {:.3} at {hook}", study.mean_probe_f1);
    for (name, width, r) in &study.saes {
        println!(
            "{name} ({width} latents): full-absorption rate {:.3}, absorption fraction {:.3}",
            r.mean_full_absorption_rate, r.mean_absorption_fraction
        );
    }
    study.save(&out, "gemma-3-270m", &hook.to_string())?;
    println!("→ {}", out.display());
    Ok(())
}

//! The tutorial's patch-scoping section as library calls: a latent's decoder direction replaces
//! the residual stream entering layer 2 at the placeholder of "What is the meaning of the word
//! X?", and gemma-3-270m (the offline default model) explains it in its own words — at the
//! tutorial's scales 0…50, with each scale's tuning metrics and the chosen scale.
//!
//! ```sh
//! cargo run -p sae-geometry --example patch_scoping -- SAE_DIR LATENT --out scoping.json
//! ```
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use sae_geometry::Sae;
use sae_geometry::core::device::cpu;
use sae_geometry::models::gguf::GgufFile;
use sae_geometry::models::{AnyTokenizer, Gemma, GemmaTokenizer, offline};
use sae_geometry::patch_scoping::{Scales, StudyConfig, decoder_row, run_study};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Arguments: the SAE directory, the latent, then `--out FILE`.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [sae_dir, latent, ..] = &args[..] else {
        return Err("pass SAE_DIR LATENT [--out FILE]".into());
    };
    let latent: usize = latent.parse()?;
    let out = match args.iter().position(|a| a == "--out") {
        Some(i) => PathBuf::from(args.get(i + 1).ok_or("--out FILE")?),
        None => PathBuf::from("patch-scoping-example/scoping.json"),
    };

    // model = HookedSAETransformer.from_pretrained(...), sae = SAE.from_pretrained(...)
    let file = GgufFile::open(offline::install_gemma3_270m_gguf()?)?;
    let device = cpu();
    let model = Gemma::load_gguf(&file, &device)?;
    let tokenizer = AnyTokenizer::Gemma(GemmaTokenizer::from_gguf(&file)?);
    let sae = Sae::load(sae_dir, &device)?;

    // for scale in [0, 10, 20, 30, 40, 50]:
    //     generate_patch_scoping_explanation(model, prompt, sae, latent, replacement_layer=2, ...)
    let mut cfg = StudyConfig::new(2);
    cfg.scales = Scales::Absolute(vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0]);
    cfg.max_new_tokens = 20; // the tutorial: 50
    let study = run_study(&model, &tokenizer, &decoder_row(&sae, latent)?, &cfg)?;

    for (g, scale) in study.generations.iter().zip(&study.requested) {
        println!("scale {scale:>4} | {:?}", g.explanation);
    }
    if let Some(c) = study.chosen() {
        println!(
            "chosen scale {} (by the tuning metrics)",
            study.requested[c]
        );
    }
    let json = study.to_json(Some(latent), Some(sae_dir.as_str()));
    study.save_as(&out, &format!("latent {latent}"), &json)?;
    println!("→ {} (+ .html, .png)", out.display());
    Ok(())
}

//! Meta-SAEs, which the tutorial describes (Bussmann et al.), as library calls: a small BatchTopK
//! SAE trained on an SAE's unit decoder rows, so that each latent decomposes into a few
//! meta-latents — the building blocks that wider SAEs split and absorb.
//!
//! ```sh
//! cargo run -p sae-geometry --example meta_sae -- SAE_DIR --out meta-sae
//! ```
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use sae_geometry::Sae;
use sae_geometry::core::device::cpu;
use sae_geometry::store::meta_sae::{MetaSaeConfig, decompose, train_meta_sae};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Arguments: the SAE directory, then `--out DIR`.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sae_dir = args.first().ok_or("pass SAE_DIR [--out DIR]")?;
    let out = match args.iter().position(|a| a == "--out") {
        Some(i) => PathBuf::from(args.get(i + 1).ok_or("--out DIR")?),
        None => PathBuf::from("meta-sae-example"),
    };
    let sae = Sae::load(sae_dir, &cpu())?;

    // The meta-SAE (the paper's defaults): d_sae / 20 meta-latents (at least 8), k = 4, trained
    // on the unit decoder rows.
    let mut cfg = MetaSaeConfig::for_sae(sae.d_sae());
    cfg.steps = 500; // the default: 2000
    let (meta, metrics) = train_meta_sae(&sae, cfg, true)?;
    println!(
        "{} meta-latents: explained variance {:.3}, L0 {:.2}",
        cfg.d_meta, metrics.explained_variance, metrics.l0
    );
    meta.save(&out)?;

    // Each latent as a few meta-latents; latents sharing a meta-latent share a building block.
    let parts = decompose(&sae, &meta)?;
    for p in parts.iter().take(8) {
        let comps: Vec<String> = p
            .components
            .iter()
            .take(4)
            .map(|(m, a)| format!("m{m}:{a:.2}"))
            .collect();
        println!(
            "latent {:>5}: cos {:.3}  {}",
            p.latent,
            p.reconstruction_cosine,
            comps.join(" ")
        );
    }
    println!("→ {}", out.display());
    Ok(())
}

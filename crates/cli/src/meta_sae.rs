//! `sae-geometry meta-sae`.

use std::io::Write;
use std::path::PathBuf;

use activation_store::meta_sae::{MetaSaeConfig, decompose, train_meta_sae};
use sae_core::{ComputeDevice, SaeSource};

/// Arguments of `meta-sae`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The SAE whose decoder rows are decomposed: a directory or RELEASE/SAE_ID.
    #[arg(long)]
    pub sae: SaeSource,
    /// Meta-latents (default: d_sae / 20).
    #[arg(long)]
    pub d_meta: Option<usize>,
    /// Mean active meta-latents per latent.
    #[arg(long, default_value_t = 4.0)]
    pub k: f64,
    /// Training steps.
    #[arg(long, default_value_t = 2000)]
    pub steps: usize,
    /// Decoder rows per batch.
    #[arg(long, default_value_t = 1024)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Compute device.
    #[arg(long, default_value = "cpu")]
    pub device: ComputeDevice,
    /// Output directory: the meta-SAE (SAELens format, JumpReLU) and `decomposition.jsonl`
    /// (one line per latent: latent, components [[meta_latent, activation]], reconstruction_cosine).
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `meta-sae`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let device = args.device.burn_device()?;
    let sae = args.sae.load(&sae_core::HubClient::from_env(), &device)?;
    let mut cfg = MetaSaeConfig::for_sae(sae.d_sae());
    if let Some(d) = args.d_meta {
        cfg.d_meta = d;
    }
    cfg.k = args.k;
    cfg.steps = args.steps;
    cfg.batch_size = args.batch_size;
    cfg.lr = args.lr;
    cfg.seed = args.seed;
    let (meta, m) = train_meta_sae(&sae, cfg, true)?;
    meta.save(&args.out)?;
    let parts = decompose(&sae, &meta)?;
    let mut f = sae_core::atomic::AtomicFile::create(args.out.join("decomposition.jsonl"))?;
    for p in &parts {
        writeln!(f, "{}", serde_json::to_string(p)?)?;
    }
    f.commit()?;
    let mean_cos = parts
        .iter()
        .map(|p| f64::from(p.reconstruction_cosine))
        .sum::<f64>()
        / parts.len().max(1) as f64;
    eprintln!(
        "meta-SAE with {} meta-latents: explained variance {:.3}, L0 {:.2}; mean reconstruction cosine {:.3} → {}",
        cfg.d_meta,
        m.explained_variance,
        m.l0,
        mean_cos,
        args.out.display()
    );
    Ok(())
}

//! `sae-geometry logit-enrichment`: per latent, the moments of its logit weights and its
//! enrichment in token sets (leading space, capitalised, digits, single characters, first
//! letters), as a CSV table, JSONL, and a skewness × kurtosis scatter plot (HTML + PNG).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use gpt2_gemma_models::LanguageModel;
use latent_geometry::logit_enrichment::{TokenSet, logit_enrichment};
use latent_geometry::plot::{ColorBy, PlotLabels, write_html, write_png};
use latent_geometry::splitting::SplittingRow;
use sae_core::SaeSource;

use super::model_args::ModelArgs;
use sae_core::latents::parse_latents;

/// Arguments of `logit-enrichment`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model whose unembedding to use.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The SAE: a directory or RELEASE/SAE_ID.
    #[arg(long)]
    pub sae: SaeSource,
    /// Latents: `all`, or indices and ranges such as `0-99,120`.
    #[arg(long, default_value = "all")]
    pub latents: String,
    /// Top tokens tested for enrichment (hypergeometric test).
    #[arg(long, default_value_t = 25)]
    pub k: usize,
    /// Latents per batch (memory: batch × vocab floats).
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Output directory: enrichment.csv (one row per latent × set), stats.csv (one row per
    /// latent), enrichment.jsonl, skew_kurtosis.html and .png.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `logit-enrichment`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (model, tok) = args.model.load()?;
    let sae = args.model.load_residual_sae(&args.sae, &model)?;
    let latents =
        parse_latents(&args.latents, sae.d_sae())?.unwrap_or_else(|| (0..sae.d_sae()).collect());
    let vocab = tok.str_tokens(&(0..model.vocab_size() as u32).collect::<Vec<_>>())?;
    let sets = TokenSet::default_masks(&vocab);
    let res = logit_enrichment(
        &sae.w_dec(),
        &model.unembed(),
        &latents,
        &sets,
        args.k,
        args.batch,
    )?;
    std::fs::create_dir_all(&args.out)?;
    let mut stats = sae_core::atomic::AtomicFile::create(args.out.join("stats.csv"))?;
    let mut en = sae_core::atomic::AtomicFile::create(args.out.join("enrichment.csv"))?;
    let mut jl = sae_core::atomic::AtomicFile::create(args.out.join("enrichment.jsonl"))?;
    writeln!(
        stats,
        "latent,mean,variance,skewness,kurtosis,best_set,best_set_hits,best_set_hypergeom_p"
    )?;
    writeln!(
        en,
        "latent,set,set_size,top_k,hits,hypergeom_p,mann_whitney_u,mann_whitney_p"
    )?;
    let mut rows = Vec::with_capacity(res.len());
    for (s, e) in &res {
        let best = e
            .iter()
            .min_by(|a, b| a.hypergeom_p.total_cmp(&b.hypergeom_p))
            .context("no token sets")?;
        writeln!(
            stats,
            "{},{},{},{},{},{},{},{:e}",
            s.latent,
            s.mean,
            s.variance,
            s.skewness,
            s.kurtosis,
            best.set,
            best.hits,
            best.hypergeom_p
        )?;
        for x in e {
            writeln!(
                en,
                "{},{},{},{},{},{:e},{},{:e}",
                s.latent,
                x.set,
                x.set_size,
                x.top_k,
                x.hits,
                x.hypergeom_p,
                x.mann_whitney_u,
                x.mann_whitney_p
            )?;
        }
        writeln!(jl, "{}", serde_json::json!({ "stats": s, "enrichment": e }))?;
        rows.push(SplittingRow {
            sae_width: sae.d_sae(),
            latent_idx: s.latent,
            umap_x: s.skewness as f32,
            umap_y: (s.kurtosis.max(0.0) + 1.0).ln() as f32,
            description: format!(
                "skew {:.2}, kurtosis {:.1}; most enriched: {} ({} of top {}, p = {:.1e})",
                s.skewness, s.kurtosis, best.set, best.hits, best.top_k, best.hypergeom_p
            ),
            top_token_strs: String::new(),
            cluster: None,
            family: None,
            family_evidence: None,
        });
    }
    stats.commit()?;
    en.commit()?;
    jl.commit()?;
    let title = "Latents by logit-weight skewness (x) and ln(1 + excess kurtosis) (y)";
    write_html(
        &rows,
        ColorBy::Width,
        title,
        &args.out.join("skew_kurtosis.html"),
    )?;
    let labels = PlotLabels {
        title,
        x: "skewness of the latent's logit weights",
        y: "ln(1 + excess kurtosis)",
    };
    write_png(
        &rows,
        ColorBy::Width,
        labels,
        &args.out.join("skew_kurtosis.png"),
    )?;
    eprintln!(
        "{} latents × {} sets → {}",
        res.len(),
        sets.len(),
        args.out.display()
    );
    Ok(())
}

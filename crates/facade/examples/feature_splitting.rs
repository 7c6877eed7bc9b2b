//! The tutorial's feature-splitting section as library calls: SAEs of several widths on
//! gemma-3-270m (the offline default model), the 2-D UMAP of their decoders with each latent's top
//! boosted tokens, the cross-width families, a table and an interactive HTML map.
//!
//! ```sh
//! cargo xtask reproduce-splitting --corpus CORPUS.jsonl    # trains SAEs of widths 640·{1, 2, 4}
//! cargo run -p sae-geometry --example feature_splitting -- \
//!     runs/reproduce-splitting/work/saes/topk-{640,1280,2560} --out splitting-example
//! ```
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use sae_geometry::Sae;
use sae_geometry::core::device::cpu;
use sae_geometry::geometry::plot::{ColorBy, write_html};
use sae_geometry::geometry::table::write_csv;
use sae_geometry::geometry::{
    LogitLensConfig, SplittingConfig, SplittingSae, compute_sae_umap_data,
};
use sae_geometry::models::gguf::GgufFile;
use sae_geometry::models::{AnyTokenizer, Gemma, GemmaTokenizer, LanguageModel, offline};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Arguments: SAE directories, then `--out DIR`.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (saes, out) = match args.iter().position(|a| a == "--out") {
        Some(i) => (
            &args[..i],
            PathBuf::from(args.get(i + 1).ok_or("--out DIR")?),
        ),
        None => (&args[..], PathBuf::from("splitting-example")),
    };
    if saes.is_empty() {
        return Err(
            "pass the SAE directories (e.g. from `cargo xtask reproduce-splitting`)".into(),
        );
    }

    // model = HookedSAETransformer.from_pretrained(...): here the offline GGUF.
    let file = GgufFile::open(offline::install_gemma3_270m_gguf()?)?;
    let device = cpu();
    let model = Gemma::load_gguf(&file, &device)?;
    let tokenizer = AnyTokenizer::Gemma(GemmaTokenizer::from_gguf(&file)?);

    // saes = {width: SAE.from_pretrained(...)}
    let saes = saes
        .iter()
        .map(|d| Sae::load(d, &device))
        .collect::<Result<Vec<_>, _>>()?;
    let inputs: Vec<SplittingSae<'_>> = saes
        .iter()
        .map(|sae| SplittingSae {
            sae,
            descriptions: None,
        })
        .collect();

    // umap_df = compute_sae_umap_data(saes, autointerp_dfs, sae_widths, model)
    let result = compute_sae_umap_data(
        &inputs,
        &model.unembed(),
        |ids| tokenizer.str_tokens(ids),
        LogitLensConfig::default(),
        &SplittingConfig {
            random_state: Some(0),
            ..SplittingConfig::default()
        },
    )?;

    std::fs::create_dir_all(&out)?;
    write_csv(&result.rows, &out.join("splitting.csv"))?;
    write_html(
        &result.rows,
        ColorBy::Width,
        "Feature Splitting in SAEs",
        &out.join("splitting.html"),
    )?;
    for row in result.rows.iter().take(5) {
        println!(
            "{:>6} {:>5}  ({:+.2}, {:+.2})  {}",
            row.sae_width, row.latent_idx, row.umap_x, row.umap_y, row.top_token_strs
        );
    }
    println!("{:?}\n→ {}", result.summary(), out.display());
    Ok(())
}

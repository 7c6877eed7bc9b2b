//! The glue between the crates that measure a family's evidence and the one that weighs it:
//! co-firing from `activation-store`, description embeddings from `gpt2-gemma-models`, families
//! in `latent-geometry` (which depends on neither, by design: docs/ARCHITECTURE.md).

use std::path::{Path, PathBuf};

use activation_store::CoFiring;
use activation_store::cache::ActivationCacheDir;
use gpt2_gemma_models::SentenceEmbedder;
use latent_geometry::SplittingResult;
use latent_geometry::families::{
    CoFiringScores, EvidenceFamily, FamilyInputs, FamilyThresholds, families,
};
use sae_core::Sae;

/// What can go wrong gathering a family's evidence: each source crate's error, by source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// Co-firing statistics (`activation-store`).
    #[error(transparent)]
    Store(#[from] activation_store::StoreError),
    /// The sentence embedder (`gpt2-gemma-models`).
    #[error(transparent)]
    Model(#[from] gpt2_gemma_models::ModelError),
    /// Weighing the families (`latent-geometry`).
    #[error(transparent)]
    Geometry(#[from] latent_geometry::GeometryError),
    /// Reading a decoder (`sae-core`).
    #[error(transparent)]
    Sae(#[from] sae_core::SaeError),
}

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

/// Where co-firing comes from: an activation cache at the SAEs' hook, and a folder where each
/// pair's statistics are saved (`cofiring-NARROW-WIDE.json`) and reused when present, so an
/// interrupted study does not recompute them.
#[derive(Debug, Clone)]
pub struct CoFiringSource<'a> {
    /// The cache.
    pub cache: &'a ActivationCacheDir,
    /// Where the statistics are kept.
    pub dir: &'a Path,
    /// Draw progress bars.
    pub progress: bool,
    /// Shards of the cache to use (all when `None`).
    pub shards: Option<std::ops::Range<usize>>,
}

/// Co-firing of `narrow` and `wide` on the cache's tokens, loaded from `dir` when a previous run
/// saved it (same widths), else computed and saved.
///
/// # Errors
/// The cache's and the statistics' errors.
pub fn cofiring_cached(
    src: CoFiringSource<'_>,
    narrow: &Sae,
    wide: &Sae,
) -> Result<CoFiring, EvidenceError> {
    let file: PathBuf = src
        .dir
        .join(format!("cofiring-{}-{}.json", narrow.d_sae(), wide.d_sae()));
    if let Ok(s) = CoFiring::load(&file)
        && s.n_narrow() == narrow.d_sae()
        && s.n_wide() == wide.d_sae()
    {
        return Ok(s);
    }
    let s = activation_store::cofiring_from_cache(
        src.cache,
        narrow,
        wide,
        src.shards.clone(),
        src.progress,
    )?;
    std::fs::create_dir_all(src.dir).map_err(|e| activation_store::StoreError::Io {
        path: src.dir.to_path_buf(),
        source: e,
    })?;
    s.save(&file)?;
    Ok(s)
}

/// Families with evidence between each pair of consecutive widths of a feature-splitting
/// study's SAEs: decoder cosine always, co-firing when `cofiring` is given, description
/// similarity (of the descriptions in `result`'s rows) when `embedder` is. Pass the result to
/// [`SplittingResult::set_evidence_families`].
///
/// # Errors
/// [`EvidenceError`] from the source that failed.
pub fn splitting_families(
    saes: &[Sae],
    result: &SplittingResult,
    cofiring: Option<CoFiringSource<'_>>,
    embedder: Option<&SentenceEmbedder>,
    thresholds: &FamilyThresholds,
) -> Result<Vec<EvidenceFamily>, EvidenceError> {
    let mut order: Vec<&Sae> = saes.iter().collect();
    order.sort_by_key(|s| s.d_sae());
    let d = order.first().map_or(0, |s| s.config().d_in);
    let decoders = order
        .iter()
        .map(|s| sae_core::device::tensor_to_vec(s.w_dec()))
        .collect::<Result<Vec<Vec<f32>>, _>>()?;
    let embeddings = match embedder {
        Some(e) => {
            let mut out = Vec::with_capacity(order.len());
            for s in &order {
                let w = s.d_sae();
                let mut desc = vec![String::new(); w];
                for r in result.rows.iter().filter(|r| r.sae_width == w) {
                    if let Some(slot) = desc.get_mut(r.latent_idx) {
                        slot.clone_from(&r.description);
                    }
                }
                out.push(description_embeddings(e, &desc)?);
            }
            Some(out)
        }
        None => None,
    };
    let mut all = Vec::new();
    for k in 0..order.len().saturating_sub(1) {
        let co = match &cofiring {
            Some(src) => Some(cofiring_cached(src.clone(), order[k], order[k + 1])?),
            None => None,
        };
        let sae = |i: usize| FamilySae {
            width: order[i].d_sae(),
            w_dec: &decoders[i],
            descriptions: embeddings.as_ref().map(|e| e[i].as_slice()),
        };
        all.extend(families_between(
            d,
            sae(k),
            sae(k + 1),
            co.as_ref(),
            thresholds,
        )?);
    }
    Ok(all)
}

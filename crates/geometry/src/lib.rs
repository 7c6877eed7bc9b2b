//! # latent-geometry
//!
//! The geometry of SAE latents: clustering and embedding of decoder directions.
//!
//! - [`hdbscan`]: HDBSCAN with the `hdbscan` library's (0.8.x) semantics — core distances to the
//!   `min_samples`-th other point, mutual reachability, exact minimum spanning tree, single
//!   linkage, condensed tree, excess-of-mass or leaf selection, labels (−1 = noise), membership
//!   probabilities and GLOSH outlier scores.
//!
//! - [`families`](mod@families): cross-width families with evidence (decoder cosine, co-firing, description
//!   similarity), thresholded, each member with its scores.
//!
//! - [`absorption`]: feature absorption on the first-letter task (probes, k-sparse probing,
//!   SAEBench's full-absorption rate and absorption fraction).
//!
//! - [`logit_lens`](mod@logit_lens): each latent's top and bottom tokens by W_dec · W_U, batched.
//!
//! - [`umap`]: UMAP with umap-learn 0.5's semantics (NN-descent or exact neighbours, fuzzy
//!   simplicial set, spectral initialisation, SGD), seeded-deterministic or parallel.

pub mod absorption;
pub mod dashboard;
pub mod error;
pub mod families;
pub mod hdbscan;
pub mod headless;
pub mod logit_enrichment;
pub mod logit_lens;
pub mod neuronpedia;
pub mod neuronpedia_fetch;
pub mod plot;
pub mod splitting;
pub mod table;
pub mod umap;

pub use error::{GeometryError, Result};
pub use families::{
    CoFiringScores, Evidence, EvidenceFamily, FamilyInputs, FamilyMember, FamilyThresholds,
    Recovery, families, recovery,
};
pub use hdbscan::{ClusterSelection, Hdbscan, HdbscanConfig, HdbscanResult, Ties};
pub use logit_lens::{LatentTokens, LogitLensConfig, logit_lens};
pub use splitting::{
    SplittingConfig, SplittingResult, SplittingSae, SplittingSummary, compute_sae_umap_data,
    compute_sae_umap_data_from_exports,
};
pub use umap::{Umap, UmapConfig, UmapResult};

//! The tutorial's feature-splitting study (`compute_sae_umap_data`): a 2-D UMAP over the
//! concatenated decoders of several SAEs (cosine), optionally HDBSCAN clusters on a 10-D UMAP,
//! and cross-width matching — for each latent of a narrower SAE, its nearest latents by decoder
//! cosine in the next wider one, the families that split.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{GeometryError, Result};
use crate::hdbscan::{Hdbscan, HdbscanConfig};
use crate::umap::knn::{Points, dot};
use crate::umap::{Metric, Umap, UmapConfig};

/// One SAE's part of the study.
#[derive(Debug, Clone)]
pub struct SplittingInput {
    /// Its width (d_sae).
    pub width: usize,
    /// `W_dec`, `[width, d]` row-major.
    pub w_dec: Vec<f32>,
    /// One description per latent ("" when unknown).
    pub descriptions: Vec<String>,
    /// Each latent's top boosted tokens, as display strings (the tutorial's `top_token_strs`).
    pub top_token_strs: Vec<String>,
}

/// The tutorial's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplittingConfig {
    /// Neighbours of the 2-D UMAP (15).
    pub n_neighbors_visual: usize,
    /// min_dist of the 2-D UMAP (0.05).
    pub min_dist_visual: f64,
    /// Cluster with HDBSCAN on a 10-D UMAP.
    pub find_clusters: bool,
    /// Neighbours of the 10-D UMAP (15).
    pub n_neighbors_cluster: usize,
    /// min_dist of the 10-D UMAP (0.1).
    pub min_dist_cluster: f64,
    /// HDBSCAN's min_cluster_size (3).
    pub min_cluster_size: usize,
    /// Nearest wider latents kept per narrower latent.
    pub n_matches: usize,
    /// `Some(seed)`: deterministic UMAPs.
    pub random_state: Option<u64>,
}

impl Default for SplittingConfig {
    fn default() -> Self {
        Self {
            n_neighbors_visual: 15,
            min_dist_visual: 0.05,
            find_clusters: false,
            n_neighbors_cluster: 15,
            min_dist_cluster: 0.1,
            min_cluster_size: 3,
            n_matches: 3,
            random_state: None,
        }
    }
}

/// One row of the table (the tutorial's dataframe).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplittingRow {
    /// The SAE's width.
    pub sae_width: usize,
    /// The latent's index in its SAE.
    pub latent_idx: usize,
    /// 2-D UMAP x.
    pub umap_x: f32,
    /// 2-D UMAP y.
    pub umap_y: f32,
    /// Autointerp description.
    pub description: String,
    /// Top boosted tokens.
    pub top_token_strs: String,
    /// HDBSCAN cluster on the 10-D UMAP (−1 noise), when clustering was asked for.
    pub cluster: Option<i64>,
}

/// A latent of a narrower SAE and its nearest latents in the next wider one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitFamily {
    /// The narrower SAE's width.
    pub narrow_width: usize,
    /// Its latent.
    pub latent_idx: usize,
    /// The wider SAE's width.
    pub wide_width: usize,
    /// `(latent, decoder cosine)`, best first.
    pub children: Vec<(usize, f32)>,
}

/// The study's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplittingResult {
    /// One row per latent of every SAE, in input order.
    pub rows: Vec<SplittingRow>,
    /// Cross-width matches between consecutive widths (sorted by width).
    pub families: Vec<SplitFamily>,
}

/// For each row of `narrow`, the `n` rows of `wide` with the largest cosine (ties: lower index).
pub fn match_latents(narrow: &[f32], wide: &[f32], d: usize, n: usize) -> Vec<Vec<(usize, f32)>> {
    let (a, b) = (
        Points::new(narrow, d, Metric::Cosine),
        Points::new(wide, d, Metric::Cosine),
    );
    let (a, b) = (a.data(), b.data());
    let wide_rows = b.len() / d;
    a.par_chunks(d)
        .map(|r| {
            let mut best: Vec<(usize, f32)> = Vec::with_capacity(n + 1);
            for j in 0..wide_rows {
                let c = dot(r, &b[j * d..(j + 1) * d]);
                if best.len() < n || c > best[best.len() - 1].1 {
                    let at = best.partition_point(|x| x.1 >= c);
                    best.insert(at, (j, c));
                    best.truncate(n);
                }
            }
            best
        })
        .collect()
}

/// Runs the study on SAEs sharing one residual stream (`d` columns each).
pub fn feature_splitting(
    saes: &[SplittingInput],
    d: usize,
    cfg: &SplittingConfig,
) -> Result<SplittingResult> {
    if saes.is_empty() {
        return Err(GeometryError::InvalidInput {
            what: "saes".into(),
            message: "no SAE given".into(),
        });
    }
    for s in saes {
        let bad = |m: String| {
            Err(GeometryError::InvalidInput {
                what: format!("SAE of width {}", s.width),
                message: m,
            })
        };
        if s.w_dec.len() != s.width * d {
            return bad(format!(
                "W_dec has {} values, expected {} × {d}",
                s.w_dec.len(),
                s.width
            ));
        }
        if s.descriptions.len() != s.width || s.top_token_strs.len() != s.width {
            return bad(format!(
                "{} descriptions and {} token strings for {} latents",
                s.descriptions.len(),
                s.top_token_strs.len(),
                s.width
            ));
        }
    }
    let all: Vec<f32> = saes.iter().flat_map(|s| s.w_dec.iter().copied()).collect();
    let visual = Umap::new(UmapConfig {
        n_components: 2,
        n_neighbors: cfg.n_neighbors_visual,
        min_dist: cfg.min_dist_visual,
        metric: Metric::Cosine,
        random_state: cfg.random_state,
        ..UmapConfig::default()
    })
    .fit(&all, d)?;
    let clusters: Option<Vec<i64>> = if cfg.find_clusters {
        let ten = Umap::new(UmapConfig {
            n_components: 10,
            n_neighbors: cfg.n_neighbors_cluster,
            min_dist: cfg.min_dist_cluster,
            metric: Metric::Cosine,
            random_state: cfg.random_state,
            ..UmapConfig::default()
        })
        .fit(&all, d)?;
        let h = Hdbscan::new(HdbscanConfig {
            min_cluster_size: cfg.min_cluster_size,
            ..HdbscanConfig::default()
        })
        .fit(&ten.embedding, ten.n, 10)?;
        Some(h.labels)
    } else {
        None
    };
    let mut rows = Vec::with_capacity(all.len() / d);
    let mut g = 0;
    for s in saes {
        for i in 0..s.width {
            rows.push(SplittingRow {
                sae_width: s.width,
                latent_idx: i,
                umap_x: visual.embedding[2 * g],
                umap_y: visual.embedding[2 * g + 1],
                description: s.descriptions[i].clone(),
                top_token_strs: s.top_token_strs[i].clone(),
                cluster: clusters.as_ref().map(|c| c[g]),
            });
            g += 1;
        }
    }
    let mut order: Vec<&SplittingInput> = saes.iter().collect();
    order.sort_by_key(|s| s.width);
    let mut families = Vec::new();
    for pair in order.windows(2) {
        let (narrow, wide) = (pair[0], pair[1]);
        for (i, children) in match_latents(&narrow.w_dec, &wide.w_dec, d, cfg.n_matches)
            .into_iter()
            .enumerate()
        {
            families.push(SplitFamily {
                narrow_width: narrow.width,
                latent_idx: i,
                wide_width: wide.width,
                children,
            });
        }
    }
    Ok(SplittingResult { rows, families })
}

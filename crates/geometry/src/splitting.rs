//! The tutorial's feature-splitting study (`compute_sae_umap_data`): a 2-D UMAP over the
//! concatenated decoders of several SAEs (cosine), optionally HDBSCAN clusters on a 10-D UMAP,
//! and cross-width matching — for each latent of a narrower SAE, its nearest latents by decoder
//! cosine in the next wider one, the families that split.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{GeometryError, Result};
use crate::families::{EvidenceFamily, FamilyInputs, FamilyThresholds, families};
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
    /// When a wider latent belongs to a narrower one's family ([`crate::families`](mod@crate::families)).
    pub families: FamilyThresholds,
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
            families: FamilyThresholds::default(),
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
    /// The family the latent belongs to, as `WIDTH/LATENT` of its narrower parent (a parent that
    /// is no member names itself), when it is in one ([`SplittingResult::evidence_families`]).
    pub family: Option<String>,
    /// A member's evidence for its family ("cos 0.71 · J 0.43 · r 0.62 · desc 0.81"); for a
    /// parent, its number of members.
    pub family_evidence: Option<String>,
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
    /// Cross-width matches between consecutive widths (sorted by width): the nearest by decoder
    /// cosine, as the tutorial (no threshold).
    pub families: Vec<SplitFamily>,
    /// Families with evidence between consecutive widths: members that pass
    /// [`SplittingConfig::families`]'s thresholds, each with its scores. [`feature_splitting`]
    /// fills them from decoders alone; [`SplittingResult::set_evidence_families`] replaces them
    /// with families that also weigh co-firing and descriptions.
    #[serde(default)]
    pub evidence_families: Vec<EvidenceFamily>,
}

/// For each of `latents` (rows of `w`, `[_, d]` row-major), the `n` nearest latents by cosine:
/// rows of `other` when given (e.g. a wider SAE's decoder), else of `w` itself with the latent
/// left out. Largest cosine first, ties to the lower index.
pub fn nearest_latents(
    w: &[f32],
    d: usize,
    latents: &[usize],
    other: Option<&[f32]>,
    n: usize,
) -> Vec<Vec<(usize, f32)>> {
    let rows: Vec<f32> = latents
        .iter()
        .flat_map(|&l| w[l * d..(l + 1) * d].iter().copied())
        .collect();
    let within = other.is_none();
    match_latents(&rows, other.unwrap_or(w), d, n + usize::from(within))
        .into_iter()
        .zip(latents)
        .map(|(m, &l)| {
            m.into_iter()
                .filter(|(j, _)| !(within && *j == l))
                .take(n)
                .collect()
        })
        .collect()
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
                family: None,
                family_evidence: None,
            });
            g += 1;
        }
    }
    let mut order: Vec<&SplittingInput> = saes.iter().collect();
    order.sort_by_key(|s| s.width);
    let mut nearest = Vec::new();
    let mut evidence = Vec::new();
    for pair in order.windows(2) {
        let (narrow, wide) = (pair[0], pair[1]);
        evidence.extend(families(
            &FamilyInputs {
                d,
                narrow: (narrow.width, &narrow.w_dec),
                wide: (wide.width, &wide.w_dec),
                cofiring: None,
                descriptions: None,
            },
            &cfg.families,
        )?);
        for (i, children) in match_latents(&narrow.w_dec, &wide.w_dec, d, cfg.n_matches)
            .into_iter()
            .enumerate()
        {
            nearest.push(SplitFamily {
                narrow_width: narrow.width,
                latent_idx: i,
                wide_width: wide.width,
                children,
            });
        }
    }
    let mut result = SplittingResult {
        rows,
        families: nearest,
        evidence_families: Vec::new(),
    };
    result.set_evidence_families(evidence);
    Ok(result)
}

/// One SAE of [`compute_sae_umap_data`], with what describes its latents.
#[derive(Debug, Clone, Copy)]
pub struct SplittingSae<'a> {
    /// The SAE (its decoder is embedded; its width labels its rows).
    pub sae: &'a sae_core::Sae,
    /// One description per latent (e.g. [`crate::neuronpedia::load_explanations`]'s), or none.
    pub descriptions: Option<&'a [String]>,
}

/// [`compute_sae_umap_data`] with each SAE's descriptions read from a Neuronpedia export
/// ([`crate::neuronpedia::load_explanations`], joined by latent index): `explanations` is empty
/// (no descriptions) or holds one file per SAE, in the same order.
///
/// # Errors
/// [`GeometryError::InvalidInput`] when the counts differ or an export does not parse, and
/// whatever [`compute_sae_umap_data`] reports.
pub fn compute_sae_umap_data_from_exports<E>(
    saes: &[sae_core::Sae],
    explanations: &[std::path::PathBuf],
    w_u: &sae_core::burn::tensor::Tensor<2>,
    str_tokens: impl Fn(&[u32]) -> std::result::Result<Vec<String>, E>,
    lens: crate::LogitLensConfig,
    config: &SplittingConfig,
) -> Result<SplittingResult>
where
    E: std::error::Error + Send + Sync + 'static,
{
    if !explanations.is_empty() && explanations.len() != saes.len() {
        return Err(GeometryError::InvalidInput {
            what: "explanations".into(),
            message: format!("{} files for {} SAEs", explanations.len(), saes.len()),
        });
    }
    let descriptions = explanations
        .iter()
        .zip(saes)
        .map(|(p, sae)| Ok(crate::neuronpedia::load_explanations(p, sae.d_sae())?.descriptions))
        .collect::<Result<Vec<_>>>()?;
    let inputs: Vec<SplittingSae<'_>> = saes
        .iter()
        .enumerate()
        .map(|(i, sae)| SplittingSae {
            sae,
            descriptions: descriptions.get(i).map(Vec::as_slice),
        })
        .collect();
    compute_sae_umap_data(&inputs, w_u, str_tokens, lens, config)
}

/// The tutorial's `compute_sae_umap_data` from SAEs and a model's unembedding: each latent's
/// top boosted tokens by the logit lens (`lens.k` of them, `lens.batch` latents per matmul: the
/// tutorial's 10 and 1000), shown through `str_tokens` (the model's tokenizer), then
/// [`feature_splitting`] on the decoders.
///
/// # Shapes
/// - each `W_dec`: `[d_sae, d_model]` (every SAE on the same `d_model`); `w_u`: `[d_model, vocab]`.
///
/// # Errors
/// [`GeometryError::InvalidInput`] when the SAEs' `d_in` differ, a description list does not
/// have one entry per latent, or `W_U` does not match; [`GeometryError::Tokens`] when
/// `str_tokens` fails; and whatever [`feature_splitting`] reports.
pub fn compute_sae_umap_data<E>(
    saes: &[SplittingSae<'_>],
    w_u: &sae_core::burn::tensor::Tensor<2>,
    str_tokens: impl Fn(&[u32]) -> std::result::Result<Vec<String>, E>,
    lens: crate::LogitLensConfig,
    config: &SplittingConfig,
) -> Result<SplittingResult>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let Some(first) = saes.first() else {
        return Err(GeometryError::InvalidInput {
            what: "saes".into(),
            message: "no SAE given".into(),
        });
    };
    let d = first.sae.config().d_in;
    let mut inputs = Vec::with_capacity(saes.len());
    for (i, s) in saes.iter().enumerate() {
        let width = s.sae.d_sae();
        let d_in = s.sae.config().d_in;
        if d_in != d {
            return Err(GeometryError::InvalidInput {
                what: format!("saes[{i}]"),
                message: format!("d_in {d_in}, but the first SAE's is {d}"),
            });
        }
        let descriptions = match s.descriptions {
            Some(v) if v.len() != width => {
                return Err(GeometryError::InvalidInput {
                    what: format!("descriptions of saes[{i}]"),
                    message: format!("{} descriptions for {width} latents", v.len()),
                });
            }
            Some(v) => v.to_vec(),
            None => vec![String::new(); width],
        };
        let w_dec = s.sae.w_dec();
        let top = crate::logit_lens(&w_dec, w_u, None, lens)?;
        let top_token_strs = top
            .iter()
            .map(|l| {
                str_tokens(&l.top_ids).map(|v| {
                    v.iter()
                        .map(|s| format!("{s:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
            })
            .collect::<std::result::Result<Vec<_>, E>>()
            .map_err(|e| GeometryError::Tokens {
                what: format!("the top boosted tokens of saes[{i}] (width {width})"),
                source: Box::new(e),
            })?;
        inputs.push(SplittingInput {
            width,
            w_dec: sae_core::device::tensor_to_vec(w_dec)?,
            descriptions,
            top_token_strs,
        });
    }
    feature_splitting(&inputs, d, config)
}

/// Counts that say whether a [`SplittingResult`] is sound: rows per width, descriptions,
/// clusters and noise, families, and the embedding's spread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplittingSummary {
    /// Rows (latents of every SAE).
    pub rows: usize,
    /// Rows per SAE width.
    pub rows_per_width: std::collections::BTreeMap<usize, usize>,
    /// Rows with a non-empty description.
    pub described: usize,
    /// Whether HDBSCAN ran (rows carry a cluster label).
    pub clustered: bool,
    /// Clusters found (labels ≥ 0).
    pub clusters: usize,
    /// Rows HDBSCAN left as noise (label −1).
    pub noise: usize,
    /// Cross-width families (nearest matches, one per narrower latent).
    pub families: usize,
    /// Families with evidence (narrower latents with at least one member).
    #[serde(default)]
    pub evidence_families: usize,
    /// Members of those families.
    #[serde(default)]
    pub family_members: usize,
    /// Whether every UMAP coordinate is finite.
    pub embedding_finite: bool,
    /// Population standard deviation of the x coordinates.
    pub umap_x_std: f64,
    /// Population standard deviation of the y coordinates.
    pub umap_y_std: f64,
}

impl SplittingResult {
    /// Replaces the families with evidence and marks the rows: each member's `family` is its
    /// parent's `WIDTH/LATENT` and `family_evidence` its scores; a parent that is no member
    /// names itself, with its member count. A latent in several families keeps the one where it
    /// has the most evidence (then the larger decoder cosine).
    pub fn set_evidence_families(&mut self, families: Vec<EvidenceFamily>) {
        use std::collections::HashMap;
        let index: HashMap<(usize, usize), usize> = self
            .rows
            .iter()
            .enumerate()
            .map(|(k, r)| ((r.sae_width, r.latent_idx), k))
            .collect();
        for r in &mut self.rows {
            r.family = None;
            r.family_evidence = None;
        }
        // (evidence count, cosine) of the family each member row holds now.
        let mut held: HashMap<usize, (usize, f32)> = HashMap::new();
        // Parents name themselves; membership, written second, takes precedence (a latent of a
        // middle width is both a member and a parent: the row shows where it came from).
        for f in &families {
            if let Some(&k) = index.get(&(f.narrow_width, f.parent)) {
                self.rows[k].family = Some(format!("{}/{}", f.narrow_width, f.parent));
                self.rows[k].family_evidence = Some(format!("parent of {}", f.members.len()));
            }
        }
        for f in &families {
            let name = format!("{}/{}", f.narrow_width, f.parent);
            for m in &f.members {
                let Some(&k) = index.get(&(f.wide_width, m.latent)) else {
                    continue;
                };
                let strength = (m.evidence.len(), m.decoder_cosine);
                if held.get(&k).is_some_and(|h| (h.0, h.1) >= strength) {
                    continue;
                }
                held.insert(k, strength);
                self.rows[k].family = Some(name.clone());
                self.rows[k].family_evidence = Some(m.describe());
            }
        }
        self.evidence_families = families;
    }

    /// The result's [`SplittingSummary`].
    pub fn summary(&self) -> SplittingSummary {
        let mut rows_per_width = std::collections::BTreeMap::<usize, usize>::new();
        for r in &self.rows {
            *rows_per_width.entry(r.sae_width).or_default() += 1;
        }
        let labels: Vec<i64> = self.rows.iter().filter_map(|r| r.cluster).collect();
        let std = |v: Vec<f64>| {
            let n = v.len().max(1) as f64;
            let m = v.iter().sum::<f64>() / n;
            (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt()
        };
        SplittingSummary {
            rows: self.rows.len(),
            rows_per_width,
            described: self
                .rows
                .iter()
                .filter(|r| !r.description.is_empty())
                .count(),
            clustered: !labels.is_empty(),
            clusters: labels
                .iter()
                .filter(|&&c| c >= 0)
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            noise: labels.iter().filter(|&&c| c < 0).count(),
            families: self.families.len(),
            evidence_families: self.evidence_families.len(),
            family_members: self.evidence_families.iter().map(|f| f.members.len()).sum(),
            embedding_finite: self
                .rows
                .iter()
                .all(|r| r.umap_x.is_finite() && r.umap_y.is_finite()),
            umap_x_std: std(self.rows.iter().map(|r| f64::from(r.umap_x)).collect()),
            umap_y_std: std(self.rows.iter().map(|r| f64::from(r.umap_y)).collect()),
        }
    }

    /// Writes the study's files into `dir` (created if missing): `splitting.parquet` and
    /// `splitting.csv` (the table), `families.json` (nearest matches), `evidence_families.json`
    /// and `families.csv` (families with evidence, one row per member with its scores),
    /// `splitting.html` (hover) and `splitting.png` (family members joined to their parents),
    /// coloured by width — or, when the result was clustered, by cluster with the tutorial's
    /// titles — and `summary.json` (the [`SplittingSummary`], with `seconds` when given: the
    /// time the caller spent, loading included).
    pub fn save(&self, dir: &std::path::Path, seconds: Option<f64>) -> Result<SplittingSummary> {
        use crate::plot::{ColorBy, PlotLabels, write_html, write_png};
        std::fs::create_dir_all(dir).map_err(|e| crate::plot::io_err(dir, e))?;
        crate::table::write_parquet(&self.rows, &dir.join("splitting.parquet"))?;
        crate::table::write_csv(&self.rows, &dir.join("splitting.csv"))?;
        crate::table::write_json(&self.families, &dir.join("families.json"))?;
        crate::table::write_json(&self.evidence_families, &dir.join("evidence_families.json"))?;
        crate::table::write_families_csv(&self.evidence_families, &dir.join("families.csv"))?;
        let summary = self.summary();
        let (by, title) = if summary.clustered {
            (
                ColorBy::Cluster,
                "2D UMAP with HDBSCAN clusters from a 10D UMAP",
            )
        } else {
            (ColorBy::Width, "Feature Splitting in SAEs")
        };
        write_html(&self.rows, by, title, &dir.join("splitting.html"))?;
        write_png(
            &self.rows,
            by,
            PlotLabels::umap(title),
            &dir.join("splitting.png"),
        )?;
        let mut v = serde_json::to_value(&summary).map_err(|e| crate::plot::io_err(dir, e))?;
        if let Some(s) = seconds {
            v["seconds"] = serde_json::json!(s);
        }
        let text = serde_json::to_string_pretty(&v).map_err(|e| crate::plot::io_err(dir, e))?;
        sae_core::atomic::write(dir.join("summary.json"), text)?;
        Ok(summary)
    }
}

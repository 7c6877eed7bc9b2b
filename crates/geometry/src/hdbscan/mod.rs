//! HDBSCAN with the semantics of the `hdbscan` Python library (0.8.x).
//!
//! The pipeline, one file per step: [`mst`] (core distances and the exact minimum spanning tree of
//! the mutual-reachability graph, Prim's algorithm), [`tree`] (single linkage, condensed tree,
//! stability, cluster selection, labels, probabilities, GLOSH).

mod kdtree;
pub mod mst;

/// Points from which the minimum spanning tree is built by Borůvka on a kd-tree instead of
/// Prim's O(n²) scan (both exact).
pub const BORUVKA_FROM: usize = 4096;
pub mod tree;

use crate::error::{GeometryError, Result};

/// How clusters are chosen from the condensed tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClusterSelection {
    /// Excess of mass (the library's default).
    #[default]
    ExcessOfMass,
    /// The leaves of the condensed tree.
    Leaf,
}

/// How merges at equal mutual-reachability distances build the hierarchy.
///
/// Mutual reachability sets many edges to a point's core distance, so a minimum spanning tree
/// has many equal weights (9 % of them on 10-D UMAPs of decoder-like data), and the library's
/// binary dendrogram depends on the order it merges them in — which it takes from numpy's
/// unstable, CPU-dispatched argsort. docs/BENCHMARKS.md ("Hierarchical sphere data") measures it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Ties {
    /// All merges at one distance at once ([`tree::condense_simultaneous`]): HDBSCAN*'s
    /// hierarchy, the same whichever minimum spanning tree and whichever order of its equal
    /// weights; on planted hierarchical data it recovers the planted leaves at least as well as
    /// the library's labels do (docs/BENCHMARKS.md).
    #[default]
    Simultaneous,
    /// One at a time in sorted order, a stable sort of the tree's edges ([`tree::condense`]): the
    /// library's binary dendrogram — given the library's tree in the library's order, its
    /// clustering exactly.
    Sequential,
}

/// HDBSCAN's parameters, with the library's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct HdbscanConfig {
    /// Smallest cluster (default 5 in the library; the tutorial uses 3).
    pub min_cluster_size: usize,
    /// Neighbours for the core distance, not counting the point itself; `None` means
    /// `min_cluster_size` (the library's semantics: sklearn and most Rust crates count the point
    /// itself, so their `min_samples = k + 1` is this `k`).
    pub min_samples: Option<usize>,
    /// Clusters split below this distance are merged (0 = off).
    pub cluster_selection_epsilon: f64,
    /// Excess of mass or leaf.
    pub selection: ClusterSelection,
    /// Whether the root may be the single cluster.
    pub allow_single_cluster: bool,
    /// How merges at equal distances are taken.
    pub ties: Ties,
}

impl Default for HdbscanConfig {
    fn default() -> Self {
        Self {
            min_cluster_size: 5,
            min_samples: None,
            cluster_selection_epsilon: 0.0,
            selection: ClusterSelection::ExcessOfMass,
            allow_single_cluster: false,
            ties: Ties::Simultaneous,
        }
    }
}

/// The clustering.
#[derive(Debug, Clone, PartialEq)]
pub struct HdbscanResult {
    /// Cluster per point, 0.. in the order of the selected clusters' ids; −1 for noise.
    pub labels: Vec<i64>,
    /// Strength of each point's membership in its cluster (0 for noise).
    pub probabilities: Vec<f64>,
    /// GLOSH outlier score per point (larger = more outlying).
    pub outlier_scores: Vec<f64>,
    /// The condensed tree: (parent, child, lambda, child_size) rows.
    pub condensed_tree: Vec<tree::CondensedRow>,
    /// Number of clusters found.
    pub n_clusters: usize,
}

/// HDBSCAN.
#[derive(Debug, Clone, Default)]
pub struct Hdbscan {
    /// The parameters.
    pub config: HdbscanConfig,
}

impl Hdbscan {
    /// With the given parameters.
    pub fn new(config: HdbscanConfig) -> Self {
        Self { config }
    }

    /// Clusters `n` points of dimension `dim` (row-major, Euclidean metric).
    pub fn fit(&self, data: &[f32], n: usize, dim: usize) -> Result<HdbscanResult> {
        let cfg = &self.config;
        if cfg.min_cluster_size < 2 {
            return Err(GeometryError::InvalidParameter {
                name: "min_cluster_size",
                expected: "at least 2".into(),
                found: cfg.min_cluster_size.to_string(),
            });
        }
        let min_samples = cfg.min_samples.unwrap_or(cfg.min_cluster_size);
        if min_samples == 0 || min_samples >= n {
            return Err(GeometryError::InvalidParameter {
                name: "min_samples",
                expected: format!("1 ..= {} (fewer than the {n} points)", n.saturating_sub(1)),
                found: min_samples.to_string(),
            });
        }
        if data.len() != n * dim || dim == 0 {
            return Err(GeometryError::InvalidInput {
                what: "data".into(),
                message: format!("{} values for {n} points of dimension {dim}", data.len()),
            });
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(GeometryError::InvalidInput {
                what: "data".into(),
                message: format!("non-finite value at row {}, column {}", i / dim, i % dim),
            });
        }
        let points: Vec<f64> = data.iter().map(|&v| f64::from(v)).collect();
        let (core, edges) = if n < BORUVKA_FROM {
            let core = mst::core_distances(&points, n, dim, min_samples);
            let edges = mst::prim_mst(&points, n, dim, &core);
            (core, edges)
        } else {
            let tree = kdtree::KdTree::new(&points, n, dim);
            let neighbours = mst::Neighbours::new(&tree, n, min_samples);
            let core = neighbours.core_distances(min_samples);
            let edges = mst::boruvka_mst(&tree, n, &core, &neighbours);
            (core, edges)
        };
        let _ = &core;
        let linkage = tree::single_linkage(edges, n);
        let condensed = match cfg.ties {
            Ties::Simultaneous => tree::condense_simultaneous(&linkage, n, cfg.min_cluster_size),
            Ties::Sequential => tree::condense(&linkage, n, cfg.min_cluster_size),
        };
        Ok(tree::extract(condensed, n, cfg))
    }
}

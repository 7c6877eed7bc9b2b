//! UMAP with umap-learn 0.5's semantics (see `../shared/notes`-style details in
//! docs/ARCHITECTURE.md): a k-nearest-neighbour graph (exact below 4096 points, NN-descent from
//! random-projection trees above), `smooth_knn_dist` and the fuzzy union, a and b fitted from
//! `min_dist` and `spread`, spectral initialisation (random fallback), and SGD with negative
//! sampling and a linearly decaying learning rate.
//!
//! ```no_run
//! use latent_geometry::umap::{Umap, UmapConfig, Metric};
//! # fn main() -> latent_geometry::Result<()> {
//! let data: Vec<f32> = vec![0.0; 1000 * 64]; // 1000 points in 64-D, row-major
//! let cfg = UmapConfig { metric: Metric::Cosine, random_state: Some(42), ..UmapConfig::default() };
//! let result = Umap::new(cfg).fit(&data, 64)?;
//! assert_eq!(result.embedding.len(), 1000 * 2);
//! # Ok(()) }
//! ```

pub mod ab;
pub mod graph;
mod heaps;
pub mod knn;
pub mod layout;
pub mod quality;
mod rptree;
pub mod spectral;

pub use knn::{KnnGraph, KnnMethod, Metric};
pub use quality::{knn_recall, trustworthiness};

use crate::error::{GeometryError, Result};
use graph::SparseGraph;
use layout::{LayoutParams, Schedule};

/// How the layout starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Init {
    /// Laplacian eigenmaps of the fuzzy graph (umap-learn's default).
    #[default]
    Spectral,
    /// Uniform in [−10, 10].
    Random,
}

/// umap-learn's parameters, with its defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UmapConfig {
    /// Neighbours per point, including itself (15).
    pub n_neighbors: usize,
    /// Output dimensions (2).
    pub n_components: usize,
    /// Distance (umap-learn's default is Euclidean; the tutorial uses cosine).
    pub metric: Metric,
    /// How the neighbours are found.
    pub knn: KnnMethod,
    /// Minimum distance between embedded points (0.1).
    pub min_dist: f64,
    /// Scale of embedded points (1.0).
    pub spread: f64,
    /// Epochs (`None`: 500 up to 10 000 points, else 200).
    pub n_epochs: Option<usize>,
    /// Initial learning rate (1.0).
    pub learning_rate: f64,
    /// Negative samples per positive one (5).
    pub negative_sample_rate: usize,
    /// Weight of the repulsion (1.0).
    pub repulsion_strength: f64,
    /// Neighbours assumed connected (1.0).
    pub local_connectivity: f64,
    /// 1 = fuzzy union, 0 = fuzzy intersection (1.0).
    pub set_op_mix_ratio: f64,
    /// Initialisation.
    pub init: Init,
    /// `Some(seed)`: serial and deterministic (bit-identical for a seed, as umap-learn with a
    /// `random_state`); `None`: multi-threaded.
    pub random_state: Option<u64>,
}

impl Default for UmapConfig {
    fn default() -> Self {
        Self {
            n_neighbors: 15,
            n_components: 2,
            metric: Metric::Euclidean,
            knn: KnnMethod::Auto,
            min_dist: 0.1,
            spread: 1.0,
            n_epochs: None,
            learning_rate: 1.0,
            negative_sample_rate: 5,
            repulsion_strength: 1.0,
            local_connectivity: 1.0,
            set_op_mix_ratio: 1.0,
            init: Init::Spectral,
            random_state: None,
        }
    }
}

/// A fitted embedding and what led to it.
#[derive(Debug, Clone)]
pub struct UmapResult {
    /// `[n, n_components]` row-major.
    pub embedding: Vec<f32>,
    /// Points.
    pub n: usize,
    /// Output dimensions.
    pub dim: usize,
    /// The neighbour graph.
    pub knn: KnnGraph,
    /// The fuzzy simplicial set (before pruning for the layout).
    pub graph: SparseGraph,
    /// The fitted curve parameters (a, b).
    pub ab: (f64, f64),
}

/// UMAP.
#[derive(Debug, Clone, Copy, Default)]
pub struct Umap {
    cfg: UmapConfig,
}

impl Umap {
    /// With a configuration.
    pub fn new(cfg: UmapConfig) -> Self {
        Self { cfg }
    }

    fn check(&self) -> Result<()> {
        let c = &self.cfg;
        let bad = |name: &'static str, expected: &str, found: String| {
            Err(GeometryError::InvalidParameter {
                name,
                expected: expected.into(),
                found,
            })
        };
        if c.n_components == 0 {
            return bad("n_components", "at least 1", c.n_components.to_string());
        }
        if !(c.min_dist >= 0.0 && c.spread > 0.0 && c.min_dist <= c.spread) {
            return bad(
                "min_dist / spread",
                "0 ≤ min_dist ≤ spread, spread > 0",
                format!("{} / {}", c.min_dist, c.spread),
            );
        }
        if !(0.0..=1.0).contains(&c.set_op_mix_ratio) {
            return bad(
                "set_op_mix_ratio",
                "in [0, 1]",
                c.set_op_mix_ratio.to_string(),
            );
        }
        Ok(())
    }

    /// Embeds `data` (`[n, d]` row-major).
    pub fn fit(&self, data: &[f32], d: usize) -> Result<UmapResult> {
        self.check()?;
        let c = &self.cfg;
        let n = knn::check_matrix(data, d, "points")?;
        let seed = c.random_state.unwrap_or(0);
        let t0 = std::time::Instant::now();
        let knn = knn::knn_graph_checked(data, d, c.n_neighbors.min(n), c.metric, c.knn, seed)?;
        tracing::debug!(secs = t0.elapsed().as_secs_f64(), "UMAP: neighbours");
        let graph = graph::fuzzy_simplicial_set(&knn, c.local_connectivity, c.set_op_mix_ratio);
        let n_epochs = c.n_epochs.unwrap_or(if n <= 10_000 { 500 } else { 200 });
        let ab = ab::find_ab_params(c.spread, c.min_dist);
        let dim = c.n_components;
        let t1 = std::time::Instant::now();
        let mut emb = match c.init {
            Init::Spectral => spectral::spectral_init(&graph, dim, seed),
            Init::Random => {
                use rand::{RngExt, SeedableRng};
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                (0..n * dim)
                    .map(|_| rng.random_range(-10.0f32..10.0))
                    .collect()
            }
        };
        tracing::debug!(secs = t1.elapsed().as_secs_f64(), "UMAP: initialisation");
        let pruned = graph.prune_below(graph.max_value() / n_epochs as f32);
        layout::rescale_to_box(&mut emb, dim);
        let params = LayoutParams {
            a: ab.0 as f32,
            b: ab.1 as f32,
            gamma: c.repulsion_strength as f32,
            learning_rate: c.learning_rate as f32,
            negative_sample_rate: c.negative_sample_rate as f32,
            n_epochs,
        };
        let schedule = match c.random_state {
            Some(s) => Schedule::Deterministic(s),
            None => Schedule::Parallel(seed),
        };
        let t2 = std::time::Instant::now();
        layout::optimize_layout(&mut emb, dim, &pruned, &params, schedule);
        tracing::debug!(secs = t2.elapsed().as_secs_f64(), "UMAP: layout");
        Ok(UmapResult {
            embedding: emb,
            n,
            dim,
            knn,
            graph,
            ab,
        })
    }
}

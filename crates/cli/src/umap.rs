//! `sae-geometry umap`.

use std::path::PathBuf;

use latent_geometry::umap::{Init, KnnMethod, Metric, Umap, UmapConfig};
use sae_core::npy::{read_f32_matrix, write_f32};

/// Distance.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum MetricArg {
    /// 1 − cos (rows normalised).
    Cosine,
    /// Euclidean.
    Euclidean,
}

/// Neighbour search.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum KnnArg {
    /// Exact below 4096 points, NN-descent above (umap-learn's rule).
    Auto,
    /// All pairs.
    Exact,
    /// NN-descent with random-projection trees.
    NnDescent,
}

/// Arguments of `umap`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Points: float32 (or float64) .npy of shape [n, d] (e.g. decoder rows).
    #[arg(long)]
    pub input: PathBuf,
    /// Output dimensions.
    #[arg(long, default_value_t = 2)]
    pub n_components: usize,
    /// Neighbours, including the point itself.
    #[arg(long, default_value_t = 15)]
    pub n_neighbors: usize,
    /// Minimum distance between embedded points.
    #[arg(long, default_value_t = 0.1)]
    pub min_dist: f64,
    /// Scale of the embedding.
    #[arg(long, default_value_t = 1.0)]
    pub spread: f64,
    /// Distance.
    #[arg(long, value_enum, default_value = "euclidean")]
    pub metric: MetricArg,
    /// Neighbour search.
    #[arg(long, value_enum, default_value = "auto")]
    pub knn: KnnArg,
    /// Epochs (default: 500 up to 10 000 points, else 200).
    #[arg(long)]
    pub n_epochs: Option<usize>,
    /// Seed: serial and bit-identical per seed. Without it the layout runs in parallel.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Random instead of spectral initialisation.
    #[arg(long)]
    pub random_init: bool,
    /// Output: float32 .npy of shape [n, n_components].
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `umap`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let x = read_f32_matrix(&args.input, None)?;
    let (n, d) = (x.shape[0], x.shape[1]);
    let cfg = UmapConfig {
        n_components: args.n_components,
        n_neighbors: args.n_neighbors,
        min_dist: args.min_dist,
        spread: args.spread,
        metric: match args.metric {
            MetricArg::Cosine => Metric::Cosine,
            MetricArg::Euclidean => Metric::Euclidean,
        },
        knn: match args.knn {
            KnnArg::Auto => KnnMethod::Auto,
            KnnArg::Exact => KnnMethod::Exact,
            KnnArg::NnDescent => KnnMethod::NnDescent,
        },
        n_epochs: args.n_epochs,
        random_state: args.seed,
        init: if args.random_init {
            Init::Random
        } else {
            Init::Spectral
        },
        ..UmapConfig::default()
    };
    let t0 = std::time::Instant::now();
    let r = Umap::new(cfg).fit(&x.data, d)?;
    write_f32(&args.out, &[n, args.n_components], &r.embedding)?;
    eprintln!(
        "UMAP of {n} × {d} → {} in {:.2}s → {}",
        args.n_components,
        t0.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}

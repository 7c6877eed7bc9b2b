//! `sae-geometry hdbscan`.

use std::path::PathBuf;

use latent_geometry::{ClusterSelection, Hdbscan, HdbscanConfig, Ties};
use sae_core::npy::{read_f32_matrix, write_f32, write_i64};

/// Cluster-selection method.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Selection {
    /// Excess of mass (default).
    Eom,
    /// Leaves of the condensed tree.
    Leaf,
}

/// How merges at equal distances are taken.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TiesArg {
    /// All at once: HDBSCAN*'s hierarchy, independent of the order of equal weights (default).
    Simultaneous,
    /// One at a time in sorted order: the hdbscan library's binary dendrogram.
    Sequential,
}

/// Arguments of `hdbscan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Points: float32 (or float64) .npy of shape [n, dim] (e.g. a 10-D UMAP embedding).
    #[arg(long)]
    pub input: PathBuf,
    /// Smallest cluster.
    #[arg(long, default_value_t = 5)]
    pub min_cluster_size: usize,
    /// Neighbours for the core distance, not counting the point itself (the hdbscan library's
    /// convention); default: min-cluster-size.
    #[arg(long)]
    pub min_samples: Option<usize>,
    /// Merge clusters split below this distance (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub cluster_selection_epsilon: f64,
    /// Cluster-selection method.
    #[arg(long, value_enum, default_value = "eom")]
    pub selection: Selection,
    /// Allow the root to be the single cluster.
    #[arg(long)]
    pub allow_single_cluster: bool,
    /// Merges at equal mutual-reachability distances (common: many edges equal a core distance):
    /// all at once (order-free) or one at a time as the hdbscan library does.
    #[arg(long, value_enum, default_value = "simultaneous")]
    pub ties: TiesArg,
    /// Output: int64 .npy of labels (−1 = noise).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write membership probabilities (float32 .npy).
    #[arg(long)]
    pub probabilities: Option<PathBuf>,
    /// Also write GLOSH outlier scores (float32 .npy).
    #[arg(long)]
    pub outlier_scores: Option<PathBuf>,
}

/// Runs `hdbscan`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let x = read_f32_matrix(&args.input, None)?;
    let (n, dim) = (x.shape[0], x.shape[1]);
    let config = HdbscanConfig {
        min_cluster_size: args.min_cluster_size,
        min_samples: args.min_samples,
        cluster_selection_epsilon: args.cluster_selection_epsilon,
        selection: match args.selection {
            Selection::Eom => ClusterSelection::ExcessOfMass,
            Selection::Leaf => ClusterSelection::Leaf,
        },
        allow_single_cluster: args.allow_single_cluster,
        ties: match args.ties {
            TiesArg::Simultaneous => Ties::Simultaneous,
            TiesArg::Sequential => Ties::Sequential,
        },
    };
    let t0 = std::time::Instant::now();
    let r = Hdbscan::new(config).fit(&x.data, n, dim)?;
    let noise = r.labels.iter().filter(|l| **l < 0).count();
    tracing::info!(
        n,
        dim,
        clusters = r.n_clusters,
        noise,
        secs = t0.elapsed().as_secs_f64(),
        "clustered"
    );
    write_i64(&args.out, &r.labels)?;
    if let Some(p) = &args.probabilities {
        let v: Vec<f32> = r.probabilities.iter().map(|&v| v as f32).collect();
        write_f32(p, &[n], &v)?;
    }
    if let Some(p) = &args.outlier_scores {
        let v: Vec<f32> = r.outlier_scores.iter().map(|&v| v as f32).collect();
        write_f32(p, &[n], &v)?;
    }
    println!("{} clusters, {noise} noise points of {n}", r.n_clusters);
    Ok(())
}

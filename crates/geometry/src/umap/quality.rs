//! Embedding quality: scikit-learn's trustworthiness and k-NN recall (how many of each point's
//! nearest neighbours in the input stay its nearest neighbours in the embedding).

use rayon::prelude::*;

use crate::umap::knn::{Metric, Points};

fn ranked_neighbors(pts: &Points<'_>, i: usize) -> Vec<usize> {
    let n = pts.n();
    let mut v: Vec<(f32, usize)> = (0..n)
        .filter(|&j| j != i)
        .map(|j| (pts.dist(i, j), j))
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    v.into_iter().map(|x| x.1).collect()
}

/// scikit-learn's `trustworthiness(X, Y, n_neighbors)`: 1 − 2/(n k (2n − 3k − 1)) ·
/// Σ_i Σ_{j ∈ U_i} (r(i, j) − k), where U_i are the embedding's k nearest neighbours of i that
/// are not among its k nearest in the input and r is the rank in the input. O(n²) memory-free.
pub fn trustworthiness(
    x: &[f32],
    dx: usize,
    y: &[f32],
    dy: usize,
    k: usize,
    metric: Metric,
) -> f64 {
    let px = Points::new(x, dx, metric);
    let py = Points::new(y, dy, Metric::Euclidean);
    let n = px.n();
    let penalty: f64 = (0..n)
        .into_par_iter()
        .map(|i| {
            let rx = ranked_neighbors(&px, i);
            let mut rank = vec![0usize; n];
            for (r, &j) in rx.iter().enumerate() {
                rank[j] = r + 1;
            }
            let ny = ranked_neighbors(&py, i);
            ny.iter()
                .take(k)
                .map(|&j| (rank[j] as f64 - k as f64).max(0.0))
                .sum::<f64>()
        })
        .sum();
    let (nf, kf) = (n as f64, k as f64);
    1.0 - penalty * 2.0 / (nf * kf * (2.0 * nf - 3.0 * kf - 1.0))
}

/// Mean share of each point's k nearest input neighbours that are among its k nearest in the
/// embedding.
pub fn knn_recall(x: &[f32], dx: usize, y: &[f32], dy: usize, k: usize, metric: Metric) -> f64 {
    let px = Points::new(x, dx, metric);
    let py = Points::new(y, dy, Metric::Euclidean);
    let n = px.n();
    let total: f64 = (0..n)
        .into_par_iter()
        .map(|i| {
            let a: std::collections::HashSet<usize> =
                ranked_neighbors(&px, i).into_iter().take(k).collect();
            ranked_neighbors(&py, i)
                .into_iter()
                .take(k)
                .filter(|j| a.contains(j))
                .count() as f64
                / k as f64
        })
        .sum();
    total / n as f64
}

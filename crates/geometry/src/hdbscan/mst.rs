//! Core distances and the exact minimum spanning tree of the mutual-reachability graph.

use rayon::prelude::*;

fn dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// Each point's distance to its `min_samples`-th nearest *other* point (the library queries
/// `min_samples + 1` neighbours, the point itself included, and takes the last).
pub fn core_distances(points: &[f64], n: usize, dim: usize, min_samples: usize) -> Vec<f64> {
    (0..n)
        .into_par_iter()
        .map(|i| {
            let p = &points[i * dim..(i + 1) * dim];
            // The k smallest distances with the point itself (distance 0) among them.
            let k = min_samples + 1;
            let mut best: Vec<f64> = Vec::with_capacity(k + 1);
            for j in 0..n {
                let d = dist(p, &points[j * dim..(j + 1) * dim]);
                if best.len() < k {
                    let pos = best.partition_point(|&b| b <= d);
                    best.insert(pos, d);
                } else if d < best[k - 1] {
                    best.pop();
                    let pos = best.partition_point(|&b| b <= d);
                    best.insert(pos, d);
                }
            }
            best[k - 1]
        })
        .collect()
}

/// Prim's algorithm on mutual reachability max(core_a, core_b, d_ab), as the library's
/// `mst_linkage_core_vector`: returns n − 1 edges (a, b, weight) in the order they join the tree.
pub fn prim_mst(points: &[f64], n: usize, dim: usize, core: &[f64]) -> Vec<(usize, usize, f64)> {
    let mut in_tree = vec![false; n];
    let mut current_distances = vec![f64::INFINITY; n];
    let mut edges = Vec::with_capacity(n.saturating_sub(1));
    let mut current = 0usize;
    for _ in 1..n {
        in_tree[current] = true;
        let cp = &points[current * dim..(current + 1) * dim];
        let core_c = core[current];
        // Update the candidate distances in parallel, then pick the nearest (ties: lowest index,
        // as the library's serial scan).
        let (new_d, new_node) = current_distances
            .par_iter_mut()
            .enumerate()
            .filter(|(j, _)| !in_tree[*j])
            .map(|(j, cur)| {
                let mut reach = dist(cp, &points[j * dim..(j + 1) * dim]);
                reach = reach.max(core_c).max(core[j]);
                if reach < *cur {
                    *cur = reach;
                }
                (*cur, j)
            })
            .reduce(
                || (f64::INFINITY, usize::MAX),
                |a, b| {
                    if b.0 < a.0 || (b.0 == a.0 && b.1 < a.1) {
                        b
                    } else {
                        a
                    }
                },
            );
        edges.push((current, new_node, new_d));
        current = new_node;
    }
    edges
}

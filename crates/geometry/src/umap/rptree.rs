//! Random-projection trees (pynndescent's forest): each node splits its points by a hyperplane
//! between two of them drawn at random (through the origin for cosine, their perpendicular
//! bisector otherwise) until nodes hold at most `leaf_size` points.
//!
//! Every tree draws from its own generator in depth-first order (right child first). The
//! trees' root splits are computed together: every tree's root holds all the points, so one
//! pass over the rows gives every root's margins (ten fewer passes over the whole input for the
//! tutorial's eleven trees, each a read of 50 MB from memory). The margins and draws are the
//! ones a tree-by-tree build makes, so the leaves are the same.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

use crate::umap::knn::{Metric, Points, dots};

/// A splitting hyperplane: margin = normal · x + offset.
struct Hyperplane {
    normal: Vec<f32>,
    offset: f32,
}

/// Draws the hyperplane of a node: two of its points at random (a second draw, up to eight
/// times, while it repeats the first).
fn draw(pts: &Points<'_>, node: &[u32], rng: &mut StdRng) -> Hyperplane {
    let a = node[rng.random_range(0..node.len())] as usize;
    let mut b = node[rng.random_range(0..node.len())] as usize;
    let mut tries = 0;
    while b == a && tries < 8 {
        b = node[rng.random_range(0..node.len())] as usize;
        tries += 1;
    }
    let (xa, xb) = (pts.row(a), pts.row(b));
    let normal: Vec<f32> = xa.iter().zip(xb).map(|(p, q)| p - q).collect();
    let offset = match pts.metric {
        Metric::Cosine => 0.0,
        Metric::Euclidean => -xa
            .iter()
            .zip(xb)
            .zip(&normal)
            .map(|((p, q), m)| m * (p + q) / 2.0)
            .sum::<f32>(),
    };
    Hyperplane { normal, offset }
}

/// `normal · x` for the node's points, four rows per pass over the normal.
fn margins(pts: &Points<'_>, node: &[u32], normal: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; node.len()];
    dots(normal, |i| pts.row(node[i] as usize), &mut out);
    out
}

/// `normal · x` of every point for several hyperplanes, `[planes][n]`: one pass over the rows,
/// each row against four normals at a time (the same products and sums as [`margins`]).
fn margins_of_all(pts: &Points<'_>, planes: &[Hyperplane]) -> Vec<Vec<f32>> {
    let t = planes.len();
    let mut by_row = vec![0f32; pts.n() * t];
    by_row
        .par_chunks_mut(t * 64)
        .enumerate()
        .for_each(|(c, out)| {
            for (r, m) in out.chunks_exact_mut(t).enumerate() {
                dots(pts.row(c * 64 + r), |s| &planes[s].normal, m);
            }
        });
    (0..t)
        .map(|p| by_row.iter().skip(p).step_by(t).copied().collect())
        .collect()
}

/// Splits a node by its margins: positive to the left, negative to the right, |m| < 10⁻⁸ by a
/// coin flip; a split leaving one side empty (duplicates) halves the node at random instead.
fn assign(node: Vec<u32>, margins: &[f32], offset: f32, rng: &mut StdRng) -> [Vec<u32>; 2] {
    let (mut left, mut right) = (Vec::new(), Vec::new());
    for (&i, &m) in node.iter().zip(margins) {
        let m = m + offset;
        let side = if m.abs() < 1e-8 {
            rng.random_bool(0.5)
        } else {
            m > 0.0
        };
        if side { left.push(i) } else { right.push(i) }
    }
    if left.is_empty() || right.is_empty() {
        let mut all = node;
        let half = all.len() / 2;
        for i in 0..half {
            let j = rng.random_range(i..all.len());
            all.swap(i, j);
        }
        right = all.split_off(half);
        left = all;
    }
    [left, right]
}

/// The leaves under the nodes of `stack`, depth first (the last node first).
fn grow(
    pts: &Points<'_>,
    leaf_size: usize,
    rng: &mut StdRng,
    mut stack: Vec<Vec<u32>>,
) -> Vec<Vec<u32>> {
    let mut leaves = Vec::new();
    while let Some(node) = stack.pop() {
        if node.len() <= leaf_size {
            leaves.push(node);
            continue;
        }
        let h = draw(pts, &node, rng);
        let m = margins(pts, &node, &h.normal);
        stack.extend(assign(node, &m, h.offset, rng));
    }
    leaves
}

/// The leaves of one tree per seed (angular splits for cosine, Euclidean otherwise), tree after
/// tree.
pub(crate) fn forest_leaves(pts: &Points<'_>, leaf_size: usize, seeds: &[u64]) -> Vec<Vec<u32>> {
    let n = pts.n();
    let all: Vec<u32> = (0..n as u32).collect();
    if n <= leaf_size {
        return seeds.iter().map(|_| all.clone()).collect();
    }
    let mut rngs: Vec<StdRng> = seeds.iter().map(|&s| StdRng::seed_from_u64(s)).collect();
    let planes: Vec<Hyperplane> = rngs.iter_mut().map(|r| draw(pts, &all, r)).collect();
    let roots = margins_of_all(pts, &planes);
    rngs.into_par_iter()
        .zip(planes)
        .zip(roots)
        .map(|((mut rng, h), m)| {
            let children = assign(all.clone(), &m, h.offset, &mut rng);
            grow(pts, leaf_size, &mut rng, children.into())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{forest_leaves, grow};
    use crate::umap::knn::{Metric, Points};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// The forest with shared root margins has exactly the leaves of trees grown one by one
    /// from their roots, for both metrics, with duplicate rows (coin flips and degenerate
    /// splits) among them.
    #[test]
    fn shared_roots_give_the_tree_by_tree_leaves() {
        let (n, d) = (700, 37);
        let mut s = 7u64;
        let mut x: Vec<f32> = (0..n * d)
            .map(|_| {
                s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect();
        // Rows 600.. repeat row 0.
        for i in 600..n {
            let (head, tail) = x.split_at_mut(i * d);
            tail[..d].copy_from_slice(&head[..d]);
        }
        let seeds = [1u64, 2, 3, 4, 5, 6];
        for metric in [Metric::Cosine, Metric::Euclidean] {
            let pts = Points::new(&x, d, metric);
            let got = forest_leaves(&pts, 30, &seeds);
            let want: Vec<Vec<u32>> = seeds
                .iter()
                .flat_map(|&s| {
                    let mut rng = StdRng::seed_from_u64(s);
                    grow(&pts, 30, &mut rng, vec![(0..n as u32).collect()])
                })
                .collect();
            assert_eq!(got, want, "{metric:?}");
            assert!(got.iter().all(|l| l.len() <= 30));
            assert_eq!(got.iter().map(Vec::len).sum::<usize>(), n * seeds.len());
        }
    }
}

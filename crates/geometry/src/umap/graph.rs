//! The fuzzy simplicial set: umap-learn's `smooth_knn_dist`, `compute_membership_strengths`
//! and the fuzzy union `P + Pᵀ − P∘Pᵀ`.

// Index loops mirror the reference implementation line for line.
#![allow(clippy::needless_range_loop)]

use rayon::prelude::*;

use crate::umap::knn::KnnGraph;

const SMOOTH_K_TOLERANCE: f64 = 1e-5;
const MIN_K_DIST_SCALE: f64 = 1e-3;
const N_ITER: usize = 64;

/// A symmetric sparse matrix in compressed rows: `cols[ptr[i]..ptr[i+1]]` sorted.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseGraph {
    /// Row pointers, `n + 1`.
    pub ptr: Vec<usize>,
    /// Column indices.
    pub cols: Vec<u32>,
    /// Values.
    pub vals: Vec<f32>,
}

impl SparseGraph {
    /// Rows.
    pub fn n(&self) -> usize {
        self.ptr.len() - 1
    }

    /// Stored entries.
    pub fn nnz(&self) -> usize {
        self.cols.len()
    }

    /// Row i's entries.
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        (
            &self.cols[self.ptr[i]..self.ptr[i + 1]],
            &self.vals[self.ptr[i]..self.ptr[i + 1]],
        )
    }

    /// Drops entries below `threshold` (umap-learn zeroes `w < max(w) / n_epochs` before the
    /// layout).
    pub fn prune_below(&self, threshold: f32) -> SparseGraph {
        let mut ptr = vec![0];
        let (mut cols, mut vals) = (Vec::new(), Vec::new());
        for i in 0..self.n() {
            let (c, v) = self.row(i);
            for (&cc, &vv) in c.iter().zip(v) {
                if vv >= threshold && vv > 0.0 {
                    cols.push(cc);
                    vals.push(vv);
                }
            }
            ptr.push(cols.len());
        }
        SparseGraph { ptr, cols, vals }
    }

    /// Largest value.
    pub fn max_value(&self) -> f32 {
        self.vals.iter().copied().fold(0.0, f32::max)
    }
}

/// umap-learn's `smooth_knn_dist`: per point, ρ (distance to the nearest non-self neighbour, with
/// `local_connectivity` interpolation) and σ such that Σ_{j≥1} exp(−max(0, d_ij − ρ)/σ) = log₂ k.
pub fn smooth_knn_dist(knn: &KnnGraph, local_connectivity: f64) -> (Vec<f32>, Vec<f32>) {
    let k = knn.k;
    let target = (k as f64).log2();
    let mean_all = knn.distances.iter().map(|&d| f64::from(d)).sum::<f64>()
        / knn.distances.len().max(1) as f64;
    knn.distances
        .par_chunks(k)
        .map(|row| {
            let nonzero: Vec<f64> = row
                .iter()
                .filter(|&&d| d > 0.0)
                .map(|&d| f64::from(d))
                .collect();
            let mut rho = 0.0f64;
            if nonzero.len() as f64 >= local_connectivity {
                let index = local_connectivity.floor() as usize;
                let interp = local_connectivity - index as f64;
                if index > 0 {
                    rho = nonzero[index - 1];
                    if interp > SMOOTH_K_TOLERANCE {
                        rho += interp * (nonzero[index] - nonzero[index - 1]);
                    }
                } else {
                    rho = interp * nonzero[0];
                }
            } else if !nonzero.is_empty() {
                rho = nonzero.iter().copied().fold(f64::MIN, f64::max);
            }
            let rho = f64::from(rho as f32);
            let (mut lo, mut hi, mut mid) = (0.0f64, f64::INFINITY, 1.0f64);
            for _ in 0..N_ITER {
                let mut psum = 0.0;
                for &d in &row[1..] {
                    let d = f64::from(d) - rho;
                    psum += if d > 0.0 { (-(d / mid)).exp() } else { 1.0 };
                }
                if (psum - target).abs() < SMOOTH_K_TOLERANCE {
                    break;
                }
                if psum > target {
                    hi = mid;
                    mid = (lo + hi) / 2.0;
                } else {
                    lo = mid;
                    if hi == f64::INFINITY {
                        mid *= 2.0;
                    } else {
                        mid = (lo + hi) / 2.0;
                    }
                }
            }
            let mut sigma = mid;
            if rho > 0.0 {
                let mean_i = row.iter().map(|&d| f64::from(d)).sum::<f64>() / k as f64;
                sigma = sigma.max(MIN_K_DIST_SCALE * mean_i);
            } else {
                sigma = sigma.max(MIN_K_DIST_SCALE * mean_all);
            }
            (rho as f32, sigma as f32)
        })
        .unzip()
}

/// The fuzzy simplicial set of a neighbour graph (umap-learn's `fuzzy_simplicial_set` with
/// `set_op_mix_ratio` mixing the fuzzy union and intersection).
pub fn fuzzy_simplicial_set(
    knn: &KnnGraph,
    local_connectivity: f64,
    set_op_mix_ratio: f64,
) -> SparseGraph {
    let (rhos, sigmas) = smooth_knn_dist(knn, local_connectivity);
    let (n, k) = (knn.n, knn.k);
    // P, one row per point (columns may repeat only if the kNN lists do; they are summed).
    let mut rows: Vec<Vec<(u32, f32)>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut r: Vec<(u32, f32)> = Vec::with_capacity(k);
            for j in 0..k {
                let c = knn.indices[i * k + j];
                let d = knn.distances[i * k + j];
                let val = if c as usize == i {
                    0.0
                } else if d - rhos[i] <= 0.0 || sigmas[i] == 0.0 {
                    1.0
                } else {
                    (-(f64::from(d - rhos[i]) / f64::from(sigmas[i]))).exp() as f32
                };
                if val != 0.0 {
                    r.push((c, val));
                }
            }
            r.sort_by_key(|e| e.0);
            let mut merged: Vec<(u32, f32)> = Vec::with_capacity(r.len());
            for (c, v) in r {
                match merged.last_mut() {
                    Some(last) if last.0 == c => last.1 += v,
                    _ => merged.push((c, v)),
                }
            }
            merged
        })
        .collect();
    // Pᵀ.
    let mut trans: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
    for (i, r) in rows.iter().enumerate() {
        for &(c, v) in r {
            trans[c as usize].push((i as u32, v));
        }
    }
    let mix = set_op_mix_ratio as f32;
    let merged: Vec<Vec<(u32, f32)>> = rows
        .par_iter_mut()
        .zip(trans.par_iter_mut())
        .map(|(a, b)| {
            b.sort_by_key(|e| e.0);
            let (mut x, mut y) = (0, 0);
            let mut out = Vec::with_capacity(a.len() + b.len());
            while x < a.len() || y < b.len() {
                let (c, p, q) = match (a.get(x), b.get(y)) {
                    (Some(&(ca, va)), Some(&(cb, vb))) if ca == cb => {
                        x += 1;
                        y += 1;
                        (ca, va, vb)
                    }
                    (Some(&(ca, va)), Some(&(cb, _))) if ca < cb => {
                        x += 1;
                        (ca, va, 0.0)
                    }
                    (Some(&(ca, va)), None) => {
                        x += 1;
                        (ca, va, 0.0)
                    }
                    (_, Some(&(cb, vb))) => {
                        y += 1;
                        (cb, 0.0, vb)
                    }
                    (None, None) => break,
                };
                let prod = p * q;
                let v = mix * (p + q - prod) + (1.0 - mix) * prod;
                if v != 0.0 {
                    out.push((c, v));
                }
            }
            out
        })
        .collect();
    let mut ptr = Vec::with_capacity(n + 1);
    ptr.push(0);
    let (mut cols, mut vals) = (Vec::new(), Vec::new());
    for r in merged {
        for (c, v) in r {
            cols.push(c);
            vals.push(v);
        }
        ptr.push(cols.len());
    }
    SparseGraph { ptr, cols, vals }
}

//! Spectral initialisation (umap-learn's `spectral_layout` and `multi_component_layout`): the
//! eigenvectors of the symmetric normalised Laplacian L = I − D^{-1/2} W D^{-1/2} with the
//! smallest non-trivial eigenvalues, found by Lanczos with full reorthogonalisation (the
//! largest eigenvalues of D^{-1/2} W D^{-1/2}, the trivial D^{1/2}·1 deflated).

// Index loops mirror the reference implementation line for line.
#![allow(clippy::needless_range_loop)]

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

use crate::umap::graph::SparseGraph;

/// Connected components: a label per point and the number of components.
pub fn connected_components(g: &SparseGraph) -> (Vec<usize>, usize) {
    let n = g.n();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for i in 0..n {
        let (c, _) = g.row(i);
        for &j in c {
            let (a, b) = (find(&mut parent, i), find(&mut parent, j as usize));
            if a != b {
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut label = vec![usize::MAX; n];
    let mut next = 0;
    let mut out = vec![0; n];
    for i in 0..n {
        let r = find(&mut parent, i);
        if label[r] == usize::MAX {
            label[r] = next;
            next += 1;
        }
        out[i] = label[r];
    }
    (out, next)
}

/// Eigen-decomposition of a symmetric tridiagonal matrix (implicit QL with Wilkinson shifts):
/// eigenvalues and the rotation accumulated into `z` (initially the identity).
fn tridiagonal_eigen(d: &mut [f64], e: &mut [f64], z: &mut [Vec<f64>]) {
    let n = d.len();
    if n == 0 {
        return;
    }
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    for l in 0..n {
        let mut iter = 0;
        loop {
            let mut m = l;
            while m + 1 < n {
                let dd = d[m].abs() + d[m + 1].abs();
                if e[m].abs() <= f64::EPSILON * dd {
                    break;
                }
                m += 1;
            }
            if m == l {
                break;
            }
            iter += 1;
            if iter > 60 {
                break;
            }
            let mut g = (d[l + 1] - d[l]) / (2.0 * e[l]);
            let mut r = g.hypot(1.0);
            g = d[m] - d[l] + e[l] / (g + if g >= 0.0 { r.abs() } else { -r.abs() });
            let (mut s, mut c, mut p) = (1.0, 1.0, 0.0);
            let mut i = m;
            let mut early = false;
            while i > l {
                i -= 1;
                let f = s * e[i];
                let b = c * e[i];
                r = f.hypot(g);
                e[i + 1] = r;
                if r == 0.0 {
                    d[i + 1] -= p;
                    e[m] = 0.0;
                    early = true;
                    break;
                }
                s = f / r;
                c = g / r;
                g = d[i + 1] - p;
                r = (d[i] - g) * s + 2.0 * c * b;
                p = s * r;
                d[i + 1] = g + p;
                g = c * r - b;
                for row in z.iter_mut() {
                    let f2 = row[i + 1];
                    row[i + 1] = s * row[i] + c * f2;
                    row[i] = c * row[i] - s * f2;
                }
            }
            if early {
                continue;
            }
            d[l] -= p;
            e[l] = g;
            e[m] = 0.0;
        }
    }
}

/// Dot product with eight independent partial sums (one running sum made each step wait on
/// the previous addition: the reorthogonalisation's ~8 000 products of 16 128 entries took
/// most of the initialisation's time).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Removes from `v` its components along the orthonormal `against` (one classical
/// Gram-Schmidt pass: all coefficients first, then one sweep; both halves in parallel).
fn orthogonalise(v: &mut [f64], against: &[&[f64]]) {
    let coef: Vec<f64> = against.par_iter().map(|q| dot(q, v)).collect();
    const ROWS: usize = 2048;
    v.par_chunks_mut(ROWS).enumerate().for_each(|(ci, vc)| {
        let (o, len) = (ci * ROWS, vc.len());
        for (q, &c) in against.iter().zip(&coef) {
            for (x, y) in vc.iter_mut().zip(&q[o..o + len]) {
                *x -= c * y;
            }
        }
    });
}

/// The `k` largest eigenpairs of a symmetric operator given by `matvec`, with every vector kept
/// orthogonal to `deflate` (unit). Lanczos with full reorthogonalisation, `m` steps.
fn lanczos_top(
    n: usize,
    k: usize,
    m: usize,
    deflate: &[f64],
    seed: u64,
    matvec: &(dyn Fn(&[f64], &mut [f64]) + Sync),
) -> Option<(Vec<f64>, Vec<Vec<f64>>)> {
    let m = m.min(n.saturating_sub(1)).max(k + 1);
    if m > n.saturating_sub(1) && n <= k + 1 {
        return None;
    }
    let norm = |v: &[f64]| dot(v, v).sqrt();
    // umap-learn starts eigsh from ones; a deterministic start with a little structure avoids
    // the start lying in the deflated space.
    let mut rng = StdRng::seed_from_u64(seed);
    let mut q: Vec<f64> = (0..n)
        .map(|_| 1.0 + 0.01 * rng.random_range(-1.0..1.0))
        .collect();
    orthogonalise(&mut q, &[deflate]);
    let nq = norm(&q);
    if nq == 0.0 {
        return None;
    }
    q.iter_mut().for_each(|x| *x /= nq);
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(m);
    let (mut alpha, mut beta) = (Vec::with_capacity(m), Vec::with_capacity(m));
    let mut w = vec![0.0; n];
    for j in 0..m {
        matvec(&q, &mut w);
        let a = dot(&w, &q);
        alpha.push(a);
        // The three-term recurrence first, then full reorthogonalisation by classical
        // Gram-Schmidt, repeated when a pass removed more than 1 − 1/√2 of the norm (the
        // Daniel-Gragg-Kaufman-Stewart test; "twice is enough"). After the recurrence only
        // rounding is left to remove, so one pass is the rule.
        w.par_iter_mut().zip(&q).for_each(|(x, y)| *x -= a * y);
        if let (Some(prev), Some(&b)) = (basis.last(), beta.last()) {
            w.par_iter_mut().zip(prev).for_each(|(x, y)| *x -= b * y);
        }
        basis.push(q.clone());
        let against: Vec<&[f64]> = std::iter::once(deflate)
            .chain(basis.iter().map(Vec::as_slice))
            .collect();
        let mut b = norm(&w);
        for _ in 0..3 {
            let before = b;
            orthogonalise(&mut w, &against);
            b = norm(&w);
            if b >= std::f64::consts::FRAC_1_SQRT_2 * before {
                break;
            }
        }
        if j + 1 == m || b < 1e-12 {
            break;
        }
        beta.push(b);
        q = w.iter().map(|x| x / b).collect();
    }
    let s = alpha.len();
    let mut d = alpha;
    let mut e = vec![0.0; s];
    e[1..s].copy_from_slice(&beta[..(s - 1)]);
    let mut z: Vec<Vec<f64>> = (0..s)
        .map(|i| (0..s).map(|j| f64::from(u8::from(i == j))).collect())
        .collect();
    tridiagonal_eigen(&mut d, &mut e, &mut z);
    let mut order: Vec<usize> = (0..s).collect();
    order.sort_by(|&a, &b| d[b].total_cmp(&d[a]));
    let take = k.min(s);
    let mut vals = Vec::with_capacity(take);
    let mut vecs = Vec::with_capacity(take);
    for &o in order.iter().take(take) {
        vals.push(d[o]);
        let mut v = vec![0.0; n];
        for (bj, qv) in basis.iter().enumerate() {
            let c = z[bj][o];
            v.iter_mut().zip(qv).for_each(|(a, b)| *a += c * b);
        }
        vecs.push(v);
    }
    Some((vals, vecs))
}

/// `dim` eigenvectors of the normalised Laplacian with the smallest non-trivial eigenvalues, as
/// `[n, dim]` row-major; `None` when the solver cannot (tiny or degenerate graphs).
fn spectral_connected(g: &SparseGraph, dim: usize, seed: u64) -> Option<Vec<f64>> {
    let n = g.n();
    if n <= dim + 1 {
        return None;
    }
    let deg: Vec<f64> = (0..n)
        .map(|i| g.row(i).1.iter().map(|&v| f64::from(v)).sum())
        .collect();
    if deg.iter().any(|&d| d <= 0.0) {
        return None;
    }
    let inv_sqrt: Vec<f64> = deg.iter().map(|d| 1.0 / d.sqrt()).collect();
    let total: f64 = deg.iter().sum();
    let trivial: Vec<f64> = deg.iter().map(|d| (d / total).sqrt()).collect();
    let matvec = |x: &[f64], y: &mut [f64]| {
        y.par_iter_mut().enumerate().for_each(|(i, yi)| {
            let (c, v) = g.row(i);
            let mut s = 0.0;
            for (&j, &w) in c.iter().zip(v) {
                s += f64::from(w) * inv_sqrt[j as usize] * x[j as usize];
            }
            *yi = s * inv_sqrt[i];
        });
    };
    let m = (2 * (dim + 1) + 1)
        .max((n as f64).sqrt() as usize)
        .max(4 * dim + 40)
        .min(n - 1);
    let (_, vecs) = lanczos_top(n, dim, m, &trivial, seed, &matvec)?;
    if vecs.len() < dim {
        return None;
    }
    let mut out = vec![0.0; n * dim];
    for (c, v) in vecs.iter().enumerate() {
        for i in 0..n {
            out[i * dim + c] = v[i];
        }
    }
    out.iter().all(|x| x.is_finite()).then_some(out)
}

/// umap-learn's spectral initialisation with its fallbacks: one component → the Laplacian
/// eigenvectors; several → each component's own layout placed around a meta-embedding; a
/// failed solve → uniform(−10, 10). Then `noisy_scale_coords`: scaled to max |x| = 10 plus
/// N(0, 10⁻⁴) noise. Row-major `[n, dim]`.
pub fn spectral_init(g: &SparseGraph, dim: usize, seed: u64) -> Vec<f32> {
    let n = g.n();
    let mut rng = StdRng::seed_from_u64(seed);
    let (labels, n_comp) = connected_components(g);
    let emb: Option<Vec<f64>> = if n_comp == 1 {
        spectral_connected(g, dim, seed)
    } else {
        Some(multi_component(g, dim, &labels, n_comp, seed))
    };
    let Some(emb) = emb else {
        tracing::warn!("spectral initialisation failed; using a random one");
        return (0..n * dim)
            .map(|_| rng.random_range(-10.0f32..10.0))
            .collect();
    };
    let max = emb.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let expansion = if max > 0.0 { 10.0 / max } else { 1.0 };
    emb.iter()
        .map(|&v| (v * expansion) as f32 + gaussian(&mut rng) * 1e-4)
        .collect()
}

fn gaussian(rng: &mut StdRng) -> f32 {
    let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.random_range(0.0..1.0);
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// umap-learn's `multi_component_layout` (meta-embedding of ± unit vectors for up to 2·dim
/// components, else spread on a circle/sphere), each component laid out on its own and scaled
/// to half the distance to the nearest other component.
fn multi_component(
    g: &SparseGraph,
    dim: usize,
    labels: &[usize],
    n_comp: usize,
    seed: u64,
) -> Vec<f64> {
    let n = g.n();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x77);
    let meta: Vec<Vec<f64>> = if n_comp <= 2 * dim {
        let k = n_comp.div_ceil(2);
        (0..n_comp)
            .map(|c| {
                let mut v = vec![0.0; dim];
                let (axis, sign) = if c < k { (c, 1.0) } else { (c - k, -1.0) };
                v[axis] = sign;
                v
            })
            .collect()
    } else {
        // Evenly spread directions on the first two axes (a circle), radius growing slowly.
        (0..n_comp)
            .map(|c| {
                let t = 2.0 * std::f64::consts::PI * c as f64 / n_comp as f64;
                let mut v = vec![0.0; dim];
                v[0] = t.cos();
                if dim > 1 {
                    v[1] = t.sin();
                }
                v
            })
            .collect()
    };
    let mut out = vec![0.0; n * dim];
    for c in 0..n_comp {
        let members: Vec<usize> = (0..n).filter(|&i| labels[i] == c).collect();
        let data_range = meta
            .iter()
            .enumerate()
            .filter(|&(o, _)| o != c)
            .map(|(_, m)| {
                m.iter()
                    .zip(&meta[c])
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>()
                    .sqrt()
            })
            .filter(|&d| d > 0.0)
            .fold(f64::INFINITY, f64::min)
            / 2.0;
        let data_range = if data_range.is_finite() {
            data_range
        } else {
            1.0
        };
        let mut placed = false;
        if members.len() >= 2 * dim && members.len() > dim + 1 {
            let sub = subgraph(g, &members);
            if let Some(e) = spectral_connected(&sub, dim, seed.wrapping_add(c as u64)) {
                let max = e.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                let scale = if max > 0.0 { data_range / max } else { 0.0 };
                for (r, &i) in members.iter().enumerate() {
                    for d in 0..dim {
                        out[i * dim + d] = e[r * dim + d] * scale + meta[c][d];
                    }
                }
                placed = true;
            }
        }
        if !placed {
            for &i in &members {
                for d in 0..dim {
                    out[i * dim + d] =
                        rng.random_range(-data_range..data_range.max(1e-12)) + meta[c][d];
                }
            }
        }
    }
    out
}

fn subgraph(g: &SparseGraph, members: &[usize]) -> SparseGraph {
    let mut pos = std::collections::HashMap::with_capacity(members.len());
    for (r, &i) in members.iter().enumerate() {
        pos.insert(i as u32, r as u32);
    }
    let mut ptr = vec![0];
    let (mut cols, mut vals) = (Vec::new(), Vec::new());
    for &i in members {
        let (c, v) = g.row(i);
        for (&j, &w) in c.iter().zip(v) {
            if let Some(&r) = pos.get(&j) {
                cols.push(r);
                vals.push(w);
            }
        }
        ptr.push(cols.len());
    }
    SparseGraph { ptr, cols, vals }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tridiagonal_matches_a_known_spectrum() {
        // The path-graph Laplacian tridiag(-1, 2, -1) of size 6: eigenvalues 2 − 2cos(kπ/7).
        let n = 6;
        let mut d = vec![2.0; n];
        let mut e = vec![0.0; n];
        for i in 1..n {
            e[i] = -1.0;
        }
        let mut z: Vec<Vec<f64>> = (0..n)
            .map(|i| (0..n).map(|j| f64::from(u8::from(i == j))).collect())
            .collect();
        tridiagonal_eigen(&mut d, &mut e, &mut z);
        d.sort_by(f64::total_cmp);
        for (k, v) in d.iter().enumerate() {
            let want = 2.0 - 2.0 * (((k + 1) as f64) * std::f64::consts::PI / 7.0).cos();
            assert!((v - want).abs() < 1e-10, "{v} vs {want}");
        }
    }
}

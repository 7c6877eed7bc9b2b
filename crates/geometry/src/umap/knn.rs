//! k-nearest-neighbour graphs: exact (blocked matrix products) and NN-descent with
//! random-projection-tree initialisation (pynndescent's algorithm).
//!
//! As in umap-learn, every point's list starts with the point itself at distance 0, so
//! `n_neighbors = 15` means the point and 14 others.

// Index loops mirror the reference implementation line for line.
#![allow(clippy::needless_range_loop)]

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

use crate::error::{GeometryError, Result};
use crate::umap::heaps::Heaps;
use crate::umap::rptree::forest_leaves;

/// How distances are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Metric {
    /// 1 − cos(x, y) (rows are L2-normalised first; the tutorial's choice for decoder rows).
    #[default]
    Cosine,
    /// ‖x − y‖.
    Euclidean,
}

/// How the neighbour graph is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KnnMethod {
    /// umap-learn's rule: exact below 4096 points, NN-descent from there on.
    #[default]
    Auto,
    /// All pairwise distances (blocked matrix products), exact.
    Exact,
    /// NN-descent from random-projection trees (pynndescent), approximate.
    NnDescent,
}

/// Points below which [`KnnMethod::Auto`] is exact (umap-learn's threshold).
pub const EXACT_BELOW: usize = 4096;

/// A neighbour graph: for each point its `k` nearest (itself first), by increasing distance.
#[derive(Debug, Clone, PartialEq)]
pub struct KnnGraph {
    /// Points.
    pub n: usize,
    /// Neighbours per point (including itself).
    pub k: usize,
    /// `[n, k]` neighbour indices.
    pub indices: Vec<u32>,
    /// `[n, k]` distances.
    pub distances: Vec<f32>,
}

/// Row-major points prepared for a metric: unit rows for cosine, plus squared norms.
pub(crate) struct Points<'a> {
    data: Rows<'a>,
    pub(crate) d: usize,
    pub(crate) sq_norms: Vec<f32>,
    pub(crate) metric: Metric,
}

/// The rows as given, or a copy that starts on a cache line.
enum Rows<'a> {
    Borrowed(&'a [f32]),
    Owned(AlignedRows),
}

/// Floats in a cache line.
const LINE_FLOATS: usize = 16;

/// A float buffer whose first element sits on a 64-byte boundary. With rows of a multiple of
/// 16 floats (768 for GPT-2 small) every row then starts on a cache line, so no vector load of
/// the dot kernels straddles two lines: a copy of the tutorial's 16 128 × 768 decoders made its
/// neighbour search 0.40 → 0.35 s when the caller's rows were off by 16 bytes, as a large
/// allocation's are.
struct AlignedRows {
    buf: Vec<f32>,
    at: usize,
    len: usize,
}

impl AlignedRows {
    /// A copy of `src`, `d` floats per row, made in parallel.
    fn copy(src: &[f32], d: usize) -> Self {
        let len = src.len();
        let mut buf = vec![0f32; len + LINE_FLOATS - 1];
        let at = (buf.as_ptr() as usize).wrapping_neg() % 64 / std::mem::size_of::<f32>();
        buf[at..at + len]
            .par_chunks_mut(d.max(1) * 64)
            .zip(src.par_chunks(d.max(1) * 64))
            .for_each(|(to, from)| to.copy_from_slice(from));
        Self { buf, at, len }
    }

    fn as_slice(&self) -> &[f32] {
        &self.buf[self.at..self.at + self.len]
    }

    fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.buf[self.at..self.at + self.len]
    }
}

impl<'a> Points<'a> {
    pub(crate) fn new(data: &'a [f32], d: usize, metric: Metric) -> Self {
        let input_sq_norms: Vec<f32> = data.par_chunks(d).map(|r| dot(r, r)).collect();
        // Rows already of unit length (decoder directions often are) are used as they are
        // unless they would straddle cache lines: the normalised copy of the tutorial's
        // 16 128 × 768 decoders is 50 MB of fresh pages.
        let unit = input_sq_norms.iter().all(|&s| (s - 1.0).abs() <= 1e-5);
        let misaligned =
            d.is_multiple_of(LINE_FLOATS) && !(data.as_ptr() as usize).is_multiple_of(64);
        let (rows, sq_norms) = match metric {
            Metric::Cosine if !unit => {
                let mut v = AlignedRows::copy(data, d);
                v.as_mut_slice().par_chunks_mut(d).for_each(|r| {
                    let n = r.iter().map(|x| x * x).sum::<f32>().sqrt();
                    if n > 0.0 {
                        r.iter_mut().for_each(|x| *x /= n);
                    }
                });
                let sq_norms = v.as_slice().par_chunks(d).map(|r| dot(r, r)).collect();
                (Rows::Owned(v), sq_norms)
            }
            _ if misaligned => (Rows::Owned(AlignedRows::copy(data, d)), input_sq_norms),
            _ => (Rows::Borrowed(data), input_sq_norms),
        };
        Self {
            data: rows,
            d,
            sq_norms,
            metric,
        }
    }

    /// All rows, row-major.
    pub(crate) fn data(&self) -> &[f32] {
        match &self.data {
            Rows::Borrowed(v) => v,
            Rows::Owned(v) => v.as_slice(),
        }
    }

    pub(crate) fn n(&self) -> usize {
        self.sq_norms.len()
    }

    pub(crate) fn row(&self, i: usize) -> &[f32] {
        &self.data()[i * self.d..(i + 1) * self.d]
    }

    /// The rows of the first four indices of `idx` (the four-row kernels' operands).
    fn rows4(&self, idx: &[u32]) -> [&[f32]; 4] {
        [0, 1, 2, 3].map(|t| self.row(idx[t] as usize))
    }

    /// The search distance (monotone in the true one): 1 − cos, or the squared distance.
    #[inline]
    pub(crate) fn dist(&self, i: usize, j: usize) -> f32 {
        self.dist_from_dot(i, j, dot(self.row(i), self.row(j)))
    }

    /// The search distance from a dot product of rows i and j.
    #[inline]
    fn dist_from_dot(&self, i: usize, j: usize, dp: f32) -> f32 {
        match self.metric {
            Metric::Cosine => (1.0 - dp).max(0.0),
            Metric::Euclidean => (self.sq_norms[i] + self.sq_norms[j] - 2.0 * dp).max(0.0),
        }
    }

    /// Calls `f(q, dist(p, q))` for every q in `qs`, four rows per pass over p's row.
    pub(crate) fn for_each_dist(&self, p: u32, qs: &[u32], mut f: impl FnMut(u32, f32)) {
        let (pi, rp) = (p as usize, self.row(p as usize));
        let mut groups = qs.chunks_exact(4);
        for g in &mut groups {
            let dots = dot4(rp, self.rows4(g));
            for t in 0..4 {
                f(g[t], self.dist_from_dot(pi, g[t] as usize, dots[t]));
            }
        }
        for &q in groups.remainder() {
            f(q, self.dist(pi, q as usize));
        }
    }

    /// Calls `f(p, q, dist(p, q))` for every pair p before q of `rows`, sixteen pairs per pass
    /// where four-by-four blocks fit (the rest four at a time).
    pub(crate) fn for_each_pair(&self, rows: &[u32], mut f: impl FnMut(u32, u32, f32)) {
        let m = rows.len();
        let full = m / 4 * 4;
        for a in (0..full).step_by(4) {
            // Inside the diagonal block: the pairs four at a time.
            for t in 0..3 {
                self.for_each_dist(rows[a + t], &rows[a + t + 1..a + 4], |q, d| {
                    f(rows[a + t], q, d);
                });
            }
            for b in (a + 4..full).step_by(4) {
                let g = dot4x4(self.rows4(&rows[a..]), self.rows4(&rows[b..]));
                for r in 0..4 {
                    for c in 0..4 {
                        let (p, q) = (rows[a + r], rows[b + c]);
                        f(p, q, self.dist_from_dot(p as usize, q as usize, g[r][c]));
                    }
                }
            }
            for r in 0..4 {
                self.for_each_dist(rows[a + r], &rows[full..], |q, d| f(rows[a + r], q, d));
            }
        }
        for t in full..m {
            self.for_each_dist(rows[t], &rows[t + 1..], |q, d| f(rows[t], q, d));
        }
    }

    /// The reported distance from a search distance.
    pub(crate) fn finish(&self, d: f32) -> f32 {
        match self.metric {
            Metric::Cosine => d,
            Metric::Euclidean => d.sqrt(),
        }
    }
}

/// Dot product with sixteen accumulators, compiled for AVX-512, AVX2+FMA and the baseline and
/// chosen at run time (the distances dominate the neighbour search).
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512vl",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = a.len() / 16;
    for c in 0..chunks {
        let (x, y) = (&a[c * 16..c * 16 + 16], &b[c * 16..c * 16 + 16]);
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for i in chunks * 16..a.len() {
        s += a[i] * b[i];
    }
    s
}

/// Four dot products of `a` with `b[0..4]` in one pass over `a` (each chunk of `a` is loaded
/// once for four rows), compiled per target as [`dot`].
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512vl",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
pub(crate) fn dot4(a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
    let n = a.len();
    let [b0, b1, b2, b3] = b.map(|r| &r[..n]);
    // Four named accumulators: as one nested array they were kept on the stack.
    let (mut s0, mut s1, mut s2, mut s3) = ([0f32; 16], [0f32; 16], [0f32; 16], [0f32; 16]);
    let chunks = n / 16;
    for c in 0..chunks {
        let r = c * 16..c * 16 + 16;
        let (x, y0, y1, y2, y3) = (
            &a[r.clone()],
            &b0[r.clone()],
            &b1[r.clone()],
            &b2[r.clone()],
            &b3[r],
        );
        for l in 0..16 {
            s0[l] += x[l] * y0[l];
            s1[l] += x[l] * y1[l];
            s2[l] += x[l] * y2[l];
            s3[l] += x[l] * y3[l];
        }
    }
    let mut out = [s0, s1, s2, s3].map(|v| v.iter().sum::<f32>());
    for i in chunks * 16..n {
        out[0] += a[i] * b0[i];
        out[1] += a[i] * b1[i];
        out[2] += a[i] * b2[i];
        out[3] += a[i] * b3[i];
    }
    out
}

/// `out[i] = a · row(i)` for every `i < out.len()`: four rows per pass over `a` ([`dot4`]), the
/// rest one by one ([`dot`], which sums the same way).
pub(crate) fn dots<'r>(a: &[f32], row: impl Fn(usize) -> &'r [f32], out: &mut [f32]) {
    let full = out.len() / 4 * 4;
    for g in (0..full).step_by(4) {
        out[g..g + 4].copy_from_slice(&dot4(a, [0, 1, 2, 3].map(|t| row(g + t))));
    }
    for (i, o) in out.iter_mut().enumerate().skip(full) {
        *o = dot(a, row(i));
    }
}

/// The 4 × 4 dot products of rows `a[r]` and `b[c]` in one pass: each 8-wide chunk of the
/// eight rows is loaded once for four products (the all-pairs search inside a tree leaf),
/// compiled per target as [`dot`].
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512vl",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
pub(crate) fn dot4x4(a: [&[f32]; 4], b: [&[f32]; 4]) -> [[f32; 4]; 4] {
    let n = a[0].len();
    let [a0, a1, a2, a3] = a.map(|r| &r[..n]);
    let [b0, b1, b2, b3] = b.map(|r| &r[..n]);
    macro_rules! acc {
        ($($s:ident),*) => { $(let mut $s = [0f32; 8];)* };
    }
    acc!(
        s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33
    );
    let chunks = n / 8;
    for c in 0..chunks {
        let r = c * 8..c * 8 + 8;
        let (x0, x1, x2, x3) = (
            &a0[r.clone()],
            &a1[r.clone()],
            &a2[r.clone()],
            &a3[r.clone()],
        );
        let (y0, y1, y2, y3) = (&b0[r.clone()], &b1[r.clone()], &b2[r.clone()], &b3[r]);
        for l in 0..8 {
            s00[l] += x0[l] * y0[l];
            s01[l] += x0[l] * y1[l];
            s02[l] += x0[l] * y2[l];
            s03[l] += x0[l] * y3[l];
            s10[l] += x1[l] * y0[l];
            s11[l] += x1[l] * y1[l];
            s12[l] += x1[l] * y2[l];
            s13[l] += x1[l] * y3[l];
            s20[l] += x2[l] * y0[l];
            s21[l] += x2[l] * y1[l];
            s22[l] += x2[l] * y2[l];
            s23[l] += x2[l] * y3[l];
            s30[l] += x3[l] * y0[l];
            s31[l] += x3[l] * y1[l];
            s32[l] += x3[l] * y2[l];
            s33[l] += x3[l] * y3[l];
        }
    }
    let sum = |v: [f32; 8]| v.iter().sum::<f32>();
    let mut out = [
        [sum(s00), sum(s01), sum(s02), sum(s03)],
        [sum(s10), sum(s11), sum(s12), sum(s13)],
        [sum(s20), sum(s21), sum(s22), sum(s23)],
        [sum(s30), sum(s31), sum(s32), sum(s33)],
    ];
    for i in chunks * 8..n {
        for (r, ar) in [a0, a1, a2, a3].iter().enumerate() {
            for (c, bc) in [b0, b1, b2, b3].iter().enumerate() {
                out[r][c] += ar[i] * bc[i];
            }
        }
    }
    out
}

/// Validates a row-major matrix.
pub(crate) fn check_matrix(data: &[f32], d: usize, what: &str) -> Result<usize> {
    if d == 0 || data.is_empty() || !data.len().is_multiple_of(d) {
        return Err(GeometryError::InvalidInput {
            what: what.into(),
            message: format!("{} values do not form rows of width {d}", data.len()),
        });
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(GeometryError::InvalidInput {
            what: what.into(),
            message: format!("non-finite value at row {}, column {}", i / d, i % d),
        });
    }
    Ok(data.len() / d)
}

/// The k nearest neighbours of every point.
pub fn knn_graph(
    data: &[f32],
    d: usize,
    k: usize,
    metric: Metric,
    method: KnnMethod,
    seed: u64,
) -> Result<KnnGraph> {
    check_matrix(data, d, "points")?;
    knn_graph_checked(data, d, k, metric, method, seed)
}

/// [`knn_graph`] of a matrix [`check_matrix`] has passed (UMAP checks it once for all steps).
pub(crate) fn knn_graph_checked(
    data: &[f32],
    d: usize,
    k: usize,
    metric: Metric,
    method: KnnMethod,
    seed: u64,
) -> Result<KnnGraph> {
    let n = data.len() / d;
    if k < 2 || k > n {
        return Err(GeometryError::InvalidParameter {
            name: "n_neighbors",
            expected: format!("in 2..={n}"),
            found: k.to_string(),
        });
    }
    let pts = Points::new(data, d, metric);
    let exact = match method {
        KnnMethod::Exact => true,
        KnnMethod::NnDescent => false,
        KnnMethod::Auto => n < EXACT_BELOW,
    };
    Ok(if exact {
        exact_knn(&pts, k)
    } else {
        nn_descent(&pts, k, seed)
    })
}

/// Self first, then the k − 1 nearest others by (distance, index).
fn finish_row(
    pts: &Points<'_>,
    i: usize,
    mut cand: Vec<(f32, u32)>,
    k: usize,
) -> (Vec<u32>, Vec<f32>) {
    cand.retain(|&(_, j)| j as usize != i);
    cand.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    cand.dedup_by_key(|c| c.1);
    let mut idx = vec![i as u32];
    let mut dist = vec![0.0];
    for &(dd, j) in cand.iter().take(k - 1) {
        idx.push(j);
        dist.push(pts.finish(dd));
    }
    (idx, dist)
}

const BLOCK: usize = 256;

/// Exact neighbours: distances block by block (cache-blocked dot products), keeping each row's
/// k − 1 nearest others.
fn exact_knn(pts: &Points<'_>, k: usize) -> KnnGraph {
    let n = pts.n();
    let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..n)
        .into_par_iter()
        .chunks(BLOCK)
        .flat_map_iter(|block| {
            let mut best: Vec<Vec<(f32, u32)>> =
                block.iter().map(|_| Vec::with_capacity(4 * k)).collect();
            for j0 in (0..n).step_by(BLOCK) {
                let j1 = (j0 + BLOCK).min(n);
                for (bi, &i) in block.iter().enumerate() {
                    let b = &mut best[bi];
                    for j in j0..j1 {
                        if j == i {
                            continue;
                        }
                        b.push((pts.dist(i, j), j as u32));
                    }
                    if b.len() > 3 * k {
                        let keep = k - 1;
                        b.select_nth_unstable_by(keep, |x, y| {
                            x.0.total_cmp(&y.0).then(x.1.cmp(&y.1))
                        });
                        b.truncate(keep + 1);
                    }
                }
            }
            block
                .into_iter()
                .zip(best)
                .map(|(i, b)| finish_row(pts, i, b, k))
                .collect::<Vec<_>>()
        })
        .collect();
    assemble(n, k, rows)
}

fn assemble(n: usize, k: usize, rows: Vec<(Vec<u32>, Vec<f32>)>) -> KnnGraph {
    let mut indices = Vec::with_capacity(n * k);
    let mut distances = Vec::with_capacity(n * k);
    for (i, (mut idx, mut dist)) in rows.into_iter().enumerate() {
        // Fewer than k distinct others (tiny inputs): pad with the point itself.
        while idx.len() < k {
            idx.push(i as u32);
            dist.push(0.0);
        }
        indices.extend(idx);
        distances.extend(dist);
    }
    KnnGraph {
        n,
        k,
        indices,
        distances,
    }
}

/// pynndescent's parameters for n points.
fn n_trees(n: usize) -> usize {
    (5 + ((n as f64).sqrt() / 20.0).round() as usize).min(64)
}

fn n_iters(n: usize) -> usize {
    ((n as f64).log2().round() as usize).max(5)
}

const MAX_CANDIDATES: usize = 60;
/// Leaves whose pairs are computed between two heap updates.
const LEAF_BLOCK: usize = 1024;
const DELTA: f64 = 0.001;

/// NN-descent (Dong et al.; pynndescent's variant): random-projection-tree leaves seed the
/// heaps, then rounds of local joins over sampled new/old candidates until fewer than
/// `δ·k·n` updates happen.
fn nn_descent(pts: &Points<'_>, k: usize, seed: u64) -> KnnGraph {
    let n = pts.n();
    let kk = k - 1; // heaps hold the others; self is added at the end
    let leaf_size = (5 * k).clamp(60, 256);
    let mut heaps = Heaps::new(n, kk);
    // 1. Trees: all pairs inside each leaf.
    let seeds: Vec<u64> = (0..n_trees(n))
        .map(|t| seed.wrapping_add(0x1000 + t as u64))
        .collect();
    let leaves = forest_leaves(pts, leaf_size, &seeds);
    // Leaves in blocks, as pynndescent's init_rp_tree: a pair is kept only if it beats either
    // endpoint's current worst, and the heaps tighten from block to block (all pairs at once
    // held 5 M updates, 60 MB, for the tutorial's 16 128 points).
    for block in leaves.chunks(LEAF_BLOCK) {
        let thresholds = heaps.thresholds();
        let pairs: Vec<Vec<(u32, u32, f32)>> = block
            .par_iter()
            .map(|leaf| {
                let mut v = Vec::new();
                pts.for_each_pair(leaf, |p, q, dd| {
                    if dd < thresholds[p as usize] || dd < thresholds[q as usize] {
                        v.push((p, q, dd));
                    }
                });
                v
            })
            .collect();
        apply_updates(&mut heaps, pairs);
    }
    tracing::debug!(leaves = leaves.len(), "NN-descent: trees done");
    // Fill any short heap with random points.
    let mut rng = StdRng::seed_from_u64(seed ^ 0xABCD);
    for i in 0..n {
        let mut tries = 0;
        while heaps.len(i) < kk && tries < 4 * kk {
            let j = rng.random_range(0..n);
            if j != i {
                let dd = pts.dist(i, j);
                heaps.heap_mut(i).push(j as u32, dd);
            }
            tries += 1;
        }
    }
    // 2. Local joins.
    let (mut new_c, mut old_c) = (CandidateLists::new(n), CandidateLists::new(n));
    for it in 0..n_iters(n) {
        let it_seed = seed.wrapping_add(it as u64 * 7919);
        candidates(&mut heaps, it_seed, &mut new_c, &mut old_c);
        let thresholds = heaps.thresholds();
        // One update list per rayon split (in point order, as the splits are collected in
        // order), not one per point.
        let updates: Vec<Vec<(u32, u32, f32)>> = (0..n)
            .into_par_iter()
            .fold(
                || (Vec::new(), Vec::new()),
                |(mut out, mut qs), u| {
                    let (nw, od) = (new_c.get(u), old_c.get(u));
                    for (a, &p) in nw.iter().enumerate() {
                        qs.clear();
                        qs.extend(nw[a + 1..].iter().chain(od.iter()).filter(|&&q| q != p));
                        pts.for_each_dist(p, &qs, |q, dd| {
                            if dd < thresholds[p as usize] || dd < thresholds[q as usize] {
                                out.push((p, q, dd));
                            }
                        });
                    }
                    (out, qs)
                },
            )
            .map(|(out, _)| out)
            .collect();
        let c = apply_updates(&mut heaps, updates);
        tracing::debug!(iteration = it, updates = c, "NN-descent");
        if (c as f64) <= DELTA * k as f64 * n as f64 {
            break;
        }
    }
    let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let (idx, dist, _) = heaps.entries(i);
            let cand: Vec<(f32, u32)> = dist.iter().copied().zip(idx.iter().copied()).collect();
            finish_row(pts, i, cand, k)
        })
        .collect();
    assemble(n, k, rows)
}

/// Points per owner block in [`apply_updates`] and [`candidates`]: one block per thread (every
/// block scans all the entries, so more blocks means more scanning), at least 1024.
fn owner_block(n: usize) -> usize {
    n.div_ceil(rayon::current_num_threads()).max(1024)
}

/// Pushes every pair into both endpoints' heaps; returns how many heaps changed. Each thread
/// owns a contiguous block of heaps and applies, in order, the updates that touch it, so the
/// result does not depend on the thread count.
fn apply_updates(heaps: &mut Heaps, updates: Vec<Vec<(u32, u32, f32)>>) -> usize {
    let block = owner_block(heaps.n());
    heaps
        .blocks_mut(block)
        .into_par_iter()
        .enumerate()
        .map(|(b, mut owned)| {
            let lo = (b * block) as u32;
            let hi = lo + owned.n() as u32;
            let mut c = 0;
            for &(p, q, d) in updates.iter().flatten() {
                if (lo..hi).contains(&p) {
                    c += usize::from(owned.heap_mut((p - lo) as usize).push(q, d));
                }
                if (lo..hi).contains(&q) {
                    c += usize::from(owned.heap_mut((q - lo) as usize).push(p, d));
                }
            }
            c
        })
        .sum()
}

/// Sampled candidate lists: up to [`MAX_CANDIDATES`] entries per point, stored flat with a
/// stride (one buffer reused across iterations instead of two small vectors per point).
struct CandidateLists {
    len: Vec<u32>,
    prio: Vec<u64>,
    idx: Vec<u32>,
}

impl CandidateLists {
    fn new(n: usize) -> Self {
        Self {
            len: vec![0; n],
            prio: vec![0; n * MAX_CANDIDATES],
            idx: vec![0; n * MAX_CANDIDATES],
        }
    }

    /// The lists split into owner blocks of `block` points.
    fn blocks(&mut self, block: usize) -> Vec<ListBlock<'_>> {
        self.len
            .chunks_mut(block)
            .zip(self.prio.chunks_mut(block * MAX_CANDIDATES))
            .zip(self.idx.chunks_mut(block * MAX_CANDIDATES))
            .map(|((len, prio), idx)| ListBlock { len, prio, idx })
            .collect()
    }

    /// Point `u`'s list.
    fn get(&self, u: usize) -> &[u32] {
        &self.idx[u * MAX_CANDIDATES..u * MAX_CANDIDATES + self.len[u] as usize]
    }
}

/// One owner block's part of a [`CandidateLists`].
struct ListBlock<'a> {
    len: &'a mut [u32],
    prio: &'a mut [u64],
    idx: &'a mut [u32],
}

impl ListBlock<'_> {
    /// Offers `j` with priority `p` to local point `i`'s list: ignored if present; appended
    /// while the list is short; otherwise it replaces the list's largest priority if smaller.
    fn offer(&mut self, i: usize, p: u64, j: u32) {
        let at = i * MAX_CANDIDATES;
        let len = self.len[i] as usize;
        let (prio, idx) = (
            &mut self.prio[at..at + MAX_CANDIDATES],
            &mut self.idx[at..at + MAX_CANDIDATES],
        );
        if idx[..len].contains(&j) {
            return;
        }
        if len < MAX_CANDIDATES {
            (prio[len], idx[len]) = (p, j);
            self.len[i] += 1;
        } else {
            // The first largest, as `max_by_key` picks the last: scan for the maximum keeping
            // the last index on ties.
            let mut wi = 0;
            for (t, &q) in prio.iter().enumerate() {
                if q >= prio[wi] {
                    wi = t;
                }
            }
            if p < prio[wi] {
                (prio[wi], idx[wi]) = (p, j);
            }
        }
    }
}

/// pynndescent's candidate sampling: for each point, up to `MAX_CANDIDATES` new and old
/// neighbours (forward and reverse), chosen by random priority; sampled new entries become old.
/// `new_c` and `old_c` are overwritten.
fn candidates(
    heaps: &mut Heaps,
    seed: u64,
    new_c: &mut CandidateLists,
    old_c: &mut CandidateLists,
) {
    let n = heaps.n();
    let prio = |a: u64, b: u64| -> u64 {
        let mut z =
            seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    // Each thread owns a contiguous block of points and offers, in the serial order, the
    // entries whose endpoint it owns: the lists do not depend on the thread count.
    let block = owner_block(n);
    let heaps_ro: &Heaps = heaps;
    new_c
        .blocks(block)
        .into_par_iter()
        .zip(old_c.blocks(block))
        .enumerate()
        .for_each(|(b, (mut new_b, mut old_b))| {
            let (lo, hi) = (b * block, ((b + 1) * block).min(n));
            new_b.len.fill(0);
            old_b.len.fill(0);
            for i in 0..n {
                let (idx, _, new) = heaps_ro.entries(i);
                for (&j, &is_new) in idx.iter().zip(new) {
                    let (own_i, own_j) = ((lo..hi).contains(&i), (lo..hi).contains(&(j as usize)));
                    if !own_i && !own_j {
                        continue;
                    }
                    let p = prio(i as u64, u64::from(j));
                    let target = if is_new { &mut new_b } else { &mut old_b };
                    if own_i {
                        target.offer(i - lo, p, j);
                    }
                    if own_j {
                        target.offer(j as usize - lo, p, i as u32);
                    }
                }
            }
        });
    // Sampled new entries are old from now on.
    let new_ro: &CandidateLists = new_c;
    heaps
        .blocks_mut(block)
        .into_par_iter()
        .enumerate()
        .for_each(|(b, mut owned)| {
            for i in 0..owned.n() {
                owned.mark_old(i, new_ro.get(b * block + i));
            }
        });
}

#[cfg(test)]
mod tests {
    use super::{Metric, Points};

    /// Rows of width 37 (neither kernel's lane count divides it) from a fixed generator.
    fn rows(n: usize, d: usize) -> Vec<f32> {
        let mut s = 7u64;
        (0..n * d)
            .map(|_| {
                s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    #[test]
    fn blocked_distances_equal_single_ones() {
        let (n, d) = (23, 37);
        let data = rows(n, d);
        for metric in [Metric::Cosine, Metric::Euclidean] {
            let pts = Points::new(&data, d, metric);
            for m in [0, 1, 3, 4, 5, 8, 11, 23] {
                let set: Vec<u32> = (0..m as u32).map(|i| (i * 7) % n as u32).collect();
                let mut seen = Vec::new();
                pts.for_each_pair(&set, |p, q, dd| {
                    let want = pts.dist(p as usize, q as usize);
                    assert!(
                        (dd - want).abs() <= 1e-5 * want.max(1.0),
                        "{p}-{q}: {dd} vs {want}"
                    );
                    seen.push((p, q));
                });
                let mut want = Vec::new();
                for (a, &p) in set.iter().enumerate() {
                    for &q in &set[a + 1..] {
                        want.push((p, q));
                    }
                }
                seen.sort_unstable();
                want.sort_unstable();
                assert_eq!(seen, want, "{m} rows, {metric:?}");
            }
        }
    }
}

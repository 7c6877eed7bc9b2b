//! umap-learn's `optimize_layout_euclidean`: stochastic gradient descent on the fuzzy cross
//! entropy, edges sampled in proportion to their weight, `negative_sample_rate` negatives per
//! positive sample, learning rate decaying linearly to 0.
//!
//! Two schedules: [`Schedule::Deterministic`] runs edges serially with umap-learn's per-vertex
//! Tausworthe generators (what umap-learn does with a fixed `random_state`), so the same seed
//! gives bit-identical output; [`Schedule::Parallel`] splits each epoch's edges over threads
//! (as umap-learn without `random_state`) in slices that read other points from a copy taken at
//! the slice's start, with per-sample hashed negatives.

// Index loops mirror the reference implementation line for line.
#![allow(clippy::needless_range_loop)]

use std::sync::atomic::{AtomicU32, Ordering};

use rayon::prelude::*;

use crate::umap::graph::SparseGraph;

/// How SGD steps are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Schedule {
    /// Serial, seeded: bit-identical output for a seed.
    Deterministic(u64),
    /// Multi-threaded (faster; varies from run to run with the threads' interleaving).
    Parallel(u64),
}

/// The optimisation constants.
#[derive(Debug, Clone, Copy)]
pub struct LayoutParams {
    /// Curve parameter a.
    pub a: f32,
    /// Curve parameter b.
    pub b: f32,
    /// Repulsion strength (γ).
    pub gamma: f32,
    /// Initial learning rate (α₀).
    pub learning_rate: f32,
    /// Negatives per positive sample.
    pub negative_sample_rate: f32,
    /// Epochs.
    pub n_epochs: usize,
}

/// A gradient coefficient as a function of d², by table: per binary exponent of d² 128
/// mantissa steps, linear between them, for d² in [2⁻²⁴, 2¹⁶) (20 KB, in L1 cache); outside
/// that range (and for d² = 0) the formula itself. The layout evaluates one coefficient per
/// sample, 10⁸ of them for the tutorial's 16 128 points: two loads and a multiply-add instead
/// of a power and a division. The relative error is below 10⁻⁴ for umap-learn's curves (unit test), far inside
/// the run-to-run spread of the parallel schedule.
pub(crate) struct CoefTable {
    table: Box<[f32; TABLE_LEN]>,
    exact: fn(f64, &Curve) -> f64,
    curve: Curve,
}

/// The curve 1 / (1 + a·d^2b) and the repulsion strength γ.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Curve {
    a: f64,
    b: f64,
    gamma: f64,
}

impl Curve {
    /// umap-learn's attractive coefficient −2ab·d^(2(b−1)) / (1 + a·d^2b) (0 at d = 0).
    fn attraction(d2: f64, c: &Curve) -> f64 {
        if d2 > 0.0 {
            let pb = d2.powf(c.b);
            -2.0 * c.a * c.b * (pb / d2) / (c.a * pb + 1.0)
        } else {
            0.0
        }
    }

    /// umap-learn's repulsive coefficient 2γb / ((0.001 + d²)(1 + a·d^2b)) (0 at d = 0).
    fn repulsion(d2: f64, c: &Curve) -> f64 {
        if d2 > 0.0 {
            2.0 * c.gamma * c.b / ((0.001 + d2) * (c.a * d2.powf(c.b) + 1.0))
        } else {
            0.0
        }
    }
}

/// Mantissa bits that index [`CoefTable`] (128 steps per binary exponent).
const TABLE_STEP_BITS: u32 = 7;
/// Smallest biased exponent in the table (2⁻²⁴).
const TABLE_EXP_LO: u32 = 127 - 24;
/// One past the largest biased exponent in the table (2¹⁶; layouts span tens of units).
const TABLE_EXP_HI: u32 = 127 + 16;

/// Entries of a [`CoefTable`].
const TABLE_LEN: usize = ((TABLE_EXP_HI - TABLE_EXP_LO) << TABLE_STEP_BITS) as usize + 1;

impl CoefTable {
    fn new(curve: Curve, exact: fn(f64, &Curve) -> f64) -> Self {
        let table: Vec<f32> = (0..TABLE_LEN)
            .map(|i| {
                let bits = ((TABLE_EXP_LO << TABLE_STEP_BITS) + i as u32) << (23 - TABLE_STEP_BITS);
                exact(f64::from(f32::from_bits(bits)), &curve) as f32
            })
            .collect();
        Self {
            table: table
                .into_boxed_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!("TABLE_LEN entries")),
            exact,
            curve,
        }
    }

    /// The table position of d² (wrapping below the table's range) and the fraction between it
    /// and the next entry.
    #[inline(always)]
    fn position(d2: f32) -> (usize, f32) {
        let bits = d2.to_bits();
        let i =
            (bits >> (23 - TABLE_STEP_BITS)).wrapping_sub(TABLE_EXP_LO << TABLE_STEP_BITS) as usize;
        let frac = (bits & ((1 << (23 - TABLE_STEP_BITS)) - 1)) as f32
            * (1.0 / (1u32 << (23 - TABLE_STEP_BITS)) as f32);
        (i, frac)
    }

    #[inline(always)]
    fn at(&self, d2: f32) -> f32 {
        let (i, frac) = Self::position(d2);
        if i + 1 < TABLE_LEN {
            let (t0, t1) = (self.table[i], self.table[i + 1]);
            t0 + frac * (t1 - t0)
        } else {
            (self.exact)(f64::from(d2), &self.curve) as f32
        }
    }
}

#[inline]
fn clip(v: f32) -> f32 {
    v.clamp(-4.0, 4.0)
}

/// umap-learn's `tau_rand_int` (three Tausworthe generators, int64 arithmetic as numba does).
#[inline]
fn tau_rand_int(s: &mut [i64; 3]) -> i64 {
    s[0] = (((s[0] & 4_294_967_294) << 12) & 0xFFFF_FFFF)
        ^ ((((s[0] << 13) & 0xFFFF_FFFF) ^ s[0]) >> 19);
    s[1] = (((s[1] & 4_294_967_288) << 4) & 0xFFFF_FFFF)
        ^ ((((s[1] << 2) & 0xFFFF_FFFF) ^ s[1]) >> 25);
    s[2] = (((s[2] & 4_294_967_280) << 17) & 0xFFFF_FFFF)
        ^ ((((s[2] << 3) & 0xFFFF_FFFF) ^ s[2]) >> 11);
    s[0] ^ s[1] ^ s[2]
}

/// `x mod n` for 0 ≤ x < 2³² by Lemire's multiply-shift (exact), else by division.
#[derive(Clone, Copy)]
struct FastMod {
    n: u64,
    m: u64,
}

impl FastMod {
    fn new(n: usize) -> Self {
        let n = n.max(1) as u64;
        Self {
            n,
            m: (u64::MAX / n).wrapping_add(1),
        }
    }

    #[inline]
    fn rem_euclid(self, x: i64) -> usize {
        if (0..1 << 32).contains(&x) {
            let low = self.m.wrapping_mul(x as u64);
            ((u128::from(low) * u128::from(self.n)) >> 64) as usize
        } else {
            x.rem_euclid(self.n as i64) as usize
        }
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Min-max scales every column to [0, 10] (umap-learn does this to the initialisation).
pub fn rescale_to_box(emb: &mut [f32], dim: usize) {
    for d in 0..dim {
        let col = emb.iter().skip(d).step_by(dim);
        let (lo, hi) = col.fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
        let span = hi - lo;
        for v in emb.iter_mut().skip(d).step_by(dim) {
            *v = if span > 0.0 {
                10.0 * (*v - lo) / span
            } else {
                0.0
            };
        }
    }
}

/// Runs the SGD on `emb` (`[n, dim]`, already rescaled) over the (pruned) graph's edges.
pub fn optimize_layout(
    emb: &mut [f32],
    dim: usize,
    graph: &SparseGraph,
    p: &LayoutParams,
    schedule: Schedule,
) {
    let n = graph.n();
    let mut head = Vec::with_capacity(graph.nnz());
    let mut tail = Vec::with_capacity(graph.nnz());
    let mut weight = Vec::with_capacity(graph.nnz());
    for i in 0..n {
        let (c, v) = graph.row(i);
        for (&j, &w) in c.iter().zip(v) {
            head.push(i as u32);
            tail.push(j);
            weight.push(w);
        }
    }
    if head.is_empty() || p.n_epochs == 0 {
        return;
    }
    let w_max = weight.iter().copied().fold(0.0f32, f32::max);
    // make_epochs_per_sample: n_epochs / (n_epochs · w / w_max).
    let eps: Vec<f64> = weight
        .iter()
        .map(|&w| {
            let ns = p.n_epochs as f64 * f64::from(w) / f64::from(w_max);
            if ns > 0.0 {
                p.n_epochs as f64 / ns
            } else {
                -1.0
            }
        })
        .collect();
    let eps_neg: Vec<f64> = eps
        .iter()
        .map(|e| e / f64::from(p.negative_sample_rate))
        .collect();
    let mut next = eps.clone();
    let mut next_neg = eps_neg.clone();
    let curve = Curve {
        a: f64::from(p.a),
        b: f64::from(p.b),
        gamma: f64::from(p.gamma),
    };
    let attraction = CoefTable::new(curve, Curve::attraction);
    let repulsion = CoefTable::new(curve, Curve::repulsion);
    match schedule {
        Schedule::Deterministic(seed) => {
            let fm = FastMod::new(n);
            let base = [
                splitmix(seed) as i32 as i64,
                splitmix(seed ^ 1) as i32 as i64,
                splitmix(seed ^ 2) as i32 as i64,
            ];
            // Per-vertex states offset by the bits of the vertex's first coordinate (as f64), as
            // umap-learn seeds rng_state_per_sample.
            let mut rng: Vec<[i64; 3]> = (0..n)
                .map(|i| {
                    let off = f64::from(emb[i * dim]).to_bits() as i64;
                    [
                        base[0].wrapping_add(off),
                        base[1].wrapping_add(off),
                        base[2].wrapping_add(off),
                    ]
                })
                .collect();
            let mut cur = vec![0f32; dim];
            let (mut n_pos, mut n_negs) = (0u64, 0u64);
            for epoch in 0..p.n_epochs {
                let alpha = p.learning_rate * (1.0 - epoch as f32 / p.n_epochs as f32);
                let nf = epoch as f64;
                for e in 0..head.len() {
                    if next[e] > nf {
                        continue;
                    }
                    let (j, k) = (head[e] as usize, tail[e] as usize);
                    let d2: f32 = (0..dim)
                        .map(|d| (emb[j * dim + d] - emb[k * dim + d]).powi(2))
                        .sum();
                    let gc = attraction.at(d2);
                    for d in 0..dim {
                        let g = clip(gc * (emb[j * dim + d] - emb[k * dim + d]));
                        emb[j * dim + d] += g * alpha;
                        emb[k * dim + d] -= g * alpha;
                    }
                    next[e] += eps[e];
                    let n_neg = ((nf - next_neg[e]) / eps_neg[e]) as i64;
                    cur.copy_from_slice(&emb[j * dim..(j + 1) * dim]);
                    for _ in 0..n_neg.max(0) {
                        let k = fm.rem_euclid(tau_rand_int(&mut rng[j]));
                        if k == j {
                            continue;
                        }
                        let d2: f32 = (0..dim).map(|d| (cur[d] - emb[k * dim + d]).powi(2)).sum();
                        let gc = repulsion.at(d2);
                        for d in 0..dim {
                            let g = if gc > 0.0 {
                                clip(gc * (cur[d] - emb[k * dim + d]))
                            } else {
                                0.0
                            };
                            cur[d] += g * alpha;
                        }
                    }
                    emb[j * dim..(j + 1) * dim].copy_from_slice(&cur);
                    next_neg[e] += n_neg.max(0) as f64 * eps_neg[e];
                    n_pos += 1;
                    n_negs += n_neg.max(0) as u64;
                }
            }
            tracing::debug!(
                edges = head.len(),
                positive = n_pos,
                negative = n_negs,
                "UMAP layout samples"
            );
        }
        Schedule::Parallel(seed) => {
            let edges = Edges {
                head: &head,
                tail: &tail,
                eps: &eps,
                eps_neg: &eps_neg,
            };
            let state = (&mut next[..], &mut next_neg[..]);
            let tables = (&attraction, &repulsion);
            match dim {
                1 => parallel_layout::<1>(emb, dim, &edges, state, tables, p, seed),
                2 => parallel_layout::<2>(emb, dim, &edges, state, tables, p, seed),
                3 => parallel_layout::<3>(emb, dim, &edges, state, tables, p, seed),
                10 => parallel_layout::<10>(emb, dim, &edges, state, tables, p, seed),
                _ => parallel_layout::<0>(emb, dim, &edges, state, tables, p, seed),
            }
        }
    }
}

/// The sampled edges: endpoints and sampling periods (positive and negative).
struct Edges<'a> {
    head: &'a [u32],
    tail: &'a [u32],
    eps: &'a [f64],
    eps_neg: &'a [f64],
}

/// The parallel schedule. `D` is the embedding dimension when known at compile time (the loops
/// over coordinates then unroll; 2-D and 10-D are the tutorial's), 0 for any other `dim`.
fn parallel_layout<const D: usize>(
    emb: &mut [f32],
    dim: usize,
    edges: &Edges<'_>,
    (next, next_neg): (&mut [f64], &mut [f64]),
    (attraction, repulsion): (&CoefTable, &CoefTable),
    p: &LayoutParams,
    seed: u64,
) {
    let dim = if D > 0 { D } else { dim };
    let n = (emb.len() / dim) as u64;
    let shared: Vec<AtomicU32> = emb.iter().map(|v| AtomicU32::new(v.to_bits())).collect();
    let ld = |i: usize| f32::from_bits(shared[i].load(Ordering::Relaxed));
    let st = |i: usize, v: f32| shared[i].store(v.to_bits(), Ordering::Relaxed);
    // Each epoch runs in PHASES slices of the (head-sorted) edges, each slice split over the
    // threads. Other points are read as of the slice's start, from a copy every thread only
    // reads, and the moves of each sample's other endpoint are collected and added after the
    // slice: while a slice runs a thread writes only its own chunk's head rows, so no random
    // read waits for a cache line another core is writing (on a VM whose two cores share no
    // cache, fully racing reads and writes ran no faster on two threads than on one). A copy
    // at most 1/PHASES epoch old keeps the layout's quality (one copy per epoch lowered the
    // trustworthiness by 0.015; four per epoch keep it, and cost 0.03 s less than eight).
    const PHASES: usize = 4;
    let len = edges.head.len();
    let per_phase = rayon::current_num_threads() * 2;
    let chunk = len.div_ceil(PHASES * per_phase).max(64);
    // The copy is kept current incrementally: after a slice, the head rows it moved (one
    // contiguous range, the edges being sorted by head) and the rows its tails moved.
    let mut snapshot = emb.to_vec();
    for epoch in 0..p.n_epochs {
        let alpha = p.learning_rate * (1.0 - epoch as f32 / p.n_epochs as f32);
        for start in (0..len).step_by(chunk * per_phase) {
            let end = (start + chunk * per_phase).min(len);
            let moved: Vec<(Vec<u32>, Vec<f32>)> = next[start..end]
                .par_chunks_mut(chunk)
                .zip(next_neg[start..end].par_chunks_mut(chunk))
                .enumerate()
                .map(|(ci, (nx, nn))| {
                    let phase = Phase {
                        edges,
                        snapshot: &snapshot,
                        shared: &shared,
                        attraction,
                        repulsion,
                        alpha,
                        epoch,
                        seed,
                        n,
                        dim,
                    };
                    chunk_samples::<D>(&phase, start + ci * chunk, nx, nn)
                })
                .collect();
            let heads = edges.head[start] as usize * dim..(edges.head[end - 1] as usize + 1) * dim;
            for i in heads {
                snapshot[i] = ld(i);
            }
            for (tails, deltas) in moved {
                for (&k, g) in tails.iter().zip(deltas.chunks_exact(dim)) {
                    let rk = k as usize * dim;
                    for d in 0..dim {
                        let v = ld(rk + d) + g[d];
                        st(rk + d, v);
                        snapshot[rk + d] = v;
                    }
                }
            }
        }
    }
    for (v, s) in emb.iter_mut().zip(&shared) {
        *v = f32::from_bits(s.load(Ordering::Relaxed));
    }
}

/// What one slice of an epoch reads: the edges, the positions as of the slice's start (and the
/// live ones, for the head rows it moves), the coefficient tables and the step size.
struct Phase<'a> {
    edges: &'a Edges<'a>,
    snapshot: &'a [f32],
    shared: &'a [AtomicU32],
    attraction: &'a CoefTable,
    repulsion: &'a CoefTable,
    alpha: f32,
    epoch: usize,
    seed: u64,
    n: u64,
    dim: usize,
}

/// The samples due in one chunk of edges (`first` is the chunk's first edge): moves the head
/// rows in place and returns the tail rows' moves (`[tails.len(), dim]`) for after the slice.
/// Compiled per target at run time, as the loop is the layout's whole cost.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512vl",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn chunk_samples<const D: usize>(
    ph: &Phase<'_>,
    first: usize,
    nx: &mut [f64],
    nn: &mut [f64],
) -> (Vec<u32>, Vec<f32>) {
    let dim = if D > 0 { D } else { ph.dim };
    let (edges, snapshot, n, alpha) = (ph.edges, ph.snapshot, ph.n, ph.alpha);
    let nf = ph.epoch as f64;
    let ld = |i: usize| f32::from_bits(ph.shared[i].load(Ordering::Relaxed));
    let st = |i: usize, v: f32| ph.shared[i].store(v.to_bits(), Ordering::Relaxed);
    let mut buf = vec![0f32; 3 * dim];
    let (cur, rest) = buf.split_at_mut(dim);
    let (oth, step) = rest.split_at_mut(dim);
    let (mut tails, mut deltas) = (Vec::new(), Vec::new());
    // The due edges first, without a branch per edge (about a third are due in an epoch, in no
    // pattern a branch predictor learns).
    let mut due = vec![0u32; nx.len()];
    let mut n_due = 0;
    for (o, &ne) in nx.iter().enumerate() {
        due[n_due.min(o)] = o as u32;
        n_due += usize::from(ne <= nf);
    }
    tails.reserve(n_due);
    deltas.reserve(n_due * dim);
    for &o in &interleave_streams(&due[..n_due], &edges.head[first..]) {
        let o = o as usize;
        let (ne, nne) = (&mut nx[o], &mut nn[o]);
        let e = first + o;
        let (j, k) = (edges.head[e] as usize, edges.tail[e] as usize);
        let (rj, rk) = (j * dim, k * dim);
        let mut d2 = 0.0;
        for d in 0..dim {
            cur[d] = ld(rj + d);
            oth[d] = snapshot[rk + d];
            d2 += (cur[d] - oth[d]) * (cur[d] - oth[d]);
        }
        let gc = ph.attraction.at(d2);
        tails.push(k as u32);
        for d in 0..dim {
            let g = clip(gc * (cur[d] - oth[d])) * alpha;
            cur[d] += g;
            deltas.push(-g);
        }
        *ne += edges.eps[e];
        let n_neg = ((nf - *nne) / edges.eps_neg[e]).max(0.0) as usize;
        // The negatives of one sample are evaluated from the same starting point and their
        // clipped steps summed: independent computations the CPU overlaps, instead of a chain
        // through each update.
        let h0 = splitmix(ph.seed ^ ((ph.epoch as u64) << 40) ^ e as u64);
        step.iter_mut().for_each(|v| *v = 0.0);
        for t in 0..n_neg as u64 {
            // Counter-based draws: each is independent of the previous one, so the CPU
            // overlaps them (a chained generator made every negative wait on the last one's
            // multiplications).
            let h = splitmix(h0 ^ t);
            // Lemire's multiply-shift onto 0..n.
            let k = (((h >> 32) * n) >> 32) as usize;
            if k == j {
                continue;
            }
            let o = &snapshot[k * dim..(k + 1) * dim];
            let mut d2 = 0.0;
            for d in 0..dim {
                d2 += (cur[d] - o[d]) * (cur[d] - o[d]);
            }
            let gc = ph.repulsion.at(d2);
            for d in 0..dim {
                step[d] += clip(gc * (cur[d] - o[d]));
            }
        }
        for d in 0..dim {
            st(rj + d, cur[d] + step[d] * alpha);
        }
        *nne += n_neg as f64 * edges.eps_neg[e];
    }
    (tails, deltas)
}

/// Streams interleaved in [`interleave_streams`].
const STREAMS: usize = 4;

/// The due edges (chunk offsets, ascending, so grouped by head) cut into [`STREAMS`] contiguous
/// runs at head boundaries and interleaved: sample i of every stream, then sample i + 1. A
/// sample reads and writes only its head's live row, so each head still sees its samples in
/// order; consecutive samples now belong to different heads, and the CPU overlaps their
/// dependency chains (attraction, then negatives, then the head's new position) instead of
/// running one head's samples back to back.
fn interleave_streams(due: &[u32], head: &[u32]) -> Vec<u32> {
    let n = due.len();
    let mut cuts = vec![0usize];
    for s in 1..STREAMS {
        let mut c = (n * s / STREAMS).max(*cuts.last().unwrap_or(&0));
        while c > 0 && c < n && head[due[c] as usize] == head[due[c - 1] as usize] {
            c += 1;
        }
        cuts.push(c.min(n));
    }
    cuts.push(n);
    let mut order = Vec::with_capacity(n);
    let mut at: Vec<usize> = cuts[..STREAMS].to_vec();
    loop {
        let mut any = false;
        for s in 0..STREAMS {
            if at[s] < cuts[s + 1] {
                order.push(due[at[s]]);
                at[s] += 1;
                any = true;
            }
        }
        if !any {
            break;
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::{CoefTable, Curve, FastMod, STREAMS, interleave_streams};

    /// The interleaved order is a permutation of the due edges that keeps every head's edges in
    /// order and, while every stream has edges left, never puts two edges of one head side by
    /// side.
    #[test]
    fn interleaved_streams_keep_each_heads_order() {
        // Heads with 1 to 9 due edges each, 40 heads; due offsets with gaps.
        let mut head = Vec::new();
        for h in 0..40u32 {
            for _ in 0..(1 + (h * 7) % 9) {
                head.push(h);
            }
        }
        let due: Vec<u32> = (0..head.len() as u32).filter(|o| o % 3 != 1).collect();
        let order = interleave_streams(&due, &head);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, due, "a permutation of the due edges");
        for h in 0..40u32 {
            let mine: Vec<u32> = order
                .iter()
                .copied()
                .filter(|&o| head[o as usize] == h)
                .collect();
            assert!(mine.is_sorted(), "head {h}'s edges in order: {mine:?}");
        }
        let shortest = due.len() / STREAMS / 2;
        for w in order[..shortest * STREAMS].windows(2) {
            assert_ne!(head[w[0] as usize], head[w[1] as usize], "{w:?}");
        }
        assert!(interleave_streams(&[], &head).is_empty());
        assert_eq!(interleave_streams(&[5], &head), [5]);
    }

    #[test]
    fn fast_mod_is_exact() {
        for n in [1usize, 2, 3, 7, 1000, 16_128, 49_152, 1 << 20] {
            let f = FastMod::new(n);
            for x in [
                0i64,
                1,
                5,
                4_294_967_295,
                123_456_789,
                -1,
                -17,
                1 << 40,
                -(1 << 45),
            ] {
                assert_eq!(
                    f.rem_euclid(x),
                    x.rem_euclid(n as i64) as usize,
                    "{x} mod {n}"
                );
            }
        }
    }

    #[test]
    fn coefficient_tables_are_accurate() {
        // umap-learn's (a, b) for min_dist 0.1 and 0.05, spread 1; and a steeper curve.
        for (a, b) in [(1.577, 0.8951), (1.929, 0.7915), (0.5, 1.5)] {
            let curve = Curve { a, b, gamma: 1.0 };
            for exact in [Curve::attraction, Curve::repulsion] {
                let table = CoefTable::new(curve, exact);
                let mut x = 1e-14f32;
                while x < 1e14 {
                    let (want, got) = (exact(f64::from(x), &curve), f64::from(table.at(x)));
                    let rel = ((got - want) / want).abs();
                    assert!(rel < 1e-4, "a {a} b {b} at {x}: {got} vs {want} ({rel:e})");
                    x *= 1.37;
                }
                assert_eq!(table.at(0.0), 0.0);
            }
        }
    }
}

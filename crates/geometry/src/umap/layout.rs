//! umap-learn's `optimize_layout_euclidean`: stochastic gradient descent on the fuzzy cross
//! entropy, edges sampled in proportion to their weight, `negative_sample_rate` negatives per
//! positive sample, learning rate decaying linearly to 0.
//!
//! Two schedules: [`Schedule::Deterministic`] runs edges serially with umap-learn's per-vertex
//! Tausworthe generators (what umap-learn does with a fixed `random_state`), so the same seed
//! gives bit-identical output; [`Schedule::Parallel`] splits each epoch's edges over threads and
//! lets updates race (Hogwild, as umap-learn without `random_state`), with per-sample hashed
//! negatives.

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
    /// Multi-threaded with racing updates (faster; varies run to run in the last bits).
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

/// x^b for x > 0 as 2^(b·log₂x) with polynomial log₂ and exp₂ (relative error below 2·10⁻⁵,
/// several times faster than `powf`; the layout evaluates one power per sample, 10⁸ of them for
/// the tutorial's 16 128 points).
#[inline]
pub(crate) fn fast_pow(x: f32, b: f32) -> f32 {
    if x <= 0.0 {
        return 0.0;
    }
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 127;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000); // [1, 2)
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let t4 = t2 * t2;
    // log₂ m = (2 / ln 2)·atanh(t), t < 1/3: the series to t⁹ (Estrin's scheme for latency).
    let l = 2.885_39
        * t
        * ((1.0 + t2 * (1.0 / 3.0)) + t4 * ((1.0 / 5.0 + t2 * (1.0 / 7.0)) + t4 * (1.0 / 9.0)));
    let y = (b * (e as f32 + l)).clamp(-125.0, 125.0);
    // Round to nearest without libm (1.5·2²³ forces rounding at the units place).
    let r = (y + 12_582_912.0) - 12_582_912.0;
    let z = (y - r) * std::f32::consts::LN_2; // |z| ≤ ln2 / 2
    let z2 = z * z;
    // e^z, degree 6 (error < 3·10⁻⁷ on the range), Estrin's scheme.
    let p = (1.0 + z)
        + z2 * ((0.5 + z * (1.0 / 6.0))
            + z2 * ((1.0 / 24.0 + z * (1.0 / 120.0)) + z2 * (1.0 / 720.0)));
    p * f32::from_bits(((r as i32 + 127) as u32) << 23)
}

/// [`fast_pow`] without branches, for eight lanes at once (vectorised per target at run time).
/// The polynomial is repeated here on purpose: calling a shared `#[inline(always)]` helper from
/// this multiversioned function stopped it vectorising (parallel layout 1.3 s → 2.4 s on the
/// 16 128-point benchmark).
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512vl",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn negative_coefficients(
    d2: &[f32; NEG_BATCH],
    valid: &[f32; NEG_BATCH],
    a: f32,
    b: f32,
    gamma: f32,
    out: &mut [f32; NEG_BATCH],
) {
    for t in 0..NEG_BATCH {
        let x = d2[t].max(f32::MIN_POSITIVE);
        let bits = x.to_bits();
        let e = ((bits >> 23) & 0xff) as i32 - 127;
        let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
        let tt = (m - 1.0) / (m + 1.0);
        let t2 = tt * tt;
        let t4 = t2 * t2;
        let l = 2.885_39
            * tt
            * ((1.0 + t2 * (1.0 / 3.0)) + t4 * ((1.0 / 5.0 + t2 * (1.0 / 7.0)) + t4 * (1.0 / 9.0)));
        let y = (b * (e as f32 + l)).clamp(-125.0, 125.0);
        let r = (y + 12_582_912.0) - 12_582_912.0;
        let z = (y - r) * std::f32::consts::LN_2;
        let z2 = z * z;
        let p = (1.0 + z)
            + z2 * ((0.5 + z * (1.0 / 6.0))
                + z2 * ((1.0 / 24.0 + z * (1.0 / 120.0)) + z2 * (1.0 / 720.0)));
        let pb = p * f32::from_bits(((r as i32 + 127) as u32) << 23);
        let ok = if d2[t] > 0.0 { valid[t] } else { 0.0 };
        out[t] = ok * 2.0 * gamma * b / ((0.001 + d2[t]) * (a * pb + 1.0));
    }
}

/// Negatives evaluated together in the parallel schedule.
const NEG_BATCH: usize = 8;

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
    let (a, b, gamma) = (p.a, p.b, p.gamma);
    let fm = FastMod::new(n);
    match schedule {
        Schedule::Deterministic(seed) => {
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
                    let gc = if d2 > 0.0 {
                        {
                            let pb = fast_pow(d2, b);
                            -2.0 * a * b * (pb / d2) / (a * pb + 1.0)
                        }
                    } else {
                        0.0
                    };
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
                        let gc = if d2 > 0.0 {
                            2.0 * gamma * b / ((0.001 + d2) * (a * fast_pow(d2, b) + 1.0))
                        } else if j == k {
                            continue;
                        } else {
                            0.0
                        };
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
            let shared: Vec<AtomicU32> = emb.iter().map(|v| AtomicU32::new(v.to_bits())).collect();
            let ld = |i: usize| f32::from_bits(shared[i].load(Ordering::Relaxed));
            let st = |i: usize, v: f32| shared[i].store(v.to_bits(), Ordering::Relaxed);
            let chunk = head
                .len()
                .div_ceil(rayon::current_num_threads() * 8)
                .max(256);
            for epoch in 0..p.n_epochs {
                let alpha = p.learning_rate * (1.0 - epoch as f32 / p.n_epochs as f32);
                let nf = epoch as f64;
                next.par_chunks_mut(chunk)
                    .zip(next_neg.par_chunks_mut(chunk))
                    .enumerate()
                    .for_each(|(ci, (nx, nn))| {
                        let mut cur = vec![0f32; dim];
                        let mut step = vec![0f32; dim];
                        let mut oth = vec![0f32; NEG_BATCH * dim];
                        for (o, (ne, nne)) in nx.iter_mut().zip(nn.iter_mut()).enumerate() {
                            let e = ci * chunk + o;
                            if *ne > nf {
                                continue;
                            }
                            let (j, k) = (head[e] as usize, tail[e] as usize);
                            let d2: f32 = (0..dim)
                                .map(|d| (ld(j * dim + d) - ld(k * dim + d)).powi(2))
                                .sum();
                            let gc = if d2 > 0.0 {
                                {
                                    let pb = fast_pow(d2, b);
                                    -2.0 * a * b * (pb / d2) / (a * pb + 1.0)
                                }
                            } else {
                                0.0
                            };
                            for d in 0..dim {
                                let (cj, ck) = (ld(j * dim + d), ld(k * dim + d));
                                let g = clip(gc * (cj - ck));
                                st(j * dim + d, cj + g * alpha);
                                st(k * dim + d, ck - g * alpha);
                            }
                            *ne += eps[e];
                            let n_neg = ((nf - *nne) / eps_neg[e]) as i64;
                            for (d, c) in cur.iter_mut().enumerate() {
                                *c = ld(j * dim + d);
                            }
                            // The negatives of one sample are evaluated from the same starting
                            // point and their clipped steps summed: independent computations
                            // the CPU overlaps, instead of a chain through each update.
                            let mut h = splitmix(seed ^ ((epoch as u64) << 40) ^ e as u64);
                            let nn_count = n_neg.max(0) as usize;
                            step.iter_mut().for_each(|v| *v = 0.0);
                            let mut s = 0;
                            while s < nn_count {
                                let batch = (nn_count - s).min(NEG_BATCH);
                                let mut ks = [0usize; NEG_BATCH];
                                let mut gcs = [0f32; NEG_BATCH];
                                for t in 0..batch {
                                    h = splitmix(h);
                                    ks[t] = fm.rem_euclid((h >> 32) as i64);
                                }
                                let mut d2 = [0f32; NEG_BATCH];
                                let mut valid = [0f32; NEG_BATCH];
                                for t in 0..batch {
                                    let k = ks[t];
                                    valid[t] = if k != j { 1.0 } else { 0.0 };
                                    for d in 0..dim {
                                        let o = ld(k * dim + d);
                                        oth[t * dim + d] = o;
                                        d2[t] += (cur[d] - o) * (cur[d] - o);
                                    }
                                }
                                negative_coefficients(&d2, &valid, a, b, gamma, &mut gcs);
                                for t in 0..batch {
                                    if gcs[t] > 0.0 {
                                        for d in 0..dim {
                                            step[d] += clip(gcs[t] * (cur[d] - oth[t * dim + d]));
                                        }
                                    }
                                }
                                s += batch;
                            }
                            for d in 0..dim {
                                st(j * dim + d, cur[d] + step[d] * alpha);
                            }
                            *nne += n_neg.max(0) as f64 * eps_neg[e];
                        }
                    });
            }
            for (v, s) in emb.iter_mut().zip(&shared) {
                *v = f32::from_bits(s.load(Ordering::Relaxed));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{FastMod, fast_pow};

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
    fn fast_pow_is_accurate() {
        for &b in &[0.79f32, 0.8950608, 1.0, 1.5, -0.2] {
            let mut x = 1e-12f32;
            while x < 1e12 {
                let (want, got) = (f64::from(x).powf(f64::from(b)), f64::from(fast_pow(x, b)));
                let rel = ((got - want) / want).abs();
                assert!(rel < 2e-5, "{x}^{b}: {got} vs {want} ({rel:e})");
                x *= 1.37;
            }
        }
        assert_eq!(fast_pow(0.0, 0.9), 0.0);
    }
}

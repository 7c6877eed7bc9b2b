//! The active latents of a TopK-family batch as sparse rows, and the step's products over them.
//!
//! With k of d_sae latents active per row (k = 32 of 2560 is 1.25 %), the decode `f·W_dec`, the
//! decoder's gradient `fᵀ·g`, the masked `g·W_decᵀ` and the encoder's gradient `x′ᵀ·g_h` touch
//! only the active entries: the host computes them in `O(nnz · d_in)` instead of four dense
//! `O(B · d_sae · d_in)` products. Sums over rows run in row order, per latent, so the results
//! do not depend on the thread count.

use rayon::prelude::*;

/// Active `(latent, value)` entries of each row of a `[rows, d_sae]` batch (compressed rows).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ActiveLatents {
    d_sae: usize,
    /// Row `r`'s entries are `row_start[r]..row_start[r + 1]`.
    row_start: Vec<usize>,
    /// Latent of each entry, ascending within a row.
    latent: Vec<u32>,
    /// Pre-activation of each entry.
    value: Vec<f32>,
}

impl ActiveLatents {
    /// The entries of `h` (`[rows, d_sae]` row-major) with `h > 0` and `h ≥ threshold(row)` —
    /// the TopK family's mask.
    pub(crate) fn select(h: &[f32], d_sae: usize, threshold: impl Fn(usize) -> f32 + Sync) -> Self {
        let per_row: Vec<(Vec<u32>, Vec<f32>)> = h
            .par_chunks(d_sae)
            .enumerate()
            .map(|(r, row)| {
                let t = threshold(r);
                let mut latent = Vec::new();
                let mut value = Vec::new();
                for (j, &v) in row.iter().enumerate() {
                    if v > 0.0 && v >= t {
                        latent.push(j as u32);
                        value.push(v);
                    }
                }
                (latent, value)
            })
            .collect();
        let mut row_start = Vec::with_capacity(per_row.len() + 1);
        row_start.push(0);
        let nnz = per_row.iter().map(|(l, _)| l.len()).sum();
        let (mut latent, mut value) = (Vec::with_capacity(nnz), Vec::with_capacity(nnz));
        for (l, v) in per_row {
            latent.extend(l);
            value.extend(v);
            row_start.push(latent.len());
        }
        Self {
            d_sae,
            row_start,
            latent,
            value,
        }
    }

    /// Active entries in all.
    pub(crate) fn nnz(&self) -> usize {
        self.latent.len()
    }

    /// Rows.
    pub(crate) fn rows(&self) -> usize {
        self.row_start.len() - 1
    }

    /// The latent of each entry, in entry order (rows in order, latents ascending in a row).
    pub(crate) fn latents(&self) -> &[u32] {
        &self.latent
    }

    /// The pre-activations of the entries, in entry order.
    pub(crate) fn values(&self) -> &[f32] {
        &self.value
    }

    /// How many rows each latent is active on, `[d_sae]`.
    pub(crate) fn counts(&self) -> Vec<u32> {
        let mut c = vec![0u32; self.d_sae];
        for &j in &self.latent {
            c[j as usize] += 1;
        }
        c
    }

    /// The whole batch as a dense `[rows, d_sae]` buffer holding `weights` at the entries.
    pub(crate) fn to_dense(&self, weights: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; self.rows() * self.d_sae];
        for (r, row) in out.chunks_mut(self.d_sae).enumerate() {
            let entries = self.row_start[r]..self.row_start[r + 1];
            for (&j, &wt) in self.latent[entries.clone()].iter().zip(&weights[entries]) {
                row[j as usize] = wt;
            }
        }
        out
    }

    /// `f·W + bias`, `[rows, d]`: each row the sum of its entries' rows of `w` (`[d_sae, d]`)
    /// weighted by their values, plus `bias`.
    pub(crate) fn decode(&self, w: &[f32], bias: &[f32]) -> Vec<f32> {
        let d = bias.len();
        let mut out = vec![0.0; self.rows() * d];
        out.par_chunks_mut(d).enumerate().for_each(|(r, o)| {
            o.copy_from_slice(bias);
            for e in self.row_start[r]..self.row_start[r + 1] {
                let j = self.latent[e] as usize;
                let v = self.value[e];
                for (o, wv) in o.iter_mut().zip(&w[j * d..(j + 1) * d]) {
                    *o += v * wv;
                }
            }
        });
        out
    }

    /// Per entry `(b, j)`: `g[b] · w[j]` — the masked product `(g·Wᵀ) ⊙ m` at the entries
    /// (`g`: `[rows, d]`, `w`: `[d_sae, d]`).
    pub(crate) fn entry_dots(&self, g: &[f32], w: &[f32], d: usize) -> Vec<f32> {
        let mut out = vec![0.0; self.nnz()];
        let rows: Vec<(usize, &mut [f32])> = {
            let mut rest = out.as_mut_slice();
            let mut v = Vec::with_capacity(self.rows());
            for r in 0..self.rows() {
                let (head, tail) = rest.split_at_mut(self.row_start[r + 1] - self.row_start[r]);
                v.push((r, head));
                rest = tail;
            }
            v
        };
        rows.into_par_iter().for_each(|(r, o)| {
            let gr = &g[r * d..(r + 1) * d];
            for (o, &j) in o
                .iter_mut()
                .zip(&self.latent[self.row_start[r]..self.row_start[r + 1]])
            {
                let j = j as usize;
                *o = gr
                    .iter()
                    .zip(&w[j * d..(j + 1) * d])
                    .map(|(a, b)| a * b)
                    .sum();
            }
        });
        out
    }

    /// `Aᵀ·rows`, `[d_sae, d]`, where `A` holds `weights` at the entries: per latent the sum,
    /// in row order, of the rows (`[rows, d]`) it is active on, weighted.
    pub(crate) fn transposed_product(&self, rows: &[f32], weights: &[f32], d: usize) -> Vec<f32> {
        // Entries by latent (a counting sort keeps row order within a latent).
        let counts = self.counts();
        let mut start = Vec::with_capacity(self.d_sae + 1);
        start.push(0usize);
        for c in &counts {
            start.push(start.last().copied().unwrap_or(0) + *c as usize);
        }
        let mut next = start.clone();
        let mut by_latent = vec![(0u32, 0f32); self.nnz()];
        for r in 0..self.rows() {
            let entries = self.row_start[r]..self.row_start[r + 1];
            for (&j, &wt) in self.latent[entries.clone()].iter().zip(&weights[entries]) {
                let j = j as usize;
                by_latent[next[j]] = (r as u32, wt);
                next[j] += 1;
            }
        }
        let mut out = vec![0.0; self.d_sae * d];
        out.par_chunks_mut(d).enumerate().for_each(|(j, o)| {
            for &(r, wt) in &by_latent[start[j]..start[j + 1]] {
                let r = r as usize;
                for (o, x) in o.iter_mut().zip(&rows[r * d..(r + 1) * d]) {
                    *o += wt * x;
                }
            }
        });
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dense_matmul(a: &[f32], b: &[f32], n: usize, k: usize, m: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; n * m];
        for i in 0..n {
            for l in 0..k {
                for j in 0..m {
                    out[i * m + j] += a[i * k + l] * b[l * m + j];
                }
            }
        }
        out
    }

    fn transpose(a: &[f32], n: usize, m: usize) -> Vec<f32> {
        let mut t = vec![0.0; n * m];
        for i in 0..n {
            for j in 0..m {
                t[j * n + i] = a[i * m + j];
            }
        }
        t
    }

    proptest! {
        /// Every product equals its dense form with the inactive entries zeroed.
        #[test]
        fn products_equal_the_dense_ones(
            rows in 1usize..7,
            d_sae in 1usize..9,
            d in 1usize..6,
            seed in proptest::collection::vec(-4i8..5, 64),
            thr in -1.0f32..2.0,
        ) {
            let val = |i: usize, s: f32| f32::from(seed[i % seed.len()]) * s + 0.01 * i as f32;
            let h: Vec<f32> = (0..rows * d_sae).map(|i| val(i, 0.5)).collect();
            let w: Vec<f32> = (0..d_sae * d).map(|i| val(i + 7, 0.25)).collect();
            let g: Vec<f32> = (0..rows * d).map(|i| val(i + 3, 0.125)).collect();
            let bias: Vec<f32> = (0..d).map(|i| val(i + 11, 1.0)).collect();
            let a = ActiveLatents::select(&h, d_sae, |r| thr + 0.1 * r as f32);
            let mask: Vec<f32> = h.iter().enumerate().map(|(i, &v)| {
                let r = i / d_sae;
                if v > 0.0 && v >= thr + 0.1 * r as f32 { 1.0 } else { 0.0 }
            }).collect();
            let f: Vec<f32> = h.iter().zip(&mask).map(|(a, b)| a * b).collect();
            prop_assert_eq!(a.to_dense(a.values()), f.clone());
            let counts: Vec<u32> = (0..d_sae)
                .map(|j| (0..rows).filter(|r| mask[r * d_sae + j] > 0.0).count() as u32)
                .collect();
            prop_assert_eq!(a.counts(), counts);
            let close = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(p, q)| (p - q).abs() <= 1e-4 * (1.0 + q.abs()));
            // decode
            let mut want = dense_matmul(&f, &w, rows, d_sae, d);
            for r in 0..rows { for c in 0..d { want[r * d + c] += bias[c]; } }
            prop_assert!(close(&a.decode(&w, &bias), &want));
            // entry dots: (g·Wᵀ) at the entries
            let gw = dense_matmul(&g, &transpose(&w, d_sae, d), rows, d, d_sae);
            let dots = a.entry_dots(&g, &w, d);
            prop_assert!(close(&a.to_dense(&dots), &gw.iter().zip(&mask).map(|(x, m)| x * m).collect::<Vec<_>>()));
            // transposed product: fᵀ·g
            let ftg = dense_matmul(&transpose(&f, rows, d_sae), &g, d_sae, rows, d);
            prop_assert!(close(&a.transposed_product(&g, a.values(), d), &ftg));
        }
    }
}

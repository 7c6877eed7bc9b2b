//! Top-k by threshold where the data is: the k-th largest value of each row found with
//! comparisons and counts on the tensor's own device, with no read back and no sort.
//!
//! burn's top-k on a GPU is a reduction that carries k candidates per row: right for TopK's
//! k = 32 of each row ([`crate::topk::row_kth_largest_tensor`]), wrong for AuxK's `d_in / 2` dead
//! latents of each row and hopeless for BatchTopK's `k · B` largest of a whole batch (131 072 of
//! 12.6 million values for a 3072-wide SAE on 4096 rows). The selection here needs only counts:
//! a bisection on the value keeps, for each row, the largest `lo` with at least k values
//! `≥ lo`, in [`BISECTION_ROUNDS`] rounds of one comparison and one row count each over the data
//! (memory-bound kernels, a fixed number of them, so a training step stays free of
//! synchronisations); then `lo` is moved up to the smallest value at or above it, and
//! [`REFINEMENTS`] times to the next larger value while at least k values remain at or above
//! it. The result is a value of the row, and `x ≥ result` keeps the same entries as the exact
//! k-th largest unless more than `1 + REFINEMENTS` distinct values lie within
//! `(max − min) · 2⁻³²` below it, differences below the rounding of an f32 dot product of any
//! length (a unit test compares it with the host's exact partial selection).
//!
//! Counts are integers (exact at any size, where an f32 sum of ones stops at 2²⁴).

use burn::tensor::{Bool, Int, Tensor};

/// Bisection rounds of [`row_kth_largest_where`]: the bracket ends `2⁻³²` of a row's range wide.
pub const BISECTION_ROUNDS: usize = 32;

/// Steps up to the next larger value after the bisection (see the module docs).
pub const REFINEMENTS: usize = 2;

/// The k-th largest value of each row of `h` among the columns where `allowed` holds (all when
/// `None`), computed on `h`'s device without reading anything back; `−∞` for a row with fewer
/// than k allowed values or with k < 1. NaN values give an unspecified result for their row.
///
/// # Shapes
/// - `h`: `[rows, cols]`; `k`: `[rows, 1]` or `[1, 1]` (a per-row k, or one for all rows, on
///   the device, so that it can itself be a count computed there); `allowed`: `[rows, cols]` or
///   `[1, cols]` → `[rows, 1]`.
pub fn row_kth_largest_where(
    h: Tensor<2>,
    k: Tensor<2, Int>,
    allowed: Option<Tensor<2, Bool>>,
) -> Tensor<2> {
    select(h, k, allowed, Scope::Rows)
}

/// The k-th largest of all values of `h`, on its device: BatchTopK's batch threshold. `−∞`
/// when there are fewer than k values or k < 1. Every reduction runs by row first, then over
/// the rows' results (a GPU reduces thousands of rows in parallel, where one row of millions
/// would be one long reduction).
///
/// # Shapes
/// - `h`: `[rows, cols]` → `[1, 1]`.
pub fn kth_largest_where(h: Tensor<2>, k: usize) -> Tensor<2> {
    let device = h.device();
    let k = Tensor::<2, Int>::full([1, 1], k as i64, &device);
    select(h, k, None, Scope::All)
}

/// What [`select`] selects over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Each row: `[rows, 1]` results.
    Rows,
    /// The whole tensor: a `[1, 1]` result.
    All,
}

/// [`row_kth_largest_where`] and [`kth_largest_where`]: see the module docs.
fn select(
    h: Tensor<2>,
    k: Tensor<2, Int>,
    allowed: Option<Tensor<2, Bool>>,
    scope: Scope,
) -> Tensor<2> {
    let [rows, cols] = h.dims();
    let device = h.device();
    let out = match scope {
        Scope::Rows => [rows, 1],
        Scope::All => [1, 1],
    };
    let k = k.expand(out);
    // Reductions by row, then (whole scope) over the rows' results.
    let all = scope == Scope::All;
    let count = |b: Tensor<2, Bool>| {
        let c = b.int().sum_dim(1);
        if all { c.sum_dim(0) } else { c }
    };
    let min = |t: Tensor<2>| {
        let m = t.min_dim(1);
        if all { m.min_dim(0) } else { m }
    };
    let max = |t: Tensor<2>| {
        let m = t.max_dim(1);
        if all { m.max_dim(0) } else { m }
    };
    // `values`: disallowed entries at −∞ (never counted); `floor`: at +∞ (never the minimum).
    let (values, floor, n_allowed) = match allowed {
        Some(a) => {
            let a = a.expand([rows, cols]);
            let out = a.clone().bool_not();
            (
                h.clone().mask_fill(out.clone(), f32::NEG_INFINITY),
                h.mask_fill(out, f32::INFINITY),
                count(a),
            )
        }
        None => {
            let n = if all { rows * cols } else { cols };
            (h.clone(), h, Tensor::<2, Int>::full(out, n as i64, &device))
        }
    };
    let at_least = |t: Tensor<2>| {
        count(values.clone().greater_equal(t.expand([rows, cols]))).greater_equal(k.clone())
    };
    // Invariant: at least k values ≥ lo (lo starts at the smallest allowed value).
    let mut lo = min(floor);
    let mut hi = max(values.clone());
    for _ in 0..BISECTION_ROUNDS {
        // Halves first: no overflow between −f32::MAX and f32::MAX.
        let mid = lo.clone().mul_scalar(0.5).add(hi.clone().mul_scalar(0.5));
        let ok = at_least(mid.clone());
        lo = lo.mask_where(ok.clone(), mid.clone());
        hi = mid.mask_where(ok, hi);
    }
    // The smallest value ≥ lo (as many values at or above it as at or above lo) ...
    let smallest_above = |t: Tensor<2>, strictly: bool| {
        let below = if strictly {
            values.clone().lower_equal(t.expand([rows, cols]))
        } else {
            values.clone().lower(t.expand([rows, cols]))
        };
        min(values.clone().mask_fill(below, f32::INFINITY))
    };
    let mut thr = smallest_above(lo, false);
    // ... then the next larger values while at least k remain at or above them.
    for _ in 0..REFINEMENTS {
        let next = smallest_above(thr.clone(), true);
        let ok = at_least(next.clone());
        thr = thr.mask_where(ok, next);
    }
    let too_few = n_allowed.lower(k.clone()).bool_or(k.lower_elem(1));
    thr.mask_fill(too_few, f32::NEG_INFINITY)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::device::{bool_tensor_from_vec, cpu, int_tensor_from_vec, tensor_from_vec};
    use crate::topk::{kth_largest, row_kth_largest};
    use proptest::prelude::*;

    fn run(data: &[f32], cols: usize, k: usize, allowed: Option<&[bool]>) -> Vec<f32> {
        let rows = data.len() / cols;
        let device = cpu();
        let h = tensor_from_vec(data.to_vec(), [rows, cols], &device);
        let k = int_tensor_from_vec(vec![k as i64], [1, 1], &device);
        let a = allowed.map(|a| bool_tensor_from_vec(a.to_vec(), [1, cols], &device));
        crate::device::tensor_to_vec(row_kth_largest_where(h, k, a)).unwrap()
    }

    proptest! {
        /// Coarse values (ties in every row), negative rows and a random allowed set: the
        /// threshold is the host's exact partial selection, `−∞` where too few are allowed.
        #[test]
        fn equals_the_exact_selection_with_ties(
            rows in 1usize..6,
            cols in 1usize..50,
            k in 0usize..55,
            seed in proptest::collection::vec(-4i8..4, 300),
            mask in proptest::collection::vec(any::<bool>(), 50),
            masked in any::<bool>(),
        ) {
            let data: Vec<f32> = (0..rows * cols)
                .map(|i| f32::from(seed[i % seed.len()]) * 0.75 - (i / cols) as f32)
                .collect();
            let allowed: Option<Vec<bool>> = masked.then(|| mask[..cols].to_vec());
            let host = row_kth_largest(&data, cols, k, allowed.as_deref());
            prop_assert_eq!(run(&data, cols, k, allowed.as_deref()), host);
        }

        /// Continuous values of both signs, magnitudes from 1e-2 to 1e3 (an SAE's
        /// pre-activations span fewer decades).
        #[test]
        fn equals_the_exact_selection_on_continuous_values(
            rows in 1usize..4,
            cols in 2usize..300,
            k_frac in 0.0f64..1.0,
            raw in proptest::collection::vec(-1.0f32..1.0, 900),
        ) {
            let data: Vec<f32> = (0..rows * cols)
                .map(|i| {
                    let r = raw[i % raw.len()];
                    r.signum() * 10f32.powf(r.abs() * 5.0 - 2.0) + i as f32 * 1e-5
                })
                .collect();
            let k = 1 + ((cols - 1) as f64 * k_frac) as usize;
            prop_assert_eq!(run(&data, cols, k, None), row_kth_largest(&data, cols, k, None));
        }
    }

    #[test]
    fn the_batch_threshold_is_the_host_one() {
        let mut rng = crate::testing::Lcg(11);
        // ReLU'd values, four in five 0: as BatchTopK's clamped input.
        let data: Vec<f32> = (0..64 * 300)
            .map(|_| (rng.next_f32() - 0.6).max(0.0) * 3.0)
            .collect();
        let h = tensor_from_vec(data.clone(), [64, 300], &cpu());
        for k in [1, 7, 64 * 32, 64 * 300, 64 * 300 + 1] {
            let got = crate::device::tensor_to_vec(kth_largest_where(h.clone(), k)).unwrap();
            assert_eq!(got, vec![kth_largest(&data, k)], "k = {k}");
        }
    }

    #[test]
    fn a_per_row_k_and_extreme_values() {
        let device = cpu();
        let data = vec![
            f32::MAX,
            -f32::MAX,
            0.0,
            1.0, // row 0
            -0.0,
            0.0,
            f32::MIN_POSITIVE,
            -1e-40, // row 1: ±0, a normal and a subnormal
        ];
        let h = tensor_from_vec(data.clone(), [2, 4], &device);
        let k = int_tensor_from_vec(vec![2, 3], [2, 1], &device);
        let got = crate::device::tensor_to_vec(row_kth_largest_where(h, k, None)).unwrap();
        assert_eq!(got[0], row_kth_largest(&data[..4], 4, 2, None)[0]);
        assert_eq!(
            got[1].to_bits() & 0x7fff_ffff,
            0,
            "the third largest of row 1 is ±0"
        );
    }
}

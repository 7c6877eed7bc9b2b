//! Row-wise top-k, the one implementation every crate uses (SAE TopK encoding, TopK/BatchTopK
//! training, the logit lens of W_dec · W_U).
//!
//! burn's `topk_with_indices` on the CPU backends is a full sort of every row: over GPT-2's 50 257
//! tokens it took 2.7 s per 1000 rows, 70 % of a logit lens (the matmul itself 2.2 s). On host
//! memory ([`is_host_memory`]) these functions read the rows once and scan each row against its k
//! best so far, rows in parallel (O(cols) per row, one comparison per value) instead; on a GPU
//! they call burn's top-k where the data is, with no transfer.
//!
//! Order: the k values of a row come extreme first (largest first for [`Extreme::Largest`],
//! smallest first for [`Extreme::Smallest`]); equal values by column ascending. NaN counts as
//! larger than every number (`f32::total_cmp`, as torch's `topk`).

use burn::tensor::{Int, Tensor};
use rayon::prelude::*;

use crate::device::{
    int_tensor_from_vec, int_tensor_to_vec, is_host_memory, tensor_from_vec, tensor_to_vec,
};
use crate::error::{Result, SaeError};

/// Which end of each row [`row_top_k`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Extreme {
    /// The k largest values, largest first.
    Largest,
    /// The k smallest values, smallest first.
    Smallest,
}

/// The k extreme values of each row, on the host: `values` and `indices` are row-major
/// `[rows, k]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RowTopK {
    /// Values kept per row.
    pub k: usize,
    /// `[rows, k]` values, extreme first.
    pub values: Vec<f32>,
    /// `[rows, k]` column indices of `values`.
    pub indices: Vec<u32>,
}

fn invalid_k(k: usize, cols: usize, len: usize) -> SaeError {
    SaeError::InvalidTopK { k, cols, len }
}

/// The k extreme values of each row of a row-major `[rows, cols]` buffer, rows in parallel.
/// Each row is scanned once against its k best so far (one comparison per value once the k-th
/// is good: no copy of the row, no sort). Errors when k is 0 or exceeds `cols`, or `data` is not
/// a whole number of rows.
pub fn row_top_k_host(data: &[f32], cols: usize, k: usize, extreme: Extreme) -> Result<RowTopK> {
    if k == 0 || k > cols || !data.len().is_multiple_of(cols) {
        return Err(invalid_k(k, cols, data.len()));
    }
    // Values compared as integers in `f32::total_cmp`'s order, negated for `Smallest`, so that
    // "more extreme" is always "greater" and a block's maximum vectorises.
    let key = |v: f32| {
        let b = v.to_bits() as i32;
        let ordered = b ^ ((((b >> 31) as u32) >> 1) as i32);
        match extreme {
            Extreme::Largest => ordered,
            // `!x` reverses the order without overflow.
            Extreme::Smallest => !ordered,
        }
    };
    const BLOCK: usize = 32;
    let rows: Vec<Vec<(i32, u32)>> = data
        .par_chunks(cols)
        .map(|row| {
            // The k best so far, most extreme first; an equal value comes after (columns are
            // scanned in ascending order, so a later equal value never displaces one).
            let mut best: Vec<(i32, u32)> = Vec::with_capacity(k + 1);
            for (b, block) in row.chunks(BLOCK).enumerate() {
                if best.len() == k {
                    let top = block.iter().map(|&v| key(v)).max().unwrap_or(i32::MIN);
                    if top <= best[k - 1].0 {
                        continue;
                    }
                }
                for (j, &v) in block.iter().enumerate() {
                    let v = key(v);
                    if best.len() == k && v <= best[k - 1].0 {
                        continue;
                    }
                    let at = best.partition_point(|&(x, _)| x >= v);
                    best.insert(at, (v, (b * BLOCK + j) as u32));
                    best.truncate(k);
                }
            }
            best
        })
        .collect();
    let mut values = Vec::with_capacity(rows.len() * k);
    let mut indices = Vec::with_capacity(rows.len() * k);
    for (row, best) in data.chunks(cols).zip(rows) {
        for (_, i) in best {
            indices.push(i);
            values.push(row[i as usize]);
        }
    }
    Ok(RowTopK { k, values, indices })
}

/// The k extreme values of each row of `h`, read back to the host.
///
/// # Shapes
/// - `h`: `[rows, cols]` → `values`, `indices`: `[rows, k]` (row-major).
pub fn row_top_k(h: Tensor<2>, k: usize, extreme: Extreme) -> Result<RowTopK> {
    let [rows, cols] = h.dims();
    if k == 0 || k > cols {
        return Err(invalid_k(k, cols, rows * cols));
    }
    if is_host_memory(&h.device()) {
        return row_top_k_host(&tensor_to_vec(h)?, cols, k, extreme);
    }
    let (values, indices) = on_device(h, k, extreme);
    Ok(RowTopK {
        k,
        values: tensor_to_vec(values)?,
        indices: int_tensor_to_vec(indices)?
            .into_iter()
            .map(|i| i as u32)
            .collect(),
    })
}

/// The k extreme values of each row of `h` and their columns, as tensors on `h`'s device.
///
/// # Shapes
/// - `h`: `[rows, cols]` → `([rows, k], [rows, k])`.
pub fn row_top_k_tensors(
    h: Tensor<2>,
    k: usize,
    extreme: Extreme,
) -> Result<(Tensor<2>, Tensor<2, Int>)> {
    let device = h.device();
    let [rows, cols] = h.dims();
    if k == 0 || k > cols {
        return Err(invalid_k(k, cols, rows * cols));
    }
    if !is_host_memory(&device) {
        return Ok(on_device(h, k, extreme));
    }
    let t = row_top_k_host(&tensor_to_vec(h)?, cols, k, extreme)?;
    let indices = t.indices.into_iter().map(i64::from).collect();
    Ok((
        tensor_from_vec(t.values, [rows, k], &device),
        int_tensor_from_vec(indices, [rows, k], &device),
    ))
}

/// burn's top-k where the data is (a GPU).
fn on_device(h: Tensor<2>, k: usize, extreme: Extreme) -> (Tensor<2>, Tensor<2, Int>) {
    match extreme {
        Extreme::Largest => h.topk_with_indices(k, 1),
        Extreme::Smallest => {
            let (v, i) = h.neg().topk_with_indices(k, 1);
            (v.neg(), i)
        }
    }
}

/// The k-th largest value of each row of a row-major `[rows, cols]` buffer, restricted to the
/// columns where `allowed` is true (all when `None`); `-∞` when a row has fewer than k allowed.
pub fn row_kth_largest(data: &[f32], cols: usize, k: usize, allowed: Option<&[bool]>) -> Vec<f32> {
    data.par_chunks(cols)
        .map_init(Vec::new, |buf, row| {
            buf.clear();
            match allowed {
                Some(a) => buf.extend(row.iter().zip(a).filter(|(_, ok)| **ok).map(|(v, _)| *v)),
                None => buf.extend_from_slice(row),
            }
            if k == 0 || buf.len() < k {
                return f32::NEG_INFINITY;
            }
            let at = buf.len() - k;
            let (_, kth, _) = buf.select_nth_unstable_by(at, f32::total_cmp);
            *kth
        })
        .collect()
}

/// The k-th largest value of each row of `h` (`[rows, 1]`; `-∞` when k is 0 or exceeds the
/// row). On a GPU the top-k reduction runs where `h` is (a partial selection, no sort, no
/// transfer); on the CPU, where flex's top-k is a full sort and reading `h` is a copy, a
/// parallel partial selection on the host.
pub fn row_kth_largest_tensor(h: &Tensor<2>, k: usize) -> Result<Tensor<2>> {
    let device = h.device();
    let [rows, cols] = h.dims();
    if k == 0 || k > cols {
        return Ok(Tensor::<2>::full([rows, 1], f32::NEG_INFINITY, &device));
    }
    if is_host_memory(&device) {
        let host = tensor_to_vec(h.clone())?;
        let thr = row_kth_largest(&host, cols, k, None);
        return Ok(tensor_from_vec(thr, [rows, 1], &device));
    }
    Ok(row_kth_largest_on_device(h.clone(), k))
}

/// The device form of [`row_kth_largest_tensor`]: the smallest of each row's top k.
fn row_kth_largest_on_device(h: Tensor<2>, k: usize) -> Tensor<2> {
    h.topk(k, 1).min_dim(1)
}

/// The k-th largest of all values (`-∞` when fewer than k).
pub fn kth_largest(data: &[f32], k: usize) -> f32 {
    if k == 0 || data.len() < k {
        return f32::NEG_INFINITY;
    }
    let mut v = data.to_vec();
    let at = v.len() - k;
    let (_, kth, _) = v.select_nth_unstable_by(at, f32::total_cmp);
    *kth
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: a full stable sort of each row.
    fn by_sorting(data: &[f32], cols: usize, k: usize, extreme: Extreme) -> RowTopK {
        let (mut values, mut indices) = (Vec::new(), Vec::new());
        for row in data.chunks(cols) {
            let mut idx: Vec<usize> = (0..cols).collect();
            idx.sort_by(|&a, &b| match extreme {
                Extreme::Largest => row[b].total_cmp(&row[a]),
                Extreme::Smallest => row[a].total_cmp(&row[b]),
            });
            for &i in &idx[..k] {
                values.push(row[i]);
                indices.push(i as u32);
            }
        }
        RowTopK { k, values, indices }
    }

    proptest! {
        #[test]
        fn partial_selection_equals_a_full_sort(
            rows in 1usize..6,
            cols in 1usize..40,
            k_frac in 0.0f64..1.0,
            // Few distinct values, so that ties are common.
            seed in proptest::collection::vec(-3i8..3, 240),
            largest in any::<bool>(),
        ) {
            let data: Vec<f32> = (0..rows * cols).map(|i| f32::from(seed[i % seed.len()]) * 0.5).collect();
            let k = 1 + ((cols - 1) as f64 * k_frac) as usize;
            let extreme = if largest { Extreme::Largest } else { Extreme::Smallest };
            let got = row_top_k_host(&data, cols, k, extreme).unwrap();
            prop_assert_eq!(got, by_sorting(&data, cols, k, extreme));
        }
    }

    #[test]
    fn the_tensor_forms_agree_with_the_host_form() {
        let device = crate::device::cpu();
        let data: Vec<f32> = (0..60).map(|i| ((i * 37) % 23) as f32 - 11.0).collect();
        let h = tensor_from_vec(data.clone(), [4, 15], &device);
        for extreme in [Extreme::Largest, Extreme::Smallest] {
            let host = row_top_k_host(&data, 15, 4, extreme).unwrap();
            assert_eq!(row_top_k(h.clone(), 4, extreme).unwrap(), host);
            let (v, i) = row_top_k_tensors(h.clone(), 4, extreme).unwrap();
            assert_eq!(tensor_to_vec(v).unwrap(), host.values);
            let i: Vec<u32> = int_tensor_to_vec(i)
                .unwrap()
                .into_iter()
                .map(|i| i as u32)
                .collect();
            assert_eq!(i, host.indices);
            // burn's own top-k picks the same values (its tie order is its own).
            let (v, _) = on_device(h.clone(), 4, extreme);
            assert_eq!(tensor_to_vec(v).unwrap(), host.values);
        }
    }

    #[test]
    fn k_out_of_range_is_a_typed_error() {
        for k in [0, 16] {
            let e = row_top_k_host(&[0.0; 30], 15, k, Extreme::Largest).unwrap_err();
            assert!(
                matches!(e, SaeError::InvalidTopK { k: kk, cols: 15, .. } if kk == k),
                "{e}"
            );
        }
        assert!(row_top_k_host(&[0.0; 31], 15, 3, Extreme::Largest).is_err());
    }

    /// The GPU path (top-k reduction, then the row minimum) selects the same thresholds as the
    /// CPU path's partial selection, ties and negative rows included.
    #[test]
    fn device_topk_threshold_equals_host_selection() {
        let (rows, cols) = (37, 129);
        let mut s = 7u64;
        let data: Vec<f32> = (0..rows * cols)
            .map(|i| {
                s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                // Coarse values so rows hold ties; every fifth row negative.
                let v = ((s >> 40) % 17) as f32 - 8.0;
                if (i / cols) % 5 == 0 {
                    -v.abs() - 1.0
                } else {
                    v
                }
            })
            .collect();
        let h = tensor_from_vec(data.clone(), [rows, cols], &crate::device::cpu());
        for k in [1, 2, 32, cols] {
            let host = row_kth_largest(&data, cols, k, None);
            let dev = tensor_to_vec(row_kth_largest_on_device(h.clone(), k)).unwrap();
            assert_eq!(host, dev, "k = {k}");
            let via = tensor_to_vec(row_kth_largest_tensor(&h, k).unwrap()).unwrap();
            assert_eq!(host, via, "k = {k}");
        }
        let none = tensor_to_vec(row_kth_largest_tensor(&h, cols + 1).unwrap()).unwrap();
        assert!(none.iter().all(|v| *v == f32::NEG_INFINITY));
    }
}

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
    with_host_values,
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
    let mut stream = RowTopKStream::new(data.len() / cols, k, extreme)?;
    stream.push(data, cols)?;
    stream.finish()
}

/// [`row_top_k_host`] over rows whose columns arrive in blocks, left to right: a product too
/// large to hold (W_dec · W_U over a 262 144-token vocabulary) is computed and selected tile by
/// tile, and only the k best of each row are kept between tiles. The result equals
/// [`row_top_k_host`] on the whole rows, tie order included.
#[derive(Debug, Clone)]
pub struct RowTopKStream {
    k: usize,
    extreme: Extreme,
    /// Columns pushed so far (the next block's first column).
    cols: usize,
    /// Per row, the k best so far as (key, column), most extreme first.
    best: Vec<Vec<(i32, u32)>>,
}

impl RowTopKStream {
    /// A selection of the k extreme values of `rows` rows. Errors when k is 0.
    pub fn new(rows: usize, k: usize, extreme: Extreme) -> Result<Self> {
        if k == 0 {
            return Err(invalid_k(k, 0, 0));
        }
        Ok(Self {
            k,
            extreme,
            cols: 0,
            best: (0..rows).map(|_| Vec::with_capacity(k + 1)).collect(),
        })
    }

    /// Scans the next `width` columns of every row: `block` is row-major `[rows, width]`. Errors
    /// when `block` is not `rows × width` values or the columns would pass `u32::MAX`.
    pub fn push(&mut self, block: &[f32], width: usize) -> Result<()> {
        let rows = self.best.len();
        let total = self
            .cols
            .checked_add(width)
            .filter(|&c| c <= u32::MAX as usize);
        if width == 0 || block.len() != rows * width || total.is_none() {
            return Err(invalid_k(self.k, width, block.len()));
        }
        let (k, extreme, first) = (self.k, self.extreme, self.cols as u32);
        self.best
            .par_iter_mut()
            .zip(block.par_chunks(width))
            .with_min_len(4)
            .for_each(|(best, row)| scan_row(best, row, first, k, extreme));
        self.cols += width;
        Ok(())
    }

    /// The selection. Errors when fewer than k columns were pushed.
    pub fn finish(self) -> Result<RowTopK> {
        let (k, extreme) = (self.k, self.extreme);
        if self.cols < k {
            return Err(invalid_k(k, self.cols, self.cols * self.best.len()));
        }
        let mut values = Vec::with_capacity(self.best.len() * k);
        let mut indices = Vec::with_capacity(self.best.len() * k);
        for (key, i) in self.best.into_iter().flatten() {
            values.push(from_key(key, extreme));
            indices.push(i);
        }
        Ok(RowTopK { k, values, indices })
    }
}

/// `v` as an unsigned integer whose order is `f32::total_cmp`'s (−NaN < −∞ < … < −0 < +0 < … <
/// +∞ < +NaN): sorting `(key << 32) | index` as `u64`s sorts values, ties by index.
#[inline]
pub fn total_order_key(v: f32) -> u32 {
    (signed_order_key(v) as u32) ^ 0x8000_0000
}

/// `v`'s bits with the magnitude flipped for negative numbers (its own inverse): an `i32` in
/// `f32::total_cmp`'s order.
#[inline]
fn signed_order_key(v: f32) -> i32 {
    let b = v.to_bits() as i32;
    b ^ ((((b >> 31) as u32) >> 1) as i32)
}

/// A value as an integer in `f32::total_cmp`'s order, negated for `Smallest`, so that "more
/// extreme" is always "greater" and a block's maximum vectorises.
#[inline]
fn to_key(v: f32, extreme: Extreme) -> i32 {
    let ordered = signed_order_key(v);
    match extreme {
        Extreme::Largest => ordered,
        // `!x` reverses the order without overflow.
        Extreme::Smallest => !ordered,
    }
}

/// The value behind a [`to_key`] key, bit for bit.
#[inline]
fn from_key(key: i32, extreme: Extreme) -> f32 {
    let ordered = match extreme {
        Extreme::Largest => key,
        Extreme::Smallest => !key,
    };
    f32::from_bits((ordered ^ ((((ordered >> 31) as u32) >> 1) as i32)) as u32)
}

/// Folds one row's next columns (starting at column `first`) into its k best so far. An equal
/// value comes after the ones already kept (columns arrive in ascending order, so a later equal
/// value never displaces one).
fn scan_row(best: &mut Vec<(i32, u32)>, row: &[f32], first: u32, k: usize, extreme: Extreme) {
    const BLOCK: usize = 32;
    for (b, block) in row.chunks(BLOCK).enumerate() {
        if best.len() == k {
            let top = block
                .iter()
                .map(|&v| to_key(v, extreme))
                .max()
                .unwrap_or(i32::MIN);
            if top <= best[k - 1].0 {
                continue;
            }
        }
        for (j, &v) in block.iter().enumerate() {
            let v = to_key(v, extreme);
            if best.len() == k && v <= best[k - 1].0 {
                continue;
            }
            let at = best.partition_point(|&(x, _)| x >= v);
            best.insert(at, (v, first + (b * BLOCK + j) as u32));
            best.truncate(k);
        }
    }
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
        return with_host_values(h, |v| row_top_k_host(v, cols, k, extreme))?;
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
    let t = with_host_values(h, |v| row_top_k_host(v, cols, k, extreme))??;
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
    row_kth_largest_tensor_on(h, k, SelectOn::Auto)
}

/// Where [`row_kth_largest_tensor_on`] selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SelectOn {
    /// On host memory, read back and select on the host (fastest there); elsewhere, where the
    /// data is.
    #[default]
    Auto,
    /// Where the data is, whatever the device: nothing read back (what a GPU runs; selectable
    /// on the CPU to test that path).
    Device,
}

/// [`row_kth_largest_tensor`] with the place of the selection chosen: [`SelectOn::Device`]
/// runs burn's top-k reduction even on the CPU (where it is a sort, for tests).
pub fn row_kth_largest_tensor_on(h: &Tensor<2>, k: usize, on: SelectOn) -> Result<Tensor<2>> {
    let device = h.device();
    let [rows, cols] = h.dims();
    if k == 0 || k > cols {
        return Ok(Tensor::<2>::full([rows, 1], f32::NEG_INFINITY, &device));
    }
    if on == SelectOn::Auto && is_host_memory(&device) {
        let thr = with_host_values(h.clone(), |v| row_kth_largest(v, cols, k, None))?;
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

    proptest! {
        #[test]
        fn tiles_select_as_whole_rows(
            rows in 1usize..5,
            cols in 1usize..70,
            k_frac in 0.0f64..1.0,
            cuts in proptest::collection::vec(1usize..20, 1..8),
            seed in proptest::collection::vec(-3i8..3, 240),
            largest in any::<bool>(),
        ) {
            let data: Vec<f32> = (0..rows * cols).map(|i| f32::from(seed[i % seed.len()]) * 0.5).collect();
            let k = 1 + ((cols - 1) as f64 * k_frac) as usize;
            let extreme = if largest { Extreme::Largest } else { Extreme::Smallest };
            let mut stream = RowTopKStream::new(rows, k, extreme).unwrap();
            let (mut c0, mut cut) = (0, cuts.iter().cycle());
            while c0 < cols {
                let w = (*cut.next().unwrap()).min(cols - c0);
                let tile: Vec<f32> = data
                    .chunks(cols)
                    .flat_map(|row| row[c0..c0 + w].iter().copied())
                    .collect();
                stream.push(&tile, w).unwrap();
                c0 += w;
            }
            prop_assert_eq!(stream.finish().unwrap(), by_sorting(&data, cols, k, extreme));
        }
    }

    proptest! {
        #[test]
        fn total_order_keys_sort_as_total_cmp(a in any::<u32>(), b in any::<u32>()) {
            let (x, y) = (f32::from_bits(a), f32::from_bits(b));
            prop_assert_eq!(total_order_key(x).cmp(&total_order_key(y)), x.total_cmp(&y));
        }
    }

    #[test]
    fn keys_round_trip_every_kind_of_value() {
        let nan = f32::from_bits(0x7fc0_0123);
        let neg_nan = f32::from_bits(0xffc0_0001);
        for v in [
            0.0,
            -0.0,
            1.5,
            -1.5,
            f32::MIN,
            f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
            -1e-45,
            nan,
            neg_nan,
        ] {
            for extreme in [Extreme::Largest, Extreme::Smallest] {
                assert_eq!(
                    from_key(to_key(v, extreme), extreme).to_bits(),
                    v.to_bits(),
                    "{v}"
                );
            }
        }
    }

    #[test]
    fn a_stream_checks_its_blocks() {
        let mut s = RowTopKStream::new(2, 3, Extreme::Largest).unwrap();
        assert!(s.push(&[1.0; 5], 2).is_err(), "not 2 rows of 2");
        s.push(&[1.0, 2.0, 3.0, 4.0], 2).unwrap();
        assert!(matches!(
            s.clone().finish().unwrap_err(),
            SaeError::InvalidTopK { k: 3, cols: 2, .. }
        ));
        s.push(&[5.0, 6.0], 1).unwrap();
        let got = s.finish().unwrap();
        assert_eq!(got.values, vec![5.0, 2.0, 1.0, 6.0, 4.0, 3.0]);
        assert_eq!(got.indices, vec![2, 1, 0, 2, 1, 0]);
        assert!(RowTopKStream::new(1, 0, Extreme::Smallest).is_err());
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

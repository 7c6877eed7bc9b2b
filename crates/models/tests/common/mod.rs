//! Helpers shared by the model parity tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use sae_core::burn::tensor::{Int, Tensor};
use sae_core::device::{from_env, int_tensor_from_vec};
use sae_core::safetensors_io::HostTensor;

/// `crates/models/tests/fixtures`.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The largest |a − b| (equal values, infinities included, count 0).
pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| if x == y { 0.0 } else { (x - y).abs() })
        .fold(0.0, f32::max)
}

/// The fixture's `tokens` (ids stored as floats) as a `[batch, pos]` id tensor.
pub fn tokens(io: &BTreeMap<String, HostTensor>) -> Tensor<2, Int> {
    let t = &io["tokens"];
    let ids: Vec<i64> = t.data.iter().map(|v| *v as i64).collect();
    int_tensor_from_vec(ids, [t.shape[0], t.shape[1]], &from_env().unwrap())
}

//! Helpers shared by sae-core's integration tests.
#![allow(dead_code, unreachable_pub)]
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sae_core::burn::tensor::Tensor;
use sae_core::device::{from_env, tensor_from_vec, tensor_to_vec};
use sae_core::safetensors_io::{HostTensor, SafetensorsFile};
use sae_core::{Architecture, Sae, SaeConfig};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/saelens")
}

pub fn cases() -> Vec<String> {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("manifest.json")).unwrap())
            .unwrap();
    manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

pub fn read_io(case: &Path) -> BTreeMap<String, HostTensor> {
    SafetensorsFile::open(case.join("io.safetensors"))
        .unwrap()
        .read_all()
        .unwrap()
}

pub fn to_tensor(t: &HostTensor) -> Tensor<2> {
    tensor_from_vec(
        t.data.clone(),
        [t.shape[0], t.shape[1]],
        &from_env().unwrap(),
    )
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

pub fn host(t: Tensor<2>) -> Vec<f32> {
    tensor_to_vec(t).unwrap()
}

#[allow(unused_imports)]
pub use sae_core::testing::Lcg;

/// A random SAE of the given architecture, on the test device.
pub fn random_sae(config: SaeConfig, seed: u64) -> Sae {
    sae_core::testing::random_sae(config, seed, &from_env().unwrap()).unwrap()
}

pub fn config(arch: Architecture, d_in: usize, d_sae: usize) -> SaeConfig {
    let mut c = SaeConfig::new(d_in, d_sae, arch);
    if arch == Architecture::TopK {
        c.k = Some(3);
    }
    c
}

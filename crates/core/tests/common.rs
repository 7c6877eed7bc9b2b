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

/// A tiny deterministic generator for test weights.
pub struct Lcg(pub u64);
impl Lcg {
    pub fn next_f32(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next_f32() * scale).collect()
    }
}

/// A random SAE of the given architecture, through the public host-tensor constructor.
pub fn random_sae(config: SaeConfig, seed: u64) -> Sae {
    let mut rng = Lcg(seed);
    let (d_in, d_sae) = (config.d_in, config.d_sae);
    let mut m = BTreeMap::new();
    for name in config.architecture.tensor_names() {
        let (shape, scale) = match *name {
            "W_enc" => (vec![d_in, d_sae], 0.5),
            "W_dec" => (vec![d_sae, d_in], 0.5),
            "b_dec" => (vec![d_in], 0.2),
            "threshold" => (vec![d_sae], 0.3),
            _ => (vec![d_sae], 0.2),
        };
        let n = shape.iter().product();
        let mut data = rng.vec(n, scale);
        if *name == "threshold" {
            data.iter_mut().for_each(|v| *v = v.abs());
        }
        m.insert(name.to_string(), HostTensor::new(shape, data));
    }
    Sae::from_host_tensors(config, m, Path::new("<test>"), &from_env().unwrap())
        .unwrap()
        .0
}

pub fn config(arch: Architecture, d_in: usize, d_sae: usize) -> SaeConfig {
    let mut c = SaeConfig::new(d_in, d_sae, arch);
    if arch == Architecture::TopK {
        c.k = Some(3);
    }
    c
}

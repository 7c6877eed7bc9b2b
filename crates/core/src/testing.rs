//! Seeded random SAEs for tests, examples and benchmarks of this workspace and of users' code:
//! deterministic weights through the public host-tensor constructor, so a test needs no fixture
//! file to get an SAE of any architecture and size.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::SaeConfig;
use crate::error::Result;
use crate::sae::Sae;
use crate::safetensors_io::HostTensor;
use burn::tensor::Device;

/// A small deterministic generator (a 64-bit LCG) of values in [−1, 1).
#[derive(Debug, Clone)]
pub struct Lcg(pub u64);

impl Lcg {
    /// The next value in [−1, 1).
    pub fn next_f32(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// `n` values in [−scale, scale).
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next_f32() * scale).collect()
    }
}

/// An SAE of `config`'s architecture and shape with seeded weights: `W_enc`, `W_dec` in
/// ±0.5, `b_dec` in ±0.2, other vectors in ±0.2, thresholds positive.
pub fn random_sae(config: SaeConfig, seed: u64, device: &Device) -> Result<Sae> {
    let mut rng = Lcg(seed);
    let (d_in, d_sae, d_out) = (config.d_in, config.d_sae, config.output_width());
    let mut m = BTreeMap::new();
    for name in config.architecture.tensor_names() {
        let (shape, scale) = match *name {
            "W_enc" => (vec![d_in, d_sae], 0.5),
            "W_dec" => (vec![d_sae, d_out], 0.5),
            "W_skip" => (vec![d_out, d_in], 0.3),
            "b_dec" => (vec![d_out], 0.2),
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
    Ok(Sae::from_host_tensors(config, m, Path::new("<random>"), device)?.0)
}

/// A snapshot directory of `repo_id` (a model repository) in an HF cache rooted at `cache`, laid
/// out as huggingface_hub writes it (`models--owner--name/refs/main` holding `commit`,
/// `snapshots/<commit>/`), created empty: files copied into it are what
/// [`crate::HubClient`] finds offline with that cache.
pub fn hf_cache_snapshot(cache: &Path, repo_id: &str, commit: &str) -> Result<std::path::PathBuf> {
    let repo = cache.join(format!("models--{}", repo_id.replace('/', "--")));
    let snap = repo.join("snapshots").join(commit);
    for dir in [&snap, &repo.join("refs")] {
        std::fs::create_dir_all(dir).map_err(|e| crate::error::SaeError::io(dir, e))?;
    }
    crate::atomic::write(repo.join("refs/main"), commit.as_bytes())?;
    Ok(snap)
}

//! SAEs that serve as baselines, so a score can be read against its floor: a randomly
//! initialised SAE of the same shape ("random latents"), and the model's neurons at a hook
//! seen through an identity encoder ("neurons").

use std::path::Path;

use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::StdRng;
use sae_core::config::{Architecture, SaeConfig};
use sae_core::{HostTensor, Sae};

/// Which baseline latents to explain instead of the SAE's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaselineLatents {
    /// The SAE's own latents (no baseline).
    Sae,
    /// A random SAE with the same config, biases and sparsity mechanism: decoder rows are
    /// random unit vectors and the encoder is their transpose.
    RandomLatents,
    /// The model's neurons at a hook: an identity ReLU "SAE" (`d_sae = d_in`).
    Neurons,
}

/// `sae` with its directions replaced by random unit vectors (seeded); biases, thresholds
/// and k are kept, so the random latents fire about as sparsely as the trained ones.
pub fn random_like(sae: &Sae, seed: u64) -> crate::Result<Sae> {
    let mut t = sae.to_host_tensors().map_err(core_err)?;
    let (d_in, d_sae) = (sae.d_in(), sae.d_sae());
    let mut rng = StdRng::seed_from_u64(seed);
    let mut dec = vec![0f32; d_sae * d_in];
    for row in dec.chunks_mut(d_in) {
        for v in row.iter_mut() {
            // Box–Muller.
            let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random::<f64>());
            *v = ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32;
        }
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v /= n);
    }
    // Keep the trained encoder's per-latent scale so thresholds and biases still mean the
    // same: column norms of W_enc.
    let old_enc = t.get("W_enc").map(|h| h.data.clone()).unwrap_or_default();
    let mut enc = vec![0f32; d_in * d_sae];
    for j in 0..d_sae {
        let scale = (0..d_in)
            .map(|i| old_enc.get(i * d_sae + j).copied().unwrap_or(0.0).powi(2))
            .sum::<f32>()
            .sqrt();
        for i in 0..d_in {
            enc[i * d_sae + j] = dec[j * d_in + i] * scale;
        }
    }
    t.insert("W_dec".into(), HostTensor::new(vec![d_sae, d_in], dec));
    t.insert("W_enc".into(), HostTensor::new(vec![d_in, d_sae], enc));
    let device = sae.device();
    Sae::from_host_tensors(
        sae.config().clone(),
        t,
        Path::new("<random baseline>"),
        &device,
    )
    .map(|(s, _)| s)
    .map_err(core_err)
}

/// The identity ReLU "SAE" over `d` neurons at `hook`: latent `i` is neuron `i`'s positive
/// part.
pub fn neurons(
    d: usize,
    hook: &str,
    template: &SaeConfig,
    device: &sae_core::burn::tensor::Device,
) -> crate::Result<Sae> {
    let mut cfg = SaeConfig::new(d, d, Architecture::Standard);
    cfg.metadata = template.metadata.clone();
    cfg.metadata.hook_name = Some(hook.to_string());
    let mut eye = vec![0f32; d * d];
    for i in 0..d {
        eye[i * d + i] = 1.0;
    }
    let mut t = std::collections::BTreeMap::new();
    t.insert(
        "W_enc".to_string(),
        HostTensor::new(vec![d, d], eye.clone()),
    );
    t.insert("W_dec".to_string(), HostTensor::new(vec![d, d], eye));
    t.insert("b_enc".to_string(), HostTensor::new(vec![d], vec![0.0; d]));
    t.insert("b_dec".to_string(), HostTensor::new(vec![d], vec![0.0; d]));
    Sae::from_host_tensors(cfg, t, Path::new("<neuron baseline>"), device)
        .map(|(s, _)| s)
        .map_err(core_err)
}

fn core_err(e: sae_core::SaeError) -> crate::AutoInterpError {
    crate::AutoInterpError::Sae(e)
}

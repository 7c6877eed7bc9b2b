//! Shared inputs for the benchmarks: deterministic synthetic SAEs and activations, identical to
//! what `benches/python/*.py` builds for the Python references.

use sae_core::burn::module::Param;
use sae_core::burn::tensor::{Device, Tensor};
use sae_core::device::tensor_from_vec;
use sae_core::{Architecture, Sae, SaeConfig, SaeParams};

/// A deterministic pseudo-random stream (SplitMix64) so Rust and Python benches can share inputs
/// through files without depending on either language's RNG.
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next value in [-1, 1).
    pub fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// `n` values scaled by `scale`.
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next_f32() * scale).collect()
    }
}

/// A standard (ReLU) SAE with random weights.
pub fn random_standard_sae(d_in: usize, d_sae: usize, device: &Device) -> Sae {
    let mut rng = SplitMix(1);
    let scale = 1.0 / (d_in as f32).sqrt();
    let t2 = |rng: &mut SplitMix, r: usize, c: usize| -> Param<Tensor<2>> {
        Param::from_tensor(tensor_from_vec(rng.vec(r * c, scale), [r, c], device))
    };
    let w_enc = t2(&mut rng, d_in, d_sae);
    let w_dec = t2(&mut rng, d_sae, d_in);
    let b_enc = Param::from_tensor(tensor_from_vec(rng.vec(d_sae, 0.1), [d_sae], device));
    let b_dec = Param::from_tensor(tensor_from_vec(rng.vec(d_in, 0.1), [d_in], device));
    let params = SaeParams {
        w_enc,
        w_dec,
        b_enc: Some(b_enc),
        b_dec,
        threshold: None,
        b_gate: None,
        b_mag: None,
        r_mag: None,
        w_skip: None,
    };
    match Sae::from_parts(
        SaeConfig::new(d_in, d_sae, Architecture::Standard),
        params,
        None,
    ) {
        Ok(s) => s,
        Err(e) => unreachable_bench(&e.to_string()),
    }
}

#[allow(clippy::panic)]
fn unreachable_bench(msg: &str) -> ! {
    panic!("benchmark setup failed: {msg}")
}

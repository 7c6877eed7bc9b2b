//! GELU in its exact (erf) form, `x·(1 + erf(x/√2))/2`: BERT's `gelu`, torch's `nn.GELU()`;
//! and in its tanh form, `x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))/2`: GPT-2's `gelu_new`,
//! Gemma's `gelu_pytorch_tanh` ([`gelu_tanh`]).
//!
//! burn's CPU backend evaluates it with libm's scalar `erff`, one call per element: a sixth of
//! all-MiniLM-L6-v2's forward pass. On host memory ([`crate::device::is_host_memory`]) [`gelu`]
//! instead evaluates erf with an odd/even rational approximation in `f64` ([`erf`]; no branch,
//! no library call, so the compiler vectorises the loop), over chunks in parallel, and rounds
//! once to `f32`. Each chunk runs under `pulp`'s runtime dispatch, so the loop is compiled for
//! AVX2 and AVX-512 too and the widest the CPU has is taken (the baseline x86-64 target only has
//! SSE2's two `f64` lanes: 3× slower). On a GPU it calls burn's `gelu` where the data is.
//!
//! Accuracy: |[`erf`] − erf| ≤ 6.5e-8 for every input (measured against libm's `f64` erf on a
//! grid of 4·10⁶ points, see the tests), below the 1.5e-7 of the Abramowitz–Stegun formula that
//! torch's vectorised CPU `erf` uses.
//!
//! The tanh form is evaluated as `x·σ(2u)` (σ the logistic function, u the tanh's argument),
//! which has no cancellation for negative x, with `exp` in `f64` ([`exp`]: a branch-free range
//! reduction and polynomial, relative error ≤ 5e-16, so it vectorises too). burn's CPU backend
//! computes it as seven tensor operations, one libm `expf` per element in the sigmoid.
//! Both run in place on a tensor no one else holds ([`map_host_values`]).

use burn::tensor::Tensor;
use rayon::prelude::*;

use crate::device::map_host_values;
#[cfg(test)]
use crate::device::{tensor_from_vec, tensor_to_vec};

/// Elements per parallel chunk.
const CHUNK: usize = 1 << 14;

/// erf(x), |error| ≤ 6.5e-8: the rational approximation `x·P(x²)/Q(x²)` on x clamped to
/// [−4, 4] (beyond which erf is ±1 to within 1.6e-8) whose coefficients Eigen and XLA use for
/// `f32`, evaluated here in `f64`. NaN gives NaN.
#[inline(always)]
pub fn erf(x: f64) -> f64 {
    const ALPHA: [f64; 7] = [
        -2.726_142_258_013_06e-10,
        2.770_681_424_959_02e-8,
        -2.101_024_020_825_08e-6,
        -5.692_506_394_623_46e-5,
        -7.349_906_303_268_55e-4,
        -2.954_599_808_540_25e-3,
        -1.609_603_332_624_15e-2,
    ];
    const BETA: [f64; 5] = [
        -1.456_607_184_649_96e-5,
        -2.133_740_552_789_05e-4,
        -1.682_826_974_382_03e-3,
        -7.373_329_167_204_68e-3,
        -1.426_473_905_141_89e-2,
    ];
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = ALPHA.iter().fold(0.0, |acc, &c| acc * x2 + c);
    let q = BETA.iter().fold(0.0, |acc, &c| acc * x2 + c);
    x * p / q
}

/// GELU of one value through [`erf`], rounded once to `f32`.
#[inline(always)]
fn gelu_one(x: f32) -> f32 {
    let x = f64::from(x);
    (0.5 * x * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2))) as f32
}

/// GELU (erf form) of every element of `x`, in place.
pub fn gelu_host(x: &mut [f32]) {
    x.par_chunks_mut(CHUNK).for_each(|c| {
        pulp::Arch::new().dispatch(|| {
            for v in c {
                *v = gelu_one(*v);
            }
        })
    });
}

/// GELU (erf form) of every element: on host memory through [`gelu_host`] (in place when the
/// tensor is not shared), elsewhere (and for dtypes other than `f32`) burn's `gelu` where the
/// data is.
///
/// # Shapes
/// - `x`: any; the result has its shape.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    map_host_values(x, gelu_host, burn::tensor::activation::gelu)
}

/// e^z, relative error ≤ 5e-16 for z in [−708, 709]; outside it saturates (e^−708 ≈ 3.3e-308
/// below, e^709 ≈ 8.2e307 above); NaN for NaN. Branch-free (the compiler vectorises a loop of it): z =
/// n·ln 2 + r with |r| ≤ ln 2 / 2, e^r by its Taylor polynomial to r¹², 2ⁿ built in the exponent
/// bits.
#[inline(always)]
pub fn exp(z: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // 1.5·2⁵²: adding it rounds to an integer kept in the low mantissa bits.
    const SHIFT: f64 = 6_755_399_441_055_744.0;
    if z.is_nan() {
        return z;
    }
    let z = z.clamp(-708.0, 709.0);
    let kd = z * std::f64::consts::LOG2_E + SHIFT;
    let n = kd - SHIFT;
    let r = (z - n * LN2_HI) - n * LN2_LO;
    // 1/k! for k = 12 down to 0.
    const C: [f64; 13] = [
        2.087_675_698_786_81e-9,
        2.505_210_838_544_172e-8,
        2.755_731_922_398_589e-7,
        2.755_731_922_398_589e-6,
        2.480_158_730_158_73e-5,
        1.984_126_984_126_984e-4,
        1.388_888_888_888_889e-3,
        8.333_333_333_333_333e-3,
        4.166_666_666_666_666_4e-2,
        1.666_666_666_666_666_6e-1,
        0.5,
        1.0,
        1.0,
    ];
    let p = C.iter().fold(0.0, |acc, &c| acc * r + c);
    // n + 1023 in [1, 2046] lands in the exponent field; the shift drops SHIFT's own bits.
    let scale = f64::from_bits(kd.to_bits().wrapping_add(1023) << 52);
    p * scale
}

/// The tanh form of GELU of one value, `x·σ(2u)`, rounded once to `f32`.
#[inline(always)]
fn gelu_tanh_one(x: f32) -> f32 {
    // 2·√(2/π).
    const TWO_C: f64 = 1.595_769_121_605_730_7;
    let x = f64::from(x);
    let two_u = TWO_C * (x + 0.044_715 * x * x * x);
    (x / (1.0 + exp(-two_u))) as f32
}

/// GELU (tanh form) of every element of `x`, in place.
pub fn gelu_tanh_host(x: &mut [f32]) {
    x.par_chunks_mut(CHUNK).for_each(|c| {
        pulp::Arch::new().dispatch(|| {
            for v in c {
                *v = gelu_tanh_one(*v);
            }
        })
    });
}

/// GELU (tanh form) of every element: GPT-2's `gelu_new`, Gemma's `gelu_pytorch_tanh`. On host
/// memory through [`gelu_tanh_host`] (in place when the tensor is not shared); elsewhere (and for
/// dtypes other than `f32`) the same `x·σ(2u)` in burn's operations where the data is.
///
/// # Shapes
/// - `x`: any; the result has its shape.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    map_host_values(x, gelu_tanh_host, gelu_tanh_ops)
}

/// [`gelu_tanh`] in burn's operations, where the data is (a GPU, or a dtype other than f32).
fn gelu_tanh_ops<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let two_c = 2.0 * (2.0f64 / std::f64::consts::PI).sqrt();
    let x3 = x.clone() * x.clone() * x.clone();
    let two_u = (x.clone() + x3.mul_scalar(0.044715)).mul_scalar(two_c);
    x * burn::tensor::activation::sigmoid(two_u)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use burn::tensor::Device;

    #[test]
    fn erf_is_within_its_bound_everywhere() {
        let mut worst = 0.0f64;
        for i in 0..=4_000_000 {
            let x = -8.0 + 16.0 * f64::from(i) / 4e6;
            worst = worst.max((erf(x) - libm::erf(x)).abs());
        }
        assert!(worst <= 6.5e-8, "max |Δ erf| = {worst:e}");
        // Odd, and exact at 0.
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(-1.5), -erf(1.5));
        assert!(erf(f64::NAN).is_nan());
        assert!((erf(f64::INFINITY) - 1.0).abs() <= 6.5e-8);
        assert!((erf(f64::NEG_INFINITY) + 1.0).abs() <= 6.5e-8);
    }

    #[test]
    fn exp_is_within_its_bound_everywhere() {
        let mut worst = 0.0f64;
        for i in 0..=2_000_000 {
            let z = -700.0 + 1400.0 * f64::from(i) / 2e6;
            let want = z.exp();
            worst = worst.max(((exp(z) - want) / want).abs());
        }
        for i in 0..=200_000 {
            let z = -1.0 + 2.0 * f64::from(i) / 2e5;
            let want = z.exp();
            worst = worst.max(((exp(z) - want) / want).abs());
        }
        assert!(worst <= 5e-16, "max relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-1e4), exp(-708.0));
        assert_eq!(exp(f64::NEG_INFINITY), exp(-708.0));
        assert!(exp(f64::INFINITY) > 8e307);
        assert!(exp(f64::NAN).is_nan());
    }

    #[test]
    fn gelu_tanh_matches_the_f64_formula_and_burns_ops() {
        let dev = Device::default();
        let xs: Vec<f32> = (0..40_001)
            .map(|i| -20.0 + 40.0 * i as f32 / 40_000.0)
            .chain([
                0.0,
                -0.0,
                1e-30,
                -1e-30,
                1e38,
                -1e38,
                -300.0,
                f32::MIN_POSITIVE,
            ])
            .collect();
        let n = xs.len();
        let ours = tensor_to_vec(gelu_tanh(tensor_from_vec(xs.clone(), [n], &dev))).unwrap();
        // burn's operations: the path a GPU takes.
        let burns = tensor_to_vec(gelu_tanh_ops(tensor_from_vec(xs.clone(), [n], &dev))).unwrap();
        for ((x, a), b) in xs.iter().zip(&ours).zip(&burns) {
            let x64 = f64::from(*x);
            let u = (2.0 / std::f64::consts::PI).sqrt() * (x64 + 0.044715 * x64.powi(3));
            let exact = 0.5 * x64 * (1.0 + libm::tanh(u));
            let exact = if exact.is_finite() { exact } else { 0.0 };
            // One rounding to f32 (and libm's tanh near -1, which cancels: 1e-16 · |x|).
            let bound = 0.5 * f64::from(f32::EPSILON) * exact.abs() + 1e-16 * x64.abs() + 1e-45;
            assert!(
                (f64::from(*a) - exact).abs() <= bound,
                "gelu_tanh({x}) = {a}, exact {exact}"
            );
            assert!(
                (a - b).abs() <= 1e-6 + 1e-6 * b.abs(),
                "gelu_tanh({x}): {a} vs burn's {b}"
            );
        }
        let mut special = [f32::NAN, f32::INFINITY];
        gelu_tanh_host(&mut special);
        assert!(special[0].is_nan());
        assert_eq!(special[1], f32::INFINITY);
    }

    #[test]
    fn gelu_matches_burns_and_the_f64_formula() {
        let dev = Device::default();
        let xs: Vec<f32> = (0..20_001)
            .map(|i| -12.0 + 24.0 * i as f32 / 20_000.0)
            .chain([0.0, -0.0, 1e-30, -1e-30, 1e38, f32::MIN_POSITIVE])
            .collect();
        let n = xs.len();
        let ours = tensor_to_vec(gelu(tensor_from_vec(xs.clone(), [n], &dev))).unwrap();
        let burns = tensor_to_vec(burn::tensor::activation::gelu(tensor_from_vec(
            xs.clone(),
            [n],
            &dev,
        )))
        .unwrap();
        for ((x, a), b) in xs.iter().zip(&ours).zip(&burns) {
            let x64 = f64::from(*x);
            let exact = 0.5 * x64 * (1.0 + libm::erf(x64 / std::f64::consts::SQRT_2));
            // 6.5e-8 of erf scaled by |x|/2, plus one rounding to f32.
            let bound = 0.5 * x64.abs() * 6.6e-8 + f64::from(f32::EPSILON) * exact.abs();
            assert!(
                (f64::from(*a) - exact).abs() <= bound,
                "gelu({x}) = {a}, exact {exact}"
            );
            assert!(
                (a - b).abs() <= 5e-7 + 2e-7 * b.abs(),
                "gelu({x}): {a} vs burn's {b}"
            );
        }
        let mut special = [f32::NAN, f32::INFINITY];
        gelu_host(&mut special);
        assert!(special[0].is_nan());
        assert_eq!(special[1], f32::INFINITY);
    }
}

//! sae-geometry's patch to cubek-matmul 0.3.1: TF32 as an explicit opt-in.
//!
//! Upstream promotes every f32 matmul that an accelerated (tensor-core) tile matmul can run to
//! TF32 (10-bit mantissa inputs). That is PyTorch's `allow_tf32 = True`; sae-geometry's default
//! is exact f32, like PyTorch's `torch.backends.cuda.matmul.allow_tf32 = False`. The switch is
//! process-wide because the kernel selectors read it where they choose register types.

use core::sync::atomic::{AtomicBool, Ordering};

static ALLOW_TF32: AtomicBool = AtomicBool::new(false);

/// Allows (or forbids) TF32 tensor cores for f32 matmuls from now on. Kernels already chosen by
/// the autotuner keep their choice: set this before the first matmul.
pub fn set_allow_tf32(allow: bool) {
    ALLOW_TF32.store(allow, Ordering::SeqCst);
}

/// Whether f32 matmuls may run on TF32 tensor cores (default `false`).
pub fn allow_tf32() -> bool {
    ALLOW_TF32.load(Ordering::Relaxed)
}

//! The logit lens against a brute-force host computation.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use latent_geometry::{LogitLensConfig, logit_lens};
use sae_core::device::{cpu, tensor_from_vec};

#[test]
fn top_and_bottom_tokens_equal_brute_force() {
    let (d_sae, d, vocab) = (37, 16, 300);
    let mut s = 9u64;
    let mut rnd = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    };
    let w_dec = rnd(d_sae * d);
    let w_u = rnd(d * vocab);
    let dev = cpu();
    let res = logit_lens(
        &tensor_from_vec(w_dec.clone(), [d_sae, d], &dev),
        &tensor_from_vec(w_u.clone(), [d, vocab], &dev),
        None,
        LogitLensConfig { k: 5, batch: 8 },
    )
    .unwrap();
    assert_eq!(res.len(), d_sae);
    for r in &res {
        let l = r.latent;
        let mut logits: Vec<(f32, u32)> = (0..vocab)
            .map(|v| {
                (
                    (0..d)
                        .map(|i| w_dec[l * d + i] * w_u[i * vocab + v])
                        .sum::<f32>(),
                    v as u32,
                )
            })
            .collect();
        logits.sort_by(|a, b| b.0.total_cmp(&a.0));
        let top: Vec<u32> = logits[..5].iter().map(|x| x.1).collect();
        let bottom: Vec<u32> = logits.iter().rev().take(5).map(|x| x.1).collect();
        assert_eq!(r.top_ids, top, "latent {l}");
        assert_eq!(r.bottom_ids, bottom, "latent {l}");
        for (got, want) in r.top_values.iter().zip(&logits[..5]) {
            assert!((got - want.0).abs() < 1e-5);
        }
        assert!(r.bottom_values.windows(2).all(|w| w[0] <= w[1]));
    }
    // A subset of latents, and bad inputs.
    let some = logit_lens(
        &tensor_from_vec(w_dec.clone(), [d_sae, d], &dev),
        &tensor_from_vec(w_u.clone(), [d, vocab], &dev),
        Some(&[3, 30]),
        LogitLensConfig::default(),
    )
    .unwrap();
    assert_eq!(
        some.iter().map(|r| r.latent).collect::<Vec<_>>(),
        vec![3, 30]
    );
    assert_eq!(some[0].top_ids[..5], res[3].top_ids[..]);
    assert!(
        logit_lens(
            &tensor_from_vec(w_dec.clone(), [d_sae, d], &dev),
            &tensor_from_vec(w_u.clone(), [d, vocab], &dev),
            Some(&[37]),
            LogitLensConfig::default()
        )
        .is_err()
    );
    assert!(
        logit_lens(
            &tensor_from_vec(w_dec, [d_sae, d], &dev),
            &tensor_from_vec(rnd(8 * vocab), [8, vocab], &dev),
            None,
            LogitLensConfig::default()
        )
        .is_err()
    );
}

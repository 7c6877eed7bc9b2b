//! Co-firing statistics equal a brute-force computation and merge exactly across shards.
#![allow(clippy::unwrap_used)]

use activation_store::CoFiring;
use proptest::prelude::*;

/// Sparse non-negative activations: `[t, w]`, about a third of entries firing.
fn acts(t: usize, w: usize) -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(
        prop_oneof![2 => Just(0.0f32), 1 => 0.001f32..20.0f32],
        t * w,
    )
}

/// Jaccard and Pearson correlation of columns `i` of `a` and `j` of `b` in f64, token by token.
fn brute(a: &[f32], n: usize, b: &[f32], m: usize, i: usize, j: usize) -> (u64, f64, f64) {
    let t = a.len() / n;
    let (mut both, mut union) = (0u64, 0u64);
    let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for r in 0..t {
        let (x, y) = (f64::from(a[r * n + i]), f64::from(b[r * m + j]));
        both += u64::from(x > 0.0 && y > 0.0);
        union += u64::from(x > 0.0 || y > 0.0);
        sa += x;
        sb += y;
        saa += x * x;
        sbb += y * y;
        sab += x * y;
    }
    let nt = t as f64;
    let (va, vb) = (nt * saa - sa * sa, nt * sbb - sb * sb);
    let corr = if va > 0.0 && vb > 0.0 {
        (nt * sab - sa * sb) / (va.sqrt() * vb.sqrt())
    } else {
        0.0
    };
    let jac = if union == 0 {
        0.0
    } else {
        both as f64 / union as f64
    };
    (both, jac, corr)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn equals_brute_force_and_merges_exactly(
        (t, n, m, a, b) in (1usize..40, 1usize..6, 1usize..9)
            .prop_flat_map(|(t, n, m)| (Just(t), Just(n), Just(m), acts(t, n), acts(t, m))),
        cuts in proptest::collection::vec(0usize..40, 0..4),
    ) {
        let mut whole = CoFiring::new(n, m);
        whole.update(&a, &b).unwrap();
        prop_assert_eq!(whole.n_tokens, t as u64);
        for i in 0..n {
            let listed = whole.cofiring_with(i);
            for j in 0..m {
                let s = whole.score(i, j).unwrap();
                let (both, jac, corr) = brute(&a, n, &b, m, i, j);
                prop_assert_eq!(s.both, both);
                prop_assert!((s.jaccard - jac).abs() < 1e-12, "jaccard {} vs {}", s.jaccard, jac);
                prop_assert!((s.correlation - corr).abs() < 1e-9, "corr {} vs {}", s.correlation, corr);
                prop_assert_eq!(listed.iter().any(|x| x.wide == j), both > 0);
            }
            prop_assert!(listed.windows(2).all(|w| w[0].jaccard >= w[1].jaccard));
        }

        // Any partition of the tokens, merged in any order, gives the same bits.
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (t + 1)).collect();
        cuts.push(0);
        cuts.push(t);
        cuts.sort_unstable();
        cuts.dedup();
        let mut parts: Vec<CoFiring> = cuts
            .windows(2)
            .map(|w| {
                let mut c = CoFiring::new(n, m);
                c.update(&a[w[0] * n..w[1] * n], &b[w[0] * m..w[1] * m]).unwrap();
                c
            })
            .collect();
        parts.reverse();
        let mut merged = CoFiring::new(n, m);
        for p in &parts {
            merged.merge(p).unwrap();
        }
        prop_assert_eq!(&merged, &whole);
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let mut c = CoFiring::new(2, 3);
    // 2 narrow rows but 3 wide values: not the same tokens.
    let e = c
        .update(&[1.0, 0.0, 0.0, 2.0], &[1.0, 0.0, 0.0])
        .unwrap_err();
    assert!(e.to_string().contains("wide SAE activations"), "{e}");
    let e = c.update(&[1.0, -0.5], &[1.0, 0.0, 0.0]).unwrap_err();
    assert!(e.to_string().contains("non-negative"), "{e}");
    assert!(c.score(2, 0).is_err());
    let e = c.merge(&CoFiring::new(2, 4)).unwrap_err();
    assert!(e.to_string().contains("merge"), "{e}");
}

#[test]
fn saves_and_loads() {
    let mut c = CoFiring::new(2, 3);
    c.update(&[1.0, 0.0, 0.5, 2.0], &[1.0, 0.0, 3.0, 0.0, 0.25, 1.0])
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cofiring.json");
    c.save(&p).unwrap();
    assert_eq!(CoFiring::load(&p).unwrap(), c);
    // The file's format, pinned (files written by earlier versions must still load): per narrow
    // latent a map from wide latent to {both, Σ a·b in units of 2⁻⁴⁸}, by increasing wide latent.
    let text = std::fs::read_to_string(&p).unwrap();
    let pairs = concat!(
        r#""pairs":[{"0":{"both":1,"sum_prod":"281474976710656"},"#,
        r#""1":{"both":1,"sum_prod":"35184372088832"},"#,
        r#""2":{"both":2,"sum_prod":"985162418487296"}},"#,
        r#"{"1":{"both":1,"sum_prod":"140737488355328"},"#,
        r#""2":{"both":1,"sum_prod":"562949953421312"}}]"#
    );
    assert!(text.contains(pairs), "{text}");
    // Identical firing: Jaccard 1, correlation 1.
    let mut d = CoFiring::new(1, 1);
    d.update(&[1.0, 0.0, 2.0], &[2.0, 0.0, 4.0]).unwrap();
    let s = d.score(0, 0).unwrap();
    assert_eq!(s.jaccard, 1.0);
    assert!((s.correlation - 1.0).abs() < 1e-12);
}

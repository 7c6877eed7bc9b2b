//! Logit-lens moments and token-set enrichment against numpy/scipy
//! (`fixtures/logit_enrichment/gen_fixtures.py`).
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use latent_geometry::logit_enrichment::{
    TokenSet, enrichment, hypergeom_sf, logit_enrichment, moments, normal_sf,
};
use sae_core::device::{cpu, tensor_from_vec};

#[derive(serde::Deserialize)]
struct En {
    set: String,
    set_size: usize,
    hits: usize,
    hypergeom_p: f64,
    mann_whitney_u: f64,
    mann_whitney_p: f64,
}

#[derive(serde::Deserialize)]
struct Row {
    weights: Vec<f32>,
    mean: f64,
    variance: f64,
    skewness: f64,
    kurtosis: f64,
    enrichment: Vec<En>,
}

#[derive(serde::Deserialize)]
struct Reference {
    k: usize,
    tokens: Vec<String>,
    sets: Vec<String>,
    w_dec: Vec<Vec<f32>>,
    w_u: Vec<Vec<f32>>,
    rows: Vec<Row>,
}

fn reference() -> Reference {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/logit_enrichment/reference.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn set_of(name: &str) -> TokenSet {
    match name {
        "leading_space" => TokenSet::LeadingSpace,
        "capitalised" => TokenSet::Capitalised,
        "digits" => TokenSet::Digits,
        "single_character" => TokenSet::SingleCharacter,
        n => TokenSet::StartsWith(n.chars().last().unwrap()),
    }
}

fn close(a: f64, b: f64, rel: f64, what: &str) {
    assert!(
        (a - b).abs() <= rel * b.abs().max(1e-300) + 1e-12,
        "{what}: {a} vs scipy {b}"
    );
}

#[test]
fn moments_and_enrichment_equal_scipy() {
    let r = reference();
    let sets: Vec<(String, Vec<bool>)> = r
        .sets
        .iter()
        .map(|n| {
            let s = set_of(n);
            assert_eq!(s.name(), *n);
            (n.clone(), r.tokens.iter().map(|t| s.contains(t)).collect())
        })
        .collect();
    for (i, row) in r.rows.iter().enumerate() {
        let (mean, var, skew, kurt) = moments(&row.weights);
        close(mean, row.mean, 1e-9, "mean");
        close(var, row.variance, 1e-9, "variance");
        close(skew, row.skewness, 1e-7, "skewness");
        close(kurt, row.kurtosis, 1e-7, "kurtosis");
        let got = enrichment(&row.weights, &sets, r.k).unwrap();
        for (g, e) in got.iter().zip(&row.enrichment) {
            assert_eq!(
                (g.set.as_str(), g.set_size, g.hits),
                (e.set.as_str(), e.set_size, e.hits),
                "row {i}"
            );
            close(g.hypergeom_p, e.hypergeom_p, 1e-9, "hypergeom p");
            close(g.mann_whitney_u, e.mann_whitney_u, 1e-12, "U");
            close(g.mann_whitney_p, e.mann_whitney_p, 1e-12, "Mann-Whitney p");
        }
    }
    // Through the batched tensor path: W_dec · W_U computed here.
    let d = r.w_u.len();
    let w_dec = tensor_from_vec(r.w_dec.concat(), [r.w_dec.len(), d], &cpu());
    let w_u = tensor_from_vec(r.w_u.concat(), [d, r.tokens.len()], &cpu());
    let all = logit_enrichment(&w_dec, &w_u, &[0, 1, 2, 3, 4, 5], &sets, r.k, 4).unwrap();
    for (i, (st, en)) in all.iter().enumerate() {
        assert_eq!(st.latent, i);
        close(
            st.skewness,
            r.rows[i].skewness,
            1e-4,
            "skewness (recomputed product)",
        );
        close(
            st.kurtosis,
            r.rows[i].kurtosis,
            1e-4,
            "kurtosis (recomputed product)",
        );
        assert_eq!(en[0].hits, r.rows[i].enrichment[0].hits);
    }
}

#[test]
fn distributions_at_known_points() {
    close(normal_sf(0.0), 0.5, 1e-15, "sf(0)");
    close(normal_sf(1.959_963_984_540_054), 0.025, 1e-14, "sf(1.96)");
    close(normal_sf(-3.0), 0.998_650_101_968_369_9, 1e-15, "sf(-3)");
    // scipy.stats.norm.sf(10), (30), (37): the far tail keeps its relative precision.
    close(normal_sf(10.0), 7.619_853_024_160_47e-24, 1e-13, "sf(10)");
    close(normal_sf(30.0), 4.906_713_927_147_908e-198, 1e-13, "sf(30)");
    close(
        normal_sf(37.0),
        5.725_571_222_523_926_6e-300,
        1e-13,
        "sf(37)",
    );
    // Drawing all successes: P[X ≥ n] = C(M−n, N−n)/C(M, N).
    close(
        hypergeom_sf(2, 10, 2, 3),
        3.0 / 45.0 * 3.0 / 3.0 * 1.0 / 1.0 * (8.0 / 8.0),
        1e-12,
        "hypergeom",
    );
    assert_eq!(hypergeom_sf(0, 10, 2, 3), 1.0);
    assert_eq!(hypergeom_sf(3, 10, 2, 3), 0.0);
}

#[test]
fn bad_inputs_are_typed_errors() {
    let sets = vec![("x".to_string(), vec![true, false])];
    assert!(enrichment(&[1.0, 2.0, 3.0], &sets, 1).is_err());
    assert!(enrichment(&[1.0, 2.0], &sets, 0).is_err());
}

proptest::proptest! {
    /// Against the definitions, on few distinct values (ties common, −0 beside +0): U counts
    /// the (member, other) pairs where the member is larger, a tie counting ½; the hits come
    /// from the k largest by `total_cmp`, ties to the lower token id.
    #[test]
    fn u_and_hits_equal_their_definitions(
        levels in proptest::collection::vec(0usize..6, 2..60),
        member_bits in proptest::collection::vec(proptest::bool::ANY, 60),
        k_frac in 0.0f64..1.0,
    ) {
        let palette = [-1.5f32, -0.0, 0.0, 0.25, 0.25 + f32::EPSILON, 2.0];
        let w: Vec<f32> = levels.iter().map(|&l| palette[l]).collect();
        let n = w.len();
        let m: Vec<bool> = member_bits[..n].to_vec();
        let k = 1 + ((n - 1) as f64 * k_frac) as usize;
        let got = enrichment(&w, &[("s".to_string(), m.clone())], k).unwrap();
        let mut u = 0.0;
        for i in (0..n).filter(|&i| m[i]) {
            for j in (0..n).filter(|&j| !m[j]) {
                u += if w[i] > w[j] { 1.0 } else if w[i] == w[j] { 0.5 } else { 0.0 };
            }
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| w[b].total_cmp(&w[a]).then(a.cmp(&b)));
        let hits = order[..k].iter().filter(|&&t| m[t]).count();
        let n1 = m.iter().filter(|x| **x).count();
        proptest::prop_assert_eq!(got[0].hits, hits);
        proptest::prop_assert_eq!(got[0].set_size, n1);
        if n1 > 0 && n1 < n {
            proptest::prop_assert_eq!(got[0].mann_whitney_u, u);
        }
    }
}

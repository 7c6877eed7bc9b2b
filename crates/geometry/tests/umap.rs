//! UMAP against umap-learn 0.5.12 (fixtures/umap/gen_fixtures.py): the fuzzy graph equals
//! umap-learn's; embeddings are as trustworthy as umap-learn's; the seeded mode is
//! bit-identical across runs; NN-descent finds the exact neighbours.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use latent_geometry::umap::graph::fuzzy_simplicial_set;
use latent_geometry::umap::knn::knn_graph;
use latent_geometry::umap::{KnnMethod, Metric, Umap, UmapConfig, trustworthiness};
use sae_core::npy::{read_f32, read_i64};

fn fx(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/umap")
        .join(name)
}

fn points() -> (Vec<f32>, usize) {
    let p = read_f32(fx("points.npy")).unwrap();
    (p.data, p.shape[1])
}

fn reference() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fx("reference.json")).unwrap()).unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn fuzzy_graph_equals_umap_learn() {
    let (x, d) = points();
    let knn = knn_graph(&x, d, 15, Metric::Cosine, KnnMethod::Exact, 0).unwrap();
    let g = fuzzy_simplicial_set(&knn, 1.0, 1.0);
    let rows = read_i64(fx("graph_rows.npy")).unwrap();
    let cols = read_i64(fx("graph_cols.npy")).unwrap();
    let vals = read_f32(fx("graph_vals.npy")).unwrap().data;
    let mut theirs = std::collections::HashMap::new();
    for ((r, c), v) in rows.iter().zip(&cols).zip(&vals) {
        theirs.insert((*r as usize, *c as usize), *v);
    }
    let mut matched = 0;
    let mut max_diff = 0f32;
    for i in 0..g.n() {
        let (c, v) = g.row(i);
        for (&j, &w) in c.iter().zip(v) {
            if let Some(t) = theirs.get(&(i, j as usize)) {
                matched += 1;
                max_diff = max_diff.max((t - w).abs());
            }
        }
    }
    assert_eq!(
        matched,
        theirs.len(),
        "entries of umap-learn's graph found in ours"
    );
    assert_eq!(g.nnz(), theirs.len(), "ours has extra entries");
    assert!(max_diff < 1e-4, "max |Δ| {max_diff}");
}

fn embed(dim: usize, seed: Option<u64>, knn: KnnMethod) -> Vec<f32> {
    let (x, d) = points();
    let cfg = UmapConfig {
        n_components: dim,
        metric: Metric::Cosine,
        random_state: seed,
        knn,
        ..UmapConfig::default()
    };
    Umap::new(cfg).fit(&x, d).unwrap().embedding
}

#[test]
fn as_trustworthy_as_umap_learn() {
    let (x, d) = points();
    let r = reference();
    for dim in [2usize, 10] {
        let theirs = median(
            r[format!("trustworthiness_{dim}d")]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect(),
        );
        let ours = median(
            (0..3u64)
                .map(|s| {
                    trustworthiness(
                        &x,
                        d,
                        &embed(dim, Some(s), KnnMethod::Auto),
                        dim,
                        15,
                        Metric::Cosine,
                    )
                })
                .collect(),
        );
        eprintln!("{dim}-D trustworthiness: ours {ours:.4}, umap-learn {theirs:.4}");
        assert!(
            ours >= theirs - 0.01,
            "{dim}-D: ours {ours}, umap-learn {theirs}"
        );
        let parallel = trustworthiness(
            &x,
            d,
            &embed(dim, None, KnnMethod::Auto),
            dim,
            15,
            Metric::Cosine,
        );
        assert!(
            parallel >= theirs - 0.015,
            "{dim}-D parallel: {parallel} vs {theirs}"
        );
    }
}

#[test]
fn seeded_mode_is_bit_identical() {
    let a = embed(2, Some(7), KnnMethod::NnDescent);
    let b = embed(2, Some(7), KnnMethod::NnDescent);
    assert_eq!(
        a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    let c = embed(2, Some(8), KnnMethod::NnDescent);
    assert_ne!(a, c);
}

#[test]
fn nn_descent_finds_the_exact_neighbours() {
    let (x, d) = points();
    let exact = knn_graph(&x, d, 15, Metric::Cosine, KnnMethod::Exact, 0).unwrap();
    let approx = knn_graph(&x, d, 15, Metric::Cosine, KnnMethod::NnDescent, 3).unwrap();
    let mut hit = 0;
    for i in 0..exact.n {
        let a: std::collections::HashSet<u32> = exact.indices[i * 15..(i + 1) * 15]
            .iter()
            .copied()
            .collect();
        hit += approx.indices[i * 15..(i + 1) * 15]
            .iter()
            .filter(|j| a.contains(j))
            .count();
        assert_eq!(approx.indices[i * 15], i as u32, "self first");
    }
    let recall = hit as f64 / (exact.n * 15) as f64;
    assert!(recall > 0.97, "recall {recall}");
}

#[test]
fn bad_input_is_an_error() {
    let cfg = UmapConfig::default();
    assert!(Umap::new(cfg).fit(&[1.0, 2.0, 3.0], 2).is_err());
    assert!(Umap::new(cfg).fit(&[f32::NAN; 40], 2).is_err());
    assert!(
        Umap::new(UmapConfig {
            n_components: 0,
            ..cfg
        })
        .fit(&[0.0; 40], 2)
        .is_err()
    );
}

//! `compute_sae_umap_data`: the tutorial's function from SAEs and an unembedding — top boosted
//! tokens by the logit lens, descriptions joined by index, the study's rows and families — and
//! its typed errors.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;

use latent_geometry::{
    GeometryError, LogitLensConfig, SplittingConfig, SplittingSae, compute_sae_umap_data,
};
use sae_core::config::{Architecture, SaeConfig};
use sae_core::device::{cpu, tensor_from_vec};
use sae_core::{HostTensor, Sae};

const D: usize = 16;

/// Seeded unit rows.
fn rows(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let mut out = Vec::with_capacity(n * d);
    for _ in 0..n {
        let v: Vec<f32> = (0..d)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        out.extend(v.iter().map(|x| x / norm));
    }
    out
}

fn sae(d_in: usize, w_dec: Vec<f32>) -> Sae {
    let d_sae = w_dec.len() / d_in;
    let cfg = SaeConfig::new(d_in, d_sae, Architecture::Standard);
    let mut t = BTreeMap::new();
    t.insert(
        "W_enc".to_string(),
        HostTensor::new(vec![d_in, d_sae], vec![0.0; d_in * d_sae]),
    );
    t.insert(
        "W_dec".to_string(),
        HostTensor::new(vec![d_sae, d_in], w_dec),
    );
    t.insert(
        "b_enc".to_string(),
        HostTensor::new(vec![d_sae], vec![0.0; d_sae]),
    );
    t.insert(
        "b_dec".to_string(),
        HostTensor::new(vec![d_in], vec![0.0; d_in]),
    );
    Sae::from_host_tensors(cfg, t, Path::new("test"), &cpu())
        .unwrap()
        .0
}

/// `W_U` whose column j is the narrow SAE's decoder row j: each narrow latent boosts its own
/// index most (cosine 1 against at most < 1 for the others).
fn unembed(narrow: &[f32], vocab: usize) -> sae_core::burn::tensor::Tensor<2> {
    let mut w_u = vec![0.0f32; D * vocab];
    for j in 0..vocab {
        for i in 0..D {
            w_u[i * vocab + j] = narrow[j * D + i];
        }
    }
    tensor_from_vec(w_u, [D, vocab], &cpu())
}

fn tokens(ids: &[u32]) -> Result<Vec<String>, std::io::Error> {
    Ok(ids.iter().map(|i| format!("t{i}")).collect())
}

#[test]
fn rows_carry_top_tokens_and_descriptions_by_index() {
    let narrow = rows(24, D, 1);
    let wide = rows(48, D, 2);
    let (a, b) = (sae(D, narrow.clone()), sae(D, wide));
    let w_u = unembed(&narrow, 24);
    let desc: Vec<String> = (0..24).map(|i| format!("latent {i}")).collect();
    let cfg = SplittingConfig {
        random_state: Some(0),
        ..SplittingConfig::default()
    };
    let lens = LogitLensConfig { k: 3, batch: 7 };
    let r = compute_sae_umap_data(
        &[
            SplittingSae {
                sae: &a,
                descriptions: Some(&desc),
            },
            SplittingSae {
                sae: &b,
                descriptions: None,
            },
        ],
        &w_u,
        tokens,
        lens,
        &cfg,
    )
    .unwrap();
    assert_eq!(r.rows.len(), 72);
    for (i, row) in r.rows[..24].iter().enumerate() {
        assert_eq!((row.sae_width, row.latent_idx), (24, i));
        assert_eq!(row.description, format!("latent {i}"));
        // Three tokens, quoted as the tutorial shows them, its own index first.
        let toks: Vec<&str> = row.top_token_strs.split(", ").collect();
        assert_eq!(toks.len(), 3, "{}", row.top_token_strs);
        assert_eq!(toks[0], format!("\"t{i}\""));
    }
    assert!(
        r.rows[24..]
            .iter()
            .all(|r| r.description.is_empty() && r.sae_width == 48)
    );
    // Families: every narrow latent matched against the wider SAE.
    assert_eq!(r.families.len(), 24);
    let s = r.summary();
    assert_eq!((s.rows, s.described, s.families), (72, 24, 24));
    assert_eq!(s.rows_per_width, BTreeMap::from([(24, 24), (48, 48)]));
    assert!(s.embedding_finite && !s.clustered);
}

#[test]
fn bad_inputs_are_typed_errors() {
    let narrow = rows(8, D, 3);
    let a = sae(D, narrow.clone());
    let w_u = unembed(&narrow, 8);
    let cfg = SplittingConfig::default();
    let lens = LogitLensConfig { k: 2, batch: 4 };
    let one = |s: SplittingSae<'_>| compute_sae_umap_data(&[s], &w_u, tokens, lens, &cfg);
    // Descriptions of the wrong length.
    let short = vec![String::new(); 5];
    let e = one(SplittingSae {
        sae: &a,
        descriptions: Some(&short),
    })
    .unwrap_err();
    assert!(
        matches!(&e, GeometryError::InvalidInput { message, .. } if message.contains("5 descriptions for 8 latents")),
        "{e}"
    );
    // No SAE.
    let e = compute_sae_umap_data(&[], &w_u, tokens, lens, &cfg).unwrap_err();
    assert!(matches!(e, GeometryError::InvalidInput { .. }), "{e}");
    // SAEs on different residual widths.
    let other = sae(D / 2, rows(8, D / 2, 4));
    let e = compute_sae_umap_data(
        &[
            SplittingSae {
                sae: &a,
                descriptions: None,
            },
            SplittingSae {
                sae: &other,
                descriptions: None,
            },
        ],
        &w_u,
        tokens,
        lens,
        &cfg,
    )
    .unwrap_err();
    assert!(
        matches!(&e, GeometryError::InvalidInput { what, .. } if what == "saes[1]"),
        "{e}"
    );
    // The tokenizer fails: the error says whose tokens.
    let e = compute_sae_umap_data(
        &[SplittingSae {
            sae: &a,
            descriptions: None,
        }],
        &w_u,
        |_: &[u32]| Err::<Vec<String>, _>(std::io::Error::other("no such token")),
        lens,
        &cfg,
    )
    .unwrap_err();
    assert!(
        matches!(&e, GeometryError::Tokens { what, .. } if what.contains("saes[0] (width 8)")),
        "{e}"
    );
    assert!(e.to_string().contains("no such token"), "{e}");
}

//! Across crates: a model's residual stream at an SAE's hook, encoded by the SAE — the path every
//! analysis takes.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;

use sae_geometry::core::device::{cpu, int_tensor_from_vec, tensor_to_vec};
use sae_geometry::core::safetensors_io::HostTensor;
use sae_geometry::core::{Architecture, Sae, SaeConfig};
use sae_geometry::models::{CacheFilter, Gpt2, HookPoint, LanguageModel, Processing};

#[test]
fn resid_pre_from_the_model_encodes_through_an_sae_at_its_hook() {
    let root = sae_geometry_tests::workspace_root();
    let model = Gpt2::load(
        root.join("crates/models/tests/fixtures/gpt2-tiny/model"),
        Processing::TransformerLens,
        &cpu(),
    )
    .unwrap();
    // An SAE configured for blocks.1.hook_resid_pre of this 64-wide model.
    let mut cfg = SaeConfig::new(64, 96, Architecture::TopK);
    cfg.k = Some(4);
    cfg.metadata.hook_name = Some("blocks.1.hook_resid_pre".into());
    let mut m = BTreeMap::new();
    let mut s = 1u64;
    let mut rnd = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    };
    m.insert(
        "W_enc".to_string(),
        HostTensor::new(vec![64, 96], rnd(64 * 96)),
    );
    m.insert(
        "W_dec".to_string(),
        HostTensor::new(vec![96, 64], rnd(96 * 64)),
    );
    m.insert("b_enc".to_string(), HostTensor::new(vec![96], rnd(96)));
    m.insert("b_dec".to_string(), HostTensor::new(vec![64], rnd(64)));
    let (sae, _) = Sae::from_host_tensors(cfg, m, Path::new("<test>"), &cpu()).unwrap();

    let hook: HookPoint = sae.config().hook_name().unwrap().parse().unwrap();
    let layer = sae.config().hook_layer().unwrap();
    let tokens = int_tensor_from_vec(vec![1i64, 5, 9, 13, 200, 7], [2, 3], &cpu());
    let (logits, cache) = model
        .run_with_cache(tokens, CacheFilter::Only(vec![hook]), Some(layer + 1))
        .unwrap();
    assert!(
        logits.is_none(),
        "stop_at_layer = layer + 1, as the activation store does"
    );
    let acts = cache.get3(hook).unwrap();
    let [b, t, d] = acts.dims();
    let feats = sae.encode(acts.reshape([b * t, d])).unwrap();
    assert_eq!(feats.dims(), [6, 96]);
    let f = tensor_to_vec(feats).unwrap();
    for row in f.chunks(96) {
        let active = row.iter().filter(|v| **v > 0.0).count();
        assert!(active <= 4);
    }
    assert!(f.iter().any(|v| *v > 0.0));
}

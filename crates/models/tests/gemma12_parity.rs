//! Gemma 1 and Gemma 2 code paths against transformers on tiny random models
//! (`fixtures/gemma12-tiny/gen_fixtures.py`): Gemma 2's soft-capping and sliding window included;
//! sharded checkpoints and missing tensors.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

mod common;

use common::max_diff;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gpt2_gemma_models::LanguageModel;
use gpt2_gemma_models::{
    CacheFilter, Gemma, GemmaVariant, GenerateConfig, HookPoint, Hooks, ModelError, generate,
};
use sae_core::StorageDtype;
use sae_core::device::{from_env, int_tensor_from_vec, tensor_to_vec};
use sae_core::safetensors_io::{SafetensorsFile, write_safetensors};

fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gemma12-tiny")
        .join(name)
}

fn check(model_dir: &Path, io_name: &str, variant: GemmaVariant) {
    let io = SafetensorsFile::open(dir(io_name).join("io.safetensors"))
        .unwrap()
        .read_all()
        .unwrap();
    let model = Gemma::load(model_dir, &from_env().unwrap()).unwrap();
    assert_eq!(model.variant(), variant);
    let ids: Vec<i64> = io["tokens"].data.iter().map(|v| *v as i64).collect();
    let tokens = int_tensor_from_vec(ids, [2, 12], &from_env().unwrap());
    let (logits, cache) = model
        .run_with_cache(
            tokens,
            CacheFilter::Only((0..4).map(HookPoint::ResidPre).collect()),
            None,
        )
        .unwrap();
    let d = max_diff(&tensor_to_vec(logits.unwrap()).unwrap(), &io["logits"].data);
    assert!(d <= 1e-4, "{variant:?}: logits differ by {d}");
    for l in 0..4 {
        let ours = tensor_to_vec(cache.get3(HookPoint::ResidPre(l)).unwrap()).unwrap();
        let d = max_diff(&ours, &io[&format!("hidden.{l}")].data);
        assert!(d <= 1e-4, "{variant:?}: hidden_states[{l}] differs by {d}");
    }
}

fn greedy(name: &str) {
    let g: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir(name).join("greedy.json")).unwrap())
            .unwrap();
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let model = Gemma::load(dir(name), &from_env().unwrap()).unwrap();
    let want = ids(&g["continuation"]);
    let got = generate(
        &model,
        &[ids(&g["prompt"])],
        &GenerateConfig::greedy(want.len(), None),
        &mut Hooks::new(),
    )
    .unwrap();
    assert_eq!(got[0], want, "{name}");
}

#[test]
fn gemma1_matches_transformers() {
    check(&dir("gemma1"), "gemma1", GemmaVariant::Gemma1);
    greedy("gemma1");
}

#[test]
fn gemma2_softcapping_and_sliding_window_match_transformers() {
    let model = Gemma::load(dir("gemma2"), &from_env().unwrap()).unwrap();
    assert_eq!(model.config().attn_logit_softcapping, Some(2.0));
    assert_eq!(model.config().final_logit_softcapping, Some(3.0));
    let sliding: Vec<bool> = model.layer_attention().iter().map(|l| l.sliding).collect();
    assert_eq!(sliding, vec![true, false, true, false]);
    check(&dir("gemma2"), "gemma2", GemmaVariant::Gemma2);
    greedy("gemma2");
}

#[test]
fn sharded_checkpoints_load_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir("gemma2").join("config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();
    let all = SafetensorsFile::open(dir("gemma2").join("model.safetensors"))
        .unwrap()
        .read_all()
        .unwrap();
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    let mut weight_map = serde_json::Map::new();
    for (i, (k, t)) in all.into_iter().enumerate() {
        let shard = if i % 2 == 0 {
            "model-00001-of-00002.safetensors"
        } else {
            "model-00002-of-00002.safetensors"
        };
        weight_map.insert(k.clone(), shard.into());
        if i % 2 == 0 {
            a.insert(k, t)
        } else {
            b.insert(k, t)
        };
    }
    write_safetensors(
        tmp.path().join("model-00001-of-00002.safetensors"),
        &a,
        StorageDtype::F32,
    )
    .unwrap();
    write_safetensors(
        tmp.path().join("model-00002-of-00002.safetensors"),
        &b,
        StorageDtype::F32,
    )
    .unwrap();
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(
        tmp.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    check(tmp.path(), "gemma2", GemmaVariant::Gemma2);
}

#[test]
fn missing_tensors_and_bad_configs_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir("gemma1").join("config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();
    let mut all = SafetensorsFile::open(dir("gemma1").join("model.safetensors"))
        .unwrap()
        .read_all()
        .unwrap();
    all.remove("model.layers.2.mlp.up_proj.weight");
    write_safetensors(
        tmp.path().join("model.safetensors"),
        &all,
        StorageDtype::F32,
    )
    .unwrap();
    match Gemma::load(tmp.path(), &from_env().unwrap()) {
        Err(ModelError::MissingTensor { tensor, .. }) => {
            assert_eq!(tensor, "model.layers.2.mlp.up_proj.weight")
        }
        other => panic!("{other:?}"),
    }
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir("gemma1").join("config.json")).unwrap())
            .unwrap();
    cfg["model_type"] = "llama".into();
    std::fs::write(tmp.path().join("config.json"), cfg.to_string()).unwrap();
    assert!(matches!(
        Gemma::load(tmp.path(), &from_env().unwrap()),
        Err(ModelError::Config { .. })
    ));
}

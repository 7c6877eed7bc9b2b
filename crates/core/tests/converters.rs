//! SAELens's converters: for every layout SAELens converts (Gemma Scope, Gemma Scope 2, Llama
//! Scope, dictionary_learning, the transcoder releases, the bare PyTorch checkpoints), tiny
//! files in the release's exact upstream layout are served from a local HF cache (offline),
//! converted, and compared with what SAELens's own loader made of the same files
//! (`tests/fixtures/converters/gen_fixtures.py`): the config dict key for key, the state dict
//! exactly, and encode/decode/forward to 1e-5.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sae_core::convert::{self, Conversion, Source};
use sae_core::device::from_env;
use sae_core::safetensors_io::{HostTensor, SafetensorsFile};
use sae_core::{HubClient, NormalizeActivations, Registry, Sae, SaeConfig, SaeError};
use serde_json::{Map, Value};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/converters")
}

fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.json").exists())
        .collect();
    v.sort();
    assert!(v.len() >= 25, "{} cases", v.len());
    v
}

fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// The upstream files laid out as huggingface_hub caches them.
fn hf_cache(root: &Path, repo: &str, files: &Path) {
    let commit = "89abcdef0123456789abcdef0123456789abcdef";
    let snap = sae_core::testing::hf_cache_snapshot(root, repo, commit).unwrap();
    copy_tree(files, &snap);
}

fn json_close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-12 * x.abs().max(1.0)
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_close(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| json_close(v, w))
        }
        _ => a == b,
    }
}

fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    common::max_abs_diff(a, b) / scale
}

#[test]
fn every_converter_matches_saelens_loader() {
    let dev = from_env().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for case in cases() {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let meta: Value =
            serde_json::from_str(&std::fs::read_to_string(case.join("case.json")).unwrap())
                .unwrap();
        let conversion: Conversion = serde_json::from_value(meta["conversion"].clone()).unwrap();
        seen.insert(conversion);
        let repo_id = meta["repo_id"].as_str().unwrap();
        let folder = meta["folder"].as_str().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        hf_cache(tmp.path(), repo_id, &case.join("repo"));
        let hub = HubClient::from_env()
            .with_cache_dir(tmp.path())
            .offline(true);
        let source = Source::new(&hub, repo_id, folder, conversion);
        let converted = convert::convert(&source).unwrap_or_else(|e| panic!("{name}: {e}"));

        // The config dict, key for key, after the overrides SAELens passes.
        let mut cfg = converted.cfg.clone();
        for (k, v) in meta["overrides"].as_object().unwrap() {
            cfg.insert(k.clone(), v.clone());
        }
        let expected: Map<String, Value> =
            serde_json::from_str(&std::fs::read_to_string(case.join("saelens_cfg.json")).unwrap())
                .unwrap();
        assert!(
            json_close(
                &Value::Object(cfg.clone()),
                &Value::Object(expected.clone())
            ),
            "{name}: config differs\n ours:    {}\n saelens: {}",
            Value::Object(cfg),
            Value::Object(expected)
        );

        // The state dict.
        let state = SafetensorsFile::open(case.join("saelens_state.safetensors"))
            .unwrap()
            .read_all()
            .unwrap();
        assert_eq!(
            converted.tensors.keys().collect::<Vec<_>>(),
            state.keys().collect::<Vec<_>>(),
            "{name}: tensor names"
        );
        for (k, t) in &state {
            let ours = &converted.tensors[k];
            assert_eq!(ours.shape, t.shape, "{name}: {k} shape");
            let d = max_rel(&ours.data, &t.data);
            assert!(d <= 1e-6, "{name}: {k} differs by {d}");
        }

        // Encode / decode / forward of the SAE SAELens builds from them.
        if meta["io"] == Value::Bool(true) {
            let mut cfg = cfg_with(&converted.cfg, &meta);
            for (k, v) in meta["dims"].as_object().unwrap() {
                cfg.insert(k.clone(), v.clone());
                if k == "k" {
                    // Set after SAELens's defaulting there; before ours here, which reads k from
                    // the pre-6 activation_fn_kwargs.
                    cfg.insert("activation_fn_kwargs".into(), serde_json::json!({ "k": v }));
                }
            }
            let config = SaeConfig::from_json_value(Value::Object(cfg), &converted.weights)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let (mut sae, _) =
                Sae::from_host_tensors(config, converted.tensors.clone(), &converted.weights, &dev)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            if sae.config().normalize_activations == NormalizeActivations::ExpectedAverageOnlyIn
                && let Some(f) = meta["norm_scaling_factor"].as_f64()
            {
                sae.fold_activation_norm_scaling_factor(f as f32);
            }
            let io = common::read_io(&case);
            let x = common::to_tensor(&io["x"]);
            let feats = common::host(sae.encode(x.clone()).unwrap());
            let d = max_rel(&feats, &io["feats"].data);
            assert!(d <= 1e-5, "{name}: encode differs by {d}");
            let recon = common::host(sae.decode(common::to_tensor(&io["feats"])).unwrap());
            let d = max_rel(&recon, &io["recon"].data);
            assert!(d <= 1e-5, "{name}: decode differs by {d}");
            let fwd = common::host(sae.forward(x).unwrap());
            let d = max_rel(&fwd, &io["forward"].data);
            assert!(d <= 1e-5, "{name}: forward differs by {d}");
            let fired = io["feats"].data.iter().filter(|v| **v > 0.0).count();
            assert!(
                fired > 0 && fired < io["feats"].data.len(),
                "{name}: {fired} latents fired: the fixture tests nothing"
            );
        }
    }
    // Every conversion of the registry has a case.
    let reg = Registry::get().unwrap();
    for r in reg.releases.values() {
        if let Some(c) = r.conversion_func {
            assert!(seen.contains(&c), "no fixture for {c}");
        }
    }
}

fn cfg_with(cfg: &Map<String, Value>, meta: &Value) -> Map<String, Value> {
    let mut cfg = cfg.clone();
    for (k, v) in meta["overrides"].as_object().unwrap() {
        cfg.insert(k.clone(), v.clone());
    }
    cfg
}

#[test]
fn from_pretrained_loads_a_converted_release_through_the_registry() {
    // Llama Scope: registry lookup, converter, overrides, and the registry's norm scaling factor
    // folded, all from a local HF cache.
    let case = fixtures().join("llama_scope");
    let tmp = tempfile::tempdir().unwrap();
    // The registry's release `llama_scope_lxr_8x`, SAE `l5r_8x`, lives at this repo and folder.
    let reg = Registry::get().unwrap();
    let (rel, entry) = reg.lookup("llama_scope_lxr_8x", "l5r_8x").unwrap();
    assert_eq!(rel.conversion_func, Some(Conversion::LlamaScope));
    assert_eq!(entry.path, "Llama3_1-8B-Base-L5R-8x");
    hf_cache(tmp.path(), &rel.repo_id, &case.join("repo"));
    let hub = HubClient::from_env()
        .with_cache_dir(tmp.path())
        .offline(true);
    let sae = sae_core::from_pretrained("llama_scope_lxr_8x", "l5r_8x", &hub, &from_env().unwrap())
        .unwrap();
    assert_eq!(
        sae.config().normalize_activations,
        NormalizeActivations::None
    );
    assert_eq!(
        sae.config().metadata.neuronpedia_id.as_deref(),
        entry.neuronpedia.as_deref()
    );
    assert_eq!(sae.config().hook_name(), Some("blocks.5.hook_resid_post"));
    let nsf = entry.norm_scaling_factor.unwrap() as f32;
    let state: BTreeMap<String, HostTensor> =
        SafetensorsFile::open(case.join("saelens_state.safetensors"))
            .unwrap()
            .read_all()
            .unwrap();
    let w_enc = sae.to_host_tensors().unwrap().remove("W_enc").unwrap();
    let want: Vec<f32> = state["W_enc"].data.iter().map(|v| v * nsf).collect();
    assert!(common::max_abs_diff(&w_enc.data, &want) <= 1e-6);
}

#[test]
fn temporal_saes_match_saelens_over_sequences() {
    // Both the tied and the untied layout: novel codes, predicted codes and the full
    // reconstruction over [batch, positions, d_in] against SAELens's TemporalSAE (float64).
    let dev = from_env().unwrap();
    for case in ["temporal_tied", "temporal_untied"] {
        let dir = fixtures().join(case);
        let tmp = tempfile::tempdir().unwrap();
        hf_cache(tmp.path(), "canrager/temporalSAEs", &dir.join("repo"));
        let hub = HubClient::from_env()
            .with_cache_dir(tmp.path())
            .offline(true);
        // Through the registry: release temporal-sae-gemma-2-2b is this repo and folder.
        let sae = sae_core::temporal_from_pretrained(
            "temporal-sae-gemma-2-2b",
            "blocks.12.hook_resid_post",
            &hub,
            &dev,
        )
        .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(sae.config().tied_weights, case == "temporal_tied");
        let io = SafetensorsFile::open(dir.join("io_temporal.safetensors"))
            .unwrap()
            .read_all()
            .unwrap();
        let t3 = |t: &HostTensor| {
            sae_core::device::tensor_from_vec(
                t.data.clone(),
                [t.shape[0], t.shape[1], t.shape[2]],
                &dev,
            )
        };
        let (novel, pred) = sae.encode_with_predictions(t3(&io["x"])).unwrap();
        let host = |t| sae_core::device::tensor_to_vec(t).unwrap();
        for (name, ours) in [
            ("novel", host(novel)),
            ("pred", host(pred)),
            ("forward", host(sae.forward(t3(&io["x"])).unwrap())),
        ] {
            let d = max_rel(&ours, &io[name].data);
            assert!(d <= 1e-5, "{case}: {name} differs by {d}");
        }
        let fired = io["novel"].data.iter().filter(|v| **v > 0.0).count();
        assert!(fired > 0 && fired < io["novel"].data.len());
        // from_pretrained (per-position SAEs) names the right entry point.
        match sae_core::from_pretrained(
            "temporal-sae-gemma-2-2b",
            "blocks.12.hook_resid_post",
            &hub,
            &dev,
        ) {
            Err(SaeError::UnsupportedRelease { why, .. }) => {
                assert!(why.contains("temporal_from_pretrained"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_converter_names_the_file_and_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let case = fixtures().join("gemma_3_mlp_inferred");
    hf_cache(tmp.path(), "google/gemma-scope-2-1b-pt", &case.join("repo"));
    let hub = HubClient::from_env()
        .with_cache_dir(tmp.path())
        .offline(true);
    // A folder without a layer.
    let src = Source::new(
        &hub,
        "google/gemma-scope-2-1b-pt",
        "mlp_out/width_16k",
        Conversion::Gemma3,
    );
    match convert::convert(&src) {
        Err(SaeError::Conversion { path, message, .. }) => {
            assert!(path.to_string_lossy().contains("gemma-scope-2-1b-pt"));
            assert!(message.contains("layer"), "{message}");
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("converted"),
    }
    // A folder that is not in the cache: NotCached names the file.
    let src = Source::new(
        &hub,
        "google/gemma-scope-2-1b-pt",
        "mlp_out/layer_9_width_16k_l0_big",
        Conversion::Gemma3,
    );
    match convert::convert(&src) {
        Err(SaeError::NotCached { file, .. }) => assert!(file.contains("layer_9"), "{file}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("converted"),
    }
}

//! The activation cache: contents equal a direct computation; an interrupted run resumes to
//! byte-identical shards; a different request on the same directory is refused.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

mod common;

use std::path::Path;

use activation_store::cache::{
    ActivationCacheDir, CacheConfig, CacheRunOptions, cache_activations,
};
use activation_store::{StoreConfig, StoreError, TextSource, TokenWindows, compute_activations};
use gpt2_gemma_models::HookPoint;

fn cfg() -> StoreConfig {
    let mut c = StoreConfig::new(HookPoint::ResidPost(0), 16);
    c.store_batch_size_prompts = 3; // batches do not align with the 2-window shards
    c
}

fn corpus() -> TextSource {
    TextSource::from_path(common::fixtures().join("packing/docs.jsonl"), None).unwrap()
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn cache_contents_resume_and_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, tok) = common::tiny_model(tmp.path());
    let opts = CacheRunOptions::default();
    // Every run caches the same corpus, 2 windows per shard, at most 40 windows.
    let run = |cfg: &StoreConfig, dir: &Path, opts: &CacheRunOptions| {
        let layout = CacheConfig::new(2).max_sequences(Some(40));
        cache_activations(&model, "tiny", &tok, corpus(), cfg, &layout, dir, opts)
    };

    // Uninterrupted.
    let a = tmp.path().join("a");
    let m = run(&cfg(), &a, &opts).unwrap();
    assert!(m.complete);
    assert_eq!(m.n_sequences(), 40);
    assert_eq!(m.shards.len(), 20);
    assert_eq!(m.n_tokens, 40 * 16);

    // Contents: the windows and the activations computed directly on them.
    let mut windows = TokenWindows::new(corpus(), &tok, cfg().packing(&tok)).unwrap();
    let cache = ActivationCacheDir::open(&a).unwrap();
    cache.verify().unwrap();
    for shard in cache.shards() {
        let shard = shard.unwrap();
        let w: Vec<Vec<u32>> = (0..shard.n_sequences)
            .map(|_| windows.next_window().unwrap().unwrap())
            .collect();
        assert_eq!(shard.token_ids, w.concat(), "shard {}", shard.index);
        let (direct, d) = compute_activations(&model, HookPoint::ResidPost(0), &w).unwrap();
        assert_eq!(d, shard.d_in);
        let max = direct
            .iter()
            .zip(&shard.activations)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(max < 1e-5, "shard {}: max |Δ| {max}", shard.index);
    }

    // Interrupted after 3 shards, with debris a kill could leave: a temporary file and a shard
    // written but not yet recorded (garbage here).
    let b = tmp.path().join("b");
    let stop = CacheRunOptions {
        stop_after_new_shards: Some(3),
        progress: false,
    };
    let m = run(&cfg(), &b, &stop).unwrap();
    assert!(!m.complete);
    assert_eq!(m.shards.len(), 3);
    std::fs::write(b.join(".shard-00003.safetensors.999-0.sgtmp"), b"partial").unwrap();
    std::fs::write(b.join("shard-00003.safetensors"), b"garbage").unwrap();
    let m = run(&cfg(), &b, &stop).unwrap();
    assert_eq!(m.shards.len(), 6);
    let m = run(&cfg(), &b, &opts).unwrap();
    assert!(m.complete);
    assert_eq!(
        files(&a),
        files(&b),
        "resumed cache differs from the uninterrupted one"
    );

    // A different request on the same directory is refused.
    let mut other = cfg();
    other.hook = HookPoint::ResidPost(1);
    match run(&other, &b, &opts) {
        Err(StoreError::Cache { message, .. }) => {
            assert!(message.contains("different"), "{message}")
        }
        r => panic!("{r:?}"),
    }

    // A second run on a directory in use fails at once, naming the holder; the directory is
    // untouched.
    let before = files(&b);
    {
        let _held = sae_core::lock::OutputLock::acquire(&b).unwrap();
        match run(&cfg(), &b, &opts) {
            Err(StoreError::Sae(sae_core::SaeError::OutputInUse { path, pid })) => {
                assert_eq!(path, b);
                assert_eq!(pid, Some(std::process::id()));
            }
            r => panic!("{r:?}"),
        }
    }
    assert_eq!(files(&b), before);

    // A user's files are never deleted: in a cache, only this crate's temporaries go; a
    // directory that is not a cache is refused before anything is touched.
    let user = [
        "draft.tmp",
        "page.tmpl",
        "a.tmp.bak",
        "notes.safetensors.tmp1",
    ];
    let c = tmp.path().join("c");
    run(&cfg(), &c, &stop).unwrap();
    for n in user {
        std::fs::write(c.join(n), b"mine").unwrap();
    }
    run(&cfg(), &c, &stop).unwrap();
    for n in user {
        assert_eq!(std::fs::read(c.join(n)).unwrap(), b"mine", "{n}");
    }
    let d = tmp.path().join("d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("draft.tmp"), b"mine").unwrap();
    match run(&cfg(), &d, &opts) {
        Err(StoreError::Cache { message, .. }) => {
            assert!(message.contains("not an activation cache"), "{message}")
        }
        r => panic!("{r:?}"),
    }
    assert_eq!(std::fs::read(d.join("draft.tmp")).unwrap(), b"mine");

    // A damaged shard is caught.
    std::fs::write(a.join("shard-00001.safetensors"), b"truncated").unwrap();
    assert!(matches!(
        ActivationCacheDir::open(&a),
        Err(StoreError::Cache { .. })
    ));
}

/// A manifest's sizes and names are checked when it is read: `context_size: 0`, `d_in: 0`, a
/// shard path leaving the directory, a shard's `token_ids` of the wrong shape are errors, not
/// panics in the statistics or reads outside the cache.
#[test]
fn hostile_manifests_and_shards_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, tok) = common::tiny_model(tmp.path());
    let dir = tmp.path().join("cache");
    let opts = CacheRunOptions::default();
    cache_activations(
        &model,
        "tiny",
        &tok,
        corpus(),
        &cfg(),
        &CacheConfig::new(2).max_sequences(Some(4)),
        &dir,
        &opts,
    )
    .unwrap();
    let mpath = dir.join("manifest.json");
    let good: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    ActivationCacheDir::open(&dir).unwrap();
    type Edit = fn(&mut serde_json::Value);
    let edits: [(&str, Edit); 6] = [
        ("spec.packing.context_size is 0", |m| {
            m["spec"]["packing"]["context_size"] = 0.into()
        }),
        ("spec.d_in is 0", |m| m["spec"]["d_in"] = 0.into()),
        ("spec.sequences_per_shard is 0", |m| {
            m["spec"]["sequences_per_shard"] = 0.into()
        }),
        ("expected `shard-00001.safetensors`", |m| {
            m["shards"][1]["file"] = "../../outside.safetensors".into()
        }),
        ("holds 3 windows, expected 1..=2", |m| {
            m["shards"][0]["n_sequences"] = 3.into()
        }),
        ("n_tokens is 1", |m| m["n_tokens"] = 1.into()),
    ];
    for (says, edit) in edits {
        let mut m = good.clone();
        edit(&mut m);
        std::fs::write(&mpath, m.to_string()).unwrap();
        match ActivationCacheDir::open(&dir) {
            Err(StoreError::Cache { path, message }) => {
                assert_eq!(path, mpath);
                assert!(message.contains(says), "{message}");
            }
            r => panic!("{says}: {r:?}"),
        }
    }
    std::fs::write(&mpath, good.to_string()).unwrap();

    // A shard whose token_ids tensor has the wrong shape (same byte length as the real one).
    let shard = dir.join("shard-00000.safetensors");
    let f = sae_core::safetensors_io::SafetensorsFile::open(&shard).unwrap();
    let (shape, ids) = f.tensor_i64("token_ids").unwrap();
    let acts = f.tensor_f32(&HookPoint::ResidPost(0).to_string()).unwrap();
    drop(f);
    let ids32: Vec<u8> = ids.iter().flat_map(|&t| (t as i32).to_le_bytes()).collect();
    let act_bytes: Vec<u8> = acts.data.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut views = std::collections::BTreeMap::new();
    views.insert(
        "token_ids".to_string(),
        safetensors::tensor::TensorView::new(
            safetensors::Dtype::I32,
            vec![shape[0] * shape[1]],
            &ids32,
        )
        .unwrap(),
    );
    views.insert(
        HookPoint::ResidPost(0).to_string(),
        safetensors::tensor::TensorView::new(
            safetensors::Dtype::F32,
            acts.shape.clone(),
            &act_bytes,
        )
        .unwrap(),
    );
    let bytes = safetensors::tensor::serialize(views, None).unwrap();
    let mut m = good.clone();
    m["shards"][0]["bytes"] = (bytes.len() as u64).into();
    std::fs::write(&shard, &bytes).unwrap();
    std::fs::write(&mpath, m.to_string()).unwrap();
    let cache = ActivationCacheDir::open(&dir).unwrap();
    match cache.shard(0) {
        Err(StoreError::Shape {
            what,
            expected,
            found,
        }) => {
            assert!(what.ends_with("token_ids"), "{what}");
            assert_eq!(expected, shape);
            assert_eq!(found, vec![shape[0] * shape[1]]);
        }
        r => panic!("{:?}", r.map(|s| s.n_sequences)),
    }
}

/// A bfloat16 / float16 cache holds exactly the float32 cache's activations rounded to nearest
/// (readers get them widened back), in half the bytes; the dtype is part of the spec (a resumed
/// run asking for another is refused); float32 manifests do not name it (caches written before
/// the field keep their spec hash); a shard stored in another dtype than the manifest says is an
/// error.
#[test]
fn narrow_dtypes_store_the_rounded_activations() {
    use activation_store::ActivationDtype;
    let tmp = tempfile::tempdir().unwrap();
    let (model, tok) = common::tiny_model(tmp.path());
    let opts = CacheRunOptions::default();
    let run = |dtype: ActivationDtype, dir: &Path| {
        let layout = CacheConfig::new(4).max_sequences(Some(12)).dtype(dtype);
        cache_activations(&model, "tiny", &tok, corpus(), &cfg(), &layout, dir, &opts)
    };
    let f32_dir = tmp.path().join("f32");
    let full = run(ActivationDtype::F32, &f32_dir).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f32_dir.join("manifest.json")).unwrap()).unwrap();
    assert!(json["spec"].get("dtype").is_none(), "{json}");
    let reference = ActivationCacheDir::open(&f32_dir).unwrap();
    for (dtype, round) in [
        (
            ActivationDtype::Bf16,
            (|x| half::bf16::from_f32(x).to_f32()) as fn(f32) -> f32,
        ),
        (ActivationDtype::F16, |x| half::f16::from_f32(x).to_f32()),
    ] {
        let dir = tmp.path().join(dtype.as_str());
        let m = run(dtype, &dir).unwrap();
        assert_eq!(m.spec.dtype, dtype);
        assert_ne!(m.spec_hash, full.spec_hash);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(json["spec"]["dtype"], dtype.as_str());
        let cache = ActivationCacheDir::open(&dir).unwrap();
        cache.verify().unwrap();
        let mut changed = 0;
        for (s, r) in cache.shards().zip(reference.shards()) {
            let (s, r) = (s.unwrap(), r.unwrap());
            assert_eq!(s.token_ids, r.token_ids);
            assert_eq!(s.activations.len(), r.activations.len());
            for (i, (got, exact)) in s.activations.iter().zip(&r.activations).enumerate() {
                assert_eq!(
                    got.to_bits(),
                    round(*exact).to_bits(),
                    "{dtype} shard {} value {i}: {got} for {exact}",
                    s.index
                );
                let bound = dtype.unit_roundoff() * exact.abs().max(2f32.powi(-14));
                assert!((got - exact).abs() <= bound, "{dtype}: {got} for {exact}");
                changed += usize::from(got != exact);
            }
        }
        assert!(changed > 0, "{dtype}: rounding changed nothing");
        // Activations take half the bytes (the token ids and the header do not shrink).
        let act_bytes = 12 * 16 * full.spec.d_in;
        let (a, b) = (
            full.shards.iter().map(|s| s.bytes).sum::<u64>(),
            m.shards.iter().map(|s| s.bytes).sum::<u64>(),
        );
        assert_eq!(a - b, (act_bytes * 2) as u64, "{dtype}: {a} vs {b} bytes");
        // Another dtype on the same directory is another cache.
        match run(ActivationDtype::F32, &dir) {
            Err(StoreError::Cache { message, .. }) => {
                assert!(message.contains("different"), "{message}")
            }
            r => panic!("{r:?}"),
        }
    }
    // A manifest that names a dtype its shards are not stored in.
    let dir = tmp.path().join("bfloat16");
    let mpath = dir.join("manifest.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    json["spec"]["dtype"] = "float16".into();
    std::fs::write(&mpath, serde_json::to_vec(&json).unwrap()).unwrap();
    match ActivationCacheDir::open(&dir).unwrap().shard(0) {
        Err(StoreError::Cache { path, message }) => {
            assert!(path.ends_with("shard-00000.safetensors"), "{path:?}");
            assert!(
                message.contains("BF16") && message.contains("float16"),
                "{message}"
            );
        }
        r => panic!("{r:?}"),
    }
}

/// A model whose activations exceed float16's range: a float16 cache stops at the first shard
/// with the typed error naming the shard, hook and value (nothing recorded), a bfloat16 cache
/// takes them, and the dtype measurement counts them.
#[test]
fn float16_overflow_is_a_typed_error() {
    use activation_store::{ActivationDtype, evaluate_activation_dtype};
    use sae_core::safetensors_io::{SafetensorsFile, write_safetensors};
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::tiny_model_dir(tmp.path());
    let weights = dir.join("model.safetensors");
    let mut tensors = SafetensorsFile::open(&weights).unwrap().read_all().unwrap();
    let wte = tensors
        .iter_mut()
        .find(|(k, _)| k.ends_with("wte.weight"))
        .unwrap()
        .1;
    wte.data.iter_mut().for_each(|v| *v *= 1e6);
    write_safetensors(&weights, &tensors, sae_core::StorageDtype::F32).unwrap();
    let (model, tok) = gpt2_gemma_models::source::ModelSource::Dir(dir)
        .load(
            &sae_core::HubClient::from_env().offline(true),
            gpt2_gemma_models::Processing::TransformerLens,
            None,
            &sae_core::device::from_env().unwrap(),
        )
        .unwrap();
    let mut cfg = cfg();
    cfg.hook = HookPoint::ResidPre(0);
    let opts = CacheRunOptions::default();
    let run = |dtype: ActivationDtype, dir: &Path| {
        let layout = CacheConfig::new(2).max_sequences(Some(4)).dtype(dtype);
        cache_activations(&model, "big", &tok, corpus(), &cfg, &layout, dir, &opts)
    };
    let f16 = tmp.path().join("f16");
    match run(ActivationDtype::F16, &f16) {
        Err(StoreError::Sae(sae_core::SaeError::OutOfRange {
            path,
            tensor,
            value,
            dtype,
            ..
        })) => {
            assert_eq!(path, f16.join("shard-00000.safetensors"));
            assert_eq!(tensor, "blocks.0.hook_resid_pre");
            assert!(value.abs() > 65504.0, "{value}");
            assert_eq!(dtype, "float16");
        }
        r => panic!("{r:?}"),
    }
    assert!(!f16.join("shard-00000.safetensors").exists());
    assert!(!f16.join("manifest.json").exists());
    let bf16 = tmp.path().join("bf16");
    assert!(run(ActivationDtype::Bf16, &bf16).unwrap().complete);

    let mut w = TokenWindows::new(corpus(), &tok, cfg.packing(&tok)).unwrap();
    let windows: Vec<Vec<u32>> = (0..2).map(|_| w.next_window().unwrap().unwrap()).collect();
    let config = activation_store::eval::EvalConfig::default();
    let e = evaluate_activation_dtype(
        &model,
        HookPoint::ResidPre(0),
        ActivationDtype::F16,
        &windows,
        &config,
    )
    .unwrap();
    assert!(e.n_out_of_range > 0, "{e:?}");
    assert!(e.max_abs_activation > 65504.0);
    assert_eq!(e.max_abs_error, f64::INFINITY);
    let e = evaluate_activation_dtype(
        &model,
        HookPoint::ResidPre(0),
        ActivationDtype::Bf16,
        &windows,
        &config,
    )
    .unwrap();
    assert_eq!(e.n_out_of_range, 0);
    assert!(e.relative_error <= f64::from(ActivationDtype::Bf16.unit_roundoff()));
}

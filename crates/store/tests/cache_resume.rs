//! The activation cache: contents equal a direct computation; an interrupted run resumes to
//! byte-identical shards; a different request on the same directory is refused.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;

use activation_store::cache::{ActivationCacheDir, CacheRunOptions, cache_activations};
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
        cache_activations(&model, "tiny", &tok, corpus(), cfg, 2, Some(40), dir, opts)
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
    std::fs::write(b.join("shard-00003.safetensors.tmp123"), b"partial").unwrap();
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

    // A damaged shard is caught.
    std::fs::write(a.join("shard-00001.safetensors"), b"truncated").unwrap();
    assert!(matches!(
        ActivationCacheDir::open(&a),
        Err(StoreError::Cache { .. })
    ));
}

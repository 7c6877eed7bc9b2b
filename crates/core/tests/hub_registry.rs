//! The pretrained registry and the hub path, tested against a local HF cache layout (no network).

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

mod common;

use std::path::Path;

use sae_core::device::from_env;
use sae_core::{HubClient, HubRepo, Registry, Sae, SaeError, SaeSource, from_pretrained};

#[test]
fn registry_has_the_tutorial_releases() {
    let reg = Registry::get().unwrap();
    let fs = reg.release("gpt2-small-res-jb-feature-splitting").unwrap();
    assert_eq!(
        fs.repo_id,
        "jbloom/GPT2-Small-Feature-Splitting-Experiment-Layer-8"
    );
    let widths: Vec<usize> = fs
        .saes
        .iter()
        .map(|s| s.id.rsplit('_').next().unwrap().parse().unwrap())
        .collect();
    for w in [768, 1536, 3072, 6144, 12288, 24576, 49152, 98304] {
        assert!(widths.contains(&w), "width {w}");
    }
    let s = fs.sae("x", "blocks.8.hook_resid_pre_768").unwrap();
    assert_eq!(s.neuronpedia.as_deref(), Some("gpt2-small/8-res_fs768-jb"));
    assert_eq!(s.l0, Some(36.0));

    let (r, s) = reg
        .lookup("gpt2-small-res-jb", "blocks.8.hook_resid_pre")
        .unwrap();
    assert_eq!(r.repo_id, "jbloom/GPT2-Small-SAEs-Reformatted");
    assert_eq!(s.path, "blocks.8.hook_resid_pre");
    assert_eq!(r.model.as_deref(), Some("gpt2-small"));

    let (_, s) = reg
        .lookup("gemma-2b-res-jb", "blocks.6.hook_resid_post")
        .unwrap();
    assert_eq!(s.neuronpedia.as_deref(), Some("gemma-2b/6-res-jb"));
}

#[test]
fn unknown_release_and_id_list_valid_ones() {
    let reg = Registry::get().unwrap();
    match reg.release("gpt3-small-res").unwrap_err() {
        SaeError::UnknownRelease { valid, .. } => assert!(valid.contains("gpt2-small-res-jb")),
        e => panic!("{e}"),
    }
    match reg
        .lookup("gpt2-small-res-jb", "blocks.99.hook_resid_pre")
        .unwrap_err()
    {
        SaeError::UnknownSaeId { valid, .. } => assert!(valid.contains("blocks.8.hook_resid_pre")),
        e => panic!("{e}"),
    }
    // Releases in third-party layouts are listed with their converter.
    assert_eq!(
        reg.release("gemma-scope-2b-pt-res")
            .unwrap()
            .conversion_func,
        Some(sae_core::convert::Conversion::Gemma2)
    );
}

/// Lays a fixture SAE out as huggingface_hub does: `models--owner--name/refs/main` holds the
/// commit, `snapshots/<commit>/<path>/...` the files.
fn fake_cache(root: &Path, repo: &str, folder: &str, case: &str) {
    let repo_dir = root.join(format!("models--{}", repo.replace('/', "--")));
    let commit = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
    std::fs::write(repo_dir.join("refs/main"), commit).unwrap();
    let snap = repo_dir.join("snapshots").join(commit).join(folder);
    std::fs::create_dir_all(&snap).unwrap();
    let src = common::fixtures().join(case);
    for f in [
        "cfg.json",
        "sae_weights.safetensors",
        "sparsity.safetensors",
    ] {
        if src.join(f).exists() {
            std::fs::copy(src.join(f), snap.join(f)).unwrap();
        }
    }
}

#[test]
fn from_pretrained_reads_the_hf_cache_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = "jbloom/GPT2-Small-SAEs-Reformatted";
    fake_cache(
        tmp.path(),
        repo,
        "blocks.8.hook_resid_pre",
        "standard__none",
    );
    let hub = HubClient::from_env()
        .with_cache_dir(tmp.path())
        .offline(true);
    let sae = from_pretrained(
        "gpt2-small-res-jb",
        "blocks.8.hook_resid_pre",
        &hub,
        &from_env().unwrap(),
    )
    .unwrap();
    let direct = Sae::load(
        common::fixtures().join("standard__none"),
        &from_env().unwrap(),
    )
    .unwrap();
    assert_eq!(
        sae.to_host_tensors().unwrap(),
        direct.to_host_tensors().unwrap()
    );
    assert!(sae.log_sparsity().is_some());
    // The release's config overrides are applied, as SAELens does.
    assert_eq!(
        sae.config().metadata.extra["model_from_pretrained_kwargs"]["center_writing_weights"],
        true
    );

    // The same through SaeSource, as the CLI parses it.
    let src: SaeSource = "gpt2-small-res-jb/blocks.8.hook_resid_pre".parse().unwrap();
    assert!(matches!(src, SaeSource::Pretrained { .. }));
    assert_eq!(src.load(&hub, &from_env().unwrap()).unwrap().d_sae(), 48);

    // A miss while offline is a clear error naming the repo, file and cache.
    let err = from_pretrained(
        "gpt2-small-res-jb",
        "blocks.9.hook_resid_pre",
        &hub,
        &from_env().unwrap(),
    )
    .unwrap_err();
    match err {
        SaeError::NotCached {
            repo: r,
            file,
            cache,
            ..
        } => {
            assert_eq!(r, repo);
            assert_eq!(file, "blocks.9.hook_resid_pre/cfg.json");
            assert_eq!(cache, tmp.path());
        }
        e => panic!("{e}"),
    }
}

#[test]
fn cache_hits_need_no_network_even_online() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = "jbloom/GPT2-Small-Feature-Splitting-Experiment-Layer-8";
    fake_cache(
        tmp.path(),
        repo,
        "blocks.8.hook_resid_pre_768",
        "jumprelu__none",
    );
    // An unroutable endpoint: any network use would fail.
    let hub = HubClient::from_env()
        .with_cache_dir(tmp.path())
        .offline(false)
        .with_endpoint("http://127.0.0.1:9");
    let p = hub
        .get(
            &HubRepo::model(repo),
            "blocks.8.hook_resid_pre_768/cfg.json",
        )
        .unwrap();
    assert!(p.ends_with("blocks.8.hook_resid_pre_768/cfg.json"));
}

#[test]
fn local_directory_source() {
    let dir = common::fixtures().join("gated__none");
    let src: SaeSource = dir.to_str().unwrap().parse().unwrap();
    assert_eq!(src, SaeSource::Dir(dir));
    let hub = HubClient::from_env().offline(true);
    assert_eq!(
        src.load(&hub, &from_env().unwrap())
            .unwrap()
            .config()
            .architecture
            .as_str(),
        "gated"
    );
    assert!("no-slash-here".parse::<SaeSource>().is_err());
}

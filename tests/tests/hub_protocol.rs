//! `HubClient` against the in-process hub server (`sae_geometry_tests::hub_server`), which
//! speaks the hub's file protocol as hf-hub uses it: downloads land in the HF cache layout and a
//! second fetch makes no request; listings come from the API; a missing file is an error naming
//! it; a gated repository without a token says which repository and how to supply one, with the
//! token it downloads; the client's `Debug` never shows the token.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

use std::collections::BTreeMap;

use sae_core::{HubClient, HubRepo, SaeError};
use sae_geometry_tests::hub_server::{HubFault, HubServer, ServedRepo};

fn files() -> BTreeMap<String, Vec<u8>> {
    let mut f = BTreeMap::new();
    f.insert("config.json".to_string(), br#"{"n_layer": 2}"#.to_vec());
    f.insert(
        "blocks.8.hook_resid_pre_768/cfg.json".to_string(),
        br#"{"d_in": 768}"#.to_vec(),
    );
    // Larger than one read buffer, with every byte value.
    f.insert(
        "model.safetensors".to_string(),
        (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect(),
    );
    f
}

/// `openai-community/gpt2` with [`files`], public.
fn gpt2_server() -> HubServer {
    HubServer::start(
        vec![ServedRepo::model("openai-community/gpt2", files())],
        None,
    )
    .unwrap()
}

fn client(server: &HubServer, cache: &std::path::Path) -> HubClient {
    HubClient::from_env()
        .with_cache_dir(cache)
        .offline(false)
        .with_endpoint(server.endpoint())
        .with_progress(false)
        .with_token(None)
}

#[test]
fn downloads_go_to_the_cache_and_are_fetched_once() {
    let server = gpt2_server();
    let cache = tempfile::tempdir().unwrap();
    let hub = client(&server, cache.path());
    let repo = HubRepo::model("openai-community/gpt2");
    for (name, bytes) in files() {
        let p = hub.get(&repo, &name).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), bytes, "{name}");
        // The HF cache layout: models--owner--name/snapshots/{commit}/{file}.
        let s = p.to_string_lossy();
        assert!(
            s.contains("models--openai-community--gpt2/snapshots/") && s.ends_with(&name),
            "{s}"
        );
    }
    let fetched: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    for name in files().keys() {
        let url = format!("/openai-community/gpt2/resolve/main/{name}");
        assert!(fetched.contains(&url), "{url} not in {fetched:?}");
    }
    // Everything again: the cache answers, the server sees nothing.
    server.clear_log();
    for name in files().keys() {
        hub.get(&repo, name).unwrap();
    }
    assert_eq!(server.requests(), vec![]);
    // The listing comes from the API.
    let listed = hub.list_files(&repo).unwrap();
    assert_eq!(listed, files().keys().cloned().collect::<Vec<_>>());
    // Offline, the same files come from the cache alone.
    server.clear_log();
    let offline = client(&server, cache.path()).offline(true);
    assert_eq!(
        std::fs::read(offline.get(&repo, "config.json").unwrap()).unwrap(),
        files()["config.json"]
    );
    assert_eq!(server.requests(), vec![]);
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let server = gpt2_server();
    let cache = tempfile::tempdir().unwrap();
    let e = client(&server, cache.path())
        .get(&HubRepo::model("openai-community/gpt2"), "missing.bin")
        .unwrap_err();
    match &e {
        SaeError::Hub {
            repo,
            file,
            message,
        } => {
            assert_eq!(
                (repo.as_str(), file.as_str()),
                ("openai-community/gpt2", "missing.bin")
            );
            assert!(message.contains("404"), "{message}");
        }
        other => panic!("{other}"),
    }
    // Nothing half-downloaded is left as the file.
    assert!(
        client(&server, cache.path())
            .cached(&HubRepo::model("openai-community/gpt2"), "missing.bin")
            .is_none()
    );
}

#[test]
fn a_gated_repository_needs_the_token() {
    let token = "hf_test_token_0123456789";
    let server = HubServer::start(
        vec![ServedRepo::model("google/gemma-2b-it", files()).gated()],
        Some(token),
    )
    .unwrap();
    let repo = HubRepo::model("google/gemma-2b-it");
    let cache = tempfile::tempdir().unwrap();
    // No token: the error names the repository and says how to supply one.
    let e = client(&server, cache.path())
        .get(&repo, "config.json")
        .unwrap_err()
        .to_string();
    for says in [
        "google/gemma-2b-it",
        "gated",
        "HF_TOKEN",
        "HF_HOME/token",
        "401",
    ] {
        assert!(e.contains(says), "{says:?} not in: {e}");
    }
    // Another account's token: refused, and the error says the token lacks access.
    let e = client(&server, cache.path())
        .with_token(Some("hf_someone_else".into()))
        .get(&repo, "config.json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("refused with the token supplied"), "{e}");
    // With the token: downloaded.
    let hub = client(&server, cache.path()).with_token(Some(token.into()));
    let p = hub.get(&repo, "config.json").unwrap();
    assert_eq!(std::fs::read(p).unwrap(), files()["config.json"]);
    assert_eq!(
        hub.list_files(&repo).unwrap(),
        files().keys().cloned().collect::<Vec<_>>()
    );
    // The token never shows in Debug output.
    let shown = format!("{hub:?}");
    assert!(
        !shown.contains(token) && shown.contains("<redacted>"),
        "{shown}"
    );
}

#[test]
fn a_pretrained_sae_loads_over_the_wire_under_its_registry_names() {
    // The tutorial's feature-splitting release, its 768-wide SAE: SAELens's layout (a folder per
    // SAE id), the weights of one of sae-core's SAELens fixtures.
    let release = "gpt2-small-res-jb-feature-splitting";
    let repo_id = "jbloom/GPT2-Small-Feature-Splitting-Experiment-Layer-8";
    let folder = "blocks.8.hook_resid_pre_768";
    let src = sae_geometry_tests::saelens_fixtures().join("standard__none");
    let mut served = BTreeMap::new();
    for f in [
        "cfg.json",
        "sae_weights.safetensors",
        "sparsity.safetensors",
    ] {
        if let Ok(b) = std::fs::read(src.join(f)) {
            served.insert(format!("{folder}/{f}"), b);
        }
    }
    let server = HubServer::start(vec![ServedRepo::model(repo_id, served.clone())], None).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let hub = client(&server, cache.path());
    let dev = sae_core::device::cpu();
    let sae = sae_core::from_pretrained(release, folder, &hub, &dev).unwrap();
    let local = sae_core::Sae::load(&src, &dev).unwrap();
    assert_eq!(sae.d_sae(), local.d_sae());
    let w = |s: &sae_core::Sae| sae_core::device::tensor_to_vec(s.w_dec()).unwrap();
    assert_eq!(w(&sae), w(&local));
    // The exact files asked for, under the registry's repository and folder.
    let asked: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.status < 300)
        .map(|r| r.path.clone())
        .collect();
    for f in served.keys() {
        let url = format!("/{repo_id}/resolve/main/{f}");
        assert!(asked.contains(&url), "{url} not in {asked:?}");
    }
    // Loaded again: everything from the cache.
    server.clear_log();
    sae_core::from_pretrained(release, folder, &hub, &dev).unwrap();
    assert_eq!(server.requests(), vec![]);
}

#[test]
fn a_server_error_or_a_dropped_connection_mid_download_is_retried_and_resumed() {
    let server = gpt2_server();
    // The first download answers 500, the second drops the connection after 70 000 bytes.
    server.fault(
        "model.safetensors",
        &[HubFault::Status(500), HubFault::Truncate(70_000)],
    );
    let cache = tempfile::tempdir().unwrap();
    let hub = client(&server, cache.path());
    let repo = HubRepo::model("openai-community/gpt2");
    let p = hub.get(&repo, "model.safetensors").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), files()["model.safetensors"]);
    // Each attempt probes the metadata again; the third asked only for the bytes the second
    // did not deliver.
    let gets: Vec<Option<String>> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/model.safetensors"))
        .map(|r| r.range)
        .collect();
    assert_eq!(
        gets,
        vec![
            Some("bytes=0-0".to_string()),
            Some("bytes=0-".to_string()),
            Some("bytes=0-0".to_string()),
            Some("bytes=0-".to_string()),
            Some("bytes=0-0".to_string()),
            Some("bytes=70000-".to_string()),
        ]
    );
}

#[test]
fn a_download_that_keeps_failing_names_the_url_and_caches_nothing() {
    let server = gpt2_server();
    let cache = tempfile::tempdir().unwrap();
    let hub = client(&server, cache.path());
    let repo = HubRepo::model("openai-community/gpt2");
    let url = format!(
        "{}/openai-community/gpt2/resolve/main/model.safetensors",
        server.endpoint()
    );
    // Every attempt (the first and the client's three retries) fails: 500s, then connections
    // dropped before any byte (a drop after some bytes is progress: the next attempt resumes).
    for fault in [HubFault::Status(500), HubFault::Truncate(0)] {
        server.fault("model.safetensors", &[fault; 4]);
        let e = match hub.get(&repo, "model.safetensors") {
            Err(e) => e,
            Ok(_) => panic!("{fault:?}: succeeded; requests {:?}", server.requests()),
        };
        match &e {
            SaeError::Hub {
                repo,
                file,
                message,
            } => {
                assert_eq!(
                    (repo.as_str(), file.as_str()),
                    ("openai-community/gpt2", "model.safetensors")
                );
                assert!(message.contains(&url), "{fault:?}: {message}");
            }
            other => panic!("{fault:?}: {other}"),
        }
        assert!(
            hub.cached(&repo, "model.safetensors").is_none(),
            "{fault:?}"
        );
    }
    // Once the server answers, the download completes (resuming what the dropped ones left)
    // with the exact bytes.
    let p = hub.get(&repo, "model.safetensors").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), files()["model.safetensors"]);
}

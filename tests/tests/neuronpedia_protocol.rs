//! Neuronpedia exports fetched through `latent_geometry::neuronpedia_fetch` from the in-process
//! Neuronpedia-protocol server: cached once valid and never re-fetched; 500s, HTML error pages,
//! truncated JSON and 429s retried to success; a fault that persists ends in an error naming the
//! URL with nothing cached; 404 fails at once; a corrupt cached file is fetched again; offline
//! reads the cache only.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

use std::collections::BTreeMap;
use std::time::Duration;

use sae_geometry::geometry::GeometryError;
use sae_geometry::geometry::neuronpedia::load_explanations;
use sae_geometry::geometry::neuronpedia_fetch::{NeuronpediaConfig, fetch_explanations};
use sae_geometry_tests::neuronpedia_server::{NeuronpediaServer, Reply};

const MODEL: &str = "gpt2-small";
const SAE: &str = "8-res_fs768-jb";

fn server() -> NeuronpediaServer {
    let export: Vec<(usize, String)> = (0..768)
        .filter(|i| i % 5 != 0)
        .map(|i| (i, format!("latent {i} fires on \"things\"")))
        .collect();
    NeuronpediaServer::start(BTreeMap::from([(
        (MODEL.to_string(), SAE.to_string()),
        export,
    )]))
    .unwrap()
}

fn config(server: &NeuronpediaServer, cache: &std::path::Path) -> NeuronpediaConfig {
    NeuronpediaConfig {
        base_url: server.base_url(),
        cache_dir: cache.to_path_buf(),
        offline: false,
        max_retries: 5,
        backoff: Duration::from_millis(5),
        backoff_max: Duration::from_millis(50),
        timeout: Duration::from_secs(10),
    }
}

#[test]
fn fetched_once_then_cached_and_offline_reads_the_cache() {
    let s = server();
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(&s, cache.path());
    let p = fetch_explanations(&cfg, MODEL, SAE).unwrap();
    assert_eq!(p, cache.path().join(MODEL).join(format!("{SAE}.json")));
    let d = load_explanations(&p, 768).unwrap();
    assert_eq!(d.descriptions[1], "latent 1 fires on \"things\"");
    assert_eq!((d.descriptions[5].as_str(), d.missing), ("", 154));
    assert_eq!(
        s.requests(),
        vec![format!(
            "/api/explanation/export?modelId={MODEL}&saeId={SAE}"
        )]
    );
    // Again, and offline: no request.
    fetch_explanations(&cfg, MODEL, SAE).unwrap();
    let offline = NeuronpediaConfig {
        offline: true,
        ..cfg.clone()
    };
    fetch_explanations(&offline, MODEL, SAE).unwrap();
    assert_eq!(s.requests().len(), 1);
    // Offline without the file: a typed error naming the URL and the cache path.
    let e = fetch_explanations(&offline, MODEL, "9-res-jb").unwrap_err();
    assert!(
        matches!(&e, GeometryError::NotCached { url, .. } if url.contains("saeId=9-res-jb")),
        "{e}"
    );
}

#[test]
fn faults_are_retried_to_success() {
    let s = server();
    s.script(
        MODEL,
        SAE,
        &[
            Reply::ServerError,
            Reply::HtmlPage,
            Reply::Truncated,
            Reply::TooManyRequests(1),
        ],
    );
    let cache = tempfile::tempdir().unwrap();
    let p = fetch_explanations(&config(&s, cache.path()), MODEL, SAE).unwrap();
    assert_eq!(s.requests().len(), 5);
    assert_eq!(load_explanations(&p, 768).unwrap().missing, 154);
}

#[test]
fn a_persistent_fault_is_an_error_and_nothing_is_cached() {
    for fault in [Reply::HtmlPage, Reply::Truncated, Reply::ServerError] {
        let s = server();
        s.script(MODEL, SAE, &vec![fault.clone(); 6]);
        let cache = tempfile::tempdir().unwrap();
        let cfg = config(&s, cache.path());
        let e = fetch_explanations(&cfg, MODEL, SAE).unwrap_err();
        match &e {
            GeometryError::Fetch { url, message } => {
                assert!(
                    url.starts_with(&s.base_url()) && url.contains("saeId=8-res_fs768-jb"),
                    "{url}"
                );
                assert!(
                    message.contains("gave up after 6 attempts"),
                    "{fault:?}: {message}"
                );
            }
            other => panic!("{fault:?}: {other}"),
        }
        assert!(
            !cfg.cached_path(MODEL, SAE).unwrap().exists(),
            "{fault:?} was cached"
        );
        // The next run (the fault gone) gets the export.
        fetch_explanations(&cfg, MODEL, SAE).unwrap();
    }
}

#[test]
fn not_found_fails_at_once_and_a_corrupt_cache_is_refetched() {
    let s = server();
    s.script(MODEL, SAE, &[Reply::NotFound]);
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(&s, cache.path());
    let e = fetch_explanations(&cfg, MODEL, SAE).unwrap_err();
    assert!(e.to_string().contains("HTTP 404"), "{e}");
    assert_eq!(s.requests().len(), 1);
    // A cached file cut short (say by an older tool killed mid-write) is not trusted.
    let p = cfg.cached_path(MODEL, SAE).unwrap();
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, "[{\"index\": \"1\", \"descr").unwrap();
    fetch_explanations(&cfg, MODEL, SAE).unwrap();
    assert_eq!(s.requests().len(), 2);
    assert_eq!(load_explanations(&p, 768).unwrap().missing, 154);
    // Ids that would leave the cache directory are refused.
    assert!(fetch_explanations(&cfg, "../x", SAE).is_err());
}

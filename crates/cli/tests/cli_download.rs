//! A download killed mid-transfer (`kill -9` of `sae-geometry download`, the server stalled
//! after a third of the file) leaves nothing under the file's name in the HF cache; the next run
//! resumes from the bytes already received (`Range: bytes=N-`) and ends with the exact file.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sae_geometry_tests::hub_server::{HubFault, HubServer, ServedRepo};

fn download(server: &HubServer, hf_home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sae-geometry"));
    c.args(["download", "openai-community/gpt2", "model.safetensors"])
        .env("HF_ENDPOINT", server.endpoint())
        .env("HF_HOME", hf_home)
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_HUB_OFFLINE");
    c
}

/// Unfinished blobs in the repository's cache, with their sizes.
fn parts(hf_home: &Path) -> Vec<(PathBuf, u64)> {
    let blobs = hf_home.join("hub/models--openai-community--gpt2/blobs");
    std::fs::read_dir(blobs)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "part"))
                .map(|p| {
                    let n = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                    (p, n)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_killed_download_resumes_and_never_leaves_a_partial_file_under_its_name() {
    let file: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut files = BTreeMap::new();
    files.insert("model.safetensors".to_string(), file.clone());
    let server = HubServer::start(
        vec![ServedRepo::model("openai-community/gpt2", files)],
        None,
    )
    .unwrap();
    server.fault("model.safetensors", &[HubFault::Stall(1_000_000)]);
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");

    let mut child = download(&server, &hf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !parts(&hf).iter().any(|(_, n)| *n >= 1_000_000) {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "the download never got going"
        );
        assert!(child.try_wait().unwrap().is_none(), "the download ended");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Killed: a third of the file in the `.part`, nothing under the file's name.
    let snapshot = hf.join("hub/models--openai-community--gpt2/snapshots");
    let named = std::fs::read_dir(&snapshot)
        .map(|d| {
            d.flatten()
                .any(|e| e.path().join("model.safetensors").exists())
        })
        .unwrap_or(false);
    assert!(!named, "a partial file is cached under its name");
    assert_eq!(parts(&hf).len(), 1);

    // Run again: it resumes where the killed run stopped and ends with the exact bytes.
    server.clear_log();
    let out = download(&server, &hf).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert_eq!(std::fs::read(&path).unwrap(), file);
    let transfers: Vec<Option<String>> = server
        .requests()
        .into_iter()
        .filter(|r| r.range.as_deref() != Some("bytes=0-0"))
        .map(|r| r.range)
        .collect();
    assert_eq!(transfers, vec![Some("bytes=1000000-".to_string())]);
    assert!(parts(&hf).is_empty(), "the .part file was left behind");
}

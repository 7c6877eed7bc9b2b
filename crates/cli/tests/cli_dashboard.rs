//! `sae-geometry dashboard` on the tiny GPT-2: an index and a page per latent, rendered in
//! headless Chromium without console errors.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::process::Command;

/// Console lines (errors, uncaught exceptions) and the DOM of a page loaded headless.
fn chromium(page: &Path) -> (String, Vec<String>) {
    use latent_geometry::headless::{chromium_binary, load_page};
    let p = load_page(&chromium_binary(), page)
        .unwrap_or_else(|e| panic!("headless Chromium is needed (.ci/run installs it): {e}"));
    (p.dom, p.console)
}

#[test]
fn dashboards_render_offline_without_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let model = common::tiny_model(tmp.path());
    let corpus = common::corpus(tmp.path(), 10);
    let sae = common::random_sae(tmp.path(), "sae", 32, Some(4), 7);
    let out = tmp.path().join("dash");
    let o = Command::new(env!("CARGO_BIN_EXE_sae-geometry"))
        .args(["--log", "warn", "dashboard", "--offline", "--model"])
        .arg(&model)
        .arg("--sae")
        .arg(&sae)
        .arg("--corpus")
        .arg(&corpus)
        .args(["--latents", "0-7", "--total-tokens", "4000", "--family"])
        .arg(&sae)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (dom, console) = chromium(&out.join("index.html"));
    assert!(console.is_empty(), "console: {console:?}");
    assert!(
        dom.contains("data-latents=\"8\""),
        "{}",
        &dom[..dom.len().min(400)]
    );
    let mut windows = 0;
    for l in 0..8 {
        let page = out.join(format!("latent-{l}.html"));
        let (dom, console) = chromium(&page);
        assert!(console.is_empty(), "latent {l}: {console:?}");
        assert!(dom.contains(&format!("data-latent=\"{l}\"")));
        assert!(!dom.contains("http://") || dom.contains("xmlns=\"http://www.w3.org/2000/svg\""));
        windows += dom.matches("class=\"w\"").count();
    }
    assert!(windows > 8, "only {windows} windows across 8 latents");
}

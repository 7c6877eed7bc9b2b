//! Cross-crate integration tests live in `tests/` beside this file; this library only holds
//! helpers they share.

pub mod hub_server;
pub mod neuronpedia_server;
pub mod npz;
pub mod online_fixtures;
mod serve;

use std::path::PathBuf;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The SAELens golden fixtures of sae-core.
pub fn saelens_fixtures() -> PathBuf {
    workspace_root().join("crates/core/tests/fixtures/saelens")
}

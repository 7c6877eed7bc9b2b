//! Nested cargo invocations.

use std::process::Command;

/// `cargo` (the one that ran xtask), without the variables `cargo run` set for xtask itself
/// (`CARGO_PKG_*`, `CARGO_MANIFEST_*`, `CARGO_CRATE_NAME`, `CARGO_BIN_NAME`,
/// `CARGO_PRIMARY_PACKAGE`). A build script that declares `rerun-if-env-changed` on one of them —
/// ring's reads `CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`, … through such a wrapper — would otherwise
/// look changed to the nested cargo, which then reruns it and recompiles everything above it
/// (rustls, ureq, hf-hub, every crate of ours) that the outer `cargo xtask` build had just
/// compiled: minutes of `cargo xtask test` on a cold machine.
pub(crate) fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (k, _) in std::env::vars_os() {
        let Some(k) = k.to_str() else { continue };
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_MANIFEST_")
            || matches!(
                k,
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
            )
        {
            c.env_remove(k);
        }
    }
    c
}

//! Checking an offline HTML page the way a reader's browser shows it: load it in headless
//! Chromium (the Debian package `chromium`), take the DOM after its scripts ran and the
//! console errors it logged. The plots and dashboards of this crate record what they drew in
//! `data-*` attributes of their root element, which [`PageLoad::attr`] reads back.

use std::path::Path;
use std::process::Command;

use crate::error::{GeometryError, Result};

/// The Chromium binary: `SAE_GEOMETRY_CHROMIUM`, else `chromium`.
pub fn chromium_binary() -> String {
    std::env::var("SAE_GEOMETRY_CHROMIUM").unwrap_or_else(|_| "chromium".into())
}

/// A page as headless Chromium left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageLoad {
    /// The DOM after the page's scripts ran.
    pub dom: String,
    /// Console messages and uncaught exceptions from Chromium's log.
    pub console: Vec<String>,
}

impl PageLoad {
    /// The integer value of the first `name="…"` attribute in the DOM.
    pub fn attr(&self, name: &str) -> Option<usize> {
        let key = format!("{name}=\"");
        let at = self.dom.find(&key)? + key.len();
        self.dom[at..].split('"').next()?.parse().ok()
    }
}

/// Loads `page` (a local file) in headless Chromium `bin`.
pub fn load_page(bin: &str, page: &Path) -> Result<PageLoad> {
    let page = std::fs::canonicalize(page).map_err(|e| crate::plot::io_err(page, e))?;
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .map_err(|e| GeometryError::Io {
            path: bin.into(),
            message: format!("running headless Chromium (the Debian package `chromium`): {e}"),
        })?;
    let log = String::from_utf8_lossy(&out.stderr);
    Ok(PageLoad {
        dom: String::from_utf8_lossy(&out.stdout).into_owned(),
        console: log
            .lines()
            .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
            .map(str::to_string)
            .collect(),
    })
}

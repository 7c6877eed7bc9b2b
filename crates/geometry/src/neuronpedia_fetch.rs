//! Neuronpedia's explanation exports over the wire, cached: `GET
//! {base}/api/explanation/export?modelId=…&saeId=…`, kept under `cache_dir/{modelId}/{saeId}.json`
//! only once the body is a well-formed export (a JSON array of objects each with an `index`), so
//! an HTML error page or a truncated reply is never cached as done. 429 waits the server's
//! `Retry-After` (capped), 5xx and transport errors back off exponentially with jitter; other
//! 4xx fail at once. Offline, only the cache is read. The network needs the `network` feature;
//! without it every fetch is a cache lookup.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{GeometryError, Result};

/// The public site, used when `NEURONPEDIA_BASE_URL` is unset.
pub const DEFAULT_BASE_URL: &str = "https://www.neuronpedia.org";

/// The shared export cache, like the HF cache one per user: `NEURONPEDIA_CACHE`, else
/// `$XDG_CACHE_HOME/sae-geometry/neuronpedia`, else `~/.cache/sae-geometry/neuronpedia` (else
/// `.sae-geometry-cache/neuronpedia` under the working directory when there is no home).
pub fn default_cache_dir() -> PathBuf {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = var("NEURONPEDIA_CACHE") {
        return d;
    }
    var("XDG_CACHE_HOME")
        .or_else(|| var("HOME").map(|h| h.join(".cache")))
        .map(|c| c.join("sae-geometry/neuronpedia"))
        .unwrap_or_else(|| PathBuf::from(".sae-geometry-cache/neuronpedia"))
}

/// Where exports come from and how hard to try.
#[derive(Debug, Clone, PartialEq)]
pub struct NeuronpediaConfig {
    /// The site (default [`DEFAULT_BASE_URL`], or `NEURONPEDIA_BASE_URL`).
    pub base_url: String,
    /// The cache directory.
    pub cache_dir: PathBuf,
    /// Read the cache only.
    pub offline: bool,
    /// Attempts after the first (5).
    pub max_retries: u32,
    /// First backoff delay (1 s), doubled per attempt.
    pub backoff: Duration,
    /// Largest delay, and largest `Retry-After` honoured (60 s).
    pub backoff_max: Duration,
    /// Per-request timeout (120 s).
    pub timeout: Duration,
}

impl NeuronpediaConfig {
    /// Defaults with the cache in `cache_dir`; `NEURONPEDIA_BASE_URL` overrides the site and
    /// `HF_HUB_OFFLINE`-style `NEURONPEDIA_OFFLINE` (1/true/yes/on) forbids the network.
    pub fn from_env(cache_dir: impl Into<PathBuf>) -> Self {
        let offline = std::env::var("NEURONPEDIA_OFFLINE").is_ok_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        });
        Self {
            base_url: std::env::var("NEURONPEDIA_BASE_URL")
                .ok()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_string()),
            cache_dir: cache_dir.into(),
            offline,
            max_retries: 5,
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            timeout: Duration::from_secs(120),
        }
    }

    /// The export's URL.
    pub fn url(&self, model_id: &str, sae_id: &str) -> String {
        format!(
            "{}/api/explanation/export?modelId={}&saeId={}",
            self.base_url.trim_end_matches('/'),
            encode(model_id),
            encode(sae_id)
        )
    }

    /// The export's place in the cache.
    pub fn cached_path(&self, model_id: &str, sae_id: &str) -> Result<PathBuf> {
        for (what, id) in [("modelId", model_id), ("saeId", sae_id)] {
            if id.is_empty() || id == "." || id == ".." || id.contains(['/', '\\', '\0']) {
                return Err(GeometryError::InvalidParameter {
                    name: "Neuronpedia id",
                    expected: "a non-empty id without path separators".into(),
                    found: format!("{what} {id:?}"),
                });
            }
        }
        Ok(self.cache_dir.join(model_id).join(format!("{sae_id}.json")))
    }
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Checks that `body` is a Neuronpedia export: a JSON array of objects, each with an `index`
/// (string of digits or number). Returns the number of entries.
pub fn validate_export(body: &[u8]) -> std::result::Result<usize, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        let start = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        format!("not JSON ({e}); the reply starts {start:?}")
    })?;
    let items = v
        .as_array()
        .ok_or("a JSON value that is not an array of explanations")?;
    for (n, item) in items.iter().enumerate() {
        let ok = match item.get("index") {
            Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().is_ok(),
            Some(serde_json::Value::Number(x)) => x.as_u64().is_some(),
            _ => false,
        };
        if !ok {
            return Err(format!("entry {n} has no integer `index`"));
        }
    }
    Ok(items.len())
}

/// The export of `sae_id` on `model_id`: from the cache when it holds a valid one, else
/// downloaded (unless offline), validated and cached atomically. Returns the cached file.
///
/// # Errors
/// [`GeometryError::Fetch`] naming the URL when the site keeps failing, answers something that
/// is not an export, or refuses; [`GeometryError::Io`] when the cache cannot be written;
/// [`GeometryError::NotCached`] offline without the file.
pub fn fetch_explanations(
    cfg: &NeuronpediaConfig,
    model_id: &str,
    sae_id: &str,
) -> Result<PathBuf> {
    let path = cfg.cached_path(model_id, sae_id)?;
    if let Ok(bytes) = std::fs::read(&path) {
        match validate_export(&bytes) {
            Ok(_) => return Ok(path),
            Err(why) => {
                tracing::warn!(path = %path.display(), why, "cached Neuronpedia export is not valid: fetching it again");
            }
        }
    }
    let url = cfg.url(model_id, sae_id);
    if cfg.offline {
        return Err(GeometryError::NotCached { url, path });
    }
    let body = download(cfg, &url)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| crate::plot::io_err(dir, e))?;
    }
    sae_core::atomic::write(&path, &body)?;
    Ok(path)
}

/// The delay before attempt `attempt` (1-based retry count): `backoff·2^(attempt−1)`, capped,
/// with up to 25 % jitter.
fn backoff(cfg: &NeuronpediaConfig, attempt: u32) -> Duration {
    let base = cfg
        .backoff
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(cfg.backoff_max);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base + base.mul_f64(0.25 * f64::from(nanos % 1000) / 1000.0)
}

/// `Retry-After` in seconds (or absent/unparsable: none), capped at `max`.
fn retry_after(v: Option<&str>, max: Duration) -> Option<Duration> {
    let s: f64 = v?.trim().parse().ok()?;
    (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(max.as_secs_f64())))
}

#[cfg(feature = "network")]
fn download(cfg: &NeuronpediaConfig, url: &str) -> Result<Vec<u8>> {
    let agent = ureq::AgentBuilder::new().timeout(cfg.timeout).build();
    let fail = |message: String| GeometryError::Fetch {
        url: url.to_string(),
        message,
    };
    let mut last = String::new();
    for attempt in 0..=cfg.max_retries {
        if attempt > 0 {
            tracing::info!(url, attempt, error = %last, "retrying Neuronpedia");
        }
        let wait = match agent.get(url).call() {
            Ok(r) => {
                let mut body = Vec::new();
                match std::io::Read::read_to_end(&mut r.into_reader(), &mut body) {
                    Ok(_) => match validate_export(&body) {
                        Ok(n) => {
                            tracing::info!(url, entries = n, "downloaded a Neuronpedia export");
                            return Ok(body);
                        }
                        Err(why) => {
                            last = format!("the reply is not an explanation export: {why}");
                            None
                        }
                    },
                    Err(e) => {
                        last = format!("reading the reply: {e}");
                        None
                    }
                }
            }
            Err(ureq::Error::Status(code, r)) => {
                last = format!("HTTP {code}");
                match code {
                    429 => retry_after(r.header("retry-after"), cfg.backoff_max),
                    500..=599 => None,
                    _ => return Err(fail(format!("HTTP {code}: not retried"))),
                }
            }
            Err(e) => {
                last = e.to_string();
                None
            }
        };
        if attempt < cfg.max_retries {
            std::thread::sleep(wait.unwrap_or_else(|| backoff(cfg, attempt + 1)));
        }
    }
    Err(fail(format!(
        "gave up after {} attempts; last: {last}",
        cfg.max_retries + 1
    )))
}

#[cfg(not(feature = "network"))]
fn download(cfg: &NeuronpediaConfig, url: &str) -> Result<Vec<u8>> {
    let _ = (backoff(cfg, 1), retry_after(None, cfg.backoff_max));
    Err(GeometryError::Fetch {
        url: url.to_string(),
        message: "latent-geometry was built without the `network` feature".into(),
    })
}

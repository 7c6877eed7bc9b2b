//! The HuggingFace hub: the local HF cache, `HF_HUB_OFFLINE`, and (with the `hub` feature)
//! downloads. Also [`SaeSource`] and [`from_pretrained`].
//!
//! Resolution order for a file: the HF cache (`HF_HUB_CACHE`, else `HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`, in the layout huggingface_hub writes); then, unless offline, the
//! hub itself (downloads land in the same cache). Offline means `HF_HUB_OFFLINE` set to a true
//! value (`1`, `true`, `yes`, `on`), [`HubClient::offline`], or a build without the `hub` feature.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use burn::tensor::Device;
use hf_hub::{Cache, Repo, RepoType};

/// Retries of a failed download after the first attempt.
#[cfg(feature = "hub")]
const DOWNLOAD_RETRIES: u32 = 3;

use crate::config::{CFG_FILENAME, SPARSITY_FILENAME, WEIGHTS_FILENAME};
use crate::error::{Result, SaeError};
use crate::registry::Registry;
use crate::sae::Sae;

/// A hub repository: id, kind and revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRepo {
    /// `owner/name`.
    pub id: String,
    /// Model or dataset repository.
    pub kind: HubRepoKind,
    /// Branch, tag or commit (default `main`).
    pub revision: String,
}

/// The kind of hub repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HubRepoKind {
    /// A model repository (SAEs live in these).
    Model,
    /// A dataset repository.
    Dataset,
}

impl HubRepo {
    /// A model repository at `main`.
    pub fn model(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            kind: HubRepoKind::Model,
            revision: "main".into(),
        }
    }

    /// A dataset repository at `main`.
    pub fn dataset(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            kind: HubRepoKind::Dataset,
            revision: "main".into(),
        }
    }

    /// The same repository at another revision.
    pub fn with_revision(mut self, revision: impl Into<String>) -> Self {
        self.revision = revision.into();
        self
    }

    fn to_hf(&self) -> Repo {
        let kind = match self.kind {
            HubRepoKind::Model => RepoType::Model,
            HubRepoKind::Dataset => RepoType::Dataset,
        };
        Repo::with_revision(self.id.clone(), kind, self.revision.clone())
    }
}

/// Whether an environment value means "true" to huggingface_hub.
fn env_true(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// The token huggingface_hub would send: `HF_TOKEN` when set and non-empty, else the token
/// file the usual login writes (`HF_TOKEN_PATH`, else `HF_HOME/token`, else
/// `~/.cache/huggingface/token`), trimmed; `None` when neither has one.
pub fn token_from_env() -> Option<String> {
    token_from(|k| std::env::var_os(k))
}

/// [`token_from_env`] reading variables through `var`.
fn token_from(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<String> {
    let text = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    if let Some(t) = text(var("HF_TOKEN").and_then(|v| v.into_string().ok())) {
        return Some(t);
    }
    let path = match (var("HF_TOKEN_PATH"), var("HF_HOME")) {
        (Some(p), _) => PathBuf::from(p),
        (None, Some(home)) => PathBuf::from(home).join("token"),
        (None, None) => Cache::default().token_path(),
    };
    text(std::fs::read_to_string(path).ok())
}

/// Fetches files from the HF cache and, when allowed, the hub. Its `Debug` never shows the
/// token.
#[derive(Clone)]
pub struct HubClient {
    cache_dir: PathBuf,
    offline: bool,
    endpoint: Option<String>,
    token: Option<String>,
    progress: bool,
}

impl HubClient {
    /// A client configured from the environment as huggingface_hub is: `HF_HUB_CACHE`,
    /// `HF_HOME`, `HF_HUB_OFFLINE`, `HF_ENDPOINT`, and the token of [`token_from_env`]
    /// (`HF_TOKEN`, else the login's token file).
    pub fn from_env() -> Self {
        let cache_dir = std::env::var_os("HF_HUB_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| Cache::from_env().path().clone());
        let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| env_true(&v));
        Self {
            cache_dir,
            offline,
            endpoint: std::env::var("HF_ENDPOINT").ok().filter(|s| !s.is_empty()),
            token: token_from_env(),
            progress: true,
        }
    }

    /// Sends `token` (or none) to the hub instead of the environment's.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token.filter(|t| !t.trim().is_empty());
        self
    }

    /// Whether a token will be sent.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The error for a failed request: a 401/403 says which repository refused and how to
    /// supply a token.
    #[cfg(feature = "hub")]
    fn hub_error(&self, repo: &HubRepo, file: &str, message: String) -> SaeError {
        let denied = ["status code 401", "status code 403"]
            .iter()
            .any(|c| message.contains(c));
        let message = if denied {
            let kind = match repo.kind {
                HubRepoKind::Model => "model",
                HubRepoKind::Dataset => "dataset",
            };
            if self.token.is_some() {
                format!(
                    "access to the {kind} repository {} was refused with the token supplied \
                     ({message}): the token lacks access — accept the repository's terms on the \
                     hub with this account, or use another token",
                    repo.id
                )
            } else {
                format!(
                    "the {kind} repository {} is gated or private and no token was sent \
                     ({message}): accept its terms on the hub, then set HF_TOKEN or log in (the \
                     login writes HF_HOME/token, which is read when HF_TOKEN is unset)",
                    repo.id
                )
            }
        } else {
            message
        };
        SaeError::Hub {
            repo: repo.id.clone(),
            file: file.to_string(),
            message,
        }
    }

    /// Uses another cache directory (the `hub` folder, holding `models--owner--name`).
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = dir.into();
        self
    }

    /// Forbids (or allows) the network.
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// Another hub endpoint (a mirror).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Shows (or hides) download progress bars.
    pub fn with_progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// Whether the network is off.
    pub fn is_offline(&self) -> bool {
        self.offline || !cfg!(feature = "hub")
    }

    /// The file's path in the cache, if it is there.
    pub fn cached(&self, repo: &HubRepo, file: &str) -> Option<PathBuf> {
        Cache::new(self.cache_dir.clone())
            .repo(repo.to_hf())
            .get(file)
    }

    /// The file's local path: from the cache, else downloaded into it.
    pub fn get(&self, repo: &HubRepo, file: &str) -> Result<PathBuf> {
        if let Some(p) = self.cached(repo, file) {
            tracing::debug!(repo = %repo.id, file, path = %p.display(), "HF cache hit");
            return Ok(p);
        }
        if self.offline {
            return Err(self.not_cached(repo, file, "HF_HUB_OFFLINE is set"));
        }
        self.download(repo, file)
    }

    /// Every file in the repository at its revision: from the hub when online, else from the
    /// cached snapshot (`{cache}/{kind}s--owner--name/snapshots/{commit}`, the commit read from
    /// `refs/{revision}` or the revision itself when it is a commit hash). Sorted.
    ///
    /// Every successful remote listing is saved beside the repository's cache
    /// (`{cache}/{kind}s--owner--name/listings/{revision}.json`); offline, that saved listing
    /// answers first (it also names files not downloaded yet).
    pub fn list_files(&self, repo: &HubRepo) -> Result<Vec<String>> {
        if !self.is_offline() {
            match self.list_remote(repo) {
                Ok(files) => {
                    self.save_listing(repo, &files);
                    return Ok(files);
                }
                Err(e) => {
                    tracing::warn!(repo = %repo.id, error = %e, "listing from the hub failed; using the cache")
                }
            }
        }
        match self.saved_listing(repo) {
            Some(files) => Ok(files),
            None => self.list_cached(repo),
        }
    }

    /// The listing an earlier online run saved, without asking the hub; else [`Self::list_files`].
    /// What loaders use to pick files (a sharded checkpoint's index, a dataset split's files), so
    /// a second run of anything makes no request at all — as hf-hub's cached `get`. A repository
    /// changed upstream since is seen after the cache's `listings/` entry is removed.
    pub fn list_files_cached_first(&self, repo: &HubRepo) -> Result<Vec<String>> {
        match self.saved_listing(repo) {
            Some(files) => {
                tracing::debug!(repo = %repo.id, "file listing from the cache");
                Ok(files)
            }
            None => self.list_files(repo),
        }
    }

    fn listing_path(&self, repo: &HubRepo) -> PathBuf {
        self.cache_dir
            .join(repo.to_hf().folder_name())
            .join("listings")
            .join(format!("{}.json", repo.revision.replace('/', "%2F")))
    }

    fn saved_listing(&self, repo: &HubRepo) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(self.listing_path(repo)).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn save_listing(&self, repo: &HubRepo, files: &[String]) {
        let path = self.listing_path(repo);
        let text = serde_json::to_string(files).unwrap_or_default();
        let made = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .map_err(|e| SaeError::io(&path, e));
        if let Err(e) = made.and_then(|()| crate::atomic::write(&path, text)) {
            tracing::warn!(path = %path.display(), error = %e, "could not save the file listing");
        }
    }

    /// Whether the hub itself answers (a remote listing of `repo` succeeds); never the cache.
    pub fn is_reachable(&self, repo: &HubRepo) -> bool {
        !self.is_offline() && self.list_remote(repo).is_ok()
    }

    fn list_cached(&self, repo: &HubRepo) -> Result<Vec<String>> {
        let root = self.cache_dir.join(repo.to_hf().folder_name());
        let ref_file = root.join("refs").join(&repo.revision);
        let commit = match std::fs::read_to_string(&ref_file) {
            Ok(c) => c.trim().to_string(),
            Err(_) => repo.revision.clone(),
        };
        let snapshot = root.join("snapshots").join(&commit);
        if !snapshot.is_dir() {
            return Err(self.not_cached(
                repo,
                "(file listing)",
                "no cached snapshot and no network",
            ));
        }
        let mut files = Vec::new();
        let mut stack = vec![snapshot.clone()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| SaeError::io(&dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| SaeError::io(&dir, e))?;
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(&snapshot) {
                    files.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        files.sort();
        Ok(files)
    }

    #[cfg(feature = "hub")]
    fn list_remote(&self, repo: &HubRepo) -> Result<Vec<String>> {
        let mut builder =
            hf_hub::api::sync::ApiBuilder::from_cache(Cache::new(self.cache_dir.clone()))
                .with_progress(false)
                .with_token(self.token.clone());
        if let Some(e) = &self.endpoint {
            builder = builder.with_endpoint(e.clone());
        }
        let hub_err = |message: String| self.hub_error(repo, "(file listing)", message);
        let api = builder.build().map_err(|e| hub_err(e.to_string()))?;
        let info = api
            .repo(repo.to_hf())
            .info()
            .map_err(|e| hub_err(e.to_string()))?;
        let mut files: Vec<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
        files.sort();
        Ok(files)
    }

    #[cfg(not(feature = "hub"))]
    fn list_remote(&self, repo: &HubRepo) -> Result<Vec<String>> {
        Err(self.not_cached(
            repo,
            "(file listing)",
            "sae-core was built without the `hub` feature",
        ))
    }

    fn not_cached(&self, repo: &HubRepo, file: &str, why: &str) -> SaeError {
        SaeError::NotCached {
            repo: repo.id.clone(),
            file: file.to_string(),
            cache: self.cache_dir.clone(),
            why: why.to_string(),
        }
    }

    #[cfg(feature = "hub")]
    fn download(&self, repo: &HubRepo, file: &str) -> Result<PathBuf> {
        let mut builder =
            hf_hub::api::sync::ApiBuilder::from_cache(Cache::new(self.cache_dir.clone()))
                .with_progress(self.progress)
                .with_token(self.token.clone());
        if let Some(e) = &self.endpoint {
            builder = builder.with_endpoint(e.clone());
        }
        let api = builder
            .build()
            .map_err(|e| self.hub_error(repo, file, e.to_string()))?;
        let api_repo = api.repo(repo.to_hf());
        let url = api_repo.url(file);
        tracing::info!(repo = %repo.id, file, %url, "downloading from the HuggingFace hub");
        // Transient failures (a 5xx, 429, a dropped connection) are retried with backoff; each
        // attempt resumes from the bytes already in the blob's `.part` file (hf-hub's own retry
        // loop is not used: it resumes from the wrong offset when an earlier process left a
        // `.part`), and a `.part` that cannot be resumed is removed and the file fetched anew.
        // The blob gets its name only once complete, so nothing partial is ever cached.
        let mut attempt = 0u32;
        loop {
            let err = match api_repo.get(file) {
                Ok(p) => return Ok(p),
                Err(e) => e,
            };
            let message = err.to_string();
            let resumable = matches!(err, hf_hub::api::sync::ApiError::InvalidResume);
            if resumable {
                self.remove_partial_blobs(repo);
            }
            let permanent = (400..500)
                .filter(|c| *c != 408 && *c != 429)
                .any(|c| message.contains(&format!("status code {c}")));
            if permanent || attempt >= DOWNLOAD_RETRIES {
                return Err(self.hub_error(repo, file, format!("{url}: {message}")));
            }
            attempt += 1;
            let wait = std::time::Duration::from_millis(250 << attempt.min(5));
            tracing::warn!(repo = %repo.id, file, %url, error = %message, attempt, "download failed; retrying in {wait:?}");
            std::thread::sleep(wait);
        }
    }

    /// Removes the repository's unfinished blobs (`blobs/*.part`), which a download that can no
    /// longer resume leaves behind.
    #[cfg(feature = "hub")]
    fn remove_partial_blobs(&self, repo: &HubRepo) {
        let blobs = self
            .cache_dir
            .join(repo.to_hf().folder_name())
            .join("blobs");
        let Ok(entries) = std::fs::read_dir(&blobs) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "part") {
                tracing::warn!(path = %p.display(), "removing a download that cannot resume");
                let _ = std::fs::remove_file(&p);
            }
        }
    }

    #[cfg(not(feature = "hub"))]
    fn download(&self, repo: &HubRepo, file: &str) -> Result<PathBuf> {
        let _ = (&self.endpoint, &self.token, self.progress);
        Err(self.not_cached(repo, file, "sae-core was built without the `hub` feature"))
    }
}

impl std::fmt::Debug for HubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubClient")
            .field("cache_dir", &self.cache_dir)
            .field("offline", &self.offline)
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("progress", &self.progress)
            .finish()
    }
}

impl Default for HubClient {
    fn default() -> Self {
        Self::from_env()
    }
}

/// Where an SAE comes from: a local directory in SAELens's layout, or a registry entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaeSource {
    /// A directory holding `cfg.json` and `sae_weights.safetensors`.
    Dir(PathBuf),
    /// `release` and `sae_id` from the pretrained registry.
    Pretrained {
        /// The release, e.g. `gpt2-small-res-jb`.
        release: String,
        /// The SAE id, e.g. `blocks.8.hook_resid_pre`.
        sae_id: String,
    },
}

impl FromStr for SaeSource {
    type Err = String;
    /// An existing directory, or `RELEASE/SAE_ID` (split at the first `/`).
    fn from_str(s: &str) -> Result<Self, String> {
        let p = Path::new(s);
        if p.is_dir() {
            return Ok(SaeSource::Dir(p.to_path_buf()));
        }
        match s.split_once('/') {
            Some((release, id)) if !release.is_empty() && !id.is_empty() => {
                Ok(SaeSource::Pretrained {
                    release: release.into(),
                    sae_id: id.into(),
                })
            }
            _ => Err(format!(
                "`{s}` is neither a directory nor RELEASE/SAE_ID (e.g. gpt2-small-res-jb/blocks.8.hook_resid_pre)"
            )),
        }
    }
}

impl fmt::Display for SaeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaeSource::Dir(p) => write!(f, "{}", p.display()),
            SaeSource::Pretrained { release, sae_id } => write!(f, "{release}/{sae_id}"),
        }
    }
}

impl SaeSource {
    /// Loads the SAE.
    pub fn load(&self, hub: &HubClient, device: &Device) -> Result<Sae> {
        match self {
            SaeSource::Dir(d) => Sae::load(d, device),
            SaeSource::Pretrained { release, sae_id } => {
                from_pretrained(release, sae_id, hub, device)
            }
        }
    }
}

/// SAELens's `SAE.from_pretrained(release, sae_id)`: looks the SAE up in the registry and reads
/// it through the cache or the hub. Releases in SAELens's layout: `cfg.json`,
/// `sae_weights.safetensors` and (if the repository has it) `sparsity.safetensors`, with the
/// release's config overrides. Releases in third-party layouts (Gemma Scope, Llama Scope, ...):
/// through their converter ([`crate::convert`]), with the overrides SAELens passes it. Either
/// way the registry's norm scaling factor is folded into `expected_average_only_in` SAEs as
/// SAELens does.
pub fn from_pretrained(
    release: &str,
    sae_id: &str,
    hub: &HubClient,
    device: &Device,
) -> Result<Sae> {
    let registry = Registry::get()?;
    let (rel, entry) = registry.lookup(release, sae_id)?;
    let mut sae = match rel.conversion_func {
        None => load_native(rel, entry, hub, device)?,
        Some(conversion) => {
            let source = crate::convert::Source::new(hub, &rel.repo_id, &entry.path, conversion);
            crate::convert::load(&source, &converter_overrides(rel, entry), device)?
        }
    };
    if sae.config().normalize_activations
        == crate::config::NormalizeActivations::ExpectedAverageOnlyIn
    {
        match entry.norm_scaling_factor {
            Some(f) => sae.fold_activation_norm_scaling_factor(f as f32),
            None => tracing::warn!(
                release,
                sae_id,
                "normalize_activations is expected_average_only_in but the registry has no norm_scaling_factor: not folded"
            ),
        }
    }
    Ok(sae)
}

/// SAELens's `get_config_overrides` for a converted release, plus the device and dtype
/// `from_pretrained` adds.
fn converter_overrides(
    rel: &crate::registry::Release,
    entry: &crate::registry::PretrainedSae,
) -> serde_json::Map<String, serde_json::Value> {
    let mut overrides: serde_json::Map<String, serde_json::Value> = rel
        .config_overrides
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(np) = &entry.neuronpedia {
        overrides.insert("neuronpedia_id".into(), np.clone().into());
    }
    overrides.insert("device".into(), "cpu".into());
    overrides.insert("dtype".into(), "float32".into());
    overrides
}

/// A temporal SAE of the registry (`conversion_func: temporal`), which encodes sequences and so
/// is a [`crate::temporal::TemporalSae`] rather than a [`Sae`]; any other release is an error
/// naming its layout.
pub fn temporal_from_pretrained(
    release: &str,
    sae_id: &str,
    hub: &HubClient,
    device: &Device,
) -> Result<crate::temporal::TemporalSae> {
    let registry = Registry::get()?;
    let (rel, entry) = registry.lookup(release, sae_id)?;
    match rel.conversion_func {
        Some(c @ crate::convert::Conversion::Temporal) => {
            let source = crate::convert::Source::new(hub, &rel.repo_id, &entry.path, c);
            crate::convert::load_temporal(&source, &converter_overrides(rel, entry), device)
        }
        other => Err(SaeError::UnsupportedRelease {
            release: release.to_string(),
            conversion: other.map_or_else(|| "saelens".to_string(), |c| c.to_string()),
            why: "not a temporal SAE: load it with from_pretrained".into(),
        }),
    }
}

/// A release in SAELens's own layout.
fn load_native(
    rel: &crate::registry::Release,
    entry: &crate::registry::PretrainedSae,
    hub: &HubClient,
    device: &Device,
) -> Result<Sae> {
    let repo = HubRepo::model(rel.repo_id.clone());
    let folder = entry.path.trim_end_matches('/');
    let cfg = hub.get(&repo, &format!("{folder}/{CFG_FILENAME}"))?;
    let weights = hub.get(&repo, &format!("{folder}/{WEIGHTS_FILENAME}"))?;
    let dir = cfg.parent().map(Path::to_path_buf).unwrap_or_default();
    if weights.parent() != Some(dir.as_path()) {
        return Err(SaeError::Hub {
            repo: rel.repo_id.clone(),
            file: WEIGHTS_FILENAME.into(),
            message: "config and weights resolved to different snapshots".into(),
        });
    }
    // The sparsity file is optional: SAELens ignores its absence.
    let sparsity_file = format!("{folder}/{SPARSITY_FILENAME}");
    if hub.cached(&repo, &sparsity_file).is_none()
        && !hub.is_offline()
        && let Err(e) = hub.get(&repo, &sparsity_file)
    {
        tracing::debug!(error = %e, "no sparsity file");
    }
    let mut sae = Sae::load(&dir, device)?;
    let cfg = sae.config_mut();
    if let Some(overrides) = &rel.config_overrides {
        for (k, v) in overrides {
            cfg.metadata.extra.insert(k.clone(), v.clone());
        }
    }
    if cfg.metadata.neuronpedia_id.is_none() {
        cfg.metadata.neuronpedia_id = entry.neuronpedia.clone();
    }
    Ok(sae)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_hub_offline_values_follow_huggingface_hub() {
        for v in ["1", "true", "TRUE", "yes", "On", " 1 "] {
            assert!(env_true(v), "{v}");
        }
        for v in ["0", "false", "", "no", "off", "2"] {
            assert!(!env_true(v), "{v}");
        }
    }

    #[test]
    fn offline_client_never_downloads() {
        let tmp = std::env::temp_dir().join(format!("sae-core-empty-cache-{}", std::process::id()));
        let hub = HubClient::from_env().with_cache_dir(&tmp).offline(true);
        assert!(hub.is_offline());
        let err = hub.get(&HubRepo::model("a/b"), "cfg.json").unwrap_err();
        assert!(matches!(err, SaeError::NotCached { .. }));
    }
}

#[cfg(test)]
mod token_tests {
    #![allow(clippy::unwrap_used, clippy::disallowed_methods)]

    use super::token_from;
    use std::collections::HashMap;
    use std::ffi::OsString;

    fn vars(v: &[(&str, &std::path::Path)]) -> HashMap<String, OsString> {
        v.iter()
            .map(|(k, p)| ((*k).to_string(), p.as_os_str().to_owned()))
            .collect()
    }

    #[test]
    fn the_login_token_file_is_read_when_hf_token_is_unset() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("token"), "hf_from_login\n").unwrap();
        // HF_HOME/token, as `huggingface-cli login` writes it.
        let env = vars(&[("HF_HOME", tmp.path())]);
        assert_eq!(
            token_from(|k| env.get(k).cloned()).as_deref(),
            Some("hf_from_login")
        );
        // HF_TOKEN wins over the file; an empty HF_TOKEN does not.
        let mut env2 = env.clone();
        env2.insert("HF_TOKEN".into(), "hf_env".into());
        assert_eq!(
            token_from(|k| env2.get(k).cloned()).as_deref(),
            Some("hf_env")
        );
        env2.insert("HF_TOKEN".into(), " ".into());
        assert_eq!(
            token_from(|k| env2.get(k).cloned()).as_deref(),
            Some("hf_from_login")
        );
        // HF_TOKEN_PATH names another file.
        let other = tmp.path().join("elsewhere");
        std::fs::write(&other, "hf_path").unwrap();
        let env3 = vars(&[("HF_HOME", tmp.path()), ("HF_TOKEN_PATH", &other)]);
        assert_eq!(
            token_from(|k| env3.get(k).cloned()).as_deref(),
            Some("hf_path")
        );
        // No file, no variable: no token.
        let empty = tempfile::tempdir().unwrap();
        let env4 = vars(&[("HF_HOME", empty.path())]);
        assert_eq!(token_from(|k| env4.get(k).cloned()), None);
    }
}

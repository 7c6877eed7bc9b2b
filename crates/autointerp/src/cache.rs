//! On-disk response cache keyed by the request's SHA-256, so a rerun costs nothing.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::client::{ChatBackend, ChatReply, ChatRequest, RequestFailure};

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    lower_hex(&Sha256::digest(bytes))
}

/// `bytes` as lower-case hex (a digest, for file names and fingerprints).
pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The cache key of a request: SHA-256 of its JSON (model, messages, limits; no key, no URL).
pub fn request_key(request: &ChatRequest) -> String {
    sha256_hex(&serde_json::to_vec(request).unwrap_or_default())
}

/// A backend with a directory of cached replies in front of it. Only successful replies are
/// cached; each is written to a temporary file and renamed, so a killed run leaves either the
/// whole reply or none.
#[derive(Debug)]
pub struct CachedBackend<B> {
    inner: B,
    dir: PathBuf,
}

impl<B> CachedBackend<B> {
    /// Caches `inner`'s replies in `dir` (created if missing).
    pub fn new(inner: B, dir: impl Into<PathBuf>) -> crate::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| crate::AutoInterpError::io(&dir, e))?;
        Ok(Self { inner, dir })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The cached reply to `request`, if any (an unreadable entry counts as a miss).
    pub fn get(&self, request: &ChatRequest) -> Option<ChatReply> {
        let bytes = std::fs::read(self.path(&request_key(request))).ok()?;
        let mut reply: ChatReply = serde_json::from_slice(&bytes).ok()?;
        reply.cached = true;
        Some(reply)
    }

    fn put(&self, request: &ChatRequest, reply: &ChatReply) {
        let key = request_key(request);
        let ok = serde_json::to_vec(reply)
            .ok()
            .and_then(|b| sae_core::atomic::write(self.path(&key), &b).ok());
        if ok.is_none() {
            tracing::warn!(cache = %self.dir.display(), "could not write a cache entry");
        }
    }
}

impl<B: ChatBackend> ChatBackend for CachedBackend<B> {
    async fn complete(&self, request: &ChatRequest) -> Result<ChatReply, RequestFailure> {
        if let Some(hit) = self.get(request) {
            return Ok(hit);
        }
        let reply = self.inner.complete(request).await?;
        self.put(request, &reply);
        Ok(reply)
    }
}

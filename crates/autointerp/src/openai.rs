//! The OpenAI-compatible backend: async-openai's client over a transport that owns retries.
//!
//! async-openai's own retry layer waits `Retry-After` on 429 but has no jitter and does not
//! retry timeouts or malformed bodies, so the client is given `RetryService` as its HTTP
//! service (async-openai's `middleware` feature): every attempt has a timeout; 429 waits the
//! server's `Retry-After` (else backs off); 5xx, timeouts, connection errors and 200 replies
//! whose body is not a chat completion back off exponentially with full jitter. Concurrency
//! is a semaphore around whole requests (retries included).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use futures::future::BoxFuture;
use rand::RngExt;
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::client::{ChatBackend, ChatReply, ChatRequest, RequestFailure, Usage};

/// Where and how to reach an OpenAI-compatible API.
#[derive(Clone)]
pub struct ClientConfig {
    /// Base URL, e.g. `http://127.0.0.1:8000/v1` (`OPENAI_BASE_URL`).
    pub api_base: String,
    /// API key (`OPENAI_API_KEY`); never logged, never written.
    pub api_key: Option<String>,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Limit on one attempt (connect, send, and read the whole body).
    pub request_timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff delay; doubled each retry.
    pub backoff_base: Duration,
    /// Largest backoff delay (and largest `Retry-After` honoured).
    pub backoff_max: Duration,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("api_base", &self.api_base)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("concurrency", &self.concurrency)
            .field("request_timeout", &self.request_timeout)
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

/// OpenAI's endpoint (async-openai's default), used when only `OPENAI_API_KEY` is set.
pub const OPENAI_DEFAULT_BASE: &str = async_openai::config::OPENAI_API_BASE;

/// The default model, as the tutorial.
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";

impl ClientConfig {
    /// Defaults for `api_base`: 8 requests at once, 60 s per attempt, 6 retries, backoff
    /// 0.5 s doubling to 30 s.
    pub fn new(api_base: impl Into<String>, api_key: Option<String>) -> Self {
        Self {
            api_base: api_base.into(),
            api_key,
            concurrency: 8,
            request_timeout: Duration::from_secs(60),
            max_retries: 6,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// Counters of what the transport did.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// HTTP attempts made.
    pub attempts: AtomicU64,
    /// Attempts retried (any cause).
    pub retries: AtomicU64,
    /// 429 replies.
    pub rate_limited: AtomicU64,
    /// Attempts that timed out.
    pub timeouts: AtomicU64,
}

/// The retrying HTTP service handed to async-openai.
#[derive(Clone)]
struct RetryService {
    http: reqwest::Client,
    cfg: Arc<ClientConfig>,
    stats: Arc<TransportStats>,
}

enum Attempt {
    Done(Result<reqwest::Response, OpenAIError>),
    Retry {
        wait: Option<Duration>,
        why: String,
        last: Option<reqwest::Response>,
    },
}

impl RetryService {
    fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .cfg
            .backoff_base
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.cfg.backoff_max);
        // Full jitter in [exp/2, exp].
        let f: f64 = rand::rng().random_range(0.5..=1.0);
        exp.mul_f64(f)
    }

    async fn attempt(&self, factory: &HttpRequestFactory) -> Attempt {
        let request = match factory.build().await {
            Ok(r) => r,
            Err(e) => return Attempt::Done(Err(e)),
        };
        self.stats.attempts.fetch_add(1, Ordering::Relaxed);
        let timeout = self.cfg.request_timeout;
        let fut = async {
            let resp = self.http.execute(request).await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let version = resp.version();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, version, body))
        };
        match tokio::time::timeout(timeout, fut).await {
            Err(_) => {
                self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                Attempt::Retry {
                    wait: None,
                    why: format!("timed out after {timeout:?}"),
                    last: None,
                }
            }
            Ok(Err(e)) if e.is_connect() || e.is_timeout() || e.is_body() || e.is_request() => {
                Attempt::Retry {
                    wait: None,
                    why: format!("transport: {e}"),
                    last: None,
                }
            }
            Ok(Err(e)) => Attempt::Done(Err(OpenAIError::Reqwest(e))),
            Ok(Ok((status, headers, version, body))) => {
                let retry_after = headers
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|s| retry_after(s, self.cfg.backoff_max));
                let valid_body = status.is_success() && looks_like_completion(&body);
                let mut b = http::Response::builder().status(status).version(version);
                if let Some(h) = b.headers_mut() {
                    *h = headers;
                }
                let rebuilt = b.body(body).map(reqwest::Response::from).ok();
                if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                    self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                    Attempt::Retry {
                        wait: retry_after,
                        why: "429 rate limited".into(),
                        last: rebuilt,
                    }
                } else if status.is_server_error() {
                    Attempt::Retry {
                        wait: retry_after,
                        why: format!("server error {status}"),
                        last: rebuilt,
                    }
                } else if status.is_success() && !valid_body {
                    Attempt::Retry {
                        wait: None,
                        why: "malformed completion body".into(),
                        last: rebuilt,
                    }
                } else {
                    match rebuilt {
                        Some(r) => Attempt::Done(Ok(r)),
                        None => Attempt::Done(Err(OpenAIError::InvalidArgument(
                            "could not rebuild the HTTP response".into(),
                        ))),
                    }
                }
            }
        }
    }

    async fn call_with_retries(
        self,
        factory: HttpRequestFactory,
    ) -> Result<reqwest::Response, OpenAIError> {
        let mut retry = 0;
        loop {
            match self.attempt(&factory).await {
                Attempt::Done(r) => return r,
                Attempt::Retry { wait, why, last } => {
                    if retry >= self.cfg.max_retries {
                        tracing::warn!(%why, attempts = retry + 1, "giving up on a request");
                        return match last {
                            Some(r) => Ok(r),
                            None => Err(OpenAIError::InvalidArgument(format!(
                                "{why} (after {} attempts)",
                                retry + 1
                            ))),
                        };
                    }
                    let wait = wait.unwrap_or_else(|| self.backoff(retry));
                    tracing::debug!(%why, ?wait, retry, "retrying a request");
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
            }
        }
    }
}

fn looks_like_completion(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("choices").map(serde_json::Value::is_array))
        .unwrap_or(false)
}

impl tower::Service<HttpRequestFactory> for RetryService {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = BoxFuture<'static, Result<reqwest::Response, OpenAIError>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        Box::pin(self.clone().call_with_retries(factory))
    }
}

/// A chat-completion backend on any OpenAI-compatible server.
pub struct OpenAiBackend {
    client: async_openai::Client<OpenAIConfig>,
    limit: Semaphore,
    stats: Arc<TransportStats>,
}

impl std::fmt::Debug for OpenAiBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiBackend").finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

impl OpenAiBackend {
    /// A backend for `cfg`.
    pub fn new(cfg: ClientConfig) -> crate::Result<Self> {
        if cfg.concurrency == 0 {
            return Err(crate::AutoInterpError::invalid(
                "concurrency",
                "at least 1",
                0,
            ));
        }
        let mut oa = OpenAIConfig::new().with_api_base(cfg.api_base.trim_end_matches('/'));
        if let Some(k) = &cfg.api_key {
            oa = oa.with_api_key(k.clone());
        }
        // rustls's process-wide crypto provider: *ring* unless the embedding program installed
        // one first (an `Err` here means it did, and that one is used).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(cfg.concurrency)
            .build()
            .map_err(|e| crate::AutoInterpError::Client(e.to_string()))?;
        let stats = Arc::new(TransportStats::default());
        let limit = Semaphore::new(cfg.concurrency);
        let service = RetryService {
            http,
            cfg: Arc::new(cfg),
            stats: stats.clone(),
        };
        let client = async_openai::Client::with_config(oa).with_http_service(service);
        Ok(Self {
            client,
            limit,
            stats,
        })
    }

    /// What the transport has done so far.
    pub fn stats(&self) -> &TransportStats {
        &self.stats
    }
}

impl ChatBackend for OpenAiBackend {
    async fn complete(&self, request: &ChatRequest) -> Result<ChatReply, RequestFailure> {
        let _permit = self.limit.acquire().await.map_err(|e| RequestFailure {
            message: e.to_string(),
        })?;
        let mut body = serde_json::json!({
            "model": request.model,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            "n": 1,
            "stream": false,
        });
        if let Some(t) = request.temperature {
            body["temperature"] = serde_json::json!(t);
        }
        let out: Completion =
            self.client
                .chat()
                .create_byot(body)
                .await
                .map_err(|e| RequestFailure {
                    message: e.to_string(),
                })?;
        let content = out
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .ok_or_else(|| RequestFailure {
                message: "reply without a message".into(),
            })?;
        Ok(ChatReply {
            content: content.trim().to_string(),
            usage: out.usage.unwrap_or_default(),
            cached: false,
        })
    }
}

/// A `Retry-After` header in seconds, capped at `max`: a huge value (`1e20`, beyond what a
/// `Duration` holds) waits `max`; a negative, NaN or non-numeric one is ignored (`None`: the
/// client's own backoff applies).
pub(crate) fn retry_after(header: &str, max: Duration) -> Option<Duration> {
    let s = header.trim().parse::<f64>().ok()?;
    if !(s.is_finite() && s >= 0.0) {
        return None;
    }
    Some(Duration::try_from_secs_f64(s).map_or(max, |d| d.min(max)))
}

#[cfg(test)]
mod retry_after_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// `Retry-After: 1e20` panicked in `Duration::from_secs_f64` (issue #23).
    #[test]
    fn huge_negative_and_malformed_retry_after_never_panic() {
        let max = Duration::from_secs(30);
        assert_eq!(retry_after("1e20", max), Some(max));
        assert_eq!(retry_after("1.8e19", max), Some(max));
        assert_eq!(retry_after(" 2 ", max), Some(Duration::from_secs(2)));
        assert_eq!(retry_after("0.5", max), Some(Duration::from_millis(500)));
        for bad in ["-1", "NaN", "inf", "-inf", "soon", ""] {
            assert_eq!(retry_after(bad, max), None, "{bad}");
        }
    }
}

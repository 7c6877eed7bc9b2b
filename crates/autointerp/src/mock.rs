//! An in-process OpenAI-compatible server on 127.0.0.1 for tests and benchmarks (feature
//! `mock-server`): deterministic answers, configurable latency, injected faults, and a log of
//! every request it received.
//!
//! Answers: to a generation prompt, `This neuron activates on the token "X".` where X is the
//! first `<<…>>`-marked text of the last user message; to a detection or fuzzing prompt, the
//! numbers of the examples containing the explanation's quoted token (marked, for fuzzing).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// A fault injected into one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer normally.
    None,
    /// 429 with `Retry-After` seconds.
    RateLimit(f64),
    /// 500.
    ServerError,
    /// Sleep this long before answering (longer than the client's timeout).
    Hang(Duration),
    /// 200 with a body that is not JSON.
    MalformedJson,
    /// 200 with a well-formed completion whose text is nonsense.
    Garbage,
}

/// Which fault each attempt gets: `(request body hash, attempt number from 1) → fault`.
pub type FaultPlan = Arc<dyn Fn(u64, u32) -> Fault + Send + Sync>;

/// A plan with every kind of transient fault on first attempts, and garbage replies (which
/// stay garbage) for one request in 11.
pub fn mixed_faults(hang: Duration) -> FaultPlan {
    Arc::new(move |h, attempt| match (h % 11, attempt) {
        (0, 1) => Fault::RateLimit(0.05),
        (1, 1) => Fault::ServerError,
        (2, 1) => Fault::Hang(hang),
        (3, 1) => Fault::MalformedJson,
        (4, 1 | 2) => Fault::ServerError,
        (5, _) => Fault::Garbage,
        _ => Fault::None,
    })
}

/// One received request.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// Hash of the request body (without `stream`/`n`, which never change).
    pub hash: u64,
    /// Attempt number for this body, from 1.
    pub attempt: u32,
    /// When the handler started and finished, since the server started.
    pub started: Duration,
    /// When the handler finished; `None` when the client went away first (the handler is
    /// dropped with the connection) or it is still running.
    pub finished: Option<Duration>,
    /// The fault applied.
    pub fault: Fault,
    /// Whether the request carried an `Authorization` header.
    pub had_auth: bool,
}

struct ServerState {
    latency: Duration,
    faults: FaultPlan,
    t0: Instant,
    log: Mutex<Vec<LogEntry>>,
    attempts: Mutex<std::collections::HashMap<u64, u32>>,
}

/// A running mock server (stops when dropped).
pub struct MockServer {
    addr: std::net::SocketAddr,
    state: Arc<ServerState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn body_hash(body: &[u8]) -> u64 {
    let d = Sha256::digest(body);
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// The text between the first `<<` and the following `>>`.
fn first_marked(s: &str) -> Option<&str> {
    let a = s.find("<<")? + 2;
    let b = s[a..].find(">>")? + a;
    Some(&s[a..b])
}

/// The deterministic answer to a chat request.
///
/// - explanation prompts: "This neuron activates on the token \"X\"." with X the first
///   highlighted token;
/// - sequence-writing prompts: the asked number of numbered lines `k. w1 w2 X w3`, except that
///   every third line leaves X out (a sloppy writer, so generation scoring finds false
///   positives);
/// - detection and fuzzing prompts: the examples containing X (highlighted X for fuzzing),
///   or "None".
pub fn answer(request: &serde_json::Value) -> String {
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let system = messages
        .first()
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    if system.contains("summarize") {
        let tok = first_marked(user).unwrap_or("nothing");
        return format!(
            "This neuron activates on the token {}.",
            serde_json::to_string(tok).unwrap_or_default()
        );
    }
    // "…fires on the token \"X\"[ after \"Y\"].\n\n…" (or ending the message).
    let explanation = user
        .split_once("fires on ")
        .map(|(_, rest)| rest.split_once(".\n\n").map_or(rest, |x| x.0))
        .map(|e| e.strip_suffix('.').unwrap_or(e))
        .and_then(crate::judge::OfflineExplanation::parse);
    let Some(e) = explanation else {
        return "None".into();
    };
    let pattern = format!("{}{}", e.after.as_deref().unwrap_or(""), e.token).replace('\n', "↵");
    if let Some(n) = system
        .split_once("Write ")
        .and_then(|(_, r)| r.split_once(' '))
        .and_then(|(n, _)| n.parse::<usize>().ok())
    {
        return (1..=n)
            .map(|k| {
                if k % 3 == 0 {
                    format!("{k}. w1 w2 w3")
                } else {
                    format!("{k}. w1 w2{} w3", pattern.replace('↵', "\n"))
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
    }
    let fuzzing = system.contains("highlighted");
    let examples = user
        .split_once("Here are the examples:\n\n")
        .map_or("", |x| x.1);
    let hits: Vec<String> = examples
        .lines()
        .filter_map(|l| {
            let (n, text) = l.split_once(". ")?;
            let n: usize = n.trim().parse().ok()?;
            let hit = if fuzzing {
                text.contains(&format!("<<{}", e.token.replace('\n', "↵")))
            } else {
                text.contains(&pattern)
            };
            hit.then(|| n.to_string())
        })
        .collect();
    if hits.is_empty() {
        "None".into()
    } else {
        hits.join(", ")
    }
}

fn completion(content: &str) -> serde_json::Value {
    serde_json::json!({
        "id": "mock", "object": "chat.completion", "created": 0, "model": "mock",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
    })
}

async fn handle(
    State(s): State<Arc<ServerState>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let started = s.t0.elapsed();
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let hash = body_hash(&body);
    let attempt = {
        let mut a = s
            .attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let e = a.entry(hash).or_insert(0);
        *e += 1;
        *e
    };
    let fault = (s.faults)(hash, attempt);
    let index = {
        let mut log = s
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        log.push(LogEntry {
            hash,
            attempt,
            started,
            finished: None,
            fault: fault.clone(),
            had_auth: headers.contains_key("authorization"),
        });
        log.len() - 1
    };
    tokio::time::sleep(s.latency).await;
    let resp = match &fault {
        Fault::None => axum::Json(completion(&answer(&parsed))).into_response(),
        Fault::RateLimit(secs) => {
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                r#"{"error":{"message":"rate limited","type":"rate_limit_error"}}"#,
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert("retry-after", v);
            }
            r
        }
        Fault::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":{"message":"boom","type":"server_error"}}"#,
        )
            .into_response(),
        Fault::Hang(d) => {
            tokio::time::sleep(*d).await;
            axum::Json(completion(&answer(&parsed))).into_response()
        }
        Fault::MalformedJson => {
            (StatusCode::OK, "{\"choices\": [ this is not json").into_response()
        }
        Fault::Garbage => axum::Json(completion("I like turtles")).into_response(),
    };
    s.log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)[index]
        .finished = Some(s.t0.elapsed());
    resp
}

impl MockServer {
    /// Starts a server on an ephemeral port of 127.0.0.1.
    pub async fn start(latency: Duration, faults: Option<FaultPlan>) -> std::io::Result<Self> {
        let state = Arc::new(ServerState {
            latency,
            faults: faults.unwrap_or_else(|| Arc::new(|_, _| Fault::None)),
            t0: Instant::now(),
            log: Mutex::new(Vec::new()),
            attempts: Mutex::new(Default::default()),
        });
        let app = axum::Router::new()
            .route("/v1/chat/completions", axum::routing::post(handle))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, state, task })
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request received so far.
    pub fn log(&self) -> Vec<LogEntry> {
        self.state
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Time since the server started (the log's clock).
    pub fn now(&self) -> Duration {
        self.state.t0.elapsed()
    }
}

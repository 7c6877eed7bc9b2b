//! An in-process server on 127.0.0.1 speaking Neuronpedia's explanation-export API
//! (`GET /api/explanation/export?modelId=…&saeId=…`, the JSON array the site returns: objects
//! with `modelId`, `layer` (the SAE id), `index` as a string, `description`,
//! `explanationModelName`, `typeName`), with scripted faults: a queue of [`Reply`]s per export
//! is answered first, then the export itself. Point `NEURONPEDIA_BASE_URL` (or
//! `NeuronpediaConfig::base_url`) at [`NeuronpediaServer::base_url`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Body;

use crate::serve::reply;
use axum::http::{Response, StatusCode, Uri};

/// A scripted answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The export.
    Export,
    /// HTTP 500 with a JSON error body.
    ServerError,
    /// HTTP 200 with an HTML error page (what a proxy or a maintenance page returns).
    HtmlPage,
    /// HTTP 200 with the export cut in the middle.
    Truncated,
    /// HTTP 429 with `Retry-After: {0}` seconds.
    TooManyRequests(u32),
    /// HTTP 404.
    NotFound,
}

/// One export served: `(index, description)` pairs.
pub type Export = Vec<(usize, String)>;

#[derive(Default)]
struct State {
    exports: BTreeMap<(String, String), Export>,
    script: Mutex<BTreeMap<(String, String), VecDeque<Reply>>>,
    log: Mutex<Vec<String>>,
}

/// The running server; stops when dropped.
pub struct NeuronpediaServer {
    server: crate::serve::Background,
    state: Arc<State>,
}

/// The export's JSON as the site writes it.
pub fn export_json(model_id: &str, sae_id: &str, export: &Export) -> String {
    let items: Vec<serde_json::Value> = export
        .iter()
        .map(|(i, d)| {
            serde_json::json!({
                "modelId": model_id,
                "layer": sae_id,
                "index": i.to_string(),
                "description": d,
                "explanationModelName": "gpt-4o-mini",
                "typeName": "oai_token-act-pair",
            })
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

impl NeuronpediaServer {
    /// Serves `exports` by `(modelId, saeId)`.
    pub fn start(exports: BTreeMap<(String, String), Export>) -> std::io::Result<Self> {
        let state = Arc::new(State {
            exports,
            ..State::default()
        });
        let st = state.clone();
        let server =
            crate::serve::Background::start(axum::Router::new().fallback(move |uri: Uri| {
                let st = st.clone();
                async move { answer(&st, &uri) }
            }))?;
        Ok(Self { server, state })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.server.url()
    }

    /// Queues `replies` for the next requests of one export.
    pub fn script(&self, model_id: &str, sae_id: &str, replies: &[Reply]) {
        if let Ok(mut s) = self.state.script.lock() {
            s.entry((model_id.to_string(), sae_id.to_string()))
                .or_default()
                .extend(replies.iter().cloned());
        }
    }

    /// The request paths and queries answered so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

fn query(uri: &Uri, key: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| decode(v))
    })
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%' && i + 2 < b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if let Some(x) = hex {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn answer(st: &State, uri: &Uri) -> Response<Body> {
    if let Ok(mut l) = st.log.lock() {
        l.push(uri.to_string());
    }
    if uri.path() != "/api/explanation/export" {
        return reply(
            StatusCode::NOT_FOUND,
            &[],
            "{\"message\":\"not found\"}".to_string(),
        );
    }
    let (Some(model), Some(sae)) = (query(uri, "modelId"), query(uri, "saeId")) else {
        return reply(
            StatusCode::BAD_REQUEST,
            &[],
            "{\"message\":\"modelId and saeId are required\"}".to_string(),
        );
    };
    let key = (model.clone(), sae.clone());
    let scripted = st
        .script
        .lock()
        .ok()
        .and_then(|mut s| s.get_mut(&key).and_then(VecDeque::pop_front));
    let Some(export) = st.exports.get(&key) else {
        return reply(
            StatusCode::NOT_FOUND,
            &[],
            "{\"message\":\"SAE not found\"}".to_string(),
        );
    };
    let json = export_json(&model, &sae, export);
    let ct = ("content-type", "application/json".to_string());
    match scripted.unwrap_or(Reply::Export) {
        Reply::Export => reply(StatusCode::OK, &[ct], json),
        Reply::ServerError => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            &[ct],
            "{\"message\":\"Internal server error\"}".to_string(),
        ),
        Reply::HtmlPage => reply(
            StatusCode::OK,
            &[("content-type", "text/html".into())],
            "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>Bad gateway</body></html>".to_string(),
        ),
        Reply::Truncated => reply(StatusCode::OK, &[ct], json[..json.len() / 2].to_string()),
        Reply::TooManyRequests(s) => reply(
            StatusCode::TOO_MANY_REQUESTS,
            &[("retry-after", s.to_string())],
            "{\"message\":\"Too many requests\"}".to_string(),
        ),
        Reply::NotFound => reply(StatusCode::NOT_FOUND, &[ct], "{\"message\":\"not found\"}".to_string()),
    }
}

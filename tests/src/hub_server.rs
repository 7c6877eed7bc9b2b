//! An in-process server on 127.0.0.1 that speaks the HuggingFace hub's file protocol as `hf-hub`
//! uses it (point `HF_ENDPOINT` or `HubClient::with_endpoint` at [`HubServer::endpoint`]):
//!
//! - `GET /{repo}/resolve/{revision}/{file}` (`/datasets/{repo}/…` for datasets): with
//!   `Range: bytes=0-0` a 206 carrying `ETag`, `X-Repo-Commit` and `Content-Range: bytes
//!   0-0/{size}` (hf-hub's metadata probe), with `Range: bytes=N-` the rest of the file (its
//!   resumable download), without `Range` the whole file;
//! - `GET /api/{models|datasets}/{repo}/revision/{revision}`: the repository's file listing
//!   (`siblings`, `sha`); `…/tree/{revision}/{path}` the files under a path (404 EntryNotFound
//!   when none), as transformers asks for optional folders;
//! - 404 with `X-Error-Code: EntryNotFound` / `RepoNotFound` for a missing file or repository;
//! - 401 with `X-Error-Code: GatedRepo` for a gated repository asked without
//!   `Authorization: Bearer {token}` (or with another token).
//!
//! Every request is logged (method, path, status) for tests that count what was fetched.
//!
//! Faults for the download tests ([`HubServer::fault`]): a file's next downloads (requests
//! without a range or with an open one, `bytes=N-`; never the metadata probe) can answer an
//! error status, send part of the body and drop the connection, or send part and stall.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;

use crate::serve::reply;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};

/// A repository served.
#[derive(Debug, Clone)]
pub struct ServedRepo {
    /// `owner/name`.
    pub id: String,
    /// A dataset (served under `/datasets/`) rather than a model.
    pub dataset: bool,
    /// The commit every revision resolves to (40 hex digits).
    pub commit: String,
    /// Needs the server's token.
    pub gated: bool,
    /// Files by path inside the repository.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl ServedRepo {
    /// A public model repository with `files`.
    pub fn model(id: &str, files: BTreeMap<String, Vec<u8>>) -> Self {
        Self {
            id: id.to_string(),
            dataset: false,
            commit: format!("{:040x}", fnv(id.as_bytes())),
            gated: false,
            files,
        }
    }

    /// The same repository, gated.
    pub fn gated(mut self) -> Self {
        self.gated = true;
        self
    }
}

/// One request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The path, percent-encoded as sent.
    pub path: String,
    /// The status answered.
    pub status: u16,
    /// The `Range` header sent, if any.
    pub range: Option<String>,
}

/// What one download of a file gets instead of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubFault {
    /// This status (e.g. 500) and an error body.
    Status(u16),
    /// The full `Content-Length`, then only this many bytes, then the connection drops.
    Truncate(usize),
    /// This many bytes, then nothing, ever (a stalled transfer, for kill tests).
    Stall(usize),
}

struct State {
    repos: Vec<ServedRepo>,
    token: Option<String>,
    log: Mutex<Vec<Logged>>,
    faults: Mutex<BTreeMap<String, std::collections::VecDeque<HubFault>>>,
}

/// The running server; stops when dropped.
pub struct HubServer {
    server: crate::serve::Background,
    state: Arc<State>,
}

impl HubServer {
    /// Serves `repos` on a free port of 127.0.0.1; gated ones need `token`.
    pub fn start(repos: Vec<ServedRepo>, token: Option<&str>) -> std::io::Result<Self> {
        let state = Arc::new(State {
            repos,
            token: token.map(str::to_string),
            log: Mutex::new(Vec::new()),
            faults: Mutex::new(BTreeMap::new()),
        });
        let st = state.clone();
        let server = crate::serve::Background::start(axum::Router::new().fallback(
            move |method, uri, headers| {
                let st = st.clone();
                async move { answer(&st, method, uri, headers) }
            },
        ))?;
        Ok(Self { server, state })
    }

    /// `http://127.0.0.1:PORT`, for `HF_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        self.server.url()
    }

    /// The requests answered so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.state.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The next downloads of `file` (a path inside any served repository) get these faults, one
    /// per download, in order; later downloads get the file.
    pub fn fault(&self, file: &str, faults: &[HubFault]) {
        if let Ok(mut f) = self.state.faults.lock() {
            f.entry(file.to_string())
                .or_default()
                .extend(faults.iter().copied());
        }
    }

    /// Forgets the requests logged so far.
    pub fn clear_log(&self) {
        if let Ok(mut l) = self.state.log.lock() {
            l.clear();
        }
    }
}

fn fnv(b: &[u8]) -> u128 {
    b.iter()
        .fold(0x6c62272e07bb014262b821756295c58d_u128, |h, &x| {
            (h ^ u128::from(x)).wrapping_mul(0x0000000001000000000000000000013B)
        })
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    reply(
        status,
        &[
            ("x-error-code", code.to_string()),
            ("content-type", "application/json".into()),
        ],
        serde_json::json!({ "error": message })
            .to_string()
            .into_bytes(),
    )
}

fn answer(st: &State, method: Method, uri: Uri, headers: HeaderMap) -> Response<Body> {
    let path = uri.path().to_string();
    let r = route(st, &path, &headers);
    if let Ok(mut l) = st.log.lock() {
        l.push(Logged {
            method: method.to_string(),
            path,
            status: r.status().as_u16(),
            range: headers
                .get("range")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        });
    }
    r
}

/// `(repo, kind-prefixed?, revision, file)` of a resolve URL, or of an API listing (file empty).
fn route(st: &State, path: &str, headers: &HeaderMap) -> Response<Body> {
    let p = path.trim_start_matches('/');
    let (api, rest) = match p.strip_prefix("api/") {
        Some(r) => (true, r),
        None => (false, p),
    };
    let (dataset, rest) = if api {
        match (rest.strip_prefix("models/"), rest.strip_prefix("datasets/")) {
            (Some(r), _) => (false, r),
            (_, Some(r)) => (true, r),
            _ => return error(StatusCode::NOT_FOUND, "RepoNotFound", "unknown API path"),
        }
    } else {
        match rest.strip_prefix("datasets/") {
            Some(r) => (true, r),
            None => (false, rest),
        }
    };
    let sep = if api { "/revision/" } else { "/resolve/" };
    // huggingface_hub's tree listing (`/api/models/{repo}/tree/{revision}/{path}`), which
    // transformers asks for optional folders: the files under the path, or 404 EntryNotFound.
    let tree = if api { rest.split_once("/tree/") } else { None };
    let Some((repo_id, after)) = rest.split_once(sep).or(tree) else {
        return error(StatusCode::NOT_FOUND, "RepoNotFound", "not a hub path");
    };
    let Some(repo) = st
        .repos
        .iter()
        .find(|r| r.id == repo_id && r.dataset == dataset)
    else {
        return error(
            StatusCode::NOT_FOUND,
            "RepoNotFound",
            &format!("Repository not found: {repo_id}"),
        );
    };
    if repo.gated {
        let sent = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if sent.is_none() || sent != st.token.as_deref() {
            return error(
                StatusCode::UNAUTHORIZED,
                "GatedRepo",
                &format!(
                    "Access to model {repo_id} is restricted. You must have access to it and be authenticated to access it. Please log in."
                ),
            );
        }
    }
    if tree.is_some() {
        let dir = after
            .split_once('/')
            .map_or("", |(_, d)| d)
            .trim_end_matches('/');
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let entries: Vec<serde_json::Value> = repo
            .files
            .iter()
            .filter(|(f, _)| f.starts_with(&prefix))
            .map(|(f, b)| {
                serde_json::json!({
                    "type": "file",
                    "oid": format!("{:040x}", fnv(b) & ((1u128 << 120) - 1)),
                    "path": f,
                    "size": b.len(),
                })
            })
            .collect();
        if entries.is_empty() && !dir.is_empty() {
            return error(
                StatusCode::NOT_FOUND,
                "EntryNotFound",
                &format!("{dir} does not exist in {repo_id}"),
            );
        }
        return reply(
            StatusCode::OK,
            &[("content-type", "application/json".into())],
            serde_json::Value::Array(entries).to_string().into_bytes(),
        );
    }
    if api {
        let siblings: Vec<serde_json::Value> = repo
            .files
            .keys()
            .map(|f| serde_json::json!({ "rfilename": f }))
            .collect();
        return reply(
            StatusCode::OK,
            &[("content-type", "application/json".into())],
            serde_json::json!({ "id": repo.id, "sha": repo.commit, "siblings": siblings })
                .to_string()
                .into_bytes(),
        );
    }
    // `{revision}/{file}`: revisions here have no slash (hf-hub escapes them as %2F).
    let Some((_revision, file)) = after.split_once('/') else {
        return error(StatusCode::NOT_FOUND, "EntryNotFound", "no file named");
    };
    let Some(bytes) = repo.files.get(file) else {
        return error(
            StatusCode::NOT_FOUND,
            "EntryNotFound",
            &format!("{file} does not exist in {repo_id}"),
        );
    };
    let etag = format!("\"{:032x}\"", fnv(bytes));
    let common = vec![
        ("etag", etag),
        ("x-repo-commit", repo.commit.clone()),
        ("accept-ranges", "bytes".to_string()),
    ];
    let size = bytes.len();
    let range = headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split_once('-'))
        .and_then(|(a, b)| {
            let start: usize = a.parse().ok()?;
            let end: usize = if b.is_empty() {
                size.checked_sub(1)?
            } else {
                b.parse::<usize>().ok()?.min(size.checked_sub(1)?)
            };
            (start <= end).then_some((start, end))
        });
    let asked = headers.get("range").and_then(|v| v.to_str().ok());
    if asked.is_some() && range.is_none() {
        // As the hub's CDN: a range past the end (a resumed download that already has every
        // byte) is 416, never the whole file again.
        return reply(
            StatusCode::RANGE_NOT_SATISFIABLE,
            &[("content-range", format!("bytes */{size}"))],
            Vec::new(),
        );
    }
    let probe = headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.ends_with('-'));
    let fault = if probe {
        None
    } else {
        st.faults
            .lock()
            .ok()
            .and_then(|mut f| f.get_mut(file).and_then(|q| q.pop_front()))
    };
    let start = range.map_or(0, |(a, _)| a);
    match fault {
        Some(HubFault::Status(code)) => {
            return error(
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "Injected",
                "injected fault",
            );
        }
        Some(HubFault::Truncate(n) | HubFault::Stall(n)) => {
            let sent = bytes[start..].iter().take(n).copied().collect::<Vec<u8>>();
            let first = futures_util::stream::iter([Ok::<_, std::io::Error>(sent)]);
            let body = if matches!(fault, Some(HubFault::Truncate(_))) {
                // The bytes reach the client before the connection drops.
                Body::from_stream(futures_util::StreamExt::chain(
                    first,
                    futures_util::stream::once(async {
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        Err(std::io::Error::other("injected drop"))
                    }),
                ))
            } else {
                Body::from_stream(futures_util::StreamExt::chain(
                    first,
                    futures_util::stream::pending(),
                ))
            };
            let mut h = common;
            h.push(("content-length", (size - start).to_string()));
            let status = if range.is_some() {
                h.push((
                    "content-range",
                    format!("bytes {start}-{}/{size}", size - 1),
                ));
                StatusCode::PARTIAL_CONTENT
            } else {
                StatusCode::OK
            };
            return reply(status, &h, body);
        }
        None => {}
    }
    match range {
        Some((a, b)) => {
            let mut h = common;
            h.push(("content-range", format!("bytes {a}-{b}/{size}")));
            reply(StatusCode::PARTIAL_CONTENT, &h, bytes[a..=b].to_vec())
        }
        None => reply(StatusCode::OK, &common, bytes.clone()),
    }
}

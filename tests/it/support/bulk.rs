//! A stand-in for Elasticsearch's `_bulk` API on 127.0.0.1:0, answering as Elasticsearch 8
//! does, so the shipper configs' promises can be checked against the answers they depend on.
//!
//! - Every action gets its own result in `items`, in order; `errors` is true when any failed.
//! - `index` answers 201 `created` for a new `_id` and 200 `updated` for an existing one.
//! - `create` answers 201 for a new `_id` and 409 `version_conflict_engine_exception` for an
//!   existing one (the document is left as it was).
//! - [`FakeEs::reject_once`] makes the next write of an `_id` fail alone with a per-item 429
//!   `es_rejected_execution_exception`, inside an HTTP 200: Elasticsearch's answer when a
//!   shard's write queue is full.
//! - A [`Target::DataStream`] accepts only `create`; `index` fails per item with 400, as
//!   Elasticsearch refuses any other op type on a data stream.
//! - A body that is not action/source pairs (for example bare documents, as our HTTP sink
//!   sends them) is refused as a whole with HTTP 400 `illegal_argument_exception`.
//!
//! [`serve`] is the small HTTP server under it, shared with the shipper models of
//! `shippers.rs`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use serde_json::{json, Map, Value};
use slack_audit_source::serve::Limits;
pub use slack_audit_source::serve::Server;
use slack_audit_source::shutdown::Shutdown;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};

/// What the index name points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A plain index, or an alias with a write index: `index` and `create` both work.
    Index,
    /// A data stream: only `create`; documents land in a backing index.
    DataStream,
}

/// One HTTP answer: status and body.
pub type Answer = (u16, String);

/// Serves HTTP/1.1 on 127.0.0.1:0 through the library's accept loop; `handle` gets the path
/// and the body of each request. The server stops when the returned [`Server`] is dropped.
pub async fn serve<F, Fut>(handle: F) -> Server
where
    F: Fn(String, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Answer> + Send + 'static,
{
    let listener = slack_audit_source::serve::bind("127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("bind 127.0.0.1:0");
    let handle = Arc::new(handle);
    slack_audit_source::serve::spawn(
        listener,
        Shutdown::never(),
        Limits::none(),
        "bulk",
        move |req: Request<hyper::body::Incoming>| {
            let handle = handle.clone();
            async move {
                let path = req.uri().path().to_string();
                let body = super::body_bytes(req.into_body()).await;
                let (status, text) = handle(path, body).await;
                let mut r = Response::new(Full::new(Bytes::from(text)));
                *r.status_mut() =
                    hyper::StatusCode::from_u16(status).expect("answers use valid statuses");
                r.headers_mut().insert(
                    "content-type",
                    hyper::header::HeaderValue::from_static("application/json"),
                );
                r
            }
        },
    )
}

struct Store {
    target: Target,
    index: String,
    /// Stored sources by `_id`, with their versions.
    docs: HashMap<String, (Value, u64)>,
    /// `_id`s whose next write fails with a per-item 429.
    reject: HashSet<String>,
    /// Counter for ids Elasticsearch makes up when none is given.
    auto_ids: u64,
    requests: usize,
}

/// The fake cluster with one index (or data stream); stops when dropped.
pub struct FakeEs {
    store: Arc<Mutex<Store>>,
    server: Server,
}

impl FakeEs {
    /// A cluster where `index` is a [`Target`].
    pub async fn start(target: Target, index: &str) -> FakeEs {
        let store = Arc::new(Mutex::new(Store {
            target,
            index: index.to_string(),
            docs: HashMap::new(),
            reject: HashSet::new(),
            auto_ids: 0,
            requests: 0,
        }));
        let shared = store.clone();
        let server = serve(move |path, body| {
            let store = shared.clone();
            async move {
                let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
                s.requests += 1;
                if path != "/_bulk" {
                    return (
                        404,
                        json!({"error": "no handler", "status": 404}).to_string(),
                    );
                }
                s.bulk(&body)
            }
        })
        .await;
        FakeEs { store, server }
    }

    /// The cluster's base URL (`_bulk` is under it).
    pub fn url(&self) -> String {
        self.server.url("")
    }

    /// The next write of `id` fails alone with a per-item 429.
    pub fn reject_once(&self, id: &str) {
        self.lock().reject.insert(id.to_string());
    }

    /// Stored documents by `_id`.
    pub fn docs(&self) -> HashMap<String, Value> {
        self.lock()
            .docs
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect()
    }

    /// The version of `id`: 1 after the first write, +1 per overwrite.
    pub fn version(&self, id: &str) -> Option<u64> {
        self.lock().docs.get(id).map(|(_, v)| *v)
    }

    /// `_bulk` requests seen.
    pub fn requests(&self) -> usize {
        self.lock().requests
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn refuse(reason: String) -> Answer {
    let err = json!({"type": "illegal_argument_exception", "reason": reason});
    (
        400,
        json!({"error": {"root_cause": [err.clone()], "type": err["type"], "reason": err["reason"]}, "status": 400})
            .to_string(),
    )
}

impl Store {
    fn bulk(&mut self, body: &[u8]) -> Answer {
        let Ok(text) = std::str::from_utf8(body) else {
            return refuse("the body is not UTF-8".into());
        };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        // Parse everything first: a malformed body is refused as a whole, as Elasticsearch
        // does, before any item is written.
        let mut ops = Vec::new();
        let mut it = lines.iter().enumerate();
        while let Some((n, line)) = it.next() {
            let action: Map<String, Value> = match serde_json::from_str(line) {
                Ok(Value::Object(m)) => m,
                _ => return refuse(format!("Malformed action/metadata line [{}]", n + 1)),
            };
            let (op, meta) = match action.iter().next() {
                Some((op, Value::Object(meta)))
                    if action.len() == 1 && (op == "index" || op == "create") =>
                {
                    (op.clone(), meta.clone())
                }
                Some((op, _)) => {
                    return refuse(format!(
                        "Malformed action/metadata line [{}], expected one of [index, create], found [{op}]",
                        n + 1
                    ))
                }
                None => return refuse(format!("Malformed action/metadata line [{}]", n + 1)),
            };
            let Some((_, source)) = it.next() else {
                return refuse("The bulk request must be terminated by a newline [\\n]".into());
            };
            let Ok(source @ Value::Object(_)) = serde_json::from_str::<Value>(source) else {
                return refuse(format!("Malformed source on line [{}]", n + 2));
            };
            ops.push((op, meta, source));
        }
        let items: Vec<Value> = ops
            .into_iter()
            .map(|(op, meta, source)| {
                let result = self.write(&op, &meta, source);
                json!({ op: result })
            })
            .collect();
        let errors = items.iter().any(|i| {
            i.as_object()
                .and_then(|o| o.values().next())
                .and_then(|r| r["status"].as_u64())
                .is_some_and(|s| s >= 300)
        });
        (
            200,
            json!({"took": 1, "errors": errors, "items": items}).to_string(),
        )
    }

    fn write(&mut self, op: &str, meta: &Map<String, Value>, source: Value) -> Value {
        let index = meta.get("_index").and_then(Value::as_str).unwrap_or("");
        let id = match meta.get("_id").and_then(Value::as_str) {
            Some(id) => id.to_string(),
            None => {
                self.auto_ids += 1;
                format!("auto-{}", self.auto_ids)
            }
        };
        let stored_in = match self.target {
            Target::Index => self.index.clone(),
            Target::DataStream => format!(".ds-{}-2026.12.07-000001", self.index),
        };
        let failed = |status: u16, kind: &str, reason: String| {
            json!({"_index": stored_in, "_id": id, "status": status,
                   "error": {"type": kind, "reason": reason, "index": stored_in}})
        };
        if index != self.index {
            return failed(
                404,
                "index_not_found_exception",
                format!("no such index [{index}]"),
            );
        }
        if self.target == Target::DataStream && op != "create" {
            return failed(
                400,
                "illegal_argument_exception",
                "only write ops with an op_type of create are allowed in data streams".to_string(),
            );
        }
        if self.reject.remove(&id) {
            return failed(
                429,
                "es_rejected_execution_exception",
                "rejected execution of primary operation [coordinating_and_primary_bytes=0]".into(),
            );
        }
        match (op, self.docs.get(&id).map(|(_, v)| *v)) {
            ("create", Some(version)) => failed(
                409,
                "version_conflict_engine_exception",
                format!("[{id}]: version conflict, document already exists (current version [{version}])"),
            ),
            (_, existing) => {
                let version = existing.map_or(1, |v| v + 1);
                self.docs.insert(id.clone(), (source, version));
                let (status, result) = if existing.is_some() {
                    (200, "updated")
                } else {
                    (201, "created")
                };
                json!({"_index": stored_in, "_id": id, "_version": version, "result": result,
                       "_shards": {"total": 2, "successful": 1, "failed": 0}, "status": status})
            }
        }
    }
}

/// Per-item statuses of a `_bulk` answer body, in order (empty when it has no `items`).
pub fn item_statuses(body: &str) -> Vec<u16> {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i.as_object()?.values().next()?["status"].as_u64())
        .map(|s| s as u16)
        .collect()
}

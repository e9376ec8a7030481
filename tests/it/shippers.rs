//! The shipper configs against a fake Elasticsearch `_bulk` ([`crate::support::bulk`]): what
//! a crash-and-repeat, a per-item 429 and each target (index or alias, data stream) do.
//!
//! Vector and Fluent Bit cannot run here, so each is stood in for by a model of the decisions
//! its source makes with a `_bulk` answer, at the versions the chart pins:
//! - Vector 0.46.1: `src/sinks/elasticsearch/retry.rs` (`should_retry_response`: HTTP 429 and
//!   5xx are retried; a 2xx whose body says `"errors":true` is retried only with
//!   `request_retry_partial` and an item failed with 429 or 5xx, and then the whole request is
//!   resent), `service.rs` (`get_event_status`: a 2xx with errors is Rejected), `sink.rs`
//!   (`process_log`: the `id_key` field is removed from the document) and
//!   `src/sources/util/http/prelude.rs` (`handle_batch_status`: Rejected answers 400, Errored
//!   500). With a disk buffer on the sink, the source is acknowledged once the events are in
//!   the buffer.
//! - Fluent Bit 3.2.10: `plugins/out_es/es.c` (`elasticsearch_error_check` and `cb_es_flush`:
//!   a flush is done when any item answered 200 or 201, and retried otherwise).
//!
//! The Vector model reads its settings from the example files, so reverting a fix there fails
//! a test here. Our HTTP sink is the real one.

use crate::support::bulk::{item_statuses, serve, Answer, FakeEs, Server, Target};
use serde_json::{json, Value};
use slack_audit_source::shutdown::Shutdown;
use slack_audit_source::sink::http::{HttpConfig, HttpSink};
use slack_audit_source::sink::{Batch, Error};
use std::sync::Arc;
use std::time::Duration;

const INDEX: &str = "slack-audit";
const DATA_STREAM: &str = "logs-slack.audit-default";

/// Documents shaped like ours, ids `E0`…
fn docs(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "@timestamp": "2026-12-07T06:00:00.000Z",
                "event": {"id": format!("E{i}"), "action": "user_login", "kind": "event"},
                "data_stream": {"type": "logs", "dataset": "slack.audit", "namespace": "default"},
                "message": "user_login"
            })
        })
        .collect()
}

fn batch(docs: &[Value]) -> Batch {
    let mut b = Batch::new();
    for d in docs {
        b.push(d);
    }
    b
}

/// Our real HTTP sink to `url`, with millisecond backoff.
fn sink(url: &str) -> HttpSink {
    let mut c = HttpConfig::for_url(url).expect("loopback URLs are accepted");
    c.backoff_min = Duration::from_millis(1);
    c.backoff_max = Duration::from_millis(5);
    HttpSink::new(c).expect("the client builds")
}

async fn send(url: &str, docs: &[Value]) -> Result<(), Error> {
    sink(url).send(&batch(docs), &mut Shutdown::never()).await
}

fn example(path: &str) -> serde_norway::Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(path);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Removes a dotted path (`event.id`) from a JSON object, returning the value.
fn remove_path(doc: &mut Value, path: &str) -> Option<Value> {
    let (parents, last) = match path.rsplit_once('.') {
        Some((p, l)) => (p.split('.').collect::<Vec<_>>(), l),
        None => (vec![], path),
    };
    let mut cur = doc;
    for p in parents {
        cur = cur.get_mut(p)?;
    }
    cur.as_object_mut()?.remove(last)
}

// ---------------------------------------------------------------------------------------
// Vector 0.46.1, modelled.

/// When the http_server source answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ack {
    /// `acknowledgements.enabled` with a memory buffer: once Elasticsearch answered.
    EndToEnd,
    /// With a disk buffer on the sink: once the events are in the buffer.
    DiskBuffer,
    /// Not Vector: hands Elasticsearch's own answer back, to see what our sink does with it.
    PassThrough,
}

#[derive(Debug, Clone)]
struct Vector {
    es: String,
    action: String,
    index: String,
    id_key: String,
    retry_partial: bool,
    /// The remap's program, line by line.
    remap: Vec<String>,
    ack: Ack,
}

impl Vector {
    /// The settings of an example's elasticsearch sink and the remap feeding it.
    fn from_example(path: &str, es: &FakeEs) -> Vector {
        let doc = example(path);
        let sink = &doc["sinks"]["elasticsearch"];
        let input = sink["inputs"][0].as_str().expect("the sink has an input");
        let remap = doc["transforms"][input]["source"]
            .as_str()
            .unwrap_or("")
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        Vector {
            es: es.url(),
            action: sink["bulk"]["action"].as_str().unwrap_or("index").into(),
            index: sink["bulk"]["index"].as_str().unwrap_or("").into(),
            id_key: sink["id_key"].as_str().expect("an id_key").into(),
            retry_partial: sink["request_retry_partial"].as_bool().unwrap_or(false),
            remap,
            ack: if sink["acknowledgements"]["enabled"].as_bool() == Some(true) {
                Ack::EndToEnd
            } else {
                Ack::DiskBuffer
            },
        }
    }

    /// The remap, as far as our examples use VRL: `del(.field)` and `.a = .b.c`.
    fn remap(&self, doc: &mut Value) {
        for line in &self.remap {
            if let Some(field) = line.strip_prefix("del(.").and_then(|l| l.strip_suffix(')')) {
                remove_path(doc, field);
            } else if let Some((to, from)) = line.split_once(" = ") {
                let from = from.trim().trim_start_matches('.');
                let value = from
                    .split('.')
                    .try_fold(&*doc, |v, k| v.get(k))
                    .cloned()
                    .unwrap_or(Value::Null);
                doc[to.trim().trim_start_matches('.')] = value;
            } else if !line.starts_with("if ") {
                panic!("the model does not know the VRL line {line:?}");
            }
        }
    }

    /// The bulk body the sink sends: the id_key field is taken out of each document.
    fn bulk_body(&self, docs: &[Value]) -> String {
        let mut body = String::new();
        for doc in docs {
            let mut doc = doc.clone();
            self.remap(&mut doc);
            let id = match remove_path(&mut doc, &self.id_key) {
                Some(Value::String(id)) => json!(id),
                _ => Value::Null,
            };
            let mut meta = json!({"_index": self.index});
            if !id.is_null() {
                meta["_id"] = id;
            }
            body.push_str(&json!({ self.action.clone(): meta }).to_string());
            body.push('\n');
            body.push_str(&doc.to_string());
            body.push('\n');
        }
        body
    }

    /// Sends to Elasticsearch with the sink's retry logic; the last answer and whether the
    /// events count as delivered, errored or rejected.
    async fn deliver(&self, docs: &[Value]) -> (Answer, &'static str) {
        let body = self.bulk_body(docs);
        let client = reqwest::Client::new();
        for _ in 0..20 {
            let r = client
                .post(format!("{}/_bulk", self.es))
                .header("content-type", "application/x-ndjson")
                .body(body.clone())
                .send()
                .await
                .expect("the fake Elasticsearch answers");
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            let errors = text.contains("\"errors\":true");
            let retry = match status {
                429 => true,
                501 => false,
                500..=599 => true,
                200..=299 if errors => {
                    self.retry_partial
                        && item_statuses(&text).iter().any(|s| *s == 429 || *s >= 500)
                }
                _ => false,
            };
            if retry {
                continue;
            }
            let outcome = match status {
                200..=299 if errors => "rejected",
                200..=299 => "delivered",
                500..=599 => "errored",
                _ => "rejected",
            };
            return ((status, text), outcome);
        }
        panic!("Vector would still be retrying");
    }

    /// An http_server source in front of the sink, as the examples configure it.
    async fn start(self) -> Server {
        let v = Arc::new(self);
        serve(move |_path, body| {
            let v = v.clone();
            async move {
                let docs: Vec<Value> = body
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(|l| serde_json::from_slice(l).expect("our sink sends JSON lines"))
                    .collect();
                let (es_answer, outcome) = v.deliver(&docs).await;
                match (v.ack, outcome) {
                    (Ack::PassThrough, _) => es_answer,
                    (Ack::DiskBuffer, _) | (Ack::EndToEnd, "delivered") => (200, String::new()),
                    (Ack::EndToEnd, "errored") => (
                        500,
                        json!({"code": 500, "message": "Error delivering contents to sink"})
                            .to_string(),
                    ),
                    (Ack::EndToEnd, _) => (
                        400,
                        json!({"code": 400, "message": "Contents failed to deliver to sink"})
                            .to_string(),
                    ),
                }
            }
        })
        .await
    }
}

/// The refusal a user sees: exit 1 with this message, the checkpoint in place.
fn assert_rejected_400(result: Result<(), Error>) {
    match result {
        Err(e @ Error::Rejected { status: 400, .. }) => assert!(
            e.to_string()
                .contains("refused a batch with HTTP 400: {\"code\":400,\"message\":\"Contents failed to deliver to sink\"}"),
            "{e}"
        ),
        other => panic!("expected the receiver's 400, got {other:?}"),
    }
}

#[tokio::test]
async fn vector_examples_keep_event_id_and_drop_only_the_scratch_id() {
    for path in ["vector/http_server.yaml", "vector/exec.yaml"] {
        let es = FakeEs::start(Target::Index, INDEX).await;
        let v = Vector::from_example(path, &es);
        let ((status, _), outcome) = v.deliver(&docs(3)).await;
        assert_eq!((status, outcome), (200, "delivered"), "{path}");
        let stored = es.docs();
        assert_eq!(stored.len(), 3, "{path}");
        for (id, doc) in &stored {
            assert_eq!(
                doc["event"]["id"],
                json!(id),
                "{path}: event.id was removed"
            );
            assert!(
                doc.get(&v.id_key).is_none(),
                "{path}: the scratch id field {} was indexed",
                v.id_key
            );
        }
    }
}

#[tokio::test]
async fn vector_http_server_repeat_into_an_index_overwrites_itself() {
    let es = FakeEs::start(Target::Index, INDEX).await;
    let vector = Vector::from_example("vector/http_server.yaml", &es)
        .start()
        .await;
    let url = vector.url("/slack/audit");
    send(&url, &docs(5)).await.expect("first delivery");
    // A crash after Vector's 200 but before our checkpoint: the restart sends it again.
    send(&url, &docs(5))
        .await
        .expect("the repeat is delivered too");
    assert_eq!(es.docs().len(), 5, "one document per event.id");
    assert_eq!(es.version("E0"), Some(2), "the repeat overwrote the first");
}

#[tokio::test]
async fn vector_retries_a_per_item_429_instead_of_refusing_our_batch() {
    let es = FakeEs::start(Target::Index, INDEX).await;
    es.reject_once("E1");
    let vector = Vector::from_example("vector/http_server.yaml", &es)
        .start()
        .await;
    send(&vector.url("/slack/audit"), &docs(3))
        .await
        .expect("delivered once Vector resent the request");
    assert_eq!(es.docs().len(), 3, "the item refused with 429 was indexed");
    assert_eq!(es.requests(), 2, "the whole request was sent again");

    // Without request_retry_partial the same answer is a 400 to us, and we stop.
    let es = FakeEs::start(Target::Index, INDEX).await;
    es.reject_once("E1");
    let mut v = Vector::from_example("vector/http_server.yaml", &es);
    v.retry_partial = false;
    let vector = v.start().await;
    assert_rejected_400(send(&vector.url("/slack/audit"), &docs(3)).await);
    assert!(!es.docs().contains_key("E1"));
}

/// Why the data-stream row puts a disk buffer in front of Vector's sink.
#[tokio::test]
async fn a_data_stream_repeat_livelocks_with_end_to_end_acks_and_not_behind_a_disk_buffer() {
    let es = FakeEs::start(Target::DataStream, DATA_STREAM).await;
    let mut v = Vector::from_example("vector/http_server.yaml", &es);
    v.action = "create".into();
    v.index = DATA_STREAM.into();
    let vector = v.clone().start().await;
    let url = vector.url("/slack/audit");
    send(&url, &docs(4)).await.expect("first delivery");
    // Each restart sends the page again, and each time every item is a 409.
    for _ in 0..3 {
        assert_rejected_400(send(&url, &docs(4)).await);
    }

    v.ack = Ack::DiskBuffer;
    let vector = v.start().await;
    send(&vector.url("/slack/audit"), &docs(4))
        .await
        .expect("behind a disk buffer the repeat is taken");
    assert_eq!(es.docs().len(), 4, "each document once");
    assert_eq!(es.version("E0"), Some(1), "create never overwrites");
}

#[tokio::test]
async fn a_per_item_429_into_a_data_stream_ends_in_409s_that_vector_rejects() {
    let es = FakeEs::start(Target::DataStream, DATA_STREAM).await;
    es.reject_once("E1");
    let mut v = Vector::from_example("vector/http_server.yaml", &es);
    v.action = "create".into();
    v.index = DATA_STREAM.into();
    let ((_, body), outcome) = v.deliver(&docs(2)).await;
    // The resent request finds E0 already there: 409, so the batch counts as rejected
    // although both documents are in.
    assert_eq!(item_statuses(&body), vec![409, 201]);
    assert_eq!(outcome, "rejected");
    assert_eq!(es.docs().len(), 2);
}

#[tokio::test]
async fn the_index_action_cannot_write_to_a_data_stream() {
    let es = FakeEs::start(Target::DataStream, DATA_STREAM).await;
    let mut v = Vector::from_example("vector/http_server.yaml", &es);
    v.index = DATA_STREAM.into();
    let vector = v.start().await;
    assert_rejected_400(send(&vector.url("/slack/audit"), &docs(1)).await);
    assert!(es.docs().is_empty());
}

// ---------------------------------------------------------------------------------------
// Our HTTP sink and what a receiver may answer.

/// We do not read a 2xx's body: the shippers we support never put Elasticsearch's item
/// results in it (Vector answers 200 with an empty body, Fluent Bit 201 before Elasticsearch
/// is involved). A 2xx is the receiver's promise; judging items is the shipper's job.
#[tokio::test]
async fn our_sink_takes_a_2xx_as_delivered_whatever_its_body_says() {
    let es = FakeEs::start(Target::Index, INDEX).await;
    let mut v = Vector::from_example("vector/http_server.yaml", &es);
    v.action = "create".into();
    v.ack = Ack::PassThrough;
    let receiver = v.start().await;
    send(&receiver.url("/"), &docs(2)).await.expect("201s");
    // The repeat: HTTP 200, `errors: true`, two 409s.
    send(&receiver.url("/"), &docs(2))
        .await
        .expect("a 2xx is delivered");
    assert_eq!(es.docs().len(), 2);
}

/// Our HTTP sink is not an Elasticsearch client: pointed at `_bulk` it sends documents with
/// no action lines, Elasticsearch refuses the request, and the run stops with that answer.
#[tokio::test]
async fn our_sink_pointed_at_elasticsearch_stops_with_its_refusal() {
    let es = FakeEs::start(Target::Index, INDEX).await;
    let err = send(&format!("{}/_bulk", es.url()), &docs(2))
        .await
        .expect_err("bare documents are not a bulk request");
    let Error::Rejected { status, body, url } = &err else {
        panic!("expected Rejected, got {err:?}")
    };
    assert_eq!(*status, 400);
    assert!(body.contains("Malformed action/metadata line"), "{body}");
    assert!(url.ends_with("/_bulk"), "{url}");
    assert!(es.docs().is_empty());
}

// ---------------------------------------------------------------------------------------
// Fluent Bit 3.2.10's es output, modelled.

#[derive(Debug, PartialEq, Eq)]
enum Flush {
    Done,
    Retry,
}

/// `cb_es_flush` after `elasticsearch_error_check`: done when the HTTP status is 200 or 201
/// and the body says no errors, or any item answered 200 or 201; retried otherwise.
fn fluent_bit_flush((status, body): &Answer) -> Flush {
    if *status != 200 && *status != 201 {
        return Flush::Retry;
    }
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return Flush::Retry;
    };
    if v["errors"] == json!(false) {
        return Flush::Done;
    }
    if item_statuses(body).iter().any(|s| *s == 200 || *s == 201) {
        Flush::Done
    } else {
        Flush::Retry
    }
}

/// One flush of a chunk by the es output with `Id_Key $event['id']`.
async fn fluent_bit_send(es: &FakeEs, op: &str, docs: &[Value]) -> Flush {
    let mut body = String::new();
    for d in docs {
        body.push_str(&json!({op: {"_index": INDEX, "_id": d["event"]["id"]}}).to_string());
        body.push('\n');
        body.push_str(&d.to_string());
        body.push('\n');
    }
    let r = reqwest::Client::new()
        .post(format!("{}/_bulk", es.url()))
        .body(body)
        .send()
        .await
        .expect("the fake Elasticsearch answers");
    let status = r.status().as_u16();
    fluent_bit_flush(&(status, r.text().await.unwrap_or_default()))
}

/// The write operation all three Fluent Bit examples use (the same in each: see
/// `http_sink::fluent_bit_examples_keep_their_key_settings`).
fn fluent_bit_write_operation() -> String {
    example("fluent-bit/http.yaml")["pipeline"]["outputs"][0]["write_operation"]
        .as_str()
        .unwrap_or("create")
        .to_string()
}

#[tokio::test]
async fn fluent_bit_repeat_of_a_chunk_is_done_with_the_examples_write_operation() {
    let op = fluent_bit_write_operation();
    let es = FakeEs::start(Target::Index, INDEX).await;
    assert_eq!(fluent_bit_send(&es, &op, &docs(3)).await, Flush::Done);
    assert_eq!(
        fluent_bit_send(&es, &op, &docs(3)).await,
        Flush::Done,
        "a repeated chunk must not be retried forever (write operation {op})"
    );
    assert_eq!(es.docs().len(), 3);

    // With create (Fluent Bit's default) a chunk of repeats is 409s only: retried, forever.
    for _ in 0..3 {
        assert_eq!(fluent_bit_send(&es, "create", &docs(3)).await, Flush::Retry);
    }
}

/// The Fluent Bit row's per-item 429: retried when it stands alone, dropped when another
/// item of the same flush succeeded.
#[tokio::test]
async fn fluent_bit_drops_a_per_item_429_that_shares_a_flush_with_a_success() {
    let op = fluent_bit_write_operation();
    let es = FakeEs::start(Target::Index, INDEX).await;
    es.reject_once("E0");
    assert_eq!(fluent_bit_send(&es, &op, &docs(1)).await, Flush::Retry);
    assert_eq!(fluent_bit_send(&es, &op, &docs(1)).await, Flush::Done);
    assert!(es.docs().contains_key("E0"));

    let es = FakeEs::start(Target::Index, INDEX).await;
    es.reject_once("E1");
    assert_eq!(fluent_bit_send(&es, &op, &docs(3)).await, Flush::Done);
    assert!(
        !es.docs().contains_key("E1"),
        "Fluent Bit 3.2.10 counts the flush as done: E1 is lost"
    );
}

//! `GET /audit/v1/logs` as Slack answers it: authentication, parameters, the page, its cursor
//! or end-of-chain spelling, and the injected faults.
//!
//! [`answer_logs`] is synchronous and pure apart from reading the store and drawing a fault, so
//! the unit tests below drive it without a server. Every Slack-level error is HTTP 200 with
//! `ok:false`, as Slack sends them; only the injected 429/500/502 use other statuses.

use super::catalog;
use super::cursor::{Cursor, Fnv};
use super::faults::{FaultKind, Faults};
use super::shared::{lock, Shared};
use super::store::Filter;
use super::RecordedRequest;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};
use rand::Rng;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Slack's maximum page size.
pub(crate) const MAX_LIMIT: usize = 9999;
/// The page size when `limit` is absent. Slack does not document one; 100 is the Web API's
/// usual default and what helr's docs suggest.
pub(crate) const DEFAULT_LIMIT: usize = 100;
/// Slack's cap on comma-separated `action` filters.
pub(crate) const MAX_ACTIONS: usize = 30;

/// The answer to one `/logs` request, and how long to hold it back.
pub(crate) struct Answer {
    pub(crate) response: Response<Full<Bytes>>,
    pub(crate) stall: Option<Duration>,
}

/// The query parameters of `/logs`, decoded, first occurrence of each.
#[derive(Debug, Default)]
struct Params {
    oldest: Option<String>,
    latest: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    cursor_raw: Option<String>,
    action: Option<String>,
    actor: Option<String>,
    entity: Option<String>,
}

impl Params {
    fn parse(query: &str) -> Params {
        let mut p = Params::default();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match &*k {
                "oldest" => &mut p.oldest,
                "latest" => &mut p.latest,
                "limit" => &mut p.limit,
                "cursor" => &mut p.cursor,
                "action" => &mut p.action,
                "actor" => &mut p.actor,
                "entity" => &mut p.entity,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(v.into_owned());
            }
        }
        // The cursor as it came over the wire, to let tests see whether `=` was escaped.
        p.cursor_raw = query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (url::form_urlencoded::parse(format!("{k}=").as_bytes())
                .next()
                .is_some_and(|(k, _)| k == "cursor"))
            .then(|| v.to_string())
        });
        p
    }

    fn record(&self, query: &str) -> RecordedRequest {
        RecordedRequest {
            path: "/audit/v1/logs".into(),
            query: query.to_string(),
            oldest: self.oldest.clone(),
            latest: self.latest.clone(),
            limit: self.limit.clone(),
            cursor: self.cursor_raw.clone(),
            action: self.action.clone(),
            actor: self.actor.clone(),
            entity: self.entity.clone(),
            authorization: None,
            status: 200,
            error: None,
            fault: None,
            entries: 0,
            next_cursor: None,
        }
    }
}

/// The record of a request answered by a scripted reply with `status`.
pub(crate) fn scripted_record(query: &str, auth: Option<&[u8]>, status: u16) -> RecordedRequest {
    let mut rec = Params::parse(query).record(query);
    rec.authorization = auth.map(|a| String::from_utf8_lossy(a).into_owned());
    rec.status = status;
    rec
}

/// Answers `/logs` as Slack would at Unix second `now`, faults included.
pub(crate) fn answer_logs(
    shared: &Shared,
    auth: Option<&[u8]>,
    query: &str,
    now: i64,
) -> (Answer, RecordedRequest) {
    let params = Params::parse(query);
    let mut rec = params.record(query);
    rec.authorization = auth.map(|a| String::from_utf8_lossy(a).into_owned());
    let fault = draw_fault(shared);
    rec.fault = fault.as_ref().map(|(k, _)| *k);
    let stall = match &fault {
        Some((FaultKind::Stall, faults)) => Some(faults.stall_for),
        _ => None,
    };
    if let Some(response) = fault
        .as_ref()
        .and_then(|(kind, faults)| infra_fault(*kind, faults))
    {
        rec.status = response.status().as_u16();
        rec.error = (rec.status == 429).then(|| "ratelimited".to_string());
        return (
            Answer {
                response,
                stall: None,
            },
            rec,
        );
    }
    let body = match checked_page(shared, auth, &params, now) {
        Ok(page) => page_body(shared, &page, fault.map(|(k, _)| k), &mut rec),
        Err(code) => {
            rec.error = Some(code.into());
            error_body(code).into_bytes()
        }
    };
    (
        Answer {
            response: respond_bytes(StatusCode::OK, JSON, body),
            stall,
        },
        rec,
    )
}

const JSON: &str = "application/json; charset=utf-8";

/// One draw from the seeded fault RNG, when any fault is possible (so a fault-free simulator
/// does not advance the RNG, and adding faults later starts the same sequence).
fn draw_fault(shared: &Shared) -> Option<(FaultKind, Faults)> {
    let faults = lock(&shared.faults).clone();
    if faults.is_none() {
        return None;
    }
    let u: f64 = lock(&shared.fault_rng).random();
    faults.pick(u).map(|k| (k, faults))
}

/// The answer of a fault that replaces Slack's answer altogether (429, 500, 502).
fn infra_fault(kind: FaultKind, faults: &Faults) -> Option<Response<Full<Bytes>>> {
    match kind {
        FaultKind::RateLimited => {
            let mut r = respond(
                StatusCode::TOO_MANY_REQUESTS,
                JSON,
                error_body("ratelimited"),
            );
            // Retry-After is whole seconds; rounding up never invites an early retry.
            let secs =
                faults.retry_after.as_secs() + u64::from(faults.retry_after.subsec_nanos() > 0);
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
            Some(r)
        }
        FaultKind::ServerError => Some(respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/html; charset=utf-8",
            ERROR_500_HTML.into(),
        )),
        FaultKind::BadGateway => Some(respond(
            StatusCode::BAD_GATEWAY,
            "text/html",
            ERROR_502_HTML.into(),
        )),
        _ => None,
    }
}

/// The 200 body for a valid request, spoilt as `fault` says (`{}`, empty page, truncated).
fn page_body(
    shared: &Shared,
    page: &PageRequest,
    fault: Option<FaultKind>,
    rec: &mut RecordedRequest,
) -> Vec<u8> {
    if fault == Some(FaultKind::EmptyObject) {
        return b"{}".to_vec();
    }
    if fault == Some(FaultKind::EmptyPage) {
        // The cursor points where this page would have started: nothing is skipped.
        let cursor = page.cursor_at(page.hi).encode(shared.secret);
        rec.next_cursor = Some(cursor.clone());
        return format!(
            r#"{{"ok":true,"entries":[],"response_metadata":{{"next_cursor":"{cursor}"}}}}"#
        )
        .into_bytes();
    }
    let out = shared
        .store
        .page(page.oldest, page.hi, page.limit, &page.filter);
    rec.entries = out.count;
    let metadata = match out.next_latest {
        Some(next) => {
            let cursor = page.cursor_at(next).encode(shared.secret);
            rec.next_cursor = Some(cursor.clone());
            format!(r#","response_metadata":{{"next_cursor":"{cursor}"}}"#)
        }
        None => end_of_chain(shared.secret, page),
    };
    let mut body = format!(r#"{{"ok":true,"entries":[{}]{metadata}}}"#, out.entries).into_bytes();
    if fault == Some(FaultKind::Truncated) {
        // Cut mid-body with a matching Content-Length: a complete HTTP answer whose JSON is
        // broken, like a proxy that gave up half way.
        body.truncate(body.len() / 2);
    }
    body
}

/// A validated `/logs` request: the range this page covers and what its cursors bind to.
struct PageRequest {
    oldest: i64,
    hi: i64,
    limit: usize,
    filter: Filter,
    sent_oldest: Option<i64>,
    sent_latest: Option<i64>,
    filters_fp: u64,
    generation: u64,
}

impl PageRequest {
    fn cursor_at(&self, next_latest: i64) -> Cursor {
        Cursor {
            next_latest,
            oldest: self.sent_oldest,
            latest: self.sent_latest,
            filters: self.filters_fp,
            generation: self.generation,
        }
    }
}

/// Checks authentication and parameters in Slack's order; `Err` is the error code.
fn checked_page(
    shared: &Shared,
    auth: Option<&[u8]>,
    p: &Params,
    now: i64,
) -> Result<PageRequest, &'static str> {
    check_auth(shared, auth)?;
    let sent_oldest = parse_int(&p.oldest)?;
    let sent_latest = parse_int(&p.latest)?;
    if sent_latest.is_some_and(|l| l > now) {
        return Err("invalid_range");
    }
    let limit = parse_limit(p.limit.as_deref())?;
    let filter = Filter {
        actions: parse_actions(p.action.as_deref())?,
        actor: p.actor.clone().filter(|s| !s.is_empty()),
        entity: p.entity.clone().filter(|s| !s.is_empty()),
    };
    let mut h = Fnv::new();
    h.write_opt(filter_key(&filter.actions).as_deref());
    h.write_opt(filter.actor.as_deref());
    h.write_opt(filter.entity.as_deref());
    let mut page = PageRequest {
        // Without `oldest`, paging runs through all history (elastic/integrations#8163).
        oldest: sent_oldest.unwrap_or(0),
        hi: sent_latest.unwrap_or(now),
        limit,
        filter,
        sent_oldest,
        sent_latest,
        filters_fp: h.finish(),
        generation: shared.generation.load(Ordering::SeqCst),
    };
    if let Some(raw) = p.cursor.as_deref().filter(|c| !c.is_empty()) {
        let c = Cursor::decode(raw, shared.secret).ok_or("invalid_cursor")?;
        // Stricter than Slack on purpose (see the cursor module): same window, same filters,
        // same generation, or the client is resuming something it should not.
        if c != page.cursor_at(c.next_latest) {
            return Err("invalid_cursor");
        }
        page.hi = page.hi.min(c.next_latest);
    }
    Ok(page)
}

/// `missing_authentication` without a usable bearer token, `invalid_authentication` with the
/// wrong one (when a token is required).
fn check_auth(shared: &Shared, auth: Option<&[u8]>) -> Result<(), &'static str> {
    let token = auth
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or("missing_authentication")?;
    match shared.token.as_deref() {
        Some(want) if want != token => Err("invalid_authentication"),
        _ => Ok(()),
    }
}

/// An optional integer parameter; empty counts as absent.
fn parse_int(v: &Option<String>) -> Result<Option<i64>, &'static str> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| "invalid_arguments"),
    }
}

/// `limit`: [`DEFAULT_LIMIT`] when absent, clamped to 1..=[`MAX_LIMIT`].
fn parse_limit(v: Option<&str>) -> Result<usize, &'static str> {
    match v.map(str::trim) {
        None | Some("") => Ok(DEFAULT_LIMIT),
        // Digits too many for u64 are still "more than 9999".
        Some(s) if s.bytes().all(|b| b.is_ascii_digit()) => Ok(s
            .parse::<u64>()
            .map_or(MAX_LIMIT, |n| n.clamp(1, MAX_LIMIT as u64) as usize)),
        Some(_) => Err("invalid_arguments"),
    }
}

/// `action`: a comma list of at most [`MAX_ACTIONS`] known names.
fn parse_actions(v: Option<&str>) -> Result<Vec<String>, &'static str> {
    let actions: Vec<String> = v
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect();
    if actions.len() > MAX_ACTIONS || !actions.iter().all(|a| catalog::is_known_action(a)) {
        return Err("invalid_action");
    }
    Ok(actions)
}

/// The action list in a canonical order, so `a,b` and `b,a` are one filter.
fn filter_key(actions: &[String]) -> Option<String> {
    if actions.is_empty() {
        return None;
    }
    let mut sorted = actions.to_vec();
    sorted.sort();
    sorted.dedup();
    Some(sorted.join(","))
}

/// One of Slack's three ways to end a chain, picked by the seed and the request, so it varies
/// across chains but a given request always gets the same one.
fn end_of_chain(secret: u64, page: &PageRequest) -> String {
    let mut h = Fnv::new();
    h.write_u64(secret);
    h.write_u64(page.oldest as u64);
    h.write_u64(page.hi as u64);
    h.write_u64(page.filters_fp);
    match h.finish() % 3 {
        0 => r#","response_metadata":{"next_cursor":""}"#.to_string(),
        1 => r#","response_metadata":{}"#.to_string(),
        _ => String::new(),
    }
}

pub(super) const ERROR_500_HTML: &str = "<!DOCTYPE html><html lang=\"en-US\"><head><meta charset=\"utf-8\"><title>Server Error | Slack</title></head>\
<body><h1>Server Error</h1><p>It seems like there\u{2019}s a problem, and we\u{2019}re working on fixing it.</p></body></html>";
pub(super) const ERROR_502_HTML: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n";

pub(super) fn error_body(code: &str) -> String {
    format!(r#"{{"ok":false,"error":"{code}"}}"#)
}

pub(super) fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<Full<Bytes>> {
    respond_bytes(status, content_type, body.into_bytes())
}

pub(super) fn respond_bytes(
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

#[cfg(test)]
mod tests {
    use super::super::store::Store;
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::{json, Value};
    use std::collections::VecDeque;
    use std::sync::atomic::AtomicU64;
    use std::sync::Mutex;

    fn shared(token: Option<&str>) -> Shared {
        let s = Shared {
            store: Store::default(),
            secret: 5,
            token: token.map(str::to_string),
            faults: Mutex::new(Faults::default()),
            fault_rng: Mutex::new(StdRng::seed_from_u64(0)),
            generation: AtomicU64::new(0),
            requests: Mutex::new(VecDeque::new()),
            script: Mutex::default(),
            recorded: Default::default(),
            served: tokio::sync::Notify::new(),
        };
        let entries = (0..5).map(|i| {
            super::super::store::Stored::from_value(
                &json!({"id": format!("e{i}"), "date_create": 100 + i, "action": "user_login"}),
            )
        });
        s.store.insert(entries);
        s
    }

    fn body(a: Answer) -> Value {
        use http_body_util::BodyExt;
        // A Full body is ready at once; a throwaway runtime polls it.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = rt
            .block_on(a.response.into_body().collect())
            .unwrap()
            .to_bytes();
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }

    const AUTH: Option<&[u8]> = Some(b"Bearer xoxp-1");

    #[test]
    fn garbage_queries_never_panic() {
        let s = shared(None);
        for q in [
            "",
            "&&&",
            "limit=",
            "limit=-1",
            "limit=99999999999999999999999",
            "limit=abc",
            "oldest=9223372036854775807&latest=-9223372036854775808",
            "oldest=-9223372036854775808&latest=-9223372036854775808&limit=1",
            "cursor=%FF%FE",
            "cursor=====",
            "action=,,,",
            "%zz=%zz",
            "latest=1e9",
        ] {
            let (a, _) = answer_logs(&s, AUTH, q, 1000);
            assert_eq!(a.response.status(), 200, "{q}");
        }
    }

    #[test]
    fn auth_errors_come_first() {
        let s = shared(Some("xoxp-1"));
        let err = |auth: Option<&[u8]>| answer_logs(&s, auth, "", 1000).1.error;
        assert_eq!(err(None).as_deref(), Some("missing_authentication"));
        assert_eq!(
            err(Some(b"Basic abc")).as_deref(),
            Some("missing_authentication")
        );
        assert_eq!(
            err(Some(b"Bearer \xff")).as_deref(),
            Some("missing_authentication")
        );
        assert_eq!(
            err(Some(b"Bearer xoxp-2")).as_deref(),
            Some("invalid_authentication")
        );
        assert_eq!(err(AUTH), None);
    }

    #[test]
    fn limit_is_clamped_and_defaults() {
        let s = shared(None);
        assert_eq!(answer_logs(&s, AUTH, "limit=0", 1000).1.entries, 1);
        assert_eq!(
            answer_logs(&s, AUTH, "limit=99999999999999999999999", 1000)
                .1
                .entries,
            5
        );
        assert_eq!(answer_logs(&s, AUTH, "", 1000).1.entries, 5);
        assert_eq!(
            answer_logs(&s, AUTH, "limit=x", 1000).1.error.as_deref(),
            Some("invalid_arguments")
        );
    }

    #[test]
    fn all_three_end_spellings_occur() {
        let s = shared(None);
        let mut seen = std::collections::BTreeSet::new();
        for latest in 100..160 {
            let (a, _) = answer_logs(&s, AUTH, &format!("oldest=0&latest={latest}"), 1000);
            let v = body(a);
            seen.insert(match v.get("response_metadata") {
                None => "absent",
                Some(m) if m.get("next_cursor").is_some() => "empty string",
                Some(_) => "empty object",
            });
        }
        assert_eq!(seen.len(), 3, "{seen:?}");
    }

    #[test]
    fn raw_cursor_is_recorded_as_sent() {
        let p = Params::parse("oldest=1&cursor=abc%3D&cursor=zzz");
        assert_eq!(p.cursor.as_deref(), Some("abc="));
        assert_eq!(p.cursor_raw.as_deref(), Some("abc%3D"));
        assert_eq!(Params::parse("cursor=abc=").cursor.as_deref(), Some("abc="));
    }
}

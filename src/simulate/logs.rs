//! `GET /audit/v1/logs` as Slack answers it: authentication, parameters, the page, its cursor
//! or end-of-chain spelling, and the injected faults.
//!
//! [`answer_logs`] is synchronous and pure apart from reading the store and drawing a fault, so
//! the unit tests below drive it without a server. Every Slack-level error is HTTP 200 with
//! `ok:false`, as Slack sends them; only the injected 429/500/502 use other statuses.

use super::catalog;
use super::cursor::{Cursor, Fnv};
use super::faults::FaultKind;
use super::server::{
    error_body, lock, respond, respond_bytes, Shared, ERROR_500_HTML, ERROR_502_HTML,
};
use super::store::Filter;
use super::RecordedRequest;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, RETRY_AFTER};
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
    pub response: Response<Full<Bytes>>,
    pub stall: Option<Duration>,
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
            status: 200,
            error: None,
            fault: None,
            entries: 0,
            next_cursor: None,
        }
    }
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
    let fault = {
        let faults = lock(&shared.faults).clone();
        if faults.is_none() {
            None
        } else {
            let u: f64 = lock(&shared.fault_rng).gen();
            faults.pick(u).map(|k| (k, faults))
        }
    };
    rec.fault = fault.as_ref().map(|(k, _)| *k);
    let mut stall = None;
    if let Some((kind, faults)) = &fault {
        let response = match kind {
            FaultKind::RateLimited => {
                let mut r = respond(
                    StatusCode::TOO_MANY_REQUESTS,
                    "application/json; charset=utf-8",
                    error_body("ratelimited"),
                );
                let secs =
                    faults.retry_after.as_secs() + u64::from(faults.retry_after.subsec_nanos() > 0);
                r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
                rec.error = Some("ratelimited".into());
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
            FaultKind::Stall => {
                stall = Some(faults.stall_for);
                None
            }
            _ => None,
        };
        if let Some(response) = response {
            rec.status = response.status().as_u16();
            return (
                Answer {
                    response,
                    stall: None,
                },
                rec,
            );
        }
    }
    let page = match checked_page(shared, auth, &params, now) {
        Ok(page) => page,
        Err(code) => {
            rec.error = Some(code.into());
            return (
                Answer {
                    response: respond(
                        StatusCode::OK,
                        "application/json; charset=utf-8",
                        error_body(code),
                    ),
                    stall,
                },
                rec,
            );
        }
    };
    let body = match fault.map(|(k, _)| k) {
        Some(FaultKind::EmptyObject) => "{}".to_string(),
        Some(FaultKind::EmptyPage) => {
            // The cursor points where this page would have started: nothing is skipped.
            let cursor = page.cursor_at(page.hi).encode(shared.secret);
            rec.next_cursor = Some(cursor.clone());
            format!(
                r#"{{"ok":true,"entries":[],"response_metadata":{{"next_cursor":"{cursor}"}}}}"#
            )
        }
        other => {
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
                None => end_of_chain(shared.secret, &page),
            };
            let body = format!(r#"{{"ok":true,"entries":[{}]{metadata}}}"#, out.entries);
            if other == Some(FaultKind::Truncated) {
                // Cut mid-body with a matching Content-Length: a complete HTTP answer whose
                // JSON is broken, like a proxy that gave up half way.
                let mut bytes = body.into_bytes();
                bytes.truncate(bytes.len() / 2);
                return (
                    Answer {
                        response: respond_bytes(
                            StatusCode::OK,
                            "application/json; charset=utf-8",
                            bytes,
                        ),
                        stall,
                    },
                    rec,
                );
            }
            body
        }
    };
    (
        Answer {
            response: respond(StatusCode::OK, "application/json; charset=utf-8", body),
            stall,
        },
        rec,
    )
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
    let token = auth
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or("missing_authentication")?;
    if shared.token.as_deref().is_some_and(|want| want != token) {
        return Err("invalid_authentication");
    }
    let int = |v: &Option<String>| -> Result<Option<i64>, &'static str> {
        match v.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|_| "invalid_arguments"),
        }
    };
    let sent_oldest = int(&p.oldest)?;
    let sent_latest = int(&p.latest)?;
    if sent_latest.is_some_and(|l| l > now) {
        return Err("invalid_range");
    }
    let limit = match p.limit.as_deref().map(str::trim) {
        None | Some("") => DEFAULT_LIMIT,
        // Digits too many for u64 are still "more than 9999".
        Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s
            .parse::<u64>()
            .map_or(MAX_LIMIT, |n| n.clamp(1, MAX_LIMIT as u64) as usize),
        Some(_) => return Err("invalid_arguments"),
    };
    let filter = Filter {
        actions: match p.action.as_deref() {
            None => Vec::new(),
            Some(list) => {
                let actions: Vec<String> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_string)
                    .collect();
                if actions.len() > MAX_ACTIONS
                    || !actions.iter().all(|a| catalog::is_known_action(a))
                {
                    return Err("invalid_action");
                }
                actions
            }
        },
        actor: p.actor.clone().filter(|s| !s.is_empty()),
        entity: p.entity.clone().filter(|s| !s.is_empty()),
    };
    let mut h = Fnv::new();
    h.write_opt(filter_key(&filter.actions).as_deref());
    h.write_opt(filter.actor.as_deref());
    h.write_opt(filter.entity.as_deref());
    let filters_fp = h.finish();
    let generation = shared.generation.load(Ordering::SeqCst);
    let mut hi = sent_latest.unwrap_or(now);
    if let Some(raw) = p.cursor.as_deref().filter(|c| !c.is_empty()) {
        let c = Cursor::decode(raw, shared.secret).ok_or("invalid_cursor")?;
        if c.oldest != sent_oldest
            || c.latest != sent_latest
            || c.filters != filters_fp
            || c.generation != generation
        {
            return Err("invalid_cursor");
        }
        hi = hi.min(c.next_latest);
    }
    // Without `oldest`, paging runs through all history (elastic/integrations#8163).
    Ok(PageRequest {
        oldest: sent_oldest.unwrap_or(0),
        hi,
        limit,
        filter,
        sent_oldest,
        sent_latest,
        filters_fp,
        generation,
    })
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

#[cfg(test)]
mod tests {
    use super::super::faults::Faults;
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

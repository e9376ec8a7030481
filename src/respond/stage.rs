//! The stage in `run`: plans a page's findings into the ledger, calls Slack for the actions
//! due (`enforce`), and writes the response documents.
//!
//! The poller drives it (see `poller/respond.rs`): [`Responder::plan`] before the page's
//! checkpoint, so the plan is saved with the page; [`Responder::enforce`] after it, saving
//! the ledger after every call; then [`Responder::report_with`] into a batch delivered after the
//! page. A Slack error is recorded in the action (and its document), counted and shown on
//! `/readyz`; it never stops the reader.

use super::document;
use super::{Mode, Planner};
use crate::checkpoint::response::{Kind, Ledger, Outcome, MAX_TEXT};
use crate::slack::web_api::{WebApi, WebApiError};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;

/// A call's future.
pub(crate) type Call<'a> = Pin<Box<dyn Future<Output = Result<(), Refused>> + Send + 'a>>;

/// A call that did not succeed. It never holds a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    /// Slack's error code (`missing_scope`, `ratelimited`, …) or one word for what went wrong
    /// on the way (`timeout`, `transport_error`).
    pub(crate) code: String,
    /// True when Slack may have acted even so (the answer was lost on the way).
    pub(crate) maybe_acted: bool,
}

impl Refused {
    /// Slack said no: it did not act.
    pub(crate) fn slack(code: &str) -> Refused {
        Refused {
            code: code.to_string(),
            maybe_acted: false,
        }
    }
}

/// What makes the calls: Slack's Web API, or a recording double in tests.
pub(crate) trait Executor: Send + Sync + std::fmt::Debug {
    /// `admin.users.session.invalidate` for one session of `user`.
    fn invalidate<'a>(&'a self, user: &'a str, session: &'a str) -> Call<'a>;
    /// `admin.users.session.reset`: every session of `user`.
    fn reset<'a>(&'a self, user: &'a str) -> Call<'a>;
}

impl From<WebApiError> for Refused {
    fn from(e: WebApiError) -> Refused {
        Refused {
            maybe_acted: e.outcome_unknown(),
            code: e.code(),
        }
    }
}

/// Slack's Web API ends the sessions.
impl Executor for WebApi {
    fn invalidate<'a>(&'a self, user: &'a str, session: &'a str) -> Call<'a> {
        Box::pin(async move { Ok(self.invalidate_session(user, session).await?) })
    }

    fn reset<'a>(&'a self, user: &'a str) -> Call<'a> {
        Box::pin(async move { Ok(self.reset_sessions(user).await?) })
    }
}

/// The response stage of `run`.
#[derive(Debug)]
pub(crate) struct Responder {
    planner: Planner,
    ledger: Ledger,
    executor: Option<Box<dyn Executor>>,
}

impl Responder {
    /// A stage resuming from `ledger` (the checkpoint's); `executor` is needed in `enforce`.
    pub(crate) fn new(
        planner: Planner,
        ledger: Ledger,
        executor: Option<Box<dyn Executor>>,
    ) -> Responder {
        Responder {
            planner,
            ledger,
            executor,
        }
    }

    /// The stage `run` builds from its configuration: `None` with `--respond off`. It resumes
    /// from the checkpoint's `ledger`, and has the pipeline keep each page's findings.
    pub(crate) fn build(
        config: &super::RespondConfig,
        analysis: &crate::analysis::AnalysisConfig,
        ledger: Option<Ledger>,
        pipeline: &mut crate::pipeline::Pipeline,
        web_api: Option<WebApi>,
    ) -> Option<Responder> {
        if config.mode == Mode::Off {
            return None;
        }
        // Only `enforce` gets something that can call: `plan` cannot, by construction.
        let executor = web_api
            .filter(|_| config.mode == Mode::Enforce)
            .map(|w| Box::new(w) as Box<dyn Executor>);
        pipeline.keep_findings = true;
        let planner = Planner::new(
            config.clone(),
            analysis.rules.clone(),
            analysis.allowlist.clone(),
        );
        let ledger = resumed(ledger.unwrap_or_default(), config.mode);
        Some(Responder::new(planner, ledger, executor))
    }

    /// The ledger, as the checkpoint saves it.
    pub(crate) fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Plans the findings among a page's delivered documents.
    pub(crate) fn plan(&mut self, docs: &[Value]) {
        let now = chrono::Utc::now().timestamp();
        for d in docs {
            self.planner.plan(d, &mut self.ledger, Some(now));
        }
    }

    /// Actions or alerts waiting to be called or reported.
    pub(crate) fn has_work(&self) -> bool {
        !self.ledger.actions.is_empty() || !self.ledger.alerts.is_empty()
    }

    /// Makes every call due, in order, handing the ledger to `save` after each one: a crash
    /// then repeats at most the call in flight. A Slack error ends that action as a failure
    /// and the stage goes on with the next.
    ///
    /// # Errors
    ///
    /// What `save` returns (the checkpoint could not be written): nothing more is called.
    pub(crate) async fn enforce<E>(
        &mut self,
        mut save: impl FnMut(&Ledger) -> Result<(), E>,
    ) -> Result<(), E> {
        for i in 0..self.ledger.actions.len() {
            while let Some(a) = self.ledger.actions.get(i).filter(|a| a.is_due()) {
                let result = match (&self.executor, a.kind) {
                    (None, _) => Err(Refused::slack("no_admin_token")),
                    (Some(x), Kind::SessionReset) => x.reset(&a.user.id).await,
                    (Some(x), Kind::SessionInvalidate) => match a.session_ids.get(a.calls_done) {
                        Some(s) => x.invalidate(&a.user.id, s).await,
                        None => Ok(()),
                    },
                };
                let Some(a) = self.ledger.actions.get_mut(i) else {
                    break;
                };
                match result {
                    Ok(()) => {
                        a.calls_done += 1;
                        if a.calls_done >= a.calls() {
                            a.outcome = Some(Outcome::Success);
                        }
                    }
                    Err(refused) => {
                        a.outcome = Some(if refused.maybe_acted {
                            Outcome::Unknown
                        } else {
                            Outcome::Failure
                        });
                        a.error = Some(bounded(&refused.code));
                    }
                }
                if let Some(outcome) = a.outcome {
                    let ok = outcome == Outcome::Success;
                    tracing::warn!(
                        action = a.kind.as_str(),
                        user = %a.user.id,
                        sessions = a.session_ids.len(),
                        finding = %a.finding_id,
                        outcome = document::outcome(a),
                        error = a.error.as_deref().unwrap_or(""),
                        "response enforced: {}",
                        if ok { "Slack ended the session(s)" } else { "Slack refused; the finding stands, act by hand" }
                    );
                    crate::metrics::response_enforced(ok, a.error.as_deref());
                }
                save(&self.ledger)?;
            }
        }
        Ok(())
    }

    /// Writes the documents of every action and alert not yet reported into `batch`, each
    /// breaker alert right after the action it held first, and marks them reported: they
    /// leave the ledger at its next save.
    #[cfg(test)]
    pub(crate) fn report(&mut self, batch: &mut crate::sink::Batch) {
        self.report_with(|doc| batch.push(&doc));
    }

    /// [`Responder::report`], handing each document to `emit`.
    pub(crate) fn report_with(&mut self, mut emit: impl FnMut(Value)) {
        let Ledger {
            actions, alerts, ..
        } = &mut self.ledger;
        for a in actions.iter_mut().filter(|a| !a.reported && !a.is_due()) {
            emit(document::response(a));
            crate::metrics::response_reported(
                a.kind.as_str(),
                document::outcome(a),
                document::mode(a),
            );
            a.reported = true;
            for b in alerts.iter_mut().filter(|b| b.finding_id == a.finding_id) {
                emit(document::breaker_open(b));
                b.reported = true;
            }
        }
        for b in alerts.iter_mut().filter(|b| !b.reported) {
            emit(document::breaker_open(b));
            b.reported = true;
        }
        self.ledger.forget_reported();
    }

    /// `analyze --respond plan`: a [`crate::analysis::Plan`] that plans each finding (with
    /// the breaker's memory kept from one to the next) and hands back its documents. Never
    /// acts: `enforce` is refused before this is built, and nothing here can call.
    pub(crate) fn analyze_plan(
        config: super::RespondConfig,
    ) -> impl FnOnce(&crate::analysis::AnalysisConfig) -> Option<crate::analysis::Plan> {
        move |analysis| {
            if config.mode != Mode::Plan {
                return None;
            }
            let planner = Planner::new(config, analysis.rules.clone(), analysis.allowlist.clone());
            let mut r = Responder::new(planner, Ledger::default(), None);
            Some(Box::new(move |doc: &Value, out: &mut Vec<Value>| {
                if r.planner.plan(doc, &mut r.ledger, None) {
                    r.report_with(|d| out.push(d));
                }
            }))
        }
    }
}

/// The checkpoint's ledger as a run in `mode` takes it up: calls left by an `enforce` run are
/// only planned when this run does not enforce (`held: not_enforcing`), never failed for want
/// of a token nor made.
fn resumed(mut ledger: Ledger, mode: Mode) -> Ledger {
    if mode != Mode::Enforce {
        for a in ledger.actions.iter_mut().filter(|a| a.is_due()) {
            a.act = false;
            a.held = Some(HELD_NOT_ENFORCING.into());
        }
    }
    ledger
}

/// Why a call an earlier `enforce` run planned was not made.
pub(crate) const HELD_NOT_ENFORCING: &str = "not_enforcing";

/// A Slack error code as kept: printable ASCII, bounded.
fn bounded(code: &str) -> String {
    let mut s: String = code
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(MAX_TEXT)
        .collect();
    if s.is_empty() {
        s = "unknown_error".into();
    }
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::plan::tests::{finding, planner, DEACTIVATED, STOLEN};
    use super::*;
    use crate::sink::Batch;
    use std::sync::{Arc, Mutex};

    /// Records each call; answers with the scripted errors first, then ok.
    #[derive(Debug, Default, Clone)]
    pub(crate) struct Recorder {
        pub(crate) calls: Arc<Mutex<Vec<String>>>,
        pub(crate) errors: Arc<Mutex<Vec<String>>>,
    }

    impl Recorder {
        fn answer(&self, call: String) -> Result<(), Refused> {
            self.calls.lock().unwrap().push(call);
            let mut e = self.errors.lock().unwrap();
            if e.is_empty() {
                Ok(())
            } else {
                Err(Refused::slack(&e.remove(0)))
            }
        }
    }

    impl Executor for Recorder {
        fn invalidate<'a>(&'a self, user: &'a str, session: &'a str) -> Call<'a> {
            Box::pin(async move { self.answer(format!("invalidate {user} {session}")) })
        }
        fn reset<'a>(&'a self, user: &'a str) -> Call<'a> {
            Box::pin(async move { self.answer(format!("reset {user}")) })
        }
    }

    /// Two findings from the last minutes (older ones would be held as stale in enforce).
    fn docs() -> Vec<Value> {
        let at = |ago: i64| {
            chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() - ago, 0)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        vec![
            finding(STOLEN, "U1", "high", &at(120), &["s1", "s2"]),
            finding(DEACTIVATED, "U2", "critical", &at(60), &[]),
        ]
    }

    fn lines(batch: &Batch) -> Vec<Value> {
        batch
            .lines()
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn plan_calls_nothing_and_enforce_calls_exactly_what_the_plan_said() {
        let rec = Recorder::default();
        let mut plan = Responder::new(
            planner(Mode::Plan, &[], ""),
            Ledger::default(),
            Some(Box::new(rec.clone())),
        );
        plan.plan(&docs());
        let mut saves = 0;
        plan.enforce(|_| -> Result<(), ()> {
            saves += 1;
            Ok(())
        })
        .await
        .unwrap();
        assert!(rec.calls.lock().unwrap().is_empty(), "plan calls nothing");
        assert_eq!(saves, 0);
        let mut batch = Batch::new();
        plan.report(&mut batch);
        let planned = lines(&batch);
        assert_eq!(planned.len(), 2);
        assert!(planned.iter().all(
            |d| d["event"]["outcome"] == "unknown" && d["slack"]["response"]["mode"] == "plan"
        ));

        let mut enforce = Responder::new(
            planner(Mode::Enforce, &[], ""),
            Ledger::default(),
            Some(Box::new(rec.clone())),
        );
        enforce.plan(&docs());
        let mut saved = Vec::new();
        enforce
            .enforce(|l| -> Result<(), ()> {
                saved.push(l.clone());
                Ok(())
            })
            .await
            .unwrap();
        // One save per call, each recording that call.
        assert_eq!(saved.len(), 3);
        assert_eq!(saved[0].actions[0].calls_done, 1);
        let calls = rec.calls.lock().unwrap().clone();
        let planned_calls: Vec<String> = planned
            .iter()
            .flat_map(|d| {
                let user = d["user"]["target"]["id"].as_str().unwrap().to_string();
                let sessions: Vec<String> = d["slack"]["response"]["session_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_string())
                    .collect();
                match d["event"]["action"].as_str().unwrap() {
                    "session_invalidate" => sessions
                        .iter()
                        .map(|s| format!("invalidate {user} {s}"))
                        .collect::<Vec<_>>(),
                    _ => vec![format!("reset {user}")],
                }
            })
            .collect();
        assert_eq!(
            calls, planned_calls,
            "enforce calls exactly what the plan said"
        );
        let mut batch = Batch::new();
        enforce.report(&mut batch);
        let done = lines(&batch);
        assert!(
            done.iter().all(|d| d["event"]["outcome"] == "success"
                && d["slack"]["response"]["mode"] == "enforce"),
            "{done:?}"
        );
        assert_eq!(done[0]["event"]["dataset"], "slack.response");
        assert_eq!(done[0]["event"]["category"], serde_json::json!(["iam"]));
        assert!(
            enforce.ledger().actions.is_empty(),
            "reported actions leave the ledger"
        );
    }

    /// A ledger saved after the first call (the crash came before the second) resumes with
    /// the second call: nothing is repeated.
    #[tokio::test]
    async fn a_resumed_ledger_makes_only_the_calls_left() {
        let rec = Recorder::default();
        let mut r = Responder::new(
            planner(Mode::Enforce, &[], ""),
            Ledger::default(),
            Some(Box::new(rec.clone())),
        );
        r.plan(&docs());
        let mut first = None;
        r.enforce(|l| -> Result<(), ()> {
            first.get_or_insert_with(|| l.clone());
            Ok(())
        })
        .await
        .unwrap();
        rec.calls.lock().unwrap().clear();
        let mut resumed = Responder::new(
            planner(Mode::Enforce, &[], ""),
            first.unwrap(),
            Some(Box::new(rec.clone())),
        );
        resumed
            .enforce(|_| -> Result<(), ()> { Ok(()) })
            .await
            .unwrap();
        assert_eq!(*rec.calls.lock().unwrap(), ["invalidate U1 s2", "reset U2"]);
    }

    /// A crash between a call and its save: the ledger saved before the call (the plan) is
    /// what restarts, so that one call is made again, then the rest; nothing else repeats.
    #[tokio::test]
    async fn a_crash_between_a_call_and_its_save_repeats_that_call_only() {
        let rec = Recorder::default();
        let mut r = Responder::new(
            planner(Mode::Enforce, &[], ""),
            Ledger::default(),
            Some(Box::new(rec.clone())),
        );
        r.plan(&docs());
        let planned = r.ledger().clone();
        let mut first = None;
        r.enforce(|l| -> Result<(), ()> {
            first.get_or_insert_with(|| l.clone());
            Ok(())
        })
        .await
        .unwrap();
        // The first call was made; its save is lost: restart from the plan.
        let made = rec.calls.lock().unwrap()[0].clone();
        rec.calls.lock().unwrap().clear();
        let mut resumed = Responder::new(
            planner(Mode::Enforce, &[], ""),
            planned,
            Some(Box::new(rec.clone())),
        );
        resumed
            .enforce(|_| -> Result<(), ()> { Ok(()) })
            .await
            .unwrap();
        assert_eq!(
            *rec.calls.lock().unwrap(),
            [made.as_str(), "invalidate U1 s2", "reset U2"]
        );
    }

    #[tokio::test]
    async fn a_slack_error_fails_that_action_and_the_next_goes_on() {
        let rec = Recorder::default();
        rec.errors.lock().unwrap().push("missing_scope".into());
        let mut r = Responder::new(
            planner(Mode::Enforce, &[], ""),
            Ledger::default(),
            Some(Box::new(rec.clone())),
        );
        r.plan(&docs());
        r.enforce(|_| -> Result<(), ()> { Ok(()) }).await.unwrap();
        assert_eq!(*rec.calls.lock().unwrap(), ["invalidate U1 s1", "reset U2"]);
        let mut batch = Batch::new();
        r.report(&mut batch);
        let d = lines(&batch);
        assert_eq!(d[0]["event"]["outcome"], "failure");
        assert_eq!(d[0]["slack"]["response"]["error"], "missing_scope");
        assert_eq!(d[1]["event"]["outcome"], "success");
    }

    /// An enforce run's plan taken up by a plan run: nothing is called, and the actions are
    /// reported as planned, held because this run does not enforce.
    #[tokio::test]
    async fn calls_left_by_enforce_are_only_planned_by_a_run_that_does_not_enforce() {
        let rec = Recorder::default();
        let mut e = Responder::new(planner(Mode::Enforce, &[], ""), Ledger::default(), None);
        e.plan(&docs());
        let left = e.ledger().clone();
        assert!(left.actions.iter().all(|a| a.is_due()));
        let mut p = Responder::new(
            planner(Mode::Plan, &[], ""),
            resumed(left, Mode::Plan),
            Some(Box::new(rec.clone())),
        );
        p.enforce(|_| -> Result<(), ()> { Ok(()) }).await.unwrap();
        assert!(rec.calls.lock().unwrap().is_empty());
        let mut batch = Batch::new();
        p.report(&mut batch);
        let d = lines(&batch);
        assert_eq!(d.len(), 2);
        assert!(d.iter().all(|d| d["event"]["outcome"] == "unknown"
            && d["slack"]["response"]["held"] == HELD_NOT_ENFORCING));
    }

    #[tokio::test]
    async fn a_failed_save_stops_the_calls() {
        let rec = Recorder::default();
        let mut r = Responder::new(
            planner(Mode::Enforce, &[], ""),
            Ledger::default(),
            Some(Box::new(rec.clone())),
        );
        r.plan(&docs());
        assert!(r.enforce(|_| Err("disk full")).await.is_err());
        assert_eq!(rec.calls.lock().unwrap().len(), 1);
    }
}

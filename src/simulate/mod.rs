//! A stand-in for the Slack Audit Logs API, with generated events: `simulate --listen ADDR`,
//! the server behind `demo`, and the API the integration tests and soak tests poll.
//!
//! It is faithful to docs/slack-api.md where clients can tell: bearer auth with Slack's error
//! codes on HTTP 200, newest first, inclusive whole-second bounds, pages that never split a
//! second (and so may exceed `limit`), padded base64 cursors, the three spellings of "no more
//! pages", `/schemas` and `/actions` without auth, and an HTML glitch page off the API. On top
//! it injects faults ([`Faults`]), same-second bursts and late-indexed entries, answers what a
//! test scripts ([`Reply`], [`SimHandle::script`]), and records every request
//! ([`SimHandle::requests`]). It is the one Slack stand-in of the test suite. It is stricter than Slack on cursors on purpose
//! (see the `cursor` module). It does not rate-limit by itself: 429s come only from [`Faults`].
//!
//! Layout: [`generator`] makes entries, `store` indexes them by second, `server` routes the
//! connections [`crate::serve`] accepts, `logs` answers `/audit/v1/logs`, `cursor` signs cursors,
//! `traffic` adds entries over time, `faults` decides what goes wrong, `catalog` serves
//! `/actions` and `/schemas`, `web_api` serves the Web API's admin methods under `/api/`
//! (ending sessions, Slack's anomaly allowlist) with a token of their own.

mod catalog;
mod cursor;
pub(crate) mod faults;
pub mod generator;
mod json;
mod logs;
mod script;
mod server;
mod shared;
mod store;
mod traffic;
mod web_api;

pub use faults::{FaultKind, Faults};
pub use script::Reply;
pub use web_api::{SimAllowlist, WebApiCall};

use crate::shutdown::Shutdown;
use crate::units::ConfigError;
use rand::SeedableRng;
use serde_json::Value;
use shared::{lock, Shared};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Default `--listen`: a fixed loopback port, so a `run` in another terminal finds it.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:8686";
/// Default `--burst-every`.
pub(crate) const DEFAULT_BURST_EVERY: &str = "60s";
/// Default `--late-delay`: how long a late entry stays invisible.
pub(crate) const DEFAULT_LATE_DELAY: Duration = Duration::from_secs(120);

/// Arguments of `simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Address to serve on; port 0 picks a free port (the first stderr line says which).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub(crate) listen: String,
    /// Seed of every random choice: the same seed gives the same entries, cursors and faults.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Live entries per second, dated "now".
    #[arg(long, default_value_t = 1.0)]
    pub(crate) rate: f64,
    /// Entries made at start, spread over the past `--backfill-span`.
    #[arg(long, default_value_t = 1000)]
    pub(crate) backfill: usize,
    /// How far back the backfill reaches (`90s`, `1h`, `720h`).
    #[arg(long, default_value = "24h")]
    pub(crate) backfill_span: String,
    /// Play the departing-salesperson story in the first minute.
    #[arg(long)]
    pub(crate) story: bool,
    /// Add the eleven-day attack story to the backfill: a brute force ending in a login, an
    /// admin making himself owner, an app with the admin scope, a private channel made public,
    /// mass session resets, a hijacked session, activity after deactivation and an export,
    /// dated over the eleven days before now (read them with `run --initial-lookback 265h`).
    #[arg(long)]
    pub(crate) attacks: bool,
    /// Require this bearer token (otherwise any non-empty bearer token is accepted).
    #[arg(long, env = "SLACK_AUDIT_SIM_TOKEN")]
    pub(crate) token: Option<String>,
    /// Fault probabilities per `/logs` request, e.g.
    /// `429=0.05,500=0.05,502=0.02,stall=0.01,truncated=0.02,empty_object=0.02,empty_page=0.01`.
    #[arg(long, default_value = "")]
    pub(crate) faults: String,
    /// `Retry-After` of injected 429s (`5` or `5s`).
    #[arg(long, default_value_t = faults::DEFAULT_RETRY_AFTER.as_secs().to_string())]
    pub(crate) retry_after: String,
    /// How long an injected stall holds a request (`120` or `2m`).
    #[arg(long, default_value_t = faults::DEFAULT_STALL.as_secs().to_string())]
    pub(crate) stall: String,
    /// Entries on one second, once in the backfill and then every `--burst-every`.
    #[arg(long, default_value_t = 0)]
    pub(crate) burst: usize,
    /// Period of live bursts.
    #[arg(long, default_value = DEFAULT_BURST_EVERY)]
    pub(crate) burst_every: String,
    /// Share of live entries indexed late (0..=1).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) late_fraction: f64,
    /// How long a late entry stays invisible (`120` or `2m`).
    #[arg(long, default_value_t = DEFAULT_LATE_DELAY.as_secs().to_string())]
    pub(crate) late_delay: String,
    /// Require this bearer token on the Web API's admin methods under /api/ (otherwise any
    /// non-empty token but the audit token is accepted).
    #[arg(long, env = "SLACK_AUDIT_SIM_ADMIN_TOKEN")]
    pub(crate) admin_token: Option<String>,
    /// CIDRs Slack's anomaly allowlist holds (admin.audit.anomaly.allow.getItem), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub(crate) trusted_cidr: Vec<String>,
    /// AS numbers Slack's anomaly allowlist holds, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub(crate) trusted_asns: Vec<u64>,
    /// Answer every Web API admin call with this Slack error (e.g. missing_scope).
    #[arg(long)]
    pub(crate) web_api_error: Option<String>,
}

/// Options of a simulator started in-process. `Default` serves nothing and injects nothing.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Seed of entries, cursor signatures, end-of-chain spellings and fault draws.
    pub seed: u64,
    /// Live entries per second (0: none).
    pub rate_per_sec: f64,
    /// Entries generated at start.
    pub backfill_events: usize,
    /// The backfill spreads over `[end - backfill_secs, end]`.
    pub backfill_secs: u64,
    /// The backfill's newest second (Unix); `None` is "now". Tests fix it for determinism.
    pub backfill_end: Option<i64>,
    /// Play the departing-salesperson story in the first minute of traffic.
    pub story: bool,
    /// Add the eleven-day attack story to the backfill, dated over the eleven days before
    /// the backfill's end (`simulate --attacks`).
    pub attacks: bool,
    /// Play the attack story live, compressed into the minute after the departing-salesperson
    /// story (what `demo` does).
    pub attacks_live: bool,
    /// Fault probabilities and knobs.
    pub faults: Faults,
    /// The bearer token required; `None` accepts any non-empty one.
    pub token: Option<String>,
    /// Entries on one second: once in the backfill's middle second, then every `burst_every`.
    pub burst: usize,
    /// Period of live bursts.
    pub burst_every: Duration,
    /// Share of live entries held back for `late_delay` (dated when made, visible later).
    pub late_fraction: f64,
    /// How long late entries stay invisible.
    pub late_delay: Duration,
    /// The bearer token the Web API's methods require; `None` accepts any non-empty one but
    /// the audit `token`.
    pub admin_token: Option<String>,
    /// What `admin.audit.anomaly.allow.getItem` answers.
    pub slack_allowlist: SimAllowlist,
    /// A Slack error every Web API call answers (`missing_scope`...); `None`: they succeed.
    pub web_api_error: Option<String>,
}

impl Default for SimOptions {
    fn default() -> SimOptions {
        SimOptions {
            seed: 0,
            rate_per_sec: 0.0,
            backfill_events: 0,
            backfill_secs: 0,
            backfill_end: None,
            story: false,
            attacks: false,
            attacks_live: false,
            faults: Faults::default(),
            token: None,
            burst: 0,
            burst_every: crate::units::default_duration(DEFAULT_BURST_EVERY),
            late_fraction: 0.0,
            late_delay: DEFAULT_LATE_DELAY,
            admin_token: None,
            slack_allowlist: SimAllowlist::default(),
            web_api_error: None,
        }
    }
}

impl SimOptions {
    /// What `demo` uses: an hour of backfill, an event a second, the departing-salesperson
    /// story in the first minute and the attack story, compressed, in the next. No faults: the
    /// demo shows the data, not the retries.
    pub(crate) fn demo() -> SimOptions {
        SimOptions {
            seed: 42,
            rate_per_sec: 1.0,
            backfill_events: 12,
            backfill_secs: 3600,
            story: true,
            attacks_live: true,
            ..SimOptions::default()
        }
    }

    /// The options `simulate`'s flags ask for.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the flag: a bad duration, fault spec, rate or fraction.
    pub(crate) fn from_args(args: &SimulateArgs) -> Result<SimOptions, ConfigError> {
        let invalid = |flag: &'static str, message: String| ConfigError::Invalid { flag, message };
        if !(args.rate.is_finite() && args.rate >= 0.0) {
            return Err(invalid(
                "rate",
                format!(
                    "{} is not a rate; give events per second, 0 or more",
                    args.rate
                ),
            ));
        }
        if !(0.0..=1.0).contains(&args.late_fraction) {
            return Err(invalid(
                "late-fraction",
                format!("{} is not a fraction between 0 and 1", args.late_fraction),
            ));
        }
        let mut faults = Faults::parse(&args.faults).map_err(|m| invalid("faults", m))?;
        faults.retry_after = parse_secs("retry-after", &args.retry_after)?;
        faults.stall_for = parse_secs("stall", &args.stall)?;
        Ok(SimOptions {
            seed: args.seed,
            rate_per_sec: args.rate,
            backfill_events: args.backfill,
            backfill_secs: crate::units::parse_duration("backfill-span", &args.backfill_span)?
                .as_secs(),
            backfill_end: None,
            story: args.story,
            attacks: args.attacks,
            attacks_live: false,
            faults,
            token: args.token.clone().filter(|t| !t.is_empty()),
            burst: args.burst,
            burst_every: crate::units::parse_duration("burst-every", &args.burst_every)?,
            late_fraction: args.late_fraction,
            late_delay: parse_secs("late-delay", &args.late_delay)?,
            admin_token: args.admin_token.clone().filter(|t| !t.is_empty()),
            slack_allowlist: SimAllowlist {
                trusted_cidr: args.trusted_cidr.clone(),
                trusted_asns: args.trusted_asns.clone(),
            },
            web_api_error: args.web_api_error.clone().filter(|e| !e.is_empty()),
        })
    }
}

/// A duration given as bare seconds (`30`, as the fault flags were first specified) or with a
/// unit (`30s`, `2m`).
fn parse_secs(flag: &'static str, value: &str) -> Result<Duration, ConfigError> {
    match value.trim().parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => crate::units::parse_duration(flag, value),
    }
}

/// One `/audit/v1/logs` request as the simulator saw it. Parameters are the decoded values,
/// except `cursor`, which is kept exactly as it came over the wire (so tests can see `%3D`).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// Always `/audit/v1/logs` (other paths are not recorded).
    pub(crate) path: String,
    /// The raw query string.
    pub query: String,
    /// `oldest` as sent.
    pub(crate) oldest: Option<String>,
    /// `latest` as sent.
    pub(crate) latest: Option<String>,
    /// `limit` as sent.
    pub(crate) limit: Option<String>,
    /// `cursor` raw, still percent-encoded.
    pub cursor: Option<String>,
    /// `action` as sent.
    pub(crate) action: Option<String>,
    /// `actor` as sent.
    pub(crate) actor: Option<String>,
    /// `entity` as sent.
    pub(crate) entity: Option<String>,
    /// The `Authorization` header as sent (a test token; the simulator is never given a real
    /// one).
    pub authorization: Option<String>,
    /// The HTTP status answered.
    pub(crate) status: u16,
    /// The `error` of an `ok:false` answer (`ratelimited` for injected 429s).
    pub(crate) error: Option<String>,
    /// The fault injected, if any.
    pub fault: Option<FaultKind>,
    /// Entries served.
    pub entries: usize,
    /// The `next_cursor` served, if any.
    pub next_cursor: Option<String>,
}

impl RecordedRequest {
    /// Every query parameter, decoded (the cursor too); a repeated one keeps its last value.
    pub fn params(&self) -> std::collections::HashMap<String, String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect()
    }
}

/// A running simulator. Dropping it does not stop the server; the `shutdown` given to
/// [`start`] does.
#[derive(Debug, Clone)]
pub struct SimHandle {
    /// Where it listens (the real port when started on port 0).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    web: Arc<web_api::WebApiState>,
}

impl SimHandle {
    /// `http://ADDR`, the `--api-url` to give `run`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Makes entries visible at once, whatever their `date_create` (0 when absent).
    pub fn insert(&self, entries: impl IntoIterator<Item = Value>) {
        let entries: Vec<Value> = entries.into_iter().collect();
        self.shared
            .store
            .insert(entries.iter().map(store::Stored::from_value));
    }

    /// Queues scripted replies: the next `/logs` requests get them, one each, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.shared.script).push(replies);
    }

    /// Answers `/logs` request number `index` (from 0, counting every `/logs` request since
    /// start) with `reply`, ahead of the queue.
    pub fn script_at(&self, index: usize, reply: Reply) {
        lock(&self.shared.script).set_at(index, reply);
    }

    /// Answers every `/logs` request that no other scripted reply answers with `reply`: a
    /// peer that never gets better.
    pub fn always(&self, reply: Reply) {
        lock(&self.shared.script).set_always(Some(reply));
    }

    /// Waits until `n` `/logs` requests have been recorded since start.
    pub async fn wait_requests(&self, n: usize) {
        loop {
            // Created before the check, so a request answered in between still wakes it.
            let served = self.shared.served.notified();
            if self.shared.recorded.load(Ordering::SeqCst) >= n {
                return;
            }
            served.await;
        }
    }

    /// Adds an entry that becomes visible only after `visible_after` (tokio time, so a test
    /// can advance a paused clock), keeping its own `date_create`: a late-indexed event.
    pub fn insert_late(&self, entry: Value, visible_after: Duration) {
        let (date, stored) = store::Stored::from_value(&entry);
        self.shared
            .store
            .insert_late(date, stored, tokio::time::Instant::now() + visible_after);
    }

    /// Every `(id, date_create)` made visible so far, oldest second first.
    pub fn ids(&self) -> Vec<(String, i64)> {
        self.shared.store.release_due(tokio::time::Instant::now());
        self.shared.store.ids()
    }

    /// The `/logs` requests received (the newest 100,000), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).iter().cloned().collect()
    }

    /// Every cursor issued so far answers `invalid_cursor` from now on.
    pub fn invalidate_cursors(&self) {
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// `http://ADDR/api`, the `--web-api-url` to give `run`.
    pub fn web_api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// Queues scripted replies for the Web API's methods: the next calls that pass the token
    /// check get them, one each, in order.
    pub fn script_web_api(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.web.script).push(replies);
    }

    /// Answers every Web API call that passes the token check and no other scripted reply
    /// answers with `reply` (`None`: the methods answer for themselves again).
    pub fn always_web_api(&self, reply: Option<Reply>) {
        lock(&self.web.script).set_always(reply);
    }

    /// Replaces what `admin.audit.anomaly.allow.getItem` answers.
    pub fn set_slack_allowlist(&self, allowlist: SimAllowlist) {
        *lock(&self.web.allowlist) = allowlist;
    }

    /// The Web API calls received (the newest 10,000), oldest first; also served as NDJSON at
    /// `GET /_sim/web_api_calls`.
    pub fn web_api_calls(&self) -> Vec<WebApiCall> {
        lock(&self.web.calls).iter().cloned().collect()
    }

    /// Waits until `n` Web API calls have been recorded since start.
    pub async fn wait_web_api_calls(&self, n: usize) {
        loop {
            let served = self.web.served.notified();
            if self.web.recorded.load(Ordering::SeqCst) >= n {
                return;
            }
            served.await;
        }
    }

    /// Replaces the fault probabilities for the following requests.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.shared.faults) = faults;
    }
}

/// Salts that give the story and the fault draws RNG streams of their own, so that neither
/// depends on how much live traffic happened to be generated before them.
const STORY_SALT: u64 = 0x5354_4f52_5900_0001;
const FAULT_SALT: u64 = 0x4641_554c_5400_0002;
const ATTACK_SALT: u64 = 0x4154_5441_434b_0003;

/// Starts a simulator on `addr`: binds, generates the backfill (on a blocking thread: a
/// million entries take seconds), then serves and runs live traffic until `shutdown`.
///
/// # Errors
///
/// [`crate::Error::Listen`] when the address cannot be bound.
pub async fn start(
    addr: SocketAddr,
    options: SimOptions,
    shutdown: Shutdown,
) -> Result<SimHandle, crate::Error> {
    let listen_error = |source| {
        crate::Error::from(crate::units::ListenError {
            addr: addr.to_string(),
            source,
        })
    };
    let listener = crate::serve::bind(addr).await?;
    let local = listener.local_addr().map_err(listen_error)?;
    let (n, span, burst, seed) = (
        options.backfill_events,
        options.backfill_secs,
        options.burst,
        options.seed,
    );
    let end = options.backfill_end.unwrap_or_else(server::unix_now);
    let backfill =
        tokio::task::spawn_blocking(move || traffic::backfill(seed, n, span, end, burst))
            .await
            .map_err(|e| {
                listen_error(std::io::Error::other(format!(
                    "generating the backfill failed: {e}"
                )))
            })?;
    let generator = generator::Generator::new(seed);
    let shared = Arc::new(Shared {
        store: store::Store::default(),
        secret: seed ^ 0x5eed_c0de_0000_0000,
        token: options.token.clone(),
        faults: Mutex::new(options.faults.clone()),
        fault_rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed ^ FAULT_SALT)),
        generation: AtomicU64::new(0),
        requests: Mutex::new(Default::default()),
        script: Mutex::new(Default::default()),
        recorded: Default::default(),
        served: tokio::sync::Notify::new(),
    });
    let web = Arc::new(web_api::WebApiState {
        admin_token: options.admin_token.clone(),
        audit_token: options.token.clone(),
        allowlist: Mutex::new(options.slack_allowlist.clone()),
        ..Default::default()
    });
    if let Some(code) = &options.web_api_error {
        lock(&web.script).set_always(Some(Reply::error(code)));
    }
    shared.store.insert(backfill);
    if options.attacks {
        shared
            .store
            .insert(generator::attacks::eleven_days(seed ^ ATTACK_SALT, end));
    }
    let plan = traffic::Plan {
        rate_per_sec: if options.rate_per_sec.is_finite() {
            options.rate_per_sec.max(0.0)
        } else {
            0.0
        },
        story: options.story,
        attacks: options.attacks_live,
        burst: options.burst,
        burst_every: options.burst_every,
        late_fraction: options.late_fraction,
        late_delay: options.late_delay,
    };
    tokio::spawn(traffic::run(
        shared.clone(),
        generator,
        generator::Generator::new(seed ^ STORY_SALT),
        plan,
        shutdown.clone(),
    ));
    tokio::spawn(server::serve(
        listener,
        shared.clone(),
        web.clone(),
        shutdown,
    ));
    Ok(SimHandle {
        addr: local,
        shared,
        web,
    })
}

/// The `simulate` command: serves until SIGTERM/SIGINT. The first stderr line is
/// `listening on ADDR`, so a script can start it on port 0 and read the port.
///
/// # Errors
///
/// A bad flag, a bad address, or a port in use.
pub async fn run_simulate(args: SimulateArgs, shutdown: Shutdown) -> Result<(), crate::Error> {
    let addr = crate::units::parse_listen("listen", &args.listen)?;
    let options = SimOptions::from_args(&args)?;
    let handle = start(addr, options.clone(), shutdown.clone()).await?;
    eprintln!("listening on {}", handle.addr);
    eprintln!(
        "slack-audit-source simulate: Audit Logs API at {url}/audit/v1/logs; {n} backfilled entries, {rate}/s live, story {story}, attacks {attacks}, faults [{faults}], token {token}; \
         ids of visible entries at {url}/_sim/ids; Web API admin methods at {url}/api/ (admin token {admin}), their calls at {url}/_sim/web_api_calls",
        url = handle.url(),
        n = handle.shared.store.len(),
        rate = options.rate_per_sec,
        story = if options.story { "on" } else { "off" },
        attacks = if options.attacks {
            "over the last eleven days"
        } else {
            "off"
        },
        faults = args.faults,
        token = if options.token.is_some() { "required" } else { "any" },
        admin = if options.admin_token.is_some() { "required" } else { "any but the audit token" },
    );
    let mut s = shutdown;
    s.wait().await;
    Ok(())
}

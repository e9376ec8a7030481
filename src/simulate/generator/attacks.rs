//! The eleven-day attack story: among the org's ordinary traffic, an outside attacker and a
//! rogue admin do what the detection rules are for. `simulate --attacks` dates it over the
//! eleven days before the backfill's end; `demo` plays it compressed into a minute, right after
//! the departing-salesperson story.
//!
//! The people are the story's own (not drawn by random traffic), so that nothing ordinary
//! follows a deactivation or reuses a hijacked session:
//! - day 1: a brute force from 192.0.2.66 against George Aaronow, ending in a login;
//! - day 2: Ricky Roma logs in at home (his session's first network);
//! - day 3: Blake, an admin, makes himself an owner;
//! - day 4: John Williamson installs "Lead Sync Pro" with the `admin` scope;
//! - day 5: Dave Moss makes the private channel #leads-premium public;
//! - day 6: Blake resets 64 people's sessions within 16 minutes;
//! - day 8: Ricky Roma's session is used from 192.0.2.99 by `curl`;
//! - day 9: Blake deactivates Dave Moss, who logs in and downloads a file that evening;
//! - day 10: Blake starts a full export.

use super::cast::{User, DOMAIN, WORKSPACES};
use super::draft::{channel_entity, file_entity, Ctx, Session};
use super::Generator;
use crate::simulate::store::Stored;
use std::sync::Arc;

/// Days the story spans, ending at the backfill's end.
pub(crate) const ATTACK_DAYS: i64 = 11;
/// The brute force's source, and the hijacker's.
pub const ATTACKER_IP: &str = "192.0.2.66";
/// Where the hijacked session is used from.
pub const HIJACKER_IP: &str = "192.0.2.99";
/// Failed logins of the brute force.
const FAILURES: usize = 12;
/// Sessions the rogue admin resets.
const RESETS: usize = 64;
const BROWSER: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const SCRIPT_UA: &str = "python-requests/2.31.0";
const CURL_UA: &str = "curl/8.5.0";

/// What one beat of the story does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    /// One failed login of the brute force.
    Failed,
    /// The brute force's successful login.
    Breach,
    /// Roma logs in at home.
    HomeLogin,
    /// Blake: admin → owner, himself.
    SelfPromotion,
    /// Williamson installs an app with the admin scope.
    AdminApp,
    /// Moss makes a private channel public.
    ChannelPublic,
    /// Blake resets one person's sessions (the n-th of the cast).
    Reset(usize),
    /// Roma's session, from elsewhere, with another client.
    Hijack,
    /// Blake deactivates Moss.
    Deactivate,
    /// Moss, deactivated, logs in.
    GhostLogin,
    /// Moss, deactivated, downloads a file.
    GhostDownload,
    /// Blake starts an export.
    Export,
}

/// One beat: when (seconds after the eleven days start; seconds after the demo starts) and what.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Beat {
    /// Seconds after the story's start, in the eleven-day telling.
    pub(crate) at: i64,
    /// Seconds after the simulator starts, in the demo's telling.
    pub(crate) demo: u64,
    act: Act,
}

const DAY: i64 = 86_400;
const HOUR: i64 = 3600;

/// The whole story, in order (both tellings keep the same order).
pub(crate) fn beats() -> Vec<Beat> {
    let mut out = Vec::new();
    let mut beat = |at: i64, demo: u64, act: Act| out.push(Beat { at, demo, act });
    let brute = DAY + 2 * HOUR + 13 * 60;
    for i in 0..FAILURES {
        beat(brute + 20 * i as i64, 50 + i as u64, Act::Failed);
    }
    beat(brute + 20 * FAILURES as i64 + 10, 63, Act::Breach);
    beat(2 * DAY + 9 * HOUR, 65, Act::HomeLogin);
    beat(3 * DAY + 23 * HOUR + 40 * 60, 67, Act::SelfPromotion);
    beat(4 * DAY + 14 * HOUR + 5 * 60, 69, Act::AdminApp);
    beat(5 * DAY + 16 * HOUR + 30 * 60, 71, Act::ChannelPublic);
    for i in 0..RESETS {
        beat(
            6 * DAY + 3 * HOUR + 15 * i as i64,
            73 + i as u64 / 16,
            Act::Reset(i),
        );
    }
    beat(8 * DAY + 4 * HOUR + 12 * 60, 78, Act::Hijack);
    beat(9 * DAY + 10 * HOUR, 80, Act::Deactivate);
    beat(9 * DAY + 18 * HOUR + 30 * 60, 82, Act::GhostLogin);
    beat(9 * DAY + 18 * HOUR + 35 * 60, 83, Act::GhostDownload);
    beat(10 * DAY + 22 * HOUR, 85, Act::Export);
    out
}

/// Seconds after the demo starts at which the story's last beat plays.
pub(crate) fn demo_end() -> u64 {
    beats().iter().map(|b| b.demo).max().unwrap_or(0)
}

/// The story's people.
fn person(id: &str, name: &str, email: &str, ip: &str, session: i64) -> User {
    User {
        id: Arc::from(id),
        name: name.into(),
        email: format!("{email}@{DOMAIN}"),
        team: WORKSPACES[0].0,
        ip: ip.into(),
        ua: BROWSER,
        mobile_ua: BROWSER,
        session,
    }
}

fn aaronow() -> User {
    person(
        "W07AARONOW",
        "George Aaronow",
        "george.aaronow",
        "203.0.113.41",
        1_733_100_000_001,
    )
}
fn roma() -> User {
    person(
        "W07ROMA",
        "Ricky Roma",
        "ricky.roma",
        "203.0.113.50",
        1_733_100_000_002,
    )
}
fn blake() -> User {
    person(
        "W07BLAKE",
        "Blake",
        "blake",
        "203.0.113.60",
        1_733_100_000_003,
    )
}
fn williamson() -> User {
    person(
        "W07WILLIAMSON",
        "John Williamson",
        "john.williamson",
        "203.0.113.61",
        1_733_100_000_004,
    )
}
fn moss() -> User {
    person(
        "W07MOSS",
        "Dave Moss",
        "dave.moss",
        "203.0.113.62",
        1_733_100_000_005,
    )
}

/// Their usual context.
fn at_home(u: &User) -> Ctx<'_> {
    Ctx {
        workspace: Some(0),
        ua: u.ua,
        ip: &u.ip,
        session: Session::Int(u.session),
        app: None,
    }
}

impl Generator {
    /// The entry of `beat`, dated `date`.
    pub(crate) fn attack_entry(&mut self, beat: &Beat, date: i64) -> (i64, Stored) {
        let d = match beat.act {
            Act::Failed | Act::Breach => {
                let victim = aaronow();
                let breach = beat.act == Act::Breach;
                let mut d = self.begin(
                    date,
                    if breach {
                        "user_login"
                    } else {
                        "user_login_failed"
                    },
                );
                d.actor_user(&victim);
                d.entity_user(&victim);
                d.context(&Ctx {
                    workspace: Some(0),
                    ua: SCRIPT_UA,
                    ip: ATTACKER_IP,
                    session: if breach {
                        Session::Int(1_733_100_000_666)
                    } else {
                        Session::Absent
                    },
                    app: None,
                });
                d
            }
            Act::HomeLogin => {
                let u = roma();
                let mut d = self.begin(date, "user_login");
                d.actor_user(&u);
                d.entity_user(&u);
                d.context(&at_home(&u));
                d
            }
            Act::Hijack => {
                let u = roma();
                let mut d = self.begin(date, "file_downloaded");
                d.actor_user(&u);
                file_entity(&mut d, &Arc::from("F07LEADSALL"), "All-Leads-2026.xlsx");
                d.context(&Ctx {
                    ua: CURL_UA,
                    ip: HIJACKER_IP,
                    ..at_home(&u)
                });
                d
            }
            Act::SelfPromotion => {
                let u = blake();
                let mut d = self.begin(date, "role_change_to_owner");
                d.actor_user(&u);
                d.entity_user(&u);
                d.context(&at_home(&u));
                d.j.obj("details");
                d.j.str("previous_value", "admin");
                d.j.str("new_value", "owner");
                d.j.end();
                d
            }
            Act::AdminApp => {
                let u = williamson();
                let app: Arc<str> = Arc::from("A07LEADSYNC");
                let scopes = ["admin", "channels:history", "users:read.email"];
                let mut d = self.begin(date, "app_installed");
                d.actor_user(&u);
                d.entity("app", &app);
                d.j.str("name", "Lead Sync Pro");
                d.j.bool("is_distributed", true);
                d.j.bool("is_directory_approved", false);
                d.j.bool("is_workflow_app", false);
                d.j.strs("scopes", &scopes);
                d.end_entity();
                d.context(&at_home(&u));
                d.j.obj("details");
                d.j.strs("scopes", &scopes);
                d.j.strs("bot_scopes", &["chat:write"]);
                d.j.str("installer_user_id", &u.id);
                d.j.end();
                d
            }
            Act::ChannelPublic => {
                let u = moss();
                let channel = self
                    .channels
                    .iter()
                    .find(|c| c.private)
                    .unwrap_or(&self.channels[0])
                    .clone();
                let mut d = self.begin(date, "private_channel_converted_to_public");
                d.actor_user(&u);
                channel_entity(&mut d, &channel, false);
                d.context(&at_home(&u));
                d
            }
            Act::Reset(n) => {
                let admin = blake();
                let target = self.users[1 + n % (self.users.len() - 1)].clone();
                let mut d = self.begin(date, "user_session_reset_by_admin");
                d.actor_user(&admin);
                d.entity_user(&target);
                d.context(&at_home(&admin));
                d
            }
            Act::Deactivate => {
                let (admin, gone) = (blake(), moss());
                let mut d = self.begin(date, "user_deactivated");
                d.actor_user(&admin);
                d.entity_user(&gone);
                d.context(&at_home(&admin));
                d
            }
            Act::GhostLogin => {
                let u = moss();
                let mut d = self.begin(date, "user_login");
                d.actor_user(&u);
                d.entity_user(&u);
                d.context(&at_home(&u));
                d
            }
            Act::GhostDownload => {
                let u = moss();
                let mut d = self.begin(date, "file_downloaded");
                d.actor_user(&u);
                file_entity(
                    &mut d,
                    &Arc::from("F07PREMLEADS"),
                    "Glengarry-Leads-Premium.xlsx",
                );
                d.context(&at_home(&u));
                d
            }
            Act::Export => {
                let u = blake();
                let mut d = self.begin(date, "manual_export_started");
                d.actor_user(&u);
                d.entity("workspace", &Arc::from(WORKSPACES[0].0));
                d.j.str("name", WORKSPACES[0].1);
                d.j.str("domain", WORKSPACES[0].2);
                d.end_entity();
                d.context(&at_home(&u));
                d
            }
        };
        Generator::finish(date, d)
    }
}

/// The eleven-day telling: every beat dated within the eleven days before `end`.
pub(crate) fn eleven_days(seed: u64, end: i64) -> Vec<(i64, Stored)> {
    let start = end - ATTACK_DAYS * DAY;
    let mut g = Generator::new(seed);
    beats()
        .iter()
        .map(|b| g.attack_entry(b, start + b.at))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn both_tellings_keep_the_order_and_the_eleven_days() {
        let b = beats();
        assert!(b
            .windows(2)
            .all(|w| w[0].at <= w[1].at && w[0].demo <= w[1].demo));
        assert!(b.iter().all(|x| x.at > 0 && x.at < ATTACK_DAYS * DAY));
        let end = 1_800_000_000;
        let entries = eleven_days(3, end);
        assert_eq!(entries.len(), b.len());
        let parsed: Vec<Value> = entries
            .iter()
            .map(|e| serde_json::from_str(&e.1.json).unwrap())
            .collect();
        for (e, v) in entries.iter().zip(&parsed) {
            assert_eq!(v["date_create"], e.0);
            assert!(crate::simulate::catalog::is_known_action(
                v["action"].as_str().unwrap()
            ));
        }
        let resets = parsed
            .iter()
            .filter(|v| v["action"] == "user_session_reset_by_admin")
            .count();
        assert_eq!(resets, RESETS);
        assert_eq!(parsed.last().unwrap()["action"], "manual_export_started");
        assert!(end - entries[0].0 > 9 * DAY, "it spans the days");
    }
}

//! Generated audit entries: realistic, varied, and the same for the same seed.
//!
//! The cast is an invented real-estate sales org, "Premier Properties", with a few dozen users,
//! three workspaces, apps and channels. Entries take the shapes of Slack's own examples
//! and the quirks docs/slack-api.md §3 lists: `session_id` as int, string,
//! null or absent; `action_timestamp` in ms or µs; anomaly reasons with their built-in pairs;
//! `context.app` only when an app acts; an entity type no mapping has heard of (`canvas_v9`);
//! `succeeded_users` as a JSON string; `details` with a duplicated key; `ip_address: ""`.
//!
//! The departing-salesperson story is `Generator::story_entry`, timed by `STORY_OFFSETS`; the
//! eleven-day attack story is in `attacks`. Random traffic is ordinary: no action in it gives a
//! detection finding (no privilege grants, app installs, channels made public, deactivations,
//! bulk resets or sessions changing networks), and failed logins are one in a hundred entries,
//! a typo now and then.

pub(crate) mod attacks;
mod cast;
mod draft;
mod events;
mod story;

pub(crate) use story::STORY_OFFSETS;
pub use story::{SCRAPER_IP, SCRAPER_UA};

use crate::simulate::json::Json;
use crate::simulate::store::Stored;
use cast::{App, Cast, Channel, User, WORKSPACES};
use draft::{Ctx, Draft, Session};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::Arc;

/// The entry generator. Owns the seeded RNG: the same seed and the same calls give the same
/// entries, ids included.
pub(crate) struct Generator {
    rng: StdRng,
    users: Vec<Arc<User>>,
    apps: Vec<Arc<App>>,
    channels: Vec<Arc<Channel>>,
    actions: HashMap<&'static str, Arc<str>>,
    story_user: Arc<User>,
    security: Arc<str>,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl Generator {
    /// A generator whose cast and entries derive from `seed`.
    pub(crate) fn new(seed: u64) -> Generator {
        let mut rng = StdRng::seed_from_u64(seed);
        let cast = Cast::new(&mut rng);
        Generator {
            rng,
            users: cast.users,
            apps: cast.apps,
            channels: cast.channels,
            actions: HashMap::new(),
            story_user: cast.story_user,
            security: Arc::from("USLACKSECURITY"),
        }
    }

    /// The same cast, with entries drawn from stream `stream` of `seed`: the backfill's chunks
    /// are made in parallel, each from its own stream, so the result does not depend on how
    /// many threads made it.
    pub(crate) fn with_stream(mut self, seed: u64, stream: u64) -> Generator {
        self.rng = StdRng::seed_from_u64(seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        self
    }

    /// A UUID-like id (version-4 layout) from the seeded RNG.
    pub(crate) fn uuid(&mut self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut b: [u8; 16] = self.rng.random();
        b[6] = (b[6] & 0x0f) | 0x40; // version 4
        b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
                                     // Hand-rolled hex: a million ids through `format!` cost more than the rest of an entry.
        let mut out = String::with_capacity(36);
        for (i, byte) in b.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                out.push('-');
            }
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 0x0f)] as char);
        }
        out
    }

    /// A uniform draw in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        self.rng.random()
    }

    fn begin(&mut self, date: i64, action: &'static str) -> Draft {
        let id = self.uuid();
        let action_arc = self
            .actions
            .entry(action)
            .or_insert_with(|| Arc::from(action))
            .clone();
        let mut j = Json::new();
        j.begin();
        j.str("id", &id);
        j.int("date_create", date);
        j.str("action", action);
        Draft {
            j,
            id,
            action: action_arc,
            actor: None,
            entity: None,
        }
    }

    fn finish(date: i64, mut d: Draft) -> (i64, Stored) {
        d.j.end();
        let stored = Stored {
            id: d.id.into_boxed_str(),
            action: d.action,
            actor: d.actor,
            entity: d.entity,
            json: d.j.finish().into_boxed_str(),
        };
        (date, stored)
    }

    fn user(&mut self) -> Arc<User> {
        // Index 0 is the story's user; random traffic leaves her alone so the story stands out.
        self.users[self.rng.random_range(1..self.users.len())].clone()
    }

    fn session(&mut self, base: i64) -> Session {
        match self.rng.random_range(0..10) {
            0..=5 => Session::Int(base),
            6 | 7 => Session::Str(base),
            8 => Session::Null,
            _ => Session::Absent,
        }
    }

    /// The usual context of `u`: their browser (or phone), their address.
    fn ctx_of<'a>(&mut self, u: &'a User) -> Ctx<'a> {
        let mobile = self.rng.random_bool(0.2);
        // Elastic saw `ip_address: ""` in real traffic.
        let ip = if self.rng.random_ratio(1, 200) {
            ""
        } else {
            u.ip.as_str()
        };
        let workspace = if self.rng.random_bool(0.7) {
            Some(WORKSPACES.iter().position(|w| w.0 == u.team).unwrap_or(0))
        } else {
            None
        };
        Ctx {
            workspace,
            ua: if mobile { u.mobile_ua } else { u.ua },
            ip,
            session: self.session(u.session),
            app: None,
        }
    }

    /// One random entry dated `date`.
    pub(crate) fn entry(&mut self, date: i64) -> (i64, Stored) {
        match self.rng.random_range(0..1000) {
            0..=249 | 340..=379 => self.user_event(date, "user_login"),
            250..=329 => self.user_event(date, "user_logout"),
            330..=339 => self.user_event(date, "user_login_failed"),
            380..=529 => self.file_event(date, "file_downloaded"),
            530..=589 => self.file_event(date, "file_uploaded"),
            590..=649 => self.file_event(date, "file_shared"),
            650..=669 => self.file_event(date, "file_public_link_created"),
            // Slack spells this action both ways in its own docs.
            670..=679 => self.file_event(date, "file_downloaded_blocked"),
            680..=689 => self.file_event(date, "file_download_blocked"),
            690..=739 => self.channel_event(date),
            740..=799 => self.channel_join(date),
            800..=829 => self.app_event(date),
            830..=849 => self.role_change(date),
            850..=879 => self.lifecycle(date),
            880..=929 => self.anomaly(date),
            930..=944 => self.pref_change(date),
            945..=964 => self.canvas(date),
            965..=984 => self.huddle(date),
            _ => self.session_reset(date),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parse(e: &(i64, Stored)) -> Value {
        serde_json::from_str(&e.1.json).expect("generated entries are JSON")
    }

    #[test]
    fn same_seed_same_entries() {
        let (mut a, mut b) = (Generator::new(9), Generator::new(9));
        for t in 0..200 {
            assert_eq!(a.entry(t).1.json, b.entry(t).1.json);
        }
        assert_ne!(
            Generator::new(10).entry(0).1.json,
            Generator::new(9).entry(0).1.json
        );
    }

    #[test]
    fn entries_are_valid_and_indexed() {
        let mut g = Generator::new(1);
        let mut actions = std::collections::BTreeSet::new();
        for t in 0..3000 {
            let e = g.entry(1_700_000_000 + t);
            // Duplicate keys are legal JSON; serde_json keeps the last.
            let v = parse(&e);
            assert_eq!(v["id"].as_str().unwrap().len(), 36);
            assert_eq!(v["date_create"], 1_700_000_000 + t);
            assert_eq!(v["action"].as_str(), Some(&*e.1.action));
            assert_eq!(v["actor"]["user"]["id"].as_str(), e.1.actor.as_deref());
            let kind = v["entity"]["type"].as_str().unwrap();
            assert_eq!(v["entity"][kind]["id"].as_str(), e.1.entity.as_deref());
            assert!(
                super::super::catalog::is_known_action(&e.1.action),
                "{}",
                e.1.action
            );
            actions.insert(e.1.action.to_string());
            if v["context"].get("app").is_some() {
                assert!(matches!(
                    &*e.1.action,
                    "file_downloaded" | "app_token_preserved"
                ));
            }
        }
        assert!(actions.len() > 25, "{actions:?}");
    }

    #[test]
    fn uuids_look_like_v4() {
        let id = Generator::new(3).uuid();
        let parts: Vec<_> = id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
        assert_eq!(&id[14..15], "4");
    }
}

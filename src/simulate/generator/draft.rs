//! Writing one entry: `actor`, `entity`, `context` and `details` in Slack's shapes.

use super::cast::{App, Channel, User, ENTERPRISE, WORKSPACES};
use crate::simulate::json::Json;
use std::sync::Arc;

#[derive(Clone, Copy)]
pub(super) enum Session {
    Int(i64),
    Str(i64),
    Null,
    Absent,
}

/// Where and how an action was taken: `context`.
pub(super) struct Ctx<'a> {
    pub(super) workspace: Option<usize>,
    pub(super) ua: &'a str,
    pub(super) ip: &'a str,
    pub(super) session: Session,
    pub(super) app: Option<&'a App>,
}

/// An entry being written, with the fields the store indexes.
pub(super) struct Draft {
    pub(super) j: Json,
    pub(super) id: String,
    pub(super) action: Arc<str>,
    pub(super) actor: Option<Arc<str>>,
    pub(super) entity: Option<Arc<str>>,
}

impl Draft {
    pub(super) fn actor(&mut self, id: &Arc<str>, name: &str, email: &str, team: Option<&str>) {
        self.actor = Some(id.clone());
        self.j.obj("actor");
        self.j.str("type", "user");
        person(&mut self.j, "user", id, name, email, team);
        self.j.end();
    }

    pub(super) fn actor_user(&mut self, u: &User) {
        self.actor(&u.id, &u.name, &u.email, Some(u.team));
    }

    /// Opens `entity` with its type and the typed object, returning with that object open.
    pub(super) fn entity(&mut self, kind: &str, id: &Arc<str>) {
        self.entity = Some(id.clone());
        self.j.obj("entity");
        self.j.str("type", kind);
        self.j.obj(kind);
        self.j.str("id", id);
    }

    pub(super) fn end_entity(&mut self) {
        self.j.end();
        self.j.end();
    }

    pub(super) fn entity_user(&mut self, u: &User) {
        self.entity("user", &u.id);
        self.j.str("name", &u.name);
        self.j.str("email", &u.email);
        self.j.str("team", u.team);
        self.end_entity();
    }

    pub(super) fn context(&mut self, c: &Ctx<'_>) {
        let j = &mut self.j;
        j.obj("context");
        j.obj("location");
        let (kind, (id, name, domain)) = match c.workspace {
            Some(w) => ("workspace", WORKSPACES[w % WORKSPACES.len()]),
            None => ("enterprise", ENTERPRISE),
        };
        j.str("type", kind);
        j.str("id", id);
        j.str("name", name);
        j.str("domain", domain);
        j.end();
        j.str("ua", c.ua);
        j.str("ip_address", c.ip);
        match c.session {
            Session::Int(n) => j.int("session_id", n),
            Session::Str(n) => j.str("session_id", &n.to_string()),
            Session::Null => j.null("session_id"),
            Session::Absent => {}
        }
        if let Some(app) = c.app {
            j.obj("app");
            j.str("id", &app.id);
            j.str("name", app.name);
            j.bool("is_distributed", false);
            j.bool("is_directory_approved", true);
            j.strs("scopes", app.scopes);
            j.strs("scopes_bot", app.bot_scopes);
            j.str("creator", "W07WLLMSN");
            j.str("team", app.team);
            j.end();
        }
        j.end();
    }
}

pub(super) fn person(
    j: &mut Json,
    key: &str,
    id: &str,
    name: &str,
    email: &str,
    team: Option<&str>,
) {
    j.obj(key);
    j.str("id", id);
    j.str("name", name);
    j.str("email", email);
    if let Some(t) = team {
        j.str("team", t);
    }
    j.end();
}

pub(super) fn file_entity(d: &mut Draft, id: &Arc<str>, name: &str) {
    let filetype = name.rsplit('.').next().unwrap_or("binary");
    d.entity("file", id);
    d.j.str("name", name);
    d.j.str("filetype", filetype);
    d.j.str("title", name.rsplit_once('.').map_or(name, |(t, _)| t));
    d.end_entity();
}

pub(super) fn channel_entity(d: &mut Draft, c: &Channel, private: bool) {
    d.entity("channel", &c.id);
    d.j.str("name", c.name);
    d.j.str("privacy", if private { "private" } else { "public" });
    d.j.bool("is_shared", c.shared);
    d.j.bool("is_org_shared", false);
    if c.shared {
        d.j.strs("teams_shared_with", &["T0ACMEESC"]);
    }
    d.end_entity();
}

/// When the behaviour happened: ms (13 digits) or µs (16 digits), as Slack sends both.
pub(super) fn action_timestamp(secs: i64, sub_micros: i64, micros: bool) -> i64 {
    if micros {
        secs * 1_000_000 + sub_micros
    } else {
        secs * 1000 + sub_micros / 1000
    }
}

//! The kinds of random entries: logins, files, channels, apps, roles, anomalies, prefs,
//! canvases (an entity type no mapping knows), huddles and session resets. All ordinary: the
//! actions the detection rules look for belong to the attack story (`attacks`), not here.

use super::cast::{
    random_ip, slack_suffix, API_UAS, BACKGROUND_REASONS, ENTERPRISE, FILES, LOCATIONS,
};
use super::draft::{action_timestamp, channel_entity, file_entity, person, Ctx, Session};
use super::Generator;
use crate::simulate::store::Stored;
use rand::Rng;
use std::sync::Arc;

impl Generator {
    pub(super) fn user_event(&mut self, date: i64, action: &'static str) -> (i64, Stored) {
        let u = self.user();
        let ctx = self.ctx_of(&u);
        let mut d = self.begin(date, action);
        d.actor_user(&u);
        d.entity_user(&u);
        d.context(&ctx);
        Generator::finish(date, d)
    }

    pub(super) fn file_event(&mut self, date: i64, action: &'static str) -> (i64, Stored) {
        let u = self.user();
        let name = FILES[self.rng.random_range(0..FILES.len())];
        let file_id = Arc::from(format!("F07{}", slack_suffix(&mut self.rng, 8)));
        // eDiscovery apps download as their installer, and only then is there a context.app.
        let via_app = action == "file_downloaded" && self.rng.random_bool(0.1);
        let app = self.apps[0].clone();
        let mut ctx = self.ctx_of(&u);
        if via_app {
            ctx.app = Some(&app);
            ctx.ua = API_UAS[0];
        }
        let channel = self.channels[self.rng.random_range(0..self.channels.len())].clone();
        let mut d = self.begin(date, action);
        d.actor_user(&u);
        file_entity(&mut d, &file_id, name);
        d.context(&ctx);
        if action == "file_shared" {
            d.j.obj("details");
            d.j.str("channel_id", &channel.id);
            d.j.end();
        }
        Generator::finish(date, d)
    }

    pub(super) fn channel_event(&mut self, date: i64) -> (i64, Stored) {
        let actions = [
            "public_channel_created",
            "private_channel_created",
            "public_channel_converted_to_private",
            "public_channel_unarchive",
            "public_channel_archive",
            "channel_renamed",
        ];
        let action = actions[self.rng.random_range(0..actions.len())];
        let u = self.user();
        let ctx = self.ctx_of(&u);
        let channel = self.channels[self.rng.random_range(0..self.channels.len())].clone();
        let private = match action {
            "private_channel_created" | "public_channel_converted_to_private" => true,
            "public_channel_created" | "public_channel_unarchive" => false,
            _ => channel.private,
        };
        let mut d = self.begin(date, action);
        d.actor_user(&u);
        channel_entity(&mut d, &channel, private);
        d.context(&ctx);
        if action == "channel_renamed" {
            d.j.obj("details");
            d.j.str("previous_value", &format!("{}-old", channel.name));
            d.j.str("new_value", channel.name);
            d.j.end();
        }
        Generator::finish(date, d)
    }

    /// `user_channel_join`: when invited, `context` is the inviter's (Slack's quirk).
    pub(super) fn channel_join(&mut self, date: i64) -> (i64, Stored) {
        let u = self.user();
        let inviter = self.user();
        let invited = self.rng.random_bool(0.5);
        let ctx = if invited {
            self.ctx_of(&inviter)
        } else {
            self.ctx_of(&u)
        };
        let channel = self.channels[self.rng.random_range(0..self.channels.len())].clone();
        let mut d = self.begin(date, "user_channel_join");
        d.actor_user(&u);
        channel_entity(&mut d, &channel, channel.private);
        d.context(&ctx);
        if invited {
            d.j.obj("details");
            person(
                &mut d.j,
                "inviter",
                &inviter.id,
                &inviter.name,
                &inviter.email,
                Some(inviter.team),
            );
            d.j.end();
        }
        Generator::finish(date, d)
    }

    pub(super) fn app_event(&mut self, date: i64) -> (i64, Stored) {
        let app = self.apps[self.rng.random_range(1..self.apps.len())].clone();
        let action = [
            "app_token_preserved",
            "bot_token_downgraded",
            "org_app_future_workspace_install_enabled",
            "app_removed_from_whitelist",
        ][self.rng.random_range(0..4)];
        let admin = self.users[4].clone();
        // Some app events are the app's bot acting: a bot user, an API client, context.app.
        let by_bot = action == "app_token_preserved" && self.rng.random_bool(0.5);
        let mut ctx = self.ctx_of(&admin);
        if by_bot {
            ctx.app = Some(&app);
            ctx.ua = API_UAS[self.rng.random_range(0..API_UAS.len())];
        }
        let duplicate_key = self.rng.random_bool(0.2);
        let mut d = self.begin(date, action);
        if by_bot {
            let bot_id = Arc::from(format!("U07BOT{}", &app.id[3..7]));
            d.actor(
                &bot_id,
                &app.name.to_lowercase().replace(' ', ""),
                &format!("botuser-{}-{}@slack-bots.com", app.team, app.id),
                Some(app.team),
            );
        } else {
            d.actor_user(&admin);
        }
        d.entity("app", &app.id);
        d.j.str("name", app.name);
        d.j.bool("is_distributed", true);
        d.j.bool("is_directory_approved", true);
        d.j.bool("is_workflow_app", false);
        d.j.strs("scopes", app.scopes);
        d.end_entity();
        d.context(&ctx);
        d.j.obj("details");
        match action {
            "bot_token_downgraded" => {
                // The same scopes before and after: no scope added.
                d.j.strs("new_scopes", app.scopes);
                d.j.strs(
                    "previous_scopes",
                    &[app.scopes, &["users:read.email"]].concat(),
                );
                d.j.strs("bot_scopes", app.bot_scopes);
            }
            _ => {
                d.j.strs("scopes", app.scopes);
                d.j.strs("bot_scopes", app.bot_scopes);
                d.j.str("installer_user_id", &admin.id);
                d.j.str("approval_type", "admin");
            }
        }
        if duplicate_key {
            // python-slack-sdk's fixture has this key twice; strict serde derives choke on it.
            d.j.bool("is_internal_integration", false);
            d.j.bool("is_internal_integration", false);
        }
        d.j.end();
        Generator::finish(date, d)
    }

    pub(super) fn role_change(&mut self, date: i64) -> (i64, Stored) {
        // Only changes between user and guest: a grant of admin or owner, or an elevated role
        // taken away, is the attack story's.
        let (action, prev, new) = [
            ("role_change_to_guest", "user", "guest"),
            ("role_change_to_user", "guest", "user"),
        ][self.rng.random_range(0..2)];
        let admin = self.users[4].clone();
        let u = self.user();
        let ctx = self.ctx_of(&admin);
        let mut d = self.begin(date, action);
        d.actor_user(&admin);
        d.entity_user(&u);
        d.context(&ctx);
        d.j.obj("details");
        d.j.str("previous_value", prev);
        d.j.str("new_value", new);
        d.j.end();
        Generator::finish(date, d)
    }

    pub(super) fn lifecycle(&mut self, date: i64) -> (i64, Stored) {
        // No user_deactivated: random traffic would go on using the account.
        let action = [
            "user_created",
            "guest_deactivated",
            "user_reactivated",
            "guest_created",
        ][self.rng.random_range(0..4)];
        let admin = self.users[4].clone();
        let u = self.user();
        let ctx = self.ctx_of(&admin);
        let mut d = self.begin(date, action);
        d.actor_user(&admin);
        d.entity_user(&u);
        d.context(&ctx);
        Generator::finish(date, d)
    }

    pub(super) fn anomaly(&mut self, date: i64) -> (i64, Stored) {
        let u = self.user();
        let pick = |rng: &mut _| {
            BACKGROUND_REASONS[rand::Rng::random_range(rng, 0..BACKGROUND_REASONS.len())]
        };
        let mut reasons: Vec<&'static str> = vec![pick(&mut self.rng)];
        if self.rng.random_bool(0.3) {
            reasons.push(pick(&mut self.rng));
        }
        // Slack's documented pairs: asn ⇒ ip_address, spoofed_user_agent ⇒ unexpected_client,
        // unexpected_user_agent ⇒ user_agent.
        for (r, implied) in [
            ("asn", "ip_address"),
            ("spoofed_user_agent", "unexpected_client"),
            ("unexpected_user_agent", "user_agent"),
        ] {
            if reasons.contains(&r) {
                reasons.push(implied);
            }
        }
        reasons.sort_unstable();
        reasons.dedup();
        let tor = reasons.contains(&"tor") || reasons.contains(&"ip_address");
        let ip = if tor {
            random_ip(&mut self.rng)
        } else {
            u.ip.clone()
        };
        let ua = if reasons.contains(&"user_agent") || reasons.contains(&"unexpected_client") {
            API_UAS[self.rng.random_range(0..API_UAS.len())]
        } else {
            u.ua
        };
        // From another address, a session of its own: the user's session seen from a second
        // network is what a detection rule looks for.
        let session = if tor {
            Session::Int(1_700_000_000_000 + self.rng.random_range(0..1_000_000_000))
        } else {
            self.session(u.session)
        };
        let ctx = Ctx {
            workspace: None,
            ua,
            ip: &ip,
            session,
            app: None,
        };
        let location = LOCATIONS[self.rng.random_range(0..LOCATIONS.len())];
        let micros = self.rng.random_bool(0.5);
        let lag = self.rng.random_range(1..120);
        let sub = self.rng.random_range(0..1_000_000);
        let mut d = self.begin(date, "anomaly");
        d.actor_user(&u);
        d.entity_user(&u);
        d.context(&ctx);
        d.j.obj("details");
        d.j.strs("reason", &reasons);
        d.j.int(
            "action_timestamp",
            action_timestamp(date - lag, sub, micros),
        );
        d.j.str("location", location);
        if reasons.contains(&"ip_address") {
            d.j.str("previous_ip_address", &u.ip);
            d.j.strs(
                "ip_address_details",
                &[["new-asn", "cloud-asn", "in-ioc-list"][(sub % 3) as usize]],
            );
        }
        if reasons.contains(&"user_agent") {
            d.j.str("previous_ua", u.ua);
        }
        if reasons.contains(&"unexpected_client") {
            d.j.str("detected_client", "Unknown");
            d.j.str("detected_os", "Linux");
        }
        if reasons.contains(&"potential_spam") {
            d.j.str("api_call_method", "functions.workflows.publish");
        }
        d.j.end();
        Generator::finish(date, d)
    }

    /// Preference changes; `previous_value`/`new_value` as string, array or object.
    pub(super) fn pref_change(&mut self, date: i64) -> (i64, Stored) {
        let admin = self.users[4].clone();
        let ctx = self.ctx_of(&admin);
        let which = self.rng.random_range(0..3);
        let action = [
            "pref.session_duration_changed",
            "pref.anomaly_event_response_changed",
            "pref.enterprise_mobile_device_check",
        ][which];
        let mut d = self.begin(date, action);
        d.actor_user(&admin);
        d.entity("enterprise", &Arc::from(ENTERPRISE.0));
        d.j.str("name", ENTERPRISE.1);
        d.j.str("domain", ENTERPRISE.2);
        d.end_entity();
        d.context(&ctx);
        d.j.obj("details");
        match which {
            0 => {
                d.j.str("previous_value", "720");
                d.j.str("new_value", "168");
            }
            1 => {
                d.j.strs("previous_value", &["tor", "unexpected_scraping"]);
                d.j.strs(
                    "new_value",
                    &["tor", "unexpected_scraping", "excessive_downloads"],
                );
            }
            _ => {
                d.j.obj("previous_value");
                d.j.bool("enabled", false);
                d.j.end();
                d.j.obj("new_value");
                d.j.bool("enabled", true);
                d.j.end();
            }
        }
        d.j.end();
        Generator::finish(date, d)
    }

    /// A canvas edit with an entity type no mapping knows (`canvas_v9`); sometimes Slackbot
    /// acting for the user (`acting_agent`, `agent_message`).
    pub(super) fn canvas(&mut self, date: i64) -> (i64, Stored) {
        let u = self.user();
        let ctx = self.ctx_of(&u);
        let canvas_id: Arc<str> = Arc::from(format!("F07CNV{}", slack_suffix(&mut self.rng, 5)));
        let by_slackbot = self.rng.random_bool(0.3);
        let channel = self.channels[0].clone();
        let ts = format!("{date}.{:06}", self.rng.random_range(0..1_000_000));
        let mut d = self.begin(date, "canvas_edited");
        d.actor_user(&u);
        d.entity("canvas_v9", &canvas_id);
        d.j.str("title", "Q4 territory plan");
        d.j.str("owner", &u.id);
        d.j.int("format_version", 9);
        d.end_entity();
        d.context(&ctx);
        if by_slackbot {
            d.j.str("acting_agent", "Slackbot");
            d.j.obj("agent_message");
            d.j.str("channel_id", &channel.id);
            d.j.str("message_ts", &ts);
            d.j.str("thread_ts", &ts);
            d.j.end();
        }
        Generator::finish(date, d)
    }

    pub(super) fn huddle(&mut self, date: i64) -> (i64, Stored) {
        let u = self.user();
        let ctx = self.ctx_of(&u);
        let huddle_id: Arc<str> = Arc::from(format!("R07{}", slack_suffix(&mut self.rng, 8)));
        let channel = self.channels[self.rng.random_range(0..self.channels.len())].clone();
        let action = if self.rng.random_bool(0.5) {
            "huddle_started"
        } else {
            "huddle_ended"
        };
        let mut d = self.begin(date, action);
        d.actor_user(&u);
        d.entity("huddle", &huddle_id);
        d.j.str("channel_id", &channel.id);
        d.j.int("date_start", date - 60);
        d.end_entity();
        d.context(&ctx);
        Generator::finish(date, d)
    }

    /// Session resets: by Slack Security (`USLACKSECURITY`), or now and then a bulk reset
    /// whose `succeeded_users` is a JSON string "for historical reasons". Bulk resets are rare
    /// and spread over four admins: at the demo's rate each does a few dozen a day, far from
    /// the mass-reset rule's 60.
    pub(super) fn session_reset(&mut self, date: i64) -> (i64, Stored) {
        let u = self.user();
        let other = self.user();
        if self.rng.random_bool(0.9) {
            let ctx = Ctx {
                workspace: None,
                ua: "",
                ip: "",
                session: Session::Absent,
                app: None,
            };
            let security = self.security.clone();
            let mut d = self.begin(date, "user_logout_compromised");
            d.actor(&security, "Slack Security", "", None);
            d.entity_user(&u);
            d.context(&ctx);
            return Generator::finish(date, d);
        }
        let admin = self.users[self.rng.random_range(2..=5)].clone();
        let ctx = self.ctx_of(&admin);
        let mut d = self.begin(date, "bulk_session_reset_by_admin");
        d.actor_user(&admin);
        d.entity("enterprise", &Arc::from(ENTERPRISE.0));
        d.j.str("name", ENTERPRISE.1);
        d.j.str("domain", ENTERPRISE.2);
        d.end_entity();
        d.context(&ctx);
        d.j.obj("details");
        d.j.str(
            "succeeded_users",
            &format!("[\"{}\", \"{}\"]", u.id, other.id),
        );
        d.j.str("failed_users", "[]");
        d.j.end();
        Generator::finish(date, d)
    }
}

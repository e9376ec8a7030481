//! Generated audit entries: realistic, varied, and the same for the same seed.
//!
//! The cast is an invented real-estate sales org, "Premier Properties", with a few dozen users,
//! three workspaces, apps and channels. Entries take the shapes of the fixtures in
//! `shared/fixtures/` and the quirks `slack-audit-api.md` lists: `session_id` as int, string,
//! null or absent; `action_timestamp` in ms or µs; anomaly reasons with their built-in pairs;
//! `context.app` only when an app acts; an entity type no mapping has heard of (`canvas_v9`);
//! `succeeded_users` as a JSON string; `details` with a duplicated key; `ip_address: ""`.
//!
//! The departing-salesperson story is [`Generator::story_entry`], timed by [`STORY_OFFSETS`].

use super::json::Json;
use super::store::Stored;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::Arc;

const ENTERPRISE: (&str, &str, &str) = ("E07PREMRE", "Premier Properties", "premierproperties");
const WORKSPACES: [(&str, &str, &str); 3] = [
    ("T07SALES01", "Premier Properties Sales", "premier-sales"),
    ("T07OPS0002", "Premier Properties Operations", "premier-ops"),
    ("T07MM00003", "Mitch and Murray", "mitch-murray"),
];
const DOMAIN: &str = "premierproperties.example";

const DESKTOP_UAS: &[&str] = &[
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.41.105 Chrome/130.0.6723.137 Electron/33.2.0 Safari/537.36 Sonic Slack_SSB/4.41.105",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.41.105 Chrome/130.0.6723.137 Electron/33.2.0 Safari/537.36 Sonic Slack_SSB/4.41.105",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
];
const MOBILE_UAS: &[&str] = &[
    "com.tinyspeck.chatlyio/24.12.10 (iPhone; iOS 18.1.1; Scale/3.00)",
    "com.tinyspeck.chatlyio/24.11.20 (iPad; iOS 17.7; Scale/2.00)",
    "Slack/24.12.10.0 (Android 15; Pixel 8 Pro)",
    "Slack/24.11.20.0 (Android 14; SM-S918B)",
];
const API_UAS: &[&str] = &[
    "Python/3.12.7 slackclient/3.33.4 Linux/6.8.0-1017-aws",
    "Go-http-client/2.0",
    "Apache-HttpClient/4.5.14 (Java/17.0.13)",
];

/// The story's scraping client, as Slack reports its user agent.
pub const SCRAPER_UA: &str = "Scrapers Inc";
const STORY_BROWSER: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const STORY_HOME_IP: &str = "203.0.113.77";
/// The story's scraping client's address.
pub const SCRAPER_IP: &str = "198.51.100.66";
/// The files the departing salesperson downloads, first one first.
pub const STORY_FILES: &[&str] = &[
    "Glengarry-Leads.xlsx",
    "Glengarry-Leads-Premium.xlsx",
    "Glengarry-Leads-2026.csv",
    "Client-Contacts-Chicago.xlsx",
    "Commission-Schedule-Q3.pdf",
    "Mitch-and-Murray-Prospects.xlsx",
    "Rio-Rancho-Properties.pdf",
    "Glengarry-Highlands-Brochure.pdf",
];
/// Seconds after the simulator starts at which each story entry is made: a login, the
/// scraping anomaly, the downloads, the excessive-downloads anomaly, Slack's session reset.
/// All inside the first minute, so the demo shows the story on its first screen.
pub const STORY_OFFSETS: &[u64] = &[2, 4, 6, 8, 10, 12, 15, 18, 21, 24, 32, 40];

const FIRST: &[&str] = &[
    "Ricky",
    "Dave",
    "George",
    "John",
    "Blake",
    "James",
    "Mary",
    "Linda",
    "Robert",
    "Patricia",
    "Michael",
    "Jennifer",
    "William",
    "Elizabeth",
    "David",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Carlos",
    "Aiko",
    "Priya",
    "Wei",
    "Fatima",
    "Olu",
    "Ingrid",
    "Mateo",
];
const LAST: &[&str] = &[
    "Roma",
    "Moss",
    "Aaronow",
    "Williamson",
    "Lingk",
    "Spannel",
    "Smith",
    "Johnson",
    "Brown",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Nakamura",
    "Patel",
    "Chen",
    "Okafor",
    "Lindqvist",
    "Rossi",
    "Kowalski",
    "Haddad",
    "Novak",
    "Silva",
];
const CHANNELS: &[(&str, bool)] = &[
    ("general", false),
    ("random", false),
    ("sales-floor", false),
    ("leads-premium", true),
    ("closers", true),
    ("ops-alerts", false),
    ("deals-q3", true),
    ("it-help", false),
    ("legal-review", true),
    ("mitch-murray-announcements", false),
    ("cadillac-contest", false),
    ("escrow-shared-acme", false),
];
const FILES: &[&str] = &[
    "Q3-Pipeline.xlsx",
    "Listing-Photos.zip",
    "Closing-Checklist.docx",
    "Board-Deck.pptx",
    "Commission-Report.pdf",
    "team-offsite.png",
    "meeting-notes.txt",
    "Cadillac-Contest-Rules.pdf",
    "Lease-Template.docx",
    "Territory-Map.png",
];
const LOCATIONS: &[&str] = &[
    "Reno, Nevada",
    "Chicago, Illinois",
    "Ashburn, Virginia",
    "Frankfurt am Main, Hesse",
    "Singapore, Central Singapore",
    "Lagos, Lagos",
];
const REASONS: &[&str] = &[
    "asn",
    "excessive_downloads",
    "excessive_file_shares",
    "excessive_malware_uploads",
    "ip_address",
    "potential_spam",
    "session_fingerprint",
    "spoofed_user_agent",
    "tor",
    "unexpected_admin_action",
    "unexpected_api_call_volume",
    "unexpected_client",
    "unexpected_message_deletion",
    "unexpected_scraping",
    "unexpected_user_agent",
    "user_agent",
];

struct User {
    id: Arc<str>,
    name: String,
    email: String,
    team: &'static str,
    ip: String,
    ua: &'static str,
    mobile_ua: &'static str,
    session: i64,
}

struct App {
    id: Arc<str>,
    name: &'static str,
    scopes: &'static [&'static str],
    bot_scopes: &'static [&'static str],
    team: &'static str,
}

const APPS: &[(&str, &str, &[&str], &[&str])] = &[
    (
        "A07HANZOED",
        "Hanzo eDiscovery",
        &["discovery:read", "discovery:write"],
        &[],
    ),
    (
        "A07JIRACLD",
        "Jira Cloud",
        &["channels:read", "chat:write"],
        &["chat:write", "links:read", "commands"],
    ),
    (
        "A07GDRIVE1",
        "Google Drive",
        &["files:read", "links:write"],
        &["files:read", "chat:write"],
    ),
    (
        "A07PAGERDT",
        "PagerDuty",
        &["chat:write"],
        &["chat:write", "incoming-webhook"],
    ),
    (
        "A07ZOOM001",
        "Zoom",
        &["calls:write", "users:read"],
        &["calls:read", "calls:write"],
    ),
];

struct Channel {
    id: Arc<str>,
    name: &'static str,
    private: bool,
    shared: bool,
}

#[derive(Clone, Copy)]
enum Session {
    Int(i64),
    Str(i64),
    Null,
    Absent,
}

/// Where and how an action was taken: `context`.
struct Ctx<'a> {
    workspace: Option<usize>,
    ua: &'a str,
    ip: &'a str,
    session: Session,
    app: Option<&'a App>,
}

/// An entry being written, with the fields the store indexes.
struct Draft {
    j: Json,
    id: String,
    action: Arc<str>,
    actor: Option<Arc<str>>,
    entity: Option<Arc<str>>,
}

impl Draft {
    fn actor(&mut self, id: &Arc<str>, name: &str, email: &str, team: Option<&str>) {
        self.actor = Some(id.clone());
        self.j.obj("actor");
        self.j.str("type", "user");
        person(&mut self.j, "user", id, name, email, team);
        self.j.end();
    }

    fn actor_user(&mut self, u: &User) {
        self.actor(&u.id, &u.name, &u.email, Some(u.team));
    }

    /// Opens `entity` with its type and the typed object, returning with that object open.
    fn entity(&mut self, kind: &str, id: &Arc<str>) {
        self.entity = Some(id.clone());
        self.j.obj("entity");
        self.j.str("type", kind);
        self.j.obj(kind);
        self.j.str("id", id);
    }

    fn end_entity(&mut self) {
        self.j.end();
        self.j.end();
    }

    fn entity_user(&mut self, u: &User) {
        self.entity("user", &u.id);
        self.j.str("name", &u.name);
        self.j.str("email", &u.email);
        self.j.str("team", u.team);
        self.end_entity();
    }

    fn context(&mut self, c: &Ctx<'_>) {
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

fn person(j: &mut Json, key: &str, id: &str, name: &str, email: &str, team: Option<&str>) {
    j.obj(key);
    j.str("id", id);
    j.str("name", name);
    j.str("email", email);
    if let Some(t) = team {
        j.str("team", t);
    }
    j.end();
}

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
    pub fn new(seed: u64) -> Generator {
        let mut rng = StdRng::seed_from_u64(seed);
        let story_user = Arc::new(User {
            id: Arc::from("W07LEVENE"),
            name: "Shelley Levene".into(),
            email: format!("shelley@{DOMAIN}"),
            team: WORKSPACES[0].0,
            ip: STORY_HOME_IP.into(),
            ua: STORY_BROWSER,
            mobile_ua: MOBILE_UAS[0],
            session: 1_733_000_000_000 + rng.gen_range(0..1_000_000_000),
        });
        let mut users = vec![story_user.clone()];
        for i in 0..60 {
            // The first few are the film's salesmen; the rest random but seeded.
            let (first, last) = if i < 5 {
                (FIRST[i], LAST[i])
            } else {
                (
                    *FIRST.choose(&mut rng).unwrap_or(&"Pat"),
                    *LAST.choose(&mut rng).unwrap_or(&"Doe"),
                )
            };
            let id: String = format!("W07{}", slack_suffix(&mut rng, 6));
            users.push(Arc::new(User {
                id: Arc::from(id),
                name: format!("{first} {last}"),
                email: format!(
                    "{}.{}{}@{DOMAIN}",
                    first.to_lowercase(),
                    last.to_lowercase(),
                    if i < 5 { String::new() } else { i.to_string() }
                ),
                team: WORKSPACES[rng.gen_range(0..WORKSPACES.len())].0,
                ip: random_ip(&mut rng),
                ua: DESKTOP_UAS[rng.gen_range(0..DESKTOP_UAS.len())],
                mobile_ua: MOBILE_UAS[rng.gen_range(0..MOBILE_UAS.len())],
                session: 1_733_000_000_000 + rng.gen_range(0..1_000_000_000),
            }));
        }
        let apps = APPS
            .iter()
            .map(|(id, name, scopes, bot_scopes)| {
                Arc::new(App {
                    id: Arc::from(*id),
                    name,
                    scopes,
                    bot_scopes,
                    team: WORKSPACES[0].0,
                })
            })
            .collect();
        let channels = CHANNELS
            .iter()
            .map(|(name, private)| {
                Arc::new(Channel {
                    id: Arc::from(format!("C07{}", slack_suffix(&mut rng, 7))),
                    name,
                    private: *private,
                    shared: name.starts_with("escrow"),
                })
            })
            .collect();
        Generator {
            rng,
            users,
            apps,
            channels,
            actions: HashMap::new(),
            story_user,
            security: Arc::from("USLACKSECURITY"),
        }
    }

    /// A UUID-like id (version-4 layout) from the seeded RNG.
    pub fn uuid(&mut self) -> String {
        let b: [u8; 16] = self.rng.gen();
        let hex = |r: &[u8]| r.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let v = format!("4{}", &hex(&b[6..8])[1..]);
        let variant = format!("{:x}{}", 8 + (b[8] & 3), &hex(&b[8..10])[1..]);
        format!(
            "{}-{}-{}-{}-{}",
            hex(&b[0..4]),
            hex(&b[4..6]),
            v,
            variant,
            hex(&b[10..16])
        )
    }

    /// A uniform draw in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.rng.gen()
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
        self.users[self.rng.gen_range(1..self.users.len())].clone()
    }

    fn session(&mut self, base: i64) -> Session {
        match self.rng.gen_range(0..10) {
            0..=5 => Session::Int(base),
            6 | 7 => Session::Str(base),
            8 => Session::Null,
            _ => Session::Absent,
        }
    }

    /// The usual context of `u`: their browser (or phone), their address.
    fn ctx_of<'a>(&mut self, u: &'a User) -> Ctx<'a> {
        let mobile = self.rng.gen_bool(0.2);
        // Elastic saw `ip_address: ""` in real traffic.
        let ip = if self.rng.gen_ratio(1, 200) {
            ""
        } else {
            u.ip.as_str()
        };
        let workspace = if self.rng.gen_bool(0.7) {
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
    pub fn entry(&mut self, date: i64) -> (i64, Stored) {
        match self.rng.gen_range(0..1000) {
            0..=249 => self.user_event(date, "user_login"),
            250..=329 => self.user_event(date, "user_logout"),
            330..=379 => self.user_event(date, "user_login_failed"),
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

    fn user_event(&mut self, date: i64, action: &'static str) -> (i64, Stored) {
        let u = self.user();
        let ctx = self.ctx_of(&u);
        let mut d = self.begin(date, action);
        d.actor_user(&u);
        d.entity_user(&u);
        d.context(&ctx);
        Generator::finish(date, d)
    }

    fn file_event(&mut self, date: i64, action: &'static str) -> (i64, Stored) {
        let u = self.user();
        let name = FILES[self.rng.gen_range(0..FILES.len())];
        let file_id = Arc::from(format!("F07{}", slack_suffix(&mut self.rng, 8)));
        // eDiscovery apps download as their installer, and only then is there a context.app.
        let via_app = action == "file_downloaded" && self.rng.gen_bool(0.1);
        let app = self.apps[0].clone();
        let mut ctx = self.ctx_of(&u);
        if via_app {
            ctx.app = Some(&app);
            ctx.ua = API_UAS[0];
        }
        let channel = self.channels[self.rng.gen_range(0..self.channels.len())].clone();
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

    fn channel_event(&mut self, date: i64) -> (i64, Stored) {
        let actions = [
            "public_channel_created",
            "private_channel_created",
            "public_channel_converted_to_private",
            "private_channel_converted_to_public",
            "public_channel_archive",
            "channel_renamed",
        ];
        let action = actions[self.rng.gen_range(0..actions.len())];
        let u = self.user();
        let ctx = self.ctx_of(&u);
        let channel = self.channels[self.rng.gen_range(0..self.channels.len())].clone();
        let private = match action {
            "private_channel_created" | "public_channel_converted_to_private" => true,
            "public_channel_created" | "private_channel_converted_to_public" => false,
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
    fn channel_join(&mut self, date: i64) -> (i64, Stored) {
        let u = self.user();
        let inviter = self.user();
        let invited = self.rng.gen_bool(0.5);
        let ctx = if invited {
            self.ctx_of(&inviter)
        } else {
            self.ctx_of(&u)
        };
        let channel = self.channels[self.rng.gen_range(0..self.channels.len())].clone();
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

    fn app_event(&mut self, date: i64) -> (i64, Stored) {
        let app = self.apps[self.rng.gen_range(1..self.apps.len())].clone();
        let action = [
            "app_installed",
            "app_scopes_expanded",
            "app_uninstalled",
            "app_approved",
        ][self.rng.gen_range(0..4)];
        let admin = self.users[4].clone();
        // Some app events are the app's bot acting: a bot user, an API client, context.app.
        let by_bot = action == "app_scopes_expanded" && self.rng.gen_bool(0.5);
        let mut ctx = self.ctx_of(&admin);
        if by_bot {
            ctx.app = Some(&app);
            ctx.ua = API_UAS[self.rng.gen_range(0..API_UAS.len())];
        }
        let duplicate_key = self.rng.gen_bool(0.2);
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
            "app_scopes_expanded" => {
                d.j.strs("new_scopes", &[app.scopes, &["users:read.email"]].concat());
                d.j.strs("previous_scopes", app.scopes);
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

    fn role_change(&mut self, date: i64) -> (i64, Stored) {
        let (action, prev, new) = [
            ("role_change_to_admin", "user", "admin"),
            ("role_change_to_owner", "admin", "owner"),
            ("role_change_to_user", "admin", "user"),
            ("role_change_to_guest", "user", "guest"),
        ][self.rng.gen_range(0..4)];
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

    fn lifecycle(&mut self, date: i64) -> (i64, Stored) {
        let action = [
            "user_created",
            "user_deactivated",
            "user_reactivated",
            "guest_created",
        ][self.rng.gen_range(0..4)];
        let admin = self.users[4].clone();
        let u = self.user();
        let ctx = self.ctx_of(&admin);
        let mut d = self.begin(date, action);
        d.actor_user(&admin);
        d.entity_user(&u);
        d.context(&ctx);
        Generator::finish(date, d)
    }

    fn anomaly(&mut self, date: i64) -> (i64, Stored) {
        let u = self.user();
        let mut reasons: Vec<&'static str> = vec![REASONS[self.rng.gen_range(0..REASONS.len())]];
        if self.rng.gen_bool(0.3) {
            reasons.push(REASONS[self.rng.gen_range(0..REASONS.len())]);
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
            API_UAS[self.rng.gen_range(0..API_UAS.len())]
        } else {
            u.ua
        };
        let ctx = Ctx {
            workspace: None,
            ua,
            ip: &ip,
            session: self.session(u.session),
            app: None,
        };
        let location = LOCATIONS[self.rng.gen_range(0..LOCATIONS.len())];
        let micros = self.rng.gen_bool(0.5);
        let lag = self.rng.gen_range(1..120);
        let sub = self.rng.gen_range(0..1_000_000);
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
    fn pref_change(&mut self, date: i64) -> (i64, Stored) {
        let admin = self.users[4].clone();
        let ctx = self.ctx_of(&admin);
        let which = self.rng.gen_range(0..3);
        let action = [
            "pref.session_duration_changed",
            "pref.anomaly_event_response_changed",
            "pref.two_factor_auth_changed",
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
    fn canvas(&mut self, date: i64) -> (i64, Stored) {
        let u = self.user();
        let ctx = self.ctx_of(&u);
        let canvas_id: Arc<str> = Arc::from(format!("F07CNV{}", slack_suffix(&mut self.rng, 5)));
        let by_slackbot = self.rng.gen_bool(0.3);
        let channel = self.channels[0].clone();
        let ts = format!("{date}.{:06}", self.rng.gen_range(0..1_000_000));
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

    fn huddle(&mut self, date: i64) -> (i64, Stored) {
        let u = self.user();
        let ctx = self.ctx_of(&u);
        let huddle_id: Arc<str> = Arc::from(format!("R07{}", slack_suffix(&mut self.rng, 8)));
        let channel = self.channels[self.rng.gen_range(0..self.channels.len())].clone();
        let action = if self.rng.gen_bool(0.5) {
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

    /// Session resets: by Slack Security (`USLACKSECURITY`), or a bulk reset whose
    /// `succeeded_users` is a JSON string "for historical reasons".
    fn session_reset(&mut self, date: i64) -> (i64, Stored) {
        let u = self.user();
        let other = self.user();
        if self.rng.gen_bool(0.5) {
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
        let admin = self.users[4].clone();
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

    /// Step `step` of the departing-salesperson story (see [`STORY_OFFSETS`]), dated `date`;
    /// `None` past the end.
    pub fn story_entry(&mut self, step: usize, date: i64) -> Option<(i64, Stored)> {
        let u = self.story_user.clone();
        let scraper = Ctx {
            workspace: Some(0),
            ua: SCRAPER_UA,
            ip: SCRAPER_IP,
            session: Session::Int(u.session),
            app: None,
        };
        let downloads = STORY_FILES.len();
        let d = match step {
            0 => {
                let ctx = Ctx {
                    workspace: Some(0),
                    ua: u.ua,
                    ip: &u.ip,
                    session: Session::Int(u.session),
                    app: None,
                };
                let mut d = self.begin(date, "user_login");
                d.actor_user(&u);
                d.entity_user(&u);
                d.context(&ctx);
                d
            }
            1 => self.story_anomaly(&u, date, &["unexpected_scraping", "user_agent"], &scraper),
            s if s >= 2 && s < 2 + downloads => {
                let name = STORY_FILES[s - 2];
                // A stable id per file name, so repeated runs and filters agree.
                let mut h = super::cursor::Fnv::new();
                h.write(name.as_bytes());
                let file_id: Arc<str> = Arc::from(format!("F07{:08X}", h.finish() as u32));
                let mut d = self.begin(date, "file_downloaded");
                d.actor_user(&u);
                file_entity(&mut d, &file_id, name);
                d.context(&scraper);
                d
            }
            s if s == 2 + downloads => {
                self.story_anomaly(&u, date, &["excessive_downloads"], &scraper)
            }
            s if s == 3 + downloads => {
                let security = self.security.clone();
                let mut d = self.begin(date, "user_session_reset_by_anomaly_event_response");
                d.actor(&security, "Slack Security", "", None);
                d.entity_user(&u);
                d.context(&Ctx {
                    workspace: None,
                    ua: "",
                    ip: "",
                    session: Session::Absent,
                    app: None,
                });
                d.j.obj("details");
                d.j.strs("reason", &["excessive_downloads"]);
                d.j.end();
                d
            }
            _ => return None,
        };
        Some(Generator::finish(date, d))
    }

    fn story_anomaly(&mut self, u: &User, date: i64, reasons: &[&str], ctx: &Ctx<'_>) -> Draft {
        let sub = self.rng.gen_range(0..1_000_000);
        let micros = reasons.len() > 1;
        let mut d = self.begin(date, "anomaly");
        d.actor_user(u);
        d.entity_user(u);
        d.context(ctx);
        d.j.obj("details");
        d.j.strs("reason", reasons);
        d.j.int("action_timestamp", action_timestamp(date - 3, sub, micros));
        d.j.str("location", "Chicago, Illinois");
        d.j.str("previous_ua", u.ua);
        d.j.str("previous_ip_address", &u.ip);
        d.j.end();
        d
    }
}

fn file_entity(d: &mut Draft, id: &Arc<str>, name: &str) {
    let filetype = name.rsplit('.').next().unwrap_or("binary");
    d.entity("file", id);
    d.j.str("name", name);
    d.j.str("filetype", filetype);
    d.j.str("title", name.rsplit_once('.').map_or(name, |(t, _)| t));
    d.end_entity();
}

fn channel_entity(d: &mut Draft, c: &Channel, private: bool) {
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
fn action_timestamp(secs: i64, sub_micros: i64, micros: bool) -> i64 {
    if micros {
        secs * 1_000_000 + sub_micros
    } else {
        secs * 1000 + sub_micros / 1000
    }
}

/// Upper-case letters and digits, like the tail of a Slack id.
fn slack_suffix(rng: &mut StdRng, n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
    (0..n)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// An address from the documentation ranges (RFC 5737, RFC 3849), so nothing real is named.
fn random_ip(rng: &mut StdRng) -> String {
    match rng.gen_range(0..4) {
        0 => format!("192.0.2.{}", rng.gen_range(1..255)),
        1 => format!("198.51.100.{}", rng.gen_range(1..255)),
        2 => format!("203.0.113.{}", rng.gen_range(1..255)),
        _ => format!(
            "2001:db8:{:x}::{:x}",
            rng.gen_range(1..0xffff),
            rng.gen_range(1..0xffff)
        ),
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
                    "file_downloaded" | "app_scopes_expanded"
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

    #[test]
    fn the_story_is_complete() {
        let mut g = Generator::new(0);
        let steps: Vec<Value> = (0..)
            .map_while(|s| g.story_entry(s, 1_700_000_000 + s as i64))
            .map(|e| parse(&e))
            .collect();
        assert_eq!(steps.len(), STORY_OFFSETS.len());
        assert_eq!(
            steps[1]["details"]["reason"],
            serde_json::json!(["unexpected_scraping", "user_agent"])
        );
        assert_eq!(steps[1]["context"]["ua"], SCRAPER_UA);
        assert_eq!(steps[2]["entity"]["file"]["name"], "Glengarry-Leads.xlsx");
        assert_eq!(steps[2]["context"]["ip_address"], SCRAPER_IP);
        assert_eq!(
            steps[10]["details"]["reason"],
            serde_json::json!(["excessive_downloads"])
        );
        assert!(steps
            .iter()
            .all(|s| s["entity"]["user"]["name"] == "Shelley Levene"
                || s["actor"]["user"]["name"] == "Shelley Levene"));
    }
}

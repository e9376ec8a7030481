//! The cast of the generated org, "Premier Properties": its enterprise and workspaces, users,
//! apps, channels, files, and the real clients' user agents they use.
//!
//! Addresses come from the documentation ranges (RFC 5737, RFC 3849), so nothing real is named.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;
use std::sync::Arc;

pub(super) const ENTERPRISE: (&str, &str, &str) =
    ("E07PREMRE", "Premier Properties", "premierproperties");
pub(super) const WORKSPACES: [(&str, &str, &str); 3] = [
    ("T07SALES01", "Premier Properties Sales", "premier-sales"),
    ("T07OPS0002", "Premier Properties Operations", "premier-ops"),
    ("T07MM00003", "Mitch and Murray", "mitch-murray"),
];
pub(super) const DOMAIN: &str = "premierproperties.example";

pub(super) const DESKTOP_UAS: &[&str] = &[
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.41.105 Chrome/130.0.6723.137 Electron/33.2.0 Safari/537.36 Sonic Slack_SSB/4.41.105",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.41.105 Chrome/130.0.6723.137 Electron/33.2.0 Safari/537.36 Sonic Slack_SSB/4.41.105",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
];
pub(super) const MOBILE_UAS: &[&str] = &[
    "com.tinyspeck.chatlyio/24.12.10 (iPhone; iOS 18.1.1; Scale/3.00)",
    "com.tinyspeck.chatlyio/24.11.20 (iPad; iOS 17.7; Scale/2.00)",
    "Slack/24.12.10.0 (Android 15; Pixel 8 Pro)",
    "Slack/24.11.20.0 (Android 14; SM-S918B)",
];
pub(super) const API_UAS: &[&str] = &[
    "Python/3.12.7 slackclient/3.33.4 Linux/6.8.0-1017-aws",
    "Go-http-client/2.0",
    "Apache-HttpClient/4.5.14 (Java/17.0.13)",
];

pub(super) const STORY_BROWSER: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
pub(super) const STORY_HOME_IP: &str = "203.0.113.77";

pub(super) const FIRST: &[&str] = &[
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
pub(super) const LAST: &[&str] = &[
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
pub(super) const CHANNELS: &[(&str, bool)] = &[
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
pub(super) const FILES: &[&str] = &[
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
pub(super) const LOCATIONS: &[&str] = &[
    "Reno, Nevada",
    "Chicago, Illinois",
    "Ashburn, Virginia",
    "Frankfurt am Main, Hesse",
    "Singapore, Central Singapore",
    "Lagos, Lagos",
];

/// Reasons for the background's anomalies: the ones Slack raises routinely that the default
/// analysis rules do not escalate on their own. The reasons that make findings (Tor, scraping,
/// anomalous IPs, user agents with downloads) belong to the story, so the demo's findings are
/// the story's and nothing else.
pub(super) const BACKGROUND_REASONS: &[&str] = &[
    "excessive_file_shares",
    "excessive_malware_uploads",
    "potential_spam",
    "session_fingerprint",
    "spoofed_user_agent",
    "unexpected_admin_action",
    "unexpected_api_call_volume",
    "unexpected_client",
    "unexpected_message_deletion",
];

pub(super) struct User {
    pub(super) id: Arc<str>,
    pub(super) name: String,
    pub(super) email: String,
    pub(super) team: &'static str,
    pub(super) ip: String,
    pub(super) ua: &'static str,
    pub(super) mobile_ua: &'static str,
    pub(super) session: i64,
}

pub(super) struct App {
    pub(super) id: Arc<str>,
    pub(super) name: &'static str,
    pub(super) scopes: &'static [&'static str],
    pub(super) bot_scopes: &'static [&'static str],
    pub(super) team: &'static str,
}

pub(super) const APPS: &[(&str, &str, &[&str], &[&str])] = &[
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

pub(super) struct Channel {
    pub(super) id: Arc<str>,
    pub(super) name: &'static str,
    pub(super) private: bool,
    pub(super) shared: bool,
}

/// Upper-case letters and digits, like the tail of a Slack id.
pub(super) fn slack_suffix(rng: &mut StdRng, n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// An address from the documentation ranges (RFC 5737, RFC 3849), so nothing real is named.
pub(super) fn random_ip(rng: &mut StdRng) -> String {
    match rng.random_range(0..4) {
        0 => format!("192.0.2.{}", rng.random_range(1..255)),
        1 => format!("198.51.100.{}", rng.random_range(1..255)),
        2 => format!("203.0.113.{}", rng.random_range(1..255)),
        _ => format!(
            "2001:db8:{:x}::{:x}",
            rng.random_range(1..0xffff),
            rng.random_range(1..0xffff)
        ),
    }
}

/// The people, apps and channels of one seed.
pub(super) struct Cast {
    pub(super) users: Vec<Arc<User>>,
    pub(super) apps: Vec<Arc<App>>,
    pub(super) channels: Vec<Arc<Channel>>,
    pub(super) story_user: Arc<User>,
}

impl Cast {
    /// Draws the cast from `rng`.
    pub(super) fn new(rng: &mut StdRng) -> Cast {
        let story_user = Arc::new(User {
            id: Arc::from("W07LEVENE"),
            name: "Shelley Levene".into(),
            email: format!("shelley@{DOMAIN}"),
            team: WORKSPACES[0].0,
            ip: STORY_HOME_IP.into(),
            ua: STORY_BROWSER,
            mobile_ua: MOBILE_UAS[0],
            session: 1_733_000_000_000 + rng.random_range(0..1_000_000_000),
        });
        let mut users = vec![story_user.clone()];
        for i in 0..60 {
            // The first few are the film's salesmen; the rest random but seeded.
            let (first, last) = if i < 5 {
                (FIRST[i], LAST[i])
            } else {
                (
                    *FIRST.choose(rng).unwrap_or(&"Pat"),
                    *LAST.choose(rng).unwrap_or(&"Doe"),
                )
            };
            let id: String = format!("W07{}", slack_suffix(rng, 6));
            users.push(Arc::new(User {
                id: Arc::from(id),
                name: format!("{first} {last}"),
                email: format!(
                    "{}.{}{}@{DOMAIN}",
                    first.to_lowercase(),
                    last.to_lowercase(),
                    if i < 5 { String::new() } else { i.to_string() }
                ),
                team: WORKSPACES[rng.random_range(0..WORKSPACES.len())].0,
                ip: random_ip(rng),
                ua: DESKTOP_UAS[rng.random_range(0..DESKTOP_UAS.len())],
                mobile_ua: MOBILE_UAS[rng.random_range(0..MOBILE_UAS.len())],
                session: 1_733_000_000_000 + rng.random_range(0..1_000_000_000),
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
                    id: Arc::from(format!("C07{}", slack_suffix(rng, 7))),
                    name,
                    private: *private,
                    shared: name.starts_with("escrow"),
                })
            })
            .collect();
        Cast {
            users,
            apps,
            channels,
            story_user,
        }
    }
}

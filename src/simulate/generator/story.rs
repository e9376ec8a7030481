//! The departing-salesperson story: Shelley Levene logs in, a scraping client ("Scrapers Inc")
//! trips an anomaly, downloads the leads, trips `excessive_downloads`, and Slack resets her
//! sessions. Played by `traffic` at [`STORY_OFFSETS`] after start.

use super::cast::User;
use super::draft::{action_timestamp, file_entity, Ctx, Draft, Session};
use super::Generator;
use crate::simulate::store::Stored;
use rand::Rng;
use std::sync::Arc;

/// The story's scraping client, as Slack reports its user agent.
pub const SCRAPER_UA: &str = "Scrapers Inc";
/// The story's scraping client's address.
pub const SCRAPER_IP: &str = "198.51.100.66";
/// The files the departing salesperson downloads, first one first.
pub(crate) const STORY_FILES: &[&str] = &[
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
pub(crate) const STORY_OFFSETS: &[u64] = &[2, 4, 6, 8, 10, 12, 15, 18, 21, 24, 32, 40];

impl Generator {
    /// Step `step` of the departing-salesperson story (see [`STORY_OFFSETS`]), dated `date`;
    /// `None` past the end.
    pub(crate) fn story_entry(&mut self, step: usize, date: i64) -> Option<(i64, Stored)> {
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
                let mut h = crate::simulate::cursor::Fnv::new();
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
        let sub = self.rng.random_range(0..1_000_000);
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parse(e: &(i64, Stored)) -> Value {
        serde_json::from_str(&e.1.json).expect("generated entries are JSON")
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

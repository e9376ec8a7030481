//! What the Slack Audit Logs API looks like, and how we talk to it.
//!
//! - `api`: lenient wire types; entries stay raw JSON until mapping.
//! - `error`: every way a request can fail, classified as wait, back off, re-read or stop.
//! - [`client`]: one request per call, with the token, the request budget and retries.
//! - `web_api`: the Web API's admin methods (ending sessions, reading Slack's allowlist), with
//!   the admin token, a secret kept apart from the audit token.

pub(crate) mod api;
pub mod client;
pub(crate) mod error;
pub(crate) mod web_api;

pub(crate) use api::EntryKey;
pub use api::Page;
pub use client::{Query, SlackClient, TokenSource};
pub use error::Error;

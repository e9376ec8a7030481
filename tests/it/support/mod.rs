//! Shared test support: the scripted mock Slack server, temp dirs, entry builders.

pub mod receiver;

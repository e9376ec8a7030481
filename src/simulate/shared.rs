//! The simulator's state, shared by the server, the traffic task and the handle.

use super::faults::Faults;
use super::script::Script;
use super::store::Store;
use super::RecordedRequest;
use rand::rngs::StdRng;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Mutex;

/// Everything the server, the traffic task and the handle share.
pub(crate) struct Shared {
    /// The entries.
    pub(crate) store: Store,
    /// Signs cursors and picks end-of-chain spellings; derived from the seed.
    pub(crate) secret: u64,
    /// The bearer token required, if any.
    pub(crate) token: Option<String>,
    /// Current fault probabilities.
    pub(crate) faults: Mutex<Faults>,
    /// Draws faults; seeded so a fault sequence repeats for a seed and request sequence.
    pub(crate) fault_rng: Mutex<StdRng>,
    /// Cursors of older generations answer `invalid_cursor`.
    pub(crate) generation: AtomicU64,
    /// The newest requests, as many as the server keeps.
    pub(crate) requests: Mutex<VecDeque<RecordedRequest>>,
    /// Replies a test scripted, and the count of `/logs` requests.
    pub(crate) script: Mutex<Script>,
    /// `/logs` requests recorded since start.
    pub(crate) recorded: AtomicUsize,
    /// Woken after each `/logs` request is recorded.
    pub(crate) served: tokio::sync::Notify,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Locks a mutex, carrying on after a poisoning panic: every value guarded here stays valid
/// whatever line a panicking holder stopped at.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

//! One shutdown signal, cloned into every task that must stop.
//!
//! `main` turns SIGTERM and SIGINT into a future; [`Shutdown::from_future`] turns any future
//! into a cloneable handle, so tests can trigger shutdown without signals.

use std::future::Future;
use tokio::sync::watch;

/// A cloneable view of "has shutdown been asked for?".
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// Triggers a [`Shutdown`]; dropping it does not trigger.
#[derive(Debug)]
pub struct Trigger {
    tx: watch::Sender<bool>,
}

impl Trigger {
    /// Asks every holder of the matching [`Shutdown`] to stop.
    pub fn trigger(&self) {
        // send_replace never fails, even with no receivers left.
        self.tx.send_replace(true);
    }
}

impl Shutdown {
    /// A handle and its trigger.
    pub fn new() -> (Trigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (Trigger { tx }, Shutdown { rx })
    }

    /// A handle that triggers when `fut` resolves (spawned on the current runtime).
    pub fn from_future(fut: impl Future<Output = ()> + Send + 'static) -> Shutdown {
        let (trigger, shutdown) = Shutdown::new();
        tokio::spawn(async move {
            fut.await;
            trigger.trigger();
        });
        shutdown
    }

    /// A handle that never triggers.
    pub fn never() -> Shutdown {
        let (trigger, shutdown) = Shutdown::new();
        // Leaking the sender keeps the channel open, so `wait` pends forever instead of
        // returning when the sender is dropped.
        std::mem::forget(trigger);
        shutdown
    }

    /// True once shutdown has been asked for.
    pub(crate) fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves when shutdown is asked for (at once if it already was).
    pub async fn wait(&mut self) {
        // An Err means the trigger was dropped without firing: treat as "never".
        if self.rx.wait_for(|v| *v).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Sleeps for `d`, or less if shutdown comes first. Returns true if shutdown came.
    pub(crate) async fn sleep(&mut self, d: std::time::Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = self.wait() => true,
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT (Kubernetes stops containers with TERM).
pub async fn signals() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trigger_wakes_every_clone() {
        let (trigger, mut a) = Shutdown::new();
        let mut b = a.clone();
        assert!(!a.is_triggered());
        trigger.trigger();
        a.wait().await;
        b.wait().await;
        assert!(b.is_triggered());
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_is_cut_short_by_shutdown() {
        let (trigger, mut s) = Shutdown::new();
        let t = tokio::spawn(async move { s.sleep(std::time::Duration::from_secs(3600)).await });
        tokio::task::yield_now().await;
        trigger.trigger();
        assert!(t.await.unwrap());
    }
}

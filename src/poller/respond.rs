//! The response stage's place in the reading loop (`--respond`).
//!
//! A page's findings are planned into the ledger before the page's checkpoint, which saves
//! the plan with the page: a crash before it re-reads the page and plans again, having called
//! nothing. After the checkpoint the calls due are made, the checkpoint saved after each (so a
//! crash repeats at most the call in flight), and the response documents delivered after the
//! page. They leave the ledger at the next save; a crash before it delivers them again, which
//! their `event.id` makes harmless.

use super::Poller;
use crate::metrics::labels::Tally;
use crate::respond::Ledger;
use serde_json::Value;

impl Poller {
    /// Plans the findings of a delivered page; returns the ledger to save with the page's
    /// checkpoint.
    pub(super) fn plan_responses(&mut self, findings: &[Value]) -> Option<Ledger> {
        if let Some(r) = self.responder.as_mut() {
            r.plan(findings);
        }
        self.response_ledger()
    }

    /// The ledger to save with the checkpoint; `None` when there is nothing to remember.
    pub(super) fn response_ledger(&self) -> Option<Ledger> {
        self.responder
            .as_ref()
            .map(|r| r.ledger())
            .filter(|l| !l.is_empty())
            .cloned()
    }

    /// After a checkpoint: makes the calls due, then delivers the response documents.
    ///
    /// # Errors
    ///
    /// A checkpoint that cannot be saved, or the sink failing; never a Slack error (that is
    /// the action's outcome).
    pub(super) async fn respond(&mut self) -> Result<(), crate::Error> {
        let Some(r) = self.responder.as_mut().filter(|r| r.has_work()) else {
            return Ok(());
        };
        // Moved into the closure as `&mut`: a shared `&Pipeline` held across the calls would
        // need the pipeline to be `Sync`, which its GeoIP readers are not.
        let (store, state, pipeline) = (&self.store, &mut self.state, &mut self.pipeline);
        r.enforce(move |ledger| {
            state.response = (!ledger.is_empty()).then(|| ledger.clone());
            store.save_with(state, pipeline.saved_state().as_ref())
        })
        .await?;
        let mut batch = self.sender.batch();
        batch.clear();
        // Counted like the page's documents: the breaker's finding among the findings.
        let mut tally = Tally::new();
        r.report_with(|doc| {
            tally.add(&doc);
            batch.push(&doc);
        });
        if !batch.is_empty() {
            self.sender.send(batch).await?;
            self.sender.acknowledged().await?;
            crate::metrics::page_delivered_tally(&tally);
        }
        self.state.response = self.response_ledger();
        Ok(())
    }
}

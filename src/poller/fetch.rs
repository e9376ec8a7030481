//! The fetch task: owns the Slack client and fetches the page the poller asks for, one at a
//! time, so that page k+1 can be fetched while page k is delivered.

use crate::checkpoint::{Window, AUDIT_LOGS_EPOCH};
use crate::config::Filters;
use crate::shutdown::Shutdown;
use crate::slack::{Error as SlackError, Page, Query, SlackClient};
use tokio::sync::mpsc;

/// One page to fetch: the range asked for and where in its chain.
#[derive(Debug)]
pub(super) struct Request {
    pub(super) oldest: i64,
    pub(super) latest: i64,
    pub(super) cursor: Option<String>,
}

impl Request {
    /// The request for the page at `w`'s cursor, reading `overlap` seconds behind it.
    pub(super) fn at(w: &Window, overlap: i64) -> Request {
        Request {
            oldest: query_oldest(w, overlap),
            latest: w.chain_latest,
            cursor: w.cursor.clone(),
        }
    }
}

/// `oldest` as asked of Slack for `w`: the window's, minus the overlap, never before audit
/// logs existed.
pub(super) fn query_oldest(w: &Window, overlap: i64) -> i64 {
    (w.oldest - overlap).max(AUDIT_LOGS_EPOCH)
}

/// What a fetch gives: a page, `None` when shutdown came first, or Slack's error.
type Answer = Result<Option<Page>, SlackError>;

/// The poller's end of the fetch task. Dropping it aborts a fetch in progress.
#[derive(Debug)]
pub(super) struct Fetcher {
    requests: mpsc::Sender<Request>,
    answers: mpsc::Receiver<Answer>,
    task: tokio::task::JoinHandle<()>,
}

impl Fetcher {
    /// Starts the task; it owns `client` from now on.
    pub(super) fn spawn(
        mut client: SlackClient,
        limit: u32,
        filters: Filters,
        mut shutdown: Shutdown,
    ) -> Fetcher {
        // One request in hand and one answer waiting: one page prefetched, no more.
        let (requests, mut asked) = mpsc::channel::<Request>(1);
        let (answered, answers) = mpsc::channel(1);
        let task = tokio::spawn(async move {
            while let Some(r) = asked.recv().await {
                let q = Query {
                    oldest: r.oldest,
                    latest: r.latest,
                    limit,
                    cursor: r.cursor.as_deref(),
                    filters: &filters,
                };
                let answer = client.fetch_page_with_retry(&q, &mut shutdown).await;
                if answered.send(answer).await.is_err() {
                    return;
                }
            }
        });
        Fetcher {
            requests,
            answers,
            task,
        }
    }

    /// Starts fetching `request`; its answer comes from the next [`Fetcher::page`]. The
    /// poller asks for one page at a time.
    pub(super) fn ask(&mut self, request: Request) {
        // The channel holds one request and the poller never has two outstanding, so this
        // only fails when the task is gone, which `page` then reports.
        let _ = self.requests.try_send(request);
    }

    /// The answer to the oldest request not yet answered.
    pub(super) async fn page(&mut self) -> Answer {
        match self.answers.recv().await {
            Some(answer) => answer,
            None => Err(SlackError::Transport(
                "the fetch task stopped without an answer".into(),
            )),
        }
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

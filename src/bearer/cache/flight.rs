//! One fetch from the token source: the task that runs it ([`Flight`]) and its entry in the
//! cache's state ([`InFlight`]).
//!
//! A flight's outcome is published exactly once, to every request waiting for it, by whoever
//! ends it first under the cache's lock: the fetch finishing, a waiter whose deadline passed
//! (which times it out), or a request that finds it overdue (which abandons it). The others
//! find the entry gone and leave the outcome alone, so every waiter, the request that started
//! the flight included, sees the same outcome.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::timer::{before, Clock, Deadline};
use super::{Outcome, Shared};
use crate::error::Error;
use crate::token::Token;

/// Why a flight can become overdue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Overdue {
    /// It refreshes a token, which expires before the fetch timeout.
    TokenExpired,
    /// It ran past the fetch timeout (its runtime no longer runs it).
    TimedOut,
}

/// The cache's record of the flight in progress.
pub(super) struct InFlight {
    pub(super) id: u64,
    started: Instant,
    why_overdue: Overdue,
    /// Publishes the outcome; dropping it unsent tells waiters the flight ended without one.
    tx: watch::Sender<Option<Outcome>>,
    /// Past this the flight is overdue and a request may abandon it: its start plus the fetch
    /// timeout, or sooner, the expiry of the token it refreshes.
    deadline: Option<Instant>,
    /// The task running it, if it was spawned.
    task: Option<AbortHandle>,
}

impl InFlight {
    pub(super) fn overdue(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|deadline| now >= deadline)
    }

    /// From when it is overdue (`None`: never).
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    pub(super) fn why_overdue(&self) -> Overdue {
        self.why_overdue
    }

    /// How long it has been running.
    pub(super) fn running(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<Option<Outcome>> {
        self.tx.subscribe()
    }

    pub(super) fn set_task(&mut self, task: AbortHandle) {
        self.task = Some(task);
    }

    /// End the flight: publish `outcome` (none: waiters start over), and stop its task if it is
    /// still running.
    pub(super) fn end(self, outcome: Option<&Outcome>, stop_task: bool) {
        if let Some(outcome) = outcome {
            self.tx.send_replace(Some(outcome.clone()));
        }
        if stop_task {
            if let Some(task) = &self.task {
                task.abort();
            }
        }
    }
}

/// The running side of a flight. Dropped before it finishes (its task aborted, or the request
/// driving it inline cancelled), it ends the flight with no outcome, so the cache never stays
/// stuck on it.
pub(super) struct Flight {
    shared: Arc<Shared>,
    pub(super) id: u64,
    finished: bool,
}

impl Flight {
    /// Record a new flight `id` in the state.
    pub(super) fn begin(
        shared: &Arc<Shared>,
        id: u64,
        started: Instant,
        deadline: Option<Instant>,
        why_overdue: Overdue,
    ) -> (Self, InFlight) {
        let (tx, _) = watch::channel(None);
        let entry = InFlight {
            id,
            started,
            why_overdue,
            tx,
            deadline,
            task: None,
        };
        let flight = Self {
            shared: Arc::clone(shared),
            id,
            finished: false,
        };
        (flight, entry)
    }

    /// Fetch, bounded by the fetch timeout on `clock` (no bound of its own when `None`: the
    /// request driving it inline bounds it), and store the result.
    pub(super) async fn run(mut self, clock: Option<Clock>) {
        let shared = Arc::clone(&self.shared);
        let fetch = CatchUnwind(Box::pin(async {
            shared
                .source
                .fetch()
                .await
                .map_err(Error::token_fetch_failed)
        }));
        let timeout = shared.fetch_timeout;
        let fetched = match clock {
            Some(clock) => before(fetch, Deadline::after(timeout, clock))
                .await
                .unwrap_or_else(|| Err(timeout_error(timeout))),
            None => fetch.await,
        };
        self.finished = true;
        let _ = shared.complete(self.id, fetched, false);
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.cancel(self.id);
        }
    }
}

pub(super) fn timeout_error(timeout: Duration) -> Error {
    Error::token_fetch_timed_out(timeout)
}

/// A token source that panics fails its fetch instead of leaving waiters to retry forever.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future<Output = Result<Token, Error>>> Future for CatchUnwind<F> {
    type Output = Result<Token, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(poll) => poll,
            Err(_) => Poll::Ready(Err(Error::token_source_panicked())),
        }
    }
}

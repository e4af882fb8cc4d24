//! The token cache behind [`BearerAuthLayer::from_source`](crate::BearerAuthLayer::from_source):
//! one cached token shared by every clone of a layer, one fetch at a time, refresh ahead of
//! expiry in the background, and invalidation on `401`.
//!
//! The state is a small struct behind a `std::sync::RwLock` that is only ever held for a few
//! field reads or writes, never across an await. The hot path (a valid token outside the
//! refresh window) takes the read lock, clones a `HeaderValue` (a reference count) and leaves.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderValue;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::Error;
use crate::token::{Token, TokenSource};

/// After a failed background refresh, the next may start half the remaining lifetime later,
/// but no sooner than this (so retries never speed up as expiry nears)...
const MIN_RETRY_DELAY: Duration = Duration::from_secs(1);
/// ...and no later than this.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// How often a waiting request starts over when fetches are cancelled under it (a runtime
/// shutting down, say) before it gives up.
const MAX_CANCELLED_FLIGHTS: u32 = 3;

pub(crate) struct TokenCache {
    shared: Arc<Shared>,
}

struct Shared {
    source: Box<dyn TokenSource>,
    refresh_before: Duration,
    fetch_timeout: Duration,
    state: RwLock<State>,
    /// Set once a runtime without tokio's timer was seen, so the check is not repeated.
    no_timer: AtomicBool,
}

#[derive(Default)]
struct State {
    current: Option<Cached>,
    flight: Option<InFlight>,
    /// After a failed background refresh: no new one before this.
    retry_at: Option<Instant>,
    generations: u64,
    flights: u64,
}

struct InFlight {
    id: u64,
    rx: watch::Receiver<Option<Outcome>>,
}

#[derive(Clone)]
struct Cached {
    value: HeaderValue,
    generation: u64,
    expires_at: Option<Instant>,
    refresh_at: Option<Instant>,
}

type Outcome = Result<Cached, Error>;

impl Cached {
    fn usable(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }

    fn wants_refresh(&self, now: Instant) -> bool {
        self.refresh_at.is_some_and(|at| now >= at)
    }
}

impl State {
    fn may_start_refresh(&self, now: Instant) -> bool {
        self.flight.is_none() && self.retry_at.is_none_or(|at| now >= at)
    }

    fn usable(&self, now: Instant) -> Option<&Cached> {
        self.current.as_ref().filter(|c| c.usable(now))
    }
}

/// Which cached token a request carried, so that a `401` can invalidate exactly that one.
pub(crate) struct Ticket {
    shared: Arc<Shared>,
    generation: u64,
}

impl Ticket {
    /// The server rejected this token: forget it, unless it was already replaced.
    pub(crate) fn invalidate(self) {
        let mut st = self.shared.write();
        if st
            .current
            .as_ref()
            .is_some_and(|c| c.generation == self.generation)
        {
            st.current = None;
            st.retry_at = None;
        }
    }
}

pub(crate) enum Lookup {
    Ready(HeaderValue, Ticket),
    /// No usable token (or a refresh that has to run inside the request): call
    /// [`TokenCache::acquire`].
    Wait,
}

impl TokenCache {
    pub(crate) fn new(
        source: Box<dyn TokenSource>,
        refresh_before: Duration,
        fetch_timeout: Duration,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                source,
                refresh_before,
                fetch_timeout,
                state: RwLock::new(State::default()),
                no_timer: AtomicBool::new(false),
            }),
        }
    }

    pub(crate) fn refresh_before(&self) -> Duration {
        self.shared.refresh_before
    }

    pub(crate) fn fetch_timeout(&self) -> Duration {
        self.shared.fetch_timeout
    }

    fn ticket(&self, generation: u64) -> Ticket {
        Ticket {
            shared: Arc::clone(&self.shared),
            generation,
        }
    }

    /// The hot path: a usable token now, starting a background refresh if it is due.
    pub(crate) fn lookup(&self) -> Lookup {
        let now = {
            let st = self.shared.read();
            let Some(c) = &st.current else {
                return Lookup::Wait;
            };
            // A token that never expires is never refreshed either: no need to read the clock.
            if c.expires_at.is_none() {
                return Lookup::Ready(c.value.clone(), self.ticket(c.generation));
            }
            let now = Instant::now();
            if !c.usable(now) {
                return Lookup::Wait;
            }
            if !(c.wants_refresh(now) && st.may_start_refresh(now)) {
                return Lookup::Ready(c.value.clone(), self.ticket(c.generation));
            }
            now
        };
        // Inside the refresh window: keep using the valid token, refresh in the background.
        let Ok(handle) = Handle::try_current() else {
            // No runtime to run it on: the request refreshes inline.
            return Lookup::Wait;
        };
        let mut st = self.shared.write();
        let Some(c) = st.usable(now).cloned() else {
            return Lookup::Wait;
        };
        if c.wants_refresh(now) && st.may_start_refresh(now) {
            let (flight, _rx) = Flight::begin(&self.shared, &mut st);
            drop(st);
            handle.spawn(flight.run(true));
        }
        Lookup::Ready(c.value, self.ticket(c.generation))
    }

    /// Wait for a token: join the fetch in flight, or start one. With no tokio runtime the
    /// request drives the fetch itself (without the timeout, which needs tokio's timer).
    pub(crate) async fn acquire(&self) -> Result<(HeaderValue, Ticket), Error> {
        let mut cancelled = 0;
        loop {
            let now = Instant::now();
            let runtime = Handle::try_current().ok();
            let step = {
                let mut st = self.shared.write();
                match (st.usable(now).cloned(), &st.flight, runtime) {
                    // The refresh is due and there is no runtime to run it on (`lookup`
                    // spawns it where there is one): this request refreshes inline.
                    (Some(c), _, None) if c.wants_refresh(now) && st.may_start_refresh(now) => {
                        Step::Inline(Flight::begin(&self.shared, &mut st).0, Some(c))
                    }
                    (Some(c), _, _) => return Ok((c.value, self.ticket(c.generation))),
                    (None, Some(flight), _) => Step::Wait(flight.id, flight.rx.clone()),
                    (None, None, Some(handle)) => {
                        let (flight, rx) = Flight::begin(&self.shared, &mut st);
                        Step::Spawn(handle, flight, rx)
                    }
                    (None, None, None) => {
                        Step::Inline(Flight::begin(&self.shared, &mut st).0, None)
                    }
                }
            };
            let outcome = match step {
                Step::Inline(flight, valid) => Some(match flight.run(false).await {
                    // A failed refresh keeps the still-valid token.
                    Err(err) => valid.filter(|c| c.usable(Instant::now())).ok_or(err),
                    fetched => fetched,
                }),
                Step::Spawn(handle, flight, rx) => {
                    let id = flight.id;
                    // Spawned outside the lock: a runtime shutting down drops the task at once,
                    // and its `Drop` takes the lock.
                    handle.spawn(flight.run(true));
                    self.wait(id, rx).await
                }
                Step::Wait(id, rx) => self.wait(id, rx).await,
            };
            match outcome {
                Some(outcome) => return outcome.map(|c| (c.value, self.ticket(c.generation))),
                // The fetch was dropped before it finished (its driver was cancelled): start
                // over, and let one of the waiters fetch.
                None => {
                    cancelled += 1;
                    if cancelled >= MAX_CANCELLED_FLIGHTS {
                        return Err(Error::token_fetch_cancelled());
                    }
                }
            }
        }
    }

    /// Wait for flight `id`'s outcome; `None` if it was dropped unfinished. The wait is bounded
    /// by the fetch timeout too: a flight spawned on a runtime that is no longer driven would
    /// otherwise strand its waiters, so on timeout it is abandoned and the next request starts
    /// a new one.
    async fn wait(&self, id: u64, mut rx: watch::Receiver<Option<Outcome>>) -> Option<Outcome> {
        let outcome = rx.wait_for(Option::is_some);
        let waited = if self.shared.has_timer() {
            match tokio::time::timeout(self.shared.fetch_timeout, outcome).await {
                Ok(waited) => waited,
                Err(_) => {
                    self.shared.abandon(id);
                    return Some(Err(timeout_error(self.shared.fetch_timeout)));
                }
            }
        } else {
            outcome.await
        };
        waited.ok().and_then(|outcome| outcome.clone())
    }
}

enum Step {
    /// Join the flight in progress.
    Wait(u64, watch::Receiver<Option<Outcome>>),
    /// Start a flight on the runtime and wait for it.
    Spawn(Handle, Flight, watch::Receiver<Option<Outcome>>),
    /// Drive a flight in this request (no runtime), keeping the valid token if it fails.
    Inline(Flight, Option<Cached>),
}

fn timeout_error(timeout: Duration) -> Error {
    Error::token_fetch_timed_out(timeout)
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        // Nothing panics while holding the lock, but a poisoned lock must not panic us either.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether tokio's timer can be used here. `tokio::time` panics on a runtime built without
    /// `enable_time()`; that panic is caught once and remembered, never let out.
    fn has_timer(&self) -> bool {
        if Handle::try_current().is_err() || self.no_timer.load(Ordering::Relaxed) {
            return false;
        }
        let ok = catch_unwind(|| drop(tokio::time::sleep(Duration::ZERO))).is_ok();
        if !ok {
            self.no_timer.store(true, Ordering::Relaxed);
        }
        ok
    }

    /// Forget flight `id` (if it is still the current one), so the next request starts anew.
    fn abandon(&self, id: u64) {
        let mut st = self.write();
        if st.flight.as_ref().is_some_and(|f| f.id == id) {
            st.flight = None;
        }
    }
}

/// One fetch, from start to stored result. Dropped before it finishes (its driver cancelled),
/// it clears the "fetching" mark so the cache never stays stuck.
struct Flight {
    shared: Arc<Shared>,
    id: u64,
    tx: Option<watch::Sender<Option<Outcome>>>,
}

impl Flight {
    fn begin(shared: &Arc<Shared>, st: &mut State) -> (Self, watch::Receiver<Option<Outcome>>) {
        st.flights += 1;
        let (tx, rx) = watch::channel(None);
        st.flight = Some(InFlight {
            id: st.flights,
            rx: rx.clone(),
        });
        let flight = Self {
            shared: Arc::clone(shared),
            id: st.flights,
            tx: Some(tx),
        };
        (flight, rx)
    }

    /// Fetch and store. `spawned` flights run on a tokio runtime and get the fetch timeout;
    /// inline ones (no runtime) cannot.
    async fn run(mut self, spawned: bool) -> Outcome {
        let shared = Arc::clone(&self.shared);
        let fetch = async move {
            let fetched = if !spawned {
                shared.source.fetch().await
            } else if !shared.has_timer() {
                return Err(Error::runtime_without_timer());
            } else {
                match tokio::time::timeout(shared.fetch_timeout, shared.source.fetch()).await {
                    Ok(fetched) => fetched,
                    Err(_) => return Err(timeout_error(shared.fetch_timeout)),
                }
            };
            fetched.map_err(Error::token_fetch_failed)
        };
        let fetched = CatchUnwind(Box::pin(fetch)).await;
        self.finish(fetched)
    }

    /// Store the result and clear the "fetching" mark under one lock, then wake the waiters.
    fn finish(&mut self, fetched: Result<Token, Error>) -> Outcome {
        let now = Instant::now();
        let outcome = {
            let mut st = self.shared.write();
            if st.flight.as_ref().is_some_and(|f| f.id == self.id) {
                st.flight = None;
            }
            match fetched {
                Ok(token) => {
                    st.generations += 1;
                    let cached = Cached {
                        value: token.token.header_value().clone(),
                        generation: st.generations,
                        expires_at: token.expires_at,
                        refresh_at: token
                            .expires_at
                            .map(|at| refresh_at(now, at, self.shared.refresh_before)),
                    };
                    st.current = Some(cached.clone());
                    st.retry_at = None;
                    Ok(cached)
                }
                Err(err) => {
                    if let Some(expires_at) = st.usable(now).and_then(|c| c.expires_at) {
                        let left = expires_at.saturating_duration_since(now);
                        let delay = (left / 2).clamp(MIN_RETRY_DELAY, MAX_RETRY_DELAY);
                        st.retry_at = now.checked_add(delay);
                    }
                    Err(err)
                }
            }
        };
        if let Some(tx) = self.tx.take() {
            tx.send_replace(Some(outcome.clone()));
        }
        outcome
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        if self.tx.is_some() {
            // Cancelled: waiters see the channel close and start over.
            let mut st = self.shared.write();
            if st.flight.as_ref().is_some_and(|f| f.id == self.id) {
                st.flight = None;
            }
        }
    }
}

/// Start refreshing `min(refresh_before, lifetime / 2)` before expiry, so a short-lived token
/// is not refreshed on every request.
fn refresh_at(now: Instant, expires_at: Instant, refresh_before: Duration) -> Instant {
    let lifetime = expires_at.saturating_duration_since(now);
    let window = refresh_before.min(lifetime / 2);
    expires_at.checked_sub(window).unwrap_or(expires_at)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_window_is_at_most_half_the_lifetime() {
        let now = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(refresh_at(now, now + s(3600), s(60)), now + s(3540));
        assert_eq!(refresh_at(now, now + s(60), s(60)), now + s(30));
        assert_eq!(refresh_at(now, now + s(10), s(60)), now + s(5));
        assert_eq!(refresh_at(now, now, s(60)), now);
        assert_eq!(refresh_at(now, now + s(100), Duration::ZERO), now + s(100));
    }
}

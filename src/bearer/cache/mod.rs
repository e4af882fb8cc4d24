//! The token cache behind [`BearerAuthLayer::from_source`](crate::BearerAuthLayer::from_source):
//! one cached token shared by every clone of a layer, one fetch at a time, refresh ahead of
//! expiry in the background, invalidation on `401`, and the rules for when things go wrong
//! (the crate's rules "under faults"):
//!
//! - after a failed fetch with no usable token, no new fetch before a [backoff](backoff) delay;
//!   requests inside it fail at once;
//! - a fetch that outlives the token it refreshes, or its own timeout, is abandoned by the next
//!   request that finds it overdue ([`flight`]);
//! - every wait is bounded by the fetch timeout, with or without a runtime ([`timer`]);
//! - a token that arrives already expired is a failed fetch.
//!
//! The state is a small struct behind a `std::sync::RwLock` that is only ever held for a few
//! field reads or writes, never across an await. The hot path (a valid token outside the
//! refresh window) takes no lock: it reads the cache's epoch and uses this thread's copy of
//! the token taken at that epoch ([`local`]), and its [`Ticket`] is two numbers. So requests
//! on different cores write to no memory they share.

mod backoff;
mod flight;
mod local;
mod ticket;
mod timer;

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::task::Poll;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::time::Instant;

use self::backoff::Backoff;
use self::flight::{timeout_error, Flight, InFlight, Overdue};
use self::local::Hot;
use self::timer::{Clock, Deadline, Runtimes};
use crate::error::{Error, ErrorKind};
use crate::token::{Token, TokenSource};
use crate::trace::{self, Reason};

pub(crate) use self::flight::Overdue as OverdueReason;
pub(crate) use self::ticket::Ticket;

/// After a failed refresh (the cached token still valid), the next may start half the
/// remaining lifetime later, but no sooner than this (so retries never speed up as expiry
/// nears)...
const MIN_RETRY_DELAY: Duration = Duration::from_secs(1);
/// ...and no later than this.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// A token's soft refresh time ([`Token::refresh_in`]) counts from at least this long after
/// it arrives, so a source that asks for an immediate refresh is not called on every request.
const MIN_SOFT_REFRESH: Duration = Duration::from_secs(1);
/// How often a waiting request starts over when fetches end under it with no outcome (a
/// runtime shutting down, say) before it gives up.
const MAX_CANCELLED_FLIGHTS: u32 = 3;

pub(crate) struct TokenCache {
    shared: Arc<Shared>,
}

pub(super) struct Shared {
    /// Read by every request; written only when what the hot path reads changes.
    published: Published,
    id: u64,
    source: Box<dyn TokenSource>,
    refresh_before: Duration,
    fetch_timeout: Duration,
    /// The layer's header: a fetched credential for another one is a failed fetch.
    header: HeaderName,
    state: RwLock<State>,
    runtimes: Runtimes,
}

/// The epoch of what the hot path reads ([`State::hot`]): it moves, under the write lock,
/// whenever that changes. On a cache line of its own, so that nothing written on the slow
/// paths makes every core read it again.
#[repr(align(64))]
struct Published {
    epoch: AtomicU64,
}

impl Drop for Shared {
    fn drop(&mut self) {
        ticket::leave(self.id);
    }
}

#[derive(Default)]
struct State {
    current: Option<Cached>,
    flight: Option<InFlight>,
    /// After a failed refresh with the token still valid: no new one before this.
    retry_at: Option<Instant>,
    /// After failed fetches with no usable token.
    backoff: Backoff,
    generations: u64,
    flights: u64,
    /// What the hot path was last told ([`State::hot_key`]).
    published: Option<HotKey>,
}

/// What the hot path reads, the token's bytes apart (a generation always has the same): the
/// generation and until when it needs no look at the state ([`Hot::until`]).
type HotKey = (u64, Option<Instant>);

#[derive(Clone)]
pub(super) struct Cached {
    value: HeaderValue,
    generation: u64,
    expires_at: Option<Instant>,
    refresh_at: Option<Instant>,
}

pub(super) type Outcome = Result<Cached, Error>;

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
        self.retry_at.is_none_or(|at| now >= at)
            && self.flight.as_ref().is_none_or(|f| f.overdue(now))
    }

    fn usable(&self, now: Instant) -> Option<&Cached> {
        self.current.as_ref().filter(|c| c.usable(now))
    }

    /// From when a request holding `c` looks into starting a refresh: when `c` wants one,
    /// a retry is allowed (after a failed refresh), and the flight in progress, if any, is
    /// overdue. `None`: never, as things stand. Exactly the instants from which
    /// `c.wants_refresh(now) && self.may_start_refresh(now)` holds.
    fn refresh_check_at(&self, c: &Cached) -> Option<Instant> {
        let mut at = c.refresh_at?;
        if let Some(retry_at) = self.retry_at {
            at = at.max(retry_at);
        }
        if let Some(flight) = &self.flight {
            at = at.max(flight.deadline()?);
        }
        Some(at)
    }

    /// What the hot path needs: the cached token, and until when it is enough.
    fn hot(&self) -> Option<Hot> {
        let (generation, until) = self.hot_key()?;
        let value = self.current.as_ref()?.value.clone();
        Some(Hot {
            value,
            generation,
            until,
        })
    }

    fn hot_key(&self) -> Option<HotKey> {
        let c = self.current.as_ref()?;
        let until = match (c.expires_at, self.refresh_check_at(c)) {
            (Some(expiry), Some(check)) => Some(expiry.min(check)),
            (expiry, check) => expiry.or(check),
        };
        Some((c.generation, until))
    }

    /// The flight in progress, if it is `id`, taken out of the state (whoever takes it ends it).
    fn take_flight(&mut self, id: u64) -> Option<InFlight> {
        if self.flight.as_ref().is_some_and(|f| f.id == id) {
            self.flight.take()
        } else {
            None
        }
    }

    /// Give up a flight that outlived its token or its timeout: its waiters start over, its
    /// task is stopped, and whatever it fetches later is dropped (once the lock is released).
    fn abandon_overdue(&mut self, now: Instant, later: &mut Later) {
        if self.flight.as_ref().is_some_and(|f| f.overdue(now)) {
            if let Some(flight) = self.flight.take() {
                let running = flight.running(now);
                later.abandoned = Some((flight, running));
            }
        }
    }

    /// After a failed or cancelled refresh while the token is still valid: no new refresh
    /// before half the time left, clamped to 1–5 s. Returns how long the token stays valid
    /// and the delay.
    fn delay_refresh(&mut self, now: Instant) -> (Option<Duration>, Option<Duration>) {
        let valid_for = self
            .usable(now)
            .and_then(|c| c.expires_at)
            .map(|at| at.saturating_duration_since(now));
        let retry_in = valid_for.map(|left| (left / 2).clamp(MIN_RETRY_DELAY, MAX_RETRY_DELAY));
        self.retry_at = retry_in.and_then(|delay| now.checked_add(delay));
        (valid_for, retry_in)
    }

    /// Start a new flight; it is overdue after the fetch timeout, or when the token it
    /// refreshes expires, whichever comes first.
    fn begin(
        &mut self,
        shared: &Arc<Shared>,
        now: Instant,
        reason: Reason,
        later: &mut Later,
    ) -> (Flight, watch::Receiver<Option<Outcome>>) {
        self.flights += 1;
        let id = self.flights;
        let refreshing = self.usable(now).and_then(|c| c.expires_at);
        let deadline = match (now.checked_add(shared.fetch_timeout), refreshing) {
            (Some(timeout), Some(expiry)) => Some(timeout.min(expiry)),
            (timeout, expiry) => timeout.or(expiry),
        };
        let why = match (refreshing, deadline) {
            (Some(expiry), Some(deadline)) if expiry == deadline => Overdue::TokenExpired,
            _ => Overdue::TimedOut,
        };
        let (flight, entry) = Flight::begin(shared, id, now, deadline, why);
        let rx = entry.subscribe();
        self.flight = Some(entry);
        later.started = Some((id, reason));
        (flight, rx)
    }

    /// Store a fetch's result. A token that is already expired counts as a failure; a failure
    /// keeps a still-valid token and schedules a retry, and otherwise starts the backoff.
    fn settle(
        &mut self,
        fetched: Result<Token, Error>,
        now: Instant,
        refresh_before: Duration,
    ) -> (Outcome, Settled) {
        let fetched = fetched.and_then(|token| match token.expires_at {
            Some(at) if at <= now => Err(Error::token_expired_on_arrival()),
            _ => Ok(token),
        });
        match fetched {
            Ok(token) => {
                // A refresh that does not push the expiry back (a server handing out the same
                // token until it nearly expires) is no progress: space the next one out as
                // after a failure, instead of refreshing ever faster towards expiry.
                let no_later = match (
                    self.usable(now).and_then(|c| c.expires_at),
                    token.expires_at,
                ) {
                    (Some(before), Some(after)) => after <= before,
                    _ => false,
                };
                self.generations += 1;
                let cached = Cached {
                    value: token.credential.header_value().clone(),
                    generation: self.generations,
                    expires_at: token.expires_at,
                    refresh_at: refresh_time(now, &token, refresh_before),
                };
                self.current = Some(cached.clone());
                if no_later {
                    self.delay_refresh(now);
                } else {
                    self.retry_at = None;
                }
                let failures = self.backoff.reset();
                let lifetime = token.expires_at.map(|at| at.saturating_duration_since(now));
                let refresh_in = cached
                    .refresh_at
                    .map(|at| at.saturating_duration_since(now));
                (Ok(cached), Settled::Fetched(lifetime, refresh_in, failures))
            }
            Err(err) => {
                let settled = if let Some(valid) = self.usable(now) {
                    let valid_for = valid.expires_at.map(|at| at.saturating_duration_since(now));
                    // A token that never expires (one with a soft refresh time) waits the
                    // longest delay: there is no expiry to get closer to.
                    let retry_in = valid_for.map_or(MAX_RETRY_DELAY, |left| {
                        (left / 2).clamp(MIN_RETRY_DELAY, MAX_RETRY_DELAY)
                    });
                    self.retry_at = now.checked_add(retry_in);
                    let retry_in = Some(retry_in);
                    Settled::RefreshFailed(err.clone(), valid_for, retry_in)
                } else {
                    let (delay, failures) = self.backoff.failed(now, &err);
                    Settled::Failed(err.clone(), delay, failures)
                };
                (Err(err), settled)
            }
        }
    }
}

/// What [`State::settle`] did, to report once the lock is released.
enum Settled {
    /// The token's lifetime, when its refresh starts (if they end), and the failures before
    /// this success.
    Fetched(Option<Duration>, Option<Duration>, u32),
    RefreshFailed(Error, Option<Duration>, Option<Duration>),
    Failed(Error, Duration, u32),
}

impl Settled {
    fn report(&self, flight: u64) {
        match self {
            Self::Fetched(lifetime, refresh_in, failures) => {
                trace::fetch_succeeded(flight, *lifetime, *refresh_in);
                if *failures > 0 {
                    trace::recovered(flight, *failures);
                }
            }
            Self::RefreshFailed(err, valid_for, retry_in) => {
                trace::refresh_failed(flight, err, *valid_for, *retry_in);
            }
            Self::Failed(err, delay, failures) => {
                trace::fetch_failed(flight, err);
                trace::backoff_entered(*failures, *delay);
            }
        }
    }
}

/// What to do once the lock is released: end an abandoned flight (waking its waiters and
/// stopping its task) and report events, so that no waker or `tracing` subscriber ever runs
/// while the cache is locked.
#[derive(Default)]
#[must_use]
struct Later {
    abandoned: Option<(InFlight, Duration)>,
    started: Option<(u64, Reason)>,
}

impl Later {
    fn run(self) {
        if let Some((flight, running)) = self.abandoned {
            trace::fetch_abandoned(flight.id, flight.why_overdue(), running);
            flight.end(None, true);
        }
        if let Some((id, reason)) = self.started {
            trace::fetch_started(id, reason);
        }
    }
}

pub(crate) enum Lookup {
    Ready(HeaderValue, Ticket),
    /// No usable token (or a refresh that has to run inside the request): call
    /// [`TokenCache::acquire`].
    Wait,
}

/// What a request waiting for a token does next.
enum Step {
    Done(Outcome),
    /// Wait for flight `id`.
    Join(u64, watch::Receiver<Option<Outcome>>),
    /// Start this flight on the runtime, and wait for it.
    Spawn(Handle, Flight, watch::Receiver<Option<Outcome>>),
    /// Drive this flight in the request (there is no runtime), and wait for it.
    Inline(Flight, watch::Receiver<Option<Outcome>>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A request that needs a token: a usable one will do.
    Acquire,
    /// `refresh()`: a token newer than generation `newer_than`, whatever is cached, ignoring
    /// the backoff.
    Refresh { newer_than: u64 },
}

impl TokenCache {
    pub(crate) fn new(
        source: Box<dyn TokenSource>,
        refresh_before: Duration,
        fetch_timeout: Duration,
        header: HeaderName,
    ) -> Self {
        let shared = Arc::new(Shared {
            published: Published {
                epoch: AtomicU64::new(0),
            },
            id: ticket::next_id(),
            source,
            refresh_before,
            fetch_timeout,
            header,
            state: RwLock::new(State::default()),
            runtimes: Runtimes::default(),
        });
        ticket::join(&shared);
        Self { shared }
    }

    pub(crate) fn refresh_before(&self) -> Duration {
        self.shared.refresh_before
    }

    pub(crate) fn fetch_timeout(&self) -> Duration {
        self.shared.fetch_timeout
    }

    #[inline]
    fn ticket(&self, generation: u64) -> Ticket {
        Ticket {
            cache: self.shared.id,
            generation,
        }
    }

    /// The hot path: a usable token now, starting a background refresh if it is due.
    #[inline(always)]
    pub(crate) fn lookup(&self) -> Lookup {
        // Writers move the epoch after changing the state, under the write lock: a copy taken
        // at this epoch is the state now, or just before a write still under way (as a read
        // lock taken just before it would have seen).
        let epoch = self.shared.published.epoch.load(Ordering::Acquire);
        match local::first_ready(self.shared.id, epoch) {
            Some((value, generation)) => Lookup::Ready(value, self.ticket(generation)),
            None => self.lookup_local(epoch),
        }
    }

    /// The rest of the hot path: another slot of this thread's copies, a copy to take, a clock
    /// to read, or a look at the state.
    #[inline(never)]
    fn lookup_local(&self, epoch: u64) -> Lookup {
        let fast = local::with(self.shared.id, epoch, |hot| self.fast(hot))
            .unwrap_or_else(|| self.fast(&self.copy_hot()));
        match fast {
            Ok(lookup) => lookup,
            Err(now) => self.lookup_slow(now),
        }
    }

    /// What the hot path decides from `hot` alone: `Err(now)` if it must look at the state.
    #[inline(always)]
    fn fast(&self, hot: &Option<Hot>) -> Result<Lookup, Instant> {
        let Some(hot) = hot else {
            return Ok(Lookup::Wait);
        };
        // A token that never expires and needs no refresh, as things stand, needs no clock.
        if let Some(until) = hot.until {
            let now = Instant::now();
            if now >= until {
                return Err(now);
            }
        }
        Ok(Lookup::Ready(
            hot.value.clone(),
            self.ticket(hot.generation),
        ))
    }

    /// This thread's copy of what the hot path reads, taken now.
    #[cold]
    fn copy_hot(&self) -> Option<Hot> {
        let (epoch, hot) = {
            let st = self.shared.read();
            // Read under the read lock, the epoch is the one of what is read.
            let epoch = self.shared.published.epoch.load(Ordering::Relaxed);
            (epoch, st.hot())
        };
        local::put(self.shared.id, epoch, hot)
    }

    /// The token expired (wait for a new one), or it is time to look into a refresh (in the
    /// refresh window, past a retry delay, or with the flight in progress overdue): keep using
    /// the valid token, and start a refresh in the background if it is still due under the
    /// lock.
    #[cold]
    fn lookup_slow(&self, now: Instant) -> Lookup {
        let Ok(handle) = Handle::try_current() else {
            // No runtime to run it on: the request refreshes inline.
            return Lookup::Wait;
        };
        let timer = self.shared.runtimes.has_timer(&handle);
        let mut later = Later::default();
        let mut st = self.shared.write();
        st.abandon_overdue(now, &mut later);
        let Some(c) = st.usable(now).cloned() else {
            drop(st);
            later.run();
            return Lookup::Wait;
        };
        let flight = (timer && c.wants_refresh(now) && st.may_start_refresh(now))
            .then(|| st.begin(&self.shared, now, Reason::Refresh, &mut later).0);
        drop(st);
        later.run();
        if let Some(flight) = flight {
            self.shared.spawn(&handle, flight);
        }
        // Without a timer on this runtime no refresh starts here; the token is used until it
        // expires, and then this runtime's requests get `InvalidConfig`.
        Lookup::Ready(c.value, self.ticket(c.generation))
    }

    /// Wait for a token: join the fetch in flight, or start one. With no tokio runtime the
    /// request drives the fetch itself. Never waits longer than the fetch timeout.
    pub(crate) async fn acquire(&self) -> Result<(HeaderValue, Ticket), Error> {
        let c = self.obtain(Mode::Acquire).await?;
        Ok((c.value, self.ticket(c.generation)))
    }

    /// Fetch a new token now (joining a fetch in flight), whatever is cached, ignoring the
    /// backoff.
    pub(crate) async fn refresh(&self) -> Result<(), Error> {
        let newer_than = self.shared.read().generations;
        self.obtain(Mode::Refresh { newer_than }).await.map(drop)
    }

    /// Forget the cached token, and whatever a fetch already in flight brings (it was asked
    /// for before): the next request fetches a new one. Requests waiting on that fetch start
    /// over.
    pub(crate) fn invalidate(&self) {
        let mut st = self.shared.write();
        st.current = None;
        st.retry_at = None;
        let stale = st.flight.take();
        drop(st);
        if let Some(flight) = stale {
            flight.end(None, true);
        }
        trace::invalidated_by_caller();
    }

    async fn obtain(&self, mode: Mode) -> Result<Cached, Error> {
        let runtime = Handle::try_current().ok();
        let timer = runtime
            .as_ref()
            .is_some_and(|handle| self.shared.runtimes.has_timer(handle));
        let clock = if timer { Clock::Tokio } else { Clock::Thread };
        // One deadline for the whole wait, however many flights it sees end under it.
        let mut deadline = std::pin::pin!(Deadline::after(self.shared.fetch_timeout, clock));
        let mut cancelled = 0;
        loop {
            let step = self.step(mode, runtime.as_ref(), timer);
            let (id, rx, inline) = match step {
                Step::Done(outcome) => return outcome,
                Step::Join(id, rx) => (id, rx, None),
                Step::Spawn(handle, flight, rx) => {
                    let id = flight.id;
                    self.shared.spawn(&handle, flight);
                    (id, rx, None)
                }
                Step::Inline(flight, rx) => (flight.id, rx, Some(flight)),
            };
            let outcome = self.wait(id, rx, inline, deadline.as_mut()).await;
            match outcome {
                // A waiter polled late may find its token expired meanwhile: never send that.
                Some(Ok(c)) if c.usable(Instant::now()) => return Ok(c),
                Some(Ok(_)) => {
                    cancelled += 1;
                    if cancelled >= MAX_CANCELLED_FLIGHTS {
                        return Err(Error::token_expired_before_use());
                    }
                }
                Some(Err(err)) => {
                    // A failed refresh keeps a still-valid token for requests.
                    if matches!(mode, Mode::Acquire) {
                        if let Some(c) = self.shared.read().usable(Instant::now()) {
                            return Ok(c.clone());
                        }
                    }
                    return Err(err);
                }
                // The flight ended with no outcome (cancelled, or abandoned as overdue):
                // start over, and let one of the waiters fetch.
                None => {
                    cancelled += 1;
                    if cancelled >= MAX_CANCELLED_FLIGHTS {
                        return Err(Error::token_fetch_cancelled());
                    }
                }
            }
        }
    }

    /// Wait for flight `id`'s outcome (driving it first if it is `inline`), until `deadline`:
    /// then the flight is timed out for every waiter, unless it ended just then. `None` if it
    /// ended with no outcome (cancelled, or abandoned as overdue).
    async fn wait(
        &self,
        id: u64,
        mut rx: watch::Receiver<Option<Outcome>>,
        inline: Option<Flight>,
        mut deadline: Pin<&mut Deadline>,
    ) -> Option<Outcome> {
        let peek = rx.clone();
        let mut waiting = std::pin::pin!(async move {
            if let Some(flight) = inline {
                // No deadline of its own: this request's bounds it.
                flight.run(None).await;
            }
            rx.wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|o| o.clone())
        });
        std::future::poll_fn(|cx| {
            if let Poll::Ready(outcome) = waiting.as_mut().poll(cx) {
                return Poll::Ready(outcome);
            }
            if deadline.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // If the flight itself has run for the fetch timeout, time it out for every
            // waiter, while an inline one is still alive here (dropping it first would end it
            // with no outcome). A younger flight (this request started over and joined a newer
            // one) is left alone: only this request has waited long enough.
            let timeout = timeout_error(self.shared.fetch_timeout);
            let outcome = self
                .shared
                .time_out(id)
                .or_else(|| peek.borrow().clone())
                .unwrap_or(Err(timeout));
            Poll::Ready(Some(outcome))
        })
        .await
    }

    /// Decide, under the lock, what a waiting request does next.
    fn step(&self, mode: Mode, runtime: Option<&Handle>, timer: bool) -> Step {
        let now = Instant::now();
        let mut later = Later::default();
        let step = {
            let mut st = self.shared.write();
            self.decide(&mut st, now, mode, runtime, timer, &mut later)
        };
        later.run();
        if let Step::Done(Err(err)) = &step {
            if err.kind() == ErrorKind::InvalidConfig {
                trace::no_timer();
            }
        }
        step
    }

    fn decide(
        &self,
        st: &mut State,
        now: Instant,
        mode: Mode,
        runtime: Option<&Handle>,
        timer: bool,
        later: &mut Later,
    ) -> Step {
        st.abandon_overdue(now, later);
        let reason = match (mode, st.usable(now)) {
            (Mode::Acquire, Some(c)) => {
                // The refresh is due and there is no runtime to run it on (`lookup` spawns it
                // where there is one): this request refreshes inline.
                if runtime.is_some() || !(c.wants_refresh(now) && st.may_start_refresh(now)) {
                    return Step::Done(Ok(c.clone()));
                }
                Reason::Refresh
            }
            // `refresh()` started over after a flight ended with no outcome: a token fetched
            // since it was called will do.
            (Mode::Refresh { newer_than }, Some(c)) if c.generation > newer_than => {
                return Step::Done(Ok(c.clone()));
            }
            (Mode::Refresh { .. }, _) => Reason::Requested,
            (Mode::Acquire, None) => Reason::NoToken,
        };
        if let Some(flight) = &st.flight {
            return Step::Join(flight.id, flight.subscribe());
        }
        if matches!(reason, Reason::NoToken) {
            if let Some(err) = st.backoff.holding(now) {
                return Step::Done(Err(err.clone()));
            }
        }
        match runtime {
            Some(handle) if timer => {
                let (flight, rx) = st.begin(&self.shared, now, reason, later);
                Step::Spawn(handle.clone(), flight, rx)
            }
            Some(_) => Step::Done(Err(no_timer_error())),
            None => {
                let (flight, rx) = st.begin(&self.shared, now, reason, later);
                Step::Inline(flight, rx)
            }
        }
    }
}

fn no_timer_error() -> Error {
    Error::runtime_without_timer()
}

/// The write lock on the state. Whatever a holder changes, the hot path learns of it when the
/// lock is released: a change to what it reads moves the epoch first, still under the lock, so
/// no write can be missed and epochs follow the order of writes.
struct Write<'a> {
    st: RwLockWriteGuard<'a, State>,
    published: &'a Published,
}

impl Deref for Write<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        &self.st
    }
}

impl DerefMut for Write<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.st
    }
}

impl Drop for Write<'_> {
    fn drop(&mut self) {
        let key = self.st.hot_key();
        if key != self.st.published {
            self.st.published = key;
            self.published.epoch.fetch_add(1, Ordering::Release);
        }
    }
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        // Nothing panics while holding the lock, but a poisoned lock must not panic us either.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state, to change: what the hot path reads is published again when the guard drops.
    fn write(&self) -> Write<'_> {
        Write {
            st: self.state.write().unwrap_or_else(PoisonError::into_inner),
            published: &self.published,
        }
    }

    /// Run `flight` on `handle`'s runtime, bounded by the fetch timeout on its clock.
    fn spawn(self: &Arc<Self>, handle: &Handle, flight: Flight) {
        let id = flight.id;
        // Spawned outside the lock: a runtime shutting down drops the task at once, and its
        // `Drop` takes the lock.
        let task = handle.spawn(flight.run(Some(Clock::Tokio)));
        let mut st = self.write();
        if let Some(entry) = st.flight.as_mut().filter(|f| f.id == id) {
            entry.set_task(task.abort_handle());
        }
    }

    /// End flight `id` with `fetched`, if it is still in progress: store the result, publish
    /// it to the waiters, and (for a waiter timing it out) stop its task. Returns the outcome
    /// it published, `None` if the flight had already ended.
    fn complete(&self, id: u64, fetched: Result<Token, Error>, stop_task: bool) -> Option<Outcome> {
        self.end_flight(id, |_| true, fetched, stop_task)
    }

    /// A waiter's deadline passed: time flight `id` out for everyone if it has run for the
    /// fetch timeout itself. Returns the outcome it published.
    fn time_out(&self, id: u64) -> Option<Outcome> {
        let now = Instant::now();
        self.end_flight(
            id,
            |flight| flight.running(now) >= self.fetch_timeout,
            Err(timeout_error(self.fetch_timeout)),
            true,
        )
    }

    fn end_flight(
        &self,
        id: u64,
        only_if: impl FnOnce(&InFlight) -> bool,
        fetched: Result<Token, Error>,
        stop_task: bool,
    ) -> Option<Outcome> {
        let now = Instant::now();
        let fetched = fetched.and_then(|token| {
            let header = token.credential.header_name();
            if *header == self.header {
                Ok(token)
            } else {
                Err(Error::credential_for_other_header(&self.header, header))
            }
        });
        let (flight, outcome, settled) = {
            let mut st = self.write();
            // Already ended by someone else, whose outcome stands.
            if !st.flight.as_ref().is_some_and(|f| f.id == id && only_if(f)) {
                return None;
            }
            let flight = st.take_flight(id)?;
            let (outcome, settled) = st.settle(fetched, now, self.refresh_before);
            (flight, outcome, settled)
        };
        flight.end(Some(&outcome), stop_task);
        settled.report(id);
        Some(outcome)
    }

    /// Flight `id` was dropped before it finished: its waiters start over. A refresh that keeps
    /// being cancelled (a runtime per call in a sync wrapper) is spaced out as if it failed.
    fn cancel(&self, id: u64) {
        let now = Instant::now();
        let flight = {
            let mut st = self.write();
            let flight = st.take_flight(id);
            if flight.is_some() && st.usable(now).is_some() {
                st.delay_refresh(now);
            }
            flight
        };
        if let Some(flight) = flight {
            flight.end(None, false);
        }
    }
}

/// When to start refreshing `token`, fetched at `now`: the window before its expiry, or its
/// soft refresh time (no sooner than [`MIN_SOFT_REFRESH`]), whichever comes first.
fn refresh_time(now: Instant, token: &Token, refresh_before: Duration) -> Option<Instant> {
    let hard = token
        .expires_at
        .map(|at| refresh_at(now, at, refresh_before));
    let soft = token.refresh_at.map(|at| {
        now.checked_add(MIN_SOFT_REFRESH)
            .map_or(at, |soonest| at.max(soonest))
    });
    match (hard, soft) {
        (Some(hard), Some(soft)) => Some(hard.min(soft)),
        (hard, soft) => hard.or(soft),
    }
}

/// Start refreshing `min(refresh_before, lifetime / 2)` before expiry, so a short-lived token
/// is not refreshed on every request.
fn refresh_at(now: Instant, expires_at: Instant, refresh_before: Duration) -> Instant {
    let lifetime = expires_at.saturating_duration_since(now);
    let window = refresh_before.min(lifetime / 2);
    expires_at.checked_sub(window).unwrap_or(expires_at)
}

#[cfg(test)]
mod tests;

//! Timers for the token cache: which runtimes have tokio's timer, and deadlines that hold with
//! or without one.
//!
//! Every wait in the cache is bounded by the fetch timeout. On a tokio runtime with its timer
//! the deadline is a `tokio::time::Sleep`, so it follows tokio's clock (and `pause()` in
//! tests). Where there is no such timer (no runtime at all, as under
//! `futures::executor::block_on`, or a runtime built without `enable_time()` joining a fetch
//! that runs elsewhere), the deadline is a parked helper thread that wakes the waiter; it
//! exits as soon as the wait ends. This path is rare and needs no dependency.

use std::future::Future;
use std::panic::catch_unwind;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::Thread;
use std::time::Duration;

use tokio::runtime::{self, Handle};

/// How many runtimes without a timer one cache remembers (each is checked once; a process
/// rarely has more than one).
const REMEMBERED_RUNTIMES: usize = 16;

/// The runtimes seen without tokio's timer, by [`runtime::Id`]: timers belong to runtimes, so
/// one misconfigured runtime says nothing about another sharing the same layer.
#[derive(Default)]
pub(super) struct Runtimes {
    without_timer: Mutex<Vec<runtime::Id>>,
}

impl Runtimes {
    /// Whether `handle`'s runtime has tokio's timer.
    ///
    /// tokio has no public query for this: the check creates a `Sleep`, which panics on a
    /// runtime built without `enable_time()`. That panic is caught here and remembered per
    /// runtime, so it happens at most once per runtime; but it does go through the panic hook
    /// (one message on stderr), and under `panic = "abort"` it aborts the process. The
    /// documentation of `fetch_timeout` says so.
    pub(super) fn has_timer(&self, handle: &Handle) -> bool {
        let id = handle.id();
        let mut seen = self
            .without_timer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if seen.contains(&id) {
            return false;
        }
        // Enter the runtime whose timer is in question (usually the current one already).
        let ok = {
            let _entered = handle.enter();
            catch_unwind(|| drop(tokio::time::sleep(Duration::ZERO))).is_ok()
        };
        if !ok {
            if seen.len() >= REMEMBERED_RUNTIMES {
                seen.remove(0);
            }
            seen.push(id);
        }
        ok
    }
}

/// Which clock bounds a wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Clock {
    /// tokio's timer on the current runtime (and tokio's clock, pausable).
    Tokio,
    /// A helper thread on the system clock: no runtime, or one without a timer.
    Thread,
}

/// A deadline `after` from its creation, on `clock`.
pub(super) enum Deadline {
    Tokio(Pin<Box<tokio::time::Sleep>>),
    Thread(ThreadDeadline),
}

impl Deadline {
    pub(super) fn after(after: Duration, clock: Clock) -> Self {
        match clock {
            Clock::Tokio => Self::Tokio(Box::pin(tokio::time::sleep(after))),
            Clock::Thread => Self::Thread(ThreadDeadline::new(after)),
        }
    }
}

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.get_mut() {
            Self::Tokio(sleep) => sleep.as_mut().poll(cx),
            Self::Thread(thread) => thread.poll(cx),
        }
    }
}

/// `Some(output)` if `future` finishes first, `None` if `deadline` passes first.
pub(super) async fn before<F: Future, D: Future<Output = ()>>(
    future: F,
    deadline: D,
) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut deadline = std::pin::pin!(deadline);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        deadline.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// A deadline kept by a helper thread that sleeps (parked) until it passes, then wakes the
/// waiter. Dropped early, it wakes the thread, which exits.
pub(super) struct ThreadDeadline {
    after: Duration,
    started: Option<Started>,
}

struct Started {
    shared: Arc<ThreadShared>,
    /// `None` if no thread could be spawned: the deadline then counts as passed.
    thread: Option<Thread>,
}

#[derive(Default)]
struct ThreadShared {
    passed: AtomicBool,
    dropped: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl ThreadDeadline {
    fn new(after: Duration) -> Self {
        Self {
            after,
            started: None,
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let after = self.after;
        let started = self.started.get_or_insert_with(|| {
            let shared = Arc::new(ThreadShared::default());
            let for_thread = Arc::clone(&shared);
            let thread = std::thread::Builder::new()
                .name("tower-client-headers-deadline".into())
                .spawn(move || {
                    let start = std::time::Instant::now();
                    loop {
                        if for_thread.dropped.load(Ordering::Acquire) {
                            return;
                        }
                        let elapsed = start.elapsed();
                        if elapsed >= after {
                            break;
                        }
                        std::thread::park_timeout(after - elapsed);
                    }
                    for_thread.passed.store(true, Ordering::Release);
                    let waker = for_thread
                        .waker
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .take();
                    if let Some(waker) = waker {
                        waker.wake();
                    }
                })
                .ok()
                .map(|handle| handle.thread().clone());
            Started { shared, thread }
        });
        if started.thread.is_none() {
            // Could not keep the deadline: end the wait rather than risk it never ending.
            return Poll::Ready(());
        }
        *started
            .shared
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        if started.shared.passed.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for ThreadDeadline {
    fn drop(&mut self) {
        if let Some(Started {
            shared,
            thread: Some(thread),
        }) = &self.started
        {
            shared.dropped.store(true, Ordering::Release);
            thread.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_deadline_passes_without_any_runtime() {
        let start = std::time::Instant::now();
        let out = futures::executor::block_on(before(
            std::future::pending::<()>(),
            Deadline::after(Duration::from_millis(20), Clock::Thread),
        ));
        assert_eq!(out, None);
        assert!(start.elapsed() >= Duration::from_millis(20));
        let out = futures::executor::block_on(before(
            async { 7 },
            Deadline::after(Duration::from_secs(3600), Clock::Thread),
        ));
        assert_eq!(out, Some(7));
    }

    #[test]
    fn timers_are_judged_per_runtime() {
        let without = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let with = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let runtimes = Runtimes::default();
        assert!(!runtimes.has_timer(without.handle()));
        // Remembered: not checked (nor panicking) again.
        assert!(!runtimes.has_timer(without.handle()));
        assert!(runtimes.has_timer(with.handle()));
        assert!(!runtimes.has_timer(without.handle()));
    }
}

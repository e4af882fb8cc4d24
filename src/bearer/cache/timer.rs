//! Timers for the token cache: which runtimes have tokio's timer, and deadlines that hold with
//! or without one.
//!
//! Every wait in the cache is bounded by the fetch timeout. On a tokio runtime with its timer
//! the deadline is a `tokio::time::Sleep`, so it follows tokio's clock (and `pause()` in
//! tests). Every deadline is also kept on the system clock by one shared helper thread, for
//! waits with no tokio timer (no runtime at all, as under `futures::executor::block_on`, or a
//! runtime built without `enable_time()`) and for runtimes that are entered but not driven.
//! The thread starts on first use, sleeps on a condition variable and needs no dependency.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::panic::catch_unwind;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::runtime::{self, Handle};

/// How many runtimes one cache remembers the timer check of (each is checked once while
/// remembered; a process rarely has more than a few).
const REMEMBERED_RUNTIMES: usize = 16;

/// Which runtimes have tokio's timer, by [`runtime::Id`]: timers belong to runtimes, so one
/// misconfigured runtime says nothing about another sharing the same layer.
#[derive(Default)]
pub(super) struct Runtimes {
    seen: Mutex<Vec<(runtime::Id, bool)>>,
}

impl Runtimes {
    /// Whether `handle`'s runtime has tokio's timer.
    ///
    /// tokio has no public query for this: the check creates a `Sleep`, which panics on a
    /// runtime built without `enable_time()`. That panic is caught here and the answer
    /// remembered per runtime, so it happens once per runtime; but it does go through the
    /// panic hook (one message on stderr), and under `panic = "abort"` it aborts the process.
    /// The documentation of `fetch_timeout` says so.
    pub(super) fn has_timer(&self, handle: &Handle) -> bool {
        let id = handle.id();
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, timer)) = seen.iter().find(|(seen, _)| *seen == id) {
            return *timer;
        }
        // Enter the runtime whose timer is in question (usually the current one already).
        let timer = {
            let _entered = handle.enter();
            catch_unwind(|| drop(tokio::time::sleep(Duration::ZERO))).is_ok()
        };
        if seen.len() >= REMEMBERED_RUNTIMES {
            seen.remove(0);
        }
        seen.push((id, timer));
        timer
    }
}

/// Which clock bounds a wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Clock {
    /// tokio's timer on the current runtime (and tokio's clock, pausable), backed by the
    /// deadline thread on the system clock in case the runtime is not being driven.
    Tokio,
    /// The deadline thread on the system clock alone: no runtime, or one without a timer.
    Thread,
}

/// A deadline `after` from its creation, on `clock`: whichever of its timers fires first.
///
/// A current runtime with a timer is not proof that anyone drives it (a runtime entered with
/// `Handle::enter()` around `futures::executor::block_on`, or `block_on` inside one of its
/// own tasks): the deadline thread keeps the bound then. With tokio's clock paused (tests),
/// tokio's timer fires first, as virtual time runs ahead of real time.
pub(super) struct Deadline {
    tokio: Option<Pin<Box<tokio::time::Sleep>>>,
    thread: ThreadDeadline,
}

impl Deadline {
    pub(super) fn after(after: Duration, clock: Clock) -> Self {
        Self {
            tokio: match clock {
                Clock::Tokio => Some(Box::pin(tokio::time::sleep(after))),
                Clock::Thread => None,
            },
            thread: ThreadDeadline::new(after),
        }
    }
}

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Some(sleep) = &mut this.tokio {
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        this.thread.poll(cx)
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

/// A deadline on the system clock, kept by one shared thread for the whole process (started
/// on first use). Only waits for a token fetch use it, so it sleeps almost always.
struct ThreadDeadline {
    after: Duration,
    entry: Option<Arc<Entry>>,
}

#[derive(Default)]
struct Entry {
    passed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

/// The deadlines the thread watches, soonest first. Entries whose wait ended are dropped
/// (only a `Weak` is kept here).
#[derive(Default)]
struct Deadlines {
    queue: BinaryHeap<Reverse<(std::time::Instant, u64)>>,
    entries: HashMap<u64, Weak<Entry>>,
    next: u64,
}

struct DeadlineThread {
    deadlines: Mutex<Deadlines>,
    changed: Condvar,
}

/// The shared thread, or `None` if it could not be started.
fn deadline_thread() -> Option<&'static DeadlineThread> {
    static THREAD: OnceLock<Option<&'static DeadlineThread>> = OnceLock::new();
    *THREAD.get_or_init(|| {
        let shared: &'static DeadlineThread = Box::leak(Box::new(DeadlineThread {
            deadlines: Mutex::new(Deadlines::default()),
            changed: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("tower-client-headers-deadlines".into())
            .spawn(move || shared.run())
            .ok()
            .map(|_| shared)
    })
}

impl DeadlineThread {
    fn run(&self) {
        let mut deadlines = self
            .deadlines
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            let now = std::time::Instant::now();
            while let Some(Reverse((at, id))) = deadlines.queue.peek().copied() {
                if at > now {
                    break;
                }
                deadlines.queue.pop();
                if let Some(entry) = deadlines.entries.remove(&id).and_then(|e| e.upgrade()) {
                    entry.passed.store(true, Ordering::Release);
                    let waker = entry
                        .waker
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .take();
                    if let Some(waker) = waker {
                        waker.wake();
                    }
                }
            }
            deadlines = match deadlines.queue.peek() {
                Some(Reverse((at, _))) => {
                    let wait = at.saturating_duration_since(now);
                    self.changed
                        .wait_timeout(deadlines, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .changed
                    .wait(deadlines)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }

    fn add(&self, at: std::time::Instant, entry: &Arc<Entry>) {
        let mut deadlines = self
            .deadlines
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        deadlines.next += 1;
        let id = deadlines.next;
        let soonest = deadlines
            .queue
            .peek()
            .is_none_or(|Reverse((first, _))| at < *first);
        deadlines.queue.push(Reverse((at, id)));
        deadlines.entries.insert(id, Arc::downgrade(entry));
        drop(deadlines);
        if soonest {
            self.changed.notify_one();
        }
    }
}

impl ThreadDeadline {
    fn new(after: Duration) -> Self {
        Self { after, entry: None }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let entry = match &self.entry {
            Some(entry) => entry,
            None => {
                let Some(thread) = deadline_thread() else {
                    // No thread to keep the deadline: end the wait rather than risk it never
                    // ending.
                    return Poll::Ready(());
                };
                let entry = Arc::new(Entry::default());
                // Beyond the end of time, it never passes.
                if let Some(at) = std::time::Instant::now().checked_add(self.after) {
                    thread.add(at, &entry);
                }
                self.entry.insert(entry)
            }
        };
        *entry.waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        if entry.passed.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
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
        assert!(runtimes.has_timer(with.handle()));
    }

    #[test]
    fn many_thread_deadlines_pass_in_order_and_ended_waits_are_forgotten() {
        let short = std::thread::spawn(|| {
            futures::executor::block_on(before(
                std::future::pending::<()>(),
                Deadline::after(Duration::from_millis(30), Clock::Thread),
            ))
        });
        // A long wait that ends early does not hold up the short one.
        let long = futures::executor::block_on(before(
            async { 1 },
            Deadline::after(Duration::from_secs(3600), Clock::Thread),
        ));
        assert_eq!(long, Some(1));
        assert_eq!(short.join().expect("thread"), None);
        let waits: Vec<_> = (0..100)
            .map(|i| {
                std::thread::spawn(move || {
                    futures::executor::block_on(before(
                        std::future::pending::<()>(),
                        Deadline::after(Duration::from_millis(10 + i % 7), Clock::Thread),
                    ))
                })
            })
            .collect();
        for wait in waits {
            assert_eq!(wait.join().expect("thread"), None);
        }
    }
}

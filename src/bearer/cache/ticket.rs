//! Which cached token a request carried, so that a rejection (a `401`) drops exactly that one.
//!
//! A ticket is two numbers: the cache's id and the token's generation. It holds no reference
//! to the cache, so a request carrying the cached token costs no reference count (which every
//! core would otherwise bump on the same cache line). The rare rejection finds its cache by id
//! in a process-wide map of weak references, which each cache joins when it is made and
//! leaves when it is dropped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::Shared;
use crate::trace;

/// Every cache by id. Ids are never reused, so a ticket never reaches another cache.
static CACHES: Mutex<BTreeMap<u64, Weak<Shared>>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A new cache's id, under which `join` puts it.
pub(super) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Make `shared` findable by its id (once, when it is made).
pub(super) fn join(shared: &Arc<Shared>) {
    caches().insert(shared.id, Arc::downgrade(shared));
}

/// Forget cache `id` (when it is dropped).
pub(super) fn leave(id: u64) {
    caches().remove(&id);
}

pub(super) fn caches() -> std::sync::MutexGuard<'static, BTreeMap<u64, Weak<Shared>>> {
    // Nothing panics while holding the lock, but a poisoned lock must not panic us either.
    CACHES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which cached token a request carried, so that a `401` can invalidate exactly that one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticket {
    pub(super) cache: u64,
    pub(super) generation: u64,
}

impl Ticket {
    /// The server rejected this token: forget it, unless it was already replaced.
    pub(crate) fn invalidate(self) {
        // The map's lock is released before the cache is used (or dropped, if this was the
        // last reference: its `Drop` leaves the map).
        let found = caches().get(&self.cache).and_then(Weak::upgrade);
        let Some(shared) = found else {
            // Every layer and service of this cache is gone: nobody can send its token.
            return;
        };
        let mut st = shared.write();
        if st
            .current
            .as_ref()
            .is_some_and(|c| c.generation == self.generation)
        {
            st.current = None;
            st.retry_at = None;
            drop(st);
            trace::invalidated_by_response();
        }
    }
}

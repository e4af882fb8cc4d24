//! The hot path's per-thread copies of what it reads: the cached token and the instants that
//! decide whether a request may send it at once.
//!
//! A request that finds a usable token reads one atomic number, the cache's epoch, which moves
//! whenever the token or those instants change (under the cache's lock). If this thread's copy
//! was taken at that epoch, the request uses it: no lock, and no write to memory that another
//! core reads. Otherwise it takes the read lock once and copies the state.
//!
//! The copy includes the token's bytes: a `HeaderValue` clone is a reference count on its
//! bytes, and a count shared by every core is a cache line that bounces between them on every
//! request (and again when the request is dropped). Each thread's own copy keeps that count on
//! a line of its own. A new token is copied once per thread that sends it.
//!
//! A thread keeps copies for a few caches at a time (a process rarely has more layers with a
//! token source); beyond that they take turns, which costs a copy per turn, never a wrong
//! token. A copy lives until its thread takes a newer one for the same cache, gives its slot
//! to another cache, or exits.

use std::cell::RefCell;

use http::HeaderValue;
use tokio::time::Instant;

/// How many caches one thread keeps a copy for.
const SLOTS: usize = 4;

/// What the hot path needs of the cache's state.
#[derive(Clone)]
pub(super) struct Hot {
    pub(super) value: HeaderValue,
    pub(super) generation: u64,
    /// Until when the token can be sent with no look at the state: its expiry or when a
    /// request should look into starting a refresh, whichever comes first. `None`: for ever,
    /// as things stand.
    pub(super) until: Option<Instant>,
}

struct Slot {
    /// The cache's id; 0 (no cache has it): a free slot.
    cache: u64,
    epoch: u64,
    /// `None`: the cache had no token at `epoch`.
    hot: Option<Hot>,
}

const FREE: Slot = Slot {
    cache: 0,
    epoch: 0,
    hot: None,
};

struct Slots {
    slots: [Slot; SLOTS],
    /// The slot to give up next when all are taken.
    next: usize,
}

thread_local! {
    static LOCAL: RefCell<Slots> = const {
        RefCell::new(Slots {
            slots: [FREE; SLOTS],
            next: 0,
        })
    };
}

/// `f` of this thread's copy of cache `cache`'s state at `epoch` (`None` in it: the cache had
/// no token then). `None` if this thread has no such copy (or, while it exits, no
/// thread-local storage).
#[inline]
pub(super) fn with<R>(cache: u64, epoch: u64, f: impl FnOnce(&Option<Hot>) -> R) -> Option<R> {
    LOCAL
        .try_with(|local| {
            let local = local.try_borrow().ok()?;
            local
                .slots
                .iter()
                .find(|slot| slot.cache == cache && slot.epoch == epoch)
                .map(|slot| f(&slot.hot))
        })
        .ok()
        .flatten()
}

/// The common case, small enough to inline: this thread's first slot holds cache `cache`'s
/// state at `epoch`, with a token that can be sent now. Its value and generation.
#[inline]
pub(super) fn first_ready(cache: u64, epoch: u64) -> Option<(HeaderValue, u64)> {
    LOCAL
        .try_with(|local| {
            let local = local.try_borrow().ok()?;
            let slot = &local.slots[0];
            if slot.cache != cache || slot.epoch != epoch {
                return None;
            }
            let hot = slot.hot.as_ref()?;
            if hot.until.is_some_and(|until| Instant::now() >= until) {
                return None;
            }
            Some((hot.value.clone(), hot.generation))
        })
        .ok()
        .flatten()
}

/// Keep `hot`, cache `cache`'s state at `epoch`, as this thread's copy, and return it with the
/// token in this thread's copy of its bytes (when there is no thread-local storage left, as it
/// came).
pub(super) fn put(cache: u64, epoch: u64, mut hot: Option<Hot>) -> Option<Hot> {
    let _ = LOCAL.try_with(|local| {
        let Ok(mut local) = local.try_borrow_mut() else {
            return;
        };
        let local = &mut *local;
        let index = local
            .slots
            .iter()
            .position(|slot| slot.cache == cache)
            .or_else(|| local.slots.iter().position(|slot| slot.cache == FREE.cache))
            .unwrap_or_else(|| {
                let index = local.next % SLOTS;
                local.next = (index + 1) % SLOTS;
                index
            });
        if let Some(hot) = &mut hot {
            // The same token as in the copy this replaces keeps that copy's bytes.
            let kept = Some(&local.slots[index])
                .filter(|slot| slot.cache == cache)
                .and_then(|slot| slot.hot.as_ref())
                .filter(|old| old.generation == hot.generation)
                .map(|old| old.value.clone());
            hot.value = kept.unwrap_or_else(|| own_copy(&hot.value));
        }
        local.slots[index] = Slot {
            cache,
            epoch,
            hot: hot.clone(),
        };
    });
    hot
}

/// The same value in bytes of its own, sensitive if it was.
fn own_copy(value: &HeaderValue) -> HeaderValue {
    match HeaderValue::from_bytes(value.as_bytes()) {
        Ok(mut copy) => {
            copy.set_sensitive(value.is_sensitive());
            copy
        }
        // It was a valid value a moment ago; should that ever change, share it.
        Err(_) => value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hot(value: &'static str, generation: u64) -> Option<Hot> {
        let mut value = HeaderValue::from_static(value);
        value.set_sensitive(true);
        Some(Hot {
            value,
            generation,
            until: None,
        })
    }

    fn get(cache: u64, epoch: u64) -> Option<Option<Hot>> {
        with(cache, epoch, Clone::clone)
    }

    fn value_of(hot: &Option<Hot>) -> &[u8] {
        hot.as_ref().map_or(&[][..], |h| h.value.as_bytes())
    }

    // Each test runs on a thread of its own, so its thread-local slots start empty. Cache ids
    // here are far from the ones real caches get.
    const A: u64 = u64::MAX - 10;

    #[test]
    fn a_copy_is_found_only_at_its_epoch_and_keeps_sensitivity() {
        assert!(get(A, 1).is_none());
        let kept = put(A, 1, hot("Bearer one", 1));
        assert_eq!(value_of(&kept), b"Bearer one");
        let got = get(A, 1).expect("kept at epoch 1");
        assert_eq!(value_of(&got), b"Bearer one");
        assert!(got.as_ref().is_some_and(|h| h.value.is_sensitive()));
        assert!(get(A, 2).is_none(), "another epoch is not this copy");
        assert!(get(A + 1, 1).is_none(), "another cache is not this copy");
        // No token at epoch 2 is a copy too.
        assert!(put(A, 2, None).is_none());
        assert!(matches!(get(A, 2), Some(None)));
        assert!(get(A, 1).is_none(), "replaced");
    }

    #[test]
    fn a_new_epoch_of_the_same_token_keeps_its_bytes_and_a_new_token_does_not() {
        let first = put(A, 1, hot("Bearer one", 1)).expect("token");
        let same = put(A, 2, hot("Bearer one", 1)).expect("token");
        assert_eq!(
            first.value.as_bytes().as_ptr(),
            same.value.as_bytes().as_ptr(),
            "the same token keeps this thread's copy"
        );
        let original = hot("Bearer one", 1).expect("token");
        assert_ne!(
            first.value.as_bytes().as_ptr(),
            original.value.as_bytes().as_ptr(),
            "a copy of its own, not the shared bytes"
        );
        let next = put(A, 3, hot("Bearer two", 2)).expect("token");
        assert_eq!(next.value.as_bytes(), b"Bearer two");
    }

    #[test]
    fn more_caches_than_slots_take_turns_and_never_mix_tokens() {
        let caches: Vec<u64> = (0..(SLOTS as u64 + 3)).map(|i| A - 100 + i).collect();
        for round in 0..3 {
            for (i, &cache) in caches.iter().enumerate() {
                let epoch = round * 100 + i as u64;
                let hot = match get(cache, epoch) {
                    Some(hot) => hot,
                    None => put(cache, epoch, hot(TOKENS[i], i as u64)),
                };
                assert_eq!(value_of(&hot), TOKENS[i].as_bytes());
            }
        }
        // The last SLOTS caches are the ones kept.
        let kept = caches
            .iter()
            .enumerate()
            .filter(|&(i, &c)| get(c, 200 + i as u64).is_some())
            .count();
        assert_eq!(kept, SLOTS);
    }

    const TOKENS: [&str; 7] = [
        "Bearer a", "Bearer b", "Bearer c", "Bearer d", "Bearer e", "Bearer f", "Bearer g",
    ];
}

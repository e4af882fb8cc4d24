//! Heap allocations per request on the hot paths, counted by a wrapping global allocator.
//!
//! Allocation counts are deterministic, so unlike times they can be asserted. Every variant
//! sends the same freshly built request as the benches (`benches/common`), after a warm-up,
//! and is compared with the bare inner service, with the hand-written
//! `if !contains_key { insert }` loop and with tower-http's `AddAuthorization`.
//!
//! Everything is measured in one `#[test]` on one thread, and only that thread's allocations
//! are counted: the token cache's deadline thread, or a runtime's, may allocate at any moment.
#![allow(unsafe_code)]

#[path = "../benches/common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::Request;
use tower::Service;

use common::{call, inner, request, session_headers, wrap, HandLoop, SIZES};

/// `System`, counting every allocation and reallocation of the threads that ask for it.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether this thread's allocations are counted (a `const` thread-local: reading it
    /// allocates nothing).
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTED.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the contract.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const WARM_UP: usize = 16;
const REQUESTS: usize = 100;

/// Allocations (and reallocations) for `REQUESTS` requests through `svc`, request
/// construction included, after a warm-up.
fn allocations<S>(mut svc: S) -> usize
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..WARM_UP {
        black_box(call(&mut svc, request()));
    }
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..REQUESTS {
        black_box(call(&mut svc, request()));
    }
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

#[test]
fn hot_paths_allocate_no_more_than_the_alternatives() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    COUNTED.with(|c| c.set(true));

    let bare = allocations(inner());
    // Building the request allocates (its header map); the count must be stable.
    assert_eq!(
        bare,
        allocations(inner()),
        "allocation counts are deterministic"
    );
    assert!(bare > 0 && bare % REQUESTS == 0, "bare: {bare}");
    let mut report = format!("per {REQUESTS} requests: bare {bare}\n");

    for n in SIZES {
        let headers = session_headers(n);
        let hand_loop = allocations(HandLoop::new(inner(), &headers));
        let ours = allocations(wrap(&common::default_headers_layer(&headers), inner()));
        report += &format!("{n} session headers: hand loop {hand_loop}, DefaultHeaders {ours}\n");
        // The merge's only allocations are HeaderMap's own, cloning the prebuilt session
        // map (its index table and entry vector) and growing that vector once for the
        // request's own headers: a fixed count whatever the number of session headers.
        assert!(
            ours - bare <= 3 * REQUESTS,
            "DefaultHeaders with {n} headers: {ours} allocations, bare {bare}\n{report}"
        );
        // Up to 4 names the merge works in place, as the hand loop does: no more allocations.
        if n <= 4 {
            assert!(
                ours <= hand_loop,
                "{n} headers: {ours} > {hand_loop}\n{report}"
            );
        }
        // From 32 headers the hand loop grows the request's map several times; the clone
        // does not.
        if n >= 32 {
            assert!(
                ours <= hand_loop,
                "{n} headers: {ours} > {hand_loop}\n{report}"
            );
        }
    }

    let tower_http = allocations(wrap(&common::tower_http_auth_layer(), inner()));
    let fixed = allocations(wrap(&common::bearer_fixed_layer(), inner()));
    let mut cached_svc = wrap(&common::bearer_source_layer(), inner());
    rt.block_on(cached_svc.call(request()))
        .expect("the first fetch succeeds");
    let cached = allocations(cached_svc);
    report +=
        &format!("tower-http AddAuthorization {tower_http}, fixed {fixed}, cached {cached}\n");
    eprintln!("{report}");

    // Adding Authorization allocates nothing: not for tower-http, not for us.
    assert_eq!(tower_http, bare, "{report}");
    assert_eq!(fixed, bare, "fixed token\n{report}");
    assert_eq!(cached, bare, "cached token\n{report}");
}

//! Instruction counts per request, for confirming small differences on a noisy machine.
//!
//! Not a criterion bench: a plain loop per variant, meant to run under callgrind, which counts
//! only inside `measured` (after a warm-up outside it):
//!
//! ```text
//! cargo bench --bench callgrind --no-run
//! valgrind --tool=callgrind --toggle-collect='*measured*' --callgrind-out-file=cg.out \
//!     target/release/deps/callgrind-<hash> default_headers/8
//! callgrind_annotate cg.out | head    # total Ir / ITERS = instructions per request
//! ```
//!
//! Arguments: variant names (see `VARIANTS`); none runs every variant. `ITERS` (env) sets the
//! measured requests per variant (default 10000). Flags such as `--bench` are ignored.

mod common;

use std::hint::black_box;

use http::Request;
use tower::Service;

use common::{call, inner, request, session_headers, tower_http_stacked, wrap, HandLoop};

const VARIANTS: &[&str] = &[
    "bare",
    "hand_loop/1",
    "default_headers/1",
    "tower_http_multiple/1",
    "tower_http_stacked/1",
    "hand_loop/8",
    "default_headers/8",
    // The same layer, updated once (one value changed) after the service was built.
    "default_headers/8/updated",
    "tower_http_multiple/8",
    "tower_http_stacked/8",
    "hand_loop/32",
    "default_headers/32",
    "tower_http_multiple/32",
    "tower_http_stacked/32",
    "tower_http_auth",
    "fixed",
    "cached",
    "cached_expiring",
    // With the `retry` feature: `cached` behind tower's `Retry`.
    "retry_clone_only",
    "retry_unauthorized",
];

/// The only code callgrind counts: `iters` requests through `svc`.
#[inline(never)]
fn measured<S>(svc: &mut S, iters: u64)
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..iters {
        black_box(call(svc, request()));
    }
}

fn run<S>(mut svc: S, iters: u64)
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..100 {
        black_box(call(&mut svc, request()));
    }
    measured(&mut svc, iters);
}

fn run_variant(name: &str, iters: u64, rt: &tokio::runtime::Runtime) {
    let mut parts = name.splitn(3, '/');
    let kind = parts.next().unwrap_or(name);
    let n = parts
        .next()
        .map_or(0, |n| n.parse::<usize>().expect("a header count"));
    let updated = match parts.next() {
        None => false,
        Some("updated") => true,
        Some(other) => panic!("unknown variant suffix {other:?} in {name:?}"),
    };
    assert!(
        !updated || kind == "default_headers",
        "only default_headers has an updated variant, not {name:?}"
    );
    let headers = session_headers(n);
    match (kind, n) {
        ("default_headers", _) if updated => {
            let layer = common::default_headers_layer(&headers);
            let svc = wrap(&layer, inner());
            common::update_one_value(&layer);
            run(svc, iters)
        }
        ("bare", _) => run(inner(), iters),
        ("hand_loop", _) => run(HandLoop::new(inner(), &headers), iters),
        ("default_headers", _) => run(
            wrap(&common::default_headers_layer(&headers), inner()),
            iters,
        ),
        ("tower_http_multiple", _) => run(
            wrap(&common::tower_http_multiple_layer(&headers), inner()),
            iters,
        ),
        ("tower_http_stacked", 1) => run(tower_http_stacked!(inner(), &headers; 0), iters),
        ("tower_http_stacked", 8) => run(
            tower_http_stacked!(inner(), &headers; 0 1 2 3 4 5 6 7),
            iters,
        ),
        ("tower_http_stacked", 32) => run(
            tower_http_stacked!(inner(), &headers;
                0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15
                16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31),
            iters,
        ),
        ("tower_http_auth", _) => run(wrap(&common::tower_http_auth_layer(), inner()), iters),
        ("fixed", _) => run(wrap(&common::bearer_fixed_layer(), inner()), iters),
        ("cached" | "cached_expiring", _) => {
            let layer = if kind == "cached" {
                common::bearer_source_layer()
            } else {
                common::bearer_expiring_source_layer()
            };
            let mut svc = wrap(&layer, inner());
            rt.block_on(svc.call(request()))
                .expect("the first fetch succeeds");
            run(svc, iters)
        }
        #[cfg(feature = "retry")]
        ("retry_clone_only" | "retry_unauthorized", _) => {
            let mut svc = wrap(&common::bearer_source_layer(), inner());
            rt.block_on(svc.call(request()))
                .expect("the first fetch succeeds");
            if kind == "retry_clone_only" {
                run(tower::retry::Retry::new(common::CloneOnly, svc), iters)
            } else {
                let policy = tower_client_headers::RetryUnauthorized::new();
                run(tower::retry::Retry::new(policy, svc), iters)
            }
        }
        _ => panic!("unknown variant {name:?}; one of {VARIANTS:?}"),
    }
}

fn main() {
    let iters = std::env::var("ITERS")
        .ok()
        .map(|s| s.parse().expect("ITERS is a number"))
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let chosen: Vec<&str> = if named.is_empty() {
        VARIANTS.to_vec()
    } else {
        named.iter().map(String::as_str).collect()
    };
    for name in chosen {
        run_variant(name, iters, &rt);
    }
}

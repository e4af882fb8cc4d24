//! `DefaultHeadersLayer` against the alternatives a user has, every session header if-absent,
//! for the session shapes of `common::SHAPES`:
//!
//! - `1`, `8`, `32`: that many session headers, none already on the request (all are added);
//! - `8_with_accept`: 8 session headers, one of them `accept`, which the request carries too
//!   (the request's value wins, 7 are added): the shape of issue 15.
//!
//! The variants:
//!
//! - `bare`: the inner service alone (the baseline every overhead is measured from);
//! - `hand_loop`: `if !contains_key(name) { insert(name, value) }` per header, the floor;
//! - `default_headers`: this crate's `DefaultHeadersLayer` (and at 8, `default_headers/8/updated`:
//!   the same layer after one value was changed through its `SessionHandle`, once the service
//!   was built);
//! - `tower_http_stacked`: tower-http's `SetRequestHeader::if_not_present`, one per header;
//! - `tower_http_multiple`: tower-http's `SetMultipleRequestHeadersLayer::if_not_present`.
//!
//! Every iteration builds the same fresh request and polls the (ready) future once.

mod common;

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion};
use http::Request;
use tower::Service;

use common::{call, inner, request, session_of, tower_http_stacked, wrap, HandLoop, SHAPES};

fn bench_one<S>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, n: &str, mut svc: S)
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    group.bench_function(BenchmarkId::new(name, n), |b| {
        b.iter(|| call(&mut svc, request()))
    });
}

fn default_headers(c: &mut Criterion) {
    let mut group = c.benchmark_group("default_headers");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for n in SHAPES {
        let headers = session_of(n);
        bench_one(&mut group, "bare", n, inner());
        bench_one(&mut group, "hand_loop", n, HandLoop::new(inner(), &headers));
        bench_one(
            &mut group,
            "default_headers",
            n,
            wrap(&common::default_headers_layer(&headers), inner()),
        );
        if n.starts_with('8') {
            // The same session, changed once through its handle after the service was built.
            let layer = common::default_headers_layer(&headers);
            let mut svc = wrap(&layer, inner());
            common::update_one_value(&layer);
            group.bench_function(
                BenchmarkId::new("default_headers", format!("{n}/updated")),
                |b| b.iter(|| call(&mut svc, request())),
            );
        }
        bench_one(
            &mut group,
            "tower_http_multiple",
            n,
            wrap(&common::tower_http_multiple_layer(&headers), inner()),
        );
        match headers.len() {
            1 => bench_one(
                &mut group,
                "tower_http_stacked",
                n,
                tower_http_stacked!(inner(), &headers; 0),
            ),
            8 => bench_one(
                &mut group,
                "tower_http_stacked",
                n,
                tower_http_stacked!(inner(), &headers; 0 1 2 3 4 5 6 7),
            ),
            32 => bench_one(
                &mut group,
                "tower_http_stacked",
                n,
                tower_http_stacked!(inner(), &headers;
                    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15
                    16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31),
            ),
            _ => unreachable!("SHAPES have 1, 8 or 32 headers"),
        }
    }
    group.finish();
}

criterion_group!(benches, default_headers);
criterion_main!(benches);

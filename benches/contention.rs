//! The live session read across threads: 1 and 2 std threads, each driving its own clone of
//! one service for the same number of requests, for `DefaultHeaders` with 8 session headers and
//! for the bare inner service.
//!
//! The time reported is per request *per thread* (the wall time of one thread's share), and the
//! throughput is every thread's requests together. A read that bounced a cache line between
//! cores (a lock, a shared reference count) would make the 2-thread time grow; a contention-free
//! read keeps it flat, as the bare service's is. Each service clone reads the layer's
//! `ArcSwap` through its own `arc_swap::Cache`, so the only shared memory a request touches is
//! the pointer it compares, which no request writes.
//!
//! On a machine shared with other work, compare 1 with 2 threads against the bare service's own
//! 1-to-2 change in the same run.

mod common;

use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use http::Request;
use tower::Service;

use common::{call, inner, request, session_headers, wrap};

/// `threads` threads, each sending `iters` requests through its own clone of `svc`; the wall
/// time from a common start until the last thread finishes.
fn run<S>(svc: &S, threads: usize, iters: u64) -> Duration
where
    S: Service<Request<()>> + Clone + Send,
    S::Error: std::fmt::Debug,
{
    let start = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let mut svc = svc.clone();
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    for _ in 0..iters {
                        std::hint::black_box(call(&mut svc, request()));
                    }
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        for worker in workers {
            worker.join().expect("a bench thread panicked");
        }
        began.elapsed()
    })
}

fn contention(c: &mut Criterion) {
    let mut group = c.benchmark_group("contention");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let layer = common::default_headers_layer(&session_headers(8));
    let default_headers = wrap(&layer, inner());
    let bare = inner();
    for threads in [1, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(BenchmarkId::new("bare", threads), |b| {
            b.iter_custom(|iters| run(&bare, threads, iters))
        });
        group.bench_function(BenchmarkId::new("default_headers_8", threads), |b| {
            b.iter_custom(|iters| run(&default_headers, threads, iters))
        });
    }
    group.finish();
}

criterion_group!(benches, contention);
criterion_main!(benches);

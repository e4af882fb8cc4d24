//! How each path scales across cores: throughput (requests per second, criterion's
//! elements/s) on a multi-threaded tokio runtime with 1, 2 and 4 worker threads, one task per
//! worker, each task sending its share of the requests through its own clone of one service
//! (so every clone shares the layer's state, as the clones of a real client do).
//!
//! - `bare`: the inner service alone (how far the machine itself scales);
//! - `default_headers/8_with_accept`: `DefaultHeadersLayer` with the session of shape
//!   `8_with_accept` (8 names, one of them, `accept`, already on the request);
//! - `default_headers/8`: 8 names the request does not have, the live session never updated;
//! - `default_headers/8/updated`: the same, its session updated once (one value changed) after
//!   the service was built (every clone then reads the new snapshot through its own
//!   `arc_swap::Cache`);
//! - `fixed`: `BearerAuthLayer::new(token)`;
//! - `cached`: `BearerAuthLayer::from_source(..)` with its (never-expiring) token cached.
//!
//! With 2 cores, 2 workers can at best double the throughput of 1; 4 workers show what
//! oversubscription costs. For interleaved medians over many rounds (a shared machine drifts
//! between criterion's benchmarks), `benches/rounds.rs` runs the same with `WORKERS=1,2,4`.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use http::Request;
use tokio::runtime::Runtime;
use tower::Service;

use common::{request, Runner};

/// The paths measured, as `common::run_variant` names them, and their names here.
const PATHS: [(&str, &str); 6] = [
    ("bare", "bare"),
    (
        "default_headers/8_with_accept",
        "default_headers/8_with_accept",
    ),
    ("default_headers/8", "default_headers/8"),
    ("default_headers/8/updated", "default_headers/8/updated"),
    ("fixed", "fixed"),
    ("cached", "cached"),
];

const WORKERS: [u64; 3] = [1, 2, 4];

/// Run `iters` requests split over `tasks` tasks, each with its own clone of `svc`, and return
/// the wall time scaled to exactly `iters` requests.
fn run_tasks<S>(rt: &Runtime, svc: &S, tasks: u64, iters: u64) -> Duration
where
    S: Service<Request<()>> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send,
    S::Error: std::fmt::Debug + Send,
{
    common::run_split(rt, tasks, iters, |per_task| {
        let mut svc = svc.clone();
        async move {
            for _ in 0..per_task {
                black_box(svc.call(request()).await.expect("request succeeds"));
            }
        }
    })
}

struct Bench<'a, 'g> {
    group: &'a mut BenchmarkGroup<'g, WallTime>,
    rt: &'a Runtime,
    workers: u64,
    name: &'a str,
}

impl Runner for Bench<'_, '_> {
    fn run<S>(&mut self, svc: S)
    where
        S: Service<Request<()>> + Clone + Send + 'static,
        S::Future: Send,
        S::Response: Send,
        S::Error: std::fmt::Debug + Send,
    {
        let (rt, workers) = (self.rt, self.workers);
        self.group.bench_function(
            BenchmarkId::new(self.name, format!("{workers}_workers")),
            |b| b.iter_custom(|iters| run_tasks(rt, &svc, workers, iters)),
        );
    }
}

fn contention(c: &mut Criterion) {
    let mut group = c.benchmark_group("contention");
    group
        .throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for workers in WORKERS {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers as usize)
            .enable_all()
            .build()
            .expect("runtime");
        for (variant, name) in PATHS {
            let mut bench = Bench {
                group: &mut group,
                rt: &rt,
                workers,
                name,
            };
            common::run_variant(variant, &rt, &mut bench);
        }
    }
    group.finish();
}

criterion_group!(benches, contention);
criterion_main!(benches);

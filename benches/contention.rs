//! The live session read across threads: 1 and 2 std threads, each driving its own clone of
//! one service for the same number of requests, for the bare inner service, `DefaultHeaders`
//! with 8 session headers: never updated, updated once before the run, and with every value
//! `&'static` (see `static_values`).
//!
//! Not a criterion bench: a plain run per variant, printing for each thread count
//!
//! - `req/s`: every thread's requests together, over the wall time of the run;
//! - `cpu ns/req`: the CPU time each thread spent per request (Linux: from
//!   `/proc/thread-self/schedstat`), which time slices given to other processes do not count;
//!   the lowest of the runs, as other work on the machine only ever adds to it.
//!
//! A read that bounced a cache line between cores (a lock, a reference count) costs every
//! request more CPU time with 2 threads than with 1; a contention-free read stays flat, as the
//! bare service does. `req/s` doubles only on a machine with two idle cores, so on a shared
//! machine compare the `cpu ns/req` column.
//!
//! Each service clone reads the layer's `ArcSwap` through its own `arc_swap::Cache`, so the
//! read touches only the pointer it compares, which no request writes: `static_values` stays
//! flat. A value made at run time is a reference-counted `Bytes` that every request's copy of
//! the session counts, from every thread, which costs a little more with 2 threads (the same
//! copy as before sessions were live).
//!
//! ```text
//! cargo bench --bench contention              # REQUESTS (env) per thread, default 300000
//! ```

mod common;

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue, Request};
use tower::Service;

use common::{call, inner, request, session_headers, wrap};

/// Runs of each measurement: the median `req/s` and the lowest `cpu ns/req` are printed
/// (other work on the machine only ever adds CPU time).
const RUNS: usize = 7;

/// This thread's CPU time so far, where the OS tells it.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// `threads` threads, each sending `requests` requests through its own clone of `svc`: the
/// wall time from a common start until the last thread finished, and the CPU time of each.
fn run<S>(svc: &S, threads: usize, requests: u64) -> (Duration, Option<Duration>)
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
                    // Warm up this clone (its cache, the allocator's thread cache).
                    for _ in 0..1_000 {
                        black_box(call(&mut svc, request()));
                    }
                    start.wait();
                    let cpu = thread_cpu_time();
                    for _ in 0..requests {
                        black_box(call(&mut svc, request()));
                    }
                    Some(thread_cpu_time()? - cpu?)
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        let cpu: Option<Vec<Duration>> = workers
            .into_iter()
            .map(|worker| worker.join().expect("a bench thread panicked"))
            .collect();
        let wall = began.elapsed();
        (
            wall,
            cpu.map(|cpu| cpu.iter().sum::<Duration>() / threads as u32),
        )
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn measure<S>(name: &str, svc: &S, requests: u64)
where
    S: Service<Request<()>> + Clone + Send,
    S::Error: std::fmt::Debug,
{
    for threads in [1, 2] {
        let runs: Vec<_> = (0..RUNS).map(|_| run(svc, threads, requests)).collect();
        let total = (requests * threads as u64) as f64;
        let per_second = median(
            runs.iter()
                .map(|(wall, _)| total / wall.as_secs_f64())
                .collect(),
        );
        let cpu = runs
            .iter()
            .map(|(_, cpu)| cpu.map(|cpu| cpu.as_nanos() as f64 / requests as f64))
            .collect::<Option<Vec<f64>>>()
            .map_or_else(
                || "n/a".to_owned(),
                |cpu| format!("{:.0}", cpu.into_iter().fold(f64::INFINITY, f64::min)),
            );
        println!("{name:<32} {threads:>7} {per_second:>14.0} {cpu:>12}");
    }
}

/// `headers` with every value `&'static` (sensitivity kept). A value made at run time (the
/// API key of `session_headers`, as from the environment) is a reference-counted `Bytes`, and
/// every request's copy of the session counts one more reference to it, from every thread;
/// static values are copied without touching shared memory. So this variant isolates the
/// session read itself.
fn static_values(headers: &[(HeaderName, HeaderValue)]) -> Vec<(HeaderName, HeaderValue)> {
    headers
        .iter()
        .map(|(name, value)| {
            let bytes: &'static [u8] = Box::leak(value.as_bytes().to_vec().into_boxed_slice());
            let text = std::str::from_utf8(bytes).expect("the bench values are ASCII");
            let mut value_static = HeaderValue::from_static(text);
            value_static.set_sensitive(value.is_sensitive());
            (name.clone(), value_static)
        })
        .collect()
}

fn main() {
    // `cargo bench` passes `--bench`; a name filters the variants.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let requests = std::env::var("REQUESTS")
        .ok()
        .map(|s| s.parse().expect("REQUESTS is a number"))
        .unwrap_or(300_000);

    let headers = session_headers(8);
    let layer = common::default_headers_layer(&headers);
    let updated = common::default_headers_layer(&headers);
    let updated_svc = wrap(&updated, inner());
    common::update_one_value(&updated);

    println!(
        "{:<32} {:>7} {:>14} {:>12}",
        "variant", "threads", "req/s", "cpu ns/req"
    );
    if wanted("bare") {
        measure("bare", &inner(), requests);
    }
    if wanted("default_headers/8") {
        measure("default_headers/8", &wrap(&layer, inner()), requests);
    }
    if wanted("default_headers/8/updated") {
        measure("default_headers/8/updated", &updated_svc, requests);
    }
    if wanted("default_headers/8/static_values") {
        let layer = common::default_headers_layer(&static_values(&headers));
        measure(
            "default_headers/8/static_values",
            &wrap(&layer, inner()),
            requests,
        );
    }
}

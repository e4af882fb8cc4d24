//! Wall time in interleaved rounds: the medians the targets are judged by on a shared machine.
//!
//! Criterion measures one benchmark after another, so a machine whose load drifts favours
//! whichever ran in a quiet minute. Here every round measures every chosen variant once, in
//! turn, and the result is each variant's median over the rounds:
//!
//! ```text
//! cargo bench --bench rounds -- bare hand_loop/8_with_accept default_headers/8_with_accept
//! WORKERS=1,2,4 cargo bench --bench rounds -- bare default_headers/8_with_accept fixed cached
//! ```
//!
//! Arguments: variant names, as for `benches/callgrind.rs` (`common::VARIANTS`). Environment:
//! `ROUNDS` (default 11); `MS`, the time one measurement takes (default 200); `WORKERS`, a
//! comma-separated list of worker-thread counts: without it every request is sent on the bench
//! thread (inside an entered current-thread runtime, as in `benches/bearer.rs`); with it, each
//! variant runs on a multi-threaded runtime of each size, one task per worker, each with its
//! own clone of the service (as in `benches/contention.rs`).
//!
//! Output: one line per measurement (`round variant workers ns/request busy`), then per
//! variant the median time per request, and with `WORKERS` the median throughput and its
//! ratio to the first worker count's. `busy` is the share of the machine's CPU time that
//! other processes took during the measurement (Linux, from `/proc`; `-` elsewhere): on a
//! machine shared with other work, a measurement with other processes busy says little about
//! scaling across cores, and `MAX_BUSY` (a fraction, default 1.0: keep all) drops it from the
//! medians. To compare two builds in the same run, run their binaries in turn with `ROUNDS=1`
//! and take the medians of the lines.

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Request;
use tokio::runtime::Runtime;
use tower::Service;

use common::{call, request, Runner};

/// One variant, ready to be timed: `iters` requests, returning the wall time.
type Timed = Box<dyn FnMut(u64) -> Duration>;

struct Build {
    /// The multi-threaded runtime and its size, or `None` for the bench thread.
    workers: Option<(Arc<Runtime>, u64)>,
    built: Option<Timed>,
}

impl Runner for Build {
    fn run<S>(&mut self, mut svc: S)
    where
        S: Service<Request<()>> + Clone + Send + 'static,
        S::Future: Send,
        S::Response: Send,
        S::Error: std::fmt::Debug + Send,
    {
        self.built = Some(match self.workers.clone() {
            None => Box::new(move |iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(call(&mut svc, request()));
                }
                start.elapsed()
            }),
            Some((rt, workers)) => Box::new(move |iters| {
                common::run_split(&rt, workers, iters, |per_task| {
                    let mut svc = svc.clone();
                    async move {
                        for _ in 0..per_task {
                            black_box(svc.call(request()).await.expect("request succeeds"));
                        }
                    }
                })
            }),
        });
    }
}

struct Variant {
    name: String,
    workers: u64,
    timed: Timed,
    iters: u64,
    ns: Vec<f64>,
}

fn median(xs: &[f64]) -> f64 {
    let mut xs = xs.to_vec();
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// CPU time (in clock ticks) the whole machine spent busy and the time this process spent,
/// from `/proc` (Linux only).
fn cpu_ticks() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = fields.iter().take(8).sum::<u64>() - fields.get(3)? - fields.get(4)?;
    let total = fields.iter().take(8).sum::<u64>();
    let own = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses): utime is the 12th, stime 13th.
    let after = own.rsplit_once(')')?.1;
    let times: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    Some((busy, total, times.iter().sum()))
}

/// The share of the machine's CPU time other processes took between `before` and `after`.
fn others_busy(before: Option<(u64, u64, u64)>, after: Option<(u64, u64, u64)>) -> Option<f64> {
    let ((b0, t0, o0), (b1, t1, o1)) = (before?, after?);
    let total = t1.checked_sub(t0)?;
    if total == 0 {
        return None;
    }
    let others = (b1 - b0).saturating_sub(o1.saturating_sub(o0));
    Some(others as f64 / total as f64)
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .map(|s| s.parse().ok().expect("a number"))
        .unwrap_or(default)
}

fn main() {
    let rounds: usize = env("ROUNDS", 11);
    let max_busy: f64 = env("MAX_BUSY", 1.0);
    let ms: u64 = env("MS", 200);
    let workers: Option<Vec<u64>> = std::env::var("WORKERS").ok().map(|s| {
        s.split(',')
            .map(|w| w.trim().parse().expect("WORKERS: numbers"))
            .collect()
    });
    let names: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    assert!(
        !names.is_empty(),
        "name the variants: {:?}",
        common::VARIANTS
    );

    let local = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = local.enter();
    let sizes: Vec<Option<u64>> = match &workers {
        None => vec![None],
        Some(ws) => ws.iter().copied().map(Some).collect(),
    };
    let mut variants = Vec::new();
    for size in sizes {
        let rt = size.map(|w| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(w as usize)
                .enable_all()
                .build()
                .expect("runtime");
            (Arc::new(rt), w)
        });
        for name in &names {
            let mut build = Build {
                workers: rt.clone(),
                built: None,
            };
            let warm_rt = rt.as_ref().map_or(&local, |(rt, _)| &**rt);
            common::run_variant(name, warm_rt, &mut build);
            let mut timed = build.built.expect("built");
            // Warm up, and find how many requests take about `MS`.
            timed(10_000);
            let mut iters = 10_000u64;
            loop {
                let took = timed(iters);
                if took >= Duration::from_millis(ms / 4).max(Duration::from_millis(1)) {
                    let per = took.as_secs_f64() / iters as f64;
                    iters = ((ms as f64 / 1_000.0) / per).max(1_000.0) as u64;
                    break;
                }
                iters *= 4;
            }
            variants.push(Variant {
                name: name.clone(),
                workers: size.unwrap_or(0),
                timed,
                iters,
                ns: Vec::new(),
            });
        }
    }

    for round in 0..rounds {
        for v in &mut variants {
            let before = cpu_ticks();
            let took = (v.timed)(v.iters);
            let busy = others_busy(before, cpu_ticks());
            let ns = took.as_secs_f64() * 1e9 / v.iters as f64;
            if busy.is_none_or(|busy| busy <= max_busy) {
                v.ns.push(ns);
            }
            let busy = busy.map_or("-".to_owned(), |b| format!("{b:.2}"));
            println!("round {round} {} {} {ns:.1} {busy}", v.name, v.workers);
        }
    }

    println!("\nmedians over {rounds} rounds (ns/request; with workers, throughput in Mreq/s)");
    for v in &variants {
        if v.ns.is_empty() {
            println!(
                "{:<40} every measurement dropped (MAX_BUSY): run again when the machine is \
                 quieter, or raise MAX_BUSY and say so beside the figures",
                v.name
            );
            continue;
        }
        let ns = median(&v.ns);
        if v.workers == 0 {
            println!("{:<40} {ns:>9.1} ns ({} rounds)", v.name, v.ns.len());
        } else {
            let first = variants
                .iter()
                .find(|f| f.name == v.name)
                .expect("itself at least");
            let ratio = if first.ns.is_empty() {
                f64::NAN
            } else {
                median(&first.ns) / ns
            };
            println!(
                "{:<40} {:>2} workers {ns:>8.1} ns {:>7.3} Mreq/s  x{ratio:.2} vs {} worker(s) \
                 ({} rounds)",
                v.name,
                v.workers,
                1_000.0 / ns,
                first.workers,
                v.ns.len()
            );
        }
    }
}

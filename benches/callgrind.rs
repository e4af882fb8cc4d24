//! Instruction counts per request, for confirming small differences on a noisy machine.
//!
//! Not a criterion bench: a plain loop per variant, meant to run under callgrind, which counts
//! only inside `measured` (after a warm-up outside it):
//!
//! ```text
//! cargo bench --bench callgrind --no-run
//! valgrind --tool=callgrind --toggle-collect='*measured*' --callgrind-out-file=cg.out \
//!     target/release/deps/callgrind-<hash> default_headers/8_with_accept
//! callgrind_annotate cg.out | head    # total Ir / ITERS = instructions per request
//! ```
//!
//! Arguments: variant names (`common::VARIANTS`, with `SHAPE` one of `common::SHAPES`: `8` is
//! 8 session names none of which the request has, `8_with_accept` 8 names one of which,
//! `accept`, it has); none runs every variant of every shape. `ITERS` (env) sets the measured
//! requests per variant (default 10000). Flags such as `--bench` are ignored.

mod common;

use std::hint::black_box;

use http::Request;
use tower::Service;

use common::{call, request, Runner, SHAPES, VARIANTS};

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

struct Measure(u64);

impl Runner for Measure {
    fn run<S>(&mut self, mut svc: S)
    where
        S: Service<Request<()>> + Clone + Send + 'static,
        S::Future: Send,
        S::Response: Send,
        S::Error: std::fmt::Debug + Send,
    {
        for _ in 0..100 {
            black_box(call(&mut svc, request()));
        }
        measured(&mut svc, self.0);
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
    let chosen: Vec<String> = if named.is_empty() {
        VARIANTS
            .iter()
            .filter(|v| cfg!(feature = "retry") || !v.starts_with("retry"))
            .flat_map(|v| match v.contains("SHAPE") {
                true => SHAPES.iter().map(|s| v.replace("SHAPE", s)).collect(),
                false => vec![v.to_string()],
            })
            .collect()
    } else {
        named
    };
    for name in chosen {
        common::run_variant(&name, &rt, &mut Measure(iters));
    }
}

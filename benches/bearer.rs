//! `BearerAuthLayer` on its hot paths.
//!
//! `bearer`: one request at a time on the bench thread, inside an entered tokio runtime:
//! - `bare`: the inner service alone;
//! - `tower_http_auth`: tower-http's `AddAuthorizationLayer::bearer(..).as_sensitive(true)`;
//! - `fixed`: `BearerAuthLayer::new(token)`;
//! - `cached`: `BearerAuthLayer::from_source(..)` whose never-expiring token is already cached;
//! - `cached_expiring`: the same with a token that expires in an hour (the clock is read);
//! - with the `retry` feature, `cached` behind tower's `Retry` (requests that are not
//!   rejected): `retry_clone_only`, a policy that clones the request and never retries (the
//!   floor: what any retry policy costs), and `retry_unauthorized`, `RetryUnauthorized`.
//!   The two should match: the policy adds nothing to the clone but a look at the response's
//!   extensions.
//!
//! `bearer_contention`: a 2-worker tokio runtime, N tasks each sending its share of the
//! requests through its own clone of one shared layer. The time reported is wall time per
//! request over all tasks, so with 2 workers N >= 2 can be up to twice as fast as N = 1;
//! "flat" means the cached path keeps its ratio to the fixed path as N grows.

mod common;

use std::future::Future;
use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion};
use http::{Request, Response};
use tokio::runtime::Runtime;
use tower::Service;
use tower_client_headers::BearerAuthLayer;

use common::{call, inner, request, wrap};

fn bench_one<S>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, mut svc: S)
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    group.bench_function(name, |b| b.iter(|| call(&mut svc, request())));
}

/// A service over `layer`, its token fetched by one request first.
fn warm(
    rt: &Runtime,
    layer: &BearerAuthLayer,
) -> impl Service<
    Request<()>,
    Response = Response<()>,
    Error = tower_client_headers::BoxError,
    Future = impl Future + Send,
> + Clone
       + Send
       + 'static {
    let mut svc = wrap(layer, inner());
    rt.block_on(svc.call(request()))
        .expect("the first fetch succeeds");
    svc
}

fn bearer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let mut group = c.benchmark_group("bearer");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    bench_one(&mut group, "bare", inner());
    bench_one(
        &mut group,
        "tower_http_auth",
        wrap(&common::tower_http_auth_layer(), inner()),
    );
    bench_one(
        &mut group,
        "fixed",
        wrap(&common::bearer_fixed_layer(), inner()),
    );
    bench_one(
        &mut group,
        "cached",
        warm(&rt, &common::bearer_source_layer()),
    );
    bench_one(
        &mut group,
        "cached_expiring",
        warm(&rt, &common::bearer_expiring_source_layer()),
    );
    #[cfg(feature = "retry")]
    {
        let cached = warm(&rt, &common::bearer_source_layer());
        bench_one(
            &mut group,
            "retry_clone_only",
            tower::retry::Retry::new(common::CloneOnly, cached.clone()),
        );
        bench_one(
            &mut group,
            "retry_unauthorized",
            tower::retry::Retry::new(tower_client_headers::RetryUnauthorized::new(), cached),
        );
    }
    group.finish();
}

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

fn bearer_contention(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let bare = inner();
    let fixed = wrap(&common::bearer_fixed_layer(), inner());
    let cached = warm(&rt, &common::bearer_source_layer());
    let mut group = c.benchmark_group("bearer_contention");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for tasks in [1u64, 2, 8, 32] {
        group.bench_function(BenchmarkId::new("bare", tasks), |b| {
            b.iter_custom(|iters| run_tasks(&rt, &bare, tasks, iters))
        });
        group.bench_function(BenchmarkId::new("fixed", tasks), |b| {
            b.iter_custom(|iters| run_tasks(&rt, &fixed, tasks, iters))
        });
        group.bench_function(BenchmarkId::new("cached", tasks), |b| {
            b.iter_custom(|iters| run_tasks(&rt, &cached, tasks, iters))
        });
    }
    group.finish();
}

criterion_group!(benches, bearer, bearer_contention);
criterion_main!(benches);

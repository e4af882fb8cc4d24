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
//! The request is the one every bench sends (`common::request`). How the paths scale across
//! worker threads is in `benches/contention.rs`.

mod common;

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use http::Request;
use tower::Service;

use common::{call, inner, request, warm, wrap};

fn bench_one<S>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, mut svc: S)
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    group.bench_function(name, |b| b.iter(|| call(&mut svc, request())));
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

criterion_group!(benches, bearer);
criterion_main!(benches);

//! End to end: a hyper-util legacy `Client` to a local hyper HTTP/1 server on 127.0.0.1,
//! bare and wrapped in both layers (`DefaultHeadersLayer` with 8 session headers around a
//! fixed-token `BearerAuthLayer`; plain http to loopback is allowed for tokens).
//!
//! A third variant, `bare_same_headers`, is the bare client sending exactly the headers the
//! layered one sends (added by the hand-written loop): the same bytes on the wire, so against
//! it the difference is only the middleware, not the cost of sending 9 more headers.
//!
//! - `sequential`: one request in flight, on one kept-alive connection;
//! - `concurrent_16`: 16 tasks sending requests at once (up to 16 connections).
//!
//! Throughput is reported as requests per second (criterion's elements/s).

mod common;

use std::convert::Infallible;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tower::{Service, ServiceBuilder, ServiceExt};

use common::{request_to, session_headers, HandLoop};

const CONCURRENCY: u64 = 16;

/// A server that answers every request with `200 OK` and a two-byte body.
async fn serve() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// Send one request through `svc` and read the whole response.
async fn send<S>(svc: &mut S, uri: &Uri)
where
    S: Service<Request<Empty<Bytes>>, Response = Response<Incoming>>,
    S::Error: std::fmt::Debug,
{
    let response = svc
        .ready()
        .await
        .expect("ready")
        .call(request_to(uri.clone(), Empty::new()))
        .await
        .expect("request succeeds");
    assert!(response.status().is_success());
    black_box(response.into_body().collect().await.expect("body"));
}

/// `iters` requests split over `tasks` tasks, each with its own clone of `svc`; the wall time
/// scaled to exactly `iters` requests.
fn run<S>(rt: &Runtime, svc: &S, uri: &Uri, tasks: u64, iters: u64) -> Duration
where
    S: Service<Request<Empty<Bytes>>, Response = Response<Incoming>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug + Send,
{
    common::run_split(rt, tasks, iters, |per_task| {
        let (mut svc, uri) = (svc.clone(), uri.clone());
        async move {
            for _ in 0..per_task {
                send(&mut svc, &uri).await;
            }
        }
    })
}

fn end_to_end(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let addr = rt.block_on(serve());
    let uri: Uri = format!("http://{addr}/v1/items").parse().expect("uri");

    let bare = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let layered = ServiceBuilder::new()
        .layer(common::default_headers_layer(&session_headers(8)))
        .layer(common::bearer_fixed_layer())
        .service(bare.clone());
    // The bare client sending exactly the headers `layered` sends, added by the hand-written
    // loop: the same bytes on the wire, so the difference is only how they were added.
    let mut same_headers = session_headers(8);
    let mut authorization =
        HeaderValue::try_from(format!("Bearer {}", common::TOKEN)).expect("valid value");
    authorization.set_sensitive(true);
    same_headers.push((AUTHORIZATION, authorization));
    let hand_loop = HandLoop::new(bare.clone(), &same_headers);
    // All work and send what they should before anything is timed.
    rt.block_on(async {
        send(&mut bare.clone(), &uri).await;
        send(&mut layered.clone(), &uri).await;
        send(&mut hand_loop.clone(), &uri).await;
    });

    let mut group = c.benchmark_group("end_to_end");
    group
        .throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for (tasks, name) in [(1, "sequential"), (CONCURRENCY, "concurrent_16")] {
        group.bench_function(BenchmarkId::new("bare", name), |b| {
            b.iter_custom(|iters| run(&rt, &bare, &uri, tasks, iters))
        });
        group.bench_function(BenchmarkId::new("layered", name), |b| {
            b.iter_custom(|iters| run(&rt, &layered, &uri, tasks, iters))
        });
        group.bench_function(BenchmarkId::new("bare_same_headers", name), |b| {
            b.iter_custom(|iters| run(&rt, &hand_loop, &uri, tasks, iters))
        });
    }
    group.finish();
}

criterion_group!(benches, end_to_end);
criterion_main!(benches);

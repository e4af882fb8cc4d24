//! gRPC: a tonic client `Channel` (h2c to 127.0.0.1) wrapped in `DefaultHeaders` and
//! `BearerAuth`, against a local tonic server whose interceptor answers revoked tokens with
//! `Status::unauthenticated`: a trailers-only response, HTTP `200` with `grpc-status: 16`.
//!
//! - With `invalidate_when` testing `grpc-status: 16`, a revoked token is dropped and the next
//!   call gets a fresh one; with the default test (`401`) it never is.
//! - tonic's request body (`tonic::body::Body`) is not `Clone`, so `RetryUnauthorized` cannot
//!   wrap the `Channel` directly. For unary calls (one request message) a small adapter that
//!   collects the body into `Full<Bytes>` above the retry, and turns it back into a tonic body
//!   below the auth layer, makes the call replayable: then no caller sees `UNAUTHENTICATED`
//!   for a revoked token.
//! - tonic's generated clients build request URIs from their origin: `Client::new(channel)`
//!   sends path-only URIs (`/grpc.health.v1.Health/Check`), which match no origin, so a scoped
//!   layer adds nothing. `Client::with_origin(svc, "http://host:port")` gives them the origin.
#![cfg(feature = "retry")]

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tower::filter::AsyncFilterLayer;
use tower::ServiceBuilder;
use tower_client_headers::{
    BearerAuth, BearerAuthLayer, BoxError, DefaultHeaders, DefaultHeadersLayer, RetryUnauthorized,
    TokenSource,
};

/// What the server's interceptor saw and decides.
#[derive(Clone, Default)]
struct Gate {
    /// `authorization` and `x-client` of every call, in order.
    seen: Arc<Mutex<Vec<(String, String)>>>,
    revoked: Arc<Mutex<HashSet<String>>>,
    /// On call `n`, revoke this `authorization` value (before judging that call).
    revoke_at: Arc<Mutex<Option<(usize, String)>>>,
}

impl Gate {
    fn revoke(&self, authorization: &str) {
        self.revoked
            .lock()
            .expect("lock")
            .insert(authorization.to_owned());
    }

    fn tokens_seen(&self) -> Vec<String> {
        let seen = self.seen.lock().expect("lock");
        seen.iter().map(|(token, _)| token.clone()).collect()
    }

    fn check(&self, req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let get = |name: &str| {
            req.metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let (token, client) = (get("authorization"), get("x-client"));
        let calls = {
            let mut seen = self.seen.lock().expect("lock");
            seen.push((token.clone(), client));
            seen.len()
        };
        let mut revoked = self.revoked.lock().expect("lock");
        if let Some((at, revoke)) = &*self.revoke_at.lock().expect("lock") {
            if *at == calls {
                revoked.insert(revoke.clone());
            }
        }
        if token.is_empty() || revoked.contains(&token) {
            return Err(Status::unauthenticated("token missing or revoked"));
        }
        Ok(req)
    }
}

/// A tonic server on `127.0.0.1:0`: the Health service (serving) behind the gate.
async fn start_server(gate: &Gate) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let (_reporter, health) = tonic_health::server::health_reporter();
    let gate = gate.clone();
    let service = InterceptedService::new(health, move |req| gate.check(req));
    tokio::spawn(async move {
        Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
            .expect("serve")
    });
    addr
}

/// gRPC's `UNAUTHENTICATED` in a trailers-only response.
fn unauthenticated(_: StatusCode, headers: &HeaderMap) -> bool {
    headers.get("grpc-status").is_some_and(|code| code == "16")
}

/// The session header, scoped to the server's origin.
fn session(origin: &str) -> DefaultHeadersLayer {
    DefaultHeadersLayer::builder()
        .header("x-client", "grpc-test")
        .origin(origin)
        .build()
        .expect("valid")
}

/// The token (plain http is fine: it is loopback), scoped to the server's origin; with
/// `grpc`, `UNAUTHENTICATED` rejects it.
fn source_auth(origin: &str, source: impl TokenSource, grpc: bool) -> BearerAuthLayer {
    let builder = BearerAuthLayer::builder().source(source).origin(origin);
    let builder = if grpc {
        builder.invalidate_when(unauthenticated)
    } else {
        builder
    };
    builder.build().expect("valid")
}

async fn channel(origin: &str) -> Channel {
    Endpoint::from_shared(origin.to_owned())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect")
}

/// A Health client over the session and auth layers around a `Channel`, built as the README
/// says (`with_origin`), or with tonic's `Client::new`.
async fn client(
    origin: &str,
    auth: BearerAuthLayer,
    with_origin: bool,
) -> HealthClient<DefaultHeaders<BearerAuth<Channel>>> {
    let svc = ServiceBuilder::new()
        .layer(session(origin))
        .layer(auth)
        .service(channel(origin).await);
    if with_origin {
        HealthClient::with_origin(svc, origin.parse().expect("uri"))
    } else {
        HealthClient::new(svc)
    }
}

async fn check<T>(client: &mut HealthClient<T>) -> Result<ServingStatus, Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<BoxError>,
    T::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
{
    let request = HealthCheckRequest {
        service: String::new(),
    };
    let response = client.check(request).await?;
    Ok(response.into_inner().status())
}

/// Collect a unary call's request body (one message), so that the request can be cloned.
async fn buffer(
    req: http::Request<tonic::body::Body>,
) -> Result<http::Request<Full<Bytes>>, BoxError> {
    let (parts, body) = req.into_parts();
    let bytes = body.collect().await?.to_bytes();
    Ok(http::Request::from_parts(parts, Full::new(bytes)))
}

#[tokio::test]
async fn with_invalidate_when_a_revoked_token_is_dropped_and_the_next_call_gets_a_fresh_one() {
    let gate = Gate::default();
    let origin = format!("http://{}", start_server(&gate).await);
    let (fetches, source) = common::counting_source();
    let mut client = client(&origin, source_auth(&origin, source, true), true).await;

    assert_eq!(
        check(&mut client).await.expect("ok"),
        ServingStatus::Serving
    );
    gate.revoke("Bearer t1");
    let status = check(&mut client).await.expect_err("revoked");
    assert_eq!(status.code(), Code::Unauthenticated);
    // The UNAUTHENTICATED dropped t1: one fetch, and the call succeeds.
    assert_eq!(
        check(&mut client).await.expect("ok"),
        ServingStatus::Serving
    );
    assert_eq!(gate.tokens_seen(), ["Bearer t1", "Bearer t1", "Bearer t2"]);
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    let seen = gate.seen.lock().expect("lock");
    assert!(seen.iter().all(|(_, client)| client == "grpc-test"));
}

#[tokio::test]
async fn with_the_default_test_a_grpc_rejection_never_drops_the_token() {
    let gate = Gate::default();
    let origin = format!("http://{}", start_server(&gate).await);
    let (fetches, source) = common::counting_source();
    let mut client = client(&origin, source_auth(&origin, source, false), true).await;
    check(&mut client).await.expect("ok");
    gate.revoke("Bearer t1");
    for _ in 0..3 {
        let status = check(&mut client).await.expect_err("revoked");
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    // HTTP 200 is not a 401: the revoked token stays cached.
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn without_with_origin_a_scoped_layer_sees_no_origin_and_adds_nothing() {
    let gate = Gate::default();
    let origin = format!("http://{}", start_server(&gate).await);
    let (fetches, source) = common::counting_source();
    let mut client = client(&origin, source_auth(&origin, source, true), false).await;
    let status = check(&mut client).await.expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        *gate.seen.lock().expect("lock"),
        [(String::new(), String::new())]
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 0);
}

/// The revocation scenario over gRPC: 20 tasks make 10 unary calls each, the server revokes t1
/// on its 50th call. With the buffering adapter and `RetryUnauthorized`, no call fails, one
/// fetch for the revocation, each call reaches the server at most twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_calls_are_retried_with_a_fresh_token_and_no_caller_sees_unauthenticated() {
    let gate = Gate::default();
    *gate.revoke_at.lock().expect("lock") = Some((50, "Bearer t1".to_owned()));
    let origin = format!("http://{}", start_server(&gate).await);
    let (fetches, source) = common::counting_source();
    let svc = ServiceBuilder::new()
        // Outermost: tonic's body in, a cloneable one out (unary calls only).
        .layer(AsyncFilterLayer::new(buffer))
        .retry(RetryUnauthorized::new())
        .layer(session(&origin))
        .layer(source_auth(&origin, source, true))
        // Innermost: back to tonic's body for the Channel.
        .map_request(|req: http::Request<Full<Bytes>>| req.map(tonic::body::Body::new))
        .service(channel(&origin).await);
    let client = HealthClient::with_origin(svc, origin.parse().expect("uri"));

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let mut client = client.clone();
        tasks.spawn(async move {
            let mut results = Vec::new();
            for _ in 0..10 {
                results.push(check(&mut client).await.map_err(|s| s.code()));
            }
            results
        });
    }
    while let Some(results) = tasks.join_next().await {
        let results = results.expect("task");
        assert!(
            results.iter().all(|r| *r == Ok(ServingStatus::Serving)),
            "{results:?}"
        );
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "one fetch for the revocation"
    );
    let tokens = gate.tokens_seen();
    let rejected = tokens.iter().skip(49).filter(|t| *t == "Bearer t1").count();
    assert!(rejected >= 1, "the revocation hit calls in flight");
    // Every rejected call was sent once more, with t2: 200 successes plus the rejections.
    assert_eq!(tokens.len(), 200 + rejected);
    assert!(tokens.iter().all(|t| t == "Bearer t1" || t == "Bearer t2"));
}

//! gRPC with tonic: a `Channel` (h2c to 127.0.0.1) wrapped in `DefaultHeadersLayer` and a
//! refreshing `BearerAuthLayer`, calling a local tonic server whose interceptor answers a
//! revoked token with `Status::unauthenticated`.
//!
//! 1. Invalidation: gRPC reports `UNAUTHENTICATED` as HTTP 200 with `grpc-status: 16` in the
//!    headers (a trailers-only response), so the default test (status 401) never fires;
//!    `invalidate_when` tests for it. The call that met the revoked token fails; the next one
//!    gets a fresh token.
//! 2. Retry: tonic's request body is not `Clone`, so `RetryUnauthorized` cannot wrap the
//!    `Channel` as it is. For unary calls (one request message), collecting the body into
//!    `Full<Bytes>` above the retry and turning it back into tonic's body below the auth layer
//!    makes the call replayable: the revoked token is then invisible to the caller.
//!    Client-streaming calls would be buffered whole (and bidirectional ones would never
//!    finish collecting): give those a client without the buffering layer.
//!
//! tonic's generated clients build URIs from their origin: `HealthClient::new(svc)` sends
//! path-only URIs that match no origin, so a scoped layer would add nothing.
//! `HealthClient::with_origin(svc, origin)` fixes that.
//!
//! Run with `cargo run --example tonic_client --features retry`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tonic::Status;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tower::filter::AsyncFilterLayer;
use tower::ServiceBuilder;
use tower_client_headers::{
    BearerAuthLayer, BearerToken, BoxError, DefaultHeadersLayer, RetryUnauthorized, Token,
};

/// `UNAUTHENTICATED` (16) in the headers of a trailers-only gRPC response.
fn unauthenticated(_: StatusCode, headers: &HeaderMap) -> bool {
    headers.get("grpc-status").is_some_and(|code| code == "16")
}

/// Collect a unary call's request body, so that the retry can clone the request.
async fn buffer(
    req: http::Request<tonic::body::Body>,
) -> Result<http::Request<Full<Bytes>>, BoxError> {
    let (parts, body) = req.into_parts();
    let bytes = body.collect().await?.to_bytes();
    Ok(http::Request::from_parts(parts, Full::new(bytes)))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // The server: the standard Health service, behind an interceptor that checks the token.
    let revoked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://{}", listener.local_addr()?);
    let (_reporter, health) = tonic_health::server::health_reporter();
    let server_revoked = Arc::clone(&revoked);
    let gate = move |req: tonic::Request<()>| {
        let token = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let client = req.metadata().get("x-client").and_then(|v| v.to_str().ok());
        println!("  server: {token:?} from {client:?}");
        match token {
            Some(token) if !server_revoked.lock().expect("lock").contains(token) => Ok(req),
            _ => Err(Status::unauthenticated("token missing or revoked")),
        }
    };
    tokio::spawn(
        Server::builder()
            .add_service(InterceptedService::new(health, gate))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );

    // The client side: a token source issuing t1, t2, ... (your token endpoint in real life).
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&fetches);
    let auth = BearerAuthLayer::builder()
        .source(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Ok::<_, BoxError>(Token::new(BearerToken::new(format!("t{n}"))?)) }
        })
        .origin(&origin) // plain http is allowed: it is loopback
        .invalidate_when(unauthenticated)
        .build()?;
    let session = DefaultHeadersLayer::builder()
        .header("x-client", "tonic-example/1.0")
        .origin(&origin)
        .build()?;
    let channel = Endpoint::from_shared(origin.clone())?.connect().await?;
    let check = || HealthCheckRequest {
        service: String::new(),
    };

    println!("1. invalidation (invalidate_when: grpc-status 16)");
    let svc = ServiceBuilder::new()
        .layer(session.clone())
        .layer(auth.clone())
        .service(channel.clone());
    let mut client = HealthClient::with_origin(svc, origin.parse()?);
    let status = client.check(check()).await?.into_inner().status();
    println!("call: {status:?}");
    revoked.lock().expect("lock").insert("Bearer t1".to_owned());
    println!("(the server revokes t1)");
    let err = client.check(check()).await.expect_err("t1 is revoked");
    println!("call: {:?} ({})", err.code(), err.message());
    let status = client.check(check()).await?.into_inner().status();
    println!("call: {status:?}: the rejection dropped t1, this call fetched t2");

    println!("\n2. retry (unary calls, buffered)");
    let svc = ServiceBuilder::new()
        .layer(AsyncFilterLayer::new(buffer)) // tonic's body in, Full<Bytes> out
        .retry(RetryUnauthorized::new()) // outside the auth layer
        .layer(session)
        .layer(auth)
        .map_request(|req: http::Request<Full<Bytes>>| req.map(tonic::body::Body::new))
        .service(channel);
    let mut client = HealthClient::with_origin(svc, origin.parse()?);
    revoked.lock().expect("lock").insert("Bearer t2".to_owned());
    println!("(the server revokes t2)");
    let status = client.check(check()).await?.into_inner().status();
    println!("call: {status:?}: rejected with t2, sent again with t3, the caller saw no error");
    println!("token fetches: {}", fetches.load(Ordering::SeqCst));
    assert_eq!(fetches.load(Ordering::SeqCst), 3);
    Ok(())
}

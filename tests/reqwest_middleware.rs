//! End to end through reqwest-middleware and a real local server: the same rules as the tower
//! services, with `HeaderOverrides` passed through the middleware's extensions.
#![cfg(feature = "reqwest-middleware")]

mod common;

use std::sync::atomic::Ordering;

use common::{Echoed, Server};
use http::header::{ACCEPT, USER_AGENT};
use http::HeaderName;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Extension};
use tower_client_headers::{
    BearerAuthLayer, BearerToken, BoxError, DefaultHeadersLayer, Error, ErrorKind, HeaderOverrides,
    Token,
};

fn reqwest_client() -> reqwest::Client {
    // Loopback tests: never through a proxy from the environment.
    reqwest::Client::builder()
        .no_proxy()
        .user_agent("reqwest-default/0")
        .build()
        .expect("client")
}

async fn echoed(request: reqwest_middleware::RequestBuilder) -> (reqwest::StatusCode, Echoed) {
    let response = request.send().await.expect("response");
    let status = response.status();
    let body = response.bytes().await.expect("body");
    (status, Echoed::parse(&body))
}

fn session() -> DefaultHeadersLayer {
    DefaultHeadersLayer::builder()
        .header(USER_AGENT, "mw/1.0")
        .header(ACCEPT, "application/json")
        .header(ACCEPT, "text/plain")
        .append_header("x-tags", "session")
        .build()
        .expect("valid")
}

#[tokio::test]
async fn session_headers_keep_every_value_and_beat_reqwest_defaults() {
    let server = Server::start().await;
    let client: ClientWithMiddleware = ClientBuilder::new(reqwest_client()).with(session()).build();
    let (_, sent) = echoed(client.get(server.url("/a"))).await;
    // Our session User-Agent wins over the client's configured one.
    assert_eq!(sent.all("user-agent"), ["mw/1.0"]);
    // Both values of a multi-valued default (reqwest's own default_headers keeps one).
    assert_eq!(sent.all("accept"), ["application/json", "text/plain"]);

    // The request's own value wins (if-absent), append goes after the request's.
    let (_, sent) = echoed(
        client
            .get(server.url("/b"))
            .header(ACCEPT, "text/csv")
            .header("x-tags", "request"),
    )
    .await;
    assert_eq!(sent.all("accept"), ["text/csv"]);
    assert_eq!(sent.all("x-tags"), ["request", "session"]);
}

#[tokio::test]
async fn overrides_travel_in_extensions_per_request_and_client_wide() {
    let server = Server::start().await;
    let client = ClientBuilder::new(reqwest_client()).with(session()).build();
    let (_, sent) = echoed(client.get(server.url("/a")).with_extension(
        HeaderOverrides::new().remove(ACCEPT).set(
            HeaderName::from_static("x-one"),
            http::HeaderValue::from_static("1"),
        ),
    ))
    .await;
    // Without the session's Accept, reqwest adds its own default `*/*`.
    assert_eq!(sent.all("accept"), ["*/*"]);
    assert_eq!(sent.all("x-one"), ["1"]);

    // A client-wide default through `with_init`, overridable per request.
    let quiet = ClientBuilder::new(reqwest_client())
        .with_init(Extension(
            HeaderOverrides::new().remove(HeaderName::from_static("x-tags")),
        ))
        .with(session())
        .build();
    let (_, sent) = echoed(quiet.get(server.url("/b"))).await;
    assert!(!sent.has("x-tags"));
    assert_eq!(sent.all("user-agent"), ["mw/1.0"]);
    let (_, sent) = echoed(
        quiet
            .get(server.url("/c"))
            .with_extension(HeaderOverrides::new()),
    )
    .await;
    assert_eq!(sent.all("x-tags"), ["session"]);
}

#[tokio::test]
async fn bearer_token_sent_suppressed_per_request_and_scoped() {
    let server = Server::start().await;
    let auth = BearerAuthLayer::builder()
        .token("mw-token")
        .origin(&server.origin())
        .build()
        .expect("valid");
    let client = ClientBuilder::new(reqwest_client()).with(auth).build();
    let (_, sent) = echoed(client.get(server.url("/a"))).await;
    assert_eq!(sent.all("authorization"), ["Bearer mw-token"]);
    let (_, sent) = echoed(
        client
            .get(server.url("/b"))
            .with_extension(HeaderOverrides::new().without_auth()),
    )
    .await;
    assert!(!sent.has("authorization"));
    let caller = HeaderOverrides::new().bearer_token(BearerToken::new("caller").expect("valid"));
    let (_, sent) = echoed(client.get(server.url("/c")).with_extension(caller)).await;
    assert_eq!(sent.all("authorization"), ["Bearer caller"]);
    // Same server, other origin: no token.
    let (_, sent) = echoed(client.get(server.localhost_url("/d"))).await;
    assert!(!sent.has("authorization"));
}

#[tokio::test]
async fn plaintext_refusal_is_a_middleware_error_carrying_ours_and_nothing_is_sent() {
    let auth = BearerAuthLayer::new("s3cr3t").expect("valid");
    let client = ClientBuilder::new(reqwest_client()).with(auth).build();
    // A non-loopback host over plain http: refused before any connection is attempted.
    let err = client
        .get("http://api.example.invalid/")
        .send()
        .await
        .expect_err("refused");
    let reqwest_middleware::Error::Middleware(inner) = &err else {
        panic!("expected a middleware error, got {err:?}");
    };
    let ours = inner.downcast_ref::<Error>().expect("our error");
    assert_eq!(ours.kind(), ErrorKind::PlaintextRefused);
    assert!(!err.to_string().contains("s3cr3t"));
}

#[tokio::test]
async fn a_source_token_is_shared_and_a_401_invalidates_it() {
    let server = Server::start().await;
    let (fetches, source) = common::counting_source();
    let auth = BearerAuthLayer::from_source(source);
    let client = ClientBuilder::new(reqwest_client()).with(auth).build();
    let (a, b) = tokio::join!(
        echoed(client.get(server.url("/a"))),
        echoed(client.get(server.url("/b")))
    );
    assert_eq!(a.1.all("authorization"), ["Bearer t1"]);
    assert_eq!(b.1.all("authorization"), ["Bearer t1"]);
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    server.revoke("Bearer t1");
    let (status, _) = echoed(client.get(server.url("/c"))).await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);
    let (status, sent) = echoed(client.get(server.url("/d"))).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(sent.all("authorization"), ["Bearer t2"]);
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_failing_source_is_a_middleware_error_with_the_cause() {
    let server = Server::start().await;
    let auth = BearerAuthLayer::from_source(|| async {
        Err::<Token, BoxError>("token endpoint down".into())
    });
    let client = ClientBuilder::new(reqwest_client()).with(auth).build();
    let err = client
        .get(server.url("/a"))
        .send()
        .await
        .expect_err("fetch fails");
    let reqwest_middleware::Error::Middleware(inner) = &err else {
        panic!("expected a middleware error, got {err:?}");
    };
    let ours = inner.downcast_ref::<Error>().expect("our error");
    assert_eq!(ours.kind(), ErrorKind::TokenFetch);
    let cause = std::error::Error::source(ours).expect("cause").to_string();
    assert_eq!(cause, "token endpoint down");
    assert_eq!(server.hits(), 0, "nothing was sent");
}

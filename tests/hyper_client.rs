//! End to end through a real hyper-util client and a real local server: session headers,
//! overrides, bearer tokens fixed and refreshing.

mod common;

use std::sync::atomic::Ordering;

use common::{hyper_client as client, Body, Echoed, Server};
use http::header::{ACCEPT, AUTHORIZATION, USER_AGENT};
use http::{HeaderName, HeaderValue, Request, StatusCode};

use tower::{Service, ServiceBuilder};
use tower_client_headers::{BearerAuthLayer, BearerToken, DefaultHeadersLayer, HeaderOverrides};

async fn echoed<S>(svc: &S, req: Request<Body>) -> (StatusCode, Echoed)
where
    S: Service<Request<Body>, Response = http::Response<hyper::body::Incoming>> + Clone,
    S::Error: std::fmt::Debug,
{
    common::send(svc, req).await
}

fn get(url: &str) -> http::request::Builder {
    Request::get(url)
}

#[tokio::test]
async fn session_headers_overrides_and_token_through_a_real_client() {
    let server = Server::start().await;
    let session = DefaultHeadersLayer::builder()
        .header(USER_AGENT, "e2e/1.0")
        .header(ACCEPT, "application/json")
        .header(ACCEPT, "text/plain")
        .sensitive_header("x-api-key", "k-123")
        .build()
        .expect("valid");
    let auth = BearerAuthLayer::builder()
        .token("e2e-token")
        .origin(&server.origin())
        .build()
        .expect("valid");
    let svc = ServiceBuilder::new()
        .layer(session)
        .layer(auth)
        .service(client());

    // Every session value arrives, multi-valued Accept in order, and the token.
    let (_, sent) = echoed(&svc, get(&server.url("/a")).body(Body::new()).expect("req")).await;
    assert_eq!(sent.all("user-agent"), ["e2e/1.0"]);
    assert_eq!(sent.all("accept"), ["application/json", "text/plain"]);
    assert_eq!(sent.all("x-api-key"), ["k-123"]);
    assert_eq!(sent.all("authorization"), ["Bearer e2e-token"]);

    // The request's own Accept wins over both session values.
    let req = get(&server.url("/b"))
        .header(ACCEPT, "text/csv")
        .body(Body::new())
        .expect("req");
    let (_, sent) = echoed(&svc, req).await;
    assert_eq!(sent.all("accept"), ["text/csv"]);

    // HeaderOverrides: drop one, set one, a per-request token.
    let req = get(&server.url("/c"))
        .extension(
            HeaderOverrides::new()
                .remove(USER_AGENT)
                .set(
                    HeaderName::from_static("x-api-key"),
                    HeaderValue::from_static("other"),
                )
                .bearer_token(BearerToken::new("caller").expect("valid")),
        )
        .body(Body::new())
        .expect("req");
    let (_, sent) = echoed(&svc, req).await;
    assert!(!sent.has("user-agent"));
    assert_eq!(sent.all("x-api-key"), ["other"]);
    assert_eq!(sent.all("authorization"), ["Bearer caller"]);

    // Everything off for one request.
    let req = get(&server.url("/d"))
        .extension(HeaderOverrides::new().remove_all())
        .body(Body::new())
        .expect("req");
    let (_, sent) = echoed(&svc, req).await;
    assert!(!sent.has("user-agent") && !sent.has("x-api-key") && !sent.has("authorization"));

    // Another origin (same server, named `localhost`): session headers yes, token no.
    let req = get(&server.localhost_url("/e"))
        .body(Body::new())
        .expect("req");
    let (_, sent) = echoed(&svc, req).await;
    assert_eq!(sent.all("user-agent"), ["e2e/1.0"]);
    assert!(!sent.has("authorization"));
}

#[tokio::test]
async fn a_refreshing_token_is_fetched_once_and_replaced_after_a_401() {
    let server = Server::start().await;
    let (fetches, source) = common::counting_source();
    let auth = BearerAuthLayer::from_source(source);
    let svc = ServiceBuilder::new().layer(auth).service(client());

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let svc = svc.clone();
        let url = server.url("/concurrent");
        tasks.spawn(async move { echoed(&svc, get(&url).body(Body::new()).expect("req")).await });
    }
    while let Some(result) = tasks.join_next().await {
        let (status, sent) = result.expect("task");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(sent.all("authorization"), ["Bearer t1"]);
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    // The server revokes t1: the 401 comes back unchanged, and the next request has t2.
    server.revoke("Bearer t1");
    let (status, _) = echoed(&svc, get(&server.url("/x")).body(Body::new()).expect("req")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, sent) = echoed(&svc, get(&server.url("/y")).body(Body::new()).expect("req")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sent.all("authorization"), ["Bearer t2"]);
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_request_own_authorization_is_sent_and_no_token_fetched() {
    let server = Server::start().await;
    let (fetches, source) = common::counting_source();
    let auth = BearerAuthLayer::from_source(source);
    let svc = ServiceBuilder::new().layer(auth).service(client());
    let req = get(&server.url("/own"))
        .header(AUTHORIZATION, "Basic dXNlcjpwdw==")
        .body(Body::new())
        .expect("req");
    let (_, sent) = echoed(&svc, req).await;
    assert_eq!(sent.all("authorization"), ["Basic dXNlcjpwdw=="]);
    assert_eq!(fetches.load(Ordering::SeqCst), 0);
}

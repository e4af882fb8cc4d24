//! Redirects with tower-http's `FollowRedirectLayer` in the same stack, against two real local
//! origins: `http://127.0.0.1:PORT` redirecting to `http://localhost:PORT` is a cross-origin hop.
//!
//! tower-http carries the *original* request's headers to every hop and, on a cross-origin hop,
//! its standard policy strips only `Authorization`, `Cookie` and `Proxy-Authorization`. So:
//! - our layers *inside* the redirect layer (it wraps them) see every hop, and origin scoping
//!   keeps every session header and the token away from other origins: the safe order;
//! - our layers *outside* add headers once; the token is stripped on a cross-origin hop, but a
//!   custom header such as `x-api-key` is carried there by the redirect layer.

mod common;

use common::{hyper_client as client, Body, Echoed, Server};
use http::{Request, StatusCode};

use tower::{Service, ServiceBuilder, ServiceExt};
use tower_client_headers::{BearerAuthLayer, DefaultHeadersLayer};
use tower_http::follow_redirect::FollowRedirectLayer;

/// The session API key and the token, both scoped (or not) to the first server's origin.
fn layers(scope: Option<&str>) -> (DefaultHeadersLayer, BearerAuthLayer) {
    let mut session = DefaultHeadersLayer::builder().sensitive_header("x-api-key", "k-123");
    let mut auth = BearerAuthLayer::builder().token("t-123");
    if let Some(origin) = scope {
        session = session.origin(origin);
        auth = auth.origin(origin);
    }
    (
        session.build().expect("valid"),
        auth.build().expect("valid"),
    )
}

async fn follow<S, B>(svc: &S, url: &str) -> Echoed
where
    S: Service<Request<Body>, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let (status, sent) = common::send(svc, Request::get(url).body(Body::new()).expect("req")).await;
    assert_eq!(status, StatusCode::OK);
    sent
}

/// `/redirect?to=<target>` on `from`.
fn via(from: &Server, target: &str) -> String {
    from.url(&format!("/redirect?to={target}"))
}

#[tokio::test]
async fn inside_the_redirect_layer_with_origins_nothing_reaches_another_origin() {
    let (a, b) = (Server::start().await, Server::start().await);
    let (session, auth) = layers(Some(&a.origin()));
    let svc = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .layer(session)
        .layer(auth)
        .service(client());

    // Same-origin hop: re-checked, still ours.
    let sent = follow(&svc, &via(&a, &a.url("/echo"))).await;
    assert_eq!(sent.all("x-api-key"), ["k-123"]);
    assert_eq!(sent.all("authorization"), ["Bearer t-123"]);

    // Cross-origin hop (127.0.0.1 -> localhost): neither the token nor the API key.
    let sent = follow(&svc, &via(&a, &b.localhost_url("/echo"))).await;
    assert!(!sent.has("authorization"), "{sent:?}");
    assert!(!sent.has("x-api-key"), "{sent:?}");
    assert_eq!(b.hits(), 1);
}

#[tokio::test]
async fn inside_the_redirect_layer_without_origins_every_hop_is_authenticated() {
    // Why the origins matter: unscoped layers treat the other origin's hop as a new request.
    let (a, b) = (Server::start().await, Server::start().await);
    let (session, auth) = layers(None);
    let svc = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .layer(session)
        .layer(auth)
        .service(client());
    let sent = follow(&svc, &via(&a, &b.localhost_url("/echo"))).await;
    assert_eq!(sent.all("authorization"), ["Bearer t-123"]);
    assert_eq!(sent.all("x-api-key"), ["k-123"]);
}

#[tokio::test]
async fn outside_the_redirect_layer_the_token_is_stripped_but_custom_headers_travel() {
    let (a, b) = (Server::start().await, Server::start().await);
    let (session, auth) = layers(Some(&a.origin()));
    let svc = ServiceBuilder::new()
        .layer(session)
        .layer(auth)
        .layer(FollowRedirectLayer::new())
        .service(client());

    let sent = follow(&svc, &via(&a, &a.url("/echo"))).await;
    assert_eq!(sent.all("authorization"), ["Bearer t-123"]);
    assert_eq!(sent.all("x-api-key"), ["k-123"]);

    let sent = follow(&svc, &via(&a, &b.localhost_url("/echo"))).await;
    // tower-http's standard policy strips Authorization across origins, and we are not asked
    // again, so the token never reaches the other origin...
    assert!(!sent.has("authorization"), "{sent:?}");
    // ...but it carries other headers as they were on the first request.
    assert_eq!(sent.all("x-api-key"), ["k-123"]);
}

#[tokio::test]
async fn a_redirect_to_plain_http_elsewhere_is_refused_not_sent() {
    // Inside the redirect layer, unscoped: a hop to a non-loopback http origin would carry the
    // token in plain text, so the hop fails instead (the host is never contacted).
    let a = Server::start().await;
    let (_, auth) = layers(None);
    let svc = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .layer(auth)
        .service(client());
    let err = svc
        .oneshot(
            Request::get(via(&a, "http://api.example.invalid/"))
                .body(Body::new())
                .expect("req"),
        )
        .await
        .expect_err("refused");
    let ours = err
        .downcast_ref::<tower_client_headers::Error>()
        .expect("our error");
    assert_eq!(
        ours.kind(),
        tower_client_headers::ErrorKind::PlaintextRefused
    );
}

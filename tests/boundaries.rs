//! The credential boundaries of CONTRACT.md that are not about redirects, end to end through a
//! real hyper-util client and a real local server: strict loopback for plain http, one `Cookie`
//! field, and where a retry layer belongs.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use common::{hyper_client as client, Body, Server};
use http::header::COOKIE;
use http::{HeaderValue, Request, StatusCode};
use tower::{ServiceBuilder, ServiceExt};
use tower_client_headers::{
    BearerAuthLayer, BoxError, DefaultHeadersLayer, Error, ErrorKind, HeaderOverrides,
};

#[tokio::test]
async fn plain_http_tokens_go_only_to_loopback_as_the_contract_lists_it() {
    let server = Server::start().await;
    let auth = BearerAuthLayer::new("t-123").expect("valid");
    let svc = ServiceBuilder::new().layer(auth.clone()).service(client());
    // `localhost` in any case and 127.0.0.0/8: sent, to the real server.
    for host in ["127.0.0.1", "localhost", "LocalHost", "LOCALHOST"] {
        let url = format!("http://{host}:{}/echo", server.port());
        let (status, sent) =
            common::send(&svc, Request::get(url).body(Body::new()).expect("req")).await;
        assert_eq!(status, StatusCode::OK, "{host}");
        assert_eq!(sent.all("authorization"), ["Bearer t-123"], "{host}");
    }
    // Names under `.localhost` and `localhost.` resolve through DNS on common setups: before,
    // these were sent the token in plain text. Now refused, and nothing is sent.
    // An inner service that never connects anywhere and records what it is asked to send: a
    // bug here must not send a DNS query.
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = Arc::clone(&seen);
    let svc =
        ServiceBuilder::new()
            .layer(auth)
            .service(tower::service_fn(move |req: Request<Body>| {
                log.lock().expect("lock").push(req.uri().to_string());
                async { Ok::<_, BoxError>(http::Response::new(())) }
            }));
    for host in [
        "api.localhost",
        "localhost.",
        "api.localhost.",
        "LOCALHOST.",
    ] {
        let url = format!("http://{host}:{}/echo", server.port());
        let err = svc
            .clone()
            .oneshot(Request::get(url).body(Body::new()).expect("req"))
            .await
            .expect_err(host);
        let kind = err.downcast_ref::<Error>().map(Error::kind);
        assert_eq!(kind, Some(ErrorKind::PlaintextRefused), "{host}");
    }
    assert!(seen.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn one_cookie_field_for_every_way_a_layer_adds_it() {
    let server = Server::start().await;
    let send =
        |layer: DefaultHeadersLayer, own: &'static [&'static str], o: Option<HeaderOverrides>| {
            let url = server.url("/echo");
            async move {
                let svc = ServiceBuilder::new().layer(layer).service(client());
                let mut req = Request::get(url);
                for v in own {
                    req = req.header(COOKIE, *v);
                }
                if let Some(o) = o {
                    req = req.extension(o);
                }
                let (_, sent) = common::send(&svc, req.body(Body::new()).expect("req")).await;
                sent.all("cookie")
                    .into_iter()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            }
        };
    let append = || {
        DefaultHeadersLayer::builder()
            .append_header(COOKIE, "s=1")
            .append_header(COOKIE, "s=2")
            .build()
            .expect("valid")
    };
    // Before: two or more `Cookie` fields reached the server.
    assert_eq!(
        send(append(), &["r=1", "r=2"], None).await,
        ["r=1; r=2; s=1; s=2"]
    );
    let several = DefaultHeadersLayer::builder()
        .header(COOKIE, "a=1")
        .header(COOKIE, "b=2")
        .build()
        .expect("valid");
    assert_eq!(send(several.clone(), &[], None).await, ["a=1; b=2"]);
    // if-absent with the request's own: the request's, untouched.
    assert_eq!(send(several, &["r=1"], None).await, ["r=1"]);
    let override_ = DefaultHeadersLayer::builder()
        .override_header(COOKIE, "a=1")
        .override_header(COOKIE, "b=2")
        .build()
        .expect("valid");
    assert_eq!(send(override_, &["r=1"], None).await, ["a=1; b=2"]);
    let set = HeaderOverrides::new()
        .set(COOKIE, HeaderValue::from_static("o=1"))
        .set(COOKIE, HeaderValue::from_static("o=2"));
    assert_eq!(send(append(), &["r=1"], Some(set)).await, ["o=1; o=2"]);
}

/// Retries a request once after a `401`.
#[derive(Clone)]
struct RetryOn401 {
    left: usize,
}

impl<E> tower::retry::Policy<Request<Body>, http::Response<hyper::body::Incoming>, E>
    for RetryOn401
{
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _: &mut Request<Body>,
        result: &mut Result<http::Response<hyper::body::Incoming>, E>,
    ) -> Option<Self::Future> {
        match result {
            Ok(response) if response.status() == StatusCode::UNAUTHORIZED && self.left > 0 => {
                self.left -= 1;
                Some(std::future::ready(()))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, req: &Request<Body>) -> Option<Request<Body>> {
        let mut clone = Request::new(Body::new());
        *clone.method_mut() = req.method().clone();
        *clone.uri_mut() = req.uri().clone();
        *clone.headers_mut() = req.headers().clone();
        Some(clone)
    }
}

#[tokio::test]
async fn a_retry_layer_belongs_outside_the_auth_layer() {
    let tokens_seen = |server: &Server| -> Vec<String> {
        server
            .seen()
            .iter()
            .flat_map(|s| s.headers.all("authorization"))
            .map(str::to_owned)
            .collect()
    };
    // Outside: each attempt passes the auth layer, and the 401 dropped t1, so the retry
    // carries a fresh token.
    let server = Server::start().await;
    server.revoke("Bearer t1");
    let (fetches, source) = common::counting_source();
    let svc = ServiceBuilder::new()
        .retry(RetryOn401 { left: 1 })
        .layer(BearerAuthLayer::from_source(source))
        .service(client());
    let (status, _) = common::send(
        &svc,
        Request::get(server.url("/echo"))
            .body(Body::new())
            .expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tokens_seen(&server), ["Bearer t1", "Bearer t2"]);
    assert_eq!(fetches.load(Ordering::SeqCst), 2);

    // Inside: the retry replays what the auth layer attached once: the stale token again. The
    // README used to say either side was fine.
    let server = Server::start().await;
    server.revoke("Bearer t1");
    let (_, source) = common::counting_source();
    let svc = ServiceBuilder::new()
        .layer(BearerAuthLayer::from_source(source))
        .retry(RetryOn401 { left: 1 })
        .service(client());
    let (status, _) = common::send(
        &svc,
        Request::get(server.url("/echo"))
            .body(Body::new())
            .expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(tokens_seen(&server), ["Bearer t1", "Bearer t1"]);
}

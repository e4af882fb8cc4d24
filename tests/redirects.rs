//! Redirects with tower-http's `FollowRedirectLayer` in the same stack, against two real local
//! origins: `http://127.0.0.1:PORT` redirecting to `http://localhost:PORT` is a cross-origin hop.
//!
//! tower-http carries the *original* request's headers to every hop and, on a cross-origin hop,
//! its standard policy strips only `Authorization`, `Cookie` and `Proxy-Authorization`. So:
//! - our layers *inside* the redirect layer (it wraps them) see every hop, and origin scoping
//!   keeps every session header and the token away from other origins: the safe order;
//! - our layers *outside* add headers once; the token is stripped on a cross-origin hop, but a
//!   custom header such as `x-api-key` is carried there by the redirect layer.
//!
//! Chains (A -> B -> A) need the policy the README recommends, which keeps `HeaderOverrides`
//! across origins (tower-http's default drops every extension for the rest of the chain); the
//! overrides' credentials stay bound to the origin of the first request.

mod common;

use common::{hyper_client as client, Body, Echoed, FullBody, Server};
use http::header::COOKIE;
use http::{HeaderValue, Request, StatusCode};

use tower::{Service, ServiceBuilder, ServiceExt};
use tower_client_headers::{BearerAuthLayer, BearerToken, DefaultHeadersLayer, HeaderOverrides};
use tower_http::follow_redirect::policy::{
    clone_body_fn, FilterCredentials, Limited, Policy, PolicyExt,
};
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
async fn a_redirect_to_plain_http_elsewhere_is_refused_not_sent_by_an_unscoped_layer() {
    // Inside the redirect layer, unscoped: a hop to a non-loopback http origin would carry the
    // token in plain text, so the hop fails instead (the host is never contacted). A scoped
    // layer sends nothing there at all (the tests above), so it has nothing to refuse.
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

// ------------------------------------------------------------------ chains, per-request credentials

/// The README's redirect policy: tower-http's standard one (at most 10 hops, credential headers
/// dropped across origins), keeping `HeaderOverrides` across origins so that every hop carries
/// what the caller asked for, and replaying bodies for 307/308.
fn recommended<E>() -> impl Policy<FullBody, E> + Clone {
    Limited::default()
        .and::<_, FullBody, E>(FilterCredentials::new().allow_extension::<HeaderOverrides>())
        .and::<_, FullBody, E>(clone_body_fn(|body: &FullBody| Some(body.clone())))
}

/// Our layers for A (`127.0.0.1`) and for B (`localhost`): each origin has its own API key and
/// token, as a client of two APIs would.
struct Layers {
    session_a: DefaultHeadersLayer,
    auth_a: BearerAuthLayer,
    session_b: DefaultHeadersLayer,
    auth_b: BearerAuthLayer,
}

fn two_apis(a: &Server, b: &Server) -> Layers {
    let b_origin = b.localhost_url("");
    Layers {
        session_a: DefaultHeadersLayer::builder()
            .sensitive_header("x-api-key", "key-a")
            .origin(&a.origin())
            .build()
            .expect("valid"),
        auth_a: BearerAuthLayer::builder()
            .token("service-a")
            .origin(&a.origin())
            .build()
            .expect("valid"),
        session_b: DefaultHeadersLayer::builder()
            .sensitive_header("x-api-key-b", "key-b")
            .origin(&b_origin)
            .build()
            .expect("valid"),
        auth_b: BearerAuthLayer::builder()
            .token("service-b")
            .origin(&b_origin)
            .build()
            .expect("valid"),
    }
}

/// The recommended stack: the redirect layer outermost, every layer of ours inside, scoped; in
/// either order of our layers.
fn recommended_stack(
    l: &Layers,
    session_first: bool,
) -> impl Service<
    Request<FullBody>,
    Response = http::Response<hyper::body::Incoming>,
    Error = tower_client_headers::BoxError,
> + Clone {
    let inner = ServiceBuilder::new()
        .layer(l.session_b.clone())
        .layer(l.auth_b.clone())
        .service(common::hyper_full_client());
    let inner = if session_first {
        tower::util::Either::Left(
            ServiceBuilder::new()
                .layer(l.session_a.clone())
                .layer(l.auth_a.clone())
                .service(inner),
        )
    } else {
        tower::util::Either::Right(
            ServiceBuilder::new()
                .layer(l.auth_a.clone())
                .layer(l.session_a.clone())
                .service(inner),
        )
    };
    ServiceBuilder::new()
        .layer(FollowRedirectLayer::with_policy(recommended()))
        .service(inner)
}

fn caller_overrides() -> HeaderOverrides {
    HeaderOverrides::new()
        .bearer_token(BearerToken::new("caller").expect("valid"))
        .set(COOKIE, HeaderValue::from_static("caller-sid=1"))
}

fn request(method: &str, url: &str, body: &str, overrides: HeaderOverrides) -> Request<FullBody> {
    Request::builder()
        .method(method)
        .uri(url)
        .extension(overrides)
        .body(FullBody::from(body.to_owned()))
        .expect("request")
}

/// Nothing of ours, and none of the caller's credentials, in what B received.
fn assert_nothing_for_b_from_a(seen: &[common::Seen]) {
    assert!(!seen.is_empty());
    for s in seen {
        assert!(!s.headers.has("authorization"), "{s:?}");
        assert!(!s.headers.has("cookie"), "{s:?}");
        assert!(!s.headers.has("x-api-key"), "{s:?}");
    }
}

#[tokio::test]
async fn a_to_b_the_callers_credentials_reach_neither_b_nor_bs_own_layers() {
    let (a, b) = (Server::start().await, Server::start().await);
    let layers = two_apis(&a, &b);
    for session_first in [true, false] {
        let svc = recommended_stack(&layers, session_first);
        let url = a.redirect(&b.localhost_url("/echo"), 302);
        let (status, _) = common::send(&svc, request("GET", &url, "", caller_overrides())).await;
        assert_eq!(status, StatusCode::OK);
        // Before: B's layers saw a request with the caller's token and cookie in its overrides
        // and sent them to B.
        assert_nothing_for_b_from_a(&b.seen());
        // B-scoped session headers are B's own: they may go to B.
        assert!(b
            .seen()
            .iter()
            .all(|s| s.headers.all("x-api-key-b") == ["key-b"]));
        // A got the caller's credentials, and the session's A key.
        let first = a.seen().pop().expect("A saw the first request");
        assert_eq!(first.headers.all("authorization"), ["Bearer caller"]);
        assert_eq!(first.headers.all("cookie"), ["caller-sid=1"]);
        assert_eq!(first.headers.all("x-api-key"), ["key-a"]);
    }
}

#[tokio::test]
async fn a_to_b_to_a_the_callers_token_stays_the_callers_for_every_status() {
    let (a, b) = (Server::start().await, Server::start().await);
    let layers = two_apis(&a, &b);
    for session_first in [true, false] {
        let svc = recommended_stack(&layers, session_first);
        for status in [301, 302, 303, 307, 308] {
            for method in ["GET", "POST"] {
                let (a_before, b_before) = (a.hits(), b.hits());
                let chain = a.redirect(&b.localhost_redirect(&a.url("/echo"), status), status);
                let body = format!("payload {status}");
                let req = request(method, &chain, &body, caller_overrides());
                let (got, sent) = common::send(&svc, req).await;
                assert_eq!(got, StatusCode::OK, "{status} {method}");
                // Back at A: the caller's token and cookie, never the service's.
                assert_eq!(
                    sent.all("authorization"),
                    ["Bearer caller"],
                    "{status} {method}"
                );
                assert_eq!(sent.all("cookie"), ["caller-sid=1"], "{status} {method}");
                assert_eq!(sent.all("x-api-key"), ["key-a"], "{status} {method}");
                // B: nothing of A's, nothing of the caller's, and not B's own token either.
                let at_b = &b.seen()[b_before..];
                assert_nothing_for_b_from_a(at_b);
                assert!(at_b.iter().all(|s| !s.headers.has("authorization")));
                // 307/308 keep the method and the body on every hop; 303 (and 301/302 after
                // POST) turn the request into a GET without one.
                let last = a.seen().pop().expect("final hop");
                let kept = matches!(status, 307 | 308) || (method == "GET" && status != 303);
                if kept {
                    assert_eq!(last.method, method, "{status} {method}");
                    if method == "POST" {
                        assert_eq!(last.body, body, "{status}");
                        assert_eq!(at_b[0].body, body, "{status}");
                    }
                } else {
                    assert_eq!(last.method, "GET", "{status} {method}");
                    assert_eq!(last.body, "", "{status} {method}");
                }
                assert_eq!(a.hits() - a_before, 2, "{status} {method}");
            }
        }
    }
}

#[tokio::test]
async fn a_to_b_to_a_removals_apply_on_every_hop() {
    let (a, b) = (Server::start().await, Server::start().await);
    let layers = two_apis(&a, &b);
    let svc = recommended_stack(&layers, true);
    let chain = a.redirect(&b.localhost_redirect(&a.url("/echo"), 307), 307);
    let (_, sent) = common::send(
        &svc,
        request("GET", &chain, "", HeaderOverrides::new().remove_all()),
    )
    .await;
    assert!(
        !sent.has("authorization") && !sent.has("x-api-key"),
        "{sent:?}"
    );
    // remove_all also held at B, for B's own layers.
    assert!(b
        .seen()
        .iter()
        .all(|s| !s.headers.has("authorization") && !s.headers.has("x-api-key-b")));
    let (_, sent) = common::send(
        &svc,
        request("GET", &chain, "", HeaderOverrides::new().without_auth()),
    )
    .await;
    assert!(!sent.has("authorization"), "{sent:?}");
    assert_eq!(sent.all("x-api-key"), ["key-a"]);
}

#[tokio::test]
async fn with_tower_https_default_policy_a_chain_back_to_a_loses_the_callers_intent() {
    // Why the README recommends `allow_extension::<HeaderOverrides>()`: the default policy drops
    // every extension on the hop to B, for the rest of the chain, so back at A the request is
    // an ordinary one and gets the service's token and key although it asked for none.
    let (a, b) = (Server::start().await, Server::start().await);
    let layers = two_apis(&a, &b);
    let svc = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .layer(layers.session_a.clone())
        .layer(layers.auth_a.clone())
        .service(client());
    let chain = a.redirect(&b.localhost_redirect(&a.url("/echo"), 302), 302);
    let req = Request::get(chain)
        .extension(HeaderOverrides::new().remove_all())
        .body(Body::new())
        .expect("request");
    let (_, sent) = common::send(&svc, req).await;
    assert_eq!(sent.all("authorization"), ["Bearer service-a"]);
    assert_eq!(sent.all("x-api-key"), ["key-a"]);
}

#[tokio::test]
async fn outside_the_redirect_layer_a_chain_carries_no_credential_to_b_or_back() {
    // The order the README advises against, with the recommended policy: our layers run once,
    // tower-http drops the credential headers on the hop to B for the rest of the chain.
    let (a, b) = (Server::start().await, Server::start().await);
    let layers = two_apis(&a, &b);
    let svc = ServiceBuilder::new()
        .layer(layers.session_a.clone())
        .layer(layers.auth_a.clone())
        .layer(FollowRedirectLayer::with_policy(recommended()))
        .service(common::hyper_full_client());
    let chain = a.redirect(&b.localhost_redirect(&a.url("/echo"), 307), 307);
    let (_, sent) = common::send(&svc, request("GET", &chain, "", caller_overrides())).await;
    for s in b.seen() {
        assert!(
            !s.headers.has("authorization") && !s.headers.has("cookie"),
            "{s:?}"
        );
        // ...but the custom header travels: the reason for the recommended order.
        assert_eq!(s.headers.all("x-api-key"), ["key-a"]);
    }
    assert!(
        !sent.has("authorization") && !sent.has("cookie"),
        "{sent:?}"
    );
}

// ------------------------------------------------------------------ a 401 from elsewhere

#[tokio::test]
async fn a_401_from_a_redirect_target_elsewhere_never_drops_the_token_recommended_order() {
    let (a, b) = (Server::start().await, Server::start().await);
    let (fetches, source) = common::counting_source();
    let auth = BearerAuthLayer::builder()
        .source(source)
        .origin(&a.origin())
        .build()
        .expect("valid");
    let svc = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .layer(auth)
        .service(client());
    for _ in 0..10 {
        let url = a.redirect(&b.localhost_url("/unauthorized"), 302);
        let response = svc
            .clone()
            .oneshot(Request::get(url).body(Body::new()).expect("req"))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// `BearerAuth` outside a redirect layer, the request's authority one that
/// `Authority::from_static` took unchecked (`x/@api.example.com`: http 1.5 validates it only up
/// to the `/`): B's `401`s still leave A's token alone, and A's own `401` still drops it. (The
/// inner service stands in for a `FollowRedirect` and the two origins: no real server takes
/// such a URI over plain http, which the layer refuses.)
#[cfg(feature = "tower-http")]
#[tokio::test]
async fn a_401_from_elsewhere_never_drops_the_token_whatever_the_requests_authority() {
    use http::uri::{Authority, Parts, PathAndQuery, Scheme};
    use tower_http::follow_redirect::RequestUri;
    let (fetches, source) = common::counting_source();
    // Requests to `/elsewhere` end at B; the others at the origin they went to.
    let redirected = tower::service_fn(|req: Request<()>| async move {
        let answered_by: http::Uri = match req.uri().path() {
            "/elsewhere" => "https://b.example.net/unauthorized".parse().expect("uri"),
            _ => req.uri().clone(),
        };
        let mut response = http::Response::new(());
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        response.extensions_mut().insert(RequestUri(answered_by));
        Ok::<_, std::convert::Infallible>(response)
    });
    let svc = ServiceBuilder::new()
        .layer(BearerAuthLayer::from_source(source))
        .service(redirected);
    let uri = |authority: &'static str, path: &'static str| {
        let mut parts = Parts::default();
        parts.scheme = Some(Scheme::HTTPS);
        parts.authority = Some(Authority::from_static(authority));
        parts.path_and_query = Some(PathAndQuery::from_static(path));
        http::Uri::from_parts(parts).expect("uri")
    };
    let rejected = |uri: http::Uri| {
        let svc = svc.clone();
        async move {
            let response = svc
                .oneshot(Request::get(uri).body(()).expect("request"))
                .await
                .expect("response");
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            response
                .extensions()
                .get::<tower_client_headers::TokenRejected>()
                .is_some()
        }
    };
    let fetches = move || fetches.load(std::sync::atomic::Ordering::SeqCst);
    let mut expected = 1;
    for authority in [
        "x/@api.example.com",
        "api.example.com:443/",
        "api.example.com",
    ] {
        for _ in 0..3 {
            assert!(!rejected(uri(authority, "/elsewhere")).await, "{authority}");
            assert_eq!(
                fetches(),
                expected,
                "B's 401 dropped the token: {authority}"
            );
        }
        assert!(rejected(uri(authority, "/here")).await, "{authority}");
        assert!(!rejected(uri(authority, "/elsewhere")).await, "{authority}");
        expected += 1;
        assert_eq!(fetches(), expected, "A's 401 kept the token: {authority}");
    }
}

/// The other order, `BearerAuth` outside the redirect layer: with the `tower-http` feature it
/// reads the final `RequestUri` and sees the 401 came from B.
#[cfg(feature = "tower-http")]
#[tokio::test]
async fn a_401_from_a_redirect_target_elsewhere_never_drops_the_token_outside_order() {
    let (a, b) = (Server::start().await, Server::start().await);
    let (fetches, source) = common::counting_source();
    let svc = ServiceBuilder::new()
        .layer(BearerAuthLayer::from_source(source))
        .layer(FollowRedirectLayer::new())
        .service(client());
    let send = |url: String| {
        let svc = svc.clone();
        async move {
            svc.oneshot(Request::get(url).body(Body::new()).expect("req"))
                .await
                .expect("response")
                .status()
        }
    };
    for _ in 0..10 {
        // Before: each of these 401s (B's, about no token at all) dropped A's token.
        let status = send(a.redirect(&b.localhost_url("/unauthorized"), 302)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);
    // A 401 from A itself, after a same-origin redirect, still drops it.
    let status = send(a.redirect(&a.url("/unauthorized"), 302)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    send(a.url("/echo")).await;
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 2);
}

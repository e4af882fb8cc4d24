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
    BearerAuthLayer, BearerToken, BoxError, DefaultHeadersLayer, Error, ErrorKind, FollowRedirects,
    HeaderOverrides, Token,
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

// ------------------------------------------------------------------ redirects

/// The setup the README documents: reqwest does not follow redirects itself, `FollowRedirects`
/// follows them first in the chain, so every hop goes through the layers below it. Layers for
/// two APIs: A (`127.0.0.1`) and B (`localhost`).
fn documented_client(a: &Server, b: &Server) -> ClientWithMiddleware {
    let b_origin = b.localhost_url("");
    let reqwest = common::reqwest_without_redirects();
    ClientBuilder::new(reqwest)
        .with(FollowRedirects::new())
        .with(
            DefaultHeadersLayer::builder()
                .sensitive_header("x-api-key", "key-a")
                .origin(&a.origin())
                .build()
                .expect("valid"),
        )
        .with(
            BearerAuthLayer::builder()
                .token("service-a")
                .origin(&a.origin())
                .build()
                .expect("valid"),
        )
        .with(
            BearerAuthLayer::builder()
                .token("service-b")
                .origin(&b_origin)
                .build()
                .expect("valid"),
        )
        .build()
}

fn caller() -> HeaderOverrides {
    HeaderOverrides::new()
        .bearer_token(BearerToken::new("caller").expect("valid"))
        .set(
            http::header::COOKIE,
            http::HeaderValue::from_static("caller-sid=1"),
        )
}

fn nothing_of_a_or_the_caller(seen: &[common::Seen]) {
    assert!(!seen.is_empty());
    for s in seen {
        for name in ["authorization", "cookie", "x-api-key"] {
            assert!(!s.headers.has(name), "{name}: {s:?}");
        }
    }
}

#[tokio::test]
async fn reqwests_own_redirects_carry_scoped_headers_which_is_why_follow_redirects_exists() {
    // The finding: with reqwest following redirects (its default), below the middleware, a
    // session header scoped to A reaches B; reqwest strips only the standard credentials.
    // The layer cannot stop that hop, but it does not let it pass silently: the call fails
    // with InvalidConfig saying how to set the client up.
    let (a, b) = (Server::start().await, Server::start().await);
    let session = DefaultHeadersLayer::builder()
        .sensitive_header("x-api-key", "key-a")
        .origin(&a.origin())
        .build()
        .expect("valid");
    let auth = BearerAuthLayer::builder()
        .token("service-a")
        .origin(&a.origin())
        .build()
        .expect("valid");
    for client in [
        ClientBuilder::new(reqwest_client()).with(session).build(),
        // FollowRedirects in the wrong place (after the layers) is the same mistake.
        ClientBuilder::new(reqwest_client())
            .with(auth)
            .with(FollowRedirects::new())
            .build(),
    ] {
        let err = client
            .get(a.redirect(&b.localhost_url("/echo"), 302))
            .send()
            .await
            .expect_err("a hidden cross-origin redirect");
        let ours = Error::find(&err).expect("ours");
        assert_eq!(ours.kind(), ErrorKind::InvalidConfig);
        assert!(ours.to_string().contains("Policy::none()"), "{ours}");
        assert!(ours.to_string().contains("FollowRedirects first"), "{ours}");
    }
    // The first client's x-api-key did reach B: why the documented setup exists.
    assert!(b
        .seen()
        .iter()
        .any(|r| r.headers.all("x-api-key") == ["key-a"]));
}

#[tokio::test]
async fn with_the_documented_setup_nothing_of_ours_reaches_another_origin() {
    let (a, b) = (Server::start().await, Server::start().await);
    let client = documented_client(&a, &b);
    // A -> B: neither A's key and token, nor the caller's token and cookie, nor B's token for
    // the caller's request.
    let (status, _) = echoed(
        client
            .get(a.redirect(&b.localhost_url("/echo"), 302))
            .with_extension(caller()),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    nothing_of_a_or_the_caller(&b.seen());
    let first = a.seen().pop().expect("A saw the first hop");
    assert_eq!(first.headers.all("authorization"), ["Bearer caller"]);
    assert_eq!(first.headers.all("x-api-key"), ["key-a"]);
    // An ordinary request redirected to B is a request to B: B's own token, nothing of A's.
    let b_before = b.hits();
    let (_, sent) = echoed(client.get(a.redirect(&b.localhost_url("/echo"), 302))).await;
    assert_eq!(sent.all("authorization"), ["Bearer service-b"]);
    assert!(!sent.has("x-api-key"));
    assert_eq!(b.hits(), b_before + 1);
}

#[tokio::test]
async fn with_the_documented_setup_chains_keep_the_callers_token_for_every_status() {
    let (a, b) = (Server::start().await, Server::start().await);
    let client = documented_client(&a, &b);
    for status in [301, 302, 303, 307, 308] {
        for method in [reqwest::Method::GET, reqwest::Method::POST] {
            let b_before = b.hits();
            let chain = a.redirect(&b.localhost_redirect(&a.url("/echo"), status), status);
            let body = format!("payload {status}");
            let (got, sent) = echoed(
                client
                    .request(method.clone(), chain)
                    .body(body.clone())
                    .with_extension(caller()),
            )
            .await;
            assert_eq!(got, reqwest::StatusCode::OK, "{status} {method}");
            assert_eq!(
                sent.all("authorization"),
                ["Bearer caller"],
                "{status} {method}"
            );
            assert_eq!(sent.all("cookie"), ["caller-sid=1"], "{status} {method}");
            assert_eq!(sent.all("x-api-key"), ["key-a"], "{status} {method}");
            let at_b = &b.seen()[b_before..];
            nothing_of_a_or_the_caller(at_b);
            let last = a.seen().pop().expect("final hop");
            let kept = matches!(status, 307 | 308) || (method == "GET" && status != 303);
            if kept {
                assert_eq!(last.method, method.as_str(), "{status} {method}");
                if method == "POST" {
                    assert_eq!(last.body, body);
                    assert_eq!(at_b[0].body, body);
                }
            } else {
                assert_eq!(last.method, "GET", "{status} {method}");
                assert_eq!(last.body, "", "{status} {method}");
                assert!(
                    !last.headers.has("content-length")
                        || last.headers.all("content-length") == ["0"]
                );
            }
        }
    }
    // Removals hold on every hop.
    let chain = a.redirect(&b.localhost_redirect(&a.url("/echo"), 307), 307);
    let (_, sent) = echoed(
        client
            .get(chain)
            .with_extension(HeaderOverrides::new().remove_all()),
    )
    .await;
    assert!(
        !sent.has("authorization") && !sent.has("x-api-key"),
        "{sent:?}"
    );
}

#[tokio::test]
async fn a_callers_own_authorization_is_never_swapped_for_the_services_on_a_chain_back() {
    // The caller's token sent as the request's own header (`.bearer_auth()`, a proxy forwarding
    // it as is), not through HeaderOverrides. On A -> B -> A it is dropped at B and must come
    // back at A: without it, the auth layer would fill in the service's own token.
    let (a, b) = (Server::start().await, Server::start().await);
    let client = documented_client(&a, &b);
    for status in [302, 307] {
        let b_before = b.hits();
        let chain = a.redirect(&b.localhost_redirect(&a.url("/echo"), status), status);
        let (got, sent) = echoed(
            client
                .get(chain)
                .bearer_auth("caller-own")
                .header("cookie", "own=1"),
        )
        .await;
        assert_eq!(got, reqwest::StatusCode::OK);
        assert_eq!(sent.all("authorization"), ["Bearer caller-own"], "{status}");
        assert_eq!(sent.all("cookie"), ["own=1"], "{status}");
        let at_b = &b.seen()[b_before..];
        assert!(at_b
            .iter()
            .all(|r| !r.headers.has("cookie")
                && r.headers.all("authorization") != ["Bearer caller-own"]));
    }
}

#[tokio::test]
async fn follow_redirects_drops_the_requests_own_credentials_across_origins_and_stops_at_the_limit()
{
    let (a, b) = (Server::start().await, Server::start().await);
    let reqwest = common::reqwest_without_redirects();
    let client = ClientBuilder::new(reqwest)
        .with(FollowRedirects::new().max_redirects(1))
        .build();
    let (_, sent) = echoed(
        client
            .get(a.redirect(&b.localhost_url("/echo"), 302))
            .header("authorization", "Basic own")
            .header("cookie", "own=1"),
    )
    .await;
    assert!(
        !sent.has("authorization") && !sent.has("cookie"),
        "{sent:?}"
    );
    // Same origin: the request's own headers stay.
    let (_, sent) = echoed(
        client
            .get(a.redirect(&a.url("/echo"), 302))
            .header("authorization", "Basic own"),
    )
    .await;
    assert_eq!(sent.all("authorization"), ["Basic own"]);
    // One hop allowed, two asked: the second redirect is returned as it is.
    let response = client
        .get(a.redirect(&a.redirect(&a.url("/echo"), 302), 302))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), reqwest::StatusCode::FOUND);
}

#[tokio::test]
async fn follow_redirects_reports_a_client_that_follows_redirects_itself() {
    let (a, b) = (Server::start().await, Server::start().await);
    // reqwest's default policy: it follows below the middleware, where scoping cannot see.
    let client = ClientBuilder::new(reqwest_client())
        .with(FollowRedirects::new())
        .build();
    let err = client
        .get(a.redirect(&b.localhost_url("/echo"), 302))
        .send()
        .await
        .expect_err("misconfigured");
    let reqwest_middleware::Error::Middleware(inner) = &err else {
        panic!("expected a middleware error, got {err:?}");
    };
    let ours = inner.downcast_ref::<Error>().expect("our error");
    assert_eq!(ours.kind(), ErrorKind::InvalidConfig);
    assert!(ours.to_string().contains("Policy::none()"), "{ours}");
}

#[tokio::test]
async fn a_401_from_a_redirect_target_elsewhere_never_drops_the_token() {
    let (a, b) = (Server::start().await, Server::start().await);
    let (fetches, source) = common::counting_source();
    let auth = BearerAuthLayer::builder()
        .source(source)
        .origin(&a.origin())
        .build()
        .expect("valid");
    // reqwest following redirects itself (Response::url() is B), and the documented setup.
    let follows_itself = ClientBuilder::new(reqwest_client())
        .with(auth.clone())
        .build();
    let documented = ClientBuilder::new(common::reqwest_without_redirects())
        .with(FollowRedirects::new())
        .with(auth)
        .build();
    for _ in 0..10 {
        let response = documented
            .get(a.redirect(&b.localhost_url("/unauthorized"), 302))
            .send()
            .await
            .expect("response");
        assert_eq!(response.status(), reqwest::StatusCode::UNAUTHORIZED);
        // reqwest following the hop itself: the call fails (the hop was hidden from the
        // layer), and B's 401 does not drop the token either.
        let err = follows_itself
            .get(a.redirect(&b.localhost_url("/unauthorized"), 302))
            .send()
            .await
            .expect_err("hidden redirect");
        assert_eq!(
            Error::find(&err).map(Error::kind),
            Some(ErrorKind::InvalidConfig)
        );
    }
    // Before: 20 fetches, one per 401 from B.
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // A 401 from A itself (here after a same-origin redirect) still drops the token.
    let response = follows_itself
        .get(a.redirect(&a.url("/unauthorized"), 302))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), reqwest::StatusCode::UNAUTHORIZED);
    echoed(follows_itself.get(a.url("/echo"))).await;
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn one_cookie_field_request_pairs_then_the_sessions() {
    // aiohttp's test_cookies_merge_with_headers: the session's cookies and the request's own
    // arrive as one `Cookie` field.
    let server = Server::start().await;
    let session = DefaultHeadersLayer::builder()
        .append_header(http::header::COOKIE, "session=1")
        .append_header(http::header::COOKIE, "theme=dark")
        .build()
        .expect("valid");
    let client = ClientBuilder::new(reqwest_client()).with(session).build();
    let (_, sent) = echoed(client.get(server.url("/a")).header("cookie", "request=1")).await;
    assert_eq!(sent.all("cookie"), ["request=1; session=1; theme=dark"]);
    let (_, sent) = echoed(
        client.get(server.url("/b")).with_extension(
            HeaderOverrides::new()
                .set(http::header::COOKIE, http::HeaderValue::from_static("o=1"))
                .set(http::header::COOKIE, http::HeaderValue::from_static("o=2")),
        ),
    )
    .await;
    assert_eq!(sent.all("cookie"), ["o=1; o=2"]);
}

#[tokio::test]
async fn follow_redirects_treats_a_sensitive_value_as_the_requests_own_credential() {
    let (a, b) = (Server::start().await, Server::start().await);
    let reqwest = common::reqwest_without_redirects();
    let client = ClientBuilder::new(reqwest)
        .with(FollowRedirects::new())
        .build();
    let mut key = reqwest::header::HeaderValue::from_static("own-key");
    key.set_sensitive(true);
    // A -> B: the caller's sensitive API key stays at A.
    let (_, sent) = echoed(
        client
            .get(a.redirect(&b.localhost_url("/echo"), 302))
            .header("x-api-key", key.clone())
            .header("x-plain", "travels"),
    )
    .await;
    assert!(!sent.has("x-api-key"), "{sent:?}");
    assert_eq!(sent.all("x-plain"), ["travels"]);
    // A -> B -> A: back at A, it is the request's again.
    let back = b.localhost_redirect(&a.url("/echo"), 302);
    let (_, sent) = echoed(client.get(a.redirect(&back, 302)).header("x-api-key", key)).await;
    assert_eq!(sent.all("x-api-key"), ["own-key"]);
}

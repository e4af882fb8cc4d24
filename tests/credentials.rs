//! Credentials beyond bearer tokens, end to end against real local servers: Basic credentials
//! and API keys get every protection a bearer token has (loopback only in plain text, origin
//! scoping across real redirects, per-request override and suppression, redaction), fixed,
//! rotated by a source, or set at runtime for a logged-in user.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{hyper_client as client, send, Body, Server};
use http::{HeaderName, HeaderValue, Request, StatusCode};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
use tower_client_headers::{
    BearerAuthLayer, BearerToken, BoxError, Credential, Error, ErrorKind, HeaderOverrides, Token,
};
use tower_http::follow_redirect::policy::{FilterCredentials, Limited, PolicyExt};
use tower_http::follow_redirect::FollowRedirectLayer;

/// `Basic base64("alice:s3cret pass")`.
const ALICE: &str = "Basic YWxpY2U6czNjcmV0IHBhc3M=";

fn basic() -> Credential {
    Credential::basic("alice", "s3cret pass").expect("valid")
}

fn api_key(key: &str) -> Credential {
    Credential::api_key("x-api-key", key).expect("valid")
}

fn get(url: &str) -> Request<Body> {
    Request::get(url).body(Body::new()).expect("request")
}

fn with(url: &str, overrides: HeaderOverrides) -> Request<Body> {
    Request::get(url)
        .extension(overrides)
        .body(Body::new())
        .expect("request")
}

/// A layer's failure, out of the `BoxError` of `BearerAuth`.
async fn refusal<S>(svc: &S, req: Request<Body>) -> Error
where
    S: Service<Request<Body>, Error = BoxError> + Clone,
    S::Response: std::fmt::Debug,
{
    let err = svc.clone().oneshot(req).await.expect_err("refused");
    Error::find(&*err).expect("ours").clone()
}

#[tokio::test]
async fn basic_and_api_keys_go_to_loopback_in_plain_text_and_never_to_a_remote_host() {
    let server = Server::start().await;
    for (credential, header, value) in [
        (basic(), "authorization", ALICE),
        (api_key("k-123"), "x-api-key", "k-123"),
    ] {
        let auth = BearerAuthLayer::builder()
            .credential(credential)
            .build()
            .expect("valid");
        let svc = ServiceBuilder::new().layer(auth).service(client());
        // Loopback, by address and by name.
        for url in [server.url("/a"), server.localhost_url("/a")] {
            let (status, sent) = send(&svc, get(&url)).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(sent.all(header), [value]);
        }
        // A remote host over plain http: refused before the client is called.
        let before = server.hits();
        let err = refusal(&svc, get("http://api.example.com/a")).await;
        assert_eq!(err.kind(), ErrorKind::PlaintextRefused);
        assert!(err.to_string().contains(header), "{err}");
        assert!(!err.to_string().contains("k-123") && !err.to_string().contains("YWxp"));
        assert_eq!(server.hits(), before);
    }
}

/// Every `x-api-key` the inner service received, as it came, and that service.
#[allow(clippy::type_complexity)]
fn recording_api_keys() -> (
    Arc<std::sync::Mutex<Vec<Option<HeaderValue>>>>,
    impl Service<
            Request<()>,
            Response = http::Response<()>,
            Error = std::convert::Infallible,
            Future = impl Send,
        > + Clone,
) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let inner = service_fn(move |req: Request<()>| {
        record
            .lock()
            .expect("lock")
            .push(req.headers().get("x-api-key").cloned());
        async { Ok::<_, std::convert::Infallible>(http::Response::new(())) }
    });
    (seen, inner)
}

#[tokio::test]
async fn allow_http_sends_to_a_remote_plain_http_host_and_nothing_else_changes() {
    let (seen, inner) = recording_api_keys();
    let auth = BearerAuthLayer::builder()
        .credential(api_key("k-123"))
        .allow_http(true)
        .build()
        .expect("valid");
    let svc = ServiceBuilder::new().layer(auth).service(inner);
    svc.oneshot(Request::get("http://10.1.2.3/").body(()).expect("request"))
        .await
        .expect("sent");
    let seen = seen.lock().expect("lock");
    let value = seen[0].as_ref().expect("the key was sent");
    assert_eq!(value, "k-123");
    assert!(value.is_sensitive());
}

/// tower-http's standard redirect policy keeping `HeaderOverrides` on every hop, as the README
/// recommends.
fn follow_layer(
) -> FollowRedirectLayer<impl tower_http::follow_redirect::policy::Policy<Body, BoxError> + Clone> {
    FollowRedirectLayer::with_policy(
        Limited::default().and::<_, Body, BoxError>(
            FilterCredentials::new().allow_extension::<HeaderOverrides>(),
        ),
    )
}

#[tokio::test]
async fn scoped_credentials_stay_with_their_origin_across_real_redirects() {
    let (a, b) = (Server::start().await, Server::start().await);
    for (credential, header, value) in [
        (basic(), "authorization", ALICE),
        (api_key("k-123"), "x-api-key", "k-123"),
    ] {
        let auth = BearerAuthLayer::builder()
            .credential(credential)
            .origin(&a.origin())
            .build()
            .expect("valid");
        let svc = ServiceBuilder::new()
            .layer(follow_layer())
            .layer(auth)
            .service(client());
        // A -> B: B (another origin: localhost) gets nothing.
        let b_before = b.hits();
        let (status, sent) = send(&svc, get(&a.redirect(&b.localhost_url("/b"), 302))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!sent.has(header), "{header} reached B: {sent:?}");
        assert_eq!(b.hits(), b_before + 1);
        // The first hop at A carried it.
        let at_a = a.seen().last().cloned().expect("A was hit");
        assert_eq!(at_a.headers.all(header), [value]);
        // A -> B -> A: the hop back to A carries it again; B still gets nothing.
        let back = b.localhost_redirect(&a.url("/back"), 307);
        let (status, sent) = send(&svc, get(&a.redirect(&back, 302))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(sent.all(header), [value]);
        let at_b = b.seen().last().cloned().expect("B was hit");
        assert!(!at_b.headers.has(header), "{at_b:?}");
    }
}

/// A service key scoped to both servers' origins (A at 127.0.0.1, B at localhost), inside
/// the recommended redirect layer.
fn key_layer_for_both(
    a: &Server,
    b: &Server,
) -> impl Service<
    Request<Body>,
    Response = http::Response<hyper::body::Incoming>,
    Error = BoxError,
    Future = impl Send,
> + Clone {
    let auth = BearerAuthLayer::builder()
        .credential(api_key("service-key"))
        .origin(&a.origin())
        .origin(&b.localhost_url(""))
        .build()
        .expect("valid");
    ServiceBuilder::new()
        .layer(follow_layer())
        .layer(auth)
        .service(client())
}

#[tokio::test]
async fn a_per_request_credential_is_bound_to_the_first_origin_across_redirects() {
    let (a, b) = (Server::start().await, Server::start().await);
    let svc = key_layer_for_both(&a, &b);
    // The caller's key, on a chain A -> B -> A, with both origins in the layer's scope: B
    // gets neither the caller's key nor the service's; back at A, the caller's again.
    let back = b.localhost_redirect(&a.url("/back"), 302);
    let overrides = HeaderOverrides::new().credential(api_key("caller-key"));
    let (_, sent) = send(&svc, with(&a.redirect(&back, 302), overrides)).await;
    assert_eq!(sent.all("x-api-key"), ["caller-key"]);
    let at_b = b.seen().last().cloned().expect("B was hit");
    assert!(!at_b.headers.has("x-api-key"), "{at_b:?}");
}

#[tokio::test]
async fn suppressed_or_overridden_per_request_and_the_requests_own_value_kept() {
    let server = Server::start().await;
    let key = HeaderName::from_static("x-api-key");
    let auth = BearerAuthLayer::builder()
        .credential(api_key("k-123"))
        .build()
        .expect("valid");
    let svc = ServiceBuilder::new().layer(auth).service(client());
    let url = server.url("/x");
    for overrides in [
        HeaderOverrides::new().without_auth(),
        HeaderOverrides::new().remove(key.clone()),
        HeaderOverrides::new().remove_all(),
    ] {
        let (_, sent) = send(&svc, with(&url, overrides.clone())).await;
        assert!(!sent.has("x-api-key"), "{overrides:?}: {sent:?}");
    }
    // Removing another header, or Authorization, leaves the key alone.
    let (_, sent) = send(
        &svc,
        with(
            &url,
            HeaderOverrides::new().remove(http::header::AUTHORIZATION),
        ),
    )
    .await;
    assert_eq!(sent.all("x-api-key"), ["k-123"]);
    // Another key for one request: the credential, or a `set` of the header.
    let (_, sent) = send(
        &svc,
        with(&url, HeaderOverrides::new().credential(api_key("k-other"))),
    )
    .await;
    assert_eq!(sent.all("x-api-key"), ["k-other"]);
    let set = HeaderOverrides::new().set(key.clone(), HeaderValue::from_static("k-set"));
    let (_, sent) = send(&svc, with(&url, set)).await;
    assert_eq!(sent.all("x-api-key"), ["k-set"]);
    // The credential beats removal.
    let both = HeaderOverrides::new()
        .without_auth()
        .credential(api_key("k-mine"));
    let (_, sent) = send(&svc, with(&url, both)).await;
    assert_eq!(sent.all("x-api-key"), ["k-mine"]);
    // The request's own key is kept.
    let own = Request::get(&url)
        .header("x-api-key", "k-own")
        .body(Body::new())
        .expect("request");
    let (_, sent) = send(&svc, own).await;
    assert_eq!(sent.all("x-api-key"), ["k-own"]);
    // A per-request credential is refused in plain text to a remote host, like the layer's.
    let err = refusal(
        &svc,
        with(
            "http://api.example.com/",
            HeaderOverrides::new().credential(api_key("k-other")),
        ),
    )
    .await;
    assert_eq!(err.kind(), ErrorKind::PlaintextRefused);
}

#[tokio::test]
async fn a_basic_layer_and_an_api_key_layer_stack_and_without_auth_drops_both() {
    let server = Server::start().await;
    let svc = ServiceBuilder::new()
        .layer(
            BearerAuthLayer::builder()
                .credential(basic())
                .build()
                .expect("valid"),
        )
        .layer(
            BearerAuthLayer::builder()
                .credential(api_key("k-123"))
                .build()
                .expect("valid"),
        )
        .service(client());
    let url = server.url("/x");
    let (_, sent) = send(&svc, get(&url)).await;
    assert_eq!(sent.all("authorization"), [ALICE]);
    assert_eq!(sent.all("x-api-key"), ["k-123"]);
    let (_, sent) = send(&svc, with(&url, HeaderOverrides::new().without_auth())).await;
    assert!(
        !sent.has("authorization") && !sent.has("x-api-key"),
        "{sent:?}"
    );
    // Per-request Basic credentials for another user reach only the Basic layer's header.
    let bob = Credential::basic("bob", "pw").expect("valid");
    let (_, sent) = send(&svc, with(&url, HeaderOverrides::new().credential(bob))).await;
    assert_eq!(sent.all("authorization"), ["Basic Ym9iOnB3"]);
    assert_eq!(sent.all("x-api-key"), ["k-123"]);
}

#[tokio::test]
async fn login_sets_the_credential_for_every_clone_and_logout_clears_it() {
    let server = Server::start().await;
    let auth = BearerAuthLayer::builder()
        .logged_out()
        .origin(&server.origin())
        .build()
        .expect("valid");
    let svc = ServiceBuilder::new().layer(auth.clone()).service(client());
    let other = ServiceBuilder::new().layer(auth.clone()).service(client());
    let url = server.url("/me");

    // Logged out: sent without a credential, and not refused anywhere.
    let (_, sent) = send(&svc, get(&url)).await;
    assert!(!sent.has("authorization"));

    auth.set_credential(BearerToken::new("user-1").expect("valid"))
        .expect("a logged_out layer");
    for s in [&svc, &other] {
        let (_, sent) = send(s, get(&url)).await;
        assert_eq!(sent.all("authorization"), ["Bearer user-1"]);
    }
    // Plaintext refusal applies once logged in.
    let remote = BearerAuthLayer::builder()
        .logged_out()
        .build()
        .expect("valid");
    let remote_svc = ServiceBuilder::new()
        .layer(remote.clone())
        .service(client());
    remote
        .set_credential(BearerToken::new("user-1").expect("valid"))
        .expect("set");
    let err = refusal(&remote_svc, get("http://api.example.com/")).await;
    assert_eq!(err.kind(), ErrorKind::PlaintextRefused);

    // A credential for another header changes nothing.
    let err = auth
        .set_credential(api_key("k"))
        .expect_err("another header");
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.to_string().contains("x-api-key") && !err.to_string().contains("user-1"));
    let (_, sent) = send(&svc, get(&url)).await;
    assert_eq!(sent.all("authorization"), ["Bearer user-1"]);

    // Logout: gone for every clone.
    auth.invalidate();
    for s in [&svc, &other] {
        let (_, sent) = send(s, get(&url)).await;
        assert!(!sent.has("authorization"), "{sent:?}");
    }
    assert!(!format!("{auth:?}").contains("user-1"));

    // Fixed and source layers refuse set_credential.
    let fixed = BearerAuthLayer::new("t").expect("valid");
    let err = fixed
        .set_credential(BearerToken::new("u").expect("valid"))
        .expect_err("fixed");
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_in_flight_carry_the_old_or_the_new_credential_never_another() {
    let server = Server::start().await;
    let auth = BearerAuthLayer::builder()
        .logged_out()
        .header_name("x-api-key")
        .build()
        .expect("valid");
    let svc = ServiceBuilder::new().layer(auth.clone()).service(client());
    let url = server.url("/x");
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (svc, url) = (svc.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut last = 0u32;
            for _ in 0..50 {
                let (_, sent) = send(&svc, get(&url)).await;
                let keys = sent.all("x-api-key");
                assert!(keys.len() <= 1, "{keys:?}");
                // Generations only move forward for one task.
                let n = keys
                    .first()
                    .map_or(0, |k| k.trim_start_matches("k-").parse().expect("k-N"));
                assert!(n >= last, "went back from {last} to {n}");
                last = n;
            }
        }));
    }
    for n in 1..=100u32 {
        auth.set_credential(api_key(&format!("k-{n}")))
            .expect("set");
        tokio::task::yield_now().await;
    }
    for task in tasks {
        task.await.expect("no assertion failed");
    }
}

#[tokio::test(start_paused = true)]
async fn a_source_rotates_api_keys_and_a_401_drops_the_key_it_answered() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&fetches);
    let auth = BearerAuthLayer::builder()
        .source(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                let key = Credential::api_key("x-api-key", format!("k-{n}"))?;
                Ok::<_, BoxError>(Token::from_credential(key).expires_in(Duration::from_secs(600)))
            }
        })
        .header_name("x-api-key")
        .refresh_before(Duration::from_secs(60))
        .build()
        .expect("valid");
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let record = Arc::clone(&seen);
    let inner = service_fn(move |req: Request<()>| {
        let key = req.headers()["x-api-key"]
            .to_str()
            .expect("ascii")
            .to_owned();
        record.lock().expect("lock").push(key.clone());
        async move {
            let mut response = http::Response::new(());
            if key == "k-2" {
                *response.status_mut() = StatusCode::UNAUTHORIZED;
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let svc = ServiceBuilder::new().layer(auth).service(inner);
    let call = || {
        svc.clone().oneshot(
            Request::get("https://api.example.com/")
                .body(())
                .expect("request"),
        )
    };
    call().await.expect("k-1");
    // Past the refresh point: the background refresh brings k-2 while k-1 is still valid.
    tokio::time::advance(Duration::from_secs(541)).await;
    call().await.expect("k-1, refresh started");
    tokio::task::yield_now().await;
    let rejected = call().await.expect("k-2, rejected");
    assert_eq!(rejected.status(), StatusCode::UNAUTHORIZED);
    assert!(rejected
        .extensions()
        .get::<tower_client_headers::TokenRejected>()
        .is_some());
    call().await.expect("k-3");
    assert_eq!(*seen.lock().expect("lock"), ["k-1", "k-1", "k-2", "k-3"]);
    assert_eq!(fetches.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_source_returning_a_credential_for_another_header_is_a_failed_fetch() {
    let auth = BearerAuthLayer::builder()
        .source(|| async {
            Ok::<_, BoxError>(Token::from_credential(Credential::api_key(
                "x-other", "k-s3cr3t",
            )?))
        })
        .header_name("x-api-key")
        .build()
        .expect("valid");
    let sent = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&sent);
    let inner = service_fn(move |_: Request<()>| {
        count.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, std::convert::Infallible>(http::Response::new(())) }
    });
    let svc = ServiceBuilder::new().layer(auth).service(inner);
    let err = svc
        .oneshot(
            Request::get("https://api.example.com/")
                .body(())
                .expect("request"),
        )
        .await
        .expect_err("mismatch");
    let ours = Error::find(&*err).expect("ours");
    assert_eq!(ours.kind(), ErrorKind::TokenFetch);
    let message = ours.to_string();
    assert!(
        message.contains("x-other") && message.contains("x-api-key"),
        "{message}"
    );
    assert!(!message.contains("k-s3cr3t"));
    assert_eq!(sent.load(Ordering::SeqCst), 0);
}

#[test]
fn builder_errors_name_the_problem_never_the_secret() {
    // A fixed credential for another header than the one named.
    let err = BearerAuthLayer::builder()
        .credential(api_key("k-s3cr3t"))
        .header_name("authorization")
        .build()
        .expect_err("mismatch");
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(!err.to_string().contains("k-s3cr3t"));
    // Two modes.
    let err = BearerAuthLayer::builder()
        .credential(basic())
        .logged_out()
        .build()
        .expect_err("two modes");
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    // A framing header cannot carry a credential.
    let err = BearerAuthLayer::builder()
        .logged_out()
        .header_name("content-length")
        .build()
        .expect_err("framing");
    assert_eq!(err.kind(), ErrorKind::InvalidHeaderName);
    // Debug of every builder and layer: names, never values.
    let builder = BearerAuthLayer::builder().credential(basic());
    let layer = BearerAuthLayer::builder()
        .credential(api_key("k-s3cr3t"))
        .build()
        .expect("valid");
    let shown = format!("{builder:?} {layer:?} {:?}", basic());
    for secret in ["k-s3cr3t", "s3cret", "YWxp", "alice"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(shown.contains("x-api-key"), "{shown}");
}

#[tokio::test]
async fn a_per_request_credential_for_another_header_is_sent_too_never_dropped() {
    // A gateway forwarding its caller's token through a layer that sends an API key: the
    // caller's token goes, beside the service's key (before, it was silently dropped).
    let server = Server::start().await;
    let auth = BearerAuthLayer::builder()
        .credential(api_key("service-key"))
        .build()
        .expect("valid");
    let svc = ServiceBuilder::new().layer(auth).service(client());
    let caller = BearerToken::new("caller-token").expect("valid");
    let (_, sent) = send(
        &svc,
        with(
            &server.url("/x"),
            HeaderOverrides::new().bearer_token(caller.clone()),
        ),
    )
    .await;
    assert_eq!(sent.all("authorization"), ["Bearer caller-token"]);
    assert_eq!(sent.all("x-api-key"), ["service-key"]);
    // Refused in plain text elsewhere, like the layer's own.
    let err = refusal(
        &svc,
        with(
            "http://api.example.com/",
            HeaderOverrides::new().bearer_token(caller),
        ),
    )
    .await;
    assert_eq!(err.kind(), ErrorKind::PlaintextRefused);
}

#[tokio::test]
async fn a_set_of_the_layers_header_is_bound_to_the_first_origin_like_a_credential() {
    let (a, b) = (Server::start().await, Server::start().await);
    let svc = key_layer_for_both(&a, &b);
    // Not marked sensitive by the caller: still the layer's credential, so bound to A.
    let set = || {
        HeaderOverrides::new().set(
            HeaderName::from_static("x-api-key"),
            HeaderValue::from_static("caller-set"),
        )
    };
    let (_, sent) = send(&svc, with(&a.redirect(&b.localhost_url("/b"), 302), set())).await;
    assert!(!sent.has("x-api-key"), "B got {sent:?}");
    let back = b.localhost_redirect(&a.url("/back"), 302);
    let (_, sent) = send(&svc, with(&a.redirect(&back, 302), set())).await;
    assert_eq!(sent.all("x-api-key"), ["caller-set"]);
}

#[tokio::test]
async fn the_requests_own_value_is_marked_sensitive_even_when_suppressed() {
    let (seen, inner) = recording_api_keys();
    let auth = BearerAuthLayer::builder()
        .credential(api_key("k"))
        .build()
        .expect("valid");
    let svc = ServiceBuilder::new().layer(auth).service(inner);
    for overrides in [
        None,
        Some(HeaderOverrides::new().without_auth()),
        Some(HeaderOverrides::new().remove_all()),
        Some(HeaderOverrides::new().remove(HeaderName::from_static("x-api-key"))),
    ] {
        let mut req = Request::get("https://api.example.com/")
            .header("x-api-key", "own")
            .body(())
            .expect("request");
        if let Some(o) = overrides {
            req.extensions_mut().insert(o);
        }
        svc.clone().oneshot(req).await.expect("sent");
    }
    let sensitive: Vec<Option<bool>> = seen
        .lock()
        .expect("lock")
        .iter()
        .map(|key| key.as_ref().map(HeaderValue::is_sensitive))
        .collect();
    assert_eq!(sensitive, [Some(true); 4]);
}

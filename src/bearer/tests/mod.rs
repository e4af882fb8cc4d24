//! The bearer rules, through the tower service with a recording inner service. Token-source
//! timing runs on tokio's paused clock.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use tokio::time::Instant;
use tower::{service_fn, Service, ServiceExt};
use tower_layer::Layer;

mod faults;
mod rejected;
mod soft_refresh;

use crate::{
    BearerAuthLayer, BearerToken, BoxError, Error, ErrorKind, HeaderOverrides, Token, TokenSource,
};

/// What the inner service saw: every request's headers. It answers `401` to tokens in
/// `rejected`, and otherwise echoes the `Authorization` values.
#[derive(Clone, Default)]
struct Upstream {
    seen: Arc<Mutex<Vec<HeaderMap>>>,
    rejected: Arc<Mutex<HashSet<String>>>,
    /// How long each response takes, so that concurrent requests really overlap.
    delay: Duration,
}

impl Upstream {
    fn slow(delay: Duration) -> Self {
        Self {
            delay,
            ..Self::default()
        }
    }

    fn service(
        &self,
    ) -> impl Service<
        Request<()>,
        Response = Response<Vec<String>>,
        Error = Infallible,
        Future = impl std::future::Future<Output = Result<Response<Vec<String>>, Infallible>>
                     + Send
                     + 'static,
    > + Clone
           + Send
           + 'static {
        let this = self.clone();
        service_fn(move |req: Request<()>| {
            let this = this.clone();
            async move {
                let auth: Vec<String> = req
                    .headers()
                    .get_all(AUTHORIZATION)
                    .iter()
                    .map(|v| v.to_str().unwrap_or("<binary>").to_owned())
                    .collect();
                this.seen.lock().expect("lock").push(req.headers().clone());
                if !this.delay.is_zero() {
                    tokio::time::sleep(this.delay).await;
                }
                let mut response = Response::new(auth.clone());
                let rejected = this.rejected.lock().expect("lock");
                if auth.iter().any(|a| rejected.contains(a)) {
                    *response.status_mut() = StatusCode::UNAUTHORIZED;
                }
                Ok::<_, Infallible>(response)
            }
        })
    }

    fn calls(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }

    fn reject(&self, auth: &str) {
        self.rejected.lock().expect("lock").insert(auth.to_owned());
    }
}

fn get(uri: &str) -> Request<()> {
    Request::get(uri).body(()).expect("request")
}

fn with(uri: &str, overrides: HeaderOverrides) -> Request<()> {
    Request::get(uri)
        .extension(overrides)
        .body(())
        .expect("request")
}

fn token(s: &str) -> BearerToken {
    BearerToken::new(s).expect("valid token")
}

async fn send<S>(svc: &S, req: Request<()>) -> Result<Response<Vec<String>>, BoxError>
where
    S: Service<Request<()>, Response = Response<Vec<String>>, Error = BoxError> + Clone,
{
    svc.clone().oneshot(req).await
}

async fn auth_of<S>(svc: &S, req: Request<()>) -> Vec<String>
where
    S: Service<Request<()>, Response = Response<Vec<String>>, Error = BoxError> + Clone,
{
    send(svc, req).await.expect("response").into_body()
}

fn kind(err: &BoxError) -> Option<ErrorKind> {
    err.downcast_ref::<Error>().map(Error::kind)
}

const API: &str = "https://api.example.com/v1";

// ---------------------------------------------------------------- fixed token

#[tokio::test]
async fn fixed_token_is_one_sensitive_bearer_value() {
    let up = Upstream::default();
    let svc = BearerAuthLayer::new("abc.123")
        .expect("valid")
        .layer(up.service());
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer abc.123"]);
    let seen = up.seen.lock().expect("lock");
    assert!(seen[0][AUTHORIZATION].is_sensitive());
}

#[tokio::test]
async fn the_request_own_authorization_wins() {
    let up = Upstream::default();
    let svc = BearerAuthLayer::new("abc")
        .expect("valid")
        .layer(up.service());
    let req = Request::get(API)
        .header(AUTHORIZATION, "Basic dXNlcg==")
        .body(())
        .expect("request");
    assert_eq!(auth_of(&svc, req).await, ["Basic dXNlcg=="]);
}

#[tokio::test]
async fn per_request_token_replaces_the_layer_token_and_beats_everything() {
    let up = Upstream::default();
    let svc = BearerAuthLayer::new("layer")
        .expect("valid")
        .layer(up.service());
    let req = with(API, HeaderOverrides::new().bearer_token(token("mine")));
    assert_eq!(auth_of(&svc, req).await, ["Bearer mine"]);

    // Beats removal, whatever the order, and the request's own Authorization.
    for overrides in [
        HeaderOverrides::new()
            .without_auth()
            .bearer_token(token("mine")),
        HeaderOverrides::new()
            .bearer_token(token("mine"))
            .remove_all(),
    ] {
        let req = Request::get(API)
            .header(AUTHORIZATION, "Basic own")
            .extension(overrides)
            .body(())
            .expect("request");
        assert_eq!(auth_of(&svc, req).await, ["Bearer mine"]);
    }
}

#[tokio::test]
async fn set_authorization_is_honoured_exactly() {
    let up = Upstream::default();
    let svc = BearerAuthLayer::new("layer")
        .expect("valid")
        .layer(up.service());
    let overrides = HeaderOverrides::new()
        .remove(AUTHORIZATION)
        .set(AUTHORIZATION, HeaderValue::from_static("Basic a"))
        .set(AUTHORIZATION, HeaderValue::from_static("Basic b"));
    let req = Request::get(API)
        .header(AUTHORIZATION, "Basic own")
        .extension(overrides)
        .body(())
        .expect("request");
    assert_eq!(auth_of(&svc, req).await, ["Basic a", "Basic b"]);
}

#[tokio::test]
async fn suppression_sends_no_token() {
    let up = Upstream::default();
    let svc = BearerAuthLayer::new("layer")
        .expect("valid")
        .layer(up.service());
    for overrides in [
        HeaderOverrides::new().without_auth(),
        HeaderOverrides::new().remove(AUTHORIZATION),
        HeaderOverrides::new().remove_all(),
    ] {
        assert!(auth_of(&svc, with(API, overrides)).await.is_empty());
    }
    // Removing another header does not suppress the token.
    let other = HeaderOverrides::new().remove(http::header::USER_AGENT);
    assert_eq!(auth_of(&svc, with(API, other)).await, ["Bearer layer"]);
}

#[tokio::test]
async fn origin_scoping_leaves_other_origins_untouched_overrides_included() {
    let up = Upstream::default();
    let layer = BearerAuthLayer::builder()
        .token("layer")
        .origin("https://api.example.com")
        .origin("http://127.0.0.1:8080")
        .build()
        .expect("valid");
    let svc = layer.layer(up.service());
    assert_eq!(
        auth_of(&svc, get("https://API.example.com:443/x")).await,
        ["Bearer layer"]
    );
    assert_eq!(
        auth_of(&svc, get("http://127.0.0.1:8080/x")).await,
        ["Bearer layer"]
    );
    for uri in [
        "https://other.example.com/",
        "https://api.example.com:8443/",
        "https://api.example.com@evil.net/",
        "http://127.0.0.1:8081/",
        "/relative",
    ] {
        assert!(auth_of(&svc, get(uri)).await.is_empty(), "{uri}");
        let per_request = HeaderOverrides::new().bearer_token(token("mine"));
        assert!(
            auth_of(&svc, with(uri, per_request)).await.is_empty(),
            "{uri}"
        );
    }
}

#[tokio::test]
async fn plaintext_to_a_remote_host_is_refused_and_nothing_is_sent() {
    let up = Upstream::default();
    let svc = BearerAuthLayer::new("s3cr3t")
        .expect("valid")
        .layer(up.service());
    for uri in [
        "http://api.example.com/",
        "HTTP://api.example.com/",
        "http://10.0.0.1/",
        "http://localhost@evil.net/",
        "/relative",
    ] {
        let err = send(&svc, get(uri)).await.expect_err(uri);
        assert_eq!(kind(&err), Some(ErrorKind::PlaintextRefused), "{uri}");
        assert!(!err.to_string().contains("s3cr3t"));
        // Per-request tokens are refused too.
        let req = with(uri, HeaderOverrides::new().bearer_token(token("mine")));
        let err = send(&svc, req).await.expect_err(uri);
        assert_eq!(kind(&err), Some(ErrorKind::PlaintextRefused), "{uri}");
        let set = HeaderOverrides::new().set(AUTHORIZATION, HeaderValue::from_static("Basic x"));
        let err = send(&svc, with(uri, set)).await.expect_err(uri);
        assert_eq!(kind(&err), Some(ErrorKind::PlaintextRefused), "{uri}");
    }
    assert_eq!(up.calls(), 0, "nothing may reach the inner service");
    let err = send(&svc, get("http://api.example.com/"))
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("api.example.com"), "{err}");
}

#[tokio::test]
async fn loopback_is_plaintext_safe() {
    let up = Upstream::default();
    let svc = BearerAuthLayer::new("t")
        .expect("valid")
        .layer(up.service());
    for uri in [
        "http://127.0.0.1:3000/",
        "http://127.8.9.10/",
        "http://[::1]:3000/",
        "http://localhost:3000/",
        "http://LocalHost:3000/",
        "http://[::ffff:127.0.0.1]/",
    ] {
        assert_eq!(auth_of(&svc, get(uri)).await, ["Bearer t"], "{uri}");
    }
    // Names that only look local go through DNS on common resolvers: refused, nothing sent.
    for uri in [
        "http://api.localhost/",
        "http://localhost./",
        "http://api.localhost.:3000/",
    ] {
        let err = send(&svc, get(uri)).await.expect_err(uri);
        assert_eq!(kind(&err), Some(ErrorKind::PlaintextRefused), "{uri}");
    }
    assert_eq!(up.calls(), 6, "nothing was sent for the refused ones");
}

#[tokio::test]
async fn requests_without_a_token_are_never_refused() {
    let up = Upstream::default();
    let svc = BearerAuthLayer::builder()
        .token("t")
        .origin("http://api.example.com")
        .build()
        .expect("valid")
        .layer(up.service());
    // Other origin, over plain http.
    assert!(auth_of(&svc, get("http://other.example.com/"))
        .await
        .is_empty());
    // Suppressed.
    let req = with(
        "http://api.example.com/",
        HeaderOverrides::new().without_auth(),
    );
    assert!(auth_of(&svc, req).await.is_empty());
    // Own Authorization.
    let req = Request::get("http://api.example.com/")
        .header(AUTHORIZATION, "Basic own")
        .body(())
        .expect("request");
    assert_eq!(auth_of(&svc, req).await, ["Basic own"]);
    // But the token itself is refused.
    let err = send(&svc, get("http://api.example.com/"))
        .await
        .expect_err("refused");
    assert_eq!(kind(&err), Some(ErrorKind::PlaintextRefused));
    assert_eq!(up.calls(), 3);
}

#[tokio::test]
async fn allow_http_sends_over_plaintext() {
    let up = Upstream::default();
    let svc = BearerAuthLayer::builder()
        .token("t")
        .allow_http(true)
        .build()
        .expect("valid")
        .layer(up.service());
    assert_eq!(
        auth_of(&svc, get("http://api.example.com/")).await,
        ["Bearer t"]
    );
}

#[tokio::test]
async fn inner_errors_pass_through_boxed() {
    let svc = BearerAuthLayer::new("t")
        .expect("valid")
        .layer(service_fn(|_: Request<()>| async {
            Err::<Response<()>, _>(std::io::Error::other("connection reset"))
        }));
    let err = svc.oneshot(get(API)).await.expect_err("inner error");
    assert!(err.downcast_ref::<std::io::Error>().is_some());
    assert!(kind(&err).is_none());
}

#[test]
fn builder_errors() {
    let err = BearerAuthLayer::builder().build().expect_err("neither");
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    let err = BearerAuthLayer::builder()
        .token("t")
        .source(|| async { Ok::<_, BoxError>(Token::new(BearerToken::new("t")?)) })
        .build()
        .expect_err("both");
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    let err = BearerAuthLayer::new("bad token").expect_err("space");
    assert_eq!(err.kind(), ErrorKind::InvalidToken);
    assert!(!err.to_string().contains("bad token"));
    let err = BearerAuthLayer::builder()
        .token("t")
        .origin("https://a.example/path")
        .build()
        .expect_err("origin");
    assert_eq!(err.kind(), ErrorKind::InvalidOrigin);
}

#[test]
fn debug_never_shows_the_token() {
    let builder = BearerAuthLayer::builder()
        .token("s3cr3t")
        .origin("https://api.example.com");
    assert!(!format!("{builder:?}").contains("s3cr3t"));
    let layer = builder.build().expect("valid");
    let dbg = format!("{layer:?}");
    assert!(!dbg.contains("s3cr3t"), "{dbg}");
    assert!(dbg.contains("api.example.com"), "{dbg}");
    let svc = layer.layer(());
    assert!(!format!("{svc:?}").contains("s3cr3t"));
}

#[test]
fn types_have_the_promised_traits() {
    fn clone_send_sync<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    clone_send_sync::<BearerAuthLayer>();
    clone_send_sync::<BearerToken>();
    clone_send_sync::<Token>();
    clone_send_sync::<crate::BearerAuth<()>>();
    // The service is Clone without the body being Clone.
    struct NotClone;
    fn is_service<S: Service<Request<NotClone>> + Clone>(_: &S) {}
    let svc =
        BearerAuthLayer::new("t")
            .expect("valid")
            .layer(service_fn(|_: Request<NotClone>| async {
                Ok::<_, Infallible>(Response::new(()))
            }));
    is_service(&svc);
}

// ---------------------------------------------------------------- token source

/// A source that counts its fetches and issues `t1`, `t2`, ... after `delay`, each living
/// `lifetime`; fetches listed in `fail` (1-based) fail instead.
#[derive(Clone)]
struct Source {
    fetches: Arc<AtomicUsize>,
    delay: Duration,
    lifetime: Option<Duration>,
    fail: Arc<Mutex<HashSet<usize>>>,
}

impl Source {
    fn new(delay: Duration, lifetime: Option<Duration>) -> Self {
        Self {
            fetches: Arc::default(),
            delay,
            lifetime,
            fail: Arc::default(),
        }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn fail_fetch(&self, n: usize) {
        self.fail.lock().expect("lock").insert(n);
    }
}

impl TokenSource for Source {
    fn fetch(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Token, BoxError>> + Send + '_>>
    {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move {
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            if self.fail.lock().expect("lock").contains(&n) {
                return Err(BoxError::from(format!(
                    "token endpoint said no to fetch {n}"
                )));
            }
            let token = Token::new(BearerToken::new(format!("t{n}"))?);
            Ok(match self.lifetime {
                Some(lifetime) => token.expires_in(lifetime),
                None => token,
            })
        })
    }
}

fn source_layer(source: &Source, refresh_before: Duration) -> BearerAuthLayer {
    BearerAuthLayer::builder()
        .source(source.clone())
        .refresh_before(refresh_before)
        .fetch_timeout(Duration::from_secs(10))
        .build()
        .expect("valid")
}

/// Let spawned tasks (a background refresh) run before the clock moves.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

const SEC: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn many_concurrent_first_requests_share_one_fetch() {
    let source = Source::new(SEC, Some(100 * SEC));
    let up = Upstream::default();
    let svc = source_layer(&source, 10 * SEC).layer(up.service());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..150 {
        let svc = svc.clone();
        tasks.spawn(async move { auth_of(&svc, get(API)).await });
    }
    while let Some(auth) = tasks.join_next().await {
        assert_eq!(auth.expect("task"), ["Bearer t1"]);
    }
    assert_eq!(source.fetches(), 1);
    assert_eq!(up.calls(), 150);
}

#[tokio::test(start_paused = true)]
async fn all_clones_of_a_layer_share_one_cache() {
    let source = Source::new(Duration::ZERO, None);
    let up = Upstream::default();
    let layer = source_layer(&source, 10 * SEC);
    let a = layer.clone().layer(up.service());
    let b = layer.layer(up.service());
    assert_eq!(auth_of(&a, get(API)).await, ["Bearer t1"]);
    assert_eq!(auth_of(&b, get(API)).await, ["Bearer t1"]);
    assert_eq!(source.fetches(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_cached_token_is_used_without_a_fetch_until_the_window() {
    let source = Source::new(SEC, Some(100 * SEC));
    let svc = source_layer(&source, 10 * SEC).layer(Upstream::default().service());
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    // The token was issued at t=1s, so it expires at 101s and its window opens at 91s.
    for _ in 0..8 {
        tokio::time::advance(10 * SEC).await; // up to t=81s
        assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
        settle().await;
    }
    tokio::time::advance(9 * SEC).await; // t=90s
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    settle().await;
    assert_eq!(source.fetches(), 1);
}

#[tokio::test(start_paused = true)]
async fn inside_the_window_no_request_waits_and_one_refresh_runs_in_the_background() {
    let source = Source::new(SEC, Some(100 * SEC));
    let svc = source_layer(&source, 10 * SEC).layer(Upstream::default().service());
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    tokio::time::advance(92 * SEC).await; // inside the window, still valid
    let before = Instant::now();
    for _ in 0..20 {
        assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    }
    assert_eq!(Instant::now(), before, "no request waited for the refresh");
    settle().await;
    assert_eq!(
        source.fetches(),
        2,
        "one background refresh for 20 requests"
    );
    tokio::time::sleep(SEC).await; // the refresh's fetch takes 1 s
    settle().await;
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t2"]);
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn short_lived_tokens_are_not_refreshed_on_every_request() {
    // refresh_before (60 s) is longer than the 10 s lifetime: the window is half of it.
    let source = Source::new(Duration::ZERO, Some(10 * SEC));
    let svc = source_layer(&source, 60 * SEC).layer(Upstream::default().service());
    for _ in 0..4 {
        assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
        settle().await;
        tokio::time::advance(SEC).await;
    }
    assert_eq!(
        source.fetches(),
        1,
        "no refresh in the first half of the lifetime"
    );
    tokio::time::advance(SEC).await; // t=5s: window opens
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    settle().await;
    assert_eq!(source.fetches(), 2);
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t2"]);
}

#[tokio::test(start_paused = true)]
async fn an_expired_token_makes_requests_wait_for_one_fetch() {
    let source = Source::new(SEC, Some(10 * SEC));
    // No window, so the token simply expires.
    let svc = source_layer(&source, Duration::ZERO).layer(Upstream::default().service());
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    tokio::time::advance(11 * SEC).await;
    let before = Instant::now();
    let (a, b) = tokio::join!(auth_of(&svc, get(API)), auth_of(&svc, get(API)));
    assert_eq!(
        (a, b),
        (vec!["Bearer t2".to_owned()], vec!["Bearer t2".to_owned()])
    );
    assert_eq!(Instant::now() - before, SEC, "they waited for the fetch");
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_fetch_fails_the_waiters_sends_nothing_and_the_next_request_retries() {
    let source = Source::new(SEC, Some(100 * SEC));
    source.fail_fetch(1);
    let up = Upstream::default();
    let svc = source_layer(&source, 10 * SEC).layer(up.service());
    let (a, b) = tokio::join!(send(&svc, get(API)), send(&svc, get(API)));
    for result in [a, b] {
        let err = result.expect_err("fetch failed");
        assert_eq!(kind(&err), Some(ErrorKind::TokenFetch));
        let ours = err.downcast_ref::<Error>().expect("our error");
        let cause = std::error::Error::source(ours).expect("source").to_string();
        assert_eq!(cause, "token endpoint said no to fetch 1");
    }
    assert_eq!(source.fetches(), 1, "both waited for the same fetch");
    assert_eq!(up.calls(), 0);
    // Right after the failure the backoff holds: the next request fails at once, fetching
    // nothing, with the failure as its error's source.
    let err = send(&svc, get(API)).await.expect_err("backing off");
    assert_eq!(kind(&err), Some(ErrorKind::TokenFetch));
    let ours = err.downcast_ref::<Error>().expect("our error");
    let last = std::error::Error::source(ours).expect("the last failure");
    assert!(last.to_string().contains("token fetch failed"), "{last}");
    assert_eq!(source.fetches(), 1);
    // After the first delay (at most a second) the next request retries.
    tokio::time::advance(SEC).await;
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t2"]);
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_keeps_the_valid_token_and_is_retried_later_not_in_a_loop() {
    let source = Source::new(Duration::ZERO, Some(100 * SEC));
    source.fail_fetch(2);
    source.fail_fetch(3);
    let svc = source_layer(&source, 60 * SEC).layer(Upstream::default().service());
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]); // window opens at 50 s
    tokio::time::advance(60 * SEC).await;
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    settle().await;
    assert_eq!(source.fetches(), 2, "the refresh ran and failed");
    // Many requests right after the failure: the valid token, and no new refresh yet.
    for _ in 0..50 {
        assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
        settle().await;
    }
    assert_eq!(source.fetches(), 2, "no tight loop of refreshes");
    // After the retry delay (at most 5 s), a later request starts one new refresh.
    tokio::time::advance(5 * SEC).await;
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    settle().await;
    assert_eq!(source.fetches(), 3);
    tokio::time::advance(5 * SEC).await;
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    settle().await;
    assert_eq!(source.fetches(), 4);
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t4"]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_ends_in_an_error_once_the_token_expires() {
    let source = Source::new(Duration::ZERO, Some(100 * SEC));
    for n in 2..=100 {
        source.fail_fetch(n);
    }
    let svc = source_layer(&source, 60 * SEC).layer(Upstream::default().service());
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    tokio::time::advance(60 * SEC).await;
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    settle().await;
    tokio::time::advance(41 * SEC).await; // expired
    let err = send(&svc, get(API))
        .await
        .expect_err("expired, source failing");
    assert_eq!(kind(&err), Some(ErrorKind::TokenFetch));
}

#[tokio::test(start_paused = true)]
async fn a_hung_fetch_times_out_and_sends_nothing() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&fetches);
    let layer = BearerAuthLayer::builder()
        .source(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<Result<Token, BoxError>>()
        })
        .fetch_timeout(3 * SEC)
        .build()
        .expect("valid");
    let up = Upstream::default();
    let svc = layer.layer(up.service());
    let before = Instant::now();
    let err = send(&svc, get(API)).await.expect_err("timeout");
    assert_eq!(kind(&err), Some(ErrorKind::TokenFetchTimeout));
    assert_eq!(Instant::now() - before, 3 * SEC);
    assert_eq!(up.calls(), 0);
    // The next request after the backoff tries again.
    tokio::time::advance(SEC).await;
    let err = send(&svc, get(API)).await.expect_err("timeout");
    assert_eq!(kind(&err), Some(ErrorKind::TokenFetchTimeout));
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_401s_causes_one_new_fetch() {
    let source = Source::new(SEC, None);
    let up = Upstream::slow(SEC);
    let svc = source_layer(&source, 10 * SEC).layer(up.service());
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    up.reject("Bearer t1");
    // 50 requests carry t1 (the upstream takes a second, so all are in flight at once) and
    // all get a 401, returned unchanged.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let svc = svc.clone();
        tasks.spawn(async move { send(&svc, get(API)).await.expect("response") });
    }
    let mut statuses = Vec::new();
    while let Some(response) = tasks.join_next().await {
        let response = response.expect("task");
        statuses.push(response.status());
        // One of them dropped t1, the others found it gone: every one is marked, so a retry
        // of any gets the next token.
        assert!(response
            .extensions()
            .get::<crate::TokenRejected>()
            .is_some());
    }
    assert_eq!(statuses, vec![StatusCode::UNAUTHORIZED; 50]);
    assert_eq!(up.calls(), 51);
    assert_eq!(source.fetches(), 1, "a 401 does not fetch by itself");
    // Now any number of requests share one new fetch.
    let (a, b) = tokio::join!(auth_of(&svc, get(API)), auth_of(&svc, get(API)));
    assert_eq!(a, ["Bearer t2"]);
    assert_eq!(b, ["Bearer t2"]);
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_late_401_for_an_old_token_does_not_invalidate_the_new_one() {
    let source = Source::new(Duration::ZERO, None);
    let up = Upstream::default();
    let svc = source_layer(&source, 10 * SEC).layer(up.service());
    // Hold a request carrying t1 whose response is a 401 but isn't polled to completion yet.
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    up.reject("Bearer t1");
    let mut slow = svc.clone();
    std::future::poll_fn(|cx| slow.poll_ready(cx))
        .await
        .expect("ready");
    let pending_401 = slow.call(get(API));
    // Meanwhile another 401 replaces t1 by t2.
    assert_eq!(send(&svc, get(API)).await.expect("401").status(), 401);
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t2"]);
    // The held request's 401 (for t1) must not throw t2 away. It is still a rejection of the
    // token it carried (marked): a retry would get t2.
    let late = pending_401.await.expect("401");
    assert_eq!(late.status(), 401);
    assert!(late.extensions().get::<crate::TokenRejected>().is_some());
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t2"]);
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn per_request_own_and_suppressed_requests_never_ask_the_source_nor_invalidate() {
    let source = Source::new(Duration::ZERO, None);
    let up = Upstream::default();
    let layer = BearerAuthLayer::builder()
        .source(source.clone())
        .origin("https://api.example.com")
        .build()
        .expect("valid");
    let svc = layer.layer(up.service());
    up.reject("Bearer mine");
    up.reject("Basic own");
    let own = || {
        Request::get(API)
            .header(AUTHORIZATION, "Basic own")
            .body(())
            .expect("request")
    };
    for req in [
        with(API, HeaderOverrides::new().bearer_token(token("mine"))),
        with(API, HeaderOverrides::new().without_auth()),
        with(API, HeaderOverrides::new().remove_all()),
        own(),
        get("https://other.example.com/"),
    ] {
        let _ = send(&svc, req).await.expect("response");
    }
    assert_eq!(source.fetches(), 0);
    // With a cached token, their 401s leave it alone.
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    let req = with(API, HeaderOverrides::new().bearer_token(token("mine")));
    assert_eq!(send(&svc, req).await.expect("401").status(), 401);
    assert_eq!(send(&svc, own()).await.expect("401").status(), 401);
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    assert_eq!(source.fetches(), 1);
}

#[tokio::test(start_paused = true)]
async fn plaintext_is_refused_before_any_fetch() {
    let source = Source::new(Duration::ZERO, None);
    let svc = source_layer(&source, SEC).layer(Upstream::default().service());
    let err = send(&svc, get("http://api.example.com/"))
        .await
        .expect_err("plaintext");
    assert_eq!(kind(&err), Some(ErrorKind::PlaintextRefused));
    assert_eq!(source.fetches(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_first_waiter_neither_cancels_the_fetch_nor_leaves_it_stuck() {
    let source = Source::new(SEC, None);
    let up = Upstream::default();
    let svc = source_layer(&source, 10 * SEC).layer(up.service());
    let mut first = Box::pin(send(&svc, get(API)));
    tokio::select! {
        biased;
        _ = &mut first => panic!("the fetch takes a second"),
        _ = tokio::task::yield_now() => {}
    }
    assert_eq!(source.fetches(), 1, "the first request started the fetch");
    drop(first);
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    assert_eq!(
        source.fetches(),
        1,
        "the second request joined the same fetch"
    );
    assert_eq!(up.calls(), 1, "the dropped request sent nothing");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_source_fails_the_request_instead_of_hanging() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let svc = BearerAuthLayer::from_source(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                panic!("token source bug");
            }
            Ok::<_, BoxError>(Token::new(BearerToken::new("t")?))
        }
    })
    .layer(Upstream::default().service());
    let err = send(&svc, get(API)).await.expect_err("panicked");
    assert_eq!(kind(&err), Some(ErrorKind::TokenFetch));
    tokio::time::advance(SEC).await; // the backoff after a failure
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t"]);
}

#[test]
fn without_a_tokio_runtime_the_request_fetches_inline() {
    let source = Source::new(Duration::ZERO, Some(3600 * SEC));
    let up = Upstream::default();
    let svc = source_layer(&source, SEC).layer(up.service());
    let auth = futures::executor::block_on(auth_of(&svc, get(API)));
    assert_eq!(auth, ["Bearer t1"]);
    let auth = futures::executor::block_on(auth_of(&svc, get(API)));
    assert_eq!(auth, ["Bearer t1"]);
    assert_eq!(source.fetches(), 1);
}

#[test]
fn without_a_runtime_a_dropped_inline_fetch_lets_the_next_waiter_fetch() {
    use futures::task::noop_waker_ref;
    use std::future::Future;
    use std::task::{Context, Poll};

    // A source that stays pending until released, driven by hand.
    let gate = Arc::new(Mutex::new(false));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (g, f) = (Arc::clone(&gate), Arc::clone(&fetches));
    let layer = BearerAuthLayer::from_source(move || {
        let n = f.fetch_add(1, Ordering::SeqCst) + 1;
        let g = Arc::clone(&g);
        std::future::poll_fn(move |_| {
            if *g.lock().expect("lock") {
                Poll::Ready(BearerToken::new(format!("t{n}")).map(Token::new))
            } else {
                Poll::Pending
            }
        })
    });
    let svc = layer.layer(Upstream::default().service());
    let mut cx = Context::from_waker(noop_waker_ref());
    let mut first = Box::pin(send(&svc, get(API)));
    let mut second = Box::pin(send(&svc, get(API)));
    assert!(first.as_mut().poll(&mut cx).is_pending()); // drives fetch 1 inline
    assert!(second.as_mut().poll(&mut cx).is_pending()); // waits for fetch 1
    drop(first); // cancels fetch 1
    assert!(second.as_mut().poll(&mut cx).is_pending()); // starts fetch 2 itself
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    *gate.lock().expect("lock") = true;
    match second.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(response)) => assert_eq!(response.into_body(), ["Bearer t2"]),
        other => panic!("expected the token, got {:?}", other.map(|r| r.map(|_| ()))),
    }
}

#[tokio::test(start_paused = true)]
async fn a_flight_stranded_on_an_idle_runtime_times_out_for_its_waiters() {
    let source = Source::new(Duration::ZERO, None);
    let svc = BearerAuthLayer::builder()
        .source(source.clone())
        .fetch_timeout(3 * SEC)
        .build()
        .expect("valid")
        .layer(Upstream::default().service());
    // A request polled inside another runtime's context spawns the fetch there; that runtime
    // is never driven (a sync wrapper's runtime between calls, say).
    let idle = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    {
        let _entered = idle.enter();
        let mut first = Box::pin(send(&svc, get(API)));
        assert!(futures::poll!(first.as_mut()).is_pending());
    }
    assert_eq!(
        source.fetches(),
        0,
        "the fetch sits on a runtime that never runs it"
    );
    // A request here joins that fetch, but does not wait past the fetch timeout...
    let before = Instant::now();
    let err = tokio::time::timeout(60 * SEC, send(&svc, get(API)))
        .await
        .expect("the waiter must not hang")
        .expect_err("timed out");
    assert_eq!(kind(&err), Some(ErrorKind::TokenFetchTimeout));
    assert_eq!(Instant::now() - before, 3 * SEC);
    // ...and the stranded fetch no longer blocks the next one (after the backoff).
    tokio::time::advance(SEC).await;
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    idle.shutdown_background();
}

#[test]
fn a_runtime_without_timers_is_a_clear_error_not_a_panic() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let source = Source::new(Duration::ZERO, None);
    let up = Upstream::default();
    let svc = source_layer(&source, SEC).layer(up.service());
    for _ in 0..2 {
        let err = runtime
            .block_on(send(&svc, get(API)))
            .expect_err("no timer for the fetch timeout");
        assert_eq!(kind(&err), Some(ErrorKind::InvalidConfig));
        assert!(err.to_string().contains("enable_time"), "{err}");
    }
    assert_eq!(source.fetches(), 0);
    assert_eq!(up.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn retries_of_a_failing_refresh_do_not_speed_up_near_expiry() {
    let source = Source::new(Duration::ZERO, Some(100 * SEC));
    for n in 2..=1000 {
        source.fail_fetch(n);
    }
    let svc = source_layer(&source, 60 * SEC).layer(Upstream::default().service());
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]); // window opens at 50 s
    tokio::time::advance(50 * SEC).await;
    // One request every 10 ms through the whole window: at most one refresh per second once
    // the remaining lifetime is short (never faster), at most one per 5 s before.
    let step = Duration::from_millis(10);
    for _ in 0..(50 * 100 - 1) {
        assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
        settle().await;
        tokio::time::advance(step).await;
    }
    // The delay is half the time left, clamped to 1..=5 s: refreshes at 50, 55, ..., 90 s
    // (9), then 95, 97.5, 98.75 and 99.75 s (4). Halving without the 1 s floor gives 17.
    assert_eq!(source.fetches() - 1, 13);
}

// ---------------------------------------------------------------- capacity

/// A request whose header map is full (`http::HeaderMap` holds at most 24,576 names).
fn full_request(uri: &str, own_authorization: bool) -> Request<()> {
    let mut req = get(uri);
    let headers = req.headers_mut();
    if own_authorization {
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic own"));
    }
    let mut i = 0;
    loop {
        let name = http::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).expect("name");
        if headers
            .try_insert(name, HeaderValue::from_static("v"))
            .is_err()
        {
            break;
        }
        i += 1;
    }
    assert_eq!(headers.keys_len(), 24_576);
    req
}

#[tokio::test]
async fn a_full_request_is_refused_not_a_panic_and_nothing_is_sent() {
    let up = Upstream::default();
    let source_layer = source_layer(&Source::new(Duration::ZERO, None), SEC);
    // Cache a token first, so the hot path is the one under test too.
    auth_of(&source_layer.layer(up.service()), get(API)).await;
    for layer in [BearerAuthLayer::new("t").expect("valid"), source_layer] {
        let svc = layer.layer(up.service());
        let before = up.calls();
        for req in [full_request(API, false), {
            let mut req = full_request(API, false);
            req.extensions_mut()
                .insert(HeaderOverrides::new().bearer_token(token("caller")));
            req
        }] {
            let err = send(&svc, req)
                .await
                .expect_err("no room for Authorization");
            assert_eq!(kind(&err), Some(ErrorKind::TooManyHeaders));
        }
        assert_eq!(up.calls(), before, "nothing was sent");
        // With its own Authorization, a full request needs no room: sent as it is.
        assert_eq!(auth_of(&svc, full_request(API, true)).await, ["Basic own"]);
        // Suppressed, or for another origin: no token, never refused.
        let mut req = full_request(API, false);
        req.extensions_mut()
            .insert(HeaderOverrides::new().without_auth());
        assert!(auth_of(&svc, req).await.is_empty());
    }
}

// ---------------------------------------------------------------- a 401 from elsewhere

/// With the `tower-http` feature, a `401` whose tower-http `RequestUri` names another origin
/// (a `FollowRedirect` inside `BearerAuth` followed a redirect elsewhere) leaves the token
/// alone; one from the token's origin drops it.
#[cfg(feature = "tower-http")]
#[tokio::test]
async fn a_401_invalidates_only_when_it_came_from_the_token_origin() {
    use tower_http::follow_redirect::RequestUri;
    let source = Source::new(Duration::ZERO, None);
    let answered_from = Arc::new(Mutex::new(http::Uri::from_static(API)));
    let from = Arc::clone(&answered_from);
    let svc = source_layer(&source, SEC).layer(service_fn(move |_: Request<()>| {
        let uri = from.lock().expect("lock").clone();
        async move {
            let mut response = Response::new(Vec::<String>::new());
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            response.extensions_mut().insert(RequestUri(uri));
            Ok::<_, Infallible>(response)
        }
    }));
    *answered_from.lock().expect("lock") = http::Uri::from_static("https://elsewhere.example/x");
    for _ in 0..10 {
        assert_eq!(send(&svc, get(API)).await.expect("401").status(), 401);
    }
    assert_eq!(source.fetches(), 1, "401s from elsewhere fetch nothing");
    // The token's own origin, however spelled: dropped, the next request fetches.
    *answered_from.lock().expect("lock") =
        http::Uri::from_static("https://API.example.com:443/v1/other");
    send(&svc, get(API)).await.expect("401");
    assert_eq!(source.fetches(), 1);
    send(&svc, get(API)).await.expect("401");
    assert_eq!(
        source.fetches(),
        2,
        "the first 401 from the token's origin dropped it"
    );
}

// ---------------------------------------------------------------- the in-place path

/// The in-place path (no overrides, no origins, https) decides as `prepare` does, whether it
/// finds the request's own value by comparing names (a few) or through an `Entry` (many): the
/// request's own values are all kept and marked sensitive, else the layer's token is added,
/// for a fixed token and for a cached one; a scheme in capitals is https too.
#[tokio::test]
async fn the_in_place_path_keeps_every_own_value_sensitive_with_few_or_many_names() {
    let up = Upstream::default();
    let source = source_layer(&Source::new(Duration::ZERO, None), SEC);
    for (layer, ours) in [
        (
            BearerAuthLayer::new("fixed").expect("valid"),
            "Bearer fixed",
        ),
        (source, "Bearer t1"),
    ] {
        let svc = layer.layer(up.service());
        for extra in [0, 1, 7, 8, 20] {
            let request = |own: &[&'static str], uri: &str| {
                let mut req = get(uri);
                for i in 0..extra {
                    let name =
                        http::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).expect("name");
                    req.headers_mut()
                        .insert(name, HeaderValue::from_static("v"));
                }
                for value in own {
                    req.headers_mut()
                        .append(AUTHORIZATION, HeaderValue::from_static(value));
                }
                req
            };
            assert_eq!(auth_of(&svc, request(&[], API)).await, [ours], "{extra}");
            assert_eq!(
                auth_of(&svc, request(&[], "HTTPS://API.example.com/v1")).await,
                [ours],
                "{extra}"
            );
            let own = ["Basic b3du", "Bearer own"];
            assert_eq!(auth_of(&svc, request(&own, API)).await, own, "{extra}");
            let seen = up.seen.lock().expect("lock").last().cloned().expect("sent");
            let values: Vec<_> = seen.get_all(AUTHORIZATION).iter().collect();
            assert_eq!(values.len(), 2);
            assert!(values.iter().all(|v| v.is_sensitive()), "{extra}");
            assert_eq!(seen.keys_len(), extra + 1, "nothing else added");
        }
    }
}

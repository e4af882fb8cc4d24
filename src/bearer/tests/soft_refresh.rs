//! Tokens with a soft refresh time (`Token::refresh_in`) under every rule of the cache: single
//! flight, background refresh, a failed refresh keeping the token with a bounded retry delay,
//! the hard expiry still honoured, backoff, `401` invalidation and expired-on-arrival tokens.
//! On tokio's paused clock.

use super::*;

const MS: Duration = Duration::from_millis(1);

/// A source whose fetch `n` (1-based) takes `delay` and then returns `plan(n, t<n>)`.
#[derive(Clone)]
struct Soft {
    fetches: Arc<AtomicUsize>,
    delay: Duration,
    plan: Arc<dyn Fn(usize, Token) -> Result<Token, BoxError> + Send + Sync>,
}

impl Soft {
    fn new(
        delay: Duration,
        plan: impl Fn(usize, Token) -> Result<Token, BoxError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            fetches: Arc::default(),
            delay,
            plan: Arc::new(plan),
        }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn layer(&self, refresh_before: Duration) -> BearerAuthLayer {
        BearerAuthLayer::builder()
            .source(self.clone())
            .refresh_before(refresh_before)
            .build()
            .expect("valid")
    }
}

impl TokenSource for Soft {
    fn fetch(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Token, BoxError>> + Send + '_>>
    {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            let token = Token::new(BearerToken::new(format!("t{n}"))?);
            (self.plan)(n, token)
        })
    }
}

fn failed(n: usize) -> Result<Token, BoxError> {
    Err(BoxError::from(format!("token file unreadable (fetch {n})")))
}

#[tokio::test(start_paused = true)]
async fn past_its_refresh_time_the_token_is_used_at_once_while_one_background_refresh_runs() {
    let source = Soft::new(SEC, |_, t| Ok(t.refresh_in(60 * SEC)));
    let svc = source.layer(10 * SEC).layer(Upstream::default().service());
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    tokio::time::advance(59 * SEC).await; // t=60s: fetched at 1 s, so not yet
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    settle().await;
    assert_eq!(source.fetches(), 1);

    tokio::time::advance(SEC).await; // t=61s: the refresh time
    let before = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let svc = svc.clone();
        tasks.spawn(async move { auth_of(&svc, get(API)).await });
    }
    while let Some(auth) = tasks.join_next().await {
        assert_eq!(auth.expect("task"), ["Bearer t1"]);
    }
    assert_eq!(Instant::now(), before, "no request waited for the refresh");
    settle().await;
    assert_eq!(
        source.fetches(),
        2,
        "one background refresh for 50 requests"
    );
    tokio::time::sleep(SEC).await; // the refresh's fetch takes 1 s
    settle().await;
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t2"]);
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_keeps_the_token_and_retries_after_a_bounded_delay_never_a_tight_loop() {
    // Fetch 1 succeeds; fetches 2 to 6 fail; then the source recovers.
    let source = Soft::new(Duration::ZERO, |n, t| {
        if (2..=6).contains(&n) {
            failed(n)
        } else {
            Ok(t.refresh_in(60 * SEC))
        }
    });
    let up = Upstream::default();
    let svc = source.layer(10 * SEC).layer(up.service());
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    tokio::time::advance(60 * SEC).await;

    // 20 s of requests every 10 ms: every one is sent, with the last good token.
    let start = Instant::now();
    let mut sent = 0;
    while Instant::now() - start < 20 * SEC {
        assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
        sent += 1;
        settle().await;
        tokio::time::advance(10 * MS).await;
    }
    assert_eq!(sent, 2_000);
    // A retry every 5 s: at 0, 5, 10, 15 s.
    let refreshes = source.fetches() - 1;
    assert!(
        (3..=5).contains(&refreshes),
        "{refreshes} refreshes in 20 s: retried, but no tight loop"
    );

    // Once the source recovers, the next retry replaces the token.
    let mut waited = Duration::ZERO;
    loop {
        let auth = auth_of(&svc, get(API)).await;
        if auth == [format!("Bearer t{}", source.fetches())] && source.fetches() == 7 {
            break;
        }
        assert_eq!(auth, ["Bearer t1"]);
        settle().await;
        tokio::time::advance(100 * MS).await;
        waited += 100 * MS;
        assert!(waited <= 6 * SEC, "not recovered within the retry delay");
    }
}

#[tokio::test(start_paused = true)]
async fn a_soft_token_is_never_sent_past_its_hard_expiry() {
    // Refresh after 10 s, expire after 30 s; every refresh fails.
    let source = Soft::new(Duration::ZERO, |n, t| {
        if n == 1 {
            Ok(t.refresh_in(10 * SEC).expires_in(30 * SEC))
        } else {
            failed(n)
        }
    });
    let up = Upstream::default();
    let svc = source.layer(SEC).layer(up.service());
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    tokio::time::advance(10 * SEC).await;
    for _ in 0..19 {
        assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
        settle().await;
        tokio::time::advance(SEC).await;
    }
    assert!(
        source.fetches() >= 2,
        "the refresh started at its soft time"
    );
    tokio::time::advance(SEC).await; // t=30s: expired
    let calls = up.calls();
    let err = send(&svc, get(API))
        .await
        .expect_err("expired, refresh failing");
    assert_eq!(kind(&err), Some(ErrorKind::TokenFetch));
    assert_eq!(up.calls(), calls, "nothing was sent");

    // Backoff: requests now fail at once and start no fetch.
    let fetches = source.fetches();
    for _ in 0..10 {
        let err = send(&svc, get(API)).await.expect_err("backing off");
        assert_eq!(kind(&err), Some(ErrorKind::TokenFetch));
    }
    assert_eq!(source.fetches(), fetches, "no fetch inside the backoff");
}

#[tokio::test(start_paused = true)]
async fn a_401_drops_a_soft_token_and_any_number_of_401s_cause_one_fetch() {
    let source = Soft::new(SEC, |_, t| Ok(t.refresh_in(600 * SEC)));
    let up = Upstream::slow(SEC);
    let svc = source.layer(10 * SEC).layer(up.service());
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    up.reject("Bearer t1");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let svc = svc.clone();
        tasks.spawn(async move { send(&svc, get(API)).await.expect("response").status() });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.expect("task"), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t2"]);
    assert_eq!(source.fetches(), 2, "twenty 401s, one new fetch");
}

#[tokio::test(start_paused = true)]
async fn a_refresh_returning_an_expired_token_keeps_the_soft_token() {
    let source = Soft::new(Duration::ZERO, |n, t| {
        Ok(match n {
            1 => t.refresh_in(10 * SEC),
            2 => t.refresh_in(10 * SEC).expires_in(Duration::ZERO), // expired on arrival
            _ => t.refresh_in(10 * SEC),
        })
    });
    let svc = source.layer(SEC).layer(Upstream::default().service());
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    tokio::time::advance(10 * SEC).await;
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    settle().await;
    assert_eq!(source.fetches(), 2);
    assert_eq!(
        auth_of(&svc, get(API)).await,
        ["Bearer t1"],
        "the expired token was not used"
    );
    tokio::time::advance(5 * SEC).await; // the retry delay
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    settle().await;
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t3"]);
}

#[tokio::test(start_paused = true)]
async fn refresh_in_zero_is_not_a_fetch_per_request() {
    let source = Soft::new(Duration::ZERO, |_, t| Ok(t.refresh_in(Duration::ZERO)));
    let svc = source.layer(10 * SEC).layer(Upstream::default().service());
    for _ in 0..1_000 {
        auth_of(&svc, get(API)).await;
        settle().await;
        tokio::time::advance(10 * MS).await;
    }
    // 10 s of requests every 10 ms: one fetch a second, not one per request.
    assert!(source.fetches() <= 11, "{} fetches", source.fetches());
}

#[tokio::test(start_paused = true)]
async fn refresh_replaces_a_soft_token_and_invalidate_drops_it() {
    let source = Soft::new(Duration::ZERO, |_, t| Ok(t.refresh_in(600 * SEC)));
    let layer = source.layer(10 * SEC);
    let svc = layer.clone().layer(Upstream::default().service());
    layer.refresh().await.expect("fetched");
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    layer.refresh().await.expect("fetched");
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t2"]);
    layer.invalidate();
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t3"]);
}

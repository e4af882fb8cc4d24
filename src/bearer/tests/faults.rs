//! The token cache when its source fails, hangs or misbehaves (the crate's rules "under faults"),
//! through the tower service, on tokio's paused clock unless a test is about having no runtime.

use std::future::Future;

use super::*;

/// What one fetch does.
#[derive(Clone, Copy, Debug)]
enum Plan {
    /// After `delay`, a token `t<n>` living `lifetime` (`None`: forever).
    Token(Duration, Option<Duration>),
    /// After `delay`, an error.
    Fail(Duration),
    /// Never answers.
    Hang,
}

/// A token source run by a script: fetch `n` (1-based), started at time `t` since the source
/// was made, does what `script(n, t)` says. It records when each fetch started.
#[derive(Clone)]
struct Scripted {
    started: Arc<Mutex<Vec<Duration>>>,
    origin: Instant,
    script: Arc<dyn Fn(usize, Duration) -> Plan + Send + Sync>,
}

impl Scripted {
    fn new(script: impl Fn(usize, Duration) -> Plan + Send + Sync + 'static) -> Self {
        Self {
            started: Arc::default(),
            origin: Instant::now(),
            script: Arc::new(script),
        }
    }

    fn fetches(&self) -> usize {
        self.started.lock().expect("lock").len()
    }

    /// Fetches started in `[from, to)`, as times since the source was made.
    fn fetches_between(&self, from: Duration, to: Duration) -> usize {
        let started = self.started.lock().expect("lock");
        started.iter().filter(|t| **t >= from && **t < to).count()
    }
}

impl TokenSource for Scripted {
    fn fetch(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Token, BoxError>> + Send + '_>>
    {
        let at = Instant::now() - self.origin;
        let n = {
            let mut started = self.started.lock().expect("lock");
            started.push(at);
            started.len()
        };
        let plan = (self.script)(n, at);
        Box::pin(async move {
            match plan {
                Plan::Token(delay, lifetime) => {
                    tokio::time::sleep(delay).await;
                    let token = Token::new(BearerToken::new(format!("t{n}"))?);
                    Ok(match lifetime {
                        Some(lifetime) => token.expires_in(lifetime),
                        None => token,
                    })
                }
                Plan::Fail(delay) => {
                    tokio::time::sleep(delay).await;
                    Err(BoxError::from(format!(
                        "503 from the token endpoint (fetch {n})"
                    )))
                }
                Plan::Hang => std::future::pending().await,
            }
        })
    }
}

fn layer_of(
    source: &Scripted,
    refresh_before: Duration,
    fetch_timeout: Duration,
) -> BearerAuthLayer {
    BearerAuthLayer::builder()
        .source(source.clone())
        .refresh_before(refresh_before)
        .fetch_timeout(fetch_timeout)
        .build()
        .expect("valid")
}

const MS: Duration = Duration::from_millis(1);

/// Send one request with `futures::executor::block_on` on a thread of its own: no tokio runtime,
/// unless `entered` is one to enter (and never run) around it. A wait that is not bounded fails
/// the test after 20 s instead of hanging it. Returns the outcome and how long it took.
fn send_blocking<S>(
    svc: S,
    entered: Option<tokio::runtime::Runtime>,
) -> (Result<(), Option<ErrorKind>>, Duration)
where
    S: Service<Request<()>, Response = Response<Vec<String>>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _entered = entered.as_ref().map(tokio::runtime::Runtime::enter);
        let start = std::time::Instant::now();
        let result = futures::executor::block_on(send(&svc, get(API)));
        let _ = tx.send((result.map(drop).map_err(|e| kind(&e)), start.elapsed()));
    });
    let sent = rx.recv_timeout(Duration::from_secs(20));
    sent.expect("the request was still waiting after 20 s: its wait was not bounded")
}

/// One request's fate in a load test.
#[derive(Clone, Debug)]
struct Sent {
    at: Duration,
    latency: Duration,
    result: Result<String, Option<ErrorKind>>,
}

/// `tasks` tasks each sending a request every `every` from now until `until` (paused clock).
async fn load<S>(svc: &S, tasks: usize, every: Duration, until: Duration) -> Vec<Sent>
where
    S: Service<Request<()>, Response = Response<Vec<String>>, Error = BoxError>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
{
    let origin = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let svc = svc.clone();
        set.spawn(async move {
            let mut sent = Vec::new();
            while origin.elapsed() < until {
                let start = Instant::now();
                let result = match send(&svc, get(API)).await {
                    Ok(response) => Ok(response.into_body().join(",")),
                    Err(err) => Err(kind(&err)),
                };
                sent.push(Sent {
                    at: start - origin,
                    latency: start.elapsed(),
                    result,
                });
                tokio::time::sleep(every).await;
            }
            sent
        });
    }
    let mut all = Vec::new();
    while let Some(sent) = set.join_next().await {
        all.extend(sent.expect("task"));
    }
    all.sort_by_key(|s| s.at);
    all
}

#[tokio::test(start_paused = true)]
async fn a_source_failing_for_4_s_under_50_tasks_is_called_at_most_10_times_and_recovers() {
    // The endpoint answers 503 (after 50 ms) for the first 4 s, then issues 3 s tokens.
    let source = Scripted::new(|_, at| {
        if at < 4 * SEC {
            Plan::Fail(50 * MS)
        } else {
            Plan::Token(50 * MS, Some(3 * SEC))
        }
    });
    let up = Upstream::default();
    let svc = layer_of(&source, SEC, 10 * SEC).layer(up.service());
    let sent = load(&svc, 50, 10 * MS, 12 * SEC).await;

    let during = source.fetches_between(Duration::ZERO, 4 * SEC);
    assert!(during <= 10, "{during} fetches in the 4 s outage");
    assert!(during >= 2, "the source was retried during the outage");
    // Requests inside the outage failed without sending anything.
    let failed = sent.iter().filter(|s| s.result.is_err()).count();
    assert!(failed > 1000, "{failed}");
    assert!(sent
        .iter()
        .filter_map(|s| s.result.as_ref().err())
        .all(|k| *k == Some(ErrorKind::TokenFetch)));
    let first_ok = sent.iter().find(|s| s.result.is_ok()).expect("recovered");
    assert!(
        first_ok.at + first_ok.latency <= 4 * SEC + 30 * SEC, // the backoff cap
        "recovered at {:?}",
        first_ok.at + first_ok.latency
    );
    // In fact within the backoff reached after a 4 s outage: at worst four failures fit in it
    // (delays 1, 2, 4 s, each jittered down to half: fetches at 0, 0.55, 1.6 and 3.65 s), and
    // the fifth waits up to the full 8 s after the fourth failed (3.7 s): under 12 s.
    assert!(first_ok.at < 12 * SEC, "{first_ok:?}");
    // Every request after recovery succeeded, and refreshes kept them from waiting.
    let after: Vec<_> = sent.iter().filter(|s| s.at > first_ok.at).collect();
    assert!(
        after.iter().all(|s| s.result.is_ok()),
        "a failure after recovery"
    );
    assert_eq!(up.calls(), sent.iter().filter(|s| s.result.is_ok()).count());
}

#[tokio::test(start_paused = true)]
async fn a_refresh_hanging_before_expiry_strands_no_one_and_recovery_needs_no_timeout() {
    // 3 s tokens refreshed 1.5 s before expiry. The refresh at 1.5 s hangs; until 4 s the
    // endpoint fails fast; after that it is back.
    let source = Scripted::new(|n, at| match n {
        1 => Plan::Token(Duration::ZERO, Some(3 * SEC)),
        2 => Plan::Hang,
        _ if at < 4 * SEC => Plan::Fail(20 * MS),
        _ => Plan::Token(20 * MS, Some(3 * SEC)),
    });
    let fetch_timeout = 30 * SEC;
    let svc = layer_of(&source, 1500 * MS, fetch_timeout).layer(Upstream::default().service());
    let sent = load(&svc, 50, 10 * MS, 10 * SEC).await;

    let slowest = sent.iter().map(|s| s.latency).max().expect("requests");
    assert!(slowest <= fetch_timeout, "a request waited {slowest:?}");
    // Until expiry the valid token was used with no wait, the refresh hanging or not.
    assert!(sent
        .iter()
        .filter(|s| s.at < 3 * SEC)
        .all(|s| s.result.as_deref() == Ok("Bearer t1") && s.latency.is_zero()));
    // After recovery (and the backoff of the fast failures in between, about a second),
    // requests succeed without waiting for the hung refresh's 30 s timeout.
    let late: Vec<_> = sent.iter().filter(|s| s.at >= 6 * SEC).collect();
    assert!(!late.is_empty());
    assert!(
        late.iter().all(|s| s.result.is_ok()),
        "failures after recovery"
    );
    assert!(
        sent.iter()
            .filter(|s| s.at >= 3 * SEC)
            .all(|s| s.latency < SEC),
        "a request waited on the hung refresh"
    );
}

#[tokio::test(start_paused = true)]
async fn waiters_on_a_hung_fetch_wait_at_most_the_fetch_timeout_from_when_they_began() {
    let source = Scripted::new(|n, _| match n {
        1 => Plan::Hang,
        _ => Plan::Token(Duration::ZERO, None),
    });
    let svc = layer_of(&source, SEC, 3 * SEC).layer(Upstream::default().service());
    let first = tokio::spawn({
        let svc = svc.clone();
        async move {
            let start = Instant::now();
            (
                send(&svc, get(API)).await.map(drop).map_err(|e| kind(&e)),
                start.elapsed(),
            )
        }
    });
    settle().await;
    tokio::time::advance(2 * SEC).await;
    // Joins the hung fetch 2 s in: it ends with the fetch's timeout, 1 s later.
    let start = Instant::now();
    let err = send(&svc, get(API)).await.expect_err("timed out");
    assert_eq!(kind(&err), Some(ErrorKind::TokenFetchTimeout));
    assert_eq!(start.elapsed(), SEC);
    let (first, waited) = first.await.expect("task");
    assert_eq!(first, Err(Some(ErrorKind::TokenFetchTimeout)));
    assert_eq!(waited, 3 * SEC);
    assert_eq!(source.fetches(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_request_that_starts_a_fetch_gets_that_fetchs_outcome() {
    // The fetch takes exactly the fetch timeout: whichever way that race goes, the request that
    // started it, a request that joined it and the cache agree.
    let source = Scripted::new(|n, _| match n {
        1 => Plan::Token(3 * SEC, None),
        _ => Plan::Token(Duration::ZERO, None),
    });
    let up = Upstream::default();
    let svc = layer_of(&source, SEC, 3 * SEC).layer(up.service());
    let first = tokio::spawn({
        let svc = svc.clone();
        async move {
            send(&svc, get(API))
                .await
                .map(|r| r.into_body())
                .map_err(|e| kind(&e))
        }
    });
    settle().await;
    tokio::time::advance(SEC).await;
    let second = send(&svc, get(API))
        .await
        .map(|r| r.into_body())
        .map_err(|e| kind(&e));
    let first = first.await.expect("task");
    assert_eq!(first, second);
    tokio::time::advance(SEC).await; // past any backoff
    let third = auth_of(&svc, get(API)).await;
    match first {
        // The token was delivered: it was also cached.
        Ok(auth) => assert_eq!((auth, source.fetches()), (third, 1)),
        // The fetch timed out: its late token was not cached either.
        Err(kind) => {
            assert_eq!(kind, Some(ErrorKind::TokenFetchTimeout));
            assert_eq!((third, source.fetches()), (vec!["Bearer t2".to_owned()], 2));
        }
    }
}

#[test]
fn a_refresh_stranded_on_an_idle_runtime_blocks_other_refreshes_only_until_its_timeout() {
    // Two paused runtimes made together, so their clocks agree: `main` is driven, `idle` only
    // has its clock moved along.
    let paused = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime")
    };
    let (main, idle) = (paused(), paused());
    let source = Scripted::new(|_, _| Plan::Token(Duration::ZERO, Some(100 * SEC)));
    let svc = layer_of(&source, 60 * SEC, 10 * SEC).layer(Upstream::default().service());
    let advance = |rt: &tokio::runtime::Runtime, by: Duration| {
        rt.block_on(async move {
            tokio::time::advance(by).await;
            settle().await;
        });
    };
    assert_eq!(main.block_on(auth_of(&svc, get(API))), ["Bearer t1"]); // window opens at 50 s
    advance(&main, 50 * SEC);
    advance(&idle, 50 * SEC);
    {
        // This request's background refresh is spawned on a runtime that never runs it.
        let _entered = idle.enter();
        let mut request = Box::pin(send(&svc, get(API)));
        let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
        assert!(request.as_mut().poll(&mut cx).is_ready());
    }
    advance(&main, Duration::ZERO);
    assert_eq!(source.fetches(), 1, "the refresh sits on the idle runtime");
    // Within its timeout it is left alone: no second refresh.
    advance(&main, 9 * SEC);
    assert_eq!(main.block_on(auth_of(&svc, get(API))), ["Bearer t1"]);
    advance(&main, Duration::ZERO);
    assert_eq!(source.fetches(), 1);
    // Past its timeout it is abandoned, and a request starts a new refresh here, long
    // before the token expires. (A millisecond more: the two clocks were made microseconds
    // apart.)
    advance(&main, SEC + MS);
    assert_eq!(main.block_on(auth_of(&svc, get(API))), ["Bearer t1"]);
    advance(&main, Duration::ZERO);
    assert_eq!(source.fetches(), 2);
    assert_eq!(main.block_on(auth_of(&svc, get(API))), ["Bearer t2"]);
    idle.shutdown_background();
}

#[test]
fn without_a_runtime_a_request_joining_a_fetch_stranded_elsewhere_is_bounded() {
    let source = Scripted::new(|_, _| Plan::Token(Duration::ZERO, None));
    let timeout = 200 * MS;
    let svc = BearerAuthLayer::builder()
        .source(source.clone())
        .fetch_timeout(timeout)
        .build()
        .expect("valid")
        .layer(Upstream::default().service());
    let idle = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    {
        // A fetch spawned on a runtime that is never driven.
        let _entered = idle.enter();
        let mut first = Box::pin(send(&svc, get(API)));
        let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
        assert!(first.as_mut().poll(&mut cx).is_pending());
    }
    // A request with no runtime at all joins it. It must give up after the fetch timeout
    // (real time: there is no tokio clock here).
    let (result, waited) = send_blocking(svc.clone(), None);
    assert_eq!(result, Err(Some(ErrorKind::TokenFetchTimeout)));
    assert!(waited >= timeout, "{waited:?}");
    assert_eq!(source.fetches(), 0);
    idle.shutdown_background();
}

#[test]
fn without_a_runtime_a_hung_inline_fetch_times_out() {
    let hang = Scripted::new(|_, _| Plan::Hang);
    let timeout = 100 * MS;
    let svc = BearerAuthLayer::builder()
        .source(hang.clone())
        .fetch_timeout(timeout)
        .build()
        .expect("valid")
        .layer(Upstream::default().service());
    let (result, waited) = send_blocking(svc, None);
    assert_eq!(result, Err(Some(ErrorKind::TokenFetchTimeout)));
    assert!(waited >= timeout, "{waited:?}");
    assert_eq!(hang.fetches(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_token_expired_on_arrival_is_a_failed_fetch_and_never_sent() {
    let source = Scripted::new(|n, _| match n {
        1 => Plan::Token(Duration::ZERO, Some(Duration::ZERO)),
        _ => Plan::Token(Duration::ZERO, Some(100 * SEC)),
    });
    let up = Upstream::default();
    let svc = layer_of(&source, SEC, 10 * SEC).layer(up.service());
    let err = send(&svc, get(API)).await.expect_err("expired on arrival");
    assert_eq!(kind(&err), Some(ErrorKind::TokenFetch));
    assert!(err.to_string().contains("already expired"), "{err}");
    assert_eq!(up.calls(), 0, "nothing was sent");
    // It counts as a failure: the backoff holds, then the next fetch is a real one.
    assert!(send(&svc, get(API)).await.is_err());
    assert_eq!(source.fetches(), 1);
    tokio::time::advance(SEC).await;
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t2"]);

    // A token whose expiry lies in the past, from `valid_until`, likewise.
    let past = Instant::now() - SEC;
    let layer = BearerAuthLayer::from_source(move || async move {
        Ok::<_, BoxError>(Token::new(BearerToken::new("old")?).valid_until(past))
    });
    let svc = layer.layer(up.service());
    assert_eq!(
        kind(&send(&svc, get(API)).await.expect_err("past expiry")),
        Some(ErrorKind::TokenFetch)
    );
}

#[tokio::test(start_paused = true)]
async fn a_refresh_returning_an_expired_token_keeps_the_valid_one() {
    let source = Scripted::new(|n, _| match n {
        1 => Plan::Token(Duration::ZERO, Some(100 * SEC)),
        2 | 3 => Plan::Token(Duration::ZERO, Some(Duration::ZERO)),
        _ => Plan::Token(Duration::ZERO, Some(100 * SEC)),
    });
    let layer = layer_of(&source, 60 * SEC, 10 * SEC);
    let svc = layer.clone().layer(Upstream::default().service());
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    tokio::time::advance(50 * SEC).await; // inside the window
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    settle().await;
    assert_eq!(source.fetches(), 2);
    assert_eq!(
        auth_of(&svc, get(API)).await,
        ["Bearer t1"],
        "t2 was not used"
    );
    // `refresh()` reports it, and the valid token stays.
    let err = layer.refresh().await.expect_err("expired on arrival");
    assert_eq!(err.kind(), ErrorKind::TokenFetch);
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    layer.refresh().await.expect("t4");
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t4"]);
}

#[test]
fn a_runtime_without_timers_fails_only_its_own_fetches() {
    let source = Scripted::new(|_, _| Plan::Token(Duration::ZERO, None));
    let up = Upstream::default();
    let svc = layer_of(&source, SEC, 10 * SEC).layer(up.service());
    let no_timer = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let with_timer = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let err = no_timer
        .block_on(send(&svc, get(API)))
        .expect_err("no timer");
    assert_eq!(kind(&err), Some(ErrorKind::InvalidConfig));
    assert!(err.to_string().contains("enable_time"), "{err}");
    // Not a fetch failure: no backoff, and another runtime sharing the layer is unaffected.
    let auth = with_timer.block_on(auth_of(&svc, get(API)));
    assert_eq!(auth, ["Bearer t1"]);
    // The cached token serves the misconfigured runtime too; only fetching needs the timer.
    let auth = no_timer.block_on(auth_of(&svc, get(API)));
    assert_eq!(auth, ["Bearer t1"]);
    assert_eq!(source.fetches(), 1);
}

#[tokio::test(start_paused = true)]
async fn invalidate_and_refresh_act_on_the_cache_every_clone_shares() {
    let source = Scripted::new(|n, _| match n {
        3 | 4 => Plan::Fail(Duration::ZERO),
        _ => Plan::Token(SEC, Some(3600 * SEC)),
    });
    let layer = layer_of(&source, 60 * SEC, 10 * SEC);
    let clone = layer.clone();
    let svc = layer.clone().layer(Upstream::default().service());
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    // refresh() replaces the valid token, for every clone.
    clone.refresh().await.expect("refreshed");
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t2"]);
    // invalidate() drops it: the next request fails (the source now fails), and the backoff
    // holds back requests, but not refresh().
    clone.invalidate();
    assert!(send(&svc, get(API)).await.is_err());
    assert!(send(&svc, get(API)).await.is_err());
    assert_eq!(source.fetches(), 3);
    assert!(layer.refresh().await.is_err());
    assert_eq!(source.fetches(), 4, "refresh() ignores the backoff");
    layer.refresh().await.expect("refreshed");
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t5"]);
    // refresh() joins a fetch already in flight rather than starting another.
    layer.invalidate();
    let (a, b, c) = tokio::join!(auth_of(&svc, get(API)), layer.refresh(), clone.refresh());
    assert_eq!(a, ["Bearer t6"]);
    assert!(b.is_ok() && c.is_ok());
    assert_eq!(source.fetches(), 6);
}

#[tokio::test]
async fn invalidate_and_refresh_on_a_fixed_token_do_nothing() {
    let layer = BearerAuthLayer::new("fixed").expect("valid");
    layer.invalidate();
    layer.refresh().await.expect("nothing to fetch");
    let svc = layer.layer(Upstream::default().service());
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer fixed"]);
}

#[test]
fn refresh_is_send_and_static_so_it_can_be_spawned() {
    fn spawnable<F: std::future::Future + Send + 'static>(_: F) {}
    let layer = BearerAuthLayer::new("fixed").expect("valid");
    spawnable(layer.refresh());
}

#[tokio::test(start_paused = true)]
async fn invalidate_discards_what_a_fetch_already_in_flight_brings() {
    // A logout while a fetch runs: the token it brings was asked for before the logout.
    let source = Scripted::new(|n, _| match n {
        1 => Plan::Token(SEC, None),
        _ => Plan::Token(Duration::ZERO, None),
    });
    let layer = layer_of(&source, SEC, 10 * SEC);
    let up = Upstream::default();
    let svc = layer.clone().layer(up.service());
    let waiting = tokio::spawn({
        let svc = svc.clone();
        async move { auth_of(&svc, get(API)).await }
    });
    settle().await;
    tokio::time::advance(500 * MS).await;
    layer.invalidate();
    // The waiting request starts over and gets a token fetched after the logout.
    assert_eq!(waiting.await.expect("task"), ["Bearer t2"]);
    tokio::time::advance(SEC).await; // fetch 1 would have finished by now
    settle().await;
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t2"]);
    assert_eq!(source.fetches(), 2);
    assert!(up
        .seen
        .lock()
        .expect("lock")
        .iter()
        .all(|h| h[AUTHORIZATION] != "Bearer t1"));
}

// ------------------------------------------------ found by the adversarial review (issue 10)

/// Send a request; report (auth or kind, how long it waited).
async fn timed<S>(svc: S) -> (Result<Vec<String>, Option<ErrorKind>>, Duration)
where
    S: Service<Request<()>, Response = Response<Vec<String>>, Error = BoxError> + Clone,
{
    let start = Instant::now();
    let result = send(&svc, get(API))
        .await
        .map(|r| r.into_body())
        .map_err(|e| kind(&e));
    (result, start.elapsed())
}

#[tokio::test(start_paused = true)]
async fn a_waiter_that_started_over_does_not_time_out_a_younger_fetch_for_everyone() {
    let source = Scripted::new(|n, _| match n {
        1 => Plan::Token(Duration::ZERO, Some(10 * SEC)),
        2 => Plan::Hang,
        _ => Plan::Token(29 * SEC, Some(100 * SEC)),
    });
    let up = Upstream::default();
    let svc = layer_of(&source, 5 * SEC, 30 * SEC).layer(up.service());
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]); // expires at 10 s
    tokio::time::advance(6 * SEC).await;
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]); // the refresh (2) hangs
    settle().await;
    // At 7 s a 401 drops t1: r1 waits on the hung refresh, its deadline at 37 s.
    up.reject("Bearer t1");
    tokio::time::advance(SEC).await;
    assert_eq!(send(&svc, get(API)).await.expect("401").status(), 401);
    let r1 = tokio::spawn(timed(svc.clone()));
    settle().await;
    // At 10 s the hung refresh is overdue: r2 abandons it and starts fetch 3 (29 s, within
    // the 30 s timeout); r1 starts over and joins fetch 3.
    tokio::time::advance(3 * SEC).await;
    let r2 = tokio::spawn(timed(svc.clone()));
    settle().await;
    assert_eq!(source.fetches(), 3);
    let (r1, waited1) = r1.await.expect("task");
    let (r2, waited2) = r2.await.expect("task");
    // r1 gives up at its own deadline, alone; fetch 3 goes on and r2 gets its token.
    assert_eq!(
        (r1, waited1),
        (Err(Some(ErrorKind::TokenFetchTimeout)), 30 * SEC)
    );
    assert_eq!((r2, waited2), (Ok(vec!["Bearer t3".to_owned()]), 29 * SEC));
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t3"]);
    assert_eq!(source.fetches(), 3);
}

#[test]
fn a_request_under_an_entered_but_undriven_runtime_is_bounded_too() {
    let source = Scripted::new(|_, _| Plan::Token(Duration::ZERO, None));
    let timeout = 200 * MS;
    let svc = BearerAuthLayer::builder()
        .source(source.clone())
        .fetch_timeout(timeout)
        .build()
        .expect("valid")
        .layer(Upstream::default().service());
    // A sync adapter: a runtime entered but never run, around a plain executor.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (result, waited) = send_blocking(svc, Some(rt));
    assert_eq!(result, Err(Some(ErrorKind::TokenFetchTimeout)));
    assert!(waited >= timeout, "{waited:?}");
}

/// Three paused runtimes made together, so their clocks agree; `advance` moves them all.
fn paused_runtimes<const N: usize>() -> [tokio::runtime::Runtime; N] {
    std::array::from_fn(|_| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime")
    })
}

fn advance_all(runtimes: &[&tokio::runtime::Runtime], by: Duration) {
    for rt in runtimes {
        rt.block_on(async move {
            tokio::time::advance(by).await;
            settle().await;
        });
    }
}

/// Poll a request once inside `rt`'s context (so a refresh it starts is spawned there).
fn poll_once_in<S>(rt: &tokio::runtime::Runtime, svc: &S) -> bool
where
    S: Service<Request<()>, Response = Response<Vec<String>>, Error = BoxError> + Clone,
{
    let _entered = rt.enter();
    let mut request = Box::pin(send(svc, get(API)));
    let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
    request.as_mut().poll(&mut cx).is_ready()
}

#[test]
fn refresh_is_not_ok_when_the_fetch_it_joined_was_cancelled_and_nothing_new_came() {
    let [main, idle] = paused_runtimes::<2>();
    let source = Scripted::new(|_, _| Plan::Token(Duration::ZERO, Some(100 * SEC)));
    let layer = layer_of(&source, 60 * SEC, 10 * SEC);
    let svc = layer.clone().layer(Upstream::default().service());
    assert_eq!(main.block_on(auth_of(&svc, get(API))), ["Bearer t1"]);
    advance_all(&[&main, &idle], 50 * SEC);
    // A background refresh spawned on a runtime that is never driven.
    assert!(poll_once_in(&idle, &svc));
    let refresh = main.spawn(layer.refresh()); // joins it
    main.block_on(settle());
    idle.shutdown_background(); // the refresh task is dropped: no outcome
    main.block_on(refresh)
        .expect("task")
        .expect("refresh() fetched anew");
    assert_eq!(source.fetches(), 2, "refresh() started its own fetch");
    assert_eq!(main.block_on(auth_of(&svc, get(API))), ["Bearer t2"]);
}

#[test]
fn a_refresh_cancelled_with_its_runtime_is_spaced_out_like_a_failed_one() {
    // A sync wrapper with a runtime per call: each call's background refresh dies with it.
    let [main, call1, call2, call3] = paused_runtimes::<4>();
    let all = [&main, &call1, &call2, &call3];
    let source = Scripted::new(|_, _| Plan::Token(SEC, Some(100 * SEC)));
    let svc = layer_of(&source, 60 * SEC, 10 * SEC).layer(Upstream::default().service());
    assert_eq!(main.block_on(auth_of(&svc, get(API))), ["Bearer t1"]);
    advance_all(&all, 60 * SEC); // the window opened at 51 s
    assert!(poll_once_in(&call1, &svc)); // starts refresh 2 on call1
    assert_eq!(source.fetches(), 1, "spawned, not yet run");
    call1.shutdown_background(); // the call returns: its runtime and the refresh go
    assert!(poll_once_in(&call2, &svc)); // the valid token, and no new refresh yet
    call2.shutdown_background();
    assert_eq!(source.fetches(), 1);
    advance_all(&[&main, &call3], 5 * SEC); // the retry delay (half of 40 s, at most 5 s)
    assert!(poll_once_in(&call3, &svc)); // now one new refresh starts
    call3.block_on(settle());
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn refreshes_that_bring_no_later_expiry_do_not_speed_up_towards_it() {
    // A server that hands out the same token, with the same expiry, until it expires.
    let start = Instant::now();
    let expiry = start + 100 * SEC;
    let starts = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&starts);
    let layer =
        BearerAuthLayer::builder()
            .source(move || {
                log.lock().expect("lock").push(Instant::now() - start);
                async move {
                    Ok::<_, BoxError>(Token::new(BearerToken::new("same")?).valid_until(expiry))
                }
            })
            .refresh_before(60 * SEC)
            .build()
            .expect("valid");
    let svc = layer.layer(Upstream::default().service());
    let sent = load(&svc, 2, 10 * MS, 100 * SEC - MS).await;
    assert!(sent.iter().all(|s| s.result.is_ok()));
    let starts = starts.lock().expect("lock").clone();
    // The window opens at 50 s; then at most one refresh a second (halving would give ever
    // closer ones, 3 ms apart at the end).
    let in_last_second = starts.iter().filter(|t| **t >= 99 * SEC).count();
    assert!(in_last_second <= 1, "{starts:?}");
    assert!(
        starts.len() <= 2 + 50,
        "{} fetches: {starts:?}",
        starts.len()
    );
    assert!(
        starts.windows(2).skip(1).all(|w| w[1] - w[0] >= SEC),
        "{starts:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiter_polled_after_its_token_expired_does_not_send_it() {
    // Fetch 1 is held until released, then issues a token living 1 ms; later ones too.
    let (release, gate) = tokio::sync::oneshot::channel::<()>();
    let gate = Arc::new(Mutex::new(Some(gate)));
    let fetched_at = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&fetched_at);
    let layer = BearerAuthLayer::builder()
        .source(move || {
            let gate = gate.lock().expect("lock").take();
            let log = Arc::clone(&log);
            async move {
                if let Some(gate) = gate {
                    let _ = gate.await;
                }
                let mut log = log.lock().expect("lock");
                log.push(Instant::now());
                let token = BearerToken::new(format!("t{}", log.len()))?;
                Ok::<_, BoxError>(Token::new(token).expires_in(MS))
            }
        })
        .build()
        .expect("valid");
    let up = Upstream::default();
    let svc = layer.layer(up.service());
    // The request starts the fetch and is polled again only 10 ms after it published t1.
    let mut waiter = Box::pin(auth_of(&svc, get(API)));
    assert!(futures::poll!(waiter.as_mut()).is_pending());
    let _ = release.send(());
    settle().await; // the fetch publishes t1, valid for 1 ms
    assert_eq!(fetched_at.lock().expect("lock").len(), 1);
    tokio::time::advance(10 * MS).await;
    let auth = waiter.await;
    assert_ne!(auth, ["Bearer t1"], "an expired token was sent");
    let fetched_at = fetched_at.lock().expect("lock").clone();
    assert!(fetched_at.len() >= 2);
}

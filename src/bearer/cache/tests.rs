//! The cache's own rules (refresh times, what the hot path reads and when it moves), and the
//! cache under threads: per-thread copies of the token follow every change, a rejection drops
//! only the token it answered, one fetch serves every waiter. Timing runs on tokio's paused
//! clock; tests with several threads use no clock at all (their tokens never expire, and their
//! sources wait on gates the tests open).

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;

use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use tower::{service_fn, Service, ServiceExt};
use tower_layer::Layer;

use super::*;
use crate::{BearerAuthLayer, BearerToken, BoxError};

#[test]
fn refresh_window_is_at_most_half_the_lifetime() {
    let now = Instant::now();
    let s = Duration::from_secs;
    assert_eq!(refresh_at(now, now + s(3600), s(60)), now + s(3540));
    assert_eq!(refresh_at(now, now + s(60), s(60)), now + s(30));
    assert_eq!(refresh_at(now, now + s(10), s(60)), now + s(5));
    assert_eq!(refresh_at(now, now, s(60)), now);
    assert_eq!(refresh_at(now, now + s(100), Duration::ZERO), now + s(100));
}

#[tokio::test(start_paused = true)]
async fn soft_refresh_time_is_the_sooner_of_the_two_and_at_least_a_second_away() {
    let now = Instant::now();
    let s = Duration::from_secs;
    let token = || Token::new(crate::BearerToken::new("t").expect("valid"));
    let at = |t: &Token| refresh_time(now, t, s(60));
    assert_eq!(at(&token()), None);
    assert_eq!(at(&token().refresh_in(s(30))), Some(now + s(30)));
    // Expiring in an hour: the soft time comes first; in 40 s: the window (20 s) does.
    let t = token().expires_in(s(3600)).refresh_in(s(30));
    assert_eq!(at(&t), Some(now + s(30)));
    let t = token().expires_in(s(40)).refresh_in(s(30));
    assert_eq!(at(&t), Some(now + s(20)));
    // "Refresh at once" waits a second.
    assert_eq!(at(&token().refresh_in(Duration::ZERO)), Some(now + s(1)));
    // A soft time beyond representation: no soft refresh.
    assert_eq!(at(&token().refresh_in(Duration::MAX)), None);
}

// ------------------------------------------------------------ what the hot path reads

/// A cache over a source that answers `t1`, `t2`, ... at once, each living `lifetime`.
fn counting_cache(
    lifetime: Option<Duration>,
    refresh_before: Duration,
) -> (TokenCache, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&fetches);
    let source = move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            let token = Token::new(BearerToken::new(format!("t{n}"))?);
            Ok::<_, BoxError>(match lifetime {
                Some(lifetime) => token.expires_in(lifetime),
                None => token,
            })
        }
    };
    let cache = TokenCache::new(
        Box::new(source),
        refresh_before,
        Duration::from_secs(10),
        AUTHORIZATION,
    );
    (cache, fetches)
}

fn epoch(cache: &TokenCache) -> u64 {
    cache.shared.published.epoch.load(Ordering::SeqCst)
}

fn ready(lookup: Lookup) -> Option<(String, Ticket)> {
    match lookup {
        Lookup::Ready(value, ticket) => Some((value.to_str().ok()?.to_owned(), ticket)),
        Lookup::Wait => None,
    }
}

#[test]
fn the_refresh_check_time_is_exactly_when_a_refresh_may_start() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let _entered = rt.enter();
    let (cache, _) = counting_cache(None, Duration::from_secs(60));
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let token = |refresh_at: Option<u64>| Cached {
        value: HeaderValue::from_static("Bearer t"),
        generation: 1,
        expires_at: Some(t0 + s(100)),
        refresh_at: refresh_at.map(|at| t0 + s(at)),
    };
    for refresh_at in [None, Some(10), Some(50)] {
        for retry_at in [None, Some(5), Some(30), Some(70)] {
            for flight in [None, Some(None), Some(Some(20)), Some(Some(60))] {
                let mut st = State {
                    current: Some(token(refresh_at)),
                    retry_at: retry_at.map(|at| t0 + s(at)),
                    ..State::default()
                };
                // Never run: the entry alone is what the state sees.
                let _running = flight.map(|deadline| {
                    let deadline = deadline.map(|at| t0 + s(at));
                    let (running, entry) =
                        Flight::begin(&cache.shared, 1, t0, deadline, Overdue::TimedOut);
                    st.flight = Some(entry);
                    running
                });
                let c = st.current.clone().expect("token");
                let check_at = st.refresh_check_at(&c);
                for now in (0..=110).map(|at| t0 + s(at)) {
                    assert_eq!(
                        check_at.is_some_and(|at| now >= at),
                        c.wants_refresh(now) && st.may_start_refresh(now),
                        "refresh at {refresh_at:?}, retry at {retry_at:?}, flight {flight:?}, \
                         now {:?}",
                        now - t0
                    );
                }
                // The hot path stops at whichever comes first, the check or the expiry.
                let until = st.hot_key().and_then(|(_, until)| until);
                assert_eq!(
                    until,
                    Some(check_at.map_or(t0 + s(100), |at| at.min(t0 + s(100))))
                );
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_epoch_moves_only_when_what_the_hot_path_reads_changes() {
    let (cache, fetches) = counting_cache(Some(Duration::from_secs(100)), Duration::from_secs(10));
    let start = epoch(&cache);
    // Nothing cached, and invalidating nothing changes nothing.
    assert!(ready(cache.lookup()).is_none());
    cache.invalidate();
    assert_eq!(epoch(&cache), start);
    let (value, ticket) = cache.acquire().await.expect("token");
    assert_eq!(value, "Bearer t1");
    let fetched = epoch(&cache);
    assert!(fetched > start, "a new token moves it");
    // Requests on the hot path write nothing, however many.
    for _ in 0..10 {
        assert_eq!(
            ready(cache.lookup()).map(|(v, _)| v).as_deref(),
            Some("Bearer t1")
        );
    }
    assert_eq!(epoch(&cache), fetched);
    // Expiry needs no write: the copy knows until when it holds.
    tokio::time::advance(Duration::from_secs(101)).await;
    assert!(ready(cache.lookup()).is_none(), "expired");
    let (value, _) = cache.acquire().await.expect("token");
    assert_eq!(value, "Bearer t2");
    assert!(epoch(&cache) > fetched);
    // A rejection of a token already replaced changes nothing; of the cached one, it does.
    let before = epoch(&cache);
    ticket.invalidate();
    assert_eq!(epoch(&cache), before);
    let (_, current) = cache.acquire().await.expect("token");
    current.invalidate();
    assert!(epoch(&cache) > before);
    assert!(ready(cache.lookup()).is_none());
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn inside_the_window_one_request_starts_the_refresh_and_the_rest_stay_on_the_hot_path() {
    let (cache, fetches) = counting_cache(Some(Duration::from_secs(100)), Duration::from_secs(10));
    cache.acquire().await.expect("token");
    tokio::time::advance(Duration::from_secs(91)).await;
    let at_window = epoch(&cache);
    // The first request in the window starts the refresh (and moves the epoch: the flight in
    // progress pushes the next look back); the others send t1 without a look at the state.
    assert_eq!(
        ready(cache.lookup()).map(|(v, _)| v).as_deref(),
        Some("Bearer t1")
    );
    let refreshing = epoch(&cache);
    assert!(refreshing > at_window);
    for _ in 0..10 {
        assert_eq!(
            ready(cache.lookup()).map(|(v, _)| v).as_deref(),
            Some("Bearer t1")
        );
    }
    assert_eq!(
        epoch(&cache),
        refreshing,
        "no request looked at the state again"
    );
    // The refresh lands: t2, with no request waiting.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        ready(cache.lookup()).map(|(v, _)| v).as_deref(),
        Some("Bearer t2")
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[test]
fn a_dropped_cache_leaves_the_registry_and_its_tickets_do_nothing() {
    let (cache, _) = counting_cache(None, Duration::from_secs(60));
    let id = cache.shared.id;
    let ticket = cache.ticket(1);
    assert!(ticket::caches().contains_key(&id));
    drop(cache);
    assert!(!ticket::caches().contains_key(&id));
    ticket.invalidate();
}

// ------------------------------------------------------------ through the service, threaded

const API: &str = "https://api.example.com/v1";
const THREADS: usize = 4;

fn get(uri: &str) -> Request<()> {
    Request::get(uri).body(()).expect("request")
}

/// An upstream that answers `401` to the `Authorization` values in `rejected` and echoes the
/// one it got.
#[derive(Clone, Default)]
struct Upstream {
    rejected: Arc<Mutex<HashSet<String>>>,
}

impl Upstream {
    fn reject(&self, token: &str) {
        self.rejected
            .lock()
            .expect("lock")
            .insert(format!("Bearer {token}"));
    }

    fn service(
        &self,
    ) -> impl Service<
        Request<()>,
        Response = Response<String>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<String>, Infallible>> + Send + 'static,
    > + Clone
           + Send
           + 'static {
        let rejected = Arc::clone(&self.rejected);
        service_fn(move |req: Request<()>| {
            let auth = req
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let mut response = Response::new(auth.clone());
            if rejected.lock().expect("lock").contains(&auth) {
                *response.status_mut() = StatusCode::UNAUTHORIZED;
            }
            std::future::ready(Ok::<_, Infallible>(response))
        })
    }
}

/// A source answering `t1`, `t2`, ... (never expiring) that counts its fetches.
fn counting_layer() -> (BearerAuthLayer, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&fetches);
    let layer = BearerAuthLayer::from_source(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok::<_, BoxError>(Token::new(BearerToken::new(format!("t{n}"))?)) }
    });
    (layer, fetches)
}

/// Send one request, with no runtime (a fetch then runs in the request).
fn send_blocking<S>(svc: &S) -> (StatusCode, String)
where
    S: Service<Request<()>, Response = Response<String>, Error = BoxError> + Clone,
{
    let response = futures::executor::block_on(svc.clone().oneshot(get(API))).expect("response");
    (response.status(), response.into_body())
}

#[test]
fn every_thread_sends_the_new_token_after_an_invalidation_or_a_401() {
    let (layer, fetches) = counting_layer();
    let up = Upstream::default();
    let svc = layer.clone().layer(up.service());
    let phases = std::sync::Barrier::new(THREADS);
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (svc, layer, up, phases) = (svc.clone(), &layer, &up, &phases);
            scope.spawn(move || {
                // Every thread takes its copy of t1, and uses it.
                for _ in 0..3 {
                    assert_eq!(send_blocking(&svc).1, "Bearer t1");
                }
                phases.wait();
                if thread == 0 {
                    layer.invalidate();
                }
                phases.wait();
                // No thread sends its old copy: all share one new fetch.
                assert_eq!(send_blocking(&svc).1, "Bearer t2");
                phases.wait();
                if thread == 0 {
                    up.reject("t2");
                    assert_eq!(send_blocking(&svc).0, StatusCode::UNAUTHORIZED);
                }
                phases.wait();
                assert_eq!(
                    send_blocking(&svc),
                    (StatusCode::OK, "Bearer t3".to_owned())
                );
            });
        }
    });
    assert_eq!(fetches.load(Ordering::SeqCst), 3);
}

#[test]
fn more_layers_than_a_thread_keeps_copies_for_never_mix_their_tokens() {
    let up = Upstream::default();
    let services: Vec<_> = (0..7)
        .map(|i| {
            let layer = BearerAuthLayer::from_source(move || async move {
                Ok::<_, BoxError>(Token::new(BearerToken::new(format!("layer{i}"))?))
            });
            layer.layer(up.service())
        })
        .collect();
    for _ in 0..3 {
        for (i, svc) in services.iter().enumerate() {
            assert_eq!(send_blocking(svc).1, format!("Bearer layer{i}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_fetch_serves_many_concurrent_waiters_across_threads() {
    const WAITERS: usize = 64;
    // The source answers once every request is waiting on its fetch.
    let (arrived, gate) = tokio::sync::watch::channel(0usize);
    let arrived = Arc::new(arrived);
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&fetches);
    let layer = BearerAuthLayer::from_source(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let mut gate = gate.clone();
        async move {
            gate.wait_for(|arrived| *arrived >= WAITERS).await?;
            Ok::<_, BoxError>(Token::new(BearerToken::new(format!("t{n}"))?))
        }
    });
    let svc = layer.layer(Upstream::default().service());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..WAITERS {
        let (mut svc, arrived) = (svc.clone(), Arc::clone(&arrived));
        tasks.spawn(async move {
            let mut call = std::pin::pin!(svc.ready().await.expect("ready").call(get(API)));
            // Polled once, the request has joined the fetch (or started it) and waits.
            assert!(futures::poll!(call.as_mut()).is_pending());
            arrived.send_modify(|n| *n += 1);
            call.await.expect("response").into_body()
        });
    }
    while let Some(auth) = tasks.join_next().await {
        assert_eq!(auth.expect("task"), "Bearer t1");
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

/// `n` requests at once, each on a task of its own (spread over the runtime's workers).
async fn burst<S>(svc: &S, n: usize) -> Vec<(StatusCode, String)>
where
    S: Service<Request<()>, Response = Response<String>, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let svc = svc.clone();
        tasks.spawn(async move {
            let response = svc.oneshot(get(API)).await.expect("response");
            (response.status(), response.into_body())
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer.expect("task"));
    }
    answers
}

fn all(answers: &[(StatusCode, String)], status: StatusCode, auth: &str) -> bool {
    answers.iter().all(|(s, a)| *s == status && a == auth)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_drops_only_the_token_it_answered_across_threads() {
    const TASKS: usize = 32;
    let (layer, fetches) = counting_layer();
    let up = Upstream::default();
    // A request (marked `x-hold`) whose answer comes only when the test releases it.
    let (release, gate) = tokio::sync::oneshot::channel::<()>();
    let (reached, held) = tokio::sync::oneshot::channel::<()>();
    let hold = Arc::new(Mutex::new(Some((gate, reached))));
    let inner = up.service();
    let holding = service_fn(move |req: Request<()>| {
        let inner = inner.clone();
        let hold = if req.headers().contains_key("x-hold") {
            hold.lock().expect("lock").take()
        } else {
            None
        };
        async move {
            if let Some((gate, reached)) = hold {
                let _ = reached.send(());
                let _ = gate.await;
            }
            inner.oneshot(req).await
        }
    });
    let svc = layer.layer(holding);

    let answers = burst(&svc, TASKS).await;
    assert!(all(&answers, StatusCode::OK, "Bearer t1"), "{answers:?}");
    let held_request = {
        let svc = svc.clone();
        tokio::spawn(async move {
            let req = Request::get(API)
                .header("x-hold", "1")
                .body(())
                .expect("request");
            let response = svc.oneshot(req).await.expect("response");
            (response.status(), response.into_body())
        })
    };
    held.await.expect("the held request reached the upstream");

    // t1 is rejected: the requests that carried it get 401s, and however many there are,
    // they cause one new fetch.
    up.reject("t1");
    let answers = burst(&svc, TASKS).await;
    assert!(
        answers.iter().all(
            |answer| *answer == (StatusCode::UNAUTHORIZED, "Bearer t1".into())
                || *answer == (StatusCode::OK, "Bearer t2".into())
        ),
        "{answers:?}"
    );
    let answers = burst(&svc, TASKS).await;
    assert!(all(&answers, StatusCode::OK, "Bearer t2"), "{answers:?}");
    assert_eq!(fetches.load(Ordering::SeqCst), 2);

    // The held request's 401 answers t1, which is gone: t2 stays.
    release.send(()).expect("held request waiting");
    let late = held_request.await.expect("task");
    assert_eq!(late, (StatusCode::UNAUTHORIZED, "Bearer t1".to_owned()));
    let answers = burst(&svc, TASKS).await;
    assert!(all(&answers, StatusCode::OK, "Bearer t2"), "{answers:?}");
    assert_eq!(fetches.load(Ordering::SeqCst), 2);

    // A burst of 401s for t2, on every worker: one more fetch, then t3 everywhere.
    up.reject("t2");
    let answers = burst(&svc, TASKS).await;
    assert!(
        answers
            .iter()
            .any(|(status, _)| *status == StatusCode::UNAUTHORIZED),
        "{answers:?}"
    );
    let answers = burst(&svc, TASKS).await;
    assert!(all(&answers, StatusCode::OK, "Bearer t3"), "{answers:?}");
    assert_eq!(fetches.load(Ordering::SeqCst), 3);
}

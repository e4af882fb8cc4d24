//! Stress on real time and two worker threads: 64 tasks send requests for about 1.5 s through
//! clones of one `BearerAuthLayer` whose source issues tokens that live 40 ms.
//!
//! Checked: every request carries exactly one sensitive `Authorization`, a token the source
//! issued, that had not expired when the request was sent; every request sent gets a response
//! and none is lost or fails; the source is asked at most once per refresh period (plus slack),
//! so refreshes are shared and never run in a loop; and the whole run cannot hang (20 s cap).
//!
//! Why "not expired when the request was sent" and not "not expired when it arrived": the layer
//! picks the token in `call` (or, when it has to wait, right after a fetch that started after
//! the request was sent) and the inner service looks at it later. A token picked an instant
//! before its expiry legitimately arrives an instant after it, however long the preemption in
//! between. Every token the layer may attach was valid at some moment at or after the send
//! instant, so `expires_at > sent_at` holds for a correct cache, while a cache that hands out a
//! token it already knows to be expired breaks it. (The one way a correct cache could break it:
//! a thread stalled for a whole lifetime, 40 ms, inside the few synchronous instructions between
//! the source issuing a token and the cache storing it, while a request was sent and joined
//! that fetch. The source here answers at once, so nothing else lies in between.)

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::{Request, Response};
use tokio::time::Instant;
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_client_headers::{BearerAuthLayer, BearerToken, BoxError, Token};

const TASKS: usize = 64;
const RUN_FOR: Duration = Duration::from_millis(1500);
/// A bound on each task's loop besides the deadline.
const MAX_REQUESTS_PER_TASK: u64 = 200_000;
const LIFETIME: Duration = Duration::from_millis(40);
const REFRESH_BEFORE: Duration = Duration::from_millis(15);

#[derive(Default)]
struct Issued {
    fetches: AtomicU64,
    /// `Bearer tN` -> when that token expires; written before the token is handed over.
    expiry: Mutex<HashMap<String, Instant>>,
}

#[derive(Default)]
struct Seen {
    sent: AtomicU64,
    arrived: AtomicU64,
    completed: AtomicU64,
    violations: Mutex<Vec<String>>,
    errors: Mutex<Vec<String>>,
}

impl Seen {
    fn violation(&self, v: String) {
        let mut all = self.violations.lock().expect("lock");
        if all.len() < 20 {
            all.push(v);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_refreshing_layer_under_load() {
    tokio::time::timeout(Duration::from_secs(20), run())
        .await
        .expect("the stress run did not finish within 20 s: a request or a fetch is stuck");
}

async fn run() {
    let issued = Arc::new(Issued::default());
    let source = {
        let issued = Arc::clone(&issued);
        move || {
            let issued = Arc::clone(&issued);
            async move {
                let n = issued.fetches.fetch_add(1, Ordering::SeqCst) + 1;
                let token = Token::new(BearerToken::new(format!("t{n}"))?).expires_in(LIFETIME);
                let expires_at = token.expires_at().expect("a lifetime was given");
                issued
                    .expiry
                    .lock()
                    .expect("lock")
                    .insert(format!("Bearer t{n}"), expires_at);
                Ok::<_, BoxError>(token)
            }
        }
    };
    let layer = BearerAuthLayer::builder()
        .source(source)
        .refresh_before(REFRESH_BEFORE)
        .build()
        .expect("valid layer");

    let seen = Arc::new(Seen::default());
    // The body of each request is the instant it was sent.
    let inner = {
        let (issued, seen) = (Arc::clone(&issued), Arc::clone(&seen));
        service_fn(move |req: Request<Instant>| {
            seen.arrived.fetch_add(1, Ordering::SeqCst);
            let sent_at = *req.body();
            let values: Vec<_> = req.headers().get_all(AUTHORIZATION).iter().collect();
            if values.len() != 1 {
                seen.violation(format!("{} Authorization values", values.len()));
            } else if !values[0].is_sensitive() {
                seen.violation("Authorization not marked sensitive".to_owned());
            } else {
                let value = values[0].to_str().unwrap_or("<binary>").to_owned();
                match issued.expiry.lock().expect("lock").get(&value) {
                    None => seen.violation(format!("{value}: never issued")),
                    Some(expires_at) if *expires_at <= sent_at => seen.violation(format!(
                        "{value}: expired {:?} before the request was sent",
                        sent_at - *expires_at
                    )),
                    Some(_) => {}
                }
            }
            async move {
                // Let other tasks in between, so that requests overlap inside the layer.
                tokio::task::yield_now().await;
                Ok::<_, Infallible>(Response::new(()))
            }
        })
    };

    let start = Instant::now();
    let deadline = start + RUN_FOR;
    let mut tasks = Vec::with_capacity(TASKS);
    for _ in 0..TASKS {
        let layer = layer.clone();
        let inner = inner.clone();
        let seen = Arc::clone(&seen);
        tasks.push(tokio::spawn(async move {
            let mut svc = layer.layer(inner);
            for _ in 0..MAX_REQUESTS_PER_TASK {
                let sent_at = Instant::now();
                if sent_at >= deadline {
                    break;
                }
                let req = Request::get("https://api.example.com/items")
                    .body(sent_at)
                    .expect("request");
                seen.sent.fetch_add(1, Ordering::SeqCst);
                let outcome = match svc.ready().await {
                    Ok(svc) => svc.call(req).await,
                    Err(err) => Err(err),
                };
                match outcome {
                    Ok(_) => {
                        seen.completed.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(err) => seen.errors.lock().expect("lock").push(err.to_string()),
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("a request task panicked");
    }
    let elapsed = start.elapsed();

    let violations = seen.violations.lock().expect("lock");
    assert!(violations.is_empty(), "{violations:#?}");
    let errors = seen.errors.lock().expect("lock");
    assert!(
        errors.is_empty(),
        "{} errors, e.g. {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );

    let sent = seen.sent.load(Ordering::SeqCst);
    let arrived = seen.arrived.load(Ordering::SeqCst);
    let completed = seen.completed.load(Ordering::SeqCst);
    assert!(sent > 0);
    assert_eq!(
        sent, arrived,
        "every request sent reaches the inner service"
    );
    assert_eq!(sent, completed, "every request sent gets its response");

    // A refresh starts no earlier than `LIFETIME - REFRESH_BEFORE` after the source issued the
    // token being replaced (the window is at most REFRESH_BEFORE), and an expired token needs
    // even longer; with one fetch at a time and no failures, fetch n starts at least
    // (n - 1) periods after the first. Hence fetches <= elapsed / period + 1; one more of slack.
    let fetches = issued.fetches.load(Ordering::SeqCst);
    let period = LIFETIME - REFRESH_BEFORE;
    let bound = u64::try_from(elapsed.as_nanos() / period.as_nanos()).expect("small") + 2;
    assert!(
        fetches <= bound,
        "{fetches} fetches in {elapsed:?}: more than one per {period:?} refresh period (bound {bound})"
    );
    // The run lasted many lifetimes and requests were sent until its end, so tokens were
    // replaced: the source was asked more than once.
    assert!(fetches >= 2, "{fetches} fetches in {elapsed:?}");
}

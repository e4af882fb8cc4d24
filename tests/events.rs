//! The `tracing` events an operator sees, captured by a real subscriber: what happened, at
//! which level, and never a token.
//!
//! Its own test binary with a single test: tracing caches per-callsite interest process-wide,
//! and a thread-local subscriber can miss events while other tests' threads register the same
//! callsites.
#![cfg(feature = "tracing")]

use std::collections::HashSet;
use std::convert::Infallible;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use tower::{service_fn, Service, ServiceExt};
use tower_client_headers::{BearerAuthLayer, BearerToken, BoxError, Token};
use tower_layer::Layer;
use tracing_subscriber::fmt::MakeWriter;

const API: &str = "https://api.example.com/v1";
const SEC: Duration = Duration::from_secs(1);

/// The upstream: answers `401` to the tokens in `rejected`, and echoes `Authorization`.
#[derive(Clone, Default)]
struct Upstream {
    rejected: Arc<Mutex<HashSet<String>>>,
}

impl Upstream {
    fn reject(&self, auth: &str) {
        self.rejected.lock().expect("lock").insert(auth.to_owned());
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
        let rejected = Arc::clone(&self.rejected);
        service_fn(move |req: Request<()>| {
            let auth: Vec<String> = req
                .headers()
                .get_all("authorization")
                .iter()
                .map(|v| v.to_str().unwrap_or("<binary>").to_owned())
                .collect();
            let status = if auth
                .iter()
                .any(|a| rejected.lock().expect("lock").contains(a))
            {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::OK
            };
            async move {
                let mut response = Response::new(auth);
                *response.status_mut() = status;
                Ok::<_, Infallible>(response)
            }
        })
    }
}

async fn send<S>(svc: &S, uri: &str) -> Result<Response<Vec<String>>, BoxError>
where
    S: Service<Request<()>, Response = Response<Vec<String>>, Error = BoxError> + Clone,
{
    svc.clone()
        .oneshot(Request::get(uri).body(()).expect("request"))
        .await
}

async fn auth_of<S>(svc: &S, uri: &str) -> Vec<String>
where
    S: Service<Request<()>, Response = Response<Vec<String>>, Error = BoxError> + Clone,
{
    send(svc, uri).await.expect("response").into_body()
}

/// Let spawned tasks (a background refresh) run before the clock moves.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// Everything the subscriber writes, one event a line.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().expect("lock").clone();
        String::from_utf8(bytes)
            .expect("utf-8")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The one line with `message`, which must be at `level`.
    fn line(&self, level: &str, message: &str) -> String {
        let lines = self.lines();
        let found: Vec<_> = lines.iter().filter(|l| l.contains(message)).collect();
        assert!(!found.is_empty(), "no event {message:?} in {lines:#?}");
        let line = found[0].clone();
        assert!(line.contains(level), "{line}");
        assert!(line.contains("tower_client_headers"), "target: {line}");
        line
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Self;

    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

#[tokio::test(start_paused = true)]
async fn operators_see_fetches_failures_backoff_and_invalidations_but_no_token() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // Fetch 1 succeeds (100 s), the refresh (2) fails, 3 succeeds, 4 fails.
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&fetches);
    let layer = BearerAuthLayer::builder()
        .source(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if n % 2 == 0 {
                    return Err(BoxError::from(format!("503 from the token endpoint ({n})")));
                }
                Ok::<_, BoxError>(
                    Token::new(BearerToken::new(format!("s3cr3t-{n}"))?).expires_in(100 * SEC),
                )
            }
        })
        .refresh_before(60 * SEC)
        .build()
        .expect("valid");
    let up = Upstream::default();
    let svc = layer.clone().layer(up.service());

    assert_eq!(auth_of(&svc, API).await, ["Bearer s3cr3t-1"]);
    let line = captured.line("DEBUG", "token fetch started");
    assert!(line.contains("NoToken"), "{line}");
    let line = captured.line("DEBUG", "token fetched");
    assert!(line.contains("lifetime=100s"), "{line}");

    tokio::time::advance(50 * SEC).await; // the window: a background refresh, which fails
    assert_eq!(auth_of(&svc, API).await, ["Bearer s3cr3t-1"]);
    settle().await;
    let line = captured.line("WARN", "token refresh failed");
    assert!(
        line.contains("503 from the token endpoint (2)"),
        "the error chain: {line}"
    );
    assert!(line.contains("valid_for=50s"), "{line}");

    // A 401 drops the token.
    up.reject("Bearer s3cr3t-1");
    assert_eq!(send(&svc, API).await.expect("401").status(), 401);
    captured.line("INFO", "rejected by the server");

    // The next fetch (3) succeeds; invalidate() drops it; fetch 4 fails: backoff.
    assert_eq!(auth_of(&svc, API).await, ["Bearer s3cr3t-3"]);
    layer.invalidate();
    captured.line("INFO", "dropped by invalidate()");
    assert!(send(&svc, API).await.is_err());
    let line = captured.line("WARN", "token fetch failed flight=4");
    assert!(line.contains("503 from the token endpoint (4)"), "{line}");
    let line = captured.line("WARN", "backing off");
    assert!(line.contains("failures=1"), "{line}");

    // After the backoff, fetch 5 succeeds: recovery is announced.
    tokio::time::advance(SEC).await;
    assert_eq!(auth_of(&svc, API).await, ["Bearer s3cr3t-5"]);
    let line = captured.line("INFO", "token fetched again after failed fetches");
    assert!(line.contains("failures=1"), "{line}");

    // A plaintext refusal.
    assert!(send(&svc, "http://api.example.com/").await.is_err());
    let line = captured.line("WARN", "refused to send a credential in plain text");
    assert!(line.contains("api.example.com"), "{line}");

    let all = captured.lines().join("\n");
    assert!(!all.contains("s3cr3t"), "a token in the events:\n{all}");
}

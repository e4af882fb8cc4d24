//! What an operator sees from the token sources: when a token file goes bad (deleted, half
//! written, emptied) the last good token stays in use and a WARN event names the file and the
//! problem, never its content, retried every few seconds, not per request; when a token
//! endpoint rotates a refresh token, an INFO event (a WARN without an `on_rotation` callback).
//!
//! This binary holds one test: a subscriber installed with `set_default` can miss events
//! whose callsites another test's thread registers at the same moment.

#![cfg(feature = "tracing")]

use std::convert::Infallible;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::{Request, Response};
use tower::{service_fn, Service, ServiceExt};
use tower_client_headers::sources::TokenFile;
use tower_client_headers::{BearerAuthLayer, BoxError};

const SEC: Duration = Duration::from_secs(1);

/// A client whose inner service answers with the `Authorization` it got.
fn client(
    layer: BearerAuthLayer,
) -> impl Service<Request<()>, Response = Response<String>, Error = BoxError> + Clone {
    tower::ServiceBuilder::new()
        .layer(layer)
        .service(service_fn(|req: Request<()>| async move {
            let auth = req
                .headers()
                .get(AUTHORIZATION)
                .map_or("", |v| v.to_str().unwrap_or("<binary>"));
            Ok::<_, Infallible>(Response::new(auth.to_owned()))
        }))
}

async fn auth_of<S>(svc: &S) -> String
where
    S: Service<Request<()>, Response = Response<String>, Error = BoxError> + Clone,
{
    let req = Request::get("https://api.example.com/v1")
        .body(())
        .expect("request");
    svc.clone()
        .oneshot(req)
        .await
        .expect("a response")
        .into_body()
}

/// Let a background re-read finish: tokio does not advance its paused clock while the read
/// runs on the blocking pool, so this returns after it.
async fn reread() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Everything a subscriber writes, one event a line.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().expect("lock").clone();
        let text = String::from_utf8(bytes).expect("utf-8");
        text.lines().map(str::to_owned).collect()
    }

    fn warnings(&self, message: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.contains("WARN") && l.contains(message))
            .collect()
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

#[tokio::test(start_paused = true)]
async fn a_deleted_or_garbage_file_keeps_the_last_token_and_is_reported() {
    let captured = Captured::default();
    let _guard = captured.install();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("token");
    std::fs::write(&path, "t1\n").expect("write");
    let svc = client(BearerAuthLayer::from_source(TokenFile::new(&path)));
    assert_eq!(auth_of(&svc).await, "Bearer t1");

    // Deleted (as during a botched rotation).
    std::fs::remove_file(&path).expect("remove");
    tokio::time::advance(60 * SEC).await;
    assert_eq!(auth_of(&svc).await, "Bearer t1");
    reread().await;
    assert_eq!(auth_of(&svc).await, "Bearer t1", "the last good token");
    let warned = captured.warnings("token refresh failed");
    assert_eq!(warned.len(), 1, "{:#?}", captured.lines());
    assert!(
        warned[0].contains(&format!(
            "token file `{}`: could not read it",
            path.display()
        )),
        "names the file and the problem: {}",
        warned[0]
    );

    // Garbage, half-written: kept the last good token, reported, content never shown.
    std::fs::write(&path, "s3cr3t-half written\n").expect("write");
    tokio::time::advance(5 * SEC).await; // the retry delay after a failed refresh
    assert_eq!(auth_of(&svc).await, "Bearer t1");
    reread().await;
    assert_eq!(auth_of(&svc).await, "Bearer t1", "the last good token");
    let warned = captured.warnings("token refresh failed");
    assert_eq!(warned.len(), 2, "{:#?}", captured.lines());
    assert!(
        warned[1].contains("does not hold a bearer token: it contains whitespace"),
        "{}",
        warned[1]
    );

    // Empty.
    std::fs::write(&path, "\n").expect("write");
    tokio::time::advance(5 * SEC).await;
    auth_of(&svc).await;
    reread().await;
    assert_eq!(auth_of(&svc).await, "Bearer t1");
    assert!(captured.warnings("token refresh failed")[2].contains("it is empty"));

    // Retried every 5 s, not on every request.
    let reports = captured.warnings("token refresh failed").len();
    for _ in 0..40 {
        assert_eq!(auth_of(&svc).await, "Bearer t1");
        reread().await;
        tokio::time::advance(Duration::from_millis(100)).await;
    }
    let more = captured.warnings("token refresh failed").len() - reports;
    assert!(more <= 1, "{more} re-reads in 4 s");

    // Fixed: picked up at the next retry.
    std::fs::write(&path, "t2").expect("write");
    tokio::time::advance(5 * SEC).await;
    auth_of(&svc).await;
    reread().await;
    assert_eq!(auth_of(&svc).await, "Bearer t2");

    #[cfg(feature = "oauth2")]
    rotation(&captured).await;

    let all = captured.lines().join("\n");
    assert!(
        !all.contains("s3cr3t"),
        "file content or a refresh token in the events:\n{all}"
    );
}

/// A refresh-token grant whose endpoint rotates the refresh token on every exchange.
#[cfg(feature = "oauth2")]
async fn rotation(captured: &Captured) {
    use tower_client_headers::sources::{RefreshTokenGrant, TokenEndpoint};
    use tower_client_headers::TokenSource;

    let rotating = service_fn(|req: Request<bytes::Bytes>| async move {
        let form = String::from_utf8_lossy(req.body()).into_owned();
        let n: u32 = form
            .split('&')
            .find_map(|pair| pair.strip_prefix("refresh_token=s3cr3t-rt-"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let body = format!(
            r#"{{"access_token":"at-{n}","token_type":"Bearer","refresh_token":"s3cr3t-rt-{}"}}"#,
            n + 1
        );
        Ok::<_, Infallible>(Response::new(body))
    });
    let endpoint = || {
        TokenEndpoint::builder("https://idp.example.com/token")
            .client_id("app")
            .http_service(rotating)
            .build()
            .expect("valid")
    };
    let unsaved = RefreshTokenGrant::new(endpoint(), "s3cr3t-rt-1");
    unsaved.fetch().await.expect("a token");
    let warned = captured.warnings("refresh token rotated");
    assert_eq!(warned.len(), 1, "{:#?}", captured.lines());
    assert!(
        warned[0].contains("no on_rotation callback"),
        "{}",
        warned[0]
    );

    let saved = RefreshTokenGrant::new(endpoint(), "s3cr3t-rt-1").on_rotation(|_| {});
    saved.fetch().await.expect("a token");
    saved.fetch().await.expect("a token");
    let rotated: Vec<_> = captured
        .lines()
        .into_iter()
        .filter(|l| l.contains("INFO") && l.contains("refresh token rotated"))
        .collect();
    assert_eq!(rotated.len(), 2, "{:#?}", captured.lines());
}

//! Refreshing tokens end to end, through an outage: a local OAuth2-style token endpoint
//! issuing 2-second tokens, an API that answers 401 to unknown or expired tokens, and a client
//! whose `BearerAuthLayer::from_source` fetches from the endpoint.
//!
//! 1. Normal operation: the first request waits for the first fetch; after that the token is
//!    refreshed in the background a second before expiry and no request waits.
//! 2. The token endpoint answers 503 for 3 seconds: the background refresh fails (a WARN
//!    event), the token expires, failed fetches back off (1 s, then 2 s...), and requests
//!    fail at once with the last failure instead of hammering the endpoint.
//! 3. The endpoint is back: the next attempt succeeds and requests go through again.
//!
//! The `tracing` events (target `tower_client_headers`, INFO and above) are printed as an
//! operator would see them, between the requests' own lines.
//!
//! Run with `cargo run --example token_refresh` (about 9 seconds).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};
use tower_client_headers::{BearerAuthLayer, BearerToken, BoxError, Error, Token};

const LIFETIME: Duration = Duration::from_secs(2);
/// The API accepts a token this long past its expiry, as token validators allow for clock
/// skew (a client learns a token's lifetime a moment after the server set it).
const LEEWAY: Duration = Duration::from_millis(500);

/// Tokens the endpoint issued, with their expiry.
type Issued = Arc<Mutex<HashMap<String, Instant>>>;

#[derive(Clone, Default)]
struct Endpoint {
    issued: Issued,
    /// While set, the token endpoint answers 503.
    down: Arc<AtomicBool>,
}

#[derive(serde::Deserialize)]
struct TokenRequest {
    grant_type: String,
    client_id: String,
    client_secret: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    expires_in: u64,
}

async fn token_endpoint(
    State(endpoint): State<Endpoint>,
    Form(req): Form<TokenRequest>,
) -> Result<Json<TokenResponse>, StatusCode> {
    if endpoint.down.load(Ordering::SeqCst) {
        return Err(StatusCode::SERVICE_UNAVAILABLE);
    }
    let issued = endpoint.issued;
    if req.grant_type != "client_credentials"
        || req.client_id != "demo"
        || req.client_secret != "s3cret"
    {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let mut issued = issued
        .lock()
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let token = format!("tok-{}", issued.len() + 1);
    issued.insert(token.clone(), Instant::now() + LIFETIME);
    Ok(Json(TokenResponse {
        access_token: token,
        token_type: "Bearer".into(),
        expires_in: LIFETIME.as_secs(),
    }))
}

async fn api(State(Endpoint { issued, .. }): State<Endpoint>, headers: HeaderMap) -> StatusCode {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let issued = issued.lock().map(|i| token.and_then(|t| i.get(t).copied()));
    match issued {
        Ok(Some(expires)) if Instant::now() < expires + LEEWAY => StatusCode::OK,
        _ => StatusCode::UNAUTHORIZED,
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // What an operator sees: this crate's events at INFO and above.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .without_time()
        .init();

    let endpoint = Endpoint::default();
    let app = Router::new()
        .route("/oauth/token", post(token_endpoint))
        .route("/data", get(api))
        .with_state(endpoint.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let start = Instant::now();
    let fetches = Arc::new(AtomicUsize::new(0));
    let token_client = reqwest::Client::builder().no_proxy().build()?;
    let token_url = format!("http://{addr}/oauth/token");
    let counter = Arc::clone(&fetches);
    let source = move || {
        let (client, url, counter) = (
            token_client.clone(),
            token_url.clone(),
            Arc::clone(&counter),
        );
        async move {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let response: TokenResponse = client
                .post(&url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", "demo"),
                    ("client_secret", "s3cret"),
                ])
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            println!(
                "  t={:>4} ms  fetch #{n}: got {} (expires in {} s)",
                start.elapsed().as_millis(),
                response.access_token,
                response.expires_in
            );
            let token = BearerToken::new(response.access_token)?;
            Ok::<_, BoxError>(
                Token::new(token).expires_in(Duration::from_secs(response.expires_in)),
            )
        }
    };
    let auth = BearerAuthLayer::builder()
        .source(source)
        .refresh_before(Duration::from_secs(1))
        .fetch_timeout(Duration::from_secs(5))
        .build()?;
    let client = ServiceBuilder::new()
        .layer(auth)
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());

    println!(
        "Token endpoint and API at http://{addr}; tokens live {} s, refreshed 1 s early.\n\
         The token endpoint will be down (503) from t=2.5 s to t=5.5 s.\n",
        LIFETIME.as_secs()
    );
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    let (mut ok, mut failed_fast, mut rejected) = (0, 0, 0);
    let mut recovered_at = None;
    for i in 1..=36 {
        ticker.tick().await;
        let elapsed = start.elapsed();
        if elapsed >= Duration::from_millis(2500) && elapsed < Duration::from_millis(5500) {
            if !endpoint.down.swap(true, Ordering::SeqCst) {
                println!(
                    "  t={:>4} ms  --- token endpoint goes down ---",
                    elapsed.as_millis()
                );
            }
        } else if endpoint.down.swap(false, Ordering::SeqCst) {
            println!(
                "  t={:>4} ms  --- token endpoint is back ---",
                elapsed.as_millis()
            );
        }
        let sent = Instant::now();
        let request = Request::get(format!("http://{addr}/data")).body(Empty::new())?;
        let outcome = match client.clone().oneshot(request).await {
            Ok(response) if response.status() == StatusCode::OK => {
                ok += 1;
                if failed_fast > 0 && recovered_at.is_none() {
                    recovered_at = Some(start.elapsed());
                }
                "200 OK".to_owned()
            }
            Ok(response) => {
                rejected += 1;
                response.status().to_string()
            }
            Err(err) => {
                failed_fast += 1;
                // Our error (it says what happened), then its sources (why).
                let mut line = match err.downcast_ref::<Error>() {
                    Some(ours) => format!("failed: {ours}"),
                    None => format!("failed: {err}"),
                };
                let mut source = err.source();
                while let Some(cause) = source {
                    line.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                line
            }
        };
        println!(
            "  t={:>4} ms  request {i:>2}: {outcome} (waited {} ms)",
            start.elapsed().as_millis(),
            sent.elapsed().as_millis()
        );
    }
    let calls = fetches.load(Ordering::SeqCst);
    println!(
        "\n36 requests over ~9 s: {ok} OK, {failed_fast} failed during the outage, {rejected} \
         rejected; {calls} calls to the token endpoint in all (no tight loop: inside the \
         backoff, requests failed at once without calling it)."
    );
    if let Some(at) = recovered_at {
        println!("Requests succeeded again at t={} ms.", at.as_millis());
    }
    if rejected > 0 {
        return Err("a request carried an expired token".into());
    }
    if recovered_at.is_none() {
        return Err("the client did not recover after the outage".into());
    }
    Ok(())
}

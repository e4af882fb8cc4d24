//! OAuth2 client credentials end to end: a local token endpoint (RFC 6749 section 4.4,
//! `client_secret_basic`) issuing 1-second tokens, an API that accepts only unexpired ones,
//! and a client whose `BearerAuthLayer` gets its tokens from
//! `tower_client_headers::sources::ClientCredentials` over the same hyper-util client type it
//! uses for the API.
//!
//! The client sends a request every 150 ms for about 4 seconds, across several token
//! lifetimes: the first request waits for the first token; after that each token is refreshed
//! in the background half a second before it expires, so no request waits and none is
//! rejected. Then the endpoint is given a wrong client secret, to show the RFC 6749 error
//! response the caller gets.
//!
//! Run with `cargo run --example client_credentials --features oauth2`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use bytes::Bytes;
use http::Request;
use http_body_util::{Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};
use tower_client_headers::sources::{ClientCredentials, OAuthError, TokenEndpoint};
use tower_client_headers::{BearerAuthLayer, BoxError};

const LIFETIME: Duration = Duration::from_secs(1);
const CLIENT_ID: &str = "orders-service";
const CLIENT_SECRET: &str = "s3cret";

#[derive(Clone)]
struct Idp {
    /// Issued tokens and their expiry.
    issued: Arc<Mutex<HashMap<String, Instant>>>,
    count: Arc<AtomicUsize>,
    start: Instant,
}

/// The token endpoint: `client_secret_basic`, `grant_type=client_credentials`.
async fn token(State(idp): State<Idp>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let client = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok());
    let error = |status: StatusCode, code: &str, description: &str| {
        let body = serde_json::json!({"error": code, "error_description": description});
        (status, body.to_string())
    };
    if client.as_deref() != Some(&format!("{CLIENT_ID}:{CLIENT_SECRET}")) {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Only client_credentials",
        );
    }
    let n = idp.count.fetch_add(1, Ordering::SeqCst) + 1;
    let access_token = format!("at-{n}");
    if let Ok(mut issued) = idp.issued.lock() {
        issued.insert(access_token.clone(), Instant::now() + LIFETIME);
    }
    println!(
        "  t={:>4} ms  token endpoint: issued {access_token} (expires in {} s, scope {:?}, \
         audience {:?})",
        idp.start.elapsed().as_millis(),
        LIFETIME.as_secs(),
        form.get("scope").map_or("", String::as_str),
        form.get("audience").map_or("", String::as_str),
    );
    let body = serde_json::json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": LIFETIME.as_secs(),
    });
    (StatusCode::OK, body.to_string())
}

/// The API: 200 for an unexpired token it issued, 401 otherwise.
async fn orders(State(idp): State<Idp>, headers: HeaderMap) -> StatusCode {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let expires = idp
        .issued
        .lock()
        .ok()
        .and_then(|issued| token.and_then(|t| issued.get(t).copied()));
    match expires {
        Some(at) if Instant::now() < at => StatusCode::OK,
        _ => StatusCode::UNAUTHORIZED,
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let start = Instant::now();
    let idp = Idp {
        issued: Arc::default(),
        count: Arc::default(),
        start,
    };
    let app = Router::new()
        .route("/oauth2/token", post(token))
        .route("/orders", get(orders))
        .with_state(idp.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The token source: the token endpoint over a hyper-util client.
    let endpoint = TokenEndpoint::builder(&format!("http://{addr}/oauth2/token"))
        .client_id(CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .http_service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>())
        .build()?;
    let source = ClientCredentials::new(endpoint)
        .scope("orders:read")
        .param("audience", format!("http://{addr}"));
    let auth = BearerAuthLayer::builder()
        .source(source)
        .origin(&format!("http://{addr}"))
        .refresh_before(Duration::from_millis(500))
        .build()?;
    let api = ServiceBuilder::new()
        .layer(auth)
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());

    println!(
        "Token endpoint and API at http://{addr}; tokens live {} s and are refreshed 0.5 s \
         before they expire.\n",
        LIFETIME.as_secs()
    );
    let mut ticker = tokio::time::interval(Duration::from_millis(150));
    let (mut ok, mut failed) = (0, 0);
    let mut longest_wait = Duration::ZERO;
    for i in 1..=27 {
        ticker.tick().await;
        let sent = Instant::now();
        let request = Request::get(format!("http://{addr}/orders")).body(Empty::new())?;
        let outcome = match api.clone().oneshot(request).await {
            Ok(response) if response.status() == StatusCode::OK => {
                ok += 1;
                "200 OK".to_owned()
            }
            Ok(response) => {
                failed += 1;
                response.status().to_string()
            }
            Err(err) => {
                failed += 1;
                format!("failed: {err}")
            }
        };
        let waited = sent.elapsed();
        if i > 1 {
            longest_wait = longest_wait.max(waited);
        }
        println!(
            "  t={:>4} ms  request {i:>2}: {outcome} (waited {} ms)",
            start.elapsed().as_millis(),
            waited.as_millis()
        );
    }
    let fetches = idp.count.load(Ordering::SeqCst);
    println!(
        "\n27 requests over ~4 s: {ok} OK, {failed} failed; {fetches} tokens fetched, each \
         refreshed in the background (the longest wait after the first request: {} ms).",
        longest_wait.as_millis()
    );

    // A wrong secret: the endpoint's RFC 6749 error response, as the caller sees it.
    let wrong = TokenEndpoint::builder(&format!("http://{addr}/oauth2/token"))
        .client_id(CLIENT_ID)
        .client_secret("not-the-secret")
        .http_service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>())
        .build()?;
    let layer = BearerAuthLayer::from_source(ClientCredentials::new(wrong));
    if let Err(err) = layer.refresh().await {
        if let Some(oauth) = OAuthError::find(&err) {
            println!(
                "\nWith a wrong secret: `{err}`, caused by an OAuthError: code {}, description \
                 {:?}, HTTP {}",
                oauth.code(),
                oauth.description().unwrap_or(""),
                oauth.status()
            );
        }
    }

    if failed > 0 {
        return Err(format!("{failed} request(s) failed").into());
    }
    if fetches < 3 {
        return Err("expected several token lifetimes".into());
    }
    Ok(())
}

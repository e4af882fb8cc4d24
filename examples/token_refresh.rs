//! Refreshing tokens end to end: a local OAuth2-style token endpoint issuing 2-second tokens,
//! an API that answers 401 to unknown or expired tokens, and a client whose
//! `BearerAuthLayer::from_source` fetches from the endpoint. Over several token lifetimes the
//! client never sends an expired token: it refreshes in the background a second before
//! expiry, and no request waits for it.
//!
//! Run with `cargo run --example token_refresh` (about 5 seconds).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
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
use tower_client_headers::{BearerAuthLayer, BearerToken, BoxError, Token};

const LIFETIME: Duration = Duration::from_secs(2);

/// Tokens the endpoint issued, with their expiry.
type Issued = Arc<Mutex<HashMap<String, Instant>>>;

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
    State(issued): State<Issued>,
    Form(req): Form<TokenRequest>,
) -> Result<Json<TokenResponse>, StatusCode> {
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

async fn api(State(issued): State<Issued>, headers: HeaderMap) -> StatusCode {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let issued = issued.lock().map(|i| token.and_then(|t| i.get(t).copied()));
    match issued {
        Ok(Some(expires)) if Instant::now() < expires => StatusCode::OK,
        _ => StatusCode::UNAUTHORIZED,
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let issued = Issued::default();
    let app = Router::new()
        .route("/oauth/token", post(token_endpoint))
        .route("/data", get(api))
        .with_state(issued);
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
        "Token endpoint and API at http://{addr}; tokens live {} s, refreshed 1 s early.\n",
        LIFETIME.as_secs()
    );
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    let mut unauthorized = 0;
    for i in 1..=20 {
        ticker.tick().await;
        let sent = Instant::now();
        let response = client
            .clone()
            .oneshot(Request::get(format!("http://{addr}/data")).body(Empty::new())?)
            .await?;
        if response.status() != StatusCode::OK {
            unauthorized += 1;
        }
        println!(
            "  t={:>4} ms  request {i:>2}: {} (waited {} ms)",
            start.elapsed().as_millis(),
            response.status(),
            sent.elapsed().as_millis()
        );
    }
    let fetched = fetches.load(Ordering::SeqCst);
    println!("\n20 requests over ~5 s: {fetched} token fetches, {unauthorized} rejected.");
    if unauthorized > 0 {
        return Err("a request carried an expired token".into());
    }
    Ok(())
}

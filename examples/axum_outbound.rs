//! An axum service calling an upstream API through one shared client stack held in `State`.
//! When the caller sent a bearer token, it is forwarded for that call with
//! `HeaderOverrides::bearer_token`; with no `Authorization` at all the service's own token is
//! used; and a caller whose `Authorization` is not one valid bearer token is answered `401`
//! (treating it as anonymous would spend the service's credentials on its behalf).
//!
//! Run with `cargo run --example axum_outbound`.

mod common;

use axum::extract::State;
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use http::header::USER_AGENT;
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};
use tower_client_headers::{
    BearerAuth, BearerAuthLayer, BearerToken, BoxError, DefaultHeaders, DefaultHeadersLayer,
    HeaderOverrides,
};

/// The outbound client: cloned per call, sharing one token cache and one connection pool.
type Upstream = DefaultHeaders<BearerAuth<Client<HttpConnector, Empty<Bytes>>>>;

#[derive(Clone)]
struct AppState {
    upstream: Upstream,
    upstream_url: String,
}

async fn handler(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<common::Received>, Response> {
    let bad_gateway = |e: BoxError| (StatusCode::BAD_GATEWAY, e.to_string()).into_response();
    let mut overrides = HeaderOverrides::new();
    match BearerToken::from_request_headers(&headers) {
        // The caller's token, validated: forwarded for this call only.
        Ok(Some(token)) => overrides = overrides.bearer_token(token),
        // No credential at all: the service's own token.
        Ok(None) => {}
        // A credential we cannot use (`Basic ..`, a malformed token, several values): refuse.
        // RFC 6750 section 3: say which scheme we take, and that the token was the problem.
        Err(e) => {
            let challenge = [(WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#)];
            return Err((StatusCode::UNAUTHORIZED, challenge, e.to_string()).into_response());
        }
    }
    let request = Request::get(&state.upstream_url)
        .extension(overrides)
        .body(Empty::new())
        .map_err(|e| bad_gateway(e.into()))?;
    let response = state.upstream.oneshot(request).await.map_err(bad_gateway)?;
    common::received(response)
        .await
        .map(Json)
        .map_err(bad_gateway)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let upstream_addr = common::echo_server().await;
    let upstream_origin = format!("http://{upstream_addr}");

    let upstream = ServiceBuilder::new()
        .layer(
            DefaultHeadersLayer::builder()
                .header(USER_AGENT, "orders-service/1.0")
                .build()?,
        )
        .layer(
            BearerAuthLayer::builder()
                .token("orders-service-token")
                .origin(&upstream_origin)
                .build()?,
        )
        .service(Client::builder(TokioExecutor::new()).build_http());
    let app = Router::new()
        .route("/orders", get(handler))
        .with_state(AppState {
            upstream,
            upstream_url: format!("{upstream_origin}/inventory"),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app_addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Two callers of our axum service: one anonymous, one with its own token.
    let caller = reqwest::Client::builder().no_proxy().build()?;
    let url = format!("http://{app_addr}/orders");
    let mut rows = Vec::new();
    for (who, authorization) in [
        ("anonymous caller", None),
        ("caller with a token", Some("Bearer alice-token")),
        ("caller with Basic credentials", Some("Basic dXNlcjpwdw==")),
        ("caller with a malformed token", Some("Bearer not a token")),
    ] {
        let mut request = caller.get(&url);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            rows.push(vec![
                who.to_owned(),
                "(not called: 401)".to_owned(),
                "-".to_owned(),
            ]);
            continue;
        }
        let received: common::Received = response.error_for_status()?.json().await?;
        rows.push(vec![
            who.to_owned(),
            common::values(&received, "user-agent"),
            common::values(&received, "authorization"),
        ]);
    }
    println!("axum service at {app_addr} calling upstream {upstream_origin}\n");
    println!("What the upstream received:\n");
    common::print_table(&["incoming call", "user-agent", "authorization"], &rows);
    Ok(())
}

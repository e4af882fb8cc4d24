//! End to end for calling out from axum: an axum service holds one client stack in `State`
//! and calls a real upstream server; the caller's bearer token is forwarded with
//! `HeaderOverrides::bearer_token`, else the service's own (refreshing) token is sent.

mod common;

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use common::{hyper_client, Body, Pairs, Server};
use http::header::{AUTHORIZATION, USER_AGENT};
use http::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use tower::ServiceBuilder;
use tower_client_headers::{
    BearerAuth, BearerAuthLayer, BearerToken, DefaultHeaders, DefaultHeadersLayer, HeaderOverrides,
};

type Upstream = DefaultHeaders<BearerAuth<Client<HttpConnector, Body>>>;

#[derive(Clone)]
struct App {
    upstream: Upstream,
    url: String,
}

/// Calls the upstream and answers with what the upstream received. A caller that sent
/// `Authorization` but not one valid bearer token is answered `401`, never served with the
/// service's own token.
async fn proxy(State(app): State<App>, headers: HeaderMap) -> Result<Json<Pairs>, StatusCode> {
    let mut overrides = HeaderOverrides::new();
    match BearerToken::from_request_headers(&headers) {
        Ok(Some(token)) => overrides = overrides.bearer_token(token),
        Ok(None) => {}
        Err(_) => return Err(StatusCode::UNAUTHORIZED),
    }
    let request = Request::get(&app.url)
        .extension(overrides)
        .body(Body::new())
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let (status, received) = common::send(&app.upstream, request).await;
    if status != StatusCode::OK {
        return Err(StatusCode::BAD_GATEWAY);
    }
    Ok(Json(received.0))
}

#[tokio::test]
async fn an_axum_handler_forwards_the_caller_token_or_uses_its_own() {
    let upstream = Server::start().await;
    let (fetches, source) = common::counting_source();
    let stack = ServiceBuilder::new()
        .layer(
            DefaultHeadersLayer::builder()
                .header(USER_AGENT, "orders/1.0")
                .build()
                .expect("valid"),
        )
        .layer(
            BearerAuthLayer::builder()
                .source(source)
                .origin(&upstream.origin())
                .build()
                .expect("valid"),
        )
        .service(hyper_client());
    let app = Router::new().route("/orders", get(proxy)).with_state(App {
        upstream: stack,
        url: upstream.url("/inventory"),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let caller = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let url = format!("http://{addr}/orders");
    let call = |token: Option<&'static str>| {
        let mut request = caller.get(&url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.expect("response");
            assert_eq!(response.status(), reqwest::StatusCode::OK);
            common::Echoed(response.json::<Pairs>().await.expect("json"))
        }
    };

    // Concurrent anonymous calls share the service's one token fetch.
    let (a, b) = tokio::join!(call(None), call(None));
    for sent in [&a, &b] {
        assert_eq!(sent.all("authorization"), ["Bearer t1"]);
        assert_eq!(sent.all("user-agent"), ["orders/1.0"]);
    }
    // A caller with its own token: forwarded, and the service's source is not asked.
    let sent = call(Some("alice-token")).await;
    assert_eq!(sent.all("authorization"), ["Bearer alice-token"]);
    assert_eq!(sent.all("user-agent"), ["orders/1.0"]);
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // The upstream revokes the service token: one 401 (502 to our caller), then a new token.
    upstream.revoke("Bearer t1");
    let response = caller.get(&url).send().await.expect("response");
    assert_eq!(response.status(), reqwest::StatusCode::BAD_GATEWAY);
    let sent = call(None).await;
    assert_eq!(sent.all("authorization"), ["Bearer t2"]);
    assert_eq!(fetches.load(Ordering::SeqCst), 2);

    // A present but invalid credential is not "anonymous": 401, and the upstream never sees
    // the service's token for it. Before, these callers got 200 with the service's token.
    let hits = upstream.hits();
    for (value, several) in [
        ("Basic dXNlcjpwdw==", false),
        ("Bearer not a token", false),
        ("Bearer ", false),
        ("Bearer", false),
        ("Bearer alice-token", true),
    ] {
        let mut request = caller.get(&url).header(AUTHORIZATION, value);
        if several {
            request = request.header(AUTHORIZATION, "Bearer mallory-token");
        }
        let response = request.send().await.expect("response");
        assert_eq!(
            response.status(),
            reqwest::StatusCode::UNAUTHORIZED,
            "{value:?}"
        );
    }
    assert_eq!(upstream.hits(), hits, "the upstream was not called");
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

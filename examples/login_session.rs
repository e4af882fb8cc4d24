//! A logged-in user's session: log in with Basic credentials against a local server, set the
//! token it answers for the whole session, call the API, log out, and see the header gone.
//!
//! What aiohttp does with `session.headers["Authorization"] = ...` and `del`, with the
//! protections of a credential: the token goes only to the API's origin, never in plain text
//! to another host, and never into `Debug` output or errors.
//!
//! Run with `cargo run --example login_session` (no network needed).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http::header::{AUTHORIZATION, USER_AGENT};
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};
use tower_client_headers::{
    BearerAuthLayer, BearerToken, BoxError, Credential, DefaultHeadersLayer, HeaderOverrides,
};

/// The API: `POST /login` takes Basic credentials and answers a session token, `GET /me`
/// answers who the token belongs to (and which `Authorization` it saw), `POST /logout` ends
/// the session.
#[derive(Clone, Default)]
struct Api {
    sessions: Arc<Mutex<HashSet<String>>>,
}

async fn login(State(api): State<Api>, headers: HeaderMap) -> Result<String, StatusCode> {
    // "alice:wonderland", base64.
    if headers.get(AUTHORIZATION).map(|v| v.as_bytes()) != Some(b"Basic YWxpY2U6d29uZGVybGFuZA==") {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let token = format!("session-{}", api.sessions.lock().expect("lock").len() + 1);
    api.sessions.lock().expect("lock").insert(token.clone());
    Ok(token)
}

async fn me(State(api): State<Api>, headers: HeaderMap) -> (StatusCode, Json<serde_json::Value>) {
    let sent = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let valid = sent
        .as_deref()
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| api.sessions.lock().expect("lock").contains(t));
    let status = if valid {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    };
    let user = valid.then_some("alice");
    (
        status,
        Json(serde_json::json!({
            "user": user,
            "authorization": sent,
            "accept-language": headers.get("accept-language").and_then(|v| v.to_str().ok()),
        })),
    )
}

async fn logout(State(api): State<Api>, headers: HeaderMap) -> StatusCode {
    if let Some(token) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        api.sessions.lock().expect("lock").remove(token);
    }
    StatusCode::NO_CONTENT
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = format!("http://{}", listener.local_addr()?);
    let app = Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .with_state(Api::default());
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The session: a User-Agent, and an auth layer for the API's origin that starts logged
    // out. Every clone of `auth` (and every client built with it) shares its credential.
    let session = DefaultHeadersLayer::builder()
        .header(USER_AGENT, "login-session-example/1.0")
        .build()?;
    // A handle to change the session's headers while clients use it.
    let headers = session.handle();
    let auth = BearerAuthLayer::builder()
        .logged_out()
        .origin(&api)
        .build()?;
    let transport = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let client = ServiceBuilder::new()
        .layer(session)
        .layer(auth.clone())
        .service(transport);

    // 1. Log in: this one request carries the user's Basic credentials.
    let password = Credential::basic("alice", "wonderland")?;
    let request = Request::post(format!("{api}/login"))
        .extension(HeaderOverrides::new().credential(password))
        .body(Empty::new())?;
    let response = client.clone().oneshot(request).await?;
    assert_eq!(response.status(), 200, "login failed");
    let token = String::from_utf8(response.into_body().collect().await?.to_bytes().to_vec())?;
    println!("logged in; the server issued a session token");

    // 2. Set it for the session: every later request to the API carries it.
    auth.set_credential(BearerToken::new(token)?)?;
    // A header that is not a secret (the user's language) goes through the session handle.
    headers.update(|b| b.header("accept-language", "en-GB"))?;
    println!("layer after login: {auth:?}");

    // 3. Call the API.
    let me = call(&client, &format!("{api}/me")).await?;
    println!(
        "GET /me        -> {} user={} authorization={} accept-language={}",
        me.0, me.1["user"], me.1["authorization"], me.1["accept-language"]
    );
    assert_eq!(me.0, 200);
    assert_eq!(me.1["accept-language"], "en-GB");

    // 4. Log out: tell the server, then drop the credential from the session.
    let request = Request::post(format!("{api}/logout")).body(Empty::new())?;
    client.clone().oneshot(request).await?;
    auth.invalidate();
    headers.update(|b| b.remove("accept-language"))?;
    println!("logged out; layer now: {auth:?}");

    // 5. The header is gone.
    let me = call(&client, &format!("{api}/me")).await?;
    println!(
        "GET /me        -> {} user={} authorization={} accept-language={}",
        me.0, me.1["user"], me.1["authorization"], me.1["accept-language"]
    );
    assert_eq!(me.0, 401);
    assert!(me.1["authorization"].is_null(), "the token was still sent");
    assert!(
        me.1["accept-language"].is_null(),
        "the session header was still sent"
    );
    println!("no Authorization was sent after logout");
    Ok(())
}

async fn call<S>(client: &S, url: &str) -> Result<(u16, serde_json::Value), BoxError>
where
    S: tower::Service<
            Request<Empty<Bytes>>,
            Response = http::Response<hyper::body::Incoming>,
            Error = BoxError,
        > + Clone,
{
    let response = client
        .clone()
        .oneshot(Request::get(url).body(Empty::new())?)
        .await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, serde_json::from_slice(&body)?))
}

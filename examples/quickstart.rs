//! The main job: a hyper-util client with session headers and a bearer token, talking to a
//! local echo server. Shows the session headers, a request overriding one, `HeaderOverrides`
//! removing and setting headers, origin scoping and the plain-http refusal.
//!
//! Run with `cargo run --example quickstart` (no network needed).

mod common;

use bytes::Bytes;
use http::header::{ACCEPT, USER_AGENT};
use http::{HeaderName, HeaderValue, Request};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};
use tower_client_headers::{
    BearerAuthLayer, BearerToken, BoxError, DefaultHeadersLayer, Error, HeaderOverrides,
};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let addr = common::echo_server().await;
    let api = format!("http://{addr}");

    // Session headers, set once. Accept has two values: both are sent.
    let session = DefaultHeadersLayer::builder()
        .header(USER_AGENT, "quickstart/1.0")
        .header(ACCEPT, "application/json")
        .header(ACCEPT, "text/plain")
        .sensitive_header("x-api-key", "k-123")
        .build()?;
    // A bearer token for this one origin only.
    let auth = BearerAuthLayer::builder()
        .token("demo-token")
        .origin(&api)
        .build()?;

    let transport = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let client = ServiceBuilder::new()
        .layer(session)
        .layer(auth)
        .service(transport);

    let x_api_key = HeaderName::from_static("x-api-key");
    let cases: Vec<(&str, Request<Empty<Bytes>>)> = vec![
        (
            "session defaults",
            Request::get(format!("{api}/items")).body(Empty::new())?,
        ),
        (
            "request sends its own Accept",
            Request::get(format!("{api}/report"))
                .header(ACCEPT, "text/csv")
                .body(Empty::new())?,
        ),
        (
            "overrides: remove UA, set key",
            Request::get(format!("{api}/anon"))
                .extension(
                    HeaderOverrides::new()
                        .remove(USER_AGENT)
                        .set(x_api_key, HeaderValue::from_static("k-other")),
                )
                .body(Empty::new())?,
        ),
        (
            "overrides: caller's token",
            Request::get(format!("{api}/me"))
                .extension(HeaderOverrides::new().bearer_token(BearerToken::new("caller-token")?))
                .body(Empty::new())?,
        ),
        (
            "overrides: remove_all",
            Request::get(format!("{api}/public"))
                .extension(HeaderOverrides::new().remove_all())
                .body(Empty::new())?,
        ),
        (
            "another origin (localhost)",
            Request::get(format!("http://localhost:{}/cdn", addr.port())).body(Empty::new())?,
        ),
    ];

    println!("tower-client-headers quickstart: a hyper-util client with DefaultHeadersLayer and");
    println!("BearerAuthLayer (token scoped to {api}), against a local echo server.\n");
    println!("What the server received:\n");
    let mut rows = Vec::new();
    for (what, request) in cases {
        let received = common::received(client.clone().oneshot(request).await?).await?;
        rows.push(vec![
            what.to_owned(),
            common::values(&received, "user-agent"),
            common::values(&received, "accept"),
            common::values(&received, "x-api-key"),
            common::values(&received, "authorization"),
        ]);
    }
    common::print_table(
        &[
            "request",
            "user-agent",
            "accept",
            "x-api-key",
            "authorization",
        ],
        &rows,
    );

    // Tokens never travel in plain text to a host that is not loopback: refused, nothing sent.
    let refused_client = ServiceBuilder::new()
        .layer(BearerAuthLayer::new("demo-token")?)
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());
    let err = refused_client
        .oneshot(Request::get("http://api.example.com/").body(Empty::new())?)
        .await
        .expect_err("plain http to a remote host is refused");
    let ours = err.downcast_ref::<Error>().ok_or("expected our error")?;
    println!("\nplain http to api.example.com: {:?}: {ours}", ours.kind());
    Ok(())
}

//! A hyper-util `legacy::Client` wrapped with `ServiceBuilder`: session headers, a bearer
//! token scoped to the API's origin, and a tower concurrency limit, in one stack.
//!
//! Run with `cargo run --example hyper_client`.

mod common;

use bytes::Bytes;
use http::header::{ACCEPT, USER_AGENT};
use http::Request;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};
use tower_client_headers::{BearerAuthLayer, BoxError, DefaultHeadersLayer, HeaderOverrides};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let addr = common::echo_server().await;
    let api = format!("http://{addr}");

    let client = ServiceBuilder::new()
        // Outermost: decided once per call.
        .layer(
            DefaultHeadersLayer::builder()
                .header(USER_AGENT, "hyper-example/1.0")
                .header(ACCEPT, "application/json")
                .append_header("x-tags", "from-session")
                .build()?,
        )
        .layer(
            BearerAuthLayer::builder()
                .token("svc-token")
                .origin(&api)
                .build()?,
        )
        .concurrency_limit(16)
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());

    let requests = [
        (
            "defaults",
            Request::get(format!("{api}/a")).body(Empty::new())?,
        ),
        (
            "own x-tags + no token",
            Request::get(format!("{api}/b"))
                .header("x-tags", "from-request")
                .extension(HeaderOverrides::new().without_auth())
                .body(Empty::new())?,
        ),
    ];
    let mut rows = Vec::new();
    for (what, request) in requests {
        let received = common::received(client.clone().oneshot(request).await?).await?;
        rows.push(vec![
            what.to_owned(),
            common::values(&received, "user-agent"),
            common::values(&received, "x-tags"),
            common::values(&received, "authorization"),
        ]);
    }
    println!("hyper-util client -> {api}\n");
    common::print_table(&["request", "user-agent", "x-tags", "authorization"], &rows);
    Ok(())
}

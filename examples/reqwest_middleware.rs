//! A `reqwest_middleware` client with both layers, a client-wide default override and
//! per-request `HeaderOverrides` passed with `with_extension`. reqwest's own redirect following
//! is off and `FollowRedirects` follows them above the layers, so every hop is checked against
//! their origins (reqwest would otherwise carry the headers they added to wherever a server
//! redirects).
//!
//! Run with `cargo run --example reqwest_middleware --features reqwest-middleware`.

mod common;

use http::header::{ACCEPT, USER_AGENT};
use reqwest_middleware::{ClientBuilder, Extension};
use tower_client_headers::{
    BearerAuthLayer, BearerToken, BoxError, DefaultHeadersLayer, FollowRedirects, HeaderOverrides,
};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let addr = common::echo_server().await;
    let api = format!("http://{addr}");

    let session = DefaultHeadersLayer::builder()
        .header(USER_AGENT, "reqwest-example/1.0")
        .header(ACCEPT, "application/json")
        .header(ACCEPT, "text/plain") // reqwest's own default_headers would keep only one
        .build()?;
    let auth = BearerAuthLayer::builder()
        .token("svc-token")
        .origin(&api)
        .build()?;

    let reqwest = reqwest::Client::builder()
        .no_proxy()
        // reqwest must not follow redirects itself, below the middleware...
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let client = ClientBuilder::new(reqwest)
        // ...FollowRedirects does, first in the chain, so each hop passes the layers below.
        .with(FollowRedirects::new())
        // A client-wide default: no x-debug header unless a request says otherwise.
        .with_init(Extension(
            HeaderOverrides::new().remove(http::HeaderName::from_static("x-debug")),
        ))
        .with(session)
        .with(auth)
        .build();

    let requests = [
        ("defaults", client.get(format!("{api}/a"))),
        (
            "own Accept",
            client.get(format!("{api}/b")).header(ACCEPT, "text/csv"),
        ),
        (
            "caller's token",
            client.get(format!("{api}/c")).with_extension(
                HeaderOverrides::new().bearer_token(BearerToken::new("caller-token")?),
            ),
        ),
        (
            "no UA, no token",
            client
                .get(format!("{api}/d"))
                .with_extension(HeaderOverrides::new().remove(USER_AGENT).without_auth()),
        ),
    ];
    let mut rows = Vec::new();
    for (what, request) in requests {
        let received: common::Received = request.send().await?.json().await?;
        rows.push(vec![
            what.to_owned(),
            common::values(&received, "user-agent"),
            common::values(&received, "accept"),
            common::values(&received, "authorization"),
        ]);
    }
    println!("reqwest-middleware client -> {api}\n");
    common::print_table(&["request", "user-agent", "accept", "authorization"], &rows);
    println!("\n(with the session's User-Agent removed, reqwest sends none of its own)");
    Ok(())
}

//! Errors as users meet them, end to end: a token endpoint on a real local server answers
//! `503`, the token source calls it with reqwest, and the request goes through a hyper-util
//! stack or a reqwest-middleware client. `Error::find` gets our error out of what the caller
//! holds, the printed chain reaches the endpoint's answer, and nothing is sent.

mod common;

use std::fmt;

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use common::Server;
use tower::{ServiceBuilder, ServiceExt};
use tower_client_headers::{BearerAuthLayer, BearerToken, BoxError, Error, ErrorKind, Token};

/// A token endpoint on `127.0.0.1:0` that always answers `503`; its URL.
async fn failing_token_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let app = Router::new().route(
        "/oauth/token",
        post(|| async { StatusCode::SERVICE_UNAVAILABLE }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    format!("http://{addr}/oauth/token")
}

/// The token source the `TokenSource` docs show: a shared client and URL, cloned per call.
fn source_for(url: String) -> BearerAuthLayer {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    BearerAuthLayer::from_source(move || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let body = http
                .post(&url)
                .send()
                .await?
                .error_for_status()?
                .text()
                .await?;
            Ok::<_, BoxError>(Token::new(BearerToken::new(body)?))
        }
    })
}

/// The README's way to print a whole chain.
fn report(err: &(dyn std::error::Error + 'static)) -> String {
    let chain: Vec<String> = std::iter::successors(Some(err), |e| e.source())
        .map(|e| e.to_string())
        .collect();
    chain.join(": ")
}

/// A caller's own error type holding the client's error as its source.
#[derive(Debug)]
struct AppError(Box<dyn std::error::Error + Send + Sync>);

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("loading the report failed")
    }
}

impl std::error::Error for AppError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

#[tokio::test]
async fn a_failed_fetch_is_found_and_reported_through_a_hyper_util_stack() {
    let api = Server::start().await;
    let auth = source_for(failing_token_endpoint().await);
    let client = ServiceBuilder::new()
        .layer(auth)
        .service(common::hyper_client());

    let request = axum::http::Request::get(api.url("/data"))
        .body(common::Body::new())
        .expect("request");
    let err = client.oneshot(request).await.expect_err("fetch fails");

    let ours = Error::find(&*err).expect("ours, in the BoxError");
    assert_eq!(ours.kind(), ErrorKind::TokenFetch);
    // `{err}` alone says what happened and where the cause is; the chain shows the cause.
    assert!(err.to_string().contains("source()"), "{err}");
    let printed = report(&*err);
    assert!(printed.starts_with("token fetch failed"), "{printed}");
    assert!(printed.contains("503"), "{printed}");
    assert_eq!(api.hits(), 0, "nothing was sent");

    // Wrapped again by the caller, it is still one call away.
    let app = AppError(err);
    assert_eq!(
        Error::find(&app).map(Error::kind),
        Some(ErrorKind::TokenFetch)
    );
    assert!(report(&app).contains("503"));
}

#[cfg(feature = "reqwest-middleware")]
#[tokio::test]
async fn a_failed_fetch_is_found_and_reported_through_reqwest_middleware() {
    let api = Server::start().await;
    let auth = source_for(failing_token_endpoint().await);
    let client = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client"),
    )
    .with(auth)
    .build();

    let err = client
        .get(api.url("/data"))
        .send()
        .await
        .expect_err("fetch fails");
    assert!(err.is_middleware());
    assert_eq!(
        Error::find(&err).map(Error::kind),
        Some(ErrorKind::TokenFetch)
    );
    // `Error::Middleware` displays ours and forwards `source()` to our cause.
    let printed = report(&err);
    assert!(printed.starts_with("token fetch failed"), "{printed}");
    assert!(printed.contains("503"), "{printed}");
    assert_eq!(api.hits(), 0, "nothing was sent");

    let app = AppError(Box::new(err));
    assert_eq!(
        Error::find(&app).map(Error::kind),
        Some(ErrorKind::TokenFetch)
    );
}

#[tokio::test]
async fn errors_that_are_not_ours_are_not_found() {
    // The transport's own failure: hyper-util's plain-http connector refuses an https URL.
    let api = Server::start().await;
    let client = ServiceBuilder::new()
        .layer(BearerAuthLayer::new("abc").expect("valid"))
        .service(common::hyper_client());
    let request = axum::http::Request::get(format!("https://127.0.0.1:{}/", api.port()))
        .body(common::Body::new())
        .expect("request");
    let err = client.oneshot(request).await.expect_err("not an http URL");
    assert!(Error::find(&*err).is_none(), "{}", report(&*err));
    assert_eq!(api.hits(), 0);
}

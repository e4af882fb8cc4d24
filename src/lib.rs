//! Tower middleware for HTTP **clients**: session headers set once, overridable per request,
//! and bearer tokens that stay fresh on their own — scoped to the origins they belong to.
//!
//! What aiohttp's `ClientSession(headers=...)` gives Python, for any
//! `tower::Service<http::Request<B>>` (a hyper-util client, a tower stack inside an axum
//! handler) and for reqwest-middleware:
//!
//! - [`DefaultHeadersLayer`] adds session headers (`User-Agent`, `Accept`, API keys) to every
//!   request. Multi-valued headers keep every value. A request's own value wins by default;
//!   per name you can make the session override or append instead.
//! - [`BearerAuthLayer`] sends `Authorization: Bearer <token>`: a fixed token, or one from a
//!   [`TokenSource`] that is fetched once for any number of waiting requests, refreshed in the
//!   background before it expires, and dropped after a `401`.
//! - [`HeaderOverrides`], in a request's extensions, sets or removes session headers (the
//!   token included) for that one request.
//! - [`sources`] has ready-made token sources: a token file re-read as it rotates
//!   (Kubernetes, Vault), and with the `oauth2` feature the OAuth2 client credentials and
//!   refresh-token grants over the HTTP client you already have.
//! - Both layers can be scoped to origins (`https://api.example.com`): requests to anywhere
//!   else pass untouched, so credentials never leak to another host or across a redirect.
//!   Tokens are never sent over plain `http://` except to loopback, unless you allow it.
//!
//! Nothing here panics on bad input: builders return an [`Error`] naming the header, origin or
//! problem, and no `Debug`, `Display` or error message contains a token or sensitive value.
//!
//! # Example
//!
//! ```
//! use http::header::{ACCEPT, USER_AGENT};
//! use http::{Request, Response};
//! use std::convert::Infallible;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_client_headers::{BearerAuthLayer, DefaultHeadersLayer, HeaderOverrides};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // Any `Service<Request<B>>` works; here, one that echoes the headers it received.
//! let transport = service_fn(|req: Request<()>| async move {
//!     Ok::<_, Infallible>(Response::new(req.headers().clone()))
//! });
//!
//! let client = ServiceBuilder::new()
//!     .layer(
//!         DefaultHeadersLayer::builder()
//!             .header(USER_AGENT, "my-app/1.0")
//!             .header(ACCEPT, "application/json")
//!             .build()?,
//!     )
//!     .layer(
//!         BearerAuthLayer::builder()
//!             .token("my-token")
//!             .origin("https://api.example.com")
//!             .build()?,
//!     )
//!     .service(transport);
//!
//! let sent = client
//!     .clone()
//!     .oneshot(Request::get("https://api.example.com/items").body(())?)
//!     .await?
//!     .into_body();
//! assert_eq!(sent[USER_AGENT], "my-app/1.0");
//! assert_eq!(sent["authorization"], "Bearer my-token");
//!
//! // One request without the session's User-Agent and with its own Accept.
//! let request = Request::get("https://api.example.com/report")
//!     .header(ACCEPT, "text/csv")
//!     .extension(HeaderOverrides::new().remove(USER_AGENT))
//!     .body(())?;
//! let sent = client.oneshot(request).await?.into_body();
//! assert!(sent.get(USER_AGENT).is_none());
//! assert_eq!(sent[ACCEPT], "text/csv");
//! # Ok(()) }
//! ```
//!
//! # Layer order
//!
//! With a redirect-following layer such as tower-http's `FollowRedirectLayer`, put these
//! layers *inside* it (after it, in `ServiceBuilder` order) and scope them with `origin(..)`:
//! every hop then passes through them and is checked against the origins, so nothing of the
//! session reaches another origin, and a hop to plain `http://` elsewhere is refused. Outside
//! it, headers are added once and the redirect layer carries them to every hop: its standard
//! policy strips `Authorization`, `Cookie` and `Proxy-Authorization` across origins, but a
//! custom header such as `x-api-key` travels on. Unscoped layers inside a redirect layer
//! authenticate every hop, wherever it goes. Retry layers can go either side: each retry is
//! the same request to the same origin.
//!
//! # Features
//!
//! - `tracing` (default): events for token fetches, failures, backoff, invalidations and
//!   plaintext refusals, under the target `tower_client_headers`; never a token or a header
//!   value.
//! - `reqwest-middleware`: both layers implement `reqwest_middleware::Middleware`, with the
//!   same rules, reading [`HeaderOverrides`] from the middleware's extensions.
//! - `oauth2`: the OAuth2 token sources in [`sources`] (with `reqwest-middleware`, they can
//!   use a `reqwest::Client`).

#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]
#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bearer;
mod default_headers;
mod error;
mod origin;
mod overrides;
pub mod sources;
mod token;
mod trace;

#[cfg(feature = "reqwest-middleware")]
mod reqwest_mw;

pub use bearer::{BearerAuth, BearerAuthBuilder, BearerAuthLayer, ResponseFuture};
pub use default_headers::{DefaultHeaders, DefaultHeadersBuilder, DefaultHeadersLayer};
pub use error::{BoxError, Error, ErrorKind};
pub use overrides::HeaderOverrides;
pub use token::{BearerToken, Token, TokenSource};

//! Bearer tokens: [`BearerAuthLayer`] sends `Authorization: Bearer <token>`, fixed or from a
//! refreshing [`TokenSource`](crate::TokenSource), scoped to origins and never in plain text to
//! another host.
//!
//! The layer sends one [`Credential`](crate::Credential) in one header: a bearer token in
//! `Authorization` (the common case, which the rules below name), Basic credentials, or an
//! API key in the header it names ([`BearerAuthBuilder::header_name`]); read "the layer's
//! header" for `Authorization` then. For each request, in this order:
//!
//! 1. A request to an origin outside the layer's scope passes untouched.
//! 2. [`HeaderOverrides::bearer_token`](crate::HeaderOverrides::bearer_token) (or
//!    [`credential`](crate::HeaderOverrides::credential), or `set(AUTHORIZATION, ..)`) sends
//!    that credential instead, without asking the source, at the origin of the first request
//!    the layers saw it on; anywhere else it counts as a removal (3.).
//! 3. `without_auth()`, `remove(AUTHORIZATION)` or `remove_all()` sends none.
//! 4. A request that already has `Authorization` keeps it (marked sensitive), and no token is
//!    fetched.
//! 5. Otherwise the layer's token is sent, as one sensitive `Authorization` value (a
//!    [`logged_out`](BearerAuthBuilder::logged_out) layer with no credential set sends none).
//!
//! Whenever a credential would be sent over plain `http://` to a host that is not loopback,
//! the request fails with [`ErrorKind::PlaintextRefused`](crate::ErrorKind::PlaintextRefused)
//! and nothing is sent, unless the builder's `allow_http(true)` says otherwise. A request URI
//! with no scheme (the origin-form `/path` that hyper's low-level connections take) cannot be
//! shown to be safe, so an unscoped layer refuses it too; scope the layer with `origin(..)`
//! (such URIs match no origin, so they pass untouched) or set `allow_http(true)` if the
//! connection is yours to vouch for.
//!
//! A request whose header map is full (`http::HeaderMap` holds 24,576 names) and has no
//! `Authorization` fails with [`ErrorKind::TooManyHeaders`](crate::ErrorKind::TooManyHeaders),
//! nothing sent. A `401` to a request that carried the source's cached token drops that token
//! when it came from the origin the token was sent to (see the crate docs' layer order), and
//! the response is marked [`TokenRejected`](crate::TokenRejected), so that `RetryUnauthorized`
//! outside the layer can send the request once more with a fresh token. Which responses reject the token (`403`, gRPC's `UNAUTHENTICATED`)
//! is [`BearerAuthBuilder::invalidate_when`](crate::BearerAuthBuilder::invalidate_when).
//!
//! ```
//! use http::{Request, Response};
//! use std::convert::Infallible;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_client_headers::{BearerAuthLayer, BearerToken, HeaderOverrides};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let auth = BearerAuthLayer::builder()
//!     .token("service-token")
//!     .origin("https://api.example.com")
//!     .build()?;
//! let client = ServiceBuilder::new().layer(auth).service(service_fn(|req: Request<()>| async move {
//!     Ok::<_, Infallible>(Response::new(req.headers().get("authorization").cloned()))
//! }));
//!
//! let sent = client.clone().oneshot(Request::get("https://api.example.com/me").body(())?).await?;
//! assert_eq!(sent.body().as_ref().unwrap(), "Bearer service-token");
//!
//! // Another origin: no token.
//! let sent = client.clone().oneshot(Request::get("https://cdn.example.net/").body(())?).await?;
//! assert!(sent.body().is_none());
//!
//! // The caller's own token for one request.
//! let request = Request::get("https://api.example.com/me")
//!     .extension(HeaderOverrides::new().bearer_token(BearerToken::new("user-token")?))
//!     .body(())?;
//! let sent = client.oneshot(request).await?;
//! assert_eq!(sent.body().as_ref().unwrap(), "Bearer user-token");
//! # Ok(()) }
//! ```

mod cache;
pub(crate) mod core;
mod future;
mod layer;
mod service;

pub use self::core::TokenRejected;
pub(crate) use cache::OverdueReason as Overdue;
pub use future::ResponseFuture;
pub use layer::{BearerAuthBuilder, BearerAuthLayer};
pub use service::BearerAuth;

#[cfg(test)]
mod tests;

//! Tower middleware for HTTP **clients**: session headers set once, overridable per request,
//! and bearer tokens that stay fresh on their own — scoped to the origins they belong to.
//!
//! What aiohttp's `ClientSession(headers=...)` gives Python, for any
//! `tower::Service<http::Request<B>>` (a hyper-util client, a tower stack inside an axum
//! handler) and for reqwest-middleware:
//!
//! - [`DefaultHeadersLayer`] adds session headers (`User-Agent`, `Accept`, `X-Client`) to every
//!   request. Multi-valued headers keep every value. A request's own value wins by default;
//!   per name you can make the session override or append instead. A [`SessionHandle`]
//!   changes the session while it is in use (set a header after login, remove it on logout),
//!   and values can be computed per request ([`header_with`](DefaultHeadersBuilder::header_with)).
//! - [`BearerAuthLayer`] sends `Authorization: Bearer <token>`, or any other [`Credential`]
//!   (Basic credentials, an API key in a header you name) with the same protections: a fixed
//!   one, one set at runtime for a logged-in user
//!   ([`set_credential`](BearerAuthLayer::set_credential)), or one from a [`TokenSource`] that
//!   is fetched once for any number of waiting requests, refreshed in the
//!   background before it expires, and dropped after a `401` from the origin it was sent to
//!   (or whatever [`invalidate_when`](BearerAuthBuilder::invalidate_when) says rejects it,
//!   gRPC's `UNAUTHENTICATED` for one); `RetryUnauthorized` sends such a request once more
//!   with a fresh token.
//! - [`HeaderOverrides`], in a request's extensions, sets or removes session headers (the
//!   token included) for that one request. Its credentials stay with the origin of the first
//!   request the layers see them on.
//! - [`sources`] has ready-made token sources: a token file re-read as it rotates
//!   (Kubernetes, Vault), and with the `oauth2` feature the OAuth2 client credentials and
//!   refresh-token grants over the HTTP client you already have.
//! - Both layers can be scoped to origins (`https://api.example.com`): requests to anywhere
//!   else pass untouched, so with the [layer order](#layer-order) below nothing of ours reaches
//!   another host, on a redirect hop either. Tokens are never sent over plain `http://` except
//!   to loopback (`127.0.0.0/8`, `::1`, `localhost`: nothing else), unless you allow it.
//!
//! Nothing here panics on bad input, nor at `http::HeaderMap`'s capacity: builders return an
//! [`Error`] naming the header, origin or problem and what to do about it, and no `Debug`,
//! `Display` or error message contains a token or sensitive value. [`Error::find`] gets ours
//! out of whatever error a request ends in.
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
//! **Redirects, tower.** Put tower-http's `FollowRedirectLayer` outermost and these layers
//! inside it, scoped with `origin(..)`, with a redirect policy that keeps [`HeaderOverrides`]
//! across origins. Every hop then passes through our layers and is checked against their
//! origins: a layer scoped to A adds nothing to a hop to B, and a per-request credential stays
//! with the origin of the first request, so on A -> B -> A B gets none of it and the hop back
//! to A carries the caller's token again, not the service's. (tower-http's default policy drops
//! the overrides on the hop to B for the rest of the chain: the hop back to A would get the
//! service's token.)
//!
//! ```
//! use http::{Request, Response};
//! use std::convert::Infallible;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_client_headers::{BearerAuthLayer, DefaultHeadersLayer, HeaderOverrides};
//! use tower_http::follow_redirect::policy::{clone_body_fn, FilterCredentials, Limited, PolicyExt};
//! use tower_http::follow_redirect::FollowRedirectLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # let client = service_fn(|req: Request<String>| async move {
//! #     Ok::<_, Infallible>(Response::new(req.headers().clone()))
//! # });
//! let api = "https://api.example.com";
//! // tower-http's standard policy (10 hops at most, credential headers dropped across
//! // origins), keeping HeaderOverrides on every hop and replaying bodies for 307/308. The type
//! // arguments of `and` only satisfy its bounds.
//! let policy = Limited::default()
//!     .and::<_, (), ()>(FilterCredentials::new().allow_extension::<HeaderOverrides>())
//!     .and::<_, String, ()>(clone_body_fn(|body: &String| Some(body.clone())));
//! let stack = ServiceBuilder::new()
//!     .layer(FollowRedirectLayer::with_policy(policy)) // outermost
//!     .layer(DefaultHeadersLayer::builder().sensitive_header("x-api-key", "k").origin(api).build()?)
//!     .layer(BearerAuthLayer::builder().token("service-token").origin(api).build()?)
//!     .service(client);
//! let sent = stack.oneshot(Request::get("https://api.example.com/a").body(String::new())?).await?;
//! assert_eq!(sent.body()["authorization"], "Bearer service-token");
//! # Ok(()) }
//! ```
//!
//! Outside the redirect layer, headers are added once and the redirect layer carries them to
//! every hop: its standard policy strips `Authorization`, `Cookie` and `Proxy-Authorization`
//! across origins, but a custom header such as `x-api-key` travels on. Unscoped layers inside
//! it authenticate every hop, wherever it goes; they refuse a hop to plain `http://` elsewhere,
//! which is a narrower rule than scoping. A `401` drops the cached token only when it came from
//! the origin the token was sent to: in the order above that is every `401` `BearerAuth` sees;
//! with a redirect layer inside `BearerAuth`, the `tower-http` feature makes it read
//! tower-http's `RequestUri` to tell.
//!
//! **Redirects, reqwest-middleware.** reqwest follows redirects below every middleware, out of
//! the layers' sight: build the client with `reqwest::redirect::Policy::none()` and put
//! `FollowRedirects` first in the chain, so every hop goes through the layers.
//!
//! **Retries** go *outside* the auth layer, so that each attempt passes through it and a retry
//! after a `401` gets the fresh token; inside, a retry replays the token attached before it.
//! `RetryUnauthorized` (features `retry`, `reqwest-middleware`) is that retry: once, only for
//! responses marked [`TokenRejected`], `ServiceBuilder::new().retry(RetryUnauthorized::new())`
//! before `.layer(auth)`, or added before the auth middleware.
//!
//! **Proxies.** The loopback exemption reads the request URI, not where the connection goes: a
//! client sending plain `http://` through a proxy (reqwest honours `HTTP_PROXY` unless built with
//! `.no_proxy()`) sends a token for `http://127.0.0.1` to the proxy in clear.
//!
//! # Performance
//!
//! Per request, over a bare inner service: session headers with 8 names cost about 0.6 of
//! tower-http's multiple-headers layer or a hand-written `contains_key`/`insert` loop; a fixed
//! token about 490 instructions (tower-http's `AddAuthorization`, which keeps nothing of the
//! request's, 240); a cached source token about 1.2 times a fixed one, with no lock and no
//! shared reference count. Neither layer boxes or allocates on those paths. Figures, method and
//! reproduction: `BENCHMARKS.md` in the crate's source.
//!
//! # Features
//!
//! - `tracing` (default): events for token fetches, failures, backoff, invalidations and
//!   plaintext refusals, under the target `tower_client_headers`; never a token or a header
//!   value.
//! - `reqwest-middleware`: both layers implement `reqwest_middleware::Middleware`, with the
//!   same rules, reading [`HeaderOverrides`] from the middleware's extensions; and
//!   `FollowRedirects` follows redirects above them.
//! - `tower-http`: `BearerAuth` reads tower-http 0.7's `RequestUri` from responses, so that with
//!   a `FollowRedirectLayer` inside it a `401` from another origin leaves the token alone.
//! - `oauth2`: the OAuth2 token sources in [`sources`] (with `reqwest-middleware`, they can
//!   use a `reqwest::Client`).
//! - `retry`: `RetryUnauthorized` is a `tower::retry::Policy` (tower 0.5). With
//!   `reqwest-middleware` it is also a `reqwest_middleware::Middleware`.

#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]
#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bearer;
mod credential;
mod default_headers;
mod error;
mod origin;
mod overrides;
pub mod sources;
mod token;
mod trace;

#[cfg(feature = "reqwest-middleware")]
mod follow_redirects;
#[cfg(feature = "reqwest-middleware")]
mod reqwest_mw;
#[cfg(any(feature = "retry", feature = "reqwest-middleware"))]
mod retry;

pub use bearer::{BearerAuth, BearerAuthBuilder, BearerAuthLayer, ResponseFuture, TokenRejected};
pub use credential::Credential;
pub use default_headers::{
    DefaultHeaders, DefaultHeadersBuilder, DefaultHeadersLayer, RequestHead, SessionHandle,
};
pub use error::{BoxError, Error, ErrorKind};
#[cfg(feature = "reqwest-middleware")]
pub use follow_redirects::FollowRedirects;
pub use overrides::HeaderOverrides;
#[cfg(any(feature = "retry", feature = "reqwest-middleware"))]
pub use retry::RetryUnauthorized;
pub use token::{BearerToken, Token, TokenSource};

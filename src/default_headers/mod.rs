//! Session headers: [`DefaultHeadersLayer`] adds headers to every request, with per-request
//! control through [`HeaderOverrides`](crate::HeaderOverrides).
//!
//! Each name has a policy, chosen with the builder:
//!
//! | builder call | request has no value for the name | request has its own values |
//! |---|---|---|
//! | `header` (if-absent, the default) | every session value is added, in order | the request's values are kept, every session value dropped |
//! | `override_header` | every session value is added | the session's values replace the request's |
//! | `append_header` | every session value is added | the session's values follow the request's |
//!
//! A request's [`HeaderOverrides`](crate::HeaderOverrides) come first: `set(N, ..)` makes `N`
//! exactly the given values; `remove(N)` and `remove_all()` stop the session adding `N` and
//! leave the request's own `N` alone. `set` beats `remove`.
//!
//! The session can change while the layer is in use: [`DefaultHeadersLayer::handle`] gives a
//! [`SessionHandle`] whose [`update`](SessionHandle::update) replaces it, atomically, for every
//! clone of the layer and every service made from it. Values can also be computed for each
//! request from its [`RequestHead`], with [`header_with`](DefaultHeadersBuilder::header_with)
//! and its siblings, under the same rules as static values.
//!
//! For bearer tokens prefer [`BearerAuthLayer`](crate::BearerAuthLayer): it refuses to send
//! them in plain text and can refresh them. A credential given here as a plain session header
//! is sent as configured (marked sensitive), so scope it with `origin(..)`.
//!
//! ```
//! use http::header::{ACCEPT, USER_AGENT};
//! use http::{HeaderValue, Request, Response};
//! use std::convert::Infallible;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_client_headers::{DefaultHeadersLayer, HeaderOverrides};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let session = DefaultHeadersLayer::builder()
//!     .header(USER_AGENT, "my-app/1.0")
//!     .header(ACCEPT, "application/json")
//!     .header(ACCEPT, "text/plain") // multi-valued: both are sent
//!     .build()?;
//!
//! let client = ServiceBuilder::new().layer(session).service(service_fn(
//!     |req: Request<()>| async move { Ok::<_, Infallible>(Response::new(req.headers().clone())) },
//! ));
//!
//! let request = Request::get("https://api.example.com/")
//!     .extension(HeaderOverrides::new().remove(USER_AGENT))
//!     .body(())?;
//! let sent = client.oneshot(request).await?.into_body();
//! assert!(sent.get(USER_AGENT).is_none());
//! assert_eq!(sent.get_all(ACCEPT).iter().count(), 2);
//! # Ok(()) }
//! ```

mod computed;
mod layer;
mod merge;
mod service;
mod session;

pub use computed::RequestHead;
pub(crate) use computed::RequestLine;
#[cfg(test)]
pub(crate) use layer::MAX_HEADER_NAMES;
pub use layer::{DefaultHeadersBuilder, DefaultHeadersLayer};
pub(crate) use merge::SessionHeaders;
pub use service::DefaultHeaders;
pub use session::SessionHandle;

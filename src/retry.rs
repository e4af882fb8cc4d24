//! [`RetryUnauthorized`]: send a request once more, with a fresh token, when the server
//! rejected the token it carried. The decision is [`rejected`], read from the mark that the
//! bearer rule (`bearer::core::finish`) puts on the response; the tower policy and the
//! reqwest middleware below are thin adapters over it.

use std::fmt;

use http::Extensions;

use crate::TokenRejected;

/// Retries a request once, with a fresh token, when the server rejected the token from the
/// layer's source that it carried: its answer carries [`TokenRejected`].
///
/// A `tower::retry::Policy` (feature `retry`) for `http::Request<B>` with `B: Clone`
/// (`Full<Bytes>`, `String`, `()`, ...), and a `reqwest_middleware::Middleware` (feature
/// `reqwest-middleware`).
///
/// # Where it goes: outside the auth layer
///
/// Put it **outside** [`BearerAuthLayer`](crate::BearerAuthLayer): before it in
/// `ServiceBuilder` order, or added before it to a reqwest-middleware chain.
///
/// - `BearerAuth` adds `Authorization` to the request it passes down. Outside, the copy kept
///   for a retry is taken before that, so it carries none of our `Authorization`, and the retry
///   goes through `BearerAuth` again and gets the token cached *then*. Inside, a retry would
///   replay the rejected token.
/// - `BearerAuth` marks the response with [`TokenRejected`] on its way out. Inside, the policy
///   never sees the mark, so it never retries: the wrong order costs the retry, never a replay
///   of a stale token.
///
/// # What is retried
///
/// A request is sent at most twice, and a second time only when the first answer carried
/// [`TokenRejected`]: a rejection (status `401` by default, see
/// [`invalidate_when`](crate::BearerAuthBuilder::invalidate_when)) from the origin the token
/// was sent to, of a token from the layer's [`TokenSource`](crate::TokenSource). By then that
/// token is no longer cached, so the retry waits for a fresh one: one fetch for any number of
/// rejected requests, as for any requests that need a token. Anything else is returned as it
/// came:
///
/// - answers to requests that carried a per-request token
///   ([`HeaderOverrides::bearer_token`](crate::HeaderOverrides::bearer_token)), a fixed token,
///   or their own `Authorization` (nothing would change; a `401` with no token source never
///   loops);
/// - a second rejection (the fresh token was rejected too), errors (no response), and every
///   other response;
/// - bodies that cannot be cloned: with tower the policy needs `B: Clone`; with reqwest a
///   streaming body (`Body::wrap_stream`) is sent once, and its rejected response comes back
///   unchanged (marked).
///
/// If the fresh token cannot be fetched, the retry ends in that error
/// ([`ErrorKind::TokenFetch`](crate::ErrorKind::TokenFetch) and the like), and the request is
/// not sent again.
///
/// # Cost
///
/// tower's `Retry` clones every request before sending it, rejected or not (that is how a
/// retry policy keeps a request to send again): for `http::Request<B>` the headers, the
/// extensions and the body. Beyond that clone the policy only looks for the mark on the
/// response. The reqwest middleware clones each request with `Request::try_clone`.
///
/// # Example
///
#[cfg_attr(feature = "retry", doc = "```")]
#[cfg_attr(not(feature = "retry"), doc = "```ignore")]
/// use http::{Request, Response, StatusCode};
/// use std::convert::Infallible;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
/// use tower_client_headers::{BearerAuthLayer, BearerToken, BoxError, RetryUnauthorized, Token};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// // The token source hands out t1, t2, ...
/// let fetches = Arc::new(AtomicUsize::new(0));
/// let counter = Arc::clone(&fetches);
/// let auth = BearerAuthLayer::from_source(move || {
///     let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
///     async move { Ok::<_, BoxError>(Token::new(BearerToken::new(format!("t{n}"))?)) }
/// });
/// // A server that has revoked t1.
/// let server = service_fn(|req: Request<String>| async move {
///     let revoked = req.headers()["authorization"] == "Bearer t1";
///     let status = if revoked { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
///     let mut response = Response::new(req.headers()["authorization"].clone());
///     *response.status_mut() = status;
///     Ok::<_, Infallible>(response)
/// });
/// let client = ServiceBuilder::new()
///     .retry(RetryUnauthorized::new()) // outside the auth layer
///     .layer(auth)
///     .service(server);
///
/// let request = Request::post("https://api.example.com/items").body("{}".to_owned())?;
/// let response = client.oneshot(request).await?;
/// // t1 was rejected and dropped; the retry carried a fresh token.
/// assert_eq!(response.status(), StatusCode::OK);
/// assert_eq!(response.body(), "Bearer t2");
/// assert_eq!(fetches.load(Ordering::SeqCst), 2);
/// # Ok(()) }
/// ```
///
/// With reqwest-middleware (a streaming body is sent once):
///
#[cfg_attr(feature = "reqwest-middleware", doc = "```")]
#[cfg_attr(not(feature = "reqwest-middleware"), doc = "```ignore")]
/// use reqwest_middleware::ClientBuilder;
/// use tower_client_headers::{BearerAuthLayer, BearerToken, BoxError, RetryUnauthorized, Token};
///
/// let auth = BearerAuthLayer::builder()
///     .source(|| async { Ok::<_, BoxError>(Token::new(BearerToken::new("t")?)) })
///     .origin("https://api.example.com")
///     .build()?;
/// let client = ClientBuilder::new(reqwest::Client::new())
///     .with(RetryUnauthorized::new()) // before the auth middleware
///     .with(auth)
///     .build();
/// # let _ = client;
/// # Ok::<(), tower_client_headers::Error>(())
/// ```
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "retry", feature = "reqwest-middleware")))
)]
#[derive(Clone, Default)]
pub struct RetryUnauthorized {
    /// tower clones the policy for each request: whether this request was sent again. (The
    /// reqwest middleware keeps that in its own call.)
    #[cfg_attr(not(feature = "retry"), allow(dead_code))]
    retried: bool,
}

impl RetryUnauthorized {
    /// Create a new [`RetryUnauthorized`].
    ///
    /// ```
    /// use tower_client_headers::RetryUnauthorized;
    ///
    /// let retry = RetryUnauthorized::new();
    /// # let _ = retry;
    /// ```
    pub const fn new() -> Self {
        Self { retried: false }
    }
}

impl fmt::Debug for RetryUnauthorized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryUnauthorized").finish_non_exhaustive()
    }
}

/// The retry rule, once: the answer says that the server rejected the token from the layer's
/// source (`bearer::core::finish` marked it), and no `RetryUnauthorized` has already sent this
/// request again (two of them stacked would otherwise send it four times).
#[inline]
fn rejected(extensions: &Extensions) -> bool {
    extensions.get::<TokenRejected>().is_some() && extensions.get::<Retried>().is_none()
}

/// Put on the answer to a retry, so that no other `RetryUnauthorized` outside retries again.
#[derive(Clone, Copy)]
struct Retried;

#[cfg(feature = "retry")]
mod tower_policy {
    use std::future::{ready, Ready};

    use http::{Request, Response};
    use tower::retry::Policy;

    use super::{rejected, RetryUnauthorized};

    /// Retries once when the response carries [`TokenRejected`](crate::TokenRejected).
    #[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
    impl<B: Clone, R, E> Policy<Request<B>, Response<R>, E> for RetryUnauthorized {
        type Future = Ready<()>;

        fn retry(
            &mut self,
            _: &mut Request<B>,
            result: &mut Result<Response<R>, E>,
        ) -> Option<Self::Future> {
            match result {
                Ok(response) if !self.retried && rejected(response.extensions()) => {
                    self.retried = true;
                    Some(ready(()))
                }
                Ok(response) if self.retried => {
                    response.extensions_mut().insert(super::Retried);
                    None
                }
                _ => None,
            }
        }

        fn clone_request(&mut self, req: &Request<B>) -> Option<Request<B>> {
            // tower asks again before sending the retry. A retry is never retried, but tower
            // only shows us its answer (to mark it `Retried` for any retry layer outside) if
            // we keep a copy; only rejected requests pay for this second one.
            Some(req.clone())
        }
    }
}

#[cfg(feature = "reqwest-middleware")]
mod reqwest_middleware_impl {
    use http::Extensions;
    use reqwest::{Request, Response};
    use reqwest_middleware::{Middleware, Next, Result};

    use super::{rejected, RetryUnauthorized};

    /// Sends the request again, once, when the response carries
    /// [`TokenRejected`](crate::TokenRejected); add it before the auth middleware. A request
    /// whose body cannot be cloned (a stream) is sent once and its response returned as it
    /// came.
    #[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
    #[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
    #[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
    impl Middleware for RetryUnauthorized {
        async fn handle(
            &self,
            req: Request,
            extensions: &mut Extensions,
            next: Next<'_>,
        ) -> Result<Response> {
            // Taken before the auth middleware runs: the copy has none of our Authorization.
            let Some(again) = req.try_clone() else {
                return next.run(req, extensions).await;
            };
            let response = next.clone().run(req, extensions).await?;
            if !rejected(response.extensions()) {
                return Ok(response);
            }
            // The rejected answer is dropped unread; the retry goes through the auth
            // middleware again and gets the token cached now.
            drop(response);
            let mut response = next.run(again, extensions).await?;
            response.extensions_mut().insert(super::Retried);
            Ok(response)
        }
    }
}

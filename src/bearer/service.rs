use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, Uri};
use tower_service::Service;

use super::core::{attach, AuthCore, Prepared};
use super::{BearerAuthLayer, ResponseFuture};
use crate::error::BoxError;
use crate::origin::{SentTo, Target};
use crate::overrides::HeaderOverrides;

/// Middleware that sends a credential (`Authorization: Bearer <token>`, Basic, or an API key)
/// with requests that have none of their own, refusing plain `http://` to hosts that are not loopback.
///
/// Made by [`BearerAuthLayer`]. Its error is a [`BoxError`]: the inner service's errors pass
/// through boxed, and failures of its own (plaintext refusal, a failed token fetch) are a
/// [`crate::Error`] inside the box.
///
/// ```
/// use http::{Request, Response};
/// use std::convert::Infallible;
/// use tower::{service_fn, ServiceExt};
/// use tower_client_headers::{BearerAuth, BearerAuthLayer, Error, ErrorKind};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let inner = service_fn(|req: Request<()>| async move {
///     Ok::<_, Infallible>(Response::new(req.headers().clone()))
/// });
/// let auth = BearerAuth::new(inner, BearerAuthLayer::new("abc")?);
///
/// let sent = auth.clone().oneshot(Request::get("https://api.example.com/").body(())?).await?;
/// assert_eq!(sent.body()["authorization"], "Bearer abc");
///
/// let err = auth.oneshot(Request::get("http://api.example.com/").body(())?).await.unwrap_err();
/// assert_eq!(err.downcast_ref::<Error>().map(Error::kind), Some(ErrorKind::PlaintextRefused));
/// # Ok(()) }
/// ```
///
/// # The inner service must be `Clone`
///
/// A request that has to wait for a token fetch takes the inner service along into its future
/// (the ready one; `self` keeps a clone), so `BearerAuth<S>` is a [`Service`] only when
/// `S: Clone`. The bound holds for every request, including those served from the cache
/// without waiting: which path a request takes is only known at run time. Clients are
/// `Clone` (hyper-util's `Client`, `tower::service_fn`, tower-http's layers over them), but
/// some tower middleware is not: `RateLimit`, `BoxService` (use `BoxCloneService`). Put one
/// *inside* `BearerAuth` and the compiler reports the missing `Service` impl (on `oneshot`,
/// `ready`, or where a `Service` is expected), not always naming `Clone`:
///
/// ```compile_fail
/// # use http::{Request, Response};
/// # use std::{convert::Infallible, time::Duration};
/// # use tower::{service_fn, ServiceBuilder, ServiceExt};
/// # use tower_client_headers::BearerAuthLayer;
/// # async fn demo(auth: BearerAuthLayer) {
/// # let transport = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
/// let client = ServiceBuilder::new()
///     .layer(auth)
///     .rate_limit(100, Duration::from_secs(1)) // `RateLimit` is not `Clone`
///     .service(transport);
/// // error[E0599]: the method `oneshot` exists for struct `BearerAuth<RateLimit<..>>`,
/// //               but its trait bounds were not satisfied
/// client.oneshot(Request::get("https://api.example.com/").body(()).unwrap()).await;
/// # }
/// ```
///
/// Two fixes. Put the layer that is not `Clone` *outside* `BearerAuth` (before it in
/// `ServiceBuilder` order), or make it `Clone` with tower's `Buffer`, which runs it on a task
/// of its own behind a channel (it needs a tokio runtime):
///
/// ```
/// # use http::{Request, Response};
/// # use std::{convert::Infallible, time::Duration};
/// # use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
/// # use tower_client_headers::BearerAuthLayer;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// # let auth = BearerAuthLayer::new("abc")?;
/// # let transport = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
/// // 1. Outside: the rate limit counts every request, and `BearerAuth` wraps a `Clone` client.
/// let mut client = ServiceBuilder::new()
///     .rate_limit(100, Duration::from_secs(1))
///     .layer(auth.clone())
///     .service(transport.clone());
/// let request = Request::get("https://api.example.com/").body(())?;
/// client.ready().await?.call(request).await?;
///
/// // 2. Inside, behind a `Buffer` (a `Clone` handle to the rate-limited service).
/// let client = ServiceBuilder::new()
///     .layer(auth)
///     .buffer(64)
///     .rate_limit(100, Duration::from_secs(1))
///     .service(transport);
/// client.clone().oneshot(Request::get("https://api.example.com/").body(())?).await?;
/// # Ok(()) }
/// ```
///
/// # Redirects and `401`s
///
/// Put tower-http's `FollowRedirectLayer` *outside* `BearerAuth` (before it in
/// `ServiceBuilder` order): every hop is then a request of its own to this layer, scoped by
/// its origins and refused over plain `http://` elsewhere, and a `401` that drops the cached
/// token is always the answer of the origin the token went to (see the crate docs,
/// "Redirects"). With a redirect layer *inside* `BearerAuth`, only the first hop passes this
/// layer (the redirect layer carries its headers on; its standard policy strips
/// `Authorization` across origins); enable the `tower-http` feature so that a `401` at the
/// end of a chain that left the token's origin (told by tower-http's `RequestUri` on the
/// response) leaves the token alone. Without the feature such a `401` drops it, and the next
/// request fetches a new one.
#[derive(Clone)]
pub struct BearerAuth<S> {
    inner: S,
    core: Arc<AuthCore>,
}

impl<S> BearerAuth<S> {
    /// Create a new [`BearerAuth`] wrapping `inner` with the token of `layer`.
    ///
    /// ```
    /// use tower::service_fn;
    /// use tower_client_headers::{BearerAuth, BearerAuthLayer};
    ///
    /// let svc = BearerAuth::new(service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(()))
    /// }), BearerAuthLayer::new("abc")?);
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn new(inner: S, layer: BearerAuthLayer) -> Self {
        Self {
            inner,
            core: layer.core,
        }
    }

    /// Returns a new [`BearerAuthBuilder`](super::BearerAuthBuilder) for a layer that wraps
    /// services with a [`BearerAuth`] middleware: the same as [`BearerAuthLayer::builder`].
    ///
    /// ```
    /// use tower_client_headers::BearerAuth;
    ///
    /// let layer = BearerAuth::<()>::layer().token("abc").build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn layer() -> super::BearerAuthBuilder {
        BearerAuthLayer::builder()
    }

    /// Gets a reference to the underlying service.
    ///
    /// ```
    /// # use tower_client_headers::{BearerAuth, BearerAuthLayer};
    /// let svc = BearerAuth::new(7, BearerAuthLayer::new("abc")?);
    /// assert_eq!(*svc.get_ref(), 7);
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Gets a mutable reference to the underlying service.
    ///
    /// ```
    /// # use tower_client_headers::{BearerAuth, BearerAuthLayer};
    /// let mut svc = BearerAuth::new(7, BearerAuthLayer::new("abc")?);
    /// *svc.get_mut() = 8;
    /// assert_eq!(*svc.get_ref(), 8);
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the underlying service.
    ///
    /// ```
    /// # use tower_client_headers::{BearerAuth, BearerAuthLayer};
    /// let svc = BearerAuth::new(7, BearerAuthLayer::new("abc")?);
    /// assert_eq!(svc.into_inner(), 7);
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, R> Service<Request<B>> for BearerAuth<S>
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = Response<R>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The common case (a fixed credential or a cached token, no origins, no overrides,
        // nothing to refuse), in place: the request is not taken apart and put together again.
        let overrides = req.extensions().get::<HeaderOverrides>().is_some();
        if self.core.is_plain(req.uri(), overrides) {
            if let Some(carried) = self.core.prepare_plain(req.headers_mut()) {
                return match carried {
                    None => ResponseFuture::plain(self.inner.call(req)),
                    Some(carried) => {
                        let sent_to = sent_to(req.uri(), true);
                        ResponseFuture::carrying(self.inner.call(req), carried, sent_to)
                    }
                };
            }
        }
        let (mut parts, body) = req.into_parts();
        let target = Target::from_uri(&parts.uri);
        let prepared = self.core.prepare(
            target,
            &mut parts.headers,
            parts.extensions.get::<HeaderOverrides>(),
        );
        match prepared {
            Prepared::Ready(carried) => {
                let sent_to = sent_to(&parts.uri, carried.is_some());
                ResponseFuture::inner(
                    self.inner.call(Request::from_parts(parts, body)),
                    carried,
                    sent_to,
                )
            }
            Prepared::Refused(err) => ResponseFuture::failed(err),
            Prepared::NeedToken => {
                let sent_to = sent_to(&parts.uri, true);
                // The ready service goes with the request; `self` keeps a clone that will be
                // made ready by the next `poll_ready`.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let core = Arc::clone(&self.core);
                ResponseFuture::waiting(
                    Box::pin(async move {
                        let (value, carried) = core.acquire().await?;
                        attach(&mut parts.headers, &core.header, value)?;
                        Ok((inner.call(Request::from_parts(parts, body)), carried))
                    }),
                    sent_to,
                )
            }
        }
    }
}

/// Where a request that carries the cached token went, kept only when its response can say
/// where it came from: with the `tower-http` feature, a `FollowRedirect` inside this layer puts
/// its final URI on the response ([`core::finish`](super::core::finish) compares the two). The
/// recommended order (the redirect layer outside) needs none of this: there every hop is a
/// request of its own to this layer.
///
/// What is kept costs a copy of the scheme and authority (see [`SentTo`]); the origin is
/// worked out only for a response that may reject the token.
#[inline]
fn sent_to(uri: &Uri, carries_cached: bool) -> Option<SentTo> {
    (cfg!(feature = "tower-http") && carries_cached).then(|| SentTo::of(uri))
}

impl<S: fmt::Debug> fmt::Debug for BearerAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuth")
            .field("inner", &self.inner)
            .field("auth", &self.core)
            .finish()
    }
}

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::Cache;
use http::Request;
use tower_service::Service;

use super::session::Live;
use super::{DefaultHeadersLayer, RequestLine, SessionHeaders};
use crate::overrides::HeaderOverrides;

/// Middleware that adds session headers to every request, honouring the request's own headers
/// and its [`HeaderOverrides`].
///
/// Made by [`DefaultHeadersLayer`]. It never fails on its own: `Response`, `Error` and `Future`
/// are the inner service's. Nor does it panic on a request whose header map is full
/// (`http::HeaderMap` holds 24,576 names): a session or override value that does not fit is
/// not added, and the request's own headers are kept.
///
/// It reads the layer's live session (see [`SessionHandle`](crate::SessionHandle)) with one
/// atomic load per request, and keeps the session it last used: an idle service holds the
/// previous session in memory (never sending it) until its next request or until dropped.
///
/// ```
/// use http::{Request, Response};
/// use std::convert::Infallible;
/// use tower::{service_fn, ServiceExt};
/// use tower_client_headers::{DefaultHeaders, DefaultHeadersLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let layer = DefaultHeadersLayer::builder().header("x-api-version", "2").build()?;
/// let inner = service_fn(|req: Request<()>| async move {
///     Ok::<_, Infallible>(Response::new(req.headers().clone()))
/// });
/// let service = DefaultHeaders::new(inner, layer);
/// let sent = service.oneshot(Request::new(())).await?.into_body();
/// assert_eq!(sent["x-api-version"], "2");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DefaultHeaders<S> {
    inner: S,
    /// The layer's live session, reloaded only after an update (`&mut self` in `call` makes
    /// a cache possible: one relaxed load and a compare per request).
    session: Cache<Live, Arc<SessionHeaders>>,
}

impl<S> DefaultHeaders<S> {
    /// Create a new [`DefaultHeaders`] wrapping `inner` with the session headers of `layer`.
    ///
    /// ```
    /// use tower::service_fn;
    /// use tower_client_headers::{DefaultHeaders, DefaultHeadersLayer};
    ///
    /// let layer = DefaultHeadersLayer::new(http::HeaderMap::new());
    /// let svc = DefaultHeaders::new(service_fn(|_: http::Request<()>| async {
    ///     Ok::<_, std::convert::Infallible>(())
    /// }), layer);
    /// # let _ = svc;
    /// ```
    pub fn new(inner: S, layer: DefaultHeadersLayer) -> Self {
        Self {
            inner,
            session: Cache::new(Live(layer.shared)),
        }
    }

    /// Returns a builder for a [`Layer`](tower_layer::Layer) that wraps services with a
    /// [`DefaultHeaders`] middleware: the same as [`DefaultHeadersLayer::builder`].
    ///
    /// ```
    /// use tower_client_headers::DefaultHeaders;
    ///
    /// let layer = DefaultHeaders::<()>::layer().header("accept", "application/json").build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn layer() -> super::DefaultHeadersBuilder {
        DefaultHeadersLayer::builder()
    }

    /// Gets a reference to the underlying service.
    ///
    /// ```
    /// # use tower_client_headers::{DefaultHeaders, DefaultHeadersLayer};
    /// let svc = DefaultHeaders::new(7, DefaultHeadersLayer::new(http::HeaderMap::new()));
    /// assert_eq!(*svc.get_ref(), 7);
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Gets a mutable reference to the underlying service.
    ///
    /// ```
    /// # use tower_client_headers::{DefaultHeaders, DefaultHeadersLayer};
    /// let mut svc = DefaultHeaders::new(7, DefaultHeadersLayer::new(http::HeaderMap::new()));
    /// *svc.get_mut() += 1;
    /// assert_eq!(*svc.get_ref(), 8);
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the underlying service.
    ///
    /// ```
    /// # use tower_client_headers::{DefaultHeaders, DefaultHeadersLayer};
    /// let svc = DefaultHeaders::new(7, DefaultHeadersLayer::new(http::HeaderMap::new()));
    /// assert_eq!(svc.into_inner(), 7);
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for DefaultHeaders<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        self.session.load().apply(
            RequestLine::from_uri(&parts.method, &parts.uri),
            &mut parts.headers,
            parts.extensions.get::<HeaderOverrides>(),
        );
        self.inner.call(Request::from_parts(parts, body))
    }
}

impl<S: fmt::Debug> fmt::Debug for DefaultHeaders<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultHeaders")
            .field("inner", &self.inner)
            .field("session", &self.session.arc_swap().load())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::{HeaderMap, Response};
    use tower::{service_fn, ServiceBuilder, ServiceExt};

    use super::*;

    /// A body type that is neither `Clone` nor `Sync`.
    struct NotClone(#[allow(dead_code)] std::cell::Cell<u8>);

    #[tokio::test]
    async fn clone_does_not_require_a_clone_body_and_future_is_the_inner_one() {
        let layer = DefaultHeadersLayer::builder()
            .header("x-a", "1")
            .build()
            .expect("valid");
        let svc = ServiceBuilder::new().layer(layer).service(service_fn(
            |req: Request<NotClone>| async move {
                Ok::<_, Infallible>(Response::new(req.headers().clone()))
            },
        ));
        // `type Future = S::Future`: the inner future, unwrapped (checked at compile time).
        fn future_is_inner<S, B>(_: &DefaultHeaders<S>)
        where
            S: Service<Request<B>>,
            DefaultHeaders<S>: Service<Request<B>, Future = S::Future>,
        {
        }
        future_is_inner::<_, NotClone>(&svc);
        let sent: HeaderMap = svc
            .oneshot(Request::new(NotClone(std::cell::Cell::new(0))))
            .await
            .expect("infallible")
            .into_body();
        assert_eq!(sent["x-a"], "1");
    }

    #[tokio::test]
    async fn overrides_are_read_from_extensions() {
        let layer = DefaultHeadersLayer::builder()
            .header("x-a", "1")
            .header("x-b", "2")
            .build()
            .expect("valid");
        let svc = layer.layer(service_fn(|req: Request<()>| async move {
            Ok::<_, Infallible>(Response::new(req.headers().clone()))
        }));
        let req = Request::get("https://api.example.com/")
            .extension(HeaderOverrides::new().remove(http::HeaderName::from_static("x-a")))
            .body(())
            .expect("request");
        let sent = svc.oneshot(req).await.expect("infallible").into_body();
        assert!(sent.get("x-a").is_none());
        assert_eq!(sent["x-b"], "2");
    }

    use tower_layer::Layer;
}

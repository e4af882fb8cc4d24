use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use super::core::{self, Carried, TokenRejected};
use crate::error::{BoxError, Error};
use crate::origin::{SentTo, Target};

/// The boxed wait for a token, then the inner service's future. Only requests that have to
/// wait for a fetch take this path; the fixed and cached-token paths are not boxed.
pub(super) type Waiting<F> =
    Pin<Box<dyn Future<Output = Result<(F, Option<Carried>), Error>> + Send + 'static>>;

pin_project! {
    /// Response future for [`BearerAuth`](super::BearerAuth).
    ///
    /// It resolves to the inner service's response or a [`BoxError`]. A response that
    /// rejected the token from the layer's source (a `401` by default) is returned as it came,
    /// with [`TokenRejected`](crate::TokenRejected) added to its extensions. With a cached
    /// token in hand it is the inner future plus a check of the response; only a request that
    /// must wait for a token fetch is boxed.
    ///
    /// ```
    /// use http::{Request, Response};
    /// use std::convert::Infallible;
    /// use tower::{service_fn, Service, ServiceExt};
    /// use tower_client_headers::{BearerAuthLayer, ResponseFuture};
    /// use tower_layer::Layer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let mut svc = BearerAuthLayer::new("abc")?.layer(service_fn(|_: Request<()>| async {
    ///     Ok::<_, Infallible>(Response::new(()))
    /// }));
    /// let request = Request::get("https://api.example.com/").body(())?;
    /// let future: ResponseFuture<_> = svc.ready().await?.call(request);
    /// assert_eq!(future.await?.status(), 200);
    /// # Ok(()) }
    /// ```
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // A request whose response has nothing to judge: a fixed token, a per-request one, the
        // request's own, none.
        Plain {
            #[pin]
            future: F,
        },
        Inner {
            #[pin]
            future: F,
            carried: Option<Carried>,
            sent_to: Option<SentTo>,
        },
        Waiting {
            waiting: Waiting<F>,
            sent_to: Option<SentTo>,
        },
        Failed {
            error: Option<Error>,
        },
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn inner(future: F, carried: Option<Carried>, sent_to: Option<SentTo>) -> Self {
        match carried {
            None => Self::plain(future),
            Some(carried) => Self::carrying(future, carried, sent_to),
        }
    }

    /// The inner future of a request that carries the cached token: its response is judged.
    #[inline]
    pub(super) fn carrying(future: F, carried: Carried, sent_to: Option<SentTo>) -> Self {
        Self {
            state: State::Inner {
                future,
                carried: Some(carried),
                sent_to,
            },
        }
    }

    /// The inner future, its error boxed: nothing to judge in the response.
    #[inline]
    pub(super) fn plain(future: F) -> Self {
        Self {
            state: State::Plain { future },
        }
    }

    pub(super) fn waiting(waiting: Waiting<F>, sent_to: Option<SentTo>) -> Self {
        Self {
            state: State::Waiting { waiting, sent_to },
        }
    }

    pub(super) fn failed(error: Error) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
        }
    }
}

impl<F, R, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<R>, BoxError>;

    #[inline(always)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // A request on its way (the fixed credential, a cached token, the request's own)
        // inlined; waiting for a token and the failed states out of line.
        loop {
            match self.as_mut().project().state.project() {
                StateProj::Plain { future } => return future.poll(cx).map_err(Into::into),
                StateProj::Inner {
                    future,
                    carried,
                    sent_to,
                } => {
                    let mut response = ready!(future.poll(cx)).map_err(Into::into)?;
                    if carried
                        .as_ref()
                        .is_some_and(|carried| carried.may_reject(response.status()))
                    {
                        judge_rejection(&mut response, carried.take(), *sent_to);
                    }
                    return Poll::Ready(Ok(response));
                }
                StateProj::Waiting { .. } | StateProj::Failed { .. } => {}
            }
            // The token arrived: the state is now a request on its way, polled above.
            ready!(self.as_mut().poll_waiting(cx))?;
        }
    }
}

impl<F, R, E> ResponseFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
    E: Into<BoxError>,
{
    /// The waiting and failed states: `Ok` once the token is attached and the inner future
    /// is the state, the error otherwise.
    #[inline(never)]
    fn poll_waiting(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        let mut this = self.project();
        match this.state.as_mut().project() {
            StateProj::Waiting { waiting, sent_to } => match ready!(waiting.as_mut().poll(cx)) {
                Ok((future, None)) => this.state.set(State::Plain { future }),
                Ok((future, carried)) => {
                    let sent_to = *sent_to;
                    this.state.set(State::Inner {
                        future,
                        carried,
                        sent_to,
                    })
                }
                Err(err) => return Poll::Ready(Err(err.into())),
            },
            StateProj::Failed { error } => {
                return Poll::Ready(Err(match error.take() {
                    Some(err) => err.into(),
                    None => "BearerAuth response future polled after completion".into(),
                }))
            }
            StateProj::Plain { .. } | StateProj::Inner { .. } => {}
        }
        Poll::Ready(Ok(()))
    }
}

/// Mark `response` when it rejected the cached token its request carried (see
/// [`core::finish`]): called only for a response its test may call a rejection, so the
/// running state tests the status inline and takes nothing out of the state otherwise.
#[inline(never)]
fn judge_rejection<R>(
    response: &mut Response<R>,
    carried: Option<Carried>,
    sent_to: Option<SentTo>,
) {
    if core::finish(
        response.status(),
        response.headers(),
        carried,
        sent_to.and_then(|s| s.origin_id()),
        answered_by(response),
    ) {
        response.extensions_mut().insert(TokenRejected);
    }
}

/// Where a response came from, when it says so: tower-http's `FollowRedirect` (0.7) puts the
/// URI of the request that got this response on it as `RequestUri`.
#[inline]
fn answered_by<R>(response: &Response<R>) -> Option<Target<'_>> {
    #[cfg(feature = "tower-http")]
    {
        response
            .extensions()
            .get::<tower_http::follow_redirect::RequestUri>()
            .map(|uri| Target::from_uri(&uri.0))
    }
    #[cfg(not(feature = "tower-http"))]
    {
        let _ = response;
        None
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

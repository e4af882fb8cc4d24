//! How the token sources reach the token endpoint: a client the user already has, behind one
//! small private trait. A tower HTTP service (a hyper-util client, anything that takes an
//! `http::Request` whose body can be made from `Bytes`) and, with the `reqwest-middleware`
//! feature, a `reqwest::Client`.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};
use tower_service::Service;

use crate::error::BoxError;

/// A token response larger than this is refused (they are a few KiB at most).
pub(super) const MAX_RESPONSE_SIZE: usize = 256 * 1024;

pub(super) type Sent<'a> =
    Pin<Box<dyn Future<Output = Result<Response<Bytes>, BoxError>> + Send + 'a>>;

/// Sends one request to the token endpoint and reads the whole response.
pub(super) trait Transport: Send + Sync + 'static {
    fn send(&self, request: Request<Bytes>) -> Sent<'_>;
}

/// A tower service as a [`Transport`]. The service is cloned for each request (as tower
/// services are meant to be shared); the `Mutex` only guards that clone, so the service need
/// not be `Sync`.
pub(super) struct TowerTransport<S, B> {
    service: Mutex<S>,
    _body: PhantomData<fn(B)>,
}

impl<S, B> TowerTransport<S, B> {
    pub(super) fn new(service: S) -> Self {
        Self {
            service: Mutex::new(service),
            _body: PhantomData,
        }
    }
}

impl<S, ReqBody, ResBody> Transport for TowerTransport<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    ReqBody: From<Bytes> + Send + 'static,
    ResBody: http_body::Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<BoxError>,
{
    fn send(&self, request: Request<Bytes>) -> Sent<'_> {
        #[cfg(feature = "tower-http")]
        let sent_to = request.uri().clone();
        let mut service = self
            .service
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Box::pin(async move {
            std::future::poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            let response = service
                .call(request.map(ReqBody::from))
                .await
                .map_err(Into::into)?;
            // A tower-http `FollowRedirect` inside the service says where the response came
            // from: anywhere but the token URL is a redirect that was followed.
            #[cfg(feature = "tower-http")]
            if let Some(tower_http::follow_redirect::RequestUri(from)) = response.extensions().get()
            {
                if *from != sent_to {
                    return Err(redirected(&origin_of(from)));
                }
            }
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_SIZE)
                .collect()
                .await
                .map_err(|err| too_large(err).unwrap_or_else(|err| err))?
                .to_bytes();
            Ok(Response::from_parts(parts, body))
        })
    }
}

/// `Limited`'s length error, in our words.
fn too_large(err: BoxError) -> Result<BoxError, BoxError> {
    if err.is::<http_body_util::LengthLimitError>() {
        Ok(response_too_large())
    } else {
        Err(err)
    }
}

fn response_too_large() -> BoxError {
    BoxError::from(format!(
        "the token endpoint's response is larger than {} KiB",
        MAX_RESPONSE_SIZE / 1024
    ))
}

/// A token request was redirected (and the redirect followed, by the client's own policy) to
/// `to`, an origin: the answer is not the token endpoint's.
#[cfg(any(feature = "tower-http", feature = "reqwest-middleware"))]
fn redirected(to: &str) -> BoxError {
    BoxError::from(format!(
        "the request was redirected (to {to}); token requests never follow redirects, so \
         give the token endpoint's final URL (and, for a reqwest::Client, build it with \
         `redirect::Policy::none()`)"
    ))
}

/// `scheme://host[:port]` of `uri`, for messages.
#[cfg(feature = "tower-http")]
fn origin_of(uri: &http::Uri) -> String {
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => {
            let host = authority.as_str().rsplit('@').next().unwrap_or_default();
            format!("`{scheme}://{host}`")
        }
        _ => "another URL".to_owned(),
    }
}

/// A `reqwest::Client` follows redirects by its own policy (10 hops by default), which this
/// crate cannot change per request. So that no policy can carry the client secret or the
/// refresh token to another origin:
///
/// - the body is a stream that reqwest cannot clone, and reqwest follows a 307/308 (which
///   re-sends the body) only with a body it can clone: it returns the 3xx instead, which is
///   an error;
/// - after a 301/302/303 reqwest follows with a GET, without the body and (to another
///   origin) without the `Authorization` header; the response it ends with comes from
///   another URL, which is an error too, and its body is never read.
#[cfg(feature = "reqwest-middleware")]
impl Transport for reqwest::Client {
    fn send(&self, request: Request<Bytes>) -> Sent<'_> {
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            parts.headers.insert(
                http::header::CONTENT_LENGTH,
                http::HeaderValue::from(body.len()),
            );
            let body = reqwest::Body::wrap(http_body_util::Full::new(body));
            let request = reqwest::Request::try_from(Request::from_parts(parts, body))?;
            let sent_to = request.url().clone();
            let mut response = self.execute(request).await?;
            if *response.url() != sent_to {
                let url = response.url();
                let to = match url.host_str() {
                    Some(host) => match url.port() {
                        Some(port) => format!("`{}://{host}:{port}`", url.scheme()),
                        None => format!("`{}://{host}`", url.scheme()),
                    },
                    None => "another URL".to_owned(),
                };
                return Err(redirected(&to));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > MAX_RESPONSE_SIZE {
                    return Err(response_too_large());
                }
                body.extend_from_slice(&chunk);
            }
            let mut out = Response::new(Bytes::from(body));
            *out.status_mut() = response.status();
            *out.headers_mut() = std::mem::take(response.headers_mut());
            Ok(out)
        })
    }
}

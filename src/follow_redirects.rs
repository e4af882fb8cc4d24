//! [`FollowRedirects`]: redirects for reqwest-middleware, followed *above* this crate's layers so
//! that every hop is checked against their origins.
//!
//! reqwest follows redirects on its own, below every middleware: a middleware sees only the
//! first request, and reqwest carries the headers it added to every hop, stripping only
//! `Authorization`, `Cookie`, `Proxy-Authorization` and `WWW-Authenticate` on a hop whose host
//! differs from the previous hop's. A session header scoped to one origin (`x-api-key`, say)
//! would reach any origin the server redirects to, and on A -> B -> B a token too. So turn reqwest's own following off and follow redirects here, first in
//! the chain, the way tower-http's `FollowRedirectLayer` sits outside the tower layers:
//!
//! ```
//! use reqwest_middleware::ClientBuilder;
//! use tower_client_headers::{BearerAuthLayer, DefaultHeadersLayer, FollowRedirects};
//!
//! let api = "https://api.example.com";
//! let session = DefaultHeadersLayer::builder().sensitive_header("x-api-key", "k").origin(api).build()?;
//! let auth = BearerAuthLayer::builder().token("t").origin(api).build()?;
//! let reqwest = reqwest::Client::builder()
//!     .redirect(reqwest::redirect::Policy::none()) // reqwest must not follow below us
//!     .build()?;
//! let client = ClientBuilder::new(reqwest)
//!     .with(FollowRedirects::new()) // first: every hop goes through the layers below
//!     .with(session)
//!     .with(auth)
//!     .build();
//! # let _ = client;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every hop then passes through the layers as a request of its own: a hop to another origin
//! gets nothing from a layer scoped elsewhere, a per-request credential in
//! [`HeaderOverrides`](crate::HeaderOverrides) stays with the origin it was first sent to, and a
//! hop to plain `http://` is checked like any request.

use http::header::{
    AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, LOCATION,
    PROXY_AUTHORIZATION, TRANSFER_ENCODING, WWW_AUTHENTICATE,
};
use http::{Extensions, HeaderName, HeaderValue, Method, StatusCode};
use reqwest::{Request, Response, Url};
use reqwest_middleware::{Middleware, Next, Result};

use crate::origin::{Place, Target};

/// reqwest's own default limit.
const DEFAULT_MAX_REDIRECTS: usize = 10;

/// Middleware that follows HTTP redirects above the crate's layers, so that each hop is a new
/// request to them, checked against their origins. Put it first in the chain and build the
/// reqwest client with `reqwest::redirect::Policy::none()`.
///
/// - `301`/`302` after `POST`, and `303` after anything but `HEAD`, are followed with `GET`
///   and no body; `307`/`308` repeat the method and the body. A body that cannot be cloned (a
///   stream) is not replayed: the `307`/`308` response is returned as it is.
/// - On a hop to another origin (scheme, host or port), the request's own `Authorization`,
///   `Cookie`, `Proxy-Authorization` and `WWW-Authenticate` are dropped, as reqwest does, and
///   so is any header of the request with a value marked sensitive
///   (`HeaderValue::set_sensitive(true)`: mark your own API key so); a hop back to the first
///   origin carries them again. What this crate's layers add is decided again on each hop.
/// - After [`max_redirects`](Self::max_redirects) hops (default 10), or on a `Location` that
///   is missing, not a URL or not `http`/`https`, the redirect response itself is returned.
/// - If reqwest itself followed a redirect to another origin below the middleware (the client
///   was not built with `Policy::none()`), the call fails with
///   [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig): the hop has happened, but the misconfiguration shows at once.
///
/// ```
/// use reqwest_middleware::ClientBuilder;
/// use tower_client_headers::FollowRedirects;
///
/// let reqwest = reqwest::Client::builder()
///     .redirect(reqwest::redirect::Policy::none())
///     .build()?;
/// let client = ClientBuilder::new(reqwest).with(FollowRedirects::new().max_redirects(5)).build();
/// # let _ = client;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
#[derive(Clone, Debug)]
pub struct FollowRedirects {
    max: usize,
}

impl FollowRedirects {
    /// Create a new [`FollowRedirects`] that follows at most 10 redirects, as reqwest does.
    ///
    /// ```
    /// use tower_client_headers::FollowRedirects;
    ///
    /// let follow = FollowRedirects::new();
    /// # let _ = follow;
    /// ```
    pub fn new() -> Self {
        Self {
            max: DEFAULT_MAX_REDIRECTS,
        }
    }

    /// Follow at most `max` redirects per request; `0` follows none.
    ///
    /// ```
    /// use tower_client_headers::FollowRedirects;
    ///
    /// let follow = FollowRedirects::new().max_redirects(3);
    /// # let _ = follow;
    /// ```
    pub fn max_redirects(mut self, max: usize) -> Self {
        self.max = max;
        self
    }
}

impl Default for FollowRedirects {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl Middleware for FollowRedirects {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        let mut hops = 0;
        // The request's own credentials belong to the origin it was sent to. They are dropped
        // on a hop elsewhere and put back on a hop back there: otherwise a chain A -> B -> A
        // would reach A without the caller's `Authorization`, and a layer below would fill in
        // the service's own token for the caller (a confused deputy).
        let first = Place::of(&Target::from_url(req.url()));
        let own: Vec<(HeaderName, HeaderValue)> = credential_names(req.headers())
            .into_iter()
            .flat_map(|name| {
                req.headers()
                    .get_all(&name)
                    .iter()
                    .map(|value| (name.clone(), value.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        loop {
            // The request as it was before the layers below touched it: each hop starts from
            // it, so they decide afresh what the hop carries.
            let (replay, body_replayable) = match req.try_clone() {
                Some(replay) => (replay, true),
                None => (without_body(&req), false),
            };
            let response = next.clone().run(req, extensions).await?;
            if let Some(err) = crate::reqwest_mw::redirected_below(replay.url(), &response) {
                return Err(reqwest_middleware::Error::middleware(err));
            }
            let sent_to = Place::of(&Target::from_url(replay.url()));
            if hops == self.max {
                return Ok(response);
            }
            match next_hop(&response, replay, body_replayable, &sent_to) {
                Some(mut next_req) => {
                    hops += 1;
                    if !sent_to.is(&Target::from_url(next_req.url()))
                        && first.is(&Target::from_url(next_req.url()))
                    {
                        for (name, value) in &own {
                            next_req.headers_mut().append(name.clone(), value.clone());
                        }
                    }
                    req = next_req;
                }
                None => return Ok(response),
            }
        }
    }
}

/// The request's own credentials, which stay with the origin it was sent to: these names, and
/// any header with a value marked sensitive (an API key the caller marked).
const OWN_CREDENTIALS: [HeaderName; 3] = [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION];

/// The names of the request's own credentials (see [`OWN_CREDENTIALS`]), each once.
fn credential_names(headers: &http::HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = Vec::new();
    for (name, value) in headers {
        if (OWN_CREDENTIALS.contains(name) || value.is_sensitive()) && !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// The request to send for a redirect response, or `None` when it is not one to follow.
fn next_hop(
    response: &Response,
    mut req: Request,
    body_replayable: bool,
    from: &Place,
) -> Option<Request> {
    let to_get = match response.status() {
        StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND => *req.method() == Method::POST,
        StatusCode::SEE_OTHER => *req.method() != Method::HEAD,
        StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT => false,
        _ => return None,
    };
    let location = response.headers().get(LOCATION)?.to_str().ok()?;
    let to: Url = response.url().join(location).ok()?;
    if !matches!(to.scheme(), "http" | "https") {
        return None;
    }
    if to_get {
        *req.method_mut() = Method::GET;
        *req.body_mut() = None;
        for name in [
            CONTENT_TYPE,
            CONTENT_LENGTH,
            CONTENT_ENCODING,
            TRANSFER_ENCODING,
        ] {
            req.headers_mut().remove(name);
        }
    } else if !body_replayable && req.body().is_some() {
        return None;
    }
    if !from.is(&Target::from_url(&to)) {
        let headers = req.headers_mut();
        for name in credential_names(headers) {
            headers.remove(name);
        }
        headers.remove(WWW_AUTHENTICATE);
        headers.remove("cookie2");
    }
    *req.url_mut() = to;
    Some(req)
}

/// A copy of `req` without its body, for a body that cannot be cloned: enough for a redirect
/// that turns the request into a `GET`.
fn without_body(req: &Request) -> Request {
    let mut copy = Request::new(req.method().clone(), req.url().clone());
    *copy.headers_mut() = req.headers().clone();
    *copy.version_mut() = req.version();
    *copy.timeout_mut() = req.timeout().copied();
    copy
}

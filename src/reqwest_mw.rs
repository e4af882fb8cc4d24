//! [`reqwest_middleware::Middleware`] for both layers: thin adapters over the same merge and
//! token rules as the tower services.
//!
//! [`HeaderOverrides`] is read from the middleware's extensions, so pass it with
//! `RequestBuilder::with_extension`, or set a client-wide default with
//! `ClientBuilder::with_init(Extension(..))`. Our own failures (plaintext refusal, a failed token
//! fetch) are `reqwest_middleware::Error::Middleware` carrying a [`crate::Error`].
//!
//! The token cache runs on tokio, so this integration is for native targets; on `wasm32` the
//! trait is implemented with `?Send`, as reqwest-middleware declares it there.
//!
//! reqwest follows redirects itself, below every middleware, so origin scoping never sees those
//! hops: build the client with `reqwest::redirect::Policy::none()` and put
//! [`FollowRedirects`](crate::FollowRedirects) before these layers.

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next, Result};

use crate::bearer::core::{self as auth, Prepared};
use crate::default_headers::RequestLine;
use crate::error::{Error, ErrorKind};
use crate::origin::{OriginId, Place, Target};
use crate::{BearerAuthLayer, DefaultHeadersLayer, HeaderOverrides, TokenRejected};

/// If reqwest followed a redirect from `sent` to another origin itself, below the middleware,
/// the error that says so: origin scoping never saw that hop, and what a layer added went
/// along. One rule for `FollowRedirects` and both scoped layers.
pub(crate) fn redirected_below(sent: &reqwest::Url, response: &Response) -> Option<Error> {
    let from = Target::from_url(sent);
    let to = Target::from_url(response.url());
    if Place::of(&from).is(&to) {
        return None;
    }
    crate::trace::hidden_redirect(&from.describe(), &to.describe());
    Some(Error::new(
        ErrorKind::InvalidConfig,
        format!(
            "the reqwest client followed a redirect from {} to {} itself, below this \
             crate's middleware, so origin scoping never saw that hop (what the layers added \
             went along); build the client with reqwest::redirect::Policy::none() and put \
             FollowRedirects first in the middleware chain",
            from.describe(),
            to.describe()
        ),
    ))
}

/// Whether reqwest drops `name` on a redirect to another host (it keeps every other header).
fn reqwest_strips(name: &http::HeaderName) -> bool {
    use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, WWW_AUTHENTICATE};
    [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, WWW_AUTHENTICATE].contains(name)
}

/// The URL of a request a scoped layer acted on, to check afterwards that reqwest did not
/// carry it elsewhere. `None` for unscoped layers (they apply to every origin) and for
/// requests outside the scope (the layer added nothing).
fn scoped_url(scoped: bool, req: &Request) -> Option<reqwest::Url> {
    scoped.then(|| req.url().clone())
}

/// Merges session headers into the request, as [`DefaultHeaders`](crate::DefaultHeaders) does.
/// It reads the session on every request, so a [`SessionHandle`](crate::SessionHandle) taken
/// from the layer before it went into `ClientBuilder::with` changes what the client sends.
///
/// ```
/// use reqwest_middleware::ClientBuilder;
/// use tower_client_headers::DefaultHeadersLayer;
///
/// // Unscoped: these headers go to every origin, so reqwest may follow redirects itself. A
/// // layer scoped with `.origin(..)` needs the setup shown on `BearerAuthLayer`'s impl.
/// let session = DefaultHeadersLayer::builder().header("user-agent", "my-app/1.0").build()?;
/// let handle = session.handle();
/// let client = ClientBuilder::new(reqwest::Client::new()).with(session).build();
/// // Later, after a login: every request the client sends from now on carries it.
/// handle.update(|s| s.sensitive_header("x-session-id", "s-7f3a"))?;
/// # let _ = client;
/// # Ok::<(), tower_client_headers::Error>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl Middleware for DefaultHeadersLayer {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        // Take the headers out so the URL can be borrowed beside them, without copying either.
        let mut headers = std::mem::take(req.headers_mut());
        let watch = {
            // The current session, read once for this request (and let go before it is sent).
            let session = self.session();
            let watch = scoped_url(session.scopes(&Target::from_url(req.url())), &req);
            session.apply(
                RequestLine::from_url(req.method(), req.url()),
                &mut headers,
                extensions.get::<HeaderOverrides>(),
            );
            watch
        };
        *req.headers_mut() = headers;
        let response = next.run(req, extensions).await?;
        if let Some(err) = watch.and_then(|sent| redirected_below(&sent, &response)) {
            return Err(reqwest_middleware::Error::middleware(err));
        }
        Ok(response)
    }
}

/// Adds the bearer token (or the layer's other [`Credential`](crate::Credential)), as
/// [`BearerAuth`](crate::BearerAuth) does, and when a response from
/// the origin the token was sent to (`Response::url()`: a `401` at the end of a redirect chain
/// elsewhere leaves the token alone) rejects a source's token, drops that token and marks the
/// response with [`TokenRejected`](crate::TokenRejected), for
/// [`RetryUnauthorized`](crate::RetryUnauthorized) added before this middleware.
///
/// ```
/// use reqwest_middleware::ClientBuilder;
/// use tower_client_headers::BearerAuthLayer;
///
/// use tower_client_headers::FollowRedirects;
///
/// let auth = BearerAuthLayer::builder().token("abc").origin("https://api.example.com").build()?;
/// // Scoped layers need reqwest's own redirect following off, and FollowRedirects first.
/// let reqwest = reqwest::Client::builder()
///     .redirect(reqwest::redirect::Policy::none())
///     .build()
///     .expect("client");
/// let client = ClientBuilder::new(reqwest)
///     .with(FollowRedirects::new())
///     .with(auth)
///     .build();
/// # let _ = client;
/// # Ok::<(), tower_client_headers::Error>(())
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl Middleware for BearerAuthLayer {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        let mut headers = std::mem::take(req.headers_mut());
        let header = &self.core.header;
        let overrides = extensions.get::<HeaderOverrides>();
        let scoped = self.core.origins.scopes(&Target::from_url(req.url()));
        let had_own = headers.contains_key(header);
        let prepared = self
            .core
            .prepare(Target::from_url(req.url()), &mut headers, overrides);
        // Where a request with the cached token went: a `401` drops the token only when it
        // came from there (reqwest may have followed redirects elsewhere below us).
        let sent_to = || Some(OriginId::of(&Target::from_url(req.url())));
        let (carried, sent_to) = match prepared {
            Prepared::Ready(carried) => {
                let sent_to = if carried.is_some() { sent_to() } else { None };
                (carried, sent_to)
            }
            Prepared::Refused(err) => return Err(reqwest_middleware::Error::middleware(err)),
            Prepared::NeedToken => {
                let sent_to = sent_to();
                let (value, carried) = self
                    .core
                    .acquire()
                    .await
                    .map_err(reqwest_middleware::Error::middleware)?;
                auth::attach(&mut headers, &self.core.header, value)
                    .map_err(reqwest_middleware::Error::middleware)?;
                (carried, sent_to)
            }
        };
        // An unscoped layer sends its credential everywhere, but never in plain text to another
        // host: reqwest strips `Authorization` on a hop to another host, not an API key's
        // header, so a redirect reqwest followed itself is checked for this one too.
        let added = headers.contains_key(header) && (!had_own || overrides.is_some());
        let watch = scoped_url(scoped || (added && !reqwest_strips(header)), &req);
        *req.headers_mut() = headers;
        let mut response = next.run(req, extensions).await?;
        if auth::finish(
            response.status(),
            response.headers(),
            carried,
            sent_to,
            Some(Target::from_url(response.url())),
        ) {
            response.extensions_mut().insert(TokenRejected);
        }
        if let Some(err) = watch.and_then(|sent| redirected_below(&sent, &response)) {
            return Err(reqwest_middleware::Error::middleware(err));
        }
        Ok(response)
    }
}

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use tower_layer::Layer;

use arc_swap::ArcSwapOption;
use http::header::AUTHORIZATION;
use http::HeaderName;

use super::cache::TokenCache;
use super::core::{AuthCore, Rejects, Secret};
use super::BearerAuth;
use crate::credential::{credential_header_name, Credential};
use crate::error::{Error, ErrorKind};
use crate::origin::{Origin, Origins};
use crate::token::{BearerToken, TokenSource};

const DEFAULT_REFRESH_BEFORE: Duration = Duration::from_secs(60);
const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Layer that applies [`BearerAuth`], which sends a credential (`Authorization: Bearer <token>`,
/// Basic, or an API key) with every request that has none of its own.
///
/// It sends any other [`Credential`] the same way, with the same protections: Basic
/// credentials, or an API key in the header it names
/// ([`credential`](BearerAuthBuilder::credential)); and a logged-in user's credential set at
/// runtime ([`logged_out`](BearerAuthBuilder::logged_out), [`set_credential`](Self::set_credential)).
///
/// All clones of a layer, and every service made from them, share one token cache.
/// `Debug` never shows the token. The service it makes needs a `Clone` inner service: see
/// [`BearerAuth`](BearerAuth#the-inner-service-must-be-clone) for why, and what to do with
/// middleware that is not `Clone`.
///
/// # When the token source fails
///
/// - A failed or timed-out background refresh keeps the still-valid token in use; a later
///   request retries 1–5 s later.
/// - With no usable token, the requests waiting for a failed fetch get
///   [`ErrorKind::TokenFetch`] (or [`ErrorKind::TokenFetchTimeout`]) and nothing is sent.
///   Then no fetch starts for a backoff delay (1 s doubling to 30 s, jittered down by up to
///   half, reset by a success): requests inside it fail at once with `TokenFetch`, whose
///   `source()` is the last failure. Walk the `source()` chain to print the cause.
/// - No request waits longer than [`fetch_timeout`](BearerAuthBuilder::fetch_timeout); a
///   refresh still running when its token expires is abandoned and a new fetch starts.
/// - A token that arrives already expired is a failed fetch, never sent.
/// - [`refresh`](Self::refresh) fetches now (not held back by the backoff);
///   [`invalidate`](Self::invalidate) drops the token. With the `tracing` feature, each of
///   these is an event under the target `tower_client_headers`.
///
/// ```
/// use tower_client_headers::BearerAuthLayer;
///
/// let layer = BearerAuthLayer::new("my-api-token")?;
/// assert!(!format!("{layer:?}").contains("my-api-token"));
/// # Ok::<(), tower_client_headers::Error>(())
/// ```
#[derive(Clone)]
pub struct BearerAuthLayer {
    pub(crate) core: Arc<AuthCore>,
}

impl BearerAuthLayer {
    /// Create a new [`BearerAuthLayer`] that sends a fixed token, to every origin.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidToken`] if the token is not an RFC 6750 `b64token`; the message
    /// never contains the token.
    ///
    /// ```
    /// use tower_client_headers::BearerAuthLayer;
    ///
    /// let layer = BearerAuthLayer::new("abc.def-123")?;
    /// assert!(BearerAuthLayer::new("has space").is_err());
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn new(token: impl Into<String>) -> Result<Self, Error> {
        Self::builder().token(token).build()
    }

    /// Create a new [`BearerAuthLayer`] whose token comes from `source`, cached, shared by all
    /// requests and refreshed ahead of expiry, with the default `refresh_before` (60 s) and
    /// `fetch_timeout` (30 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_client_headers::{BearerAuthLayer, BearerToken, BoxError, Token};
    ///
    /// let layer = BearerAuthLayer::from_source(|| async {
    ///     Ok::<_, BoxError>(Token::new(BearerToken::new("t")?).expires_in(Duration::from_secs(600)))
    /// });
    /// # let _ = layer;
    /// ```
    pub fn from_source(source: impl TokenSource) -> Self {
        Self::with(AuthCore {
            header: AUTHORIZATION,
            secret: Secret::Source(TokenCache::new(
                Box::new(source),
                DEFAULT_REFRESH_BEFORE,
                DEFAULT_FETCH_TIMEOUT,
                AUTHORIZATION,
            )),
            origins: Origins::default(),
            allow_http: false,
            rejects: Rejects::default(),
        })
    }

    /// Create a [`BearerAuthBuilder`] to set origins, plain-http policy and refresh timing.
    ///
    /// ```
    /// use tower_client_headers::BearerAuthLayer;
    ///
    /// let layer = BearerAuthLayer::builder()
    ///     .token("abc")
    ///     .origin("https://api.example.com")
    ///     .build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn builder() -> BearerAuthBuilder {
        BearerAuthBuilder::default()
    }

    /// Drop the cached token, for every clone of this layer and every service made from it:
    /// the next request that needs one fetches a new one. For a logout, or a token you know
    /// was revoked. A fetch already in flight is discarded too (what it brings was asked for
    /// before): requests waiting on it start a new one. On a fixed-token layer this does
    /// nothing.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use tower_client_headers::{BearerAuthLayer, BearerToken, BoxError, Token};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_headers::Error> {
    /// let fetches = Arc::new(AtomicUsize::new(0));
    /// let counter = Arc::clone(&fetches);
    /// let auth = BearerAuthLayer::from_source(move || {
    ///     let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
    ///     async move { Ok::<_, BoxError>(Token::new(BearerToken::new(format!("t{n}"))?)) }
    /// });
    /// auth.refresh().await?; // t1
    /// auth.invalidate(); // logged out: t1 is gone
    /// auth.refresh().await?; // t2
    /// assert_eq!(fetches.load(Ordering::SeqCst), 2);
    /// # Ok(()) }
    /// ```
    ///
    /// On a layer built with [`logged_out`](BearerAuthBuilder::logged_out) it clears the
    /// credential [`set_credential`](Self::set_credential) set: the logout. Requests then go
    /// without one until the next `set_credential`.
    pub fn invalidate(&self) {
        match &self.core.secret {
            Secret::Source(cache) => cache.invalidate(),
            Secret::Live(live) => {
                if live.swap(None).is_some() {
                    crate::trace::logged_out();
                }
            }
            Secret::Fixed(_) => {}
        }
    }

    /// Set the credential that every clone of this layer, and every service made from it,
    /// sends from now on: the login of a user session, or a key learnt at runtime.
    /// [`invalidate`](Self::invalidate) is the logout. The layer
    /// must have been built with [`logged_out`](BearerAuthBuilder::logged_out);
    /// [`invalidate`](Self::invalidate) clears it again. It gets every protection a fixed
    /// token has: origin scoping, plaintext refusal, a sensitive value redacted everywhere,
    /// and per-request override or suppression.
    ///
    /// A request sees the old credential or the new one, never both; requests already sent
    /// keep the one they carry. A `401` does not clear it (only a token source's token is
    /// dropped on a rejection): log in again, or call `invalidate`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] when the layer was not built with `logged_out` (its
    /// credential is fixed or comes from a source), or when `credential` goes in another header
    /// than the layer's ([`header_name`](BearerAuthBuilder::header_name), `Authorization`
    /// unless set). Nothing changes then.
    ///
    /// ```
    /// use tower_client_headers::{BearerAuthLayer, BearerToken};
    ///
    /// let auth = BearerAuthLayer::builder()
    ///     .logged_out()
    ///     .origin("https://api.example.com")
    ///     .build()?;
    /// // After the user logged in:
    /// auth.set_credential(BearerToken::new("session-token")?)?;
    /// // Logout:
    /// auth.invalidate();
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn set_credential(&self, credential: impl Into<Credential>) -> Result<(), Error> {
        let credential = credential.into();
        let Secret::Live(live) = &self.core.secret else {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "set_credential needs a layer built with .logged_out(); this layer's \
                 credential is fixed or comes from a token source",
            ));
        };
        if credential.header_name() != self.core.header {
            return Err(header_mismatch(&self.core.header, credential.header_name()));
        }
        live.store(Some(Arc::new(credential.header_value().clone())));
        Ok(())
    }

    /// Fetch a new token now, for every clone of this layer and every service made from it,
    /// replacing the cached one even if it is still valid; if a fetch is already in flight,
    /// wait for that one instead of starting another. It is not held back by the backoff
    /// after failures, but its own failure counts toward it. If the fetch fails, a
    /// still-valid cached token stays in use and the error is returned. On a fixed-token
    /// layer it is `Ok(())` at once.
    ///
    /// The future does not borrow the layer, so it can be spawned.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TokenFetch`] or [`ErrorKind::TokenFetchTimeout`] if the fetch failed,
    /// [`ErrorKind::InvalidConfig`] on a tokio runtime without timers.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_client_headers::{BearerAuthLayer, BearerToken, BoxError, Token};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_client_headers::Error> {
    /// let auth = BearerAuthLayer::from_source(|| async {
    ///     Ok::<_, BoxError>(Token::new(BearerToken::new("t")?).expires_in(Duration::from_secs(3600)))
    /// });
    /// // Warm the cache at start-up, so the first request does not wait for a fetch.
    /// auth.refresh().await?;
    /// # Ok(()) }
    /// ```
    pub fn refresh(&self) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let core = Arc::clone(&self.core);
        async move {
            match &core.secret {
                Secret::Source(cache) => cache.refresh().await,
                Secret::Fixed(_) | Secret::Live(_) => Ok(()),
            }
        }
    }

    fn with(core: AuthCore) -> Self {
        Self {
            core: Arc::new(core),
        }
    }
}

impl<S> Layer<S> for BearerAuthLayer {
    type Service = BearerAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth::new(inner, self.clone())
    }
}

impl fmt::Debug for BearerAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BearerAuthLayer").field(&self.core).finish()
    }
}

/// Builder for [`BearerAuthLayer`]. Give exactly one of [`token`](Self::token) (or
/// [`credential`](Self::credential)), [`logged_out`](Self::logged_out) and
/// [`source`](Self::source).
///
/// ```
/// use std::time::Duration;
/// use tower_client_headers::{BearerAuthLayer, BearerToken, BoxError, Token};
///
/// let layer = BearerAuthLayer::builder()
///     .source(|| async {
///         Ok::<_, BoxError>(Token::new(BearerToken::new("t")?).expires_in(Duration::from_secs(300)))
///     })
///     .origin("https://api.example.com")
///     .refresh_before(Duration::from_secs(30))
///     .fetch_timeout(Duration::from_secs(5))
///     .build()?;
/// # Ok::<(), tower_client_headers::Error>(())
/// ```
pub struct BearerAuthBuilder {
    fixed: Option<Result<Credential, Error>>,
    source: Option<Box<dyn TokenSource>>,
    logged_out: bool,
    header: Option<HeaderName>,
    origins: Origins,
    allow_http: bool,
    refresh_before: Duration,
    fetch_timeout: Duration,
    rejects: Rejects,
    error: Option<Error>,
}

impl Default for BearerAuthBuilder {
    fn default() -> Self {
        Self {
            fixed: None,
            source: None,
            logged_out: false,
            header: None,
            origins: Origins::default(),
            allow_http: false,
            refresh_before: DEFAULT_REFRESH_BEFORE,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            rejects: Rejects::default(),
            error: None,
        }
    }
}

impl BearerAuthBuilder {
    /// Send this fixed token.
    ///
    /// ```
    /// use tower_client_headers::BearerAuthLayer;
    ///
    /// let layer = BearerAuthLayer::builder().token("abc").build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.fixed = Some(BearerToken::new(token).map(Credential::bearer));
        self
    }

    /// Send this fixed credential: Basic credentials, an API key in the header it names, or a
    /// bearer token. It replaces an earlier [`token`](Self::token) or `credential`.
    ///
    /// ```
    /// use tower_client_headers::{BearerAuthLayer, Credential};
    ///
    /// let layer = BearerAuthLayer::builder()
    ///     .credential(Credential::basic("alice", "s3cret")?)
    ///     .origin("https://api.example.com")
    ///     .build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn credential(mut self, credential: impl Into<Credential>) -> Self {
        self.fixed = Some(Ok(credential.into()));
        self
    }

    /// Start with no credential, to set one at runtime with
    /// [`BearerAuthLayer::set_credential`] (after a login) and clear it with
    /// [`BearerAuthLayer::invalidate`] (a logout). Until then requests pass without one, and
    /// none is refused for plain `http://`.
    ///
    /// ```
    /// use tower_client_headers::BearerAuthLayer;
    ///
    /// let auth = BearerAuthLayer::builder()
    ///     .logged_out()
    ///     .origin("https://api.example.com")
    ///     .build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn logged_out(mut self) -> Self {
        self.logged_out = true;
        self
    }

    /// The header the layer's credentials go in, for a [`source`](Self::source) or
    /// [`logged_out`](Self::logged_out) layer whose credentials are not bearer tokens (default
    /// `Authorization`). A request that has its own value of this header keeps it, and
    /// [`HeaderOverrides`](crate::HeaderOverrides) `remove(..)` of it (or `without_auth()`)
    /// sends none. A fixed [`credential`](Self::credential) names its header itself.
    ///
    /// Errors at [`build`](Self::build): [`ErrorKind::InvalidHeaderName`] for a name that is
    /// invalid or cannot carry a credential (`host`, `content-length`, ...), and
    /// [`ErrorKind::InvalidConfig`] when a fixed credential goes in another header.
    ///
    /// ```
    /// use tower_client_headers::{BearerAuthLayer, BoxError, Credential, Token};
    ///
    /// let auth = BearerAuthLayer::builder()
    ///     .source(|| async {
    ///         Ok::<_, BoxError>(Token::from_credential(Credential::api_key("x-api-key", "k")?))
    ///     })
    ///     .header_name("x-api-key")
    ///     .build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn header_name<K>(mut self, name: K) -> Self
    where
        HeaderName: TryFrom<K>,
    {
        match credential_header_name(name) {
            Ok(name) => self.header = Some(name),
            Err(err) => {
                if self.error.is_none() {
                    self.error = Some(err);
                }
            }
        }
        self
    }

    /// Fetch tokens from `source`, cached and refreshed ahead of expiry.
    ///
    /// ```
    /// use tower_client_headers::{BearerAuthLayer, BearerToken, BoxError, Token};
    ///
    /// let layer = BearerAuthLayer::builder()
    ///     .source(|| async { Ok::<_, BoxError>(Token::new(BearerToken::new("t")?)) })
    ///     .build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn source(mut self, source: impl TokenSource) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Scope the token to an origin, `scheme://host[:port]`; repeat for more. Requests to any
    /// other origin pass untouched, per-request tokens included. With no origins, every request
    /// gets the token.
    ///
    /// ```
    /// use tower_client_headers::BearerAuthLayer;
    ///
    /// let layer = BearerAuthLayer::builder()
    ///     .token("abc")
    ///     .origin("https://api.example.com")
    ///     .build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn origin(mut self, origin: &str) -> Self {
        if self.error.is_none() {
            match Origin::parse(origin) {
                Ok(origin) => self.origins.push(origin),
                Err(err) => self.error = Some(err),
            }
        }
        self
    }

    /// Send tokens over plain `http://` to hosts that are not loopback (default `false`:
    /// such requests fail with [`ErrorKind::PlaintextRefused`] and nothing is sent).
    /// Loopback is always allowed: exactly `127.0.0.0/8`, `::1` (in any spelling, IPv4-mapped
    /// included) and `localhost` in any case; not `*.localhost` nor `localhost.`, which
    /// resolvers may send to DNS. The check reads the request URI: a client that sends plain
    /// `http://` through a proxy sends a loopback request's token to the proxy.
    ///
    /// ```
    /// use tower_client_headers::BearerAuthLayer;
    ///
    /// // A sidecar on a private network you trust.
    /// let layer = BearerAuthLayer::builder().token("abc").allow_http(true).build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Start refreshing a source's token this long before it expires (default 60 s), at most
    /// half its lifetime. Requests keep using the valid token meanwhile. There is no timer: the
    /// first request inside that window starts the refresh, in the background (with no
    /// traffic, nothing is fetched).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_client_headers::{BearerAuthLayer, BearerToken, BoxError, Token};
    ///
    /// let layer = BearerAuthLayer::builder()
    ///     .source(|| async { Ok::<_, BoxError>(Token::new(BearerToken::new("t")?)) })
    ///     .refresh_before(Duration::from_secs(120))
    ///     .build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn refresh_before(mut self, before: Duration) -> Self {
        self.refresh_before = before;
        self
    }

    /// Fail a token fetch that takes longer than this (default 30 s); no request waits longer
    /// than this for a token either, from when it began waiting, whatever runtime runs the
    /// fetch. Without a tokio runtime (`futures::executor::block_on`) the fetch runs inside
    /// the request and the deadline is kept by a helper thread. On a tokio runtime built
    /// without `enable_time()` that runtime's fetches fail with [`ErrorKind::InvalidConfig`]
    /// (other runtimes sharing the layer are unaffected).
    ///
    /// tokio cannot be asked whether a runtime has a timer: the first fetch on each runtime
    /// checks by catching the panic tokio raises without one. It goes through the panic hook
    /// (one message on stderr) and, **under `panic = "abort"`, aborts the process**: with
    /// `panic = "abort"`, build runtimes with `enable_time()` or `enable_all()`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_client_headers::{BearerAuthLayer, BearerToken, BoxError, Token};
    ///
    /// let layer = BearerAuthLayer::builder()
    ///     .source(|| async { Ok::<_, BoxError>(Token::new(BearerToken::new("t")?)) })
    ///     .fetch_timeout(Duration::from_secs(5))
    ///     .build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// Decide which responses reject the source's token, instead of the default test (status
    /// `401 Unauthorized`): `test` replaces it, it does not add to it.
    ///
    /// A response to a request that carried the source's cached token, from the origin the
    /// token was sent to, for which `test(status, headers)` is `true`, drops that token (if
    /// it is still the cached one, so a burst of rejections causes one fetch) and is returned
    /// with [`TokenRejected`](crate::TokenRejected) in its extensions, which `RetryUnauthorized`
    /// acts on. `test` sees the status and headers as they arrive, before the body; trailers
    /// are not seen. It runs once per such response, on the caller's task: keep it quick, and
    /// do not panic in it. Responses to per-request tokens, a fixed token or the request's own
    /// `Authorization` are never tested, and on a fixed-token layer it changes nothing.
    ///
    /// An API that answers `403 Forbidden` to a revoked token (keep `401`, which the test
    /// replaces). **Do not reject on every `403`**: most APIs also answer `403` to a valid
    /// token that lacks a permission, and treating those as rejections drops a good token
    /// and refetches (and, with `RetryUnauthorized`, resends) on every such request. Count a
    /// `403` only when it says the token is the problem, as RFC 6750 section 3.1 has servers
    /// do (`WWW-Authenticate: Bearer error="invalid_token"`, never `insufficient_scope`):
    ///
    /// ```
    /// use http::header::WWW_AUTHENTICATE;
    /// use http::{HeaderMap, StatusCode};
    /// use tower_client_headers::{BearerAuthLayer, BearerToken, BoxError, Token};
    ///
    /// fn token_rejected(status: StatusCode, headers: &HeaderMap) -> bool {
    ///     let invalid_token = || {
    ///         headers.get_all(WWW_AUTHENTICATE).iter().any(|challenge| {
    ///             challenge.to_str().is_ok_and(|c| c.contains("invalid_token"))
    ///         })
    ///     };
    ///     status == StatusCode::UNAUTHORIZED
    ///         || (status == StatusCode::FORBIDDEN && invalid_token())
    /// }
    ///
    /// let layer = BearerAuthLayer::builder()
    ///     .source(|| async { Ok::<_, BoxError>(Token::new(BearerToken::new("t")?)) })
    ///     .invalidate_when(token_rejected)
    ///     .build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    ///
    /// gRPC: a server that rejects the token answers HTTP `200` with a *trailers-only*
    /// response, `grpc-status: 16` (`UNAUTHENTICATED`) among its headers (tonic's
    /// `Status::unauthenticated` from an interceptor, for one). A status sent in real trailers,
    /// after response messages, is not seen here.
    ///
    /// ```
    /// use http::{HeaderMap, Request, Response, StatusCode};
    /// use tower::{service_fn, ServiceBuilder, ServiceExt};
    /// use tower_client_headers::{BearerAuthLayer, BearerToken, BoxError, Token, TokenRejected};
    ///
    /// fn unauthenticated(status: StatusCode, headers: &HeaderMap) -> bool {
    ///     status == StatusCode::UNAUTHORIZED
    ///         || headers.get("grpc-status").is_some_and(|code| code == "16")
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), BoxError> {
    /// let auth = BearerAuthLayer::builder()
    ///     .source(|| async { Ok::<_, BoxError>(Token::new(BearerToken::new("t")?)) })
    ///     .invalidate_when(unauthenticated)
    ///     .build()?;
    /// // What a gRPC server answers to a revoked token.
    /// let server = service_fn(|_: Request<()>| async {
    ///     let response = Response::builder()
    ///         .header("content-type", "application/grpc")
    ///         .header("grpc-status", "16")
    ///         .header("grpc-message", "token revoked")
    ///         .body(())?;
    ///     Ok::<_, http::Error>(response)
    /// });
    /// let client = ServiceBuilder::new().layer(auth).service(server);
    /// let request = Request::post("http://127.0.0.1:50051/grpc.health.v1.Health/Check").body(())?;
    /// let response = client.oneshot(request).await?;
    /// assert_eq!(response.status(), 200);
    /// assert!(response.extensions().get::<TokenRejected>().is_some());
    /// # Ok(()) }
    /// ```
    pub fn invalidate_when(
        mut self,
        test: impl Fn(StatusCode, &HeaderMap) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.rejects = Rejects::When(Arc::new(test));
        self
    }

    /// Build the layer.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidToken`] for a token that is not an RFC 6750 `b64token`,
    /// [`ErrorKind::InvalidOrigin`] for an origin that is not `scheme://host[:port]`,
    /// [`ErrorKind::InvalidHeaderName`] for a bad [`header_name`](Self::header_name), and
    /// [`ErrorKind::InvalidConfig`] unless exactly one of a token (or credential), a source
    /// and [`logged_out`](Self::logged_out) was given, or when a fixed credential's header is
    /// not the `header_name` given.
    ///
    /// ```
    /// use tower_client_headers::{BearerAuthLayer, ErrorKind};
    ///
    /// let err = BearerAuthLayer::builder().build().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    /// ```
    pub fn build(self) -> Result<BearerAuthLayer, Error> {
        if let Some(err) = self.error {
            return Err(err);
        }
        let modes = [self.fixed.is_some(), self.source.is_some(), self.logged_out];
        match modes.iter().filter(|m| **m).count() {
            0 => {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    "BearerAuthLayer needs a credential: call .token(..), .credential(..) or \
                     .source(..) on the builder, or .logged_out() to set one at runtime",
                ))
            }
            1 => {}
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    "BearerAuthLayer takes one of a token (or .credential(..)), a token source \
                     and .logged_out(): remove all but one of the .token(..), .source(..) or \
                     .logged_out() calls",
                ))
            }
        }
        let (header, secret) = match (self.fixed, self.source) {
            (Some(fixed), _) => {
                let credential = fixed?;
                if let Some(header) = &self.header {
                    if header != credential.header_name() {
                        return Err(header_mismatch(header, credential.header_name()));
                    }
                }
                let header = credential.header_name().clone();
                (header, Secret::Fixed(credential.header_value().clone()))
            }
            (None, Some(source)) => {
                let header = self.header.unwrap_or(AUTHORIZATION);
                let cache = TokenCache::new(
                    source,
                    self.refresh_before,
                    self.fetch_timeout,
                    header.clone(),
                );
                (header, Secret::Source(cache))
            }
            (None, None) => (
                self.header.unwrap_or(AUTHORIZATION),
                Secret::Live(ArcSwapOption::empty()),
            ),
        };
        Ok(BearerAuthLayer::with(AuthCore {
            header,
            secret,
            origins: self.origins,
            allow_http: self.allow_http,
            rejects: self.rejects,
        }))
    }
}

impl fmt::Debug for BearerAuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuthBuilder")
            .field("credential", &self.fixed.as_ref().map(|_| "<redacted>"))
            .field("source", &self.source.as_ref().map(|_| "TokenSource"))
            .field("logged_out", &self.logged_out)
            .field("header", &self.header)
            .field("origins", &self.origins)
            .field("allow_http", &self.allow_http)
            .field("refresh_before", &self.refresh_before)
            .field("fetch_timeout", &self.fetch_timeout)
            .field("invalidate_when", &self.rejects)
            .finish()
    }
}

/// A credential given for another header than the layer's.
fn header_mismatch(layer: &HeaderName, credential: &HeaderName) -> Error {
    Error::new(
        ErrorKind::InvalidConfig,
        format!(
            "this layer sends its credential in `{layer}`, but the credential given goes in \
             `{credential}`; build the layer with .header_name(\"{credential}\") or give a \
             credential for `{layer}`"
        ),
    )
}

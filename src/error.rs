//! The crate's error type.
//!
//! Every failure of this crate's own, at construction or per request, is an [`Error`]. Its
//! [`kind`](Error::kind) tells callers what went wrong without parsing messages; its `Display`
//! names the header, origin or problem and never contains a token or a sensitive value.
//!
//! ```
//! use tower_client_headers::{BearerToken, ErrorKind};
//!
//! let err = BearerToken::new("not a token").unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::InvalidToken);
//! assert!(!err.to_string().contains("not a token"));
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Alias for a type-erased error type, as used by tower: the error of
/// [`BearerAuth`](crate::BearerAuth) and what a [`TokenSource`](crate::TokenSource) returns.
///
/// ```
/// use tower_client_headers::BoxError;
///
/// let err: BoxError = "token endpoint unavailable".into();
/// assert_eq!(err.to_string(), "token endpoint unavailable");
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong, for callers that react differently to different failures.
///
/// New kinds may be added in minor releases.
///
/// ```
/// use tower_client_headers::{DefaultHeadersLayer, ErrorKind};
///
/// let err = DefaultHeadersLayer::builder()
///     .header("x-api-key", "line\nbreak")
///     .build()
///     .unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidHeaderValue);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A header name given to a builder is not a valid HTTP header name.
    InvalidHeaderName,
    /// A header value given to a builder is not a valid HTTP header value
    /// (for example it contains CR, LF or another control character).
    InvalidHeaderValue,
    /// An origin is not of the form `scheme://host[:port]`.
    InvalidOrigin,
    /// A bearer token is not an RFC 6750 `b64token`.
    InvalidToken,
    /// Basic credentials or an API key cannot be sent as given (a `:` in a Basic user name, a
    /// control character, an empty key). See [`Credential`](crate::Credential).
    InvalidCredential,
    /// A builder was configured inconsistently (for example neither a token nor a source).
    InvalidConfig,
    /// A request would have carried a credential over plain `http://` to a host that is not
    /// loopback; nothing was sent.
    PlaintextRefused,
    /// No token could be had from the token source. Either a fetch failed (the source
    /// returned an error or panicked, or returned a token that had already expired, or a
    /// credential for another header than the layer's, which is a configuration mistake): the
    /// source's error is this error's [`source`](std::error::Error::source); or a recent
    /// failure is being backed off and no fetch was made: this error's `source()` is that
    /// last failure (another `Error` of this kind, whose own `source()` is the source's
    /// error). Walk the whole `source()` chain to print the cause. The request was not sent.
    TokenFetch,
    /// The token source did not answer within the fetch timeout. The request was not sent.
    TokenFetchTimeout,
    /// A header map would exceed the capacity of `http::HeaderMap` (at most 24,576 distinct
    /// names): a builder was given more names than that, or a request was too full to take the
    /// `Authorization` header (nothing was sent).
    TooManyHeaders,
}

/// Errors of this crate: invalid configuration, refused requests and failed token fetches.
///
/// `Error` is cheap to clone (one fetch failure is handed to every request that waited for it).
/// Its `Display` output names the problem, says what to do about it, and never contains a
/// secret.
///
/// # Finding it
///
/// By the time a failure reaches you it is usually wrapped: in the [`BoxError`] of
/// [`BearerAuth`](crate::BearerAuth), in `reqwest_middleware::Error`, in your own error type.
/// [`Error::find`] looks through all of these in one call:
///
/// ```
/// use tower_client_headers::{BoxError, Error, ErrorKind};
///
/// fn is_plaintext_refusal(err: &BoxError) -> bool {
///     Error::find(&**err).is_some_and(|e| e.kind() == ErrorKind::PlaintextRefused)
/// }
/// # let _ = is_plaintext_refusal;
/// ```
///
/// # Printing it
///
/// A failed token fetch keeps the token source's own error as its
/// [`source()`](std::error::Error::source), and `Display` (`{err}`) shows one level only, as is
/// the convention for Rust errors. Print the whole chain to see why the fetch failed:
///
/// ```
/// use http::{Request, Response};
/// use std::convert::Infallible;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
/// use tower_client_headers::{BearerAuthLayer, Error, ErrorKind, Token};
///
/// /// `err: cause: cause of the cause ...`
/// fn report(err: &(dyn std::error::Error + 'static)) -> String {
///     let chain: Vec<String> = std::iter::successors(Some(err), |e| e.source())
///         .map(|e| e.to_string())
///         .collect();
///     chain.join(": ")
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let auth = BearerAuthLayer::from_source(|| async { Err::<Token, _>("token endpoint answered 503") });
/// let client = ServiceBuilder::new().layer(auth).service(service_fn(|_: Request<()>| async {
///     Ok::<_, Infallible>(Response::new(()))
/// }));
///
/// let err = client.oneshot(Request::get("https://api.example.com/").body(())?).await.unwrap_err();
/// assert_eq!(Error::find(&*err).map(Error::kind), Some(ErrorKind::TokenFetch));
/// assert!(report(&*err).ends_with(": token endpoint answered 503"));
/// # Ok(()) }
/// ```
///
/// The causes are your token source's errors: what they print is up to it. (`Error`'s own
/// `Debug` leaves the source out, since an HTTP client's error may quote the token endpoint's
/// URL, query string included.)
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: Cow<'static, str>,
    source: Option<BoxError>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                kind,
                message: message.into(),
                source: None,
            }),
        }
    }

    pub(crate) fn with_source(
        kind: ErrorKind,
        message: impl Into<Cow<'static, str>>,
        source: BoxError,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                kind,
                message: message.into(),
                source: Some(source),
            }),
        }
    }

    // The token-fetch errors. They reach requests that waited for a fetch and the `tracing`
    // events of failed background refreshes alike, so they say what failed and what to do,
    // not what happened to a request.

    /// A failed token fetch: the token source returned `source`.
    pub(crate) fn token_fetch_failed(source: BoxError) -> Self {
        Self::with_source(
            ErrorKind::TokenFetch,
            "token fetch failed: the token source returned an error (see source()); check what \
             the source reads from (its token endpoint and credentials, or its file)",
            source,
        )
    }

    /// A token source that panicked.
    pub(crate) fn token_source_panicked() -> Self {
        Self::with_source(
            ErrorKind::TokenFetch,
            "token fetch failed: the token source panicked; make your TokenSource return an \
             error instead",
            BoxError::from("token source panicked"),
        )
    }

    /// A token source that returned a token whose expiry had already passed.
    /// The token source returned a credential for another header than the layer's.
    pub(crate) fn credential_for_other_header(
        layer: &http::HeaderName,
        fetched: &http::HeaderName,
    ) -> Self {
        Self::new(
            ErrorKind::TokenFetch,
            format!(
                "the token source returned a credential for `{fetched}`, but this layer sends \
                 its credential in `{layer}`: build the layer with .header_name(\"{fetched}\"), \
                 or have the source return credentials for `{layer}`; nothing was sent"
            ),
        )
    }

    pub(crate) fn token_expired_on_arrival() -> Self {
        Self::new(
            ErrorKind::TokenFetch,
            "token fetch failed: the token source returned a token that had already expired, \
             so it was not used; check the lifetime the source gives it (expires_in is \
             measured from when the Token is built)",
        )
    }

    /// Every token a waiting request was handed had expired before it could be sent.
    pub(crate) fn token_expired_before_use() -> Self {
        Self::new(
            ErrorKind::TokenFetch,
            "token fetch failed: every token fetched had expired before it could be used; \
             check the lifetime the token source gives (it is too short to be used)",
        )
    }

    /// Fetches kept being dropped unfinished under a waiting request.
    pub(crate) fn token_fetch_cancelled() -> Self {
        Self::new(
            ErrorKind::TokenFetch,
            "token fetch was cancelled repeatedly before it finished (is the runtime shutting \
             down?); keep the tokio runtime that runs token fetches alive while requests wait \
             for a token",
        )
    }

    /// Inside the backoff after `failures` failed fetches in a row: no fetch for `delay`.
    pub(crate) fn token_fetch_backing_off(failures: u32, delay: Duration, last: &Error) -> Self {
        Self::with_source(
            ErrorKind::TokenFetch,
            format!(
                "token fetch failed ({} in a row; the last failure is this error's \
                 source()); no new fetch for up to {delay:.1?} after it (backoff); \
                 BearerAuthLayer::refresh() fetches at once regardless",
                match failures {
                    1 => "1 failure".to_owned(),
                    n => format!("{n} failures"),
                }
            ),
            BoxError::from(last.clone()),
        )
    }

    /// A fetch that took longer than `timeout`.
    pub(crate) fn token_fetch_timed_out(timeout: Duration) -> Self {
        Self::new(
            ErrorKind::TokenFetchTimeout,
            format!(
                "token fetch timed out after {timeout:?}; check that the token endpoint is \
                 reachable, or raise fetch_timeout(..) on the BearerAuthLayer builder"
            ),
        )
    }

    /// A fetch on a tokio runtime that has no timer, so the fetch timeout cannot be kept.
    pub(crate) fn runtime_without_timer() -> Self {
        Self::new(
            ErrorKind::InvalidConfig,
            "the token fetch timeout needs tokio's timer, and this runtime has none: build it \
             with enable_time() or enable_all()",
        )
    }

    /// What went wrong.
    ///
    /// ```
    /// use tower_client_headers::{BearerAuthLayer, ErrorKind};
    ///
    /// let err = BearerAuthLayer::builder().build().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// Find this crate's [`Error`] in `err` or anywhere in its chain of
    /// [`source()`](std::error::Error::source)s.
    ///
    /// This sees through the wrappers our errors arrive in: the [`BoxError`] of
    /// [`BearerAuth`](crate::BearerAuth) (pass `&*err`), `reqwest_middleware::Error` (pass
    /// `&err`), `std::io::Error`, and your own error types, however deeply nested. Wrappers such
    /// as `io::Error::other(e)` and reqwest-middleware's `Error::Middleware` forward `source()`
    /// *past* the error they wrap, so walking `source()` alone would step over ours; `find`
    /// looks inside them.
    ///
    /// ```
    /// use http::{Request, Response};
    /// use std::convert::Infallible;
    /// use tower::{service_fn, ServiceExt};
    /// use tower_client_headers::{BearerAuth, BearerAuthLayer, Error, ErrorKind};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let inner = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    /// let client = BearerAuth::new(inner, BearerAuthLayer::new("abc")?);
    ///
    /// // `BearerAuth`'s error is a `BoxError`.
    /// let err = client.oneshot(Request::get("http://api.example.com/").body(())?).await.unwrap_err();
    /// let ours = Error::find(&*err).expect("a refusal of ours");
    /// assert_eq!(ours.kind(), ErrorKind::PlaintextRefused);
    ///
    /// // The same error inside an `io::Error`, as a body or transport might carry it.
    /// let wrapped = std::io::Error::other(err);
    /// assert_eq!(Error::find(&wrapped).map(Error::kind), Some(ErrorKind::PlaintextRefused));
    ///
    /// // Errors that are not ours.
    /// assert!(Error::find(&std::fmt::Error).is_none());
    /// # Ok(()) }
    /// ```
    ///
    /// With the `reqwest-middleware` feature, `find` also looks inside
    /// `reqwest_middleware::Error::Middleware`, where the middleware puts our failures:
    ///
    /// ```
    /// # #[cfg(feature = "reqwest-middleware")] {
    /// use tower_client_headers::{Error, ErrorKind};
    ///
    /// /// Worth trying again later: the token endpoint failed, not the request.
    /// fn token_trouble(err: &reqwest_middleware::Error) -> bool {
    ///     matches!(
    ///         Error::find(err).map(Error::kind),
    ///         Some(ErrorKind::TokenFetch | ErrorKind::TokenFetchTimeout)
    ///     )
    /// }
    /// # let refused = tower_client_headers::BearerAuthLayer::builder().build().unwrap_err();
    /// # let err = reqwest_middleware::Error::middleware(refused);
    /// # assert_eq!(Error::find(&err).map(Error::kind), Some(ErrorKind::InvalidConfig));
    /// # assert!(!token_trouble(&err));
    /// # }
    /// ```
    pub fn find<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Error> {
        std::iter::successors(Some(err), |err| err.source()).find_map(Self::at)
    }

    /// `err` if it is ours, or ours inside a wrapper that forwards `source()` past it.
    fn at<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Error> {
        if let Some(ours) = err.downcast_ref::<Error>() {
            return Some(ours);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            return Self::find(inner);
        }
        #[cfg(feature = "reqwest-middleware")]
        if let Some(reqwest_middleware::Error::Middleware(inner)) = err.downcast_ref() {
            // `inner` is an `anyhow::Error`, which derefs to the error it holds.
            return Self::find(&**inner);
        }
        None
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The message is written to be safe to print. The source is the token source's own
        // error, which may quote a token endpoint's URL and its query (a client secret, say):
        // it is reachable through `source()`, not printed here.
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind)
            .field("message", &self.inner.message);
        if self.inner.source.is_some() {
            d.field("source", &format_args!("<see Error::source>"));
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_static_and_clone() {
        fn assert_bounds<T: std::error::Error + Send + Sync + Clone + 'static>() {}
        assert_bounds::<Error>();
    }

    #[test]
    fn source_is_exposed() {
        let cause: BoxError = "upstream said no".into();
        let err = Error::with_source(ErrorKind::TokenFetch, "token fetch failed", cause);
        let source = std::error::Error::source(&err).map(|s| s.to_string());
        assert_eq!(source.as_deref(), Some("upstream said no"));
        assert_eq!(err.to_string(), "token fetch failed");
        assert!(std::error::Error::source(&Error::new(ErrorKind::InvalidOrigin, "x")).is_none());
    }

    #[test]
    fn debug_does_not_print_the_source() {
        let cause: BoxError = "GET https://idp.example/token?client_secret=hunter2: 500".into();
        let err = Error::with_source(ErrorKind::TokenFetch, "token fetch failed", cause);
        let dbg = format!("{err:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(
            dbg.contains("TokenFetch") && dbg.contains("source"),
            "{dbg}"
        );
    }

    /// A caller's error type that keeps ours as its source, as `thiserror`'s `#[source]` does.
    #[derive(Debug)]
    struct AppError(Box<dyn std::error::Error + Send + Sync>);

    impl fmt::Display for AppError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("calling the API failed")
        }
    }

    impl std::error::Error for AppError {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&*self.0)
        }
    }

    fn fetch_failure() -> Error {
        Error::token_fetch_failed("503 from the token endpoint".into())
    }

    #[test]
    fn find_sees_ours_directly_boxed_and_as_a_source() {
        let ours = fetch_failure();
        assert_eq!(
            Error::find(&ours).map(Error::kind),
            Some(ErrorKind::TokenFetch)
        );

        let boxed: BoxError = Box::new(fetch_failure());
        assert_eq!(
            Error::find(&*boxed).map(Error::kind),
            Some(ErrorKind::TokenFetch)
        );

        let app = AppError(Box::new(AppError(Box::new(fetch_failure()))));
        let found = Error::find(&app).expect("two sources down");
        assert_eq!(found.kind(), ErrorKind::TokenFetch);
        // The one found is ours, not its cause (which the chain walk also passes).
        assert!(std::error::Error::source(found).is_some());
    }

    #[test]
    fn find_looks_inside_io_errors_which_forward_source_past_ours() {
        let io = std::io::Error::other(fetch_failure());
        // What makes looking inside necessary: `io::Error::source` skips the error it wraps.
        let skipped = std::error::Error::source(&io).map(|e| e.is::<Error>());
        assert_eq!(skipped, Some(false));
        assert_eq!(
            Error::find(&io).map(Error::kind),
            Some(ErrorKind::TokenFetch)
        );

        let app = AppError(Box::new(std::io::Error::other(fetch_failure())));
        assert_eq!(
            Error::find(&app).map(Error::kind),
            Some(ErrorKind::TokenFetch)
        );
    }

    #[test]
    fn find_is_none_for_errors_that_are_not_ours() {
        assert!(Error::find(&std::fmt::Error).is_none());
        let io = std::io::Error::other("plain io error");
        assert!(Error::find(&io).is_none());
        assert!(Error::find(&std::io::Error::from(std::io::ErrorKind::NotFound)).is_none());
        let app = AppError("a string error".into());
        assert!(Error::find(&app).is_none());
    }

    #[cfg(feature = "reqwest-middleware")]
    #[test]
    fn find_looks_inside_reqwest_middleware_errors() {
        let err = reqwest_middleware::Error::middleware(fetch_failure());
        // `Error::Middleware` is transparent: its `source()` is already our error's source.
        let skipped = std::error::Error::source(&err).map(|e| e.is::<Error>());
        assert_eq!(skipped, Some(false));
        assert_eq!(
            Error::find(&err).map(Error::kind),
            Some(ErrorKind::TokenFetch)
        );

        let app = AppError(Box::new(reqwest_middleware::Error::middleware(
            fetch_failure(),
        )));
        assert_eq!(
            Error::find(&app).map(Error::kind),
            Some(ErrorKind::TokenFetch)
        );
    }

    #[test]
    fn fetch_errors_say_what_to_do() {
        let last = fetch_failure();
        let cases = [
            (
                fetch_failure(),
                ErrorKind::TokenFetch,
                "check what the source reads from",
            ),
            (
                Error::token_source_panicked(),
                ErrorKind::TokenFetch,
                "return an error instead",
            ),
            (
                Error::token_expired_on_arrival(),
                ErrorKind::TokenFetch,
                "check the lifetime",
            ),
            (
                Error::token_fetch_cancelled(),
                ErrorKind::TokenFetch,
                "keep the tokio runtime",
            ),
            (
                Error::token_fetch_backing_off(3, Duration::from_millis(1500), &last),
                ErrorKind::TokenFetch,
                "refresh() fetches at once regardless",
            ),
            (
                Error::token_fetch_timed_out(Duration::from_secs(30)),
                ErrorKind::TokenFetchTimeout,
                "raise fetch_timeout",
            ),
            (
                Error::runtime_without_timer(),
                ErrorKind::InvalidConfig,
                "enable_time()",
            ),
        ];
        for (err, kind, advice) in cases {
            assert_eq!(err.kind(), kind, "{err}");
            assert!(err.to_string().contains(advice), "{err}");
        }
        assert!(fetch_failure().to_string().contains("source()"));
        let backoff = Error::token_fetch_backing_off(3, Duration::from_millis(1500), &last);
        assert!(
            backoff.to_string().contains("3 failures in a row"),
            "{backoff}"
        );
        assert!(backoff.to_string().contains("1.5s"), "{backoff}");
        // The last failure, and its own cause, are the chain under the backoff error.
        let chain: Vec<String> =
            std::iter::successors(Some(&backoff as &(dyn std::error::Error + 'static)), |e| {
                e.source()
            })
            .map(ToString::to_string)
            .collect();
        assert_eq!(chain.len(), 3, "{chain:?}");
        assert_eq!(chain[2], "503 from the token endpoint");
        assert!(Error::token_fetch_timed_out(Duration::from_secs(30))
            .to_string()
            .contains("30s"));
    }

    /// One real error of each kind, made through the public API, and the advice its message
    /// must carry. The `match` has no wildcard: a new kind does not compile until it has advice.
    #[tokio::test(start_paused = true)]
    async fn every_kind_says_what_to_do() {
        use std::collections::HashSet;
        use std::time::Duration;

        use http::{Request, Response};
        use tower::{service_fn, ServiceExt};
        use tower_layer::Layer;

        use crate::{BearerAuthLayer, BearerToken, DefaultHeadersLayer, Token};

        let inner = service_fn(|_: Request<()>| async {
            Ok::<_, std::convert::Infallible>(Response::new(()))
        });
        let call = |layer: BearerAuthLayer, uri: &'static str| {
            let svc = layer.layer(inner);
            async move {
                let request = Request::get(uri).body(()).expect("request");
                let err = svc.oneshot(request).await.expect_err("fails");
                Error::find(&*err).expect("ours").clone()
            }
        };
        let pending_source = || std::future::pending::<Result<Token, BoxError>>();
        let failing_source = || async { Err::<Token, BoxError>("503 Service Unavailable".into()) };

        let errors = [
            DefaultHeadersLayer::builder()
                .header("x-api-key", "line\nbreak")
                .build()
                .expect_err("value"),
            DefaultHeadersLayer::builder()
                .header("k-123", "x")
                .header("not a name", "x")
                .build()
                .expect_err("name"),
            DefaultHeadersLayer::builder()
                .origin("https://api.example.com/v1")
                .build()
                .expect_err("origin"),
            BearerToken::new("Bearer abc").expect_err("token"),
            BearerToken::new("abc\n").expect_err("token"),
            BearerAuthLayer::builder().build().expect_err("config"),
            BearerAuthLayer::builder()
                .token("abc")
                .source(failing_source)
                .build()
                .expect_err("config"),
            call(
                BearerAuthLayer::new("abc").expect("valid"),
                "http://api.example.com/",
            )
            .await,
            call(
                BearerAuthLayer::from_source(failing_source),
                "https://api.example.com/",
            )
            .await,
            call(
                BearerAuthLayer::builder()
                    .source(pending_source)
                    .fetch_timeout(Duration::from_secs(2))
                    .build()
                    .expect("valid"),
                "https://api.example.com/",
            )
            .await,
            crate::Credential::basic("al:ice", "x").expect_err("credential"),
        ];
        let mut kinds = HashSet::new();
        for err in &errors {
            let advice: &[&str] = match err.kind() {
                ErrorKind::InvalidHeaderName => &["the name comes before the value"],
                ErrorKind::InvalidHeaderValue => &["remove them, or encode the value"],
                ErrorKind::InvalidOrigin => &["write an origin as scheme://host[:port]"],
                ErrorKind::InvalidToken => &["RFC 6750 b64token", "letters, digits"],
                ErrorKind::InvalidCredential => &["RFC 7617 forbids"],
                ErrorKind::InvalidConfig => &[".token(..)", ".source(..)"],
                ErrorKind::PlaintextRefused => &["use https", "allow_http(true)"],
                ErrorKind::TokenFetch => &["source()", "check what"],
                ErrorKind::TokenFetchTimeout => &["after 2s", "fetch_timeout"],
                ErrorKind::TooManyHeaders => &["fewer"],
            };
            let message = err.to_string();
            for advice in advice {
                assert!(message.contains(advice), "{:?}: {message}", err.kind());
            }
            kinds.insert(err.kind());
        }
        let too_many = (0..24_577)
            .fold(DefaultHeadersLayer::builder(), |b, i| {
                b.header(format!("x-{i}").as_str(), "v")
            })
            .build()
            .expect_err("too many names");
        assert!(too_many.to_string().contains("fewer"), "{too_many}");
        kinds.insert(too_many.kind());
        assert_eq!(kinds.len(), 10, "one of each kind: {kinds:?}");
        // The specific hints for the two commonest token mistakes.
        assert!(errors[3].to_string().contains("without a `Bearer ` prefix"));
        assert!(errors[4].to_string().contains("trim the line break"));
    }
}

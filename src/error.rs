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
    /// A builder was configured inconsistently (for example neither a token nor a source).
    InvalidConfig,
    /// A request would have carried a credential over plain `http://` to a host that is not
    /// loopback; nothing was sent.
    PlaintextRefused,
    /// No token could be had from the token source. Either a fetch failed (the source
    /// returned an error or panicked, or returned a token that had already expired): the
    /// source's error is this error's [`source`](std::error::Error::source); or a recent
    /// failure is being backed off and no fetch was made: this error's `source()` is that
    /// last failure (another `Error` of this kind, whose own `source()` is the source's
    /// error). Walk the whole `source()` chain to print the cause.
    TokenFetch,
    /// The token source did not answer within the fetch timeout.
    TokenFetchTimeout,
    /// A header map would exceed the capacity of `http::HeaderMap` (at most 24,576 distinct
    /// names): a builder was given more names than that, or a request was too full to take the
    /// `Authorization` header (nothing was sent).
    TooManyHeaders,
}

/// Errors of this crate: invalid configuration, refused requests and failed token fetches.
///
/// `Error` is cheap to clone (one fetch failure is handed to every request that waited for it).
/// Its `Display` output names the problem and never a secret.
///
/// Inside a service error (a [`BoxError`]), find it with `downcast_ref`:
///
/// ```
/// use tower_client_headers::{BoxError, Error, ErrorKind};
///
/// fn is_plaintext_refusal(err: &BoxError) -> bool {
///     err.downcast_ref::<Error>()
///         .is_some_and(|e| e.kind() == ErrorKind::PlaintextRefused)
/// }
/// # let _ = is_plaintext_refusal;
/// ```
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
}

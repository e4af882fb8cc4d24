//! Bearer tokens: [`BearerToken`], [`Token`] and the [`TokenSource`] trait.
//!
//! A [`TokenSource`] is anything that can fetch a fresh token, such as an OAuth2
//! client-credentials call. Any async closure returning `Result<Token, E>` is one:
//!
//! ```
//! use std::time::Duration;
//! use tower_client_headers::{BearerAuthLayer, BearerToken, BoxError, Token};
//!
//! let layer = BearerAuthLayer::from_source(|| async {
//!     // Call your token endpoint here.
//!     let token = BearerToken::new("fresh-token")?;
//!     Ok::<_, BoxError>(Token::new(token).expires_in(Duration::from_secs(3600)))
//! });
//! # let _ = layer;
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use http::HeaderValue;
use tokio::time::Instant;

use crate::error::{BoxError, Error, ErrorKind};

/// A validated bearer token, ready to be sent as `Authorization: Bearer <token>`.
///
/// The token must be an RFC 6750 `b64token`:
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
/// `Debug` never shows it.
///
/// ```
/// use tower_client_headers::BearerToken;
///
/// let token = BearerToken::new("eyJhbGciOi.eyJzdWIi.SflKxw")?;
/// assert_eq!(format!("{token:?}"), "BearerToken(<redacted>)");
/// assert!(BearerToken::new("two words").is_err());
/// # Ok::<(), tower_client_headers::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken {
    /// `Bearer <token>`, marked sensitive, built once.
    header: HeaderValue,
}

impl BearerToken {
    /// Create a new [`BearerToken`], checking that it is an RFC 6750 `b64token`.
    ///
    /// # Errors
    ///
    /// An [`ErrorKind::InvalidToken`] error if the token is empty or has any character outside
    /// the `b64token` alphabet (spaces, CR/LF, quotes, non-ASCII, `=` other than at the end).
    /// The message never contains the token.
    ///
    /// ```
    /// use tower_client_headers::{BearerToken, ErrorKind};
    ///
    /// assert!(BearerToken::new("abc.DEF-123_~+/==").is_ok());
    /// let err = BearerToken::new("abc\r\nX-Injected: 1").unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidToken);
    /// ```
    pub fn new(token: impl Into<String>) -> Result<Self, Error> {
        let token = token.into();
        if let Some(problem) = token68_problem(&token) {
            return Err(Error::new(
                ErrorKind::InvalidToken,
                format!("invalid bearer token: {problem}"),
            ));
        }
        let mut value = String::with_capacity("Bearer ".len() + token.len());
        value.push_str("Bearer ");
        value.push_str(&token);
        let mut header = HeaderValue::try_from(value).map_err(|_| {
            Error::new(
                ErrorKind::InvalidToken,
                "invalid bearer token: not a header value",
            )
        })?;
        header.set_sensitive(true);
        // Cloning a value made from a `String` allocates once to share the buffer; do it here so
        // that per-request clones only bump a reference count.
        drop(header.clone());
        Ok(Self { header })
    }

    /// Read the token from an `Authorization: Bearer <token>` value, as an incoming request
    /// carries it: to forward a caller's token with
    /// [`HeaderOverrides::bearer_token`](crate::HeaderOverrides::bearer_token). The scheme is
    /// matched case-insensitively (RFC 7235).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidToken`] if the value is not a `Bearer` credential or its token is
    /// not an RFC 6750 `b64token`. The message never contains the value.
    ///
    /// ```
    /// use http::HeaderValue;
    /// use tower_client_headers::BearerToken;
    ///
    /// let incoming = HeaderValue::from_static("bearer eyJhbGciOi.eyJzdWIi.SflKxw");
    /// let token = BearerToken::from_authorization(&incoming)?;
    /// assert!(BearerToken::from_authorization(&HeaderValue::from_static("Basic dXNlcg==")).is_err());
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn from_authorization(value: &HeaderValue) -> Result<Self, Error> {
        let not_bearer = || {
            Error::new(
                ErrorKind::InvalidToken,
                "not an `Authorization: Bearer` credential",
            )
        };
        let value = value.to_str().map_err(|_| not_bearer())?;
        let (scheme, token) = value.split_once(' ').ok_or_else(not_bearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(not_bearer());
        }
        Self::new(token.trim_start_matches(' '))
    }

    /// The `Authorization` header value, `Bearer <token>`, marked sensitive.
    pub(crate) fn header_value(&self) -> &HeaderValue {
        &self.header
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// Why `s` is not an RFC 6750 `b64token`, or `None` if it is one. The reason never quotes `s`.
pub(crate) fn token68_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        return Some("it is empty");
    }
    let body = s.trim_end_matches('=');
    if body.is_empty() {
        return Some("it has no characters before its trailing `=` padding");
    }
    for b in body.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => {}
            b'-' | b'.' | b'_' | b'~' | b'+' | b'/' => {}
            b'=' => return Some("`=` may only appear at the end"),
            b' ' | b'\t' => return Some("it contains whitespace"),
            b'\r' | b'\n' => return Some("it contains CR or LF"),
            0..=31 | 127 => return Some("it contains a control character"),
            128..=255 => return Some("it contains a non-ASCII character"),
            _ => return Some("it contains a character outside the RFC 6750 token alphabet"),
        }
    }
    None
}

/// A token from a [`TokenSource`], with when it expires.
///
/// Expiry is measured on tokio's clock ([`tokio::time::Instant`]), so tests can drive it with
/// `tokio::time::pause()` and `advance()`.
///
/// ```
/// use std::time::Duration;
/// use tower_client_headers::{BearerToken, Token};
///
/// let token = Token::new(BearerToken::new("abc")?).expires_in(Duration::from_secs(300));
/// assert!(token.expires_at().is_some());
/// # Ok::<(), tower_client_headers::Error>(())
/// ```
#[derive(Clone)]
pub struct Token {
    pub(crate) token: BearerToken,
    pub(crate) expires_at: Option<Instant>,
    /// A soft refresh time: fetch a new token after it, but keep this one until `expires_at`.
    pub(crate) refresh_at: Option<Instant>,
}

impl Token {
    /// Create a new [`Token`] that never expires (until a `401` invalidates it).
    ///
    /// ```
    /// use tower_client_headers::{BearerToken, Token};
    ///
    /// let token = Token::new(BearerToken::new("abc")?);
    /// assert!(token.expires_at().is_none());
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn new(token: BearerToken) -> Self {
        Self {
            token,
            expires_at: None,
            refresh_at: None,
        }
    }

    /// Make the token expire `lifetime` from now, on tokio's clock. A lifetime too large to
    /// represent means the token never expires.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_client_headers::{BearerToken, Token};
    ///
    /// // As an OAuth2 token response's `expires_in` gives it.
    /// let token = Token::new(BearerToken::new("abc")?).expires_in(Duration::from_secs(3599));
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn expires_in(self, lifetime: Duration) -> Self {
        self.expires_at_instant(Instant::now().checked_add(lifetime))
    }

    /// Make the token expire at `instant`, on tokio's clock.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    /// use tower_client_headers::{BearerToken, Token};
    ///
    /// let at = Instant::now() + Duration::from_secs(60);
    /// let token = Token::new(BearerToken::new("abc")?).valid_until(at);
    /// assert_eq!(token.expires_at(), Some(at));
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn valid_until(self, instant: Instant) -> Self {
        self.expires_at_instant(Some(instant))
    }

    fn expires_at_instant(mut self, instant: Option<Instant>) -> Self {
        self.expires_at = instant;
        self
    }

    /// When the token expires, if it does.
    ///
    /// ```
    /// use tower_client_headers::{BearerToken, Token};
    ///
    /// assert_eq!(Token::new(BearerToken::new("abc")?).expires_at(), None);
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn expires_at(&self) -> Option<Instant> {
        self.expires_at
    }

    /// Make the token expire `lifetime` from now if there is one, and never if it is `None`:
    /// for a lifetime that may be missing, such as an OAuth2 token response's optional
    /// `expires_in`. `lifetime(Some(d))` is [`expires_in(d)`](Self::expires_in);
    /// `lifetime(None)` clears an expiry set before.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_client_headers::{BearerToken, Token};
    ///
    /// // `expires_in` as a token endpoint may or may not send it.
    /// let expires_in: Option<u64> = None;
    /// let token = Token::new(BearerToken::new("abc")?)
    ///     .lifetime(expires_in.map(Duration::from_secs));
    /// assert_eq!(token.expires_at(), None);
    ///
    /// let token = Token::new(BearerToken::new("abc")?).lifetime(Some(Duration::from_secs(60)));
    /// assert!(token.expires_at().is_some());
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn lifetime(self, lifetime: Option<Duration>) -> Self {
        match lifetime {
            Some(lifetime) => self.expires_in(lifetime),
            None => self.expires_at_instant(None),
        }
    }

    /// Ask for a new token `after` from now (on tokio's clock), but keep using this one until
    /// it expires, if it ever does: a *soft* refresh time.
    ///
    /// For a source that can say when a newer token may exist but not when this one stops
    /// working (a token file re-read every minute), or that should keep serving its last good
    /// token while its origin is down. After `after`, requests go on using this token at once
    /// while one refresh runs in the background; if it fails, this token stays in use and a
    /// later request tries again after a short delay (1 to 5 s), never more than one refresh
    /// at a time. A token with an expiry is refreshed at whichever comes first: `after`, or
    /// the usual window before expiry (see
    /// [`refresh_before`](crate::BearerAuthBuilder::refresh_before)). A refresh time less than
    /// a second after the token arrives counts as one second, so that a source is never
    /// called on every request.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_client_headers::{BearerToken, Token};
    ///
    /// // Re-read a token file every minute; the token itself does not expire.
    /// let token = Token::new(BearerToken::new("abc")?).refresh_in(Duration::from_secs(60));
    /// assert!(token.refresh_at().is_some());
    /// assert_eq!(token.expires_at(), None);
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn refresh_in(mut self, after: Duration) -> Self {
        self.refresh_at = Instant::now().checked_add(after);
        self
    }

    /// When the token asked to be refreshed ([`refresh_in`](Self::refresh_in)), if it did.
    ///
    /// ```
    /// use tower_client_headers::{BearerToken, Token};
    ///
    /// assert_eq!(Token::new(BearerToken::new("abc")?).refresh_at(), None);
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn refresh_at(&self) -> Option<Instant> {
        self.refresh_at
    }
}

impl From<BearerToken> for Token {
    fn from(token: BearerToken) -> Self {
        Self::new(token)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("token", &self.token)
            .field("expires_at", &self.expires_at)
            .field("refresh_at", &self.refresh_at)
            .finish()
    }
}

/// Something that fetches bearer tokens, for [`BearerAuthLayer::from_source`].
///
/// [`BearerAuthLayer`](crate::BearerAuthLayer) calls `fetch` when it has no valid token, one
/// fetch at a time however many requests wait, and ahead of expiry in the background.
///
/// Implemented for every `Fn() -> impl Future<Output = Result<Token, E>>` closure; implement it
/// by hand for a type that holds its own client and credentials:
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::time::Duration;
/// use tower_client_headers::{BearerToken, BoxError, Token, TokenSource};
///
/// struct ClientCredentials { client_id: String }
///
/// impl TokenSource for ClientCredentials {
///     fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Token, BoxError>> + Send + '_>> {
///         Box::pin(async move {
///             // POST client_id and secret to the token endpoint here.
///             let token = BearerToken::new(format!("token-for-{}", self.client_id))?;
///             Ok(Token::new(token).expires_in(Duration::from_secs(3600)))
///         })
///     }
/// }
/// # let _ = tower_client_headers::BearerAuthLayer::from_source(ClientCredentials { client_id: "me".into() });
/// ```
///
/// [`BearerAuthLayer::from_source`]: crate::BearerAuthLayer::from_source
pub trait TokenSource: Send + Sync + 'static {
    /// Fetch a new token.
    ///
    /// ```
    /// use tower_client_headers::{BearerToken, BoxError, Token, TokenSource};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), BoxError> {
    /// let source = || async { Ok::<_, BoxError>(Token::new(BearerToken::new("abc")?)) };
    /// let token = source.fetch().await?;
    /// # let _ = token; Ok(()) }
    /// ```
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Token, BoxError>> + Send + '_>>;
}

impl<F, Fut, E> TokenSource for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Token, E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Token, BoxError>> + Send + '_>> {
        let fut = self();
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token68_accepts_exactly_the_alphabet() {
        for ok in ["a", "abc123", "A-._~+/", "abc=", "abc==", "x/y+z~", "0"] {
            assert!(token68_problem(ok).is_none(), "{ok:?}");
            assert!(BearerToken::new(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "", "=", "==", "a b", "a\tb", "a\r\nb", "a\nb", "a=b", "=a", "\"a\"", "a,b", "é",
            "a\0", "a\x7f", "a;b", "a:b", "tok en",
        ] {
            assert!(token68_problem(bad).is_some(), "{bad:?}");
            let err = BearerToken::new(bad).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::InvalidToken);
        }
    }

    #[test]
    fn errors_and_debug_never_show_the_token() {
        let err = BearerToken::new("secret part=more").expect_err("has a space");
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(!format!("{err:?}").contains("secret"));
        let token = BearerToken::new("s3cr3t").expect("valid");
        assert!(!format!("{token:?}").contains("s3cr3t"));
        let t = Token::new(token).expires_in(Duration::from_secs(1));
        assert!(!format!("{t:?}").contains("s3cr3t"));
    }

    #[test]
    fn from_authorization_reads_bearer_credentials_only() {
        let read = |v: &'static str| BearerToken::from_authorization(&HeaderValue::from_static(v));
        for (value, token) in [
            ("Bearer abc", "abc"),
            ("bearer abc", "abc"),
            ("BEARER  abc==", "abc=="),
        ] {
            let got = read(value).expect(value);
            assert_eq!(got, BearerToken::new(token).expect("valid"), "{value}");
        }
        for value in [
            "Basic dXNlcg==",
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearerabc",
            "",
            "Bearer s3cr3t!",
        ] {
            let err = read(value).expect_err(value);
            assert_eq!(err.kind(), ErrorKind::InvalidToken);
            assert!(!err.to_string().contains("s3cr3t"), "{err}");
        }
        let binary = HeaderValue::from_bytes(b"Bearer \xff").expect("obs-text is a valid value");
        assert!(BearerToken::from_authorization(&binary).is_err());
    }

    #[test]
    fn header_value_is_bearer_and_sensitive() {
        let token = BearerToken::new("abc").expect("valid");
        assert_eq!(token.header_value(), "Bearer abc");
        assert!(token.header_value().is_sensitive());
    }

    #[test]
    fn huge_lifetime_never_expires_and_does_not_panic() {
        let t = Token::new(BearerToken::new("abc").expect("valid")).expires_in(Duration::MAX);
        assert!(t.expires_at().is_none());
    }
}

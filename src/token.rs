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

use crate::credential::Credential;
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
        if let Some(problem) = b64token_problem(&token) {
            return Err(Error::new(
                ErrorKind::InvalidToken,
                format!(
                    "invalid bearer token: {problem}; a bearer token (RFC 6750 b64token) is \
                     letters, digits and -._~+/, then optional `=` padding"
                ),
            ));
        }
        let mut value = String::with_capacity("Bearer ".len() + token.len());
        value.push_str("Bearer ");
        value.push_str(&token);
        let mut header = HeaderValue::try_from(value).map_err(|_| {
            Error::new(
                ErrorKind::InvalidToken,
                "invalid bearer token: not a header value; an RFC 6750 b64token is letters, \
                 digits, -._~+/ and `=` padding at the end",
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
                "not an `Authorization: Bearer` credential: expected `Bearer`, a space and an \
                 RFC 6750 b64token",
            )
        };
        let value = value.to_str().map_err(|_| not_bearer())?;
        let (scheme, token) = value.split_once(' ').ok_or_else(not_bearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(not_bearer());
        }
        let token = token.trim_start_matches(' ');
        // The caller's credential: say what is wrong with it, not how to build a BearerToken.
        if b64token_problem(token).is_some() {
            return Err(Error::new(
                ErrorKind::InvalidToken,
                "malformed `Authorization: Bearer` credential: the token after `Bearer ` must \
                 be an RFC 6750 b64token (letters, digits, -._~+/, then optional `=` padding)",
            ));
        }
        Self::new(token)
    }

    /// Read a caller's bearer token from an incoming request's headers, as a gateway forwards
    /// it with [`HeaderOverrides::bearer_token`](crate::HeaderOverrides::bearer_token).
    ///
    /// `Ok(None)` when there is no `Authorization` at all; `Ok(Some(token))` when there is
    /// exactly one, and it is a valid `Bearer` credential.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidToken`] when the caller sent `Authorization` but not exactly one
    /// valid `Bearer` credential: another scheme (`Basic ..`), a malformed or empty token
    /// (`Bearer not a token`, `Bearer `), or several `Authorization` values. Answer such a
    /// caller `401`: treating it as anonymous would send the gateway's own credentials on its
    /// behalf. The message never contains the value.
    ///
    /// ```
    /// use http::header::AUTHORIZATION;
    /// use http::{HeaderMap, HeaderValue};
    /// use tower_client_headers::BearerToken;
    ///
    /// let mut headers = HeaderMap::new();
    /// assert!(BearerToken::from_request_headers(&headers)?.is_none());
    ///
    /// headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer caller-token"));
    /// assert!(BearerToken::from_request_headers(&headers)?.is_some());
    ///
    /// headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic dXNlcjpwdw=="));
    /// assert!(BearerToken::from_request_headers(&headers).is_err());
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn from_request_headers(headers: &http::HeaderMap) -> Result<Option<Self>, Error> {
        let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(Error::new(
                ErrorKind::InvalidToken,
                "several `Authorization` values: expected one `Bearer` credential",
            ));
        }
        Self::from_authorization(value).map(Some)
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
pub(crate) fn b64token_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        return Some("it is empty (check where it was read from)");
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
            b' ' | b'\t' => {
                return Some(
                    "it contains whitespace (give the token alone, without a `Bearer ` prefix \
                     or surrounding spaces)",
                )
            }
            b'\r' | b'\n' => {
                return Some(
                    "it contains CR or LF (trim the line break a file or an environment \
                     variable may end with)",
                )
            }
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
    pub(crate) credential: Credential,
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
        Self::from_credential(Credential::bearer(token))
    }

    /// Create a new [`Token`] that carries any [`Credential`] (Basic credentials, an API key),
    /// for a source whose credentials rotate. It never expires unless told. The layer's header
    /// ([`BearerAuthBuilder::header_name`](crate::BearerAuthBuilder::header_name),
    /// `Authorization` unless set) must be the credential's: a fetched credential for another
    /// header is a failed fetch ([`ErrorKind::TokenFetch`], backed off like any failure, with
    /// a message naming both headers). It is a configuration mistake, not an outage: give the
    /// builder `.header_name(..)` for a source of API keys.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_client_headers::{BearerAuthLayer, BoxError, Credential, Token};
    ///
    /// // An API key read from a secret store, rotated every hour.
    /// let auth = BearerAuthLayer::builder()
    ///     .source(|| async {
    ///         let key = Credential::api_key("x-api-key", "k-from-the-vault")?;
    ///         Ok::<_, BoxError>(Token::from_credential(key).expires_in(Duration::from_secs(3600)))
    ///     })
    ///     .header_name("x-api-key")
    ///     .build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn from_credential(credential: Credential) -> Self {
        Self {
            credential,
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

impl From<Credential> for Token {
    fn from(credential: Credential) -> Self {
        Self::from_credential(credential)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("credential", &self.credential)
            .field("expires_at", &self.expires_at)
            .field("refresh_at", &self.refresh_at)
            .finish()
    }
}

/// Something that fetches credentials (bearer tokens, or rotating API keys and Basic
/// credentials through [`Token::from_credential`]), for [`BearerAuthLayer::from_source`].
///
/// [`BearerAuthLayer`](crate::BearerAuthLayer) calls `fetch` when it has no valid token, one
/// fetch at a time however many requests wait, and ahead of expiry in the background.
///
/// Implemented for every `Fn() -> impl Future<Output = Result<Token, E>>` closure whose future
/// is `Send + 'static`, with `E` anything that converts into a [`BoxError`].
///
/// # A closure over a shared client
///
/// The common case, a closure that posts to a token endpoint with a client and a URL it keeps,
/// needs three things, each for a reason the compiler states less plainly (with reqwest, this
/// example needs its `form` and `json` features; to build the closure in a helper, return
/// `impl TokenSource`):
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tower_client_headers::{BearerAuthLayer, BearerToken, BoxError, Token};
///
/// #[derive(serde::Deserialize)]
/// struct TokenResponse { access_token: String, expires_in: u64 }
///
/// let http = reqwest::Client::new(); // cloning it shares one connection pool
/// let url: Arc<str> = Arc::from("https://idp.example.com/oauth/token");
///
/// let source = move || {
///     // 1. Clone, per call, what the fetch uses. The closure runs once per fetch (it is an
///     //    `Fn`), so it cannot move what it owns into the future (error E0525, "expected a
///     //    closure that implements the `Fn` trait, but this closure only implements `FnOnce`").
///     let (http, url) = (http.clone(), Arc::clone(&url));
///     // 2. `async move`: the future outlives the call (the fetch runs on a task of its own),
///     //    so it must own the clones, not borrow from the closure ("lifetime may not live long
///     //    enough").
///     async move {
///         let response: TokenResponse = http
///             .post(&*url)
///             .form(&[("grant_type", "client_credentials")])
///             .send()
///             .await?
///             .error_for_status()?
///             .json()
///             .await?;
///         let token = BearerToken::new(response.access_token)?;
///         // 3. Name the error type. `?` converts each error into the future's error type, and
///         //    nothing else says what that is (error E0282, "type annotations needed").
///         Ok::<_, BoxError>(Token::new(token).expires_in(Duration::from_secs(response.expires_in)))
///     }
/// };
/// let auth = BearerAuthLayer::from_source(source);
/// # let _ = auth;
/// ```
///
/// # A type of your own
///
/// Implementing the trait by hand needs no clones: the future [`fetch`](Self::fetch) returns
/// may borrow `self`, so a type that holds its client and credentials uses them in place:
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
    fn b64token_accepts_exactly_the_alphabet() {
        for ok in ["a", "abc123", "A-._~+/", "abc=", "abc==", "x/y+z~", "0"] {
            assert!(b64token_problem(ok).is_none(), "{ok:?}");
            assert!(BearerToken::new(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "", "=", "==", "a b", "a\tb", "a\r\nb", "a\nb", "a=b", "=a", "\"a\"", "a,b", "é",
            "a\0", "a\x7f", "a;b", "a:b", "tok en",
        ] {
            assert!(b64token_problem(bad).is_some(), "{bad:?}");
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
        // About the caller's credential, not about building a BearerToken.
        let err = read("Bearer not a token").expect_err("whitespace");
        assert!(err.to_string().contains("after `Bearer `"), "{err}");
        assert!(!err.to_string().contains("prefix"), "{err}");
        let binary = HeaderValue::from_bytes(b"Bearer \xff").expect("obs-text is a valid value");
        assert!(BearerToken::from_authorization(&binary).is_err());
    }

    #[test]
    fn from_request_headers_is_none_one_valid_bearer_or_an_error() {
        use http::header::AUTHORIZATION;
        use http::HeaderMap;
        let with = |values: &[&'static str]| {
            let mut headers = HeaderMap::new();
            headers.insert("x-other", HeaderValue::from_static("1"));
            for v in values {
                headers.append(AUTHORIZATION, HeaderValue::from_static(v));
            }
            BearerToken::from_request_headers(&headers)
        };
        assert!(with(&[]).expect("no Authorization").is_none());
        assert_eq!(
            with(&["Bearer abc"]).expect("valid"),
            Some(BearerToken::new("abc").expect("valid"))
        );
        assert_eq!(
            with(&["bearer  abc=="]).expect("valid"),
            Some(BearerToken::new("abc==").expect("valid"))
        );
        for bad in [
            &["Basic dXNlcjpwdw=="][..],
            &["Bearer not a token"],
            &["Bearer "],
            &["Bearer"],
            &[""],
            &["Bearer s3cr3t!"],
            &["Bearer abc", "Bearer abc"],
            &["Bearer abc", "Basic dXNlcg=="],
            &["Bearer a, Bearer b"],
        ] {
            let err = with(bad).expect_err(bad[0]);
            assert_eq!(err.kind(), ErrorKind::InvalidToken, "{bad:?}");
            assert!(!err.to_string().contains("s3cr3t"), "{err}");
        }
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

//! Credentials beyond bearer tokens: [`Credential`], the one secret header an auth layer sends.
//!
//! A bearer token, HTTP Basic credentials (RFC 7617) and an API key in a header you name all
//! get the same protections from [`BearerAuthLayer`](crate::BearerAuthLayer): origin scoping,
//! plaintext refusal, a sensitive value redacted everywhere, per-request override and
//! suppression through [`HeaderOverrides`](crate::HeaderOverrides), and refresh through a
//! [`TokenSource`](crate::TokenSource) when they rotate.
//!
//! ```
//! use tower_client_headers::{BearerAuthLayer, Credential};
//!
//! let basic = BearerAuthLayer::builder()
//!     .credential(Credential::basic("alice", "correct horse")?)
//!     .origin("https://api.example.com")
//!     .build()?;
//! let api_key = BearerAuthLayer::builder()
//!     .credential(Credential::api_key("x-api-key", "k-123")?)
//!     .origin("https://api.example.com")
//!     .build()?;
//! assert!(!format!("{basic:?}{api_key:?}").contains("k-123"));
//! # Ok::<(), tower_client_headers::Error>(())
//! ```

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{
    AUTHORIZATION, CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    COOKIE, EXPECT, HOST, LOCATION, PROXY_AUTHORIZATION, RANGE, SET_COOKIE, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE, WWW_AUTHENTICATE,
};
use http::{HeaderName, HeaderValue};

use crate::error::{Error, ErrorKind};
use crate::token::BearerToken;

/// A credential: one secret header, its name and its value, ready to be sent by
/// [`BearerAuthLayer`](crate::BearerAuthLayer) (fixed, set at runtime, or from a
/// [`TokenSource`](crate::TokenSource)) or for one request by
/// [`HeaderOverrides::credential`](crate::HeaderOverrides::credential).
///
/// The value is marked sensitive (never indexed by HTTP/2 header compression), and `Debug`
/// shows only the header name and the scheme. Constructors check their input and return an
/// [`Error`] that never contains it.
///
/// ```
/// use tower_client_headers::{BearerToken, Credential};
///
/// let bearer = Credential::bearer(BearerToken::new("t0k3n")?);
/// let basic = Credential::basic("alice", "s3cret")?;
/// let key = Credential::api_key("x-api-key", "k-123")?;
/// assert_eq!(basic.header_name(), "authorization");
/// assert_eq!(key.header_name(), "x-api-key");
/// assert_eq!(format!("{basic:?}"), r#"Credential { header: "authorization", scheme: "Basic", value: <redacted> }"#);
/// # let _ = bearer;
/// # Ok::<(), tower_client_headers::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    name: HeaderName,
    value: HeaderValue,
    scheme: Scheme,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Basic,
    ApiKey,
}

impl Credential {
    /// `Authorization: Bearer <token>`.
    ///
    /// ```
    /// use tower_client_headers::{BearerToken, Credential};
    ///
    /// let credential = Credential::bearer(BearerToken::new("abc")?);
    /// assert_eq!(credential.header_name(), "authorization");
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn bearer(token: BearerToken) -> Self {
        Self {
            name: AUTHORIZATION,
            value: token.header_value().clone(),
            scheme: Scheme::Bearer,
        }
    }

    /// `Authorization: Basic <base64(user:password)>`, RFC 7617, encoded as UTF-8 (the
    /// `charset="UTF-8"` of its section 2.1, which servers in practice assume).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidCredential`] if `user` contains `:` (RFC 7617 forbids it: the server
    /// splits at the first colon) or either contains a control character (CR, LF, NUL...). The
    /// message never contains the user or the password.
    ///
    /// ```
    /// use tower_client_headers::{Credential, ErrorKind};
    ///
    /// let credential = Credential::basic("Aladdin", "open sesame")?;
    /// assert_eq!(credential.header_name(), "authorization");
    /// let err = Credential::basic("a:b", "pw").unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidCredential);
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn basic(user: impl AsRef<str>, password: impl AsRef<str>) -> Result<Self, Error> {
        let (user, password) = (user.as_ref(), password.as_ref());
        let problem = if user.contains(':') {
            Some("the user name contains `:`, which RFC 7617 forbids (the server splits at the first colon)")
        } else if user.chars().any(char::is_control) {
            Some("the user name contains a control character (CR, LF, NUL...)")
        } else if password.chars().any(char::is_control) {
            Some("the password contains a control character (CR, LF, NUL...; trim the line break a file or an environment variable may end with)")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(Error::new(
                ErrorKind::InvalidCredential,
                format!("invalid Basic credentials (not shown): {problem}"),
            ));
        }
        let mut encoded = String::from("Basic ");
        STANDARD.encode_string(format!("{user}:{password}"), &mut encoded);
        // Base64 is always a valid header value; never assumed, though.
        let value = HeaderValue::try_from(encoded).map_err(|_| {
            Error::new(
                ErrorKind::InvalidCredential,
                "invalid Basic credentials (not shown): they could not be encoded",
            )
        })?;
        Ok(Self::sensitive(AUTHORIZATION, value, Scheme::Basic))
    }

    /// An API key sent as the whole value of the header `name`: `x-api-key`, `X-Consul-Token`,
    /// `x-goog-api-key`, or `Authorization` with a scheme of the API's own
    /// (`Credential::api_key("authorization", "Token abc")`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidHeaderName`] if `name` is not a header name, or is one that frames
    /// or routes the message (`host`, `content-length`, `content-type`, `transfer-encoding`,
    /// `connection`, `te`, `trailer`, `upgrade`) and so cannot carry a credential.
    /// [`ErrorKind::InvalidCredential`] if the key is empty, has leading or trailing
    /// whitespace, contains a control character or a non-ASCII character, or looks like a
    /// header name (`x-...`, `authorization`: the arguments were likely swapped). No message
    /// contains the key.
    ///
    /// ```
    /// use tower_client_headers::{Credential, ErrorKind};
    ///
    /// let key = Credential::api_key("X-Consul-Token", "b1gs33cr3t")?;
    /// assert_eq!(key.header_name(), "x-consul-token");
    /// let err = Credential::api_key("x-api-key", "k-123\n").unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidCredential);
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn api_key<K>(name: K, key: impl AsRef<str>) -> Result<Self, Error>
    where
        HeaderName: TryFrom<K>,
    {
        let name = credential_header_name(name)?;
        let key = key.as_ref();
        let problem = if key.is_empty() {
            Some("it is empty (check where it was read from)")
        } else if looks_like_a_credential_header(key) {
            Some("it looks like a header name; check that the header name comes first and the key second")
        } else if key.trim() != key {
            Some("it has leading or trailing whitespace (trim the line break a file or an environment variable may end with)")
        } else if key.chars().any(char::is_control) {
            Some("it contains a control character (CR, LF, NUL...)")
        } else if !key.is_ascii() {
            Some("it contains a non-ASCII character")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(Error::new(
                ErrorKind::InvalidCredential,
                format!("invalid API key for header `{name}` (not shown): {problem}"),
            ));
        }
        let value = HeaderValue::from_str(key).map_err(|_| {
            Error::new(
                ErrorKind::InvalidCredential,
                format!("invalid API key for header `{name}` (not shown): not a header value"),
            )
        })?;
        Ok(Self::sensitive(name, value, Scheme::ApiKey))
    }

    fn sensitive(name: HeaderName, mut value: HeaderValue, scheme: Scheme) -> Self {
        value.set_sensitive(true);
        Self {
            name,
            value,
            scheme,
        }
    }

    /// The header this credential is sent in.
    ///
    /// ```
    /// use tower_client_headers::Credential;
    ///
    /// assert_eq!(Credential::api_key("x-api-key", "k")?.header_name(), "x-api-key");
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn header_name(&self) -> &HeaderName {
        &self.name
    }

    /// The header value, marked sensitive.
    pub(crate) fn header_value(&self) -> &HeaderValue {
        &self.value
    }
}

impl From<BearerToken> for Credential {
    fn from(token: BearerToken) -> Self {
        Self::bearer(token)
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Redacted;
        impl fmt::Debug for Redacted {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("<redacted>")
            }
        }
        let scheme = match self.scheme {
            Scheme::Bearer => "Bearer",
            Scheme::Basic => "Basic",
            Scheme::ApiKey => "API key",
        };
        f.debug_struct("Credential")
            .field("header", &self.name.as_str())
            .field("scheme", &scheme)
            .field("value", &Redacted)
            .finish()
    }
}

/// Whether an API key is more likely a header name given in the key's place (arguments
/// swapped): `x-...`, or a name that carries credentials. A key never starts so.
fn looks_like_a_credential_header(key: &str) -> bool {
    let Ok(name) = HeaderName::try_from(key) else {
        return false;
    };
    let name = name.as_str();
    name.starts_with("x-")
        || [AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE]
            .iter()
            .any(|h| h == name)
        || ["api-key", "apikey", "api_key"].contains(&name)
}

/// A header name that can carry a credential. An invalid name is not echoed: arguments in the
/// wrong order would put a secret here.
pub(crate) fn credential_header_name<K>(name: K) -> Result<HeaderName, Error>
where
    HeaderName: TryFrom<K>,
{
    let Ok(name) = HeaderName::try_from(name) else {
        return Err(Error::new(
            ErrorKind::InvalidHeaderName,
            "invalid credential header name (not shown): a name is letters, digits and \
             !#$%&'*+-.^_`|~ only; check that the name comes before the key",
        ));
    };
    let framing = [
        HOST,
        CONTENT_LENGTH,
        CONTENT_TYPE,
        CONTENT_ENCODING,
        CONTENT_RANGE,
        TRANSFER_ENCODING,
        CONNECTION,
        TE,
        TRAILER,
        UPGRADE,
        EXPECT,
        RANGE,
        LOCATION,
        SET_COOKIE,
        WWW_AUTHENTICATE,
    ];
    let hop_by_hop = ["keep-alive", "proxy-connection", "http2-settings"];
    if framing.contains(&name) || hop_by_hop.contains(&name.as_str()) {
        return Err(Error::new(
            ErrorKind::InvalidHeaderName,
            format!(
                "`{name}` frames or routes the message and cannot carry a credential; name the \
                 header the API reads the key from (x-api-key, authorization, ...)"
            ),
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_is_rfc_7617() {
        // RFC 7617 section 2's example.
        let c = Credential::basic("Aladdin", "open sesame").expect("valid");
        assert_eq!(c.header_value(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(c.header_value().is_sensitive());
        // Section 2.1's UTF-8 example: "test" / "123£".
        let c = Credential::basic("test", "123\u{a3}").expect("valid");
        assert_eq!(c.header_value(), "Basic dGVzdDoxMjPCow==");
        // An empty password and a colon in the password are allowed.
        let c = Credential::basic("u", "").expect("valid");
        assert_eq!(c.header_value(), "Basic dTo=");
        assert!(Credential::basic("u", "a:b").is_ok());
    }

    #[test]
    fn bad_basic_credentials_are_errors_that_never_echo_them() {
        for (user, password) in [
            ("al:ice", "hunter2"),
            ("alice\n", "hunter2"),
            ("alice", "hunter2\r\n"),
            ("alice", "hun\0ter2"),
        ] {
            let err = Credential::basic(user, password).expect_err(user);
            assert_eq!(err.kind(), ErrorKind::InvalidCredential);
            let shown = format!("{err} {err:?}");
            assert!(
                !shown.contains("hunter2") && !shown.contains("alice"),
                "{shown}"
            );
        }
    }

    #[test]
    fn api_keys_are_checked_and_never_echoed() {
        let c = Credential::api_key("X-Api-Key", "k-123").expect("valid");
        assert_eq!(c.header_name(), "x-api-key");
        assert_eq!(c.header_value(), "k-123");
        assert!(c.header_value().is_sensitive());
        for bad in ["", " k", "k\n", "k\r\nx: y", "k\0", "kä"] {
            let err = Credential::api_key("x-api-key", bad).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::InvalidCredential, "{bad:?}");
            assert!(err.to_string().contains("x-api-key"), "{err}");
        }
        let err = Credential::api_key("x-api-key", "s3cr3t\n").expect_err("newline");
        assert!(!format!("{err} {err:?}").contains("s3cr3t"));
        // Swapped arguments, the key looking like a header name: refused, neither echoed.
        for swapped in ["x-api-key", "X-Consul-Token", "authorization", "apikey"] {
            let err = Credential::api_key("sk_live_51HxS3CR3T", swapped).expect_err(swapped);
            assert_eq!(err.kind(), ErrorKind::InvalidCredential);
            assert!(err.to_string().contains("comes first"), "{err}");
            assert!(!format!("{err} {err:?}").contains("S3CR3T"));
        }
        // Swapped arguments: the "name" is the secret, and is not echoed.
        let err = Credential::api_key("s3cr3t key!", "x-api-key").expect_err("swapped");
        assert_eq!(err.kind(), ErrorKind::InvalidHeaderName);
        assert!(!format!("{err} {err:?}").contains("s3cr3t"));
        for framing in [
            "expect",
            "content-encoding",
            "location",
            "set-cookie",
            "www-authenticate",
            "http2-settings",
            "host",
            "Content-Length",
            "transfer-encoding",
            "connection",
            "keep-alive",
        ] {
            let err = Credential::api_key(framing, "k").expect_err(framing);
            assert_eq!(err.kind(), ErrorKind::InvalidHeaderName);
        }
    }

    #[test]
    fn debug_names_the_header_and_scheme_only() {
        let token = BearerToken::new("t0k3n").expect("valid");
        for (c, scheme) in [
            (Credential::from(token), "Bearer"),
            (
                Credential::basic("alice", "hunter2").expect("valid"),
                "Basic",
            ),
            (
                Credential::api_key("x-api-key", "k-s3cr3t").expect("valid"),
                "API key",
            ),
        ] {
            let shown = format!("{c:?} {c:#?}");
            assert!(shown.contains(scheme), "{shown}");
            for secret in ["t0k3n", "hunter2", "alice", "s3cr3t", "YWxpY2"] {
                assert!(!shown.contains(secret), "{shown}");
            }
        }
    }
}

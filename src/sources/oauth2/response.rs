//! Token endpoint responses: a successful one (RFC 6749 section 5.1) becomes a [`Token`] (and
//! maybe a new refresh token); an error one (section 5.2) an [`OAuthError`]; anything else an
//! [`Error`] saying what was wrong with it, never quoting a token or a secret.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{Map, Value};

use crate::error::{BoxError, Error, ErrorKind};
use crate::token::{BearerToken, Token};

/// The longest `error_description` kept; the rest is cut.
const MAX_DESCRIPTION: usize = 512;

/// What a token response granted.
pub(super) struct Granted {
    /// The access token, or what was wrong with the response.
    pub(super) token: Result<Token, BoxError>,
    /// A new refresh token, if a success response has one (RFC 6749 section 6: the server
    /// may rotate it), even when the rest of the response is rejected: the server has
    /// rotated all the same, and the old refresh token is no longer good.
    pub(super) refresh_token: Option<String>,
}

/// Read a token endpoint's response. `endpoint` names it in messages; `secrets` (the client
/// secret, the refresh token sent) are cut out of anything the server says back.
pub(super) fn read(endpoint: &str, response: &Response<Bytes>, secrets: &[&str]) -> Granted {
    let object = match serde_json::from_slice::<Value>(response.body()) {
        Ok(Value::Object(object)) => Some(object),
        _ => None,
    };
    // First, whatever else the response holds: a rotation is lost if it is not kept.
    let refresh_token = match (&object, response.status().is_success()) {
        (Some(object), true) => match object.get("refresh_token") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        },
        _ => None,
    };
    Granted {
        token: token(endpoint, response.status(), object, secrets),
        refresh_token,
    }
}

/// The access token of a response whose body is `object` (if it is a JSON object).
fn token(
    endpoint: &str,
    status: StatusCode,
    object: Option<Map<String, Value>>,
    secrets: &[&str],
) -> Result<Token, BoxError> {
    let malformed = |problem: &str| -> BoxError {
        Error::new(
            ErrorKind::TokenFetch,
            format!("token endpoint {endpoint} answered {status} with {problem}"),
        )
        .into()
    };
    let Some(object) = object else {
        if status.is_success() {
            return Err(malformed("a body that is not a JSON object"));
        }
        return Err(Error::new(
            ErrorKind::TokenFetch,
            format!("token endpoint {endpoint} answered {status} (not an OAuth error response)"),
        )
        .into());
    };
    // Some servers answer errors with 200; an error member without a token is one.
    if !status.is_success() || !object.contains_key("access_token") {
        if let Some(error) = OAuthError::from_object(status, &object, secrets) {
            return Err(error.into());
        }
        if !status.is_success() {
            return Err(malformed("a JSON body that is not an OAuth error response"));
        }
    }
    granted(&object).map_err(|problem| match problem {
        Problem::Malformed(problem) => malformed(&problem),
        Problem::Token(source) => Error::with_source(
            ErrorKind::InvalidToken,
            format!(
                "token endpoint {endpoint} returned an access_token that is not an RFC 6750 \
                 b64token"
            ),
            source.into(),
        )
        .into(),
    })
}

enum Problem {
    Malformed(String),
    Token(Error),
}

fn granted(object: &Map<String, Value>) -> Result<Token, Problem> {
    let malformed = |s: &str| Problem::Malformed(s.to_owned());
    let access_token = match object.get("access_token") {
        Some(Value::String(token)) => token,
        Some(_) => return Err(malformed("an `access_token` that is not a string")),
        None => return Err(malformed("no `access_token`")),
    };
    match object.get("token_type") {
        // RFC 6749 makes it required; some servers leave it out of bearer responses.
        None | Some(Value::Null) => {}
        Some(Value::String(kind)) if kind.eq_ignore_ascii_case("bearer") => {}
        Some(Value::String(kind)) => {
            return Err(Problem::Malformed(format!(
                "`token_type` `{}`, not Bearer (this layer sends bearer tokens)",
                sanitize(kind, 32)
            )))
        }
        Some(_) => return Err(malformed("a `token_type` that is not a string")),
    }
    let lifetime = match object.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => seconds(n.as_f64())
            .ok_or_else(|| malformed("an `expires_in` that is negative or not a number"))?,
        // Some servers send the number as a string.
        Some(Value::String(s)) => seconds(s.trim().parse::<f64>().ok())
            .ok_or_else(|| malformed("an `expires_in` that is negative or not a number"))?,
        Some(_) => return Err(malformed("an `expires_in` that is not a number")),
    };
    // Kept by `read` whatever else is wrong; only checked here.
    match object.get("refresh_token") {
        None | Some(Value::Null | Value::String(_)) => {}
        Some(_) => return Err(malformed("a `refresh_token` that is not a string")),
    }
    let token = BearerToken::new(access_token.as_str()).map_err(Problem::Token)?;
    Ok(Token::new(token).lifetime(lifetime))
}

/// `expires_in` as a lifetime: `Some(None)` for zero (the server gives no lifetime, as when
/// the member is absent), `None` for a value that is not a non-negative number.
#[allow(clippy::option_option)]
fn seconds(n: Option<f64>) -> Option<Option<Duration>> {
    let n = n.filter(|n| n.is_finite() && *n >= 0.0)?;
    if n == 0.0 {
        return Some(None);
    }
    // Too large to represent: never expires.
    Some(Duration::try_from_secs_f64(n).ok())
}

/// An error response from an OAuth 2.0 token endpoint (RFC 6749 section 5.2): the server's
/// `error` code, its `error_description` and `error_uri`, and the HTTP status.
///
/// A failed fetch reaches callers as a [`crate::Error`] of kind
/// [`TokenFetch`](crate::ErrorKind::TokenFetch) with this error in its
/// [`source`](std::error::Error::source) chain; [`OAuthError::find`] looks it up. The
/// description is the server's text, with control characters removed, cut at 512
/// characters, and with the client secret and refresh token cut out if the server echoed
/// them: as they are, form-urlencoded (as they were sent), or as the `Basic` credential, in
/// any ASCII case.
///
/// ```
/// use tower_client_headers::sources::{OAuthError, OAuthErrorCode};
/// use tower_client_headers::BoxError;
///
/// fn must_reauthenticate(err: &BoxError) -> bool {
///     OAuthError::find(err.as_ref()).is_some_and(|e| *e.code() == OAuthErrorCode::InvalidGrant)
/// }
/// # let _ = must_reauthenticate;
/// ```
#[derive(Clone, Debug)]
pub struct OAuthError {
    status: StatusCode,
    code: OAuthErrorCode,
    description: Option<String>,
    uri: Option<String>,
}

impl OAuthError {
    fn from_object(
        status: StatusCode,
        object: &Map<String, Value>,
        secrets: &[&str],
    ) -> Option<Self> {
        let Some(Value::String(code)) = object.get("error") else {
            return None;
        };
        let text = |name: &str| match object.get(name) {
            Some(Value::String(s)) if !s.is_empty() => {
                Some(sanitize(&redact(s, secrets), MAX_DESCRIPTION))
            }
            _ => None,
        };
        Some(Self {
            status,
            // Redacted before it is cut, so that no part of a secret survives the cut.
            code: OAuthErrorCode::from_code(&sanitize(&redact(code, secrets), 64)),
            description: text("error_description"),
            uri: text("error_uri"),
        })
    }

    /// The `error` code.
    ///
    /// ```
    /// # use tower_client_headers::sources::{OAuthError, OAuthErrorCode};
    /// fn is_bad_client(err: &OAuthError) -> bool {
    ///     *err.code() == OAuthErrorCode::InvalidClient
    /// }
    /// # let _ = is_bad_client;
    /// ```
    pub fn code(&self) -> &OAuthErrorCode {
        &self.code
    }

    /// The `error_description`, if the server gave one.
    ///
    /// ```
    /// # use tower_client_headers::sources::OAuthError;
    /// fn describe(err: &OAuthError) -> String {
    ///     format!("{}: {}", err.code(), err.description().unwrap_or("(no description)"))
    /// }
    /// # let _ = describe;
    /// ```
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The `error_uri`, a page about the error, if the server gave one.
    ///
    /// ```
    /// # use tower_client_headers::sources::OAuthError;
    /// fn help(err: &OAuthError) -> Option<&str> {
    ///     err.uri()
    /// }
    /// # let _ = help;
    /// ```
    pub fn uri(&self) -> Option<&str> {
        self.uri.as_deref()
    }

    /// The HTTP status of the response (usually `400`, or `401` for `invalid_client`).
    ///
    /// ```
    /// # use tower_client_headers::sources::OAuthError;
    /// fn status(err: &OAuthError) -> u16 {
    ///     err.status().as_u16()
    /// }
    /// # let _ = status;
    /// ```
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The first `OAuthError` in `err`'s [`source`](std::error::Error::source) chain, `err`
    /// itself included: where a failed fetch's [`crate::Error`] carries it.
    ///
    /// ```
    /// use tower_client_headers::sources::OAuthError;
    /// use tower_client_headers::BoxError;
    ///
    /// let err: BoxError = "connection refused".into();
    /// assert!(OAuthError::find(err.as_ref()).is_none());
    /// ```
    pub fn find<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a OAuthError> {
        let mut next = Some(err);
        while let Some(err) = next {
            if let Some(found) = err.downcast_ref::<OAuthError>() {
                return Some(found);
            }
            next = err.source();
        }
        None
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the token endpoint answered {}: {}",
            self.status, self.code
        )?;
        if let Some(description) = &self.description {
            write!(f, ": {description}")?;
        }
        if let Some(uri) = &self.uri {
            write!(f, " (see {uri})")?;
        }
        Ok(())
    }
}

impl std::error::Error for OAuthError {}

/// An OAuth 2.0 `error` code (RFC 6749 section 5.2), with the standard ones named.
///
/// ```
/// use tower_client_headers::sources::OAuthErrorCode;
///
/// assert_eq!(OAuthErrorCode::InvalidGrant.as_str(), "invalid_grant");
/// assert_eq!(OAuthErrorCode::Other("slow_down".into()).to_string(), "slow_down");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OAuthErrorCode {
    /// `invalid_request`: a parameter is missing, repeated, unsupported or malformed.
    InvalidRequest,
    /// `invalid_client`: client authentication failed (unknown client, wrong secret, or an
    /// authentication method the server does not take).
    InvalidClient,
    /// `invalid_grant`: the refresh token (or other grant) is invalid, expired, revoked or
    /// was issued to another client. For a refresh token this is final: sign in again.
    InvalidGrant,
    /// `unauthorized_client`: this client may not use this grant type.
    UnauthorizedClient,
    /// `unsupported_grant_type`: the server does not support this grant type.
    UnsupportedGrantType,
    /// `invalid_scope`: a requested scope is invalid, unknown or beyond what was granted.
    InvalidScope,
    /// Any other code (an extension, such as `slow_down` or `invalid_target`).
    Other(String),
}

impl OAuthErrorCode {
    fn from_code(code: &str) -> Self {
        match code {
            "invalid_request" => Self::InvalidRequest,
            "invalid_client" => Self::InvalidClient,
            "invalid_grant" => Self::InvalidGrant,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "invalid_scope" => Self::InvalidScope,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The code as the server sent it.
    ///
    /// ```
    /// use tower_client_headers::sources::OAuthErrorCode;
    ///
    /// assert_eq!(OAuthErrorCode::InvalidClient.as_str(), "invalid_client");
    /// ```
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::Other(code) => code,
        }
    }
}

impl fmt::Display for OAuthErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The server's text, safe to print: control characters (line breaks included, so it cannot
/// forge log lines) become spaces, and it is cut at `max` characters.
fn sanitize(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// `text` with every secret in `secrets` cut out: as given, form-urlencoded (as it was sent in
/// the body, with `+` or `%20` for a space), in any ASCII case.
fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        let form: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        let percent = form.replace('+', "%20");
        for variant in [form.as_str(), percent.as_str(), secret] {
            out = replace_ignoring_ascii_case(&out, variant, "<redacted>");
        }
    }
    out
}

/// `text` with every occurrence of `needle` (compared ignoring ASCII case) replaced by `with`.
fn replace_ignoring_ascii_case(text: &str, needle: &str, with: &str) -> String {
    // ASCII lowercasing keeps every byte where it was, so positions in `lower` are positions
    // in `text`, and they fall on character boundaries (the needle is whole characters).
    let lower = text.to_ascii_lowercase();
    let needle = needle.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (at, _) in lower.match_indices(&needle) {
        out.push_str(text.get(last..at).unwrap_or_default());
        out.push_str(with);
        last = at + needle.len();
    }
    out.push_str(text.get(last..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> Response<Bytes> {
        let mut response = Response::new(Bytes::from(body.to_owned()));
        *response.status_mut() = StatusCode::from_u16(status).expect("status");
        response
    }

    struct Read {
        token: Token,
        refresh_token: Option<String>,
    }

    fn read_body(status: u16, body: &str) -> Result<Read, BoxError> {
        let granted = read(
            "`https://idp.example/token`",
            &response(status, body),
            &["hunter2"],
        );
        let refresh_token = granted.refresh_token;
        granted.token.map(|token| Read {
            token,
            refresh_token,
        })
    }

    #[test]
    fn a_rotation_is_kept_whatever_else_is_wrong_with_a_success_response() {
        for body in [
            r#"{"access_token":"not b64token","refresh_token":"r2"}"#,
            r#"{"access_token":"a","token_type":"mac","refresh_token":"r2"}"#,
            r#"{"access_token":"a","expires_in":-1,"refresh_token":"r2"}"#,
            r#"{"access_token":5,"refresh_token":"r2"}"#,
            r#"{"refresh_token":"r2"}"#,
        ] {
            let granted = read("`x`", &response(200, body), &[]);
            assert!(granted.token.is_err(), "{body}");
            assert_eq!(granted.refresh_token.as_deref(), Some("r2"), "{body}");
        }
        // Not from an error status.
        let body = r#"{"error":"invalid_grant","refresh_token":"r2"}"#;
        assert_eq!(read("`x`", &response(400, body), &[]).refresh_token, None);
    }

    fn err_text(status: u16, body: &str) -> String {
        match read_body(status, body) {
            Ok(_) => panic!("{body} should fail"),
            Err(err) => err.to_string(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_response_becomes_a_token() {
        let now = tokio::time::Instant::now();
        let granted = read_body(
            200,
            r#"{"access_token":"abc.def","token_type":"bearer","expires_in":3600,"scope":"x"}"#,
        )
        .expect("token");
        assert_eq!(
            granted.token.expires_at(),
            Some(now + Duration::from_secs(3600))
        );
        assert!(granted.refresh_token.is_none());
        for (expires_in, lifetime) in [
            ("", None),
            (r#","expires_in":null"#, None),
            (r#","expires_in":0"#, None),
            (r#","expires_in":"120""#, Some(120)),
            (r#","expires_in":1.5e2"#, Some(150)),
        ] {
            let body = format!(r#"{{"access_token":"a","token_type":"Bearer"{expires_in}}}"#);
            let token = read_body(200, &body).expect("token").token;
            let want = lifetime.map(|s| now + Duration::from_secs(s));
            assert_eq!(token.expires_at(), want, "{body}");
        }
        let body = r#"{"access_token":"a","refresh_token":"r2"}"#;
        assert_eq!(
            read_body(200, body)
                .expect("token")
                .refresh_token
                .as_deref(),
            Some("r2")
        );
    }

    #[test]
    fn malformed_responses_say_what_is_wrong_and_never_quote_a_token() {
        for (status, body, says) in [
            (200, "<html>oops</html>", "not a JSON object"),
            (200, "[]", "not a JSON object"),
            (200, "{}", "no `access_token`"),
            (200, r#"{"access_token":5}"#, "not a string"),
            (
                200,
                r#"{"access_token":"s3cr3t","token_type":"mac"}"#,
                "`token_type` `mac`, not Bearer",
            ),
            (
                200,
                r#"{"access_token":"s3cr3t","expires_in":-1}"#,
                "negative or not a number",
            ),
            (
                200,
                r#"{"access_token":"s3cr3t","expires_in":"soon"}"#,
                "negative or not a number",
            ),
            (
                200,
                r#"{"access_token":"s3cr3t","expires_in":[]}"#,
                "not a number",
            ),
            (
                200,
                r#"{"access_token":"s3cr3t x"}"#,
                "not an RFC 6750 b64token",
            ),
            (
                502,
                "<html>bad gateway</html>",
                "answered 502 Bad Gateway (not an OAuth error",
            ),
            (
                500,
                r#"{"message":"s3cr3t"}"#,
                "not an OAuth error response",
            ),
        ] {
            let text = err_text(status, body);
            assert!(text.contains(says), "{body}: {text}");
            assert!(text.contains("https://idp.example/token"), "{text}");
            assert!(!text.contains("s3cr3t"), "{text}");
        }
    }

    #[test]
    fn error_responses_carry_code_description_and_uri_without_secrets() {
        let err = read_body(
            400,
            r#"{"error":"invalid_grant","error_description":"refresh token\nhunter2 revoked","error_uri":"https://idp.example/e"}"#,
        )
        .err()
        .expect("an error");
        let oauth = OAuthError::find(err.as_ref()).expect("an OAuthError");
        assert_eq!(*oauth.code(), OAuthErrorCode::InvalidGrant);
        assert_eq!(
            oauth.description(),
            Some("refresh token <redacted> revoked")
        );
        assert_eq!(oauth.uri(), Some("https://idp.example/e"));
        assert_eq!(oauth.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            err.to_string(),
            "the token endpoint answered 400 Bad Request: invalid_grant: refresh token \
             <redacted> revoked (see https://idp.example/e)"
        );
        // With 200, as some servers do.
        let err = read_body(200, r#"{"error":"slow_down"}"#)
            .err()
            .expect("an error");
        let oauth = OAuthError::find(err.as_ref()).expect("an OAuthError");
        assert_eq!(*oauth.code(), OAuthErrorCode::Other("slow_down".into()));
        assert_eq!(oauth.description(), None);
        // A secret straddling the cut is still cut out whole.
        let body = format!(
            r#"{{"error":"invalid_client","error_description":"{}hunter2"}}"#,
            "x".repeat(508)
        );
        let err = read_body(401, &body).err().expect("an error");
        assert!(!err.to_string().contains("hunt"), "{err}");
        // Form-encoded, percent-encoded, in another case.
        let secrets = ["p@ss w/rd+é"];
        for echoed in [
            "p%40ss+w%2Frd%2B%C3%A9",
            "p%40ss%20w%2frd%2b%c3%a9",
            "P@SS W/RD+é",
        ] {
            let body =
                format!(r#"{{"error":"invalid_client","error_description":"got <{echoed}> é"}}"#);
            let err = read("`x`", &response(401, &body), &secrets)
                .token
                .expect_err("an error");
            assert!(err.to_string().ends_with("got <<redacted>> é"), "{err}");
        }
        let long = "x".repeat(2_000);
        let body = format!(r#"{{"error":"invalid_request","error_description":"{long}"}}"#);
        let err = read_body(400, &body).err().expect("an error");
        let description = OAuthError::find(err.as_ref()).and_then(OAuthError::description);
        assert_eq!(description.map(|d| d.chars().count()), Some(513));
    }
}

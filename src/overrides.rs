//! Per-request control over session headers: [`HeaderOverrides`].
//!
//! Insert a `HeaderOverrides` into a request's extensions (tower), or pass it with
//! `RequestBuilder::with_extension` (reqwest-middleware), to override or drop session headers for
//! that one request.
//!
//! ```
//! use http::header::{ACCEPT, USER_AGENT};
//! use http::{HeaderValue, Request};
//! use tower_client_headers::HeaderOverrides;
//!
//! let request = Request::get("https://api.example.com/raw")
//!     .extension(
//!         HeaderOverrides::new()
//!             .remove(USER_AGENT)
//!             .set(ACCEPT, HeaderValue::from_static("application/octet-stream")),
//!     )
//!     .body(())?;
//! # Ok::<(), http::Error>(())
//! ```

use std::fmt;

use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::token::BearerToken;

/// Per-request overrides of session headers, carried in the request's extensions.
///
/// - [`remove`](Self::remove) and [`remove_all`](Self::remove_all) stop the session (and
///   [`BearerAuthLayer`](crate::BearerAuthLayer), for `Authorization`) from adding headers;
///   the request's own headers are left as they are.
/// - [`set`](Self::set) makes a header exactly the given values, replacing the request's own
///   and the session's. `set` beats `remove`, whatever the order of the calls.
/// - [`bearer_token`](Self::bearer_token) sends another token with this request.
///
/// Overrides only act in a layer whose origins the request is sent to: a request to another
/// origin passes the layer untouched, overrides included.
///
/// `Debug` shows the names involved, never a value.
///
/// ```
/// use http::header::USER_AGENT;
/// use tower_client_headers::HeaderOverrides;
///
/// let overrides = HeaderOverrides::new().remove(USER_AGENT).without_auth();
/// assert!(format!("{overrides:?}").contains("user-agent"));
/// ```
#[derive(Clone, Default)]
pub struct HeaderOverrides {
    pub(crate) remove_all: bool,
    pub(crate) removed: Vec<HeaderName>,
    pub(crate) set: HeaderMap,
    pub(crate) bearer: Option<BearerToken>,
}

impl HeaderOverrides {
    /// Create an empty set of overrides, which changes nothing.
    ///
    /// ```
    /// use tower_client_headers::HeaderOverrides;
    ///
    /// let overrides = HeaderOverrides::new();
    /// # let _ = overrides;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Do not add the session's `name` to this request. The request's own `name`, if any, is
    /// sent as it is. Removing `Authorization` also stops
    /// [`BearerAuthLayer`](crate::BearerAuthLayer) from adding a token.
    ///
    /// ```
    /// use http::header::USER_AGENT;
    /// use tower_client_headers::HeaderOverrides;
    ///
    /// let overrides = HeaderOverrides::new().remove(USER_AGENT);
    /// # let _ = overrides;
    /// ```
    pub fn remove(mut self, name: HeaderName) -> Self {
        if !self.removed.contains(&name) {
            self.removed.push(name);
        }
        self
    }

    /// Add no session header at all to this request, `Authorization` from
    /// [`BearerAuthLayer`](crate::BearerAuthLayer) included. Headers given with
    /// [`set`](Self::set) or [`bearer_token`](Self::bearer_token) are still sent.
    ///
    /// ```
    /// use tower_client_headers::HeaderOverrides;
    ///
    /// let overrides = HeaderOverrides::new().remove_all();
    /// # let _ = overrides;
    /// ```
    pub fn remove_all(mut self) -> Self {
        self.remove_all = true;
        self
    }

    /// Send exactly `value` for `name`, replacing the request's own values and the session's.
    /// Calling it again for the same name adds another value. Values of `authorization`,
    /// `proxy-authorization` and `cookie` are marked sensitive.
    ///
    /// Setting `Authorization` replaces an earlier [`bearer_token`](Self::bearer_token).
    ///
    /// ```
    /// use http::header::ACCEPT;
    /// use http::HeaderValue;
    /// use tower_client_headers::HeaderOverrides;
    ///
    /// let overrides = HeaderOverrides::new()
    ///     .set(ACCEPT, HeaderValue::from_static("text/csv"))
    ///     .set(ACCEPT, HeaderValue::from_static("text/plain"));
    /// # let _ = overrides;
    /// ```
    pub fn set(mut self, name: HeaderName, mut value: HeaderValue) -> Self {
        if is_always_sensitive(&name) {
            value.set_sensitive(true);
        }
        if name == AUTHORIZATION {
            self.bearer = None;
        }
        self.set.append(name, value);
        self
    }

    /// Send `token` as `Authorization: Bearer <token>` with this request instead of the
    /// [`BearerAuthLayer`](crate::BearerAuthLayer)'s own token, without asking its token source.
    /// It beats removals and the request's own `Authorization`, and replaces an earlier
    /// `set(AUTHORIZATION, ..)`. Plain `http://` to a host that is not loopback is still refused.
    ///
    /// ```
    /// use tower_client_headers::{BearerToken, HeaderOverrides};
    ///
    /// let overrides = HeaderOverrides::new().bearer_token(BearerToken::new("caller-token")?);
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn bearer_token(mut self, token: BearerToken) -> Self {
        self.set.remove(AUTHORIZATION);
        self.bearer = Some(token);
        self
    }

    /// Send no `Authorization` from the session or
    /// [`BearerAuthLayer`](crate::BearerAuthLayer): the same as `remove(AUTHORIZATION)`.
    ///
    /// ```
    /// use tower_client_headers::HeaderOverrides;
    ///
    /// let overrides = HeaderOverrides::new().without_auth();
    /// # let _ = overrides;
    /// ```
    pub fn without_auth(self) -> Self {
        self.remove(AUTHORIZATION)
    }

    /// Whether the session adds nothing for `name` (unless `set` gives it).
    pub(crate) fn suppresses(&self, name: &HeaderName) -> bool {
        self.remove_all || self.removes(name)
    }

    /// The names this request removes by name. A per-request token removes the session's
    /// `Authorization`, so the token wins whichever side of `DefaultHeadersLayer` the
    /// `BearerAuthLayer` sits (`DefaultHeadersLayer` itself never sends the token).
    pub(crate) fn removed_names(&self) -> impl Iterator<Item = &HeaderName> {
        let token_removes = self.bearer.as_ref().map(|_| &AUTHORIZATION);
        self.removed.iter().chain(token_removes)
    }

    /// Whether `name` is one of [`removed_names`](Self::removed_names).
    pub(crate) fn removes(&self, name: &HeaderName) -> bool {
        self.removed_names().any(|n| n == name)
    }

    /// Whether these overrides change what a [`DefaultHeadersLayer`](crate::DefaultHeadersLayer)
    /// does.
    pub(crate) fn affects_session(&self) -> bool {
        self.remove_all || !self.removed.is_empty() || !self.set.is_empty() || self.bearer.is_some()
    }
}

pub(crate) fn is_always_sensitive(name: &HeaderName) -> bool {
    name == AUTHORIZATION || name == PROXY_AUTHORIZATION || name == COOKIE
}

pub(crate) fn mark_credentials_sensitive(headers: &mut HeaderMap) {
    for (name, value) in headers.iter_mut() {
        if is_always_sensitive(name) {
            value.set_sensitive(true);
        }
    }
}

impl fmt::Debug for HeaderOverrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: values set per request are often credentials.
        f.debug_struct("HeaderOverrides")
            .field("remove_all", &self.remove_all)
            .field("remove", &self.removed)
            .field("set", &self.set.keys().collect::<Vec<_>>())
            .field("bearer_token", &self.bearer.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_values() {
        let token = BearerToken::new("s3cr3t-token").expect("valid");
        let o = HeaderOverrides::new()
            .set(
                HeaderName::from_static("x-api-key"),
                HeaderValue::from_static("hunter2"),
            )
            .bearer_token(token)
            .remove(HeaderName::from_static("x-trace"));
        let dbg = format!("{o:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
        assert!(
            dbg.contains("x-api-key") && dbg.contains("x-trace"),
            "{dbg}"
        );
    }

    #[test]
    fn set_marks_credentials_sensitive() {
        let o = HeaderOverrides::new()
            .set(COOKIE, HeaderValue::from_static("a=b"))
            .set(http::header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(o.set.get(COOKIE).is_some_and(HeaderValue::is_sensitive));
        assert!(!o
            .set
            .get(http::header::ACCEPT)
            .is_some_and(HeaderValue::is_sensitive));
    }

    #[test]
    fn bearer_token_and_set_authorization_replace_each_other() {
        let token = BearerToken::new("t1").expect("valid");
        let o = HeaderOverrides::new()
            .set(AUTHORIZATION, HeaderValue::from_static("Basic abc"))
            .bearer_token(token.clone());
        assert!(o.set.get(AUTHORIZATION).is_none());
        assert!(o.bearer.is_some());
        let o = o.set(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(o.bearer.is_none());
        assert_eq!(o.set.get_all(AUTHORIZATION).iter().count(), 1);
    }

    #[test]
    fn empty_and_remove_is_idempotent() {
        assert!(!HeaderOverrides::new().affects_session());
        let token = BearerToken::new("t").expect("valid");
        let with_token = HeaderOverrides::new().bearer_token(token);
        assert!(with_token.affects_session());
        assert!(with_token.removes(&AUTHORIZATION) && !with_token.removes(&COOKIE));
        let o = HeaderOverrides::new().without_auth().remove(AUTHORIZATION);
        assert_eq!(o.removed.len(), 1);
        assert!(o.affects_session());
        assert!(o.suppresses(&AUTHORIZATION));
        assert!(HeaderOverrides::new().remove_all().suppresses(&COOKIE));
    }
}

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
use std::sync::{Arc, OnceLock};

use http::header::{GetAll, AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::credential::Credential;
use crate::origin::{Place, Target};
use crate::token::BearerToken;

/// Per-request overrides of session headers, carried in the request's extensions.
///
/// - [`remove`](Self::remove) and [`remove_all`](Self::remove_all) stop the session (and
///   [`BearerAuthLayer`](crate::BearerAuthLayer), for `Authorization`) from adding headers;
///   the request's own headers are left as they are.
/// - [`set`](Self::set) makes a header exactly the given values, replacing the request's own
///   and the session's. `set` beats `remove`, whatever the order of the calls.
/// - [`bearer_token`](Self::bearer_token) sends another token with this request, and
///   [`credential`](Self::credential) any other credential (Basic, an API key) in place of the
///   auth layer's own. [`without_auth`](Self::without_auth) sends none.
///
/// Overrides only act in a layer whose origins the request is sent to: a request to another
/// origin passes the layer untouched, overrides included.
///
/// # Credentials stay with their origin
///
/// The credentials a `HeaderOverrides` carries, [`bearer_token`](Self::bearer_token),
/// [`credential`](Self::credential) and [`set`](Self::set) of `authorization`, `proxy-authorization`, `cookie` or of any value
/// marked sensitive, belong to the origin (scheme, host, port) of the **first request the
/// layers see them on**. On any other origin, a redirect hop say, no layer of this crate sends
/// them, and each acts as a [`remove`](Self::remove) of its name there: neither the caller's
/// credential nor the session's own is sent in its place. Removals apply on every hop.
///
/// This is what keeps a caller's token the caller's when a redirect layer (tower-http's
/// `FollowRedirectLayer` with `FilterCredentials::new().allow_extension::<HeaderOverrides>()`)
/// carries the overrides along a chain such as A -> B -> A: B gets nothing, and the hop back to
/// A gets the caller's token, not the service's.
///
/// The binding is shared by clones, because that is how a redirect layer's copies of the
/// request keep it. So a `HeaderOverrides` is one request's: build one per request. Every
/// builder method returns a value with a fresh, unbound binding; only a plain `clone()` of one
/// that was already used stays bound where it was first used. (With reqwest-middleware, that
/// includes a client-wide `ClientBuilder::with_init(Extension(..))` carrying credentials:
/// they apply at the first origin the client sends them to.)
///
/// # Capacity
///
/// [`set`](Self::set) keeps at most as many distinct names as an `http::HeaderMap` holds
/// (24,576); a value for a further name is dropped, since no request could carry it. It never
/// panics.
///
/// `Debug` shows the names involved, and the origin credentials are bound to, never a value.
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
    remove_all: bool,
    removed: Vec<HeaderName>,
    set: HeaderMap,
    /// Per-request credentials for auth layers, at most one per header name.
    credentials: Vec<Credential>,
    /// `without_auth()`: no auth layer sends its credential, whatever its header.
    without_auth: bool,
    /// Whether `set` was ever given a credential (kept set when a later call removes it again:
    /// binding a value with nothing to bind costs nothing).
    set_credentials: bool,
    /// The place the credentials belong to, recorded by the first layer that sees them.
    binding: Arc<OnceLock<Place>>,
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

    /// A builder call makes a new set of overrides: it is not bound where an earlier clone was
    /// used.
    fn unbound(mut self) -> Self {
        match Arc::get_mut(&mut self.binding) {
            Some(cell) => {
                cell.take();
            }
            None => self.binding = Arc::default(),
        }
        self
    }

    /// Do not add the session's `name` to this request. The request's own `name`, if any, is
    /// sent as it is. Removing `Authorization` also stops
    /// [`BearerAuthLayer`](crate::BearerAuthLayer) from adding a token.
    ///
    /// It takes an `http::HeaderName`: a constant such as `USER_AGENT`, or
    /// `HeaderName::from_static("x-request-id")` for a name of your own.
    ///
    /// ```
    /// use http::header::USER_AGENT;
    /// use http::HeaderName;
    /// use tower_client_headers::HeaderOverrides;
    ///
    /// let overrides = HeaderOverrides::new()
    ///     .remove(USER_AGENT)
    ///     .remove(HeaderName::from_static("x-request-id"));
    /// # let _ = overrides;
    /// ```
    pub fn remove(mut self, name: HeaderName) -> Self {
        if !self.removed.contains(&name) {
            self.removed.push(name);
        }
        self.unbound()
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
        self.unbound()
    }

    /// Send exactly `value` for `name`, replacing the request's own values and the session's.
    /// Calling it again for the same name adds another value. Values of `authorization`,
    /// `proxy-authorization` and `cookie` are marked sensitive. A credential (one of those
    /// names, or a value you marked sensitive) is sent only at the origin of the first request
    /// the layers see it on (see [Credentials stay with their origin](Self#credentials-stay-with-their-origin)).
    /// Several `cookie` values are sent as one `Cookie` field, joined with `"; "`.
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
        self.credentials.retain(|c| c.header_name() != name);
        let credential = value.is_sensitive();
        // At capacity the value is dropped: no request could carry another name either.
        if self.set.try_append(name, value).is_ok() {
            self.set_credentials |= credential;
        }
        self.unbound()
    }

    /// Send `token` as `Authorization: Bearer <token>` with this request instead of the
    /// [`BearerAuthLayer`](crate::BearerAuthLayer)'s own token, without asking its token source.
    /// It beats removals and the request's own `Authorization`, and replaces an earlier
    /// `set(AUTHORIZATION, ..)`. Plain `http://` to a host that is not loopback is still refused.
    /// The token is sent only at the origin of the first request the layers see it on (see
    /// [Credentials stay with their origin](Self#credentials-stay-with-their-origin)).
    ///
    /// ```
    /// use tower_client_headers::{BearerToken, HeaderOverrides};
    ///
    /// let overrides = HeaderOverrides::new().bearer_token(BearerToken::new("caller-token")?);
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn bearer_token(self, token: BearerToken) -> Self {
        self.credential(Credential::bearer(token))
    }

    /// Send `credential` with this request instead of the own credential of the
    /// [`BearerAuthLayer`](crate::BearerAuthLayer) whose header it is (Basic credentials, an
    /// API key), without asking that layer's token source. The same rules as
    /// [`bearer_token`](Self::bearer_token), which is this for a bearer token: it beats removals
    /// and the request's own value, replaces an earlier credential or `set` of the same header,
    /// is refused over plain `http://` to a host that is not loopback, and is sent only at the
    /// origin of the first request the layers see it on. Auth layers send it: the one for its
    /// header instead of its own credential, any other beside its own (a caller's token
    /// forwarded through an API-key layer goes with the service's key), so it is never
    /// dropped. A [`DefaultHeadersLayer`](crate::DefaultHeadersLayer) does not send it, and
    /// drops its own values of that header for the request.
    ///
    /// ```
    /// use tower_client_headers::{Credential, HeaderOverrides};
    ///
    /// // This request acts as another user.
    /// let overrides = HeaderOverrides::new().credential(Credential::basic("bob", "pw")?);
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn credential(mut self, credential: Credential) -> Self {
        self.set.remove(credential.header_name());
        self.credentials
            .retain(|c| c.header_name() != credential.header_name());
        self.credentials.push(credential);
        self.unbound()
    }

    /// Send no credential from any [`BearerAuthLayer`](crate::BearerAuthLayer), whatever its
    /// header (`Authorization`, an API key's), and no `Authorization` from the session: for the
    /// session, the same as `remove(AUTHORIZATION)`. A [`credential`](Self::credential) or
    /// [`bearer_token`](Self::bearer_token) given for this request is still sent.
    ///
    /// ```
    /// use tower_client_headers::HeaderOverrides;
    ///
    /// let overrides = HeaderOverrides::new().without_auth();
    /// # let _ = overrides;
    /// ```
    pub fn without_auth(mut self) -> Self {
        self.without_auth = true;
        self.remove(AUTHORIZATION)
    }

    /// These overrides as they apply to a request to `target`. The first call for overrides
    /// that carry credentials binds them to `target`'s place; every layer, on every hop, goes
    /// through here, so the binding is the same for all of them.
    #[inline]
    pub(crate) fn at(&self, target: &Target<'_>) -> Applied<'_> {
        self.at_for(target, None)
    }

    /// [`at`](Self::at) for an auth layer whose credential goes in `auth_header`: a `set` of
    /// that header is a credential there, bound like the others, whether or not its values
    /// were marked sensitive.
    #[inline]
    pub(crate) fn at_for<'a>(
        &'a self,
        target: &Target<'_>,
        auth_header: Option<&'a HeaderName>,
    ) -> Applied<'a> {
        let has_credentials = !self.credentials.is_empty()
            || self.set_credentials
            || auth_header.is_some_and(|h| self.set.contains_key(h));
        let here = !has_credentials || self.binding.get_or_init(|| Place::of(target)).is(target);
        Applied {
            overrides: self,
            here,
            auth_header,
        }
    }

    /// Whether these overrides change what a [`DefaultHeadersLayer`](crate::DefaultHeadersLayer)
    /// does.
    fn affects_session(&self) -> bool {
        self.remove_all
            || !self.removed.is_empty()
            || !self.set.is_empty()
            || !self.credentials.is_empty()
    }
}

/// [`HeaderOverrides`] as they apply to one request: its credentials are withheld (and act as
/// removals) when the request does not go to the place they are bound to. The merge rule and
/// the bearer rule read overrides only through this.
#[derive(Clone, Copy)]
pub(crate) struct Applied<'a> {
    overrides: &'a HeaderOverrides,
    /// Whether the request goes where the credentials belong (always, without credentials).
    here: bool,
    /// The header of the auth layer reading these overrides, whose `set` is a credential.
    auth_header: Option<&'a HeaderName>,
}

impl<'a> Applied<'a> {
    pub(crate) fn remove_all(&self) -> bool {
        self.overrides.remove_all
    }

    /// A credential set for `name` that this request must not carry.
    fn withheld(&self, name: &HeaderName) -> bool {
        !self.here
            && (is_always_sensitive(name)
                || self.auth_header == Some(name)
                || self
                    .overrides
                    .set
                    .get_all(name)
                    .iter()
                    .any(HeaderValue::is_sensitive))
    }

    /// The values `set` gives `name` for this request, if any.
    pub(crate) fn set_values(&self, name: &HeaderName) -> Option<GetAll<'a, HeaderValue>> {
        if !self.overrides.set.contains_key(name) || self.withheld(name) {
            return None;
        }
        Some(self.overrides.set.get_all(name))
    }

    /// Whether `set` gives `name` values for this request.
    pub(crate) fn sets(&self, name: &HeaderName) -> bool {
        self.overrides.set.contains_key(name) && !self.withheld(name)
    }

    /// The names `set` gives values for this request, each once.
    pub(crate) fn set_names(self) -> impl Iterator<Item = &'a HeaderName> {
        self.overrides.set.keys().filter(move |n| !self.withheld(n))
    }

    /// This request's credential for the header `name`, unless it belongs elsewhere.
    pub(crate) fn credential(&self, name: &HeaderName) -> Option<&'a Credential> {
        if !self.here {
            return None;
        }
        self.overrides
            .credentials
            .iter()
            .find(|c| c.header_name() == name)
    }

    /// This request's credentials for other headers than `name`, unless they belong elsewhere:
    /// an auth layer sends them too, so that a per-request credential is never dropped for
    /// want of a layer of its own header.
    pub(crate) fn other_credentials(
        &self,
        name: &'a HeaderName,
    ) -> impl Iterator<Item = &'a Credential> + 'a {
        let here = self.here;
        self.overrides
            .credentials
            .iter()
            .filter(move |c| here && c.header_name() != name)
    }

    /// Whether `without_auth()` was called: no auth layer sends its own credential.
    pub(crate) fn without_auth(&self) -> bool {
        self.overrides.without_auth
    }

    /// The names this request removes by name. A per-request credential removes the session's
    /// values of its header (here or withheld), so it wins whichever side of
    /// `DefaultHeadersLayer` the `BearerAuthLayer` sits (`DefaultHeadersLayer` itself never
    /// sends it); a withheld credential removes its name.
    pub(crate) fn removed_names(self) -> impl Iterator<Item = &'a HeaderName> {
        let o = self.overrides;
        let credentials_remove = o.credentials.iter().map(Credential::header_name);
        let withheld = o.set.keys().filter(move |n| self.withheld(n));
        o.removed.iter().chain(credentials_remove).chain(withheld)
    }

    /// Whether `name` is one of [`removed_names`](Self::removed_names).
    pub(crate) fn removes(&self, name: &HeaderName) -> bool {
        self.removed_names().any(|n| n == name)
    }

    /// Whether the session adds nothing for `name` (unless `set` gives it).
    pub(crate) fn suppresses(&self, name: &HeaderName) -> bool {
        self.remove_all() || self.removes(name)
    }

    /// Whether these overrides change what a [`DefaultHeadersLayer`](crate::DefaultHeadersLayer)
    /// does.
    pub(crate) fn affects_session(&self) -> bool {
        self.overrides.affects_session()
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
        // Names only: values set per request are often credentials. The bound place is a
        // scheme, host and port, never a secret.
        f.debug_struct("HeaderOverrides")
            .field("remove_all", &self.remove_all)
            .field("remove", &self.removed)
            .field("set", &self.set.keys().collect::<Vec<_>>())
            .field("credentials", &self.credentials)
            .field("without_auth", &self.without_auth)
            .field("credentials_bound_to", &self.binding.get())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(uri: &'static str) -> Target<'static> {
        let uri: &'static http::Uri = Box::leak(Box::new(uri.parse().expect("uri")));
        Target::from_uri(uri)
    }

    const A: &str = "https://a.example/x";
    const B: &str = "https://b.example/x";

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
        let _ = o.at(&target("https://a.example:8443/p?q=hunter2"));
        let dbg = format!("{o:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
        assert!(
            dbg.contains("x-api-key") && dbg.contains("x-trace"),
            "{dbg}"
        );
        assert!(dbg.contains("https://a.example:8443"), "{dbg}");
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
        assert_eq!(o.credentials.len(), 1);
        let o = o.set(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(o.credentials.is_empty());
        assert_eq!(o.set.get_all(AUTHORIZATION).iter().count(), 1);
    }

    #[test]
    fn credentials_replace_per_header_and_clear_sets_of_it() {
        let key = HeaderName::from_static("x-api-key");
        let o = HeaderOverrides::new()
            .set(key.clone(), HeaderValue::from_static("plain"))
            .credential(Credential::api_key("x-api-key", "k1").expect("valid"))
            .credential(Credential::basic("u", "p").expect("valid"))
            .credential(Credential::api_key("x-api-key", "k2").expect("valid"));
        assert!(o.set.get(&key).is_none());
        assert_eq!(o.credentials.len(), 2);
        let a = target(A);
        let applied = o.at(&a);
        assert_eq!(
            applied.credential(&key).map(Credential::header_value),
            Some(&HeaderValue::from_static("k2"))
        );
        assert!(applied.credential(&AUTHORIZATION).is_some());
        // Each removes the session's values of its header.
        assert!(applied.removes(&key) && applied.removes(&AUTHORIZATION));
        // Bound like any credential: elsewhere, none.
        assert!(o.at(&target(B)).credential(&key).is_none());
        // `set` of the header drops the credential.
        let o = o.set(key.clone(), HeaderValue::from_static("v"));
        assert!(o.at(&a).credential(&key).is_none());
        let dbg = format!("{o:?}");
        assert!(!dbg.contains("k2") && dbg.contains("x-api-key"), "{dbg}");
    }

    #[test]
    fn empty_and_remove_is_idempotent() {
        let a = target(A);
        assert!(!HeaderOverrides::new().at(&a).affects_session());
        let token = BearerToken::new("t").expect("valid");
        let with_token = HeaderOverrides::new().bearer_token(token);
        let applied = with_token.at(&a);
        assert!(applied.affects_session());
        assert!(applied.removes(&AUTHORIZATION) && !applied.removes(&COOKIE));
        let o = HeaderOverrides::new().without_auth().remove(AUTHORIZATION);
        assert_eq!(o.removed.len(), 1);
        assert!(o.at(&a).without_auth());
        assert!(!HeaderOverrides::new()
            .remove(AUTHORIZATION)
            .at(&a)
            .without_auth());
        assert!(o.at(&a).affects_session());
        assert!(o.at(&a).suppresses(&AUTHORIZATION));
        assert!(HeaderOverrides::new()
            .remove_all()
            .at(&a)
            .suppresses(&COOKIE));
    }

    #[test]
    fn credentials_are_bound_to_the_first_place_seen_and_shared_by_clones() {
        let api_key = HeaderName::from_static("x-api-key");
        let mut secret = HeaderValue::from_static("k");
        secret.set_sensitive(true);
        let o = HeaderOverrides::new()
            .bearer_token(BearerToken::new("caller").expect("valid"))
            .set(COOKIE, HeaderValue::from_static("sid=1"))
            .set(PROXY_AUTHORIZATION, HeaderValue::from_static("Basic p"))
            .set(api_key.clone(), secret)
            .set(http::header::ACCEPT, HeaderValue::from_static("text/csv"))
            .remove(http::header::USER_AGENT);
        // A redirect layer's snapshot, taken before any layer saw the request.
        let snapshot = o.clone();
        let here = o.at(&target(A));
        assert!(here.credential(&AUTHORIZATION).is_some());
        assert!(here.sets(&COOKIE) && here.sets(&PROXY_AUTHORIZATION) && here.sets(&api_key));
        assert!(!here.removes(&COOKIE));

        for applied in [snapshot.at(&target(B)), o.at(&target("http://a.example/x"))] {
            // Elsewhere: no credential, each one a removal; other sets and removals stay.
            assert!(applied.credential(&AUTHORIZATION).is_none());
            for name in [&COOKIE, &PROXY_AUTHORIZATION, &api_key, &AUTHORIZATION] {
                assert!(!applied.sets(name), "{name}");
                assert!(applied.set_values(name).is_none(), "{name}");
                assert!(applied.removes(name), "{name}");
            }
            assert!(applied.sets(&http::header::ACCEPT));
            assert!(applied.removes(&http::header::USER_AGENT));
            assert_eq!(applied.set_names().count(), 1);
        }
        // Back at A, on the snapshot too: the caller's credentials again.
        assert!(snapshot
            .at(&target("https://A.example:443/other"))
            .credential(&AUTHORIZATION)
            .is_some());
    }

    #[test]
    fn overrides_without_credentials_are_never_bound() {
        let o = HeaderOverrides::new()
            .set(http::header::ACCEPT, HeaderValue::from_static("text/csv"))
            .remove_all();
        assert!(o.at(&target(A)).sets(&http::header::ACCEPT));
        assert!(o.at(&target(B)).sets(&http::header::ACCEPT));
        assert!(o.binding.get().is_none());
    }

    #[test]
    fn a_builder_call_starts_a_new_binding_a_clone_keeps_it() {
        let o = HeaderOverrides::new().bearer_token(BearerToken::new("t").expect("valid"));
        assert!(o.at(&target(A)).credential(&AUTHORIZATION).is_some());
        let reused = o.clone();
        assert!(reused.at(&target(B)).credential(&AUTHORIZATION).is_none());
        // A new request built from it is a new set of overrides.
        let rebuilt = o.clone().remove(http::header::USER_AGENT);
        assert!(rebuilt.at(&target(B)).credential(&AUTHORIZATION).is_some());
        assert!(rebuilt.at(&target(A)).credential(&AUTHORIZATION).is_none());
        // The original keeps its own binding.
        assert!(o.at(&target(A)).credential(&AUTHORIZATION).is_some());
    }

    #[test]
    fn set_at_capacity_drops_further_names_and_never_panics() {
        let mut o = HeaderOverrides::new();
        for i in 0..30_000 {
            let name = HeaderName::from_bytes(format!("x-h{i}").as_bytes()).expect("name");
            o = o.set(name, HeaderValue::from_static("v"));
        }
        assert_eq!(o.set.keys_len(), crate::default_headers::MAX_HEADER_NAMES);
        // A full map refuses even another value of a name it has (http will not grow it);
        // dropped too, without a panic.
        let o = o.set(
            HeaderName::from_static("x-h0"),
            HeaderValue::from_static("w"),
        );
        assert_eq!(o.set.keys_len(), crate::default_headers::MAX_HEADER_NAMES);
    }
}

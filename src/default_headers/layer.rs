use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use tower_layer::Layer;

use super::computed::{Computed, RequestHead};
use super::merge::Policy;
use super::session::Shared;
use super::{DefaultHeaders, SessionHandle, SessionHeaders};
use crate::error::{Error, ErrorKind};
use crate::origin::{Origin, Origins};
use crate::overrides::{is_always_sensitive, mark_credentials_sensitive};

/// The most distinct names an `http::HeaderMap` holds: 3/4 of its 32,768 slots.
pub(crate) const MAX_HEADER_NAMES: usize = 24_576;

/// Layer that applies [`DefaultHeaders`], which adds session headers to every request.
///
/// Cheap to clone (the headers are shared), `Send + Sync + 'static`, and its `Debug` shows
/// header names and policies, never values. The session can be changed while in use through
/// a [`SessionHandle`] (see [`handle`](Self::handle)): clones of the layer and every service
/// made from it share it.
///
/// ```
/// use http::HeaderMap;
/// use http::header::{ACCEPT, USER_AGENT};
/// use tower_client_headers::DefaultHeadersLayer;
///
/// let mut headers = HeaderMap::new();
/// headers.insert(USER_AGENT, "my-app/1.0".parse()?);
/// headers.insert(ACCEPT, "application/json".parse()?);
/// let layer = DefaultHeadersLayer::new(headers);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct DefaultHeadersLayer {
    pub(crate) shared: Arc<Shared>,
}

impl DefaultHeadersLayer {
    /// Create a new [`DefaultHeadersLayer`] from a header map; every name gets the if-absent
    /// policy (a request's own values win) and every value of a multi-valued name is sent.
    /// Values of `authorization`, `proxy-authorization` and `cookie` are marked sensitive.
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue};
    /// use tower_client_headers::DefaultHeadersLayer;
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.append("accept", HeaderValue::from_static("application/json"));
    /// headers.append("accept", HeaderValue::from_static("text/plain"));
    /// let layer = DefaultHeadersLayer::new(headers);
    /// # let _ = layer;
    /// ```
    pub fn new(mut headers: HeaderMap) -> Self {
        mark_credentials_sensitive(&mut headers);
        Self::from_session(SessionHeaders::new(
            headers,
            HeaderMap::default(),
            HeaderMap::default(),
            Origins::default(),
        ))
    }

    fn from_session(session: SessionHeaders) -> Self {
        Self {
            shared: Shared::new(session),
        }
    }

    /// Create a [`DefaultHeadersBuilder`] to choose policies, sensitive values and origins.
    ///
    /// ```
    /// use tower_client_headers::DefaultHeadersLayer;
    ///
    /// let layer = DefaultHeadersLayer::builder()
    ///     .header("user-agent", "my-app/1.0")
    ///     .override_header("x-client", "my-app")
    ///     .append_header("x-trace-tags", "session")
    ///     .sensitive_header("x-api-key", "k-123")
    ///     .origin("https://api.example.com")
    ///     .build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn builder() -> DefaultHeadersBuilder {
        DefaultHeadersBuilder::default()
    }

    /// A snapshot of the session's static header values, every value in order (sensitive
    /// values stay marked), as the latest [`SessionHandle::update`] left them. Computed values
    /// are not in it: they exist only per request.
    ///
    /// ```
    /// use tower_client_headers::DefaultHeadersLayer;
    ///
    /// let layer = DefaultHeadersLayer::builder().header("accept", "text/csv").build()?;
    /// assert_eq!(layer.headers()["accept"], "text/csv");
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn headers(&self) -> HeaderMap {
        self.shared.load().headers().clone()
    }

    /// A [`SessionHandle`] to change the session headers while the layer is in use, for this
    /// layer, its clones, and every service made from any of them, already or later.
    ///
    /// ```
    /// use tower_client_headers::DefaultHeadersLayer;
    ///
    /// let layer = DefaultHeadersLayer::builder().header("user-agent", "my-app/1.0").build()?;
    /// let session = layer.handle();
    /// let clone = layer.clone();
    /// session.update(|s| s.sensitive_header("x-api-key", "k-123"))?;
    /// assert!(clone.headers()["x-api-key"].is_sensitive());
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn handle(&self) -> SessionHandle {
        SessionHandle::new(Arc::clone(&self.shared))
    }

    /// The current session, for one request (the reqwest-middleware adapter and tests).
    #[cfg(any(test, feature = "reqwest-middleware"))]
    #[inline]
    pub(crate) fn session(&self) -> arc_swap::Guard<Arc<SessionHeaders>> {
        self.shared.load()
    }
}

impl<S> Layer<S> for DefaultHeadersLayer {
    type Service = DefaultHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DefaultHeaders::new(inner, self.clone())
    }
}

impl fmt::Debug for DefaultHeadersLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultHeadersLayer")
            .field("headers", &self.shared)
            .finish()
    }
}

/// Builder for [`DefaultHeadersLayer`].
///
/// Names and values are taken as `http::request::Builder::header` takes them. The first invalid
/// name, value or origin is kept and returned by [`build`](Self::build), so a chain of calls
/// reads cleanly and never panics.
///
/// ```
/// use tower_client_headers::{DefaultHeadersLayer, ErrorKind};
///
/// let err = DefaultHeadersLayer::builder()
///     .header("accept", "application/json")
///     .header("bad name", "x")
///     .build()
///     .unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidHeaderName);
/// ```
#[derive(Default)]
pub struct DefaultHeadersBuilder {
    /// Static values. A name is here or in `computed`, never in both.
    headers: HeaderMap,
    computed: HeaderMap<Computed>,
    /// The policy of every name in `headers` and `computed`.
    policies: HeaderMap<Policy>,
    origins: Origins,
    /// Calls that name a header, counted for error messages.
    calls: usize,
    error: Option<Error>,
}

impl DefaultHeadersBuilder {
    /// A builder holding `session`, for [`SessionHandle::update`]. Calls are counted from
    /// there, so an error message points at the update's own calls.
    pub(crate) fn from_session(session: &SessionHeaders) -> Self {
        let mut policies = HeaderMap::default();
        for name in session.headers().keys().chain(session.computed().keys()) {
            // As many names as the session's own maps hold, so they fit.
            let _ = policies.try_insert(name.clone(), session.policy(name));
        }
        Self {
            headers: session.headers().clone(),
            computed: session.computed().clone(),
            policies,
            origins: session.origins().clone(),
            calls: 0,
            error: None,
        }
    }

    /// The name of builder call `self.calls`, or the error that says it is invalid.
    fn name<K>(&mut self, name: K, call: &str) -> Option<HeaderName>
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
    {
        if self.error.is_some() {
            return None;
        }
        // An invalid name is not echoed: arguments in the wrong order would put a secret here.
        let Ok(name) = HeaderName::try_from(name) else {
            self.error = Some(Error::new(
                ErrorKind::InvalidHeaderName,
                format!(
                    "invalid header name in {call} #{} of the builder (calls counted from \
                     the builder's start, or from the start of an update's closure; the name \
                     is not shown in case it is a misplaced secret): a name is letters, digits \
                     and !#$%&'*+-.^_`|~ only{}",
                    self.calls,
                    if call == "remove" {
                        ""
                    } else {
                        "; check that the name comes before the value"
                    }
                ),
            ));
            return None;
        };
        Some(name)
    }

    /// Record `name`'s policy; `false` (and the error) when a header map could not take one
    /// more name.
    fn set_policy(&mut self, name: &HeaderName, policy: Policy) -> bool {
        // The last policy given for a name applies to all its values. `headers` and
        // `computed` hold a subset of these names, so they reach capacity no sooner.
        // A name it has takes its new policy in place: `try_insert` would first ask a full
        // map for room it does not need.
        if let Some(old) = self.policies.get_mut(name) {
            *old = policy;
            return true;
        }
        if self.policies.try_insert(name.clone(), policy).is_ok() {
            return true;
        }
        self.too_many();
        false
    }

    fn too_many(&mut self) {
        self.error = Some(Error::new(
            ErrorKind::TooManyHeaders,
            format!(
                "too many header names at header #{} of the builder: an http::HeaderMap \
                 holds at most {MAX_HEADER_NAMES}; use fewer names (several values can \
                 share one name)",
                self.calls
            ),
        ));
    }

    fn add<K, V>(mut self, name: K, value: V, policy: Policy, sensitive: bool) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        self.calls += 1;
        let Some(name) = self.name(name, "header") else {
            return self;
        };
        let Ok(mut value) = HeaderValue::try_from(value) else {
            self.error = Some(Error::new(
                ErrorKind::InvalidHeaderValue,
                format!(
                    "invalid value for header `{name}` (not shown): header values may not \
                     contain CR, LF or other control characters; remove them, or encode the \
                     value (percent-encoding, base64)"
                ),
            ));
            return self;
        };
        if sensitive || is_always_sensitive(&name) {
            value.set_sensitive(true);
        }
        if !self.set_policy(&name, policy) {
            return self;
        }
        // A static value replaces computed ones of the name.
        self.computed.remove(&name);
        if try_append(&mut self.headers, name, value).is_err() {
            self.too_many();
        }
        self
    }

    fn add_with<K, F>(mut self, name: K, make: F, policy: Policy, sensitive: bool) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        F: Fn(&RequestHead<'_>) -> Option<HeaderValue> + Send + Sync + 'static,
    {
        self.calls += 1;
        let Some(name) = self.name(name, "header") else {
            return self;
        };
        if !self.set_policy(&name, policy) {
            return self;
        }
        // A computed value replaces static ones of the name.
        self.headers.remove(&name);
        if try_append(&mut self.computed, name, Computed::new(make, sensitive)).is_err() {
            self.too_many();
        }
        self
    }

    /// Forget every value of `name`, static or computed, and its policy: the session no longer
    /// defines it. Removing a name the session does not define does nothing. Mostly for
    /// [`SessionHandle::update`], e.g. on logout, or to replace a value.
    ///
    /// An invalid name is reported by [`build`](Self::build) (or `update`), as for
    /// [`header`](Self::header).
    ///
    /// ```
    /// use tower_client_headers::DefaultHeadersLayer;
    ///
    /// let layer = DefaultHeadersLayer::builder()
    ///     .header("accept", "application/json")
    ///     .sensitive_header("x-session-id", "s-1")
    ///     .build()?;
    /// layer.handle().update(|s| s.remove("x-session-id"))?;
    /// assert!(layer.headers().get("x-session-id").is_none());
    /// assert_eq!(layer.headers()["accept"], "application/json");
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn remove<K>(mut self, name: K) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
    {
        self.calls += 1;
        if let Some(name) = self.name(name, "remove") {
            self.headers.remove(&name);
            self.computed.remove(&name);
            self.policies.remove(&name);
        }
        self
    }

    /// Add a session header with the if-absent policy: sent when the request has no value of
    /// its own for the name. Repeating a name adds another value; all are sent, in order.
    ///
    /// ```
    /// use tower_client_headers::DefaultHeadersLayer;
    ///
    /// let layer = DefaultHeadersLayer::builder()
    ///     .header("accept", "application/json")
    ///     .header("accept", "text/plain")
    ///     .build()?;
    /// assert_eq!(layer.headers().get_all("accept").iter().count(), 2);
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn header<K, V>(self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        self.add(name, value, Policy::IfAbsent, false)
    }

    /// Add a session header that replaces the request's own values of the name.
    ///
    /// ```
    /// use tower_client_headers::DefaultHeadersLayer;
    ///
    /// let layer = DefaultHeadersLayer::builder()
    ///     .override_header("user-agent", "my-app/1.0")
    ///     .build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn override_header<K, V>(self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        self.add(name, value, Policy::Override, false)
    }

    /// Add a session header whose values are sent after the request's own values of the name.
    ///
    /// ```
    /// use tower_client_headers::DefaultHeadersLayer;
    ///
    /// let layer = DefaultHeadersLayer::builder()
    ///     .append_header("via", "1.1 my-gateway")
    ///     .build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn append_header<K, V>(self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        self.add(name, value, Policy::Append, false)
    }

    /// Add an if-absent session header whose value is sensitive: hidden from `Debug` and never
    /// indexed by HTTP/2 header compression. For an API key prefer
    /// [`BearerAuthLayer`](crate::BearerAuthLayer) with
    /// [`Credential::api_key`](crate::Credential::api_key): it refuses plain `http://` to other
    /// hosts, and `HeaderOverrides::without_auth()` drops it (a session header it does not).
    ///
    /// ```
    /// use tower_client_headers::DefaultHeadersLayer;
    ///
    /// let layer = DefaultHeadersLayer::builder()
    ///     .sensitive_header("x-api-key", "k-123")
    ///     .build()?;
    /// assert!(layer.headers()["x-api-key"].is_sensitive());
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn sensitive_header<K, V>(self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        self.add(name, value, Policy::IfAbsent, true)
    }

    /// Add a session header whose value is computed for each request, with the if-absent
    /// policy: `make` is called only for requests that have no value of their own for the
    /// name (and that the layer acts on: inside its origins, the name not removed or set by
    /// the request's [`HeaderOverrides`](crate::HeaderOverrides)). It gets the request's
    /// [`RequestHead`]; returning `None` adds nothing to that request.
    ///
    /// Values follow the same rules as static ones: policies, origins, overrides, cookie
    /// joining, `authorization`, `proxy-authorization` and `cookie` always sensitive. Repeating
    /// a name adds another function, called in order. A name is static or computed: a later
    /// static call for it ([`header`](Self::header) and siblings) replaces its functions, and a
    /// later computed call replaces its static values. `make` runs inside `call`, on the
    /// request's path, so keep it quick; a panic in it reaches the caller.
    ///
    /// ```
    /// use http::{HeaderValue, Request, Response};
    /// use std::convert::Infallible;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
    /// use tower_client_headers::DefaultHeadersLayer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// // A request id per request (a UUID crate would do as well), unless the caller set one.
    /// let next_id = AtomicU64::new(1);
    /// let session = DefaultHeadersLayer::builder()
    ///     .header_with("x-request-id", move |_| {
    ///         Some(HeaderValue::from(next_id.fetch_add(1, Ordering::Relaxed)))
    ///     })
    ///     .build()?;
    /// let mut client = ServiceBuilder::new().layer(session).service(service_fn(
    ///     |req: Request<()>| async move { Ok::<_, Infallible>(Response::new(req.headers().clone())) },
    /// ));
    ///
    /// for expected in ["1", "2"] {
    ///     let sent = client.ready().await?.call(Request::new(())).await?.into_body();
    ///     assert_eq!(sent["x-request-id"], expected);
    /// }
    /// let own = Request::builder().header("x-request-id", "mine").body(())?;
    /// let sent = client.ready().await?.call(own).await?.into_body();
    /// assert_eq!(sent["x-request-id"], "mine");
    /// # Ok(()) }
    /// ```
    pub fn header_with<K, F>(self, name: K, make: F) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        F: Fn(&RequestHead<'_>) -> Option<HeaderValue> + Send + Sync + 'static,
    {
        self.add_with(name, make, Policy::IfAbsent, false)
    }

    /// Add a session header computed per request that replaces the request's own values of
    /// the name (when `make` returns `None`, the request's own values are left as they are).
    /// See [`header_with`](Self::header_with).
    ///
    /// ```
    /// use http::HeaderValue;
    /// use std::time::{SystemTime, UNIX_EPOCH};
    /// use tower_client_headers::DefaultHeadersLayer;
    ///
    /// // When the request was sent, in seconds since the epoch, whatever the caller said.
    /// let layer = DefaultHeadersLayer::builder()
    ///     .override_header_with("x-sent-at", |_| {
    ///         let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    ///         Some(HeaderValue::from(now.as_secs()))
    ///     })
    ///     .build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn override_header_with<K, F>(self, name: K, make: F) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        F: Fn(&RequestHead<'_>) -> Option<HeaderValue> + Send + Sync + 'static,
    {
        self.add_with(name, make, Policy::Override, false)
    }

    /// Add a session header computed per request whose value is sent after the request's own
    /// values of the name. See [`header_with`](Self::header_with).
    ///
    /// ```
    /// use http::HeaderValue;
    /// use tower_client_headers::DefaultHeadersLayer;
    ///
    /// let layer = DefaultHeadersLayer::builder()
    ///     .append_header_with("x-trace-tags", |head| {
    ///         HeaderValue::from_str(&format!("method={}", head.method())).ok()
    ///     })
    ///     .build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn append_header_with<K, F>(self, name: K, make: F) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        F: Fn(&RequestHead<'_>) -> Option<HeaderValue> + Send + Sync + 'static,
    {
        self.add_with(name, make, Policy::Append, false)
    }

    /// Add an if-absent session header computed per request whose values are marked sensitive
    /// (hidden from `Debug`, never indexed by HTTP/2 header compression): a request signature,
    /// a short-lived key. See [`header_with`](Self::header_with).
    ///
    /// ```
    /// use http::HeaderValue;
    /// use tower_client_headers::DefaultHeadersLayer;
    ///
    /// fn sign(method: &str, path: &str) -> String {
    ///     format!("v1:{}", method.len() + path.len()) // stands in for an HMAC
    /// }
    ///
    /// let layer = DefaultHeadersLayer::builder()
    ///     .sensitive_header_with("x-signature", |head| {
    ///         HeaderValue::from_str(&sign(head.method().as_str(), head.uri().path())).ok()
    ///     })
    ///     .origin("https://api.example.com")
    ///     .build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn sensitive_header_with<K, F>(self, name: K, make: F) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        F: Fn(&RequestHead<'_>) -> Option<HeaderValue> + Send + Sync + 'static,
    {
        self.add_with(name, make, Policy::IfAbsent, true)
    }

    /// Scope the layer to an origin, `scheme://host[:port]`; repeat for more. Requests to any
    /// other origin pass the layer untouched. With no origins, every request gets the headers.
    ///
    /// ```
    /// use tower_client_headers::DefaultHeadersLayer;
    ///
    /// let layer = DefaultHeadersLayer::builder()
    ///     .sensitive_header("x-api-key", "k-123")
    ///     .origin("https://api.example.com")
    ///     .origin("https://uploads.example.com:8443")
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

    /// Forget every origin given so far, so that [`origin`](Self::origin) calls after it scope
    /// the layer afresh: inside [`SessionHandle::update`](crate::SessionHandle::update), to move
    /// a live session to other origins. With no origin given after it, the session goes to
    /// **every** origin: give the new ones in the same update.
    ///
    /// ```
    /// use tower_client_headers::DefaultHeadersLayer;
    ///
    /// let layer = DefaultHeadersLayer::builder()
    ///     .sensitive_header("x-tenant", "acme")
    ///     .origin("https://eu.api.example.com")
    ///     .build()?;
    /// // The tenant moved region: same headers, another origin.
    /// layer
    ///     .handle()
    ///     .update(|b| b.clear_origins().origin("https://us.api.example.com"))?;
    /// assert!(format!("{layer:?}").contains("us.api.example.com"));
    /// assert!(!format!("{layer:?}").contains("eu.api.example.com"));
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn clear_origins(mut self) -> Self {
        self.origins = Origins::default();
        self
    }

    /// Build the layer.
    ///
    /// # Errors
    ///
    /// The first invalid header name ([`ErrorKind::InvalidHeaderName`]), header value
    /// ([`ErrorKind::InvalidHeaderValue`]) or origin ([`ErrorKind::InvalidOrigin`]) given to
    /// the builder, or [`ErrorKind::TooManyHeaders`] for more distinct names than an
    /// `http::HeaderMap` holds (24,576).
    ///
    /// ```
    /// use tower_client_headers::{DefaultHeadersLayer, ErrorKind};
    ///
    /// let err = DefaultHeadersLayer::builder().origin("https://a.example/path").build().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidOrigin);
    /// ```
    pub fn build(self) -> Result<DefaultHeadersLayer, Error> {
        self.into_session().map(DefaultHeadersLayer::from_session)
    }

    /// The session this builder describes, or its first error.
    pub(crate) fn into_session(self) -> Result<SessionHeaders, Error> {
        if let Some(err) = self.error {
            return Err(err);
        }
        let mut special = HeaderMap::default();
        for (name, policy) in &self.policies {
            if *policy != Policy::IfAbsent {
                // A subset of `policies`' names, so it fits as they did.
                let _ = special.try_insert(name.clone(), *policy);
            }
        }
        Ok(SessionHeaders::new(
            self.headers,
            self.computed,
            special,
            self.origins,
        ))
    }
}

impl fmt::Debug for DefaultHeadersBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultHeadersBuilder")
            .field("names", &self.headers.keys().collect::<Vec<_>>())
            .field("computed", &self.computed.keys().collect::<Vec<_>>())
            .field("origins", &self.origins)
            .field("error", &self.error)
            .finish()
    }
}

/// `HeaderMap::try_append`, which also works in a map at capacity for a name it has: such a
/// map asks for room first, even when it needs none (and once it has seen collisions, even
/// after a removal), so the map is rebuilt with the value in place instead.
fn try_append<T: Clone>(map: &mut HeaderMap<T>, name: HeaderName, value: T) -> Result<(), ()> {
    if map.try_append(name.clone(), value.clone()).is_ok() {
        return Ok(());
    }
    if !map.contains_key(&name) {
        return Err(());
    }
    let mut rebuilt = HeaderMap::try_with_capacity(map.keys_len()).map_err(drop)?;
    for key in map.keys() {
        for existing in map.get_all(key) {
            rebuilt
                .try_append(key.clone(), existing.clone())
                .map_err(drop)?;
        }
        if *key == name {
            rebuilt
                .try_append(key.clone(), value.clone())
                .map_err(drop)?;
        }
    }
    *map = rebuilt;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn invalid_names_values_and_origins_are_errors() {
        let err = DefaultHeadersLayer::builder()
            .header("accept", "ok")
            .header("bad name", "v")
            .build()
            .expect_err("bad name");
        assert_eq!(err.kind(), ErrorKind::InvalidHeaderName);
        assert!(err.to_string().contains("#2"), "{err}");

        for bad in ["a\r\nInjected: 1", "a\nb", "a\0b", "\x7f"] {
            let err = DefaultHeadersLayer::builder()
                .sensitive_header("x-api-key", bad)
                .build()
                .expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::InvalidHeaderValue);
            assert!(err.to_string().contains("x-api-key"), "{err}");
        }

        let err = DefaultHeadersLayer::builder()
            .header("accept", "ok")
            .origin("https://a.example/path")
            .build()
            .expect_err("origin with a path");
        assert_eq!(err.kind(), ErrorKind::InvalidOrigin);
    }

    #[test]
    fn the_first_error_is_reported() {
        let err = DefaultHeadersLayer::builder()
            .origin("nope")
            .header("bad name", "v")
            .build()
            .expect_err("two errors");
        assert_eq!(err.kind(), ErrorKind::InvalidOrigin);
        let err = DefaultHeadersLayer::builder()
            .override_header("x", "a\nb")
            .origin("nope")
            .build()
            .expect_err("two errors");
        assert_eq!(err.kind(), ErrorKind::InvalidHeaderValue);
    }

    #[test]
    fn errors_never_contain_the_value_or_a_misplaced_secret() {
        let err = DefaultHeadersLayer::builder()
            .sensitive_header("x-api-key", "hunter2\n")
            .build()
            .expect_err("newline");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!format!("{err:?}").contains("hunter2"));
        // Arguments swapped: the "name" is the secret.
        let err = DefaultHeadersLayer::builder()
            .header("Bearer hunter2", "authorization")
            .build()
            .expect_err("swapped");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn debug_shows_names_and_policies_never_values() {
        let builder = DefaultHeadersLayer::builder()
            .header("x-api-key", "hunter2")
            .override_header("authorization", "Bearer s3cr3t")
            .origin("https://api.example.com");
        assert!(!format!("{builder:?}").contains("hunter2"));
        let layer = builder.build().expect("valid");
        let dbg = format!("{layer:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("s3cr3t"), "{dbg}");
        assert!(
            dbg.contains("x-api-key") && dbg.contains("Override"),
            "{dbg}"
        );
        assert!(dbg.contains("https://api.example.com:443"), "{dbg}");
        let svc = layer.layer(());
        assert!(!format!("{svc:?}").contains("hunter2"));
    }

    #[test]
    fn layer_is_clone_send_sync_static() {
        fn assert_bounds<T: Clone + Send + Sync + fmt::Debug + 'static>() {}
        assert_bounds::<DefaultHeadersLayer>();
        assert_bounds::<crate::HeaderOverrides>();
    }

    #[test]
    fn more_names_than_a_header_map_holds_is_an_error_not_a_panic() {
        let mut b = DefaultHeadersLayer::builder();
        for i in 0..40_000 {
            b = b.header(format!("x-h{i}"), "v");
        }
        let err = b.build().expect_err("40k names");
        assert_eq!(err.kind(), ErrorKind::TooManyHeaders);
        assert!(err.to_string().contains("#24577"), "{err}");

        // Up to the capacity, every policy, it builds.
        let mut b = DefaultHeadersLayer::builder();
        for i in 0..MAX_HEADER_NAMES {
            b = match i % 3 {
                0 => b.header(format!("x-h{i}"), "v"),
                1 => b.override_header(format!("x-h{i}"), "v"),
                _ => b.append_header(format!("x-h{i}"), "v"),
            };
        }
        let layer = b.build().expect("exactly full");
        assert_eq!(layer.headers().keys_len(), MAX_HEADER_NAMES);

        // Exactly full, a name it has still takes another value, a new policy, a function.
        let session = layer.handle();
        session
            .update(|b| {
                b.header("x-h0", "second")
                    .override_header("x-h1", "v2")
                    .append_header_with("x-h2", |_| None)
            })
            .expect("no new name");
        let headers = session.headers();
        assert_eq!(headers.get_all("x-h0").iter().count(), 2);
        assert_eq!(headers.get_all("x-h1").iter().count(), 2);
        assert_eq!(
            headers.keys_len(),
            MAX_HEADER_NAMES - 1,
            "x-h2 is computed now"
        );
        // A new name is still refused, and says why.
        let err = session
            .update(|b| b.header("x-new", "v").header("x-new2", "v"))
            .expect_err("full");
        assert_eq!(err.kind(), ErrorKind::TooManyHeaders);
    }
}

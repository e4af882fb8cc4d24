use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use tower_layer::Layer;

use super::merge::Policy;
use super::{DefaultHeaders, SessionHeaders};
use crate::error::{Error, ErrorKind};
use crate::origin::{Origin, Origins};
use crate::overrides::{is_always_sensitive, mark_credentials_sensitive};

/// The most distinct names an `http::HeaderMap` holds: 3/4 of its 32,768 slots.
pub(crate) const MAX_HEADER_NAMES: usize = 24_576;

/// Layer that applies [`DefaultHeaders`], which adds session headers to every request.
///
/// Cheap to clone (the headers are shared), `Send + Sync + 'static`, and its `Debug` shows
/// header names and policies, never values.
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
    pub(crate) session: Arc<SessionHeaders>,
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
        Self {
            session: Arc::new(SessionHeaders::new(
                headers,
                HeaderMap::default(),
                Origins::default(),
            )),
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

    /// The session headers, every value in order (sensitive values stay marked).
    ///
    /// ```
    /// use tower_client_headers::DefaultHeadersLayer;
    ///
    /// let layer = DefaultHeadersLayer::builder().header("accept", "text/csv").build()?;
    /// assert_eq!(layer.headers()["accept"], "text/csv");
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn headers(&self) -> &HeaderMap {
        self.session.headers()
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
            .field("headers", &self.session)
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
    headers: HeaderMap,
    policies: HeaderMap<Policy>,
    origins: Origins,
    calls: usize,
    error: Option<Error>,
}

impl DefaultHeadersBuilder {
    fn add<K, V>(mut self, name: K, value: V, policy: Policy, sensitive: bool) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        self.calls += 1;
        if self.error.is_some() {
            return self;
        }
        // An invalid name is not echoed: arguments in the wrong order would put a secret here.
        let Ok(name) = HeaderName::try_from(name) else {
            self.error = Some(Error::new(
                ErrorKind::InvalidHeaderName,
                format!(
                    "invalid header name in header #{} of the builder (not shown): a name is \
                     letters, digits and !#$%&'*+-.^_`|~ only; check that the name comes \
                     before the value",
                    self.calls
                ),
            ));
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
        // The last policy given for a name applies to all its values. Both maps hold the same
        // names, so they reach `http::HeaderMap`'s capacity together.
        let stored = self.policies.try_insert(name.clone(), policy).is_ok()
            && self.headers.try_append(name, value).is_ok();
        if !stored {
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
        Ok(DefaultHeadersLayer {
            session: Arc::new(SessionHeaders::new(self.headers, special, self.origins)),
        })
    }
}

impl fmt::Debug for DefaultHeadersBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultHeadersBuilder")
            .field("names", &self.headers.keys().collect::<Vec<_>>())
            .field("origins", &self.origins)
            .field("error", &self.error)
            .finish()
    }
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
    }
}

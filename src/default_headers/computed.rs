//! Session header values computed per request: [`RequestHead`], what the functions given to
//! [`header_with`](super::DefaultHeadersBuilder::header_with) and its siblings read, and how
//! their values are stored. When a function is called is the merge rule's business
//! (`merge.rs`).

use std::fmt;
use std::sync::Arc;
#[cfg(feature = "reqwest-middleware")]
use std::sync::OnceLock;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use crate::origin::Target;
use crate::overrides::is_always_sensitive;

/// What a computed session header value is made from: the request's method, URI and own
/// headers, as they are before [`DefaultHeaders`](super::DefaultHeaders) merges the session
/// into them.
///
/// Given to the functions of
/// [`DefaultHeadersBuilder::header_with`](super::DefaultHeadersBuilder::header_with) and its
/// siblings. The headers are the request's own, so a function can, for example, keep a request
/// id the caller already set (with the if-absent policy it is not even called then).
///
/// ```
/// use http::{HeaderValue, Method, Request, Response};
/// use std::convert::Infallible;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
/// use tower_client_headers::{DefaultHeadersLayer, RequestHead};
///
/// // Mark requests that change something, for an audit log on the server.
/// fn audit(head: &RequestHead<'_>) -> Option<HeaderValue> {
///     let safe = matches!(*head.method(), Method::GET | Method::HEAD | Method::OPTIONS);
///     (!safe).then(|| HeaderValue::from_str(head.uri().path()).ok()).flatten()
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let session = DefaultHeadersLayer::builder().header_with("x-audit-path", audit).build()?;
/// let client = ServiceBuilder::new().layer(session).service(service_fn(
///     |req: Request<()>| async move { Ok::<_, Infallible>(Response::new(req.headers().clone())) },
/// ));
///
/// let sent = client.clone().oneshot(Request::get("https://api.example.com/items").body(())?).await?;
/// assert!(sent.body().get("x-audit-path").is_none());
/// let sent = client.oneshot(Request::delete("https://api.example.com/items/7").body(())?).await?;
/// assert_eq!(sent.body()["x-audit-path"], "/items/7");
/// # Ok(()) }
/// ```
pub struct RequestHead<'a> {
    method: &'a Method,
    uri: HeadUri<'a>,
    headers: &'a HeaderMap,
}

enum HeadUri<'a> {
    Uri(&'a Uri),
    /// reqwest's `Url`, converted only if a function asks for the URI.
    #[cfg(feature = "reqwest-middleware")]
    Url(&'a reqwest::Url, OnceLock<Uri>),
}

impl RequestHead<'_> {
    /// The request's method.
    ///
    /// ```
    /// use http::{HeaderValue, Method};
    /// use tower_client_headers::DefaultHeadersLayer;
    ///
    /// let layer = DefaultHeadersLayer::builder()
    ///     .header_with("x-idempotent", |head| {
    ///         head.method().is_idempotent().then(|| HeaderValue::from_static("1"))
    ///     })
    ///     .build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn method(&self) -> &Method {
        self.method
    }

    /// The request's URI (with reqwest-middleware, the request's URL as an `http::Uri`).
    ///
    /// ```
    /// use http::HeaderValue;
    /// use tower_client_headers::DefaultHeadersLayer;
    ///
    /// let layer = DefaultHeadersLayer::builder()
    ///     .header_with("x-path", |head| HeaderValue::from_str(head.uri().path()).ok())
    ///     .build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn uri(&self) -> &Uri {
        match &self.uri {
            HeadUri::Uri(uri) => uri,
            #[cfg(feature = "reqwest-middleware")]
            HeadUri::Url(url, uri) => uri.get_or_init(|| {
                // reqwest makes the same conversion to send the request (and assumes it
                // succeeds); should a URL ever not convert, `/` rather than a panic.
                url.as_str().parse().unwrap_or_default()
            }),
        }
    }

    /// The request's own headers, before the session is merged into them.
    ///
    /// ```
    /// use http::HeaderValue;
    /// use tower_client_headers::DefaultHeadersLayer;
    ///
    /// // Echo the caller's correlation id under the name the API expects, when there is one.
    /// let layer = DefaultHeadersLayer::builder()
    ///     .header_with("x-api-correlation", |head| head.headers().get("x-correlation-id").cloned())
    ///     .build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn headers(&self) -> &HeaderMap {
        self.headers
    }
}

impl fmt::Debug for RequestHead<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The method and the header names only: a URI may carry a secret in its query or
        // userinfo, and header values often are secrets.
        f.debug_struct("RequestHead")
            .field("method", self.method)
            .field("header_names", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Where a request goes and how, borrowed from `http::request::Parts` or a `reqwest::Request`,
/// so both adapters hand the merge rule the same thing.
#[derive(Clone, Copy)]
pub(crate) struct RequestLine<'a> {
    method: &'a Method,
    uri: LineUri<'a>,
}

#[derive(Clone, Copy)]
enum LineUri<'a> {
    Uri(&'a Uri),
    #[cfg(feature = "reqwest-middleware")]
    Url(&'a reqwest::Url),
}

impl<'a> RequestLine<'a> {
    #[inline]
    pub(crate) fn from_uri(method: &'a Method, uri: &'a Uri) -> Self {
        Self {
            method,
            uri: LineUri::Uri(uri),
        }
    }

    #[cfg(feature = "reqwest-middleware")]
    pub(crate) fn from_url(method: &'a Method, url: &'a reqwest::Url) -> Self {
        Self {
            method,
            uri: LineUri::Url(url),
        }
    }

    #[inline]
    pub(crate) fn target(&self) -> Target<'a> {
        match self.uri {
            LineUri::Uri(uri) => Target::from_uri(uri),
            #[cfg(feature = "reqwest-middleware")]
            LineUri::Url(url) => Target::from_url(url),
        }
    }

    /// The request as computed values see it, with its own `headers`.
    pub(crate) fn head(self, headers: &'a HeaderMap) -> RequestHead<'a> {
        let uri = match self.uri {
            LineUri::Uri(uri) => HeadUri::Uri(uri),
            #[cfg(feature = "reqwest-middleware")]
            LineUri::Url(url) => HeadUri::Url(url, OnceLock::new()),
        };
        RequestHead {
            method: self.method,
            uri,
            headers,
        }
    }
}

/// The function behind a computed session header value.
pub(crate) type ValueFn = dyn Fn(&RequestHead<'_>) -> Option<HeaderValue> + Send + Sync;

/// One computed value of a session header: its function, shared (a session handed back to
/// `update` keeps it), and whether its values are marked sensitive.
#[derive(Clone)]
pub(crate) struct Computed {
    make: Arc<ValueFn>,
    sensitive: bool,
}

impl Computed {
    pub(crate) fn new<F>(make: F, sensitive: bool) -> Self
    where
        F: Fn(&RequestHead<'_>) -> Option<HeaderValue> + Send + Sync + 'static,
    {
        Self {
            make: Arc::new(make),
            sensitive,
        }
    }

    /// This request's value of `name`, marked sensitive as a static value would be (a value
    /// the function marked sensitive itself stays so).
    pub(crate) fn value(&self, name: &HeaderName, head: &RequestHead<'_>) -> Option<HeaderValue> {
        let mut value = (self.make)(head)?;
        if self.sensitive || is_always_sensitive(name) {
            value.set_sensitive(true);
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_head_debug_shows_the_method_and_header_names_only() {
        let uri: Uri = "https://user:hunter2@api.example.com/items?key=hunter3"
            .parse()
            .expect("uri");
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_static("hunter4"));
        let head = RequestLine::from_uri(&Method::POST, &uri).head(&headers);
        let dbg = format!("{head:?} {head:#?}");
        assert!(!dbg.contains("hunter"), "{dbg}");
        assert!(dbg.contains("POST") && dbg.contains("x-api-key"), "{dbg}");
        assert_eq!(head.uri(), &uri);
        assert_eq!(head.method(), Method::POST);
        assert_eq!(head.headers()["x-api-key"], "hunter4");
    }

    #[cfg(feature = "reqwest-middleware")]
    #[test]
    fn a_reqwest_url_is_seen_as_the_same_uri() {
        let url = reqwest::Url::parse("https://api.example.com:8443/a%20b?q=1&r=%2F").expect("url");
        let headers = HeaderMap::new();
        let head = RequestLine::from_url(&Method::GET, &url).head(&headers);
        assert_eq!(
            head.uri().to_string(),
            "https://api.example.com:8443/a%20b?q=1&r=%2F"
        );
        assert_eq!(head.uri().path(), "/a%20b");
        assert_eq!(head.uri().query(), Some("q=1&r=%2F"));
    }

    #[test]
    fn a_function_value_is_marked_sensitive_when_asked_or_for_credentials() {
        let uri = Uri::from_static("https://api.example.com/");
        let headers = HeaderMap::new();
        let head = RequestLine::from_uri(&Method::GET, &uri).head(&headers);
        let plain = Computed::new(|_| Some(HeaderValue::from_static("v")), false);
        let secret = Computed::new(|_| Some(HeaderValue::from_static("v")), true);
        let x = HeaderName::from_static("x-a");
        let value = |c: &Computed, name: &HeaderName| c.value(name, &head).expect("a value");
        assert!(!value(&plain, &x).is_sensitive());
        assert!(value(&secret, &x).is_sensitive());
        assert!(value(&plain, &http::header::AUTHORIZATION).is_sensitive());
        assert!(Computed::new(|_| None, true).value(&x, &head).is_none());
    }
}

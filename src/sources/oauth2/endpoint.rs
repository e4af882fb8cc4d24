//! [`TokenEndpoint`]: where the grants get their tokens, and how this client authenticates
//! there.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, Uri};
use tower_service::Service;

use super::response::{self, Granted};
use super::transport::{TowerTransport, Transport};
use crate::error::{BoxError, Error, ErrorKind};
use crate::origin::Target;

/// How the client authenticates to the token endpoint with its secret (RFC 6749 section
/// 2.3.1). The names are the `token_endpoint_auth_method` values of OAuth 2.0 dynamic client
/// registration (RFC 7591) and server metadata (RFC 8414).
///
/// ```
/// use tower_client_headers::sources::ClientAuth;
///
/// assert_eq!(ClientAuth::default(), ClientAuth::ClientSecretBasic);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientAuth {
    /// `client_secret_basic` (the default, which every server must support): HTTP Basic
    /// authentication, `Authorization: Basic base64(client_id:client_secret)`, each
    /// form-urlencoded first as RFC 6749 asks. Some servers skip that decoding: if one
    /// refuses an id or secret with characters other than letters, digits and `-._*`, use
    /// [`ClientSecretPost`](Self::ClientSecretPost).
    #[default]
    ClientSecretBasic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// An OAuth 2.0 token endpoint: its URL, this client's id and secret, how the secret is sent
/// ([`ClientAuth`]), and the HTTP client that reaches it. Shared (cheaply cloned) by the grants
/// built on it: [`ClientCredentials`](super::ClientCredentials) and
/// [`RefreshTokenGrant`](super::RefreshTokenGrant).
///
/// `Debug` and errors never show the client secret.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use tower_client_headers::sources::TokenEndpoint;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_client_headers::Error> {
/// // The hyper-util client you already have; its body type only needs `From<Bytes>`.
/// let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
/// let endpoint = TokenEndpoint::builder("https://idp.example.com/oauth2/token")
///     .client_id("my-service")
///     .client_secret("s3cret")
///     .http_service(http)
///     .build()?;
/// assert!(!format!("{endpoint:?}").contains("s3cret"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenEndpoint {
    inner: Arc<Inner>,
}

struct Inner {
    uri: Uri,
    /// `scheme://host[:port]/path`, for messages: no userinfo, no query.
    name: String,
    client_id: String,
    client_secret: Option<String>,
    auth: ClientAuth,
    transport: Box<dyn Transport>,
}

impl TokenEndpoint {
    /// Create a [`TokenEndpointBuilder`] for the token endpoint at `url`.
    ///
    /// ```
    /// use tower_client_headers::sources::TokenEndpoint;
    ///
    /// let builder = TokenEndpoint::builder("https://idp.example.com/oauth2/token");
    /// # let _ = builder;
    /// ```
    pub fn builder(url: &str) -> TokenEndpointBuilder {
        TokenEndpointBuilder {
            url: url.to_owned(),
            client_id: None,
            client_secret: None,
            auth: ClientAuth::default(),
            allow_http: false,
            transport: None,
        }
    }

    /// POST a token request with `params` (the grant's), authenticated as this client, and
    /// read the response. `secret` (a refresh token) is cut out of anything the server says.
    /// A new refresh token in a success response is in the answer even when the rest of the
    /// response is rejected.
    pub(super) async fn exchange(&self, params: &[(&str, &str)], secret: Option<&str>) -> Granted {
        match self.send(params, secret).await {
            Ok(granted) => granted,
            Err(err) => Granted {
                token: Err(err),
                refresh_token: None,
            },
        }
    }

    async fn send(
        &self,
        params: &[(&str, &str)],
        secret: Option<&str>,
    ) -> Result<Granted, BoxError> {
        let inner = &self.inner;
        let request = self.request(params)?;
        let response: Response<Bytes> = inner.transport.send(request).await.map_err(|source| {
            Error::with_source(
                ErrorKind::TokenFetch,
                format!("could not reach the token endpoint {}", inner.name),
                source,
            )
        })?;
        if response.status().is_redirection() {
            return Err(Error::new(
                ErrorKind::TokenFetch,
                format!(
                    "token endpoint {} answered {} (a redirect): token requests never follow \
                     redirects, which would carry the client's credentials elsewhere; give the \
                     endpoint's final URL",
                    inner.name,
                    response.status()
                ),
            )
            .into());
        }
        // What the server might echo: the secret, the refresh token, the `Basic` credential
        // (form-encoded and not, as servers differ).
        let basic = inner
            .client_secret
            .as_deref()
            .map_or([String::new(), String::new()], |s| {
                [
                    basic_token(&inner.client_id, s),
                    base64::engine::general_purpose::STANDARD
                        .encode(format!("{}:{s}", inner.client_id)),
                ]
            });
        let secrets = [
            inner.client_secret.as_deref().unwrap_or(""),
            secret.unwrap_or(""),
            &basic[0],
            &basic[1],
        ];
        Ok(response::read(&inner.name, &response, &secrets))
    }

    /// The token request: `params` and the client's authentication, form-encoded.
    fn request(&self, params: &[(&str, &str)]) -> Result<Request<Bytes>, Error> {
        let inner = &self.inner;
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.extend_pairs(params);
        let mut basic = None;
        match (&inner.client_secret, inner.auth) {
            (Some(secret), ClientAuth::ClientSecretBasic) => {
                basic = Some(basic_credentials(&inner.client_id, secret));
            }
            (Some(secret), ClientAuth::ClientSecretPost) => {
                form.append_pair("client_id", &inner.client_id);
                form.append_pair("client_secret", secret);
            }
            // A public client identifies itself in the body (RFC 6749 section 3.2.1).
            (None, _) => {
                form.append_pair("client_id", &inner.client_id);
            }
        }
        let mut request = Request::new(Bytes::from(form.finish()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = inner.uri.clone();
        let headers = request.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(basic) = basic {
            headers.insert(AUTHORIZATION, basic?);
        }
        Ok(request)
    }
}

/// `base64(urlencode(id):urlencode(secret))`, the `Basic` credential.
fn basic_token(client_id: &str, secret: &str) -> String {
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(client_id), encode(secret));
    base64::engine::general_purpose::STANDARD.encode(pair)
}

/// `Basic base64(urlencode(id):urlencode(secret))`, marked sensitive.
fn basic_credentials(client_id: &str, secret: &str) -> Result<HeaderValue, Error> {
    let value = format!("Basic {}", basic_token(client_id, secret));
    let mut value = HeaderValue::try_from(value).map_err(|_| {
        // Base64 is always a valid header value; this is unreachable in practice.
        Error::new(
            ErrorKind::InvalidConfig,
            "client credentials are not a header value",
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

impl fmt::Debug for TokenEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("TokenEndpoint")
            .field("url", &inner.name)
            .field("client_id", &inner.client_id)
            .field(
                "client_secret",
                &inner.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("client_auth", &inner.auth)
            .finish()
    }
}

/// Builder for [`TokenEndpoint`]: give a client id and an HTTP client (and, for a
/// confidential client, a secret).
///
/// ```
/// use http::{Request, Response};
/// use tower_client_headers::sources::{ClientAuth, TokenEndpoint};
///
/// # let http = tower::service_fn(|_: Request<bytes::Bytes>| async {
/// #     Ok::<_, std::convert::Infallible>(Response::new(String::new()))
/// # });
/// let endpoint = TokenEndpoint::builder("https://login.example.com/oauth2/v2.0/token")
///     .client_id("my-service")
///     .client_secret("s3cret")
///     .client_auth(ClientAuth::ClientSecretPost)
///     .http_service(http)
///     .build()?;
/// # Ok::<(), tower_client_headers::Error>(())
/// ```
pub struct TokenEndpointBuilder {
    url: String,
    client_id: Option<String>,
    client_secret: Option<String>,
    auth: ClientAuth,
    allow_http: bool,
    transport: Option<Box<dyn Transport>>,
}

impl TokenEndpointBuilder {
    /// This client's `client_id` (required).
    ///
    /// ```
    /// use tower_client_headers::sources::TokenEndpoint;
    ///
    /// let builder = TokenEndpoint::builder("https://idp.example.com/token").client_id("my-app");
    /// # let _ = builder;
    /// ```
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// This client's `client_secret`, for a confidential client. Without one the client is
    /// public: its `client_id` goes in the form body and nothing authenticates it.
    ///
    /// ```
    /// use tower_client_headers::sources::TokenEndpoint;
    ///
    /// let builder = TokenEndpoint::builder("https://idp.example.com/token")
    ///     .client_id("my-app")
    ///     .client_secret(std::env::var("CLIENT_SECRET").unwrap_or_default());
    /// assert!(!format!("{builder:?}").contains("CLIENT_SECRET"));
    /// ```
    pub fn client_secret(mut self, client_secret: impl Into<String>) -> Self {
        self.client_secret = Some(client_secret.into());
        self
    }

    /// How the secret is sent (default [`ClientAuth::ClientSecretBasic`]).
    ///
    /// ```
    /// use tower_client_headers::sources::{ClientAuth, TokenEndpoint};
    ///
    /// let builder = TokenEndpoint::builder("https://idp.example.com/token")
    ///     .client_auth(ClientAuth::ClientSecretPost);
    /// # let _ = builder;
    /// ```
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Allow a plain `http://` token URL to a host that is not loopback (default `false`: the
    /// client secret and the tokens would travel in plain text, so [`build`](Self::build)
    /// refuses it). Loopback is always allowed.
    ///
    /// ```
    /// use tower_client_headers::sources::TokenEndpoint;
    ///
    /// // A token service on a private network you trust.
    /// let builder = TokenEndpoint::builder("http://sts.internal/token").allow_http(true);
    /// # let _ = builder;
    /// ```
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Reach the token endpoint with a tower HTTP service, such as a hyper-util
    /// `Client<_, Full<Bytes>>` or any `Service<http::Request<B>>` whose request body `B` can
    /// be made `From<Bytes>` (`Full<Bytes>`, `Bytes`, axum's `Body`, `reqwest::Body`...). For
    /// another body type, adapt it with `tower::ServiceExt::map_request`. The service is
    /// cloned for each request; it need not be `Sync`.
    ///
    /// A `3xx` answer is an error: token requests never follow redirects. Do not put a
    /// redirect-following layer on the service; with the `tower-http` feature, a response
    /// that tower-http's `FollowRedirect` brought from another URL is an error too.
    ///
    /// Layers on it apply to the token requests too (a timeout, tracing). Do not put this
    /// crate's `BearerAuthLayer` on it: the token endpoint takes client credentials, not the
    /// token it issues.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use tower_client_headers::sources::TokenEndpoint;
    ///
    /// let http = tower::service_fn(|_: Request<Bytes>| async {
    ///     let body = r#"{"access_token":"t","token_type":"Bearer","expires_in":3600}"#;
    ///     Ok::<_, std::convert::Infallible>(Response::new(body.to_owned()))
    /// });
    /// let endpoint = TokenEndpoint::builder("https://idp.example.com/token")
    ///     .client_id("my-app")
    ///     .http_service(http)
    ///     .build()?;
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn http_service<S, ReqBody, ResBody>(mut self, service: S) -> Self
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: Into<BoxError>,
        ReqBody: From<Bytes> + Send + 'static,
        ResBody: http_body::Body + Send + 'static,
        ResBody::Data: Send,
        ResBody::Error: Into<BoxError>,
    {
        self.transport = Some(Box::new(TowerTransport::<S, ReqBody>::new(service)));
        self
    }

    /// Reach the token endpoint with a `reqwest::Client` (feature `reqwest-middleware`).
    ///
    /// Token requests never follow redirects: build the client with
    /// `reqwest::redirect::Policy::none()` (reqwest's default follows up to 10). Whatever its
    /// policy, a token request fails when the endpoint redirects: the request body (the
    /// client secret with `client_secret_post`, the refresh token) is sent so that reqwest
    /// cannot re-send it on a 307/308, and a response from any URL but the token URL (a
    /// followed 301/302/303) is an error whose body is never read. Only with `Policy::none()`
    /// is nothing at all sent to the new location: a following policy still makes reqwest send
    /// it a `GET` after a 301/302/303 (with no body, and no `Authorization` to another origin).
    ///
    /// ```
    /// use tower_client_headers::sources::TokenEndpoint;
    ///
    /// let client = reqwest::Client::builder()
    ///     .redirect(reqwest::redirect::Policy::none())
    ///     .build()?;
    /// let endpoint = TokenEndpoint::builder("https://idp.example.com/token")
    ///     .client_id("my-app")
    ///     .client_secret("s3cret")
    ///     .reqwest_client(client)
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "reqwest-middleware")]
    #[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
    pub fn reqwest_client(mut self, client: reqwest::Client) -> Self {
        self.transport = Some(Box::new(client));
        self
    }

    /// Build the [`TokenEndpoint`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] if the URL is not an absolute `http`/`https` URL (or has
    /// userinfo, or a fragment), or there is no client id or no HTTP client;
    /// [`ErrorKind::PlaintextRefused`] for a plain `http://` URL to a host that is not
    /// loopback, unless [`allow_http`](Self::allow_http). No message contains the secret.
    ///
    /// ```
    /// use tower_client_headers::sources::TokenEndpoint;
    /// use tower_client_headers::ErrorKind;
    ///
    /// let err = TokenEndpoint::builder("https://idp.example.com/token").build().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    /// ```
    pub fn build(self) -> Result<TokenEndpoint, Error> {
        let invalid = |problem: &str| Error::new(ErrorKind::InvalidConfig, problem.to_owned());
        let uri: Uri = self
            .url
            .parse()
            .map_err(|_| invalid("the token URL is not a valid absolute URL"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(invalid(
                "the token URL must be absolute: `https://host/path`",
            ));
        };
        if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
            return Err(invalid("the token URL must be `https://` (or `http://`)"));
        }
        if authority.as_str().contains('@') {
            return Err(invalid(
                "the token URL must not carry credentials (`user:pass@`); give them to \
                 client_id and client_secret",
            ));
        }
        if self.url.contains('#') {
            return Err(invalid(
                "the token URL must not have a fragment (RFC 6749 section 3.2)",
            ));
        }
        let name = format!("`{scheme}://{authority}{}`", uri.path());
        if !self.allow_http && Target::from_uri(&uri).is_plaintext_remote() {
            return Err(Error::new(
                ErrorKind::PlaintextRefused,
                format!(
                    "refusing to send client credentials in plain text to the token endpoint \
                     {name}: use https, or allow_http(true)"
                ),
            ));
        }
        let client_id = self
            .client_id
            .ok_or_else(|| invalid("the token endpoint needs a client_id"))?;
        let transport = self.transport.ok_or_else(|| {
            invalid(
                "the token endpoint needs an HTTP client: http_service(..) or reqwest_client(..)",
            )
        })?;
        Ok(TokenEndpoint {
            inner: Arc::new(Inner {
                uri,
                name,
                client_id,
                client_secret: self.client_secret,
                auth: self.auth,
                transport,
            }),
        })
    }
}

impl fmt::Debug for TokenEndpointBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEndpointBuilder")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("client_auth", &self.auth)
            .field("allow_http", &self.allow_http)
            .field("http_client", &self.transport.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> impl Service<
        Request<Bytes>,
        Response = Response<String>,
        Error = std::convert::Infallible,
        Future = impl std::future::Future<
            Output = Result<Response<String>, std::convert::Infallible>,
        > + Send,
    > + Clone
           + Send {
        tower::service_fn(|_: Request<Bytes>| async {
            Ok::<_, std::convert::Infallible>(Response::new(String::new()))
        })
    }

    fn build(url: &str) -> Result<TokenEndpoint, Error> {
        TokenEndpoint::builder(url)
            .client_id("id")
            .client_secret("hunter2")
            .http_service(service())
            .build()
    }

    #[test]
    fn bad_urls_are_errors_that_never_show_the_secret() {
        for (url, kind) in [
            ("not a url", ErrorKind::InvalidConfig),
            ("/token", ErrorKind::InvalidConfig),
            ("ftp://idp.example/token", ErrorKind::InvalidConfig),
            (
                "https://user:hunter2@idp.example/token",
                ErrorKind::InvalidConfig,
            ),
            ("https://idp.example/token#x", ErrorKind::InvalidConfig),
            ("http://idp.example/token", ErrorKind::PlaintextRefused),
        ] {
            let err = build(url).expect_err(url);
            assert_eq!(err.kind(), kind, "{url}: {err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
        for url in [
            "https://idp.example/token",
            "https://idp.example:8443/t?tenant=a",
            "http://127.0.0.1:8080/token",
            "http://localhost/token",
            "http://[::1]/token",
        ] {
            build(url).expect(url);
        }
        let endpoint = TokenEndpoint::builder("http://sts.internal/token")
            .client_id("id")
            .allow_http(true)
            .http_service(service())
            .build()
            .expect("allowed");
        let debug = format!("{endpoint:?}");
        assert!(debug.contains("http://sts.internal/token"), "{debug}");
        let err = TokenEndpoint::builder("https://idp.example/token")
            .http_service(service())
            .build()
            .expect_err("no client_id");
        assert!(err.to_string().contains("client_id"), "{err}");
    }

    #[test]
    fn basic_credentials_are_form_encoded_then_base64_and_sensitive() {
        let value = basic_credentials("my id:1", "s3cr&t+/=").expect("valid");
        assert!(value.is_sensitive());
        let encoded = value
            .to_str()
            .expect("ascii")
            .strip_prefix("Basic ")
            .expect("basic");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("base64");
        assert_eq!(decoded, b"my+id%3A1:s3cr%26t%2B%2F%3D");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let endpoint = build("https://idp.example/token").expect("valid");
        let debug = format!("{endpoint:?}");
        assert!(
            !debug.contains("hunter2") && debug.contains("<redacted>"),
            "{debug}"
        );
        let builder = TokenEndpoint::builder("https://idp.example/token").client_secret("hunter2");
        assert!(!format!("{builder:?}").contains("hunter2"));
    }
}

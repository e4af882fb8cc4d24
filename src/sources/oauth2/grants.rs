//! The grants: [`ClientCredentials`] (RFC 6749 section 4.4) and [`RefreshTokenGrant`]
//! (section 6), each a [`TokenSource`] over a [`TokenEndpoint`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::endpoint::TokenEndpoint;
use crate::error::{BoxError, Error, ErrorKind};
use crate::token::{Token, TokenSource};
use crate::trace;

/// Scopes and extra parameters of a token request, shared by the grants.
#[derive(Clone, Default)]
struct Extras {
    scopes: Vec<String>,
    params: Vec<(String, String)>,
}

impl Extras {
    /// `grant` first, then `scope` (space-separated, RFC 6749 section 3.3), then the extra
    /// parameters in the order given.
    fn params<'a>(
        &'a self,
        grant: &[(&'a str, &'a str)],
        scope: &'a str,
    ) -> Vec<(&'a str, &'a str)> {
        let mut params = grant.to_vec();
        if !scope.is_empty() {
            params.push(("scope", scope));
        }
        params.extend(self.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        params
    }

    fn scope(&self) -> String {
        self.scopes.join(" ")
    }

    /// For `Debug`: the names only, as a value may be a credential (`client_assertion`).
    fn param_names(&self) -> Vec<&str> {
        self.params.iter().map(|(name, _)| name.as_str()).collect()
    }
}

/// A [`TokenSource`] for the OAuth 2.0 client credentials grant (RFC 6749 section 4.4): a
/// service authenticating as itself, with its client id and secret.
///
/// Each fetch POSTs `grant_type=client_credentials`, the scopes and any extra parameters
/// (such as `audience` or `resource`) to the [`TokenEndpoint`]. The response's `expires_in`
/// sets the token's lifetime, so the layer refreshes it ahead of expiry; a response without
/// one (or with `0`) gives a token used until a `401` rejects it. An error response
/// (RFC 6749 section 5.2) fails the fetch with an [`OAuthError`](super::OAuthError) in the
/// error's source chain; a malformed response fails it with a message saying what was wrong.
/// Neither ever contains the client secret.
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use tower_client_headers::sources::{ClientCredentials, TokenEndpoint};
/// use tower_client_headers::{BearerAuthLayer, TokenSource};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// # let http = tower::service_fn(|_: Request<Bytes>| async {
/// #     let body = r#"{"access_token":"t1","token_type":"Bearer","expires_in":3600}"#;
/// #     Ok::<_, std::convert::Infallible>(Response::new(body.to_owned()))
/// # });
/// let endpoint = TokenEndpoint::builder("https://idp.example.com/oauth2/token")
///     .client_id("my-service")
///     .client_secret("s3cret")
///     .http_service(http) // your hyper-util client, say
///     .build()?;
/// let source = ClientCredentials::new(endpoint)
///     .scope("orders:read")
///     .param("audience", "https://api.example.com");
/// let token = source.fetch().await?; // what the layer does, when it needs one
/// assert!(token.expires_at().is_some());
///
/// let auth = BearerAuthLayer::builder()
///     .source(source)
///     .origin("https://api.example.com")
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientCredentials {
    endpoint: TokenEndpoint,
    extras: Extras,
}

impl ClientCredentials {
    /// Create a new [`ClientCredentials`] source fetching from `endpoint`.
    ///
    /// ```
    /// use tower_client_headers::sources::{ClientCredentials, TokenEndpoint};
    ///
    /// # let http = tower::service_fn(|_: http::Request<bytes::Bytes>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// # });
    /// let endpoint = TokenEndpoint::builder("https://idp.example.com/token")
    ///     .client_id("my-service")
    ///     .client_secret("s3cret")
    ///     .http_service(http)
    ///     .build()?;
    /// let source = ClientCredentials::new(endpoint);
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn new(endpoint: TokenEndpoint) -> Self {
        Self {
            endpoint,
            extras: Extras::default(),
        }
    }

    /// Ask for `scope`; repeat for more. They are sent space-separated, as given.
    ///
    /// ```
    /// # use tower_client_headers::sources::{ClientCredentials, TokenEndpoint};
    /// # let http = tower::service_fn(|_: http::Request<bytes::Bytes>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// # });
    /// # let endpoint = TokenEndpoint::builder("https://idp.example.com/token")
    /// #     .client_id("my-service").http_service(http).build()?;
    /// let source = ClientCredentials::new(endpoint).scope("orders:read").scope("orders:write");
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.extras.scopes.push(scope.into());
        self
    }

    /// Send an extra form parameter, such as `audience` (Auth0, Okta) or `resource`
    /// (RFC 8707; repeat it for several). Sent after the grant's own, in the order given.
    ///
    /// ```
    /// # use tower_client_headers::sources::{ClientCredentials, TokenEndpoint};
    /// # let http = tower::service_fn(|_: http::Request<bytes::Bytes>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// # });
    /// # let endpoint = TokenEndpoint::builder("https://idp.example.com/token")
    /// #     .client_id("my-service").http_service(http).build()?;
    /// let source = ClientCredentials::new(endpoint)
    ///     .param("audience", "https://api.example.com")
    ///     .param("resource", "https://api.example.com/orders");
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extras.params.push((name.into(), value.into()));
        self
    }
}

impl TokenSource for ClientCredentials {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Token, BoxError>> + Send + '_>> {
        Box::pin(async move {
            let scope = self.extras.scope();
            let params = self
                .extras
                .params(&[("grant_type", "client_credentials")], &scope);
            self.endpoint.exchange(&params, None).await.token
        })
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("endpoint", &self.endpoint)
            .field("scopes", &self.extras.scopes)
            .field("params", &self.extras.param_names())
            .finish()
    }
}

type OnRotation = Arc<dyn Fn(&str) + Send + Sync>;

/// A [`TokenSource`] for the OAuth 2.0 refresh-token grant (RFC 6749 section 6): access
/// tokens from a refresh token that a user's sign-in (an authorization code flow, a device
/// flow) produced.
///
/// Each fetch POSTs `grant_type=refresh_token` with the current refresh token. When the
/// server answers with a new refresh token (rotation), the grant uses it from then on and
/// hands it to the [`on_rotation`](Self::on_rotation) callback, so that you can persist it:
/// a rotating server revokes the old one, and a process that restarts with it cannot sign
/// in.
///
/// A refresh token is never sent twice at the same time: the layer makes one fetch at a
/// time, and the grant itself holds the refresh token while it is being used, so clones of
/// the grant (or two layers sharing one) wait for each other and each uses the latest
/// token.
///
/// A rotation is never lost to a fetch that ends early. Inside a tokio runtime each exchange
/// runs in a task of its own (`tokio::spawn`) that the fetch awaits, holding the refresh
/// token: when the layer abandons the fetch (its `fetch_timeout` passed, `invalidate()`, a
/// background refresh outlived by its token), the exchange still runs to its end, a new
/// refresh token in the answer is kept (and handed to `on_rotation`), and the next fetch waits
/// for it. An exchange that has not ended 2 minutes after it began is given up (its HTTP
/// request dropped), so that a token endpoint that never answers cannot hold the grant for
/// ever. A new refresh token is kept even from a success response that is otherwise rejected
/// (a malformed access token, say), since the server has rotated all the same. Outside a
/// tokio runtime (another executor), the exchange runs inside the fetch, and a fetch dropped
/// mid-exchange loses whatever the server answered: if it had rotated the refresh token, the
/// next fetch fails with `invalid_grant`, which needs a new sign-in
/// ([`OAuthErrorCode::InvalidGrant`](super::OAuthErrorCode::InvalidGrant)).
///
/// `Debug` and errors never show the refresh token or the client secret.
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use tower_client_headers::sources::{RefreshTokenGrant, TokenEndpoint};
/// use tower_client_headers::TokenSource;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// # let http = tower::service_fn(|_: Request<Bytes>| async {
/// #     let body = r#"{"access_token":"t1","token_type":"Bearer","expires_in":3600,"refresh_token":"r2"}"#;
/// #     Ok::<_, std::convert::Infallible>(Response::new(body.to_owned()))
/// # });
/// let endpoint = TokenEndpoint::builder("https://idp.example.com/oauth2/token")
///     .client_id("my-app") // a public client: no secret
///     .http_service(http)
///     .build()?;
/// let stored = "r1".to_owned(); // from your keychain or database
/// let source = RefreshTokenGrant::new(endpoint, stored).on_rotation(|new_refresh_token| {
///     // Persist it: the server has revoked the old one.
///     # assert_eq!(new_refresh_token, "r2");
/// });
/// let token = source.fetch().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RefreshTokenGrant {
    endpoint: TokenEndpoint,
    extras: Extras,
    /// The current refresh token, held for the whole of each exchange.
    refresh_token: Arc<Mutex<String>>,
    on_rotation: Option<OnRotation>,
}

impl RefreshTokenGrant {
    /// Create a new [`RefreshTokenGrant`] using `refresh_token` at `endpoint`.
    ///
    /// ```
    /// use tower_client_headers::sources::{RefreshTokenGrant, TokenEndpoint};
    ///
    /// # let http = tower::service_fn(|_: http::Request<bytes::Bytes>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// # });
    /// let endpoint = TokenEndpoint::builder("https://idp.example.com/token")
    ///     .client_id("my-app")
    ///     .http_service(http)
    ///     .build()?;
    /// let source = RefreshTokenGrant::new(endpoint, "stored-refresh-token");
    /// assert!(!format!("{source:?}").contains("stored-refresh-token"));
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn new(endpoint: TokenEndpoint, refresh_token: impl Into<String>) -> Self {
        Self {
            endpoint,
            extras: Extras::default(),
            refresh_token: Arc::new(Mutex::new(refresh_token.into())),
            on_rotation: None,
        }
    }

    /// Call `callback` with the new refresh token each time the server rotates it (answers
    /// with one different from the one sent), once per rotation, in order, never two at a
    /// time. Persist it there. Without a callback a rotation is reported as a `WARN` event:
    /// the new token lives only in memory.
    ///
    /// ```
    /// # use tower_client_headers::sources::{RefreshTokenGrant, TokenEndpoint};
    /// # let http = tower::service_fn(|_: http::Request<bytes::Bytes>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// # });
    /// # let endpoint = TokenEndpoint::builder("https://idp.example.com/token")
    /// #     .client_id("my-app").http_service(http).build()?;
    /// let path = std::env::temp_dir().join("refresh-token");
    /// let source = RefreshTokenGrant::new(endpoint, "r1").on_rotation(move |token| {
    ///     if let Err(err) = std::fs::write(&path, token) {
    ///         eprintln!("could not save the refresh token: {err}");
    ///     }
    /// });
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn on_rotation(mut self, callback: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_rotation = Some(Arc::new(callback));
        self
    }

    /// Ask for `scope` (RFC 6749 section 6: at most what was granted); repeat for more.
    /// Without scopes the server grants what the refresh token had.
    ///
    /// ```
    /// # use tower_client_headers::sources::{RefreshTokenGrant, TokenEndpoint};
    /// # let http = tower::service_fn(|_: http::Request<bytes::Bytes>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// # });
    /// # let endpoint = TokenEndpoint::builder("https://idp.example.com/token")
    /// #     .client_id("my-app").http_service(http).build()?;
    /// let source = RefreshTokenGrant::new(endpoint, "r1").scope("read");
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.extras.scopes.push(scope.into());
        self
    }

    /// Send an extra form parameter (such as `resource`), after the grant's own.
    ///
    /// ```
    /// # use tower_client_headers::sources::{RefreshTokenGrant, TokenEndpoint};
    /// # let http = tower::service_fn(|_: http::Request<bytes::Bytes>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// # });
    /// # let endpoint = TokenEndpoint::builder("https://idp.example.com/token")
    /// #     .client_id("my-app").http_service(http).build()?;
    /// let source = RefreshTokenGrant::new(endpoint, "r1").param("resource", "https://api.example.com");
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extras.params.push((name.into(), value.into()));
        self
    }
}

/// How long an exchange run in a task of its own may take before it is given up.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(120);

/// One use of the refresh token: everything the exchange needs, owned, so that it can run in
/// a task of its own.
struct Exchange {
    endpoint: TokenEndpoint,
    extras: Extras,
    on_rotation: Option<OnRotation>,
}

impl Exchange {
    /// POST the refresh token held by `current` and keep a new one the server answers with.
    /// `current` is held until then: one use at a time.
    async fn run(self, mut current: OwnedMutexGuard<String>) -> Result<Token, BoxError> {
        let scope = self.extras.scope();
        let granted = {
            let params = self.extras.params(
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", current.as_str()),
                ],
                &scope,
            );
            self.endpoint
                .exchange(&params, Some(current.as_str()))
                .await
        };
        if let Some(new) = granted.refresh_token.filter(|new| *new != *current) {
            *current = new;
            match &self.on_rotation {
                Some(callback) => {
                    trace::refresh_token_rotated(true);
                    callback(current.as_str());
                }
                None => trace::refresh_token_rotated(false),
            }
        }
        granted.token
    }
}

impl TokenSource for RefreshTokenGrant {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Token, BoxError>> + Send + '_>> {
        Box::pin(async move {
            let current = Arc::clone(&self.refresh_token).lock_owned().await;
            let exchange = Exchange {
                endpoint: self.endpoint.clone(),
                extras: self.extras.clone(),
                on_rotation: self.on_rotation.clone(),
            };
            let Ok(handle) = Handle::try_current() else {
                // No runtime to run it apart: dropping this fetch drops the exchange.
                return exchange.run(current).await;
            };
            // Apart from this fetch, so that dropping the fetch cannot lose the answer.
            let task = handle.spawn(exchange.run(current));
            let abort = task.abort_handle();
            // The bound, in a task of its own too: if the runtime has no timer, only that
            // task fails, and the exchange is just not bounded.
            drop(handle.spawn(async move {
                tokio::time::sleep(EXCHANGE_LIMIT).await;
                abort.abort();
            }));
            task.await.map_err(|err| {
                let problem = if err.is_panic() {
                    "the refresh-token exchange panicked (in the on_rotation callback?)"
                } else {
                    "the refresh-token exchange was cancelled (it took over 2 minutes, or the \
                     runtime is shutting down)"
                };
                BoxError::from(Error::new(ErrorKind::TokenFetch, problem))
            })?
        })
    }
}

impl fmt::Debug for RefreshTokenGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokenGrant")
            .field("endpoint", &self.endpoint)
            .field("refresh_token", &"<redacted>")
            .field("scopes", &self.extras.scopes)
            .field("params", &self.extras.param_names())
            .field("on_rotation", &self.on_rotation.is_some())
            .finish()
    }
}

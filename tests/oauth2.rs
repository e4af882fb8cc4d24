//! The OAuth2 token sources against a local axum token endpoint that implements RFC 6749
//! (sections 2.3.1, 4.4, 5.1, 5.2 and 6), through a real hyper-util client (and reqwest).
//!
//! These run on the real clock: the endpoint and the client share sockets, and tokio's paused
//! clock would jump to timeouts while a request is on the wire. The slow-endpoint test needs
//! no clock trick: the endpoint never answers, so only `fetch_timeout` can end the wait.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tower::{service_fn, ServiceExt};
use tower_client_headers::sources::{
    ClientAuth, ClientCredentials, OAuthError, OAuthErrorCode, RefreshTokenGrant, TokenEndpoint,
};
use tower_client_headers::{BearerAuthLayer, BoxError, Error, ErrorKind, TokenSource};
use tower_layer::Layer;

const CLIENT_ID: &str = "svc:orders";
/// Characters that the form encoding of `client_secret_basic` must get right.
const SECRET: &str = "s3cr3t &+:/=%é";

/// What the token endpoint does with the next requests.
#[derive(Clone, Debug)]
enum Mode {
    /// Issue `at-<n>`, with this `expires_in` member (none: left out).
    Issue(Option<Value>),
    /// Answer with this status and body.
    Raw(u16, String),
    /// Never answer.
    Hang,
    /// The refresh-token grant, rotating: the current refresh token is accepted once, and
    /// answered (after a delay) with a new access token and a new refresh token.
    Rotate,
}

/// One token request as the endpoint saw it.
#[derive(Clone, Debug)]
struct Seen {
    authorization: Option<String>,
    content_type: Option<String>,
    form: Vec<(String, String)>,
}

impl Seen {
    fn get(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.form
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[derive(Clone)]
struct Idp {
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    issued: Arc<AtomicUsize>,
    /// Rotation: the refresh token that works now, every one ever presented, and how many
    /// requests are using one at this moment (and the most ever).
    current_refresh: Arc<Mutex<String>>,
    presented: Arc<Mutex<Vec<String>>>,
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
    base: String,
}

impl Idp {
    async fn start(mode: Mode) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("addr");
        let idp = Self {
            mode: Arc::new(Mutex::new(mode)),
            seen: Arc::default(),
            issued: Arc::default(),
            current_refresh: Arc::new(Mutex::new("rt-1".to_owned())),
            presented: Arc::default(),
            in_flight: Arc::default(),
            most_in_flight: Arc::default(),
            base: format!("http://{addr}"),
        };
        let app = Router::new()
            .route("/oauth2/token", post(token))
            .with_state(idp.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        idp
    }

    fn url(&self) -> String {
        format!("{}/oauth2/token", self.base)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().expect("lock") = mode;
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    fn endpoint(&self, auth: ClientAuth) -> TokenEndpoint {
        TokenEndpoint::builder(&self.url())
            .client_id(CLIENT_ID)
            .client_secret(SECRET)
            .client_auth(auth)
            .http_service(hyper_client())
            .build()
            .expect("valid endpoint")
    }
}

fn hyper_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The client's id and secret as the endpoint received them, and how.
fn client_of(
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Option<(String, String, &'static str)> {
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    if let Some(auth) = headers.get("authorization") {
        let encoded = auth.to_str().ok()?.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        let unescape = |s: &str| {
            form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        return Some((unescape(id)?, unescape(secret)?, "basic"));
    }
    Some((field("client_id")?, field("client_secret")?, "post"))
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    let mut response = (
        status,
        [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
        ],
        json!({"error": code, "error_description": description}).to_string(),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            "www-authenticate",
            "Basic realm=\"idp\"".parse().expect("value"),
        );
    }
    response
}

fn json_response(body: Value) -> Response {
    (
        StatusCode::OK,
        [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

async fn token(State(idp): State<Idp>, headers: HeaderMap, body: Bytes) -> Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    idp.seen.lock().expect("lock").push(Seen {
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        form: form.clone(),
    });
    let mode = idp.mode.lock().expect("lock").clone();
    match mode {
        Mode::Hang => std::future::pending().await,
        Mode::Raw(status, body) => {
            let status = StatusCode::from_u16(status).expect("status");
            return (status, [("content-type", "application/json")], body).into_response();
        }
        Mode::Issue(_) | Mode::Rotate => {}
    }
    // RFC 6749 section 2.3.1: authenticate the client, one method only.
    let grant = form
        .iter()
        .find(|(k, _)| k == "grant_type")
        .map(|(_, v)| v.clone());
    match client_of(&headers, &form) {
        Some((id, secret, _)) if id == CLIENT_ID && secret == SECRET => {}
        _ => {
            // A public client (refresh grant) sends only its id.
            let public = headers.get("authorization").is_none()
                && form.iter().any(|(k, v)| k == "client_id" && v == CLIENT_ID)
                && !form.iter().any(|(k, _)| k == "client_secret");
            if !(public && grant.as_deref() == Some("refresh_token")) {
                return oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "Client authentication failed",
                );
            }
        }
    }
    match (mode, grant.as_deref()) {
        (Mode::Issue(expires_in), Some("client_credentials")) => {
            let n = idp.issued.fetch_add(1, Ordering::SeqCst) + 1;
            let mut body = json!({"access_token": format!("at-{n}"), "token_type": "Bearer"});
            if let Some(expires_in) = expires_in {
                body["expires_in"] = expires_in;
            }
            json_response(body)
        }
        (Mode::Rotate, Some("refresh_token")) => {
            let presented = form
                .iter()
                .find(|(k, _)| k == "refresh_token")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            idp.presented.lock().expect("lock").push(presented.clone());
            let now = idp.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            idp.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            idp.in_flight.fetch_sub(1, Ordering::SeqCst);
            let mut current = idp.current_refresh.lock().expect("lock");
            if presented != *current {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "The refresh token is invalid or was already used",
                );
            }
            let n = idp.issued.fetch_add(1, Ordering::SeqCst) + 1;
            *current = format!("rt-{}", n + 1);
            json_response(json!({
                "access_token": format!("at-{n}"),
                "token_type": "Bearer",
                "expires_in": 3600,
                "refresh_token": *current,
            }))
        }
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "This endpoint does not do that grant",
        ),
    }
}

/// An error and its sources, `a: b: c`.
/// The endpoint at `idp` for the public client `cid`, over hyper-util.
fn public_client(idp: &str) -> TokenEndpoint {
    TokenEndpoint::builder(idp)
        .client_id("cid")
        .http_service(hyper_client())
        .build()
        .expect("valid")
}

/// A refresh-token grant starting from `rt-1`, and every refresh token it rotated to.
fn recording_rotations(endpoint: TokenEndpoint) -> (RefreshTokenGrant, Arc<Mutex<Vec<String>>>) {
    let rotations = Arc::new(Mutex::new(Vec::<String>::new()));
    let saved = Arc::clone(&rotations);
    let grant = RefreshTokenGrant::new(endpoint, "rt-1")
        .on_rotation(move |t| saved.lock().expect("lock").push(t.into()));
    (grant, rotations)
}

fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// The `Authorization` a layer with `source` sends.
async fn sent_with(layer: &BearerAuthLayer) -> Result<String, BoxError> {
    let echo = service_fn(|req: Request<()>| async move {
        let auth = req
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or("<binary>").to_owned())
            .unwrap_or_default();
        Ok::<_, Infallible>(http::Response::new(auth))
    });
    let req = Request::get("https://api.example.com/v1")
        .body(())
        .expect("request");
    Ok(layer.clone().layer(echo).oneshot(req).await?.into_body())
}

#[tokio::test]
async fn client_credentials_fetches_a_token_with_its_lifetime() {
    let idp = Idp::start(Mode::Issue(Some(json!(3600)))).await;
    let source = ClientCredentials::new(idp.endpoint(ClientAuth::default()));
    let before = tokio::time::Instant::now();
    let token = source.fetch().await.expect("a token");
    let expires = token.expires_at().expect("expires_in honoured") - before;
    assert!(
        expires >= Duration::from_secs(3600) && expires < Duration::from_secs(3610),
        "{expires:?}"
    );
    let layer = BearerAuthLayer::from_source(source);
    assert_eq!(sent_with(&layer).await.expect("sent"), "Bearer at-2");
    assert_eq!(
        sent_with(&layer).await.expect("sent"),
        "Bearer at-2",
        "cached"
    );
    let seen = idp.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].get("grant_type"), Some("client_credentials"));
    assert_eq!(
        seen[0].content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
}

#[tokio::test]
async fn expires_in_absent_or_zero_gives_a_token_used_until_a_401() {
    for expires_in in [None, Some(json!(0)), Some(Value::Null)] {
        let idp = Idp::start(Mode::Issue(expires_in.clone())).await;
        let source = ClientCredentials::new(idp.endpoint(ClientAuth::default()));
        let token = source.fetch().await.expect("a token");
        assert_eq!(token.expires_at(), None, "{expires_in:?}");
        assert_eq!(token.refresh_at(), None);
    }
    // A string, as some servers send it.
    let idp = Idp::start(Mode::Issue(Some(json!("60")))).await;
    let token = ClientCredentials::new(idp.endpoint(ClientAuth::default()))
        .fetch()
        .await
        .expect("a token");
    assert!(token.expires_at().is_some());
}

#[tokio::test]
async fn every_rfc_6749_error_code_becomes_an_oauth_error_without_the_secret() {
    let idp = Idp::start(Mode::Hang).await;
    let layer =
        BearerAuthLayer::from_source(ClientCredentials::new(idp.endpoint(ClientAuth::default())));
    for (status, code, expected) in [
        (400, "invalid_request", OAuthErrorCode::InvalidRequest),
        (401, "invalid_client", OAuthErrorCode::InvalidClient),
        (400, "invalid_grant", OAuthErrorCode::InvalidGrant),
        (
            400,
            "unauthorized_client",
            OAuthErrorCode::UnauthorizedClient,
        ),
        (
            400,
            "unsupported_grant_type",
            OAuthErrorCode::UnsupportedGrantType,
        ),
        (400, "invalid_scope", OAuthErrorCode::InvalidScope),
        (
            400,
            "invalid_target",
            OAuthErrorCode::Other("invalid_target".into()),
        ),
    ] {
        // The server echoes the secret in its description: it must not get through.
        let body = json!({
            "error": code,
            "error_description": format!("rejected {SECRET} for {CLIENT_ID}"),
            "error_uri": "https://idp.example/errors",
        });
        idp.set(Mode::Raw(status, body.to_string()));
        let err = layer.refresh().await.expect_err(code);
        assert_eq!(err.kind(), ErrorKind::TokenFetch);
        let oauth = OAuthError::find(&err).expect("an OAuthError in the chain");
        assert_eq!(*oauth.code(), expected);
        assert_eq!(oauth.status().as_u16(), status);
        assert_eq!(
            oauth.description(),
            Some(format!("rejected <redacted> for {CLIENT_ID}").as_str())
        );
        assert_eq!(oauth.uri(), Some("https://idp.example/errors"));
        let text = chain(&err);
        assert!(text.contains(code), "{text}");
        for shown in [
            text,
            format!("{err:?}"),
            format!("{oauth:?}"),
            format!("{layer:?}"),
        ] {
            assert!(!shown.contains(SECRET), "{shown}");
        }
    }
}

#[tokio::test]
async fn the_real_endpoint_refuses_a_wrong_secret_with_invalid_client() {
    let idp = Idp::start(Mode::Issue(Some(json!(3600)))).await;
    let endpoint = TokenEndpoint::builder(&idp.url())
        .client_id(CLIENT_ID)
        .client_secret("wrong-secret")
        .http_service(hyper_client())
        .build()
        .expect("valid");
    let err = ClientCredentials::new(endpoint)
        .fetch()
        .await
        .expect_err("wrong secret");
    let oauth = OAuthError::find(err.as_ref()).expect("an OAuthError");
    assert_eq!(*oauth.code(), OAuthErrorCode::InvalidClient);
    assert_eq!(oauth.status(), StatusCode::UNAUTHORIZED);
    assert!(!chain(err.as_ref()).contains("wrong-secret"));
}

#[tokio::test]
async fn malformed_bodies_are_errors_that_say_what_is_wrong() {
    let idp = Idp::start(Mode::Hang).await;
    let source = ClientCredentials::new(idp.endpoint(ClientAuth::default()));
    for (status, body, says) in [
        (200, "not json", "not a JSON object"),
        (200, r#"{"token_type":"Bearer"}"#, "no `access_token`"),
        (
            200,
            r#"{"access_token":"at-1","token_type":"DPoP"}"#,
            "not Bearer",
        ),
        (
            200,
            r#"{"access_token":"has space","token_type":"Bearer"}"#,
            "b64token",
        ),
        (
            200,
            r#"{"access_token":"at-1","expires_in":"tomorrow"}"#,
            "`expires_in`",
        ),
        (503, "<html>down</html>", "503 Service Unavailable"),
    ] {
        idp.set(Mode::Raw(status, body.to_owned()));
        let err = source.fetch().await.expect_err(body);
        let text = chain(err.as_ref());
        assert!(text.contains(says), "{body}: {text}");
        assert!(text.contains(&idp.url()), "names the endpoint: {text}");
        assert!(OAuthError::find(err.as_ref()).is_none());
        assert!(!text.contains("has space"), "{text}");
    }
}

#[tokio::test]
async fn a_slow_endpoint_times_out_with_fetch_timeout() {
    let idp = Idp::start(Mode::Hang).await;
    let layer = BearerAuthLayer::builder()
        .source(ClientCredentials::new(idp.endpoint(ClientAuth::default())))
        .fetch_timeout(Duration::from_millis(300))
        .build()
        .expect("valid");
    let started = std::time::Instant::now();
    let err = sent_with(&layer).await.expect_err("timed out");
    let ours = err.downcast_ref::<Error>().expect("our error");
    assert_eq!(ours.kind(), ErrorKind::TokenFetchTimeout);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(idp.seen().len(), 1, "the request reached the endpoint");
}

#[tokio::test]
async fn scopes_audience_and_resources_are_sent_as_given() {
    let idp = Idp::start(Mode::Issue(Some(json!(3600)))).await;
    let source = ClientCredentials::new(idp.endpoint(ClientAuth::default()))
        .scope("orders:read")
        .scope("orders:write")
        .param("audience", "https://api.example.com/")
        .param("resource", "https://a.example/")
        .param("resource", "https://b.example/");
    let debug = format!("{source:?}");
    assert!(
        debug.contains("audience") && !debug.contains("https://a.example/"),
        "parameter names only (a value may be a credential): {debug}"
    );
    source.fetch().await.expect("a token");
    let seen = &idp.seen()[0];
    assert_eq!(seen.get("scope"), Some("orders:read orders:write"));
    assert_eq!(seen.get("audience"), Some("https://api.example.com/"));
    assert_eq!(
        seen.all("resource"),
        ["https://a.example/", "https://b.example/"]
    );
    let names: Vec<_> = seen.form.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["grant_type", "scope", "audience", "resource", "resource"],
        "the grant's own parameters first; the secret travels in the header"
    );

    // No scopes: no scope parameter at all.
    ClientCredentials::new(idp.endpoint(ClientAuth::default()))
        .fetch()
        .await
        .expect("a token");
    assert_eq!(idp.seen()[1].get("scope"), None);
}

#[tokio::test]
async fn client_secret_basic_and_client_secret_post() {
    let idp = Idp::start(Mode::Issue(Some(json!(3600)))).await;
    ClientCredentials::new(idp.endpoint(ClientAuth::ClientSecretBasic))
        .fetch()
        .await
        .expect("basic accepted");
    ClientCredentials::new(idp.endpoint(ClientAuth::ClientSecretPost))
        .fetch()
        .await
        .expect("post accepted");
    let seen = idp.seen();
    // Basic: the header, nothing in the body.
    assert!(seen[0]
        .authorization
        .as_deref()
        .is_some_and(|a| a.starts_with("Basic ")));
    assert_eq!(seen[0].get("client_id"), None);
    assert_eq!(seen[0].get("client_secret"), None);
    // Post: the body, no header.
    assert_eq!(seen[1].authorization, None);
    assert_eq!(seen[1].get("client_id"), Some(CLIENT_ID));
    assert_eq!(seen[1].get("client_secret"), Some(SECRET));
}

#[tokio::test]
async fn the_rotation_callback_is_called_once_per_rotation() {
    let idp = Idp::start(Mode::Rotate).await;
    let rotated = Arc::new(Mutex::new(Vec::<String>::new()));
    let saved = Arc::clone(&rotated);
    let grant = RefreshTokenGrant::new(idp.endpoint(ClientAuth::default()), "rt-1")
        .on_rotation(move |token| saved.lock().expect("lock").push(token.to_owned()));
    for n in 1..=3 {
        let token = grant.fetch().await.expect("a token");
        assert!(token.expires_at().is_some(), "fetch {n}");
    }
    assert_eq!(*rotated.lock().expect("lock"), ["rt-2", "rt-3", "rt-4"]);
    assert_eq!(
        *idp.presented.lock().expect("lock"),
        ["rt-1", "rt-2", "rt-3"]
    );
    let seen = idp.seen();
    assert_eq!(seen[0].get("grant_type"), Some("refresh_token"));
    assert!(!format!("{grant:?}").contains("rt-"), "{grant:?}");

    // A response without a refresh token, or with the same one, is not a rotation.
    idp.set(Mode::Raw(
        200,
        json!({"access_token": "at-x", "token_type": "Bearer", "refresh_token": "rt-4"})
            .to_string(),
    ));
    grant.fetch().await.expect("a token");
    idp.set(Mode::Raw(200, json!({"access_token": "at-y"}).to_string()));
    grant.fetch().await.expect("a token");
    assert_eq!(rotated.lock().expect("lock").len(), 3);
    assert_eq!(idp.seen()[4].get("refresh_token"), Some("rt-4"));

    // A revoked refresh token: invalid_grant, and the token never in the error.
    idp.set(Mode::Raw(
        400,
        json!({"error": "invalid_grant", "error_description": "rt-4 was revoked"}).to_string(),
    ));
    let err = grant.fetch().await.expect_err("revoked");
    let oauth = OAuthError::find(err.as_ref()).expect("an OAuthError");
    assert_eq!(*oauth.code(), OAuthErrorCode::InvalidGrant);
    assert!(
        !chain(err.as_ref()).contains("rt-4"),
        "{}",
        chain(err.as_ref())
    );
}

#[tokio::test]
async fn a_refresh_token_is_never_used_twice_or_concurrently() {
    let idp = Idp::start(Mode::Rotate).await;
    let rotations = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&rotations);
    // A public client: client_id in the body, no secret.
    let endpoint = TokenEndpoint::builder(&idp.url())
        .client_id(CLIENT_ID)
        .http_service(hyper_client())
        .build()
        .expect("valid");
    let grant = RefreshTokenGrant::new(endpoint, "rt-1").on_rotation(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let layer = BearerAuthLayer::from_source(grant.clone());

    // 50 requests at once with no token: one fetch.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let layer = layer.clone();
        tasks.spawn(async move { sent_with(&layer).await.expect("sent") });
    }
    while let Some(auth) = tasks.join_next().await {
        assert_eq!(auth.expect("task"), "Bearer at-1");
    }
    // Dropped (as after a 401) and refreshed by many at once, three times over.
    for round in 2..=4 {
        layer.invalidate();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let layer = layer.clone();
            tasks.spawn(async move { sent_with(&layer).await.expect("sent") });
        }
        while let Some(auth) = tasks.join_next().await {
            assert_eq!(auth.expect("task"), format!("Bearer at-{round}"));
        }
    }
    // The grant's own clones, used directly and at once (two layers sharing it, say): they
    // take turns, each with the latest refresh token.
    let twin = grant.clone();
    let (a, b) = tokio::join!(grant.fetch(), twin.fetch());
    a.expect("first");
    b.expect("second");

    let presented = idp.presented.lock().expect("lock").clone();
    assert_eq!(presented, ["rt-1", "rt-2", "rt-3", "rt-4", "rt-5", "rt-6"]);
    assert_eq!(
        idp.most_in_flight.load(Ordering::SeqCst),
        1,
        "never two at a time"
    );
    assert_eq!(rotations.load(Ordering::SeqCst), 6);
    let seen = idp.seen();
    assert!(seen.iter().all(|s| s.get("client_id") == Some(CLIENT_ID)));
    assert!(seen.iter().all(|s| s.authorization.is_none()));
}

#[cfg(feature = "reqwest-middleware")]
#[tokio::test]
async fn a_reqwest_client_reaches_the_endpoint_too() {
    let idp = Idp::start(Mode::Issue(Some(json!(3600)))).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let endpoint = TokenEndpoint::builder(&idp.url())
        .client_id(CLIENT_ID)
        .client_secret(SECRET)
        .reqwest_client(client)
        .build()
        .expect("valid");
    let layer = BearerAuthLayer::from_source(ClientCredentials::new(endpoint).scope("a"));
    assert_eq!(sent_with(&layer).await.expect("sent"), "Bearer at-1");
    assert_eq!(idp.seen()[0].get("scope"), Some("a"));

    idp.set(Mode::Raw(
        400,
        json!({"error": "invalid_scope"}).to_string(),
    ));
    let err = layer.refresh().await.expect_err("error response");
    assert_eq!(
        OAuthError::find(&err).map(OAuthError::code),
        Some(&OAuthErrorCode::InvalidScope)
    );
}

// Regressions from the adversarial review of the token sources (D1, D2, D3, D6).

type Bodies = Arc<Mutex<Vec<String>>>;

/// A bare token endpoint on 127.0.0.1:0 recording every POST body; `answer(n, body)`
/// answers request `n`.
async fn serve<F, Fut>(answer: F) -> (String, Bodies)
where
    F: Fn(usize, String) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response> + Send + 'static,
{
    let seen: Bodies = Arc::default();
    let bodies = Arc::clone(&seen);
    let app = Router::new().route(
        "/token",
        post(move |body: Bytes| {
            let body = String::from_utf8_lossy(&body).into_owned();
            let n = {
                let mut bodies = bodies.lock().expect("lock");
                bodies.push(body.clone());
                bodies.len() - 1
            };
            answer(n, body)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let url = format!("http://{}/token", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn ok(body: String) -> Response {
    (StatusCode::OK, [("content-type", "application/json")], body).into_response()
}

/// D1: a `reqwest::Client` with its default redirect policy must not carry the client secret
/// and the refresh token to the origin a 307/308 points at, nor must a token from wherever a
/// redirect leads be accepted.
#[cfg(feature = "reqwest-middleware")]
#[tokio::test]
async fn a_reqwest_transport_never_follows_a_redirect_with_the_secrets() {
    let (evil, evil_seen) =
        serve(|_, _| async { ok(r#"{"access_token":"attacker","token_type":"Bearer"}"#.into()) })
            .await;
    for status in [307u16, 308, 301, 302, 303] {
        let target = evil.clone();
        let (idp, _) = serve(move |_, _| {
            let target = target.clone();
            async move {
                let status = StatusCode::from_u16(status).expect("status");
                (status, [("location", target)]).into_response()
            }
        })
        .await;
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        for auth in [ClientAuth::ClientSecretPost, ClientAuth::ClientSecretBasic] {
            let endpoint = TokenEndpoint::builder(&idp)
                .client_id("cid")
                .client_secret("hunter2")
                .client_auth(auth)
                .reqwest_client(client.clone())
                .build()
                .expect("valid");
            let err = RefreshTokenGrant::new(endpoint, "rt-secret")
                .fetch()
                .await
                .expect_err("a redirect is an error");
            let text = chain(err.as_ref());
            assert!(text.contains("redirect"), "{status}: {text}");
            assert!(
                !text.contains("hunter2") && !text.contains("rt-secret"),
                "{text}"
            );
        }
        let evil_seen = evil_seen.lock().expect("lock").clone();
        assert!(
            evil_seen.is_empty(),
            "{status}: the other origin got {evil_seen:?}"
        );
    }
}

/// D1, the tower transport: a 3xx is an error, never followed.
#[tokio::test]
async fn a_tower_transport_treats_a_redirect_as_an_error() {
    let (idp, _) = serve(|_, _| async {
        (
            StatusCode::TEMPORARY_REDIRECT,
            [("location", "http://127.0.0.1:9/x")],
        )
            .into_response()
    })
    .await;
    let endpoint = public_client(&idp);
    let err = RefreshTokenGrant::new(endpoint, "rt-secret")
        .fetch()
        .await
        .expect_err("a redirect is an error");
    assert!(
        chain(err.as_ref()).contains("307"),
        "{}",
        chain(err.as_ref())
    );
}

/// D2: the server rotates the refresh token but the rest of its 200 is rejected (an
/// access_token that is not a b64token, a `token_type` that is not Bearer, a negative
/// `expires_in`): the new refresh token is still kept and handed to `on_rotation`.
#[tokio::test]
async fn a_rotation_in_a_rejected_success_response_is_kept() {
    let (idp, seen) = serve(|n, _| async move {
        let rest = [
            r#""access_token":"not b64token""#,
            r#""access_token":"at","token_type":"Bearer ""#,
            r#""access_token":"at","expires_in":-1"#,
            r#""access_token":7"#,
        ];
        ok(format!(
            r#"{{{},"refresh_token":"rt-{}"}}"#,
            rest[n % rest.len()],
            n + 2
        ))
    })
    .await;
    let endpoint = public_client(&idp);
    let (grant, rotations) = recording_rotations(endpoint);
    for _ in 0..4 {
        let err = grant.fetch().await.expect_err("a rejected response");
        assert!(
            !chain(err.as_ref()).contains("rt-"),
            "{}",
            chain(err.as_ref())
        );
    }
    grant.fetch().await.expect_err("a rejected response");
    let sent: Vec<String> = seen
        .lock()
        .expect("lock")
        .iter()
        .map(|body| {
            form_urlencoded::parse(body.as_bytes())
                .find(|(k, _)| k == "refresh_token")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(sent, ["rt-1", "rt-2", "rt-3", "rt-4", "rt-5"]);
    assert_eq!(
        *rotations.lock().expect("lock"),
        ["rt-2", "rt-3", "rt-4", "rt-5", "rt-6"]
    );
}

/// A rotating endpoint that commits each rotation before answering; for the first request, it
/// says so on `committed` and answers only once `release` is notified.
async fn rotating_after_release(
    committed: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
) -> (String, Bodies) {
    let current = Arc::new(Mutex::new("rt-1".to_owned()));
    serve(move |n, body| {
        let (current, committed, release) = (
            Arc::clone(&current),
            Arc::clone(&committed),
            Arc::clone(&release),
        );
        async move {
            let new = {
                let mut current = current.lock().expect("lock");
                if !body.contains(&format!("refresh_token={}", *current)) {
                    return (
                        StatusCode::BAD_REQUEST,
                        [("content-type", "application/json")],
                        r#"{"error":"invalid_grant"}"#,
                    )
                        .into_response();
                }
                *current = format!("rt-{}", n + 2);
                current.clone()
            };
            if n == 0 {
                committed.notify_one();
                release.notified().await;
            }
            ok(format!(
                r#"{{"access_token":"at-{}","expires_in":3600,"refresh_token":"{new}"}}"#,
                n + 1
            ))
        }
    })
    .await
}

/// D3: `invalidate()` ends the layer's fetch while the server has already rotated the
/// refresh token; the grant still reads the answer and keeps the new refresh token, so the
/// next fetch succeeds (and never sends the revoked one).
#[tokio::test]
async fn invalidate_during_a_refresh_token_exchange_keeps_the_rotation() {
    let (committed, release) = (Arc::default(), Arc::<tokio::sync::Notify>::default());
    let (idp, seen) = rotating_after_release(Arc::clone(&committed), Arc::clone(&release)).await;
    let endpoint = public_client(&idp);
    let (grant, rotations) = recording_rotations(endpoint);
    let layer = BearerAuthLayer::from_source(grant);
    let first = tokio::spawn({
        let layer = layer.clone();
        async move { layer.refresh().await }
    });
    committed.notified().await; // the server has rotated rt-1 -> rt-2
    layer.invalidate();
    release.notify_one(); // and answers now
                          // The requests waiting on the first fetch get a new one, which waits for the first
                          // exchange's answer and then uses rt-2.
    first
        .await
        .expect("task")
        .expect("a fetch after the invalidation");
    layer.refresh().await.expect("and the next one");
    let bodies = seen.lock().expect("lock").clone();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    for (n, body) in bodies.iter().enumerate() {
        assert!(
            body.contains(&format!("refresh_token=rt-{}", n + 1)),
            "{bodies:?}"
        );
    }
    assert_eq!(*rotations.lock().expect("lock"), ["rt-2", "rt-3", "rt-4"]);
}

/// D3b: a fetch abandoned by `fetch_timeout` after the server rotated keeps the rotation
/// too.
#[tokio::test]
async fn a_timed_out_refresh_token_exchange_keeps_the_rotation() {
    let (committed, release) = (Arc::default(), Arc::<tokio::sync::Notify>::default());
    let (idp, seen) = rotating_after_release(Arc::clone(&committed), Arc::clone(&release)).await;
    let endpoint = public_client(&idp);
    let layer = BearerAuthLayer::builder()
        .source(RefreshTokenGrant::new(endpoint, "rt-1"))
        .fetch_timeout(Duration::from_millis(200))
        .build()
        .expect("layer");
    let err = layer.refresh().await.expect_err("timed out");
    assert!(chain(&err).contains("time"), "{}", chain(&err));
    committed.notified().await;
    release.notify_one(); // the abandoned exchange gets its answer
                          // The backoff after a failure may hold the next fetch back; wait it out on the real clock
                          // (the endpoint shares sockets with the client, see the top of this file).
    let mut second = layer.refresh().await;
    for _ in 0..50 {
        if second.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        second = layer.refresh().await;
    }
    second.expect("a later fetch uses rt-2");
    let bodies = seen.lock().expect("lock").clone();
    assert!(bodies.len() >= 2, "{bodies:?}");
    for (n, body) in bodies.iter().enumerate() {
        assert!(
            body.contains(&format!("refresh_token=rt-{}", n + 1)),
            "{bodies:?}"
        );
    }
}

/// D6: a secret the server echoes back form-encoded, as the `Basic` credential, or in
/// another case, is redacted too.
#[tokio::test]
async fn an_echoed_secret_is_redacted_in_any_of_its_encodings() {
    let (idp, _) = serve(|_, body| async move {
        let e = json!({"error": "invalid_request", "error_description": format!("cannot parse {body}")});
        (StatusCode::BAD_REQUEST, e.to_string()).into_response()
    })
    .await;
    let endpoint = TokenEndpoint::builder(&idp)
        .client_id("cid")
        .client_secret("p@ss/w+rd")
        .client_auth(ClientAuth::ClientSecretPost)
        .http_service(hyper_client())
        .build()
        .expect("valid");
    let err = RefreshTokenGrant::new(endpoint, "Refresh Token/1")
        .fetch()
        .await
        .expect_err("an error");
    let oauth = OAuthError::find(err.as_ref()).expect("an OAuthError");
    let text = oauth.to_string();
    for leaked in ["p%40ss%2Fw%2Brd", "p@ss", "Refresh+Token%2F1", "Refresh"] {
        assert!(!text.contains(leaked), "{leaked} in {text}");
    }
    assert!(text.contains("<redacted>"), "{text}");

    let basic = base64::engine::general_purpose::STANDARD.encode("cid:p%40ss%2Fw%2Brd");
    let (idp, _) = serve(move |_, _| {
        let basic = basic.clone();
        async move {
            let e = json!({"error": "invalid_client", "error_description": format!("bad Basic {basic}; also P@SS/W+RD")});
            (StatusCode::UNAUTHORIZED, e.to_string()).into_response()
        }
    })
    .await;
    let endpoint = TokenEndpoint::builder(&idp)
        .client_id("cid")
        .client_secret("p@ss/w+rd")
        .http_service(hyper_client())
        .build()
        .expect("valid");
    let err = ClientCredentials::new(endpoint)
        .fetch()
        .await
        .expect_err("an error");
    let text = OAuthError::find(err.as_ref())
        .expect("an OAuthError")
        .to_string();
    let basic = base64::engine::general_purpose::STANDARD.encode("cid:p%40ss%2Fw%2Brd");
    assert!(!text.contains(&basic), "{text}");
    assert!(!text.contains("P@SS"), "{text}");
}

/// D1, the tower transport with tower-http: a response that a `FollowRedirect` inside the
/// service brought from another URL (its `RequestUri`) is an error, and its token unused.
#[cfg(feature = "tower-http")]
#[tokio::test]
async fn a_tower_http_follow_redirect_inside_the_service_is_caught() {
    let http = service_fn(|_: Request<Bytes>| async {
        let mut response =
            http::Response::new(r#"{"access_token":"attacker","token_type":"Bearer"}"#.to_owned());
        let from: http::Uri = "https://evil.example/token".parse().expect("uri");
        response
            .extensions_mut()
            .insert(tower_http::follow_redirect::RequestUri(from));
        Ok::<_, Infallible>(response)
    });
    let endpoint = TokenEndpoint::builder("https://idp.example/token")
        .client_id("cid")
        .client_secret("hunter2")
        .http_service(http)
        .build()
        .expect("valid");
    let err = ClientCredentials::new(endpoint)
        .fetch()
        .await
        .expect_err("redirected");
    let text = chain(err.as_ref());
    assert!(
        text.contains("redirected (to `https://evil.example`)"),
        "{text}"
    );

    // From the token URL itself: a token.
    let http = service_fn(|req: Request<Bytes>| async move {
        let mut response =
            http::Response::new(r#"{"access_token":"good","token_type":"Bearer"}"#.to_owned());
        response
            .extensions_mut()
            .insert(tower_http::follow_redirect::RequestUri(req.uri().clone()));
        Ok::<_, Infallible>(response)
    });
    let endpoint = TokenEndpoint::builder("https://idp.example/token")
        .client_id("cid")
        .http_service(http)
        .build()
        .expect("valid");
    ClientCredentials::new(endpoint)
        .fetch()
        .await
        .expect("a token");
}

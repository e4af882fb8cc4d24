//! A real local HTTP server for the end-to-end tests, on `127.0.0.1:0`.
//!
//! - `/echo` (and any other path) answers `200` with the request's headers as a JSON list of
//!   `[name, value]` pairs, in the order received; `401` instead if the request's
//!   `Authorization` is one the test has revoked (now, or on the server's Nth request: see
//!   [`Server::revoke_at`]). Every request (method, path, headers, body) is recorded, see
//!   [`Server::seen`].
//! - `/redirect?to=URL[&status=N]` (any method) answers `N` (default `302 Found`) with
//!   `Location: URL`.
//! - `/unauthorized` answers `401` to anything.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use http_body_util::BodyExt;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tower::{Service, ServiceExt};
use tower_client_headers::{BearerToken, BoxError, Token, TokenSource};

/// Headers as received: `[name, value]` pairs in order.
pub type Pairs = Vec<(String, String)>;

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Echoed,
    pub body: String,
}

#[derive(Clone, Default)]
pub struct Server {
    pub addr: Option<SocketAddr>,
    revoked: Arc<Mutex<HashSet<String>>>,
    /// On the Nth request, revoke this `Authorization` value before answering it.
    revoke_at: Arc<Mutex<Vec<(usize, String)>>>,
    requests: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    /// Start a server on `127.0.0.1:0`; it runs until the test's runtime ends.
    pub async fn start() -> Self {
        let mut server = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        server.addr = Some(listener.local_addr().expect("local addr"));
        let app = Router::new()
            .route("/redirect", any(redirect))
            .route("/unauthorized", any(unauthorized))
            .fallback(echo)
            .with_state(server.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        server
    }

    pub fn port(&self) -> u16 {
        self.addr.expect("started").port()
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port())
    }

    /// The same server under another origin: `http://localhost:PORT` + `path`.
    pub fn localhost_url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.port())
    }

    pub fn origin(&self) -> String {
        self.url("")
    }

    /// Answer `401` to requests carrying this `Authorization` value.
    pub fn revoke(&self, authorization: &str) {
        self.revoked
            .lock()
            .expect("lock")
            .insert(authorization.to_owned());
    }

    /// Revoke this `Authorization` value when the server's `hit`th request (1-based) arrives,
    /// before answering it: a revocation while requests are in flight.
    pub fn revoke_at(&self, hit: usize, authorization: &str) {
        self.revoke_at
            .lock()
            .expect("lock")
            .push((hit, authorization.to_owned()));
    }

    /// How many requests reached the server.
    pub fn hits(&self) -> usize {
        self.requests.lock().expect("lock").len()
    }

    /// Every request that reached the server, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.requests.lock().expect("lock").clone()
    }

    /// `/redirect?to=<target>&status=<status>` on this server at 127.0.0.1.
    pub fn redirect(&self, target: &str, status: u16) -> String {
        self.url(&redirect_path(target, status))
    }

    /// The same, at `localhost`.
    pub fn localhost_redirect(&self, target: &str, status: u16) -> String {
        self.localhost_url(&redirect_path(target, status))
    }
}

fn redirect_path(target: &str, status: u16) -> String {
    // Percent-encode everything but unreserved characters, so a target may itself carry a query.
    let mut encoded = String::new();
    for b in target.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("/redirect?to={encoded}&status={status}")
}

async fn unauthorized() -> StatusCode {
    StatusCode::UNAUTHORIZED
}

async fn echo(
    State(server): State<Server>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let pairs = pairs_of(&headers);
    let hit = {
        let mut requests = server.requests.lock().expect("lock");
        requests.push(Seen {
            method: method.to_string(),
            path: uri.path().to_owned(),
            headers: Echoed(pairs.clone()),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        requests.len()
    };
    let due: Vec<String> = server
        .revoke_at
        .lock()
        .expect("lock")
        .iter()
        .filter(|(at, _)| *at == hit)
        .map(|(_, authorization)| authorization.clone())
        .collect();
    server.revoked.lock().expect("lock").extend(due);
    let revoked = headers.get_all("authorization").iter().any(|v| {
        let revoked = server.revoked.lock().expect("lock");
        v.to_str().is_ok_and(|v| revoked.contains(v))
    });
    let status = if revoked {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    (status, Json(pairs)).into_response()
}

#[derive(serde::Deserialize)]
struct To {
    to: String,
    status: Option<u16>,
}

async fn redirect(
    State(server): State<Server>,
    Query(To { to, status }): Query<To>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    server.requests.lock().expect("lock").push(Seen {
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers: Echoed(pairs_of(&headers)),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let status = StatusCode::from_u16(status.unwrap_or(302)).expect("a status");
    (status, [(axum::http::header::LOCATION, to)]).into_response()
}

fn pairs_of(headers: &HeaderMap) -> Pairs {
    headers
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// The headers a server echoed, as received.
#[derive(Clone, Debug)]
pub struct Echoed(pub Pairs);

impl Echoed {
    pub fn parse(body: &[u8]) -> Self {
        Self(serde_json::from_slice(body).expect("echo JSON"))
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        !self.all(name).is_empty()
    }
}

/// A token source issuing `t1`, `t2`, ... that never expire, and its fetch counter.
pub fn counting_source() -> (Arc<AtomicUsize>, impl TokenSource) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&fetches);
    let source = move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok::<_, BoxError>(Token::new(BearerToken::new(format!("t{n}"))?)) }
    };
    (fetches, source)
}

/// The request body the hyper-util tests send.
pub type Body = http_body_util::Empty<bytes::Bytes>;

/// A request body with content, for redirects that replay it (307, 308).
pub type FullBody = http_body_util::Full<bytes::Bytes>;

/// A reqwest client for loopback (never through a proxy from the environment) that does not
/// follow redirects itself: the setup the README documents, with `FollowRedirects` first.
pub fn reqwest_without_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A real hyper-util client for plain http on loopback.
pub fn hyper_client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The same, sending bodies.
pub fn hyper_full_client() -> Client<HttpConnector, FullBody> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Send `req` through `svc` and read what the echo server received.
pub async fn send<S, Q, B>(svc: &S, req: axum::http::Request<Q>) -> (StatusCode, Echoed)
where
    S: Service<axum::http::Request<Q>, Response = axum::http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let response = svc.clone().oneshot(req).await.expect("response");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, Echoed::parse(&body))
}

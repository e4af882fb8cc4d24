//! Live session headers end to end: a real local server, real hyper-util and reqwest clients.
//!
//! - an update reaches every clone of the layer and every service made from it, before or
//!   after, through both clients;
//! - under load on two worker threads, a request carries the old session or the new one, never
//!   a mix, and what a task sees never goes back;
//! - the logged-in-user flow: a session header set after login, removed on logout;
//! - computed values: a request id that is unique per request, and the URL as reqwest sent it.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap as AxumHeaders, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::{hyper_client, Body, Echoed, Server};
use http::header::USER_AGENT;
use http::{HeaderValue, Request};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_client_headers::{
    DefaultHeaders, DefaultHeadersBuilder, DefaultHeadersLayer, SessionHandle,
};

fn get_req(url: &str) -> Request<Body> {
    Request::get(url).body(Body::new()).expect("request")
}

#[cfg(feature = "reqwest-middleware")]
fn reqwest_client(layer: DefaultHeadersLayer) -> reqwest_middleware::ClientWithMiddleware {
    // Loopback tests: never through a proxy from the environment.
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    reqwest_middleware::ClientBuilder::new(client)
        .with(layer)
        .build()
}

#[cfg(feature = "reqwest-middleware")]
async fn reqwest_echo(
    client: &reqwest_middleware::ClientWithMiddleware,
    url: &str,
) -> (StatusCode, Echoed) {
    let response = client.get(url).send().await.expect("response");
    let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
    let body = response.bytes().await.expect("body");
    (status, Echoed::parse(&body))
}

type TowerClient = DefaultHeaders<hyper_util::client::legacy::Client<HttpConnector, Body>>;

/// One sender's client: a tower service used through `&mut` (so it keeps its cached session
/// from one request to the next), or with reqwest-middleware, a reqwest client.
enum Sender {
    Tower(Box<TowerClient>),
    #[cfg(feature = "reqwest-middleware")]
    Reqwest(reqwest_middleware::ClientWithMiddleware),
}

impl Sender {
    /// The `i`th of several senders sharing `layer`: with reqwest-middleware every other one
    /// is a reqwest client.
    fn nth(layer: &DefaultHeadersLayer, i: usize) -> Self {
        #[cfg(feature = "reqwest-middleware")]
        if i % 2 == 1 {
            return Self::Reqwest(reqwest_client(layer.clone()));
        }
        let _ = i;
        Self::Tower(Box::new(layer.layer(hyper_client())))
    }

    /// GET `url`; what the echo server received.
    async fn echo(&mut self, url: &str) -> Echoed {
        match self {
            Self::Tower(svc) => {
                let svc = svc.ready().await.expect("ready");
                let response = svc.call(get_req(url)).await.expect("response");
                let body = response.into_body().collect().await.expect("body");
                Echoed::parse(&body.to_bytes())
            }
            #[cfg(feature = "reqwest-middleware")]
            Self::Reqwest(client) => reqwest_echo(client, url).await.1,
        }
    }
}

#[tokio::test]
async fn an_update_reaches_every_clone_and_every_service_through_both_clients() {
    let server = Server::start().await;
    let layer = DefaultHeadersLayer::builder()
        .header(USER_AGENT, "app/1")
        .header("accept", "application/json")
        .origin(&server.origin())
        .build()
        .expect("valid");
    let clone = layer.clone();
    let before = ServiceBuilder::new()
        .layer(layer.clone())
        .service(hyper_client());
    let before_clone = ServiceBuilder::new()
        .layer(clone.clone())
        .service(hyper_client());
    // Used once before the update, so its cached session is the old one.
    let (_, sent) = common::send(&before, get_req(&server.url("/warm"))).await;
    assert_eq!(sent.all("user-agent"), ["app/1"]);
    #[cfg(feature = "reqwest-middleware")]
    let mw = reqwest_client(clone.clone());
    #[cfg(feature = "reqwest-middleware")]
    assert_eq!(
        reqwest_echo(&mw, &server.url("/warm"))
            .await
            .1
            .all("user-agent"),
        ["app/1"]
    );

    // The handle of a clone acts on all of them.
    let session: SessionHandle = clone.handle();
    session
        .update(|s| {
            s.remove(USER_AGENT)
                .header(USER_AGENT, "app/2")
                .sensitive_header("x-session-id", "s-1")
        })
        .expect("valid");

    let after = ServiceBuilder::new()
        .layer(layer.clone())
        .service(hyper_client());
    for (i, svc) in [&before, &before_clone, &after].into_iter().enumerate() {
        let (_, sent) = common::send(svc, get_req(&server.url(&format!("/{i}")))).await;
        assert_eq!(sent.all("user-agent"), ["app/2"], "service {i}");
        assert_eq!(sent.all("x-session-id"), ["s-1"], "service {i}");
        assert_eq!(sent.all("accept"), ["application/json"], "service {i}");
    }
    #[cfg(feature = "reqwest-middleware")]
    {
        let (_, sent) = reqwest_echo(&mw, &server.url("/mw")).await;
        assert_eq!(sent.all("user-agent"), ["app/2"]);
        assert_eq!(sent.all("x-session-id"), ["s-1"]);
        // A client built after the update, from the first layer.
        let (_, sent) = reqwest_echo(&reqwest_client(layer.clone()), &server.url("/mw2")).await;
        assert_eq!(sent.all("x-session-id"), ["s-1"]);
    }
    // Still scoped: the same server under another origin gets nothing of the session.
    let (_, sent) = common::send(&after, get_req(&server.localhost_url("/other"))).await;
    assert!(!sent.has("x-session-id"));
    assert_eq!(layer.headers()["x-session-id"], "s-1");
}

// ------------------------------------------------------------------ stress

/// The session's names; every value of every one carries the generation (`g<N>`).
const GENERATION_NAMES: [&str; 6] = [
    "x-gen-a", "x-gen-b", "x-gen-c", "x-gen-d", "x-gen-e", "x-gen-f",
];
/// `x-gen-a` has two values, so a complete session is this many values.
const VALUES_PER_SESSION: usize = GENERATION_NAMES.len() + 1;
const UPDATES: u64 = 150;
const SENDERS: usize = 6;

/// Replace every generation header with generation `g`, mixing policies and sensitivity so
/// that the merge takes its general path.
fn generation(b: DefaultHeadersBuilder, g: u64) -> DefaultHeadersBuilder {
    let b = GENERATION_NAMES.iter().fold(b, |b, name| b.remove(*name));
    b.header("x-gen-a", format!("g{g}-1"))
        .header("x-gen-a", format!("g{g}-2"))
        .override_header("x-gen-b", format!("g{g}"))
        .append_header("x-gen-c", format!("g{g}"))
        .sensitive_header("x-gen-d", format!("g{g}"))
        .header("x-gen-e", format!("g{g}"))
        .header("x-gen-f", format!("g{g}"))
}

/// The one generation every generation header of `sent` carries, or what is wrong.
fn one_generation(sent: &Echoed) -> Result<u64, String> {
    let mut generations = HashSet::new();
    let mut values = 0;
    for name in GENERATION_NAMES {
        for value in sent.all(name) {
            values += 1;
            let g = value
                .strip_prefix('g')
                .and_then(|v| v.split('-').next())
                .and_then(|g| g.parse::<u64>().ok())
                .ok_or_else(|| format!("{name}: {value:?} is no generation"))?;
            generations.insert(g);
        }
    }
    match (generations.len(), values) {
        (1, VALUES_PER_SESSION) => Ok(generations.into_iter().next().unwrap_or_default()),
        _ => Err(format!(
            "a mixed session: {generations:?} in {values} values: {:?}",
            sent.0
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_a_request_carries_the_old_session_or_the_new_never_a_mix() {
    tokio::time::timeout(Duration::from_secs(60), stress())
        .await
        .expect("the stress run did not finish within 60 s");
}

async fn stress() {
    let server = Server::start().await;
    let layer = DefaultHeadersLayer::builder()
        .header(USER_AGENT, "stress/1")
        .build()
        .expect("valid");
    let session = layer.handle();
    session.update(|b| generation(b, 0)).expect("valid");

    let done = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for task in 0..SENDERS {
        let done = Arc::clone(&done);
        let url = server.url(&format!("/task/{task}"));
        // Each task its own service, which keeps its cached session across updates, or its
        // own reqwest client.
        let mut sender = Sender::nth(&layer, task);
        senders.push(tokio::spawn(async move {
            let (mut last, mut seen, mut sent) = (0, HashSet::new(), 0u64);
            while !done.load(Ordering::SeqCst) {
                let echoed = sender.echo(&url).await;
                let g = one_generation(&echoed).unwrap_or_else(|e| panic!("task {task}: {e}"));
                assert!(g >= last, "task {task}: generation {g} after {last}");
                last = g;
                seen.insert(g);
                sent += 1;
            }
            (seen.len(), sent)
        }));
    }

    // Each update waits until a few more requests have reached the server, so updates and
    // requests interleave (no sleeps).
    for g in 1..=UPDATES {
        let hits = server.hits();
        while server.hits() < hits + SENDERS {
            tokio::task::yield_now().await;
        }
        session.update(|b| generation(b, g)).expect("valid");
    }
    let final_hits = server.hits();
    while server.hits() < final_hits + 2 * SENDERS {
        tokio::task::yield_now().await;
    }
    done.store(true, Ordering::SeqCst);
    let mut total = 0;
    for sender in senders {
        let (distinct, sent) = sender.await.expect("a sender failed");
        // Every task saw the session change under it, many times.
        assert!(
            distinct > 10,
            "a task saw only {distinct} generations in {sent} requests"
        );
        total += sent;
    }

    // The server's view: every request carried exactly one generation, and the last one
    // reached everybody.
    let seen = server.seen();
    assert_eq!(seen.len() as u64, total);
    let mut generations = HashSet::new();
    for request in &seen {
        let g = one_generation(&request.headers)
            .unwrap_or_else(|e| panic!("{} {}: {e}", request.method, request.path));
        assert_eq!(request.headers.all("user-agent"), ["stress/1"]);
        generations.insert(g);
    }
    assert!(
        generations.contains(&UPDATES),
        "the last update reached the server"
    );
    assert!(
        generations.len() > 20,
        "only {} generations seen",
        generations.len()
    );
}

// ------------------------------------------------------------------ login / logout

/// A service with a login: `POST /login` issues a session id, `GET /me` answers `200` only
/// with a valid `x-session-id`, `POST /logout` ends the session it carries.
#[derive(Clone, Default)]
struct Accounts {
    issued: Arc<std::sync::Mutex<HashSet<String>>>,
    next: Arc<AtomicU64>,
    /// The `x-session-id` of every request, in order (`None`: it had none).
    seen: Arc<std::sync::Mutex<Vec<Option<String>>>>,
}

impl Accounts {
    async fn start() -> (Self, String) {
        let accounts = Self::default();
        let app = Router::new()
            .route("/login", post(login))
            .route("/me", get(me))
            .route("/logout", post(logout))
            .with_state(accounts.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        (accounts, base)
    }

    fn record(&self, headers: &AxumHeaders) -> Option<String> {
        let id = headers
            .get("x-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.seen.lock().expect("lock").push(id.clone());
        id
    }
}

async fn login(State(accounts): State<Accounts>, headers: AxumHeaders) -> Json<String> {
    accounts.record(&headers);
    let id = format!("s-{}", accounts.next.fetch_add(1, Ordering::SeqCst) + 1);
    accounts.issued.lock().expect("lock").insert(id.clone());
    Json(id)
}

async fn me(State(accounts): State<Accounts>, headers: AxumHeaders) -> StatusCode {
    match accounts.record(&headers) {
        Some(id) if accounts.issued.lock().expect("lock").contains(&id) => StatusCode::OK,
        _ => StatusCode::UNAUTHORIZED,
    }
}

async fn logout(State(accounts): State<Accounts>, headers: AxumHeaders) -> StatusCode {
    if let Some(id) = accounts.record(&headers) {
        accounts.issued.lock().expect("lock").remove(&id);
    }
    StatusCode::NO_CONTENT
}

#[tokio::test]
async fn a_session_header_set_after_login_and_removed_on_logout() {
    let (accounts, base) = Accounts::start().await;
    let layer = DefaultHeadersLayer::builder()
        .header(USER_AGENT, "app/1")
        .origin(&base)
        .build()
        .expect("valid");
    let session = layer.handle();
    let client = ServiceBuilder::new()
        .layer(layer.clone())
        .service(hyper_client());
    let status = |req: Request<Body>| {
        let client = client.clone();
        async move { client.oneshot(req).await.expect("response").status() }
    };
    let post = |path: &str| {
        Request::post(format!("{base}{path}"))
            .body(Body::new())
            .expect("request")
    };
    let me = || get_req(&format!("{base}/me"));

    assert_eq!(status(me()).await, StatusCode::UNAUTHORIZED);
    // Log in, and keep the session id for the session.
    let response = client.clone().oneshot(post("/login")).await.expect("login");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let id: String = serde_json::from_slice(&body).expect("a session id");
    session
        .update(|s| s.sensitive_header("x-session-id", id.as_str()))
        .expect("a valid id");
    assert_eq!(status(me()).await, StatusCode::OK);
    #[cfg(feature = "reqwest-middleware")]
    {
        let mw = reqwest_client(layer.clone());
        let response = mw.get(format!("{base}/me")).send().await.expect("response");
        assert_eq!(response.status().as_u16(), 200);
    }
    // Log out: the server ends the session, the client forgets the header.
    assert_eq!(status(post("/logout")).await, StatusCode::NO_CONTENT);
    session.update(|s| s.remove("x-session-id")).expect("valid");
    assert_eq!(status(me()).await, StatusCode::UNAUTHORIZED);
    assert!(layer.headers().get("x-session-id").is_none());

    let seen = accounts.seen.lock().expect("lock").clone();
    let with = Some(id);
    let mut expected = vec![None, None, with.clone()];
    #[cfg(feature = "reqwest-middleware")]
    expected.push(with.clone());
    expected.extend([with, None]);
    assert_eq!(seen, expected);
}

// ------------------------------------------------------------------ computed values

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_computed_request_id_is_unique_per_request() {
    let server = Server::start().await;
    let next = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&next);
    let layer = DefaultHeadersLayer::builder()
        .header(USER_AGENT, "app/1")
        .header_with("x-request-id", move |_| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            HeaderValue::from_str(&format!("req-{n:08}")).ok()
        })
        .append_header_with("x-path", |head| {
            HeaderValue::from_str(head.uri().path()).ok()
        })
        .origin(&server.origin())
        .build()
        .expect("valid");
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(hyper_client());

    const PER_TASK: usize = 25;
    let mut tasks = Vec::new();
    for task in 0..4 {
        let url = server.url(&format!("/t{task}/a%20b"));
        let mut sender = Sender::nth(&layer, task);
        tasks.push(tokio::spawn(async move {
            for _ in 0..PER_TASK {
                let sent = sender.echo(&url).await;
                // What the function saw of the URI, through either client.
                assert_eq!(sent.all("x-path"), [format!("/t{task}/a%20b")]);
            }
        }));
    }
    for task in tasks {
        task.await.expect("a task failed");
    }
    // A request with its own id keeps it, and the function is not asked for one.
    let before = next.load(Ordering::SeqCst);
    let own = Request::get(server.url("/own"))
        .header("x-request-id", "caller-1")
        .body(Body::new())
        .expect("request");
    let (_, sent) = common::send(&svc, own).await;
    assert_eq!(sent.all("x-request-id"), ["caller-1"]);
    assert_eq!(next.load(Ordering::SeqCst), before);
    // Outside the layer's origin: no id, and not computed.
    let (_, sent) = common::send(&svc, get_req(&server.localhost_url("/elsewhere"))).await;
    assert!(!sent.has("x-request-id"));
    assert_eq!(next.load(Ordering::SeqCst), before);

    let seen = server.seen();
    let ids: Vec<&str> = seen
        .iter()
        .filter(|r| r.path != "/own" && r.path != "/elsewhere")
        .map(|r| {
            let ids = r.headers.all("x-request-id");
            assert_eq!(ids.len(), 1, "{:?}", r.headers);
            ids[0]
        })
        .collect();
    assert_eq!(ids.len(), 4 * PER_TASK);
    let distinct: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "a request id was sent twice");
    assert_eq!(next.load(Ordering::SeqCst) as usize, ids.len());
}

#[tokio::test]
async fn a_live_session_moves_to_other_origins_with_clear_origins() {
    let (a, b) = (Server::start().await, Server::start().await);
    let layer = DefaultHeadersLayer::builder()
        .sensitive_header("x-tenant", "acme")
        .origin(&a.origin())
        .build()
        .expect("valid");
    let svc = ServiceBuilder::new()
        .layer(layer.clone())
        .service(hyper_client());
    let (_, sent) = common::send(&svc, get_req(&a.url("/x"))).await;
    assert_eq!(sent.all("x-tenant"), ["acme"]);
    let (_, sent) = common::send(&svc, get_req(&b.url("/x"))).await;
    assert!(!sent.has("x-tenant"));

    layer
        .handle()
        .update(|s| s.clear_origins().origin(&b.origin()))
        .expect("valid");
    let (_, sent) = common::send(&svc, get_req(&a.url("/x"))).await;
    assert!(!sent.has("x-tenant"), "A still got it: {sent:?}");
    let (_, sent) = common::send(&svc, get_req(&b.url("/x"))).await;
    assert_eq!(sent.all("x-tenant"), ["acme"]);
}

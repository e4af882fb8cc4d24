//! `RetryUnauthorized` end to end, against a real local server that revokes tokens while it
//! is under load: through a hyper-util client in a tower stack (feature `retry`) and through
//! reqwest-middleware (feature `reqwest-middleware`).
//!
//! The scenario from issue 12: 50 tasks send requests back to back, and the server revokes the
//! token on its 100th request, with requests carrying it still in flight. With the retry
//! outside the auth layer no caller whose body can be replayed sees a 401, the token source is
//! asked once for the revocation, and each request reaches the server at most twice, the
//! second time with the fresh token and the same body.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

/// One request as the server received it.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    authorization: Vec<String>,
    body: String,
}

#[derive(Default)]
struct Api {
    hits: usize,
    /// On hit `n`, revoke this `Authorization` value (before answering that hit).
    revoke_at: Vec<(usize, String)>,
    revoked: HashSet<String>,
    received: Vec<Received>,
}

/// A server on `127.0.0.1:0` answering `401` to revoked `Authorization` values and `200`
/// otherwise, recording every request (`x-id`, `Authorization`, body).
#[derive(Clone, Default)]
struct RevokingServer {
    addr: Option<SocketAddr>,
    api: Arc<Mutex<Api>>,
}

impl RevokingServer {
    async fn start() -> Self {
        let mut server = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        server.addr = Some(listener.local_addr().expect("local addr"));
        let api = Arc::clone(&server.api);
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: String| {
            let api = Arc::clone(&api);
            async move { answer(&api, &headers, body) }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr.expect("started"))
    }

    fn revoke(&self, authorization: &str) {
        let mut api = self.api.lock().expect("lock");
        api.revoked.insert(authorization.to_owned());
    }

    fn revoke_at(&self, hit: usize, authorization: &str) {
        let mut api = self.api.lock().expect("lock");
        api.revoke_at.push((hit, authorization.to_owned()));
    }

    fn received(&self) -> Vec<Received> {
        self.api.lock().expect("lock").received.clone()
    }

    /// Every request's sends, by `x-id`, in order.
    fn sends(&self) -> HashMap<String, Vec<Received>> {
        let mut sends: HashMap<String, Vec<Received>> = HashMap::new();
        for r in self.received() {
            sends.entry(r.id.clone()).or_default().push(r);
        }
        sends
    }
}

fn answer(api: &Mutex<Api>, headers: &HeaderMap, body: String) -> axum::response::Response {
    let mut api = api.lock().expect("lock");
    api.hits += 1;
    let hit = api.hits;
    let due: Vec<String> = api
        .revoke_at
        .iter()
        .filter(|(at, _)| *at == hit)
        .map(|(_, token)| token.clone())
        .collect();
    api.revoked.extend(due);
    let authorization: Vec<String> = headers
        .get_all("authorization")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let rejected = authorization.iter().any(|a| api.revoked.contains(a));
    let id = headers
        .get("x-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    api.received.push(Received {
        id,
        authorization,
        body,
    });
    if rejected {
        StatusCode::UNAUTHORIZED.into_response()
    } else {
        StatusCode::OK.into_response()
    }
}

/// What the revocation scenario must end with, whichever client sent it: `requests` requests,
/// each sent once (with one token, either) or twice, the second time with the fresh token and
/// the same body after the first carried the revoked one; at least one request was retried.
fn check_revocation(server: &RevokingServer, requests: usize) {
    let sends = server.sends();
    assert_eq!(sends.len(), requests);
    let mut retried = 0;
    for (id, sent) in &sends {
        match sent.as_slice() {
            [once] => assert!(
                once.authorization == ["Bearer t1"] || once.authorization == ["Bearer t2"],
                "{id}: {:?}",
                once.authorization
            ),
            [first, again] => {
                retried += 1;
                assert_eq!(first.authorization, ["Bearer t1"], "{id}");
                assert_eq!(
                    again.authorization,
                    ["Bearer t2"],
                    "{id}: the fresh token, alone"
                );
                assert_eq!(again.body, first.body, "{id}: the same body");
                assert_eq!(again.body, format!("body of {id}"));
            }
            more => panic!("{id} sent {} times", more.len()),
        }
    }
    assert!(retried >= 1, "the revocation hit requests in flight");
}

const TASKS: usize = 50;
const PER_TASK: usize = 10;

#[cfg(feature = "retry")]
mod tower_stack {
    use std::sync::atomic::Ordering;

    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use tower::{Service, ServiceBuilder, ServiceExt};
    use tower_client_headers::{
        BearerAuthLayer, BearerToken, BoxError, DefaultHeadersLayer, HeaderOverrides,
        RetryUnauthorized, TokenRejected,
    };

    use super::*;

    fn post(url: &str, id: &str) -> Request<Full<Bytes>> {
        Request::post(url)
            .header("x-id", id)
            .body(Full::new(Bytes::from(format!("body of {id}"))))
            .expect("request")
    }

    /// The documented stack: the retry outside the session and auth layers, a hyper-util
    /// client inside.
    fn stack(
        auth: BearerAuthLayer,
    ) -> impl Service<
        Request<Full<Bytes>>,
        Response = Response<hyper::body::Incoming>,
        Error = BoxError,
        Future: Send,
    > + Clone
           + Send
           + 'static {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        ServiceBuilder::new()
            .retry(RetryUnauthorized::new())
            .layer(
                DefaultHeadersLayer::builder()
                    .header("user-agent", "retry-test/1.0")
                    .build()
                    .expect("valid"),
            )
            .layer(auth)
            .service(client)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revocation_under_load_reaches_no_caller_through_hyper_util() {
        let server = RevokingServer::start().await;
        server.revoke_at(100, "Bearer t1");
        let (fetches, source) = common::counting_source();
        let svc = stack(BearerAuthLayer::from_source(source));
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..TASKS {
            let svc = svc.clone();
            let url = server.url("/items");
            tasks.spawn(async move {
                let mut statuses = Vec::new();
                for i in 0..PER_TASK {
                    let response = svc
                        .clone()
                        .oneshot(post(&url, &format!("{task}-{i}")))
                        .await
                        .expect("response");
                    statuses.push(response.status());
                }
                statuses
            });
        }
        while let Some(statuses) = tasks.join_next().await {
            let statuses = statuses.expect("task");
            assert!(
                statuses.iter().all(|s| *s == StatusCode::OK),
                "{statuses:?}"
            );
        }
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            2,
            "one fetch for the revocation"
        );
        check_revocation(&server, TASKS * PER_TASK);
    }

    #[tokio::test]
    async fn a_fixed_token_401_is_returned_after_one_send_no_loop() {
        let server = RevokingServer::start().await;
        server.revoke("Bearer fixed");
        let svc = stack(BearerAuthLayer::new("fixed").expect("valid"));
        let response = svc
            .oneshot(post(&server.url("/x"), "1"))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.extensions().get::<TokenRejected>().is_none());
        assert_eq!(server.received().len(), 1);
    }

    #[tokio::test]
    async fn per_request_tokens_are_never_retried() {
        let server = RevokingServer::start().await;
        server.revoke("Bearer mine");
        let (fetches, source) = common::counting_source();
        let svc = stack(BearerAuthLayer::from_source(source));
        let mut req = post(&server.url("/x"), "1");
        req.extensions_mut()
            .insert(HeaderOverrides::new().bearer_token(BearerToken::new("mine").expect("valid")));
        let response = svc.oneshot(req).await.expect("response");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(server.received().len(), 1);
        assert_eq!(fetches.load(Ordering::SeqCst), 0);
    }
}

#[cfg(feature = "reqwest-middleware")]
mod reqwest_chain {
    use std::convert::Infallible;
    use std::sync::atomic::Ordering;

    use bytes::Bytes;
    use http_body_util::StreamBody;
    use hyper::body::Frame;
    use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
    use tower_client_headers::{
        BearerAuthLayer, BearerToken, HeaderOverrides, RetryUnauthorized, TokenRejected,
    };

    use super::*;

    /// The documented chain: the retry added before the auth middleware.
    fn chain(auth: BearerAuthLayer) -> ClientWithMiddleware {
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        ClientBuilder::new(client)
            .with(RetryUnauthorized::new())
            .with(auth)
            .build()
    }

    fn post(
        client: &ClientWithMiddleware,
        url: &str,
        id: &str,
    ) -> reqwest_middleware::RequestBuilder {
        client
            .post(url)
            .header("x-id", id)
            .body(format!("body of {id}"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revocation_under_load_reaches_no_caller_through_reqwest_middleware() {
        let server = RevokingServer::start().await;
        server.revoke_at(100, "Bearer t1");
        let (fetches, source) = common::counting_source();
        let client = chain(BearerAuthLayer::from_source(source));
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..TASKS {
            let client = client.clone();
            let url = server.url("/items");
            tasks.spawn(async move {
                let mut statuses = Vec::new();
                for i in 0..PER_TASK {
                    let response = post(&client, &url, &format!("{task}-{i}"))
                        .send()
                        .await
                        .expect("response");
                    statuses.push(response.status());
                }
                statuses
            });
        }
        while let Some(statuses) = tasks.join_next().await {
            let statuses = statuses.expect("task");
            assert!(
                statuses.iter().all(|s| *s == StatusCode::OK),
                "{statuses:?}"
            );
        }
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            2,
            "one fetch for the revocation"
        );
        check_revocation(&server, TASKS * PER_TASK);
    }

    #[tokio::test]
    async fn a_streaming_body_is_sent_once_and_gets_the_rejection_unchanged() {
        let server = RevokingServer::start().await;
        let (fetches, source) = common::counting_source();
        let client = chain(BearerAuthLayer::from_source(source));
        let warm = post(&client, &server.url("/x"), "0")
            .send()
            .await
            .expect("200");
        assert_eq!(warm.status(), StatusCode::OK);
        server.revoke("Bearer t1");
        let chunks = futures::stream::iter(
            ["streamed ", "body"].map(|c| Ok::<_, Infallible>(Frame::data(Bytes::from(c)))),
        );
        let response = client
            .post(server.url("/upload"))
            .header("x-id", "stream")
            .body(reqwest::Body::wrap(StreamBody::new(chunks)))
            .send()
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.extensions().get::<TokenRejected>().is_some());
        let sends = server.sends();
        assert_eq!(sends["stream"].len(), 1);
        assert_eq!(sends["stream"][0].body, "streamed body");
        // The token was dropped all the same: the next request, with a body that can be
        // cloned, gets the fresh one at once.
        let next = post(&client, &server.url("/x"), "1")
            .send()
            .await
            .expect("200");
        assert_eq!(next.status(), StatusCode::OK);
        assert_eq!(server.sends()["1"].len(), 1);
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn fixed_and_per_request_tokens_are_never_retried() {
        let server = RevokingServer::start().await;
        server.revoke("Bearer fixed");
        server.revoke("Bearer mine");
        let fixed = chain(BearerAuthLayer::new("fixed").expect("valid"));
        let response = post(&fixed, &server.url("/x"), "fixed")
            .send()
            .await
            .expect("401");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

        let (fetches, source) = common::counting_source();
        let client = chain(BearerAuthLayer::from_source(source));
        let response = post(&client, &server.url("/x"), "mine")
            .with_extension(
                HeaderOverrides::new().bearer_token(BearerToken::new("mine").expect("valid")),
            )
            .send()
            .await
            .expect("401");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let sends = server.sends();
        assert_eq!(sends["fixed"].len(), 1);
        assert_eq!(sends["mine"].len(), 1);
        assert_eq!(fetches.load(Ordering::SeqCst), 0);
    }
}

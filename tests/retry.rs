//! `RetryUnauthorized` end to end, against a real local server that revokes tokens while it
//! is under load: through a hyper-util client in a tower stack (feature `retry`) and through
//! reqwest-middleware (feature `reqwest-middleware`).
//!
//! The scenario from issue 12: 50 tasks send requests back to back, and the server revokes the
//! token on its 100th request, with requests carrying it still in flight. With the retry
//! outside the auth layer no caller whose body can be replayed sees a 401, the token source is
//! asked once for the revocation, and each request reaches the server at most twice, the
//! second time with the fresh token and the same body.
#![cfg(any(feature = "retry", feature = "reqwest-middleware"))]

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use common::{Seen, Server};

/// Every request's sends, by `x-id`, in order.
fn sends(server: &Server) -> HashMap<String, Vec<Seen>> {
    let mut sends: HashMap<String, Vec<Seen>> = HashMap::new();
    for seen in server.seen() {
        let id = seen.headers.all("x-id").concat();
        sends.entry(id).or_default().push(seen);
    }
    sends
}

/// What the revocation scenario must end with, whichever client sent it: `requests` requests,
/// each sent once (with one token, either) or twice, the second time with the fresh token and
/// the same body after the first carried the revoked one; at least one request was retried.
fn check_revocation(server: &Server, requests: usize) {
    let sends = sends(server);
    assert_eq!(sends.len(), requests);
    let mut retried = 0;
    for (id, sent) in &sends {
        match sent.as_slice() {
            [once] => {
                let authorization = once.headers.all("authorization");
                assert!(
                    authorization == ["Bearer t1"] || authorization == ["Bearer t2"],
                    "{id}: {authorization:?}"
                );
            }
            [first, again] => {
                retried += 1;
                assert_eq!(first.headers.all("authorization"), ["Bearer t1"], "{id}");
                assert_eq!(
                    again.headers.all("authorization"),
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

/// After request `1` followed a 307 from `/redirect` to `/echo` with t1 revoked: the
/// rejected hop was sent again with t2 and the same body, and the chain completed.
fn check_hop_retried(server: &Server, fetches: &AtomicUsize) {
    let seen = server.seen();
    let hops: Vec<(&str, Vec<&str>)> = seen
        .iter()
        .map(|s| (s.path.as_str(), s.headers.all("authorization")))
        .collect();
    assert_eq!(
        hops,
        [
            ("/redirect", vec!["Bearer t1"]),
            ("/echo", vec!["Bearer t1"]),
            ("/echo", vec!["Bearer t2"]),
        ]
    );
    assert!(seen[1..].iter().all(|s| s.body == "body of 1"));
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

const TASKS: usize = 50;
const PER_TASK: usize = 10;

/// The load: `TASKS` tasks, each sending `PER_TASK` requests back to back with `send(id)`
/// (ids `task-i`), while the server revokes t1 on its 100th request. Every caller must get
/// `200`; then [`check_revocation`].
async fn revocation_under_load<F, Fut>(server: &Server, fetches: &AtomicUsize, send: F)
where
    F: Fn(String) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = StatusCode> + Send,
{
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let send = send.clone();
        tasks.spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..PER_TASK {
                statuses.push(send(format!("{task}-{i}")).await);
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
    check_revocation(server, TASKS * PER_TASK);
}

#[cfg(feature = "retry")]
mod tower_stack {
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
        let server = Server::start().await;
        server.revoke_at(100, "Bearer t1");
        let (fetches, source) = common::counting_source();
        let svc = stack(BearerAuthLayer::from_source(source));
        let url = server.url("/items");
        revocation_under_load(&server, &fetches, move |id| {
            let (svc, url) = (svc.clone(), url.clone());
            async move {
                let response = svc.oneshot(post(&url, &id)).await.expect("response");
                response.status()
            }
        })
        .await;
    }

    #[tokio::test]
    async fn a_fixed_token_401_is_returned_after_one_send_no_loop() {
        let server = Server::start().await;
        server.revoke("Bearer fixed");
        let svc = stack(BearerAuthLayer::new("fixed").expect("valid"));
        let response = svc
            .oneshot(post(&server.url("/x"), "1"))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.extensions().get::<TokenRejected>().is_none());
        assert_eq!(server.hits(), 1);
    }

    /// The README's full stack: tower-http's redirect layer outermost, then the retry: a
    /// rejection on a hop is retried on that hop, and the chain goes on.
    #[tokio::test]
    async fn with_the_redirect_layer_outermost_a_rejected_hop_is_retried() {
        use tower_http::follow_redirect::policy::{
            clone_body_fn, FilterCredentials, Limited, PolicyExt,
        };
        use tower_http::follow_redirect::FollowRedirectLayer;

        let server = Server::start().await;
        server.revoke("Bearer t1");
        let (fetches, source) = common::counting_source();
        let policy = Limited::default()
            .and::<_, (), ()>(FilterCredentials::new().allow_extension::<HeaderOverrides>())
            .and::<_, Full<Bytes>, ()>(clone_body_fn(|b: &Full<Bytes>| Some(b.clone())));
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let svc = ServiceBuilder::new()
            .layer(FollowRedirectLayer::with_policy(policy))
            .retry(RetryUnauthorized::new())
            .layer(BearerAuthLayer::from_source(source))
            .service(client);
        // 307 keeps the method and the body.
        let url = server.redirect(&server.url("/echo"), 307);
        let response = svc.oneshot(post(&url, "1")).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        check_hop_retried(&server, &fetches);
    }

    #[tokio::test]
    async fn per_request_tokens_are_never_retried() {
        let server = Server::start().await;
        server.revoke("Bearer mine");
        let (fetches, source) = common::counting_source();
        let svc = stack(BearerAuthLayer::from_source(source));
        let mut req = post(&server.url("/x"), "1");
        req.extensions_mut()
            .insert(HeaderOverrides::new().bearer_token(BearerToken::new("mine").expect("valid")));
        let response = svc.oneshot(req).await.expect("response");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(server.hits(), 1);
        assert_eq!(fetches.load(Ordering::SeqCst), 0);
    }
}

#[cfg(feature = "reqwest-middleware")]
mod reqwest_chain {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body_util::StreamBody;
    use hyper::body::Frame;
    use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
    use tower_client_headers::{
        BearerAuthLayer, BearerToken, FollowRedirects, HeaderOverrides, RetryUnauthorized,
        TokenRejected,
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
        let server = Server::start().await;
        server.revoke_at(100, "Bearer t1");
        let (fetches, source) = common::counting_source();
        let client = chain(BearerAuthLayer::from_source(source));
        let url = server.url("/items");
        revocation_under_load(&server, &fetches, move |id| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let response = post(&client, &url, &id).send().await.expect("response");
                response.status()
            }
        })
        .await;
    }

    #[tokio::test]
    async fn a_streaming_body_is_sent_once_and_gets_the_rejection_unchanged() {
        let server = Server::start().await;
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
        let streamed = &sends(&server)["stream"];
        assert_eq!(streamed.len(), 1);
        assert_eq!(streamed[0].body, "streamed body");
        // The token was dropped all the same: the next request, with a body that can be
        // cloned, gets the fresh one at once.
        let next = post(&client, &server.url("/x"), "1")
            .send()
            .await
            .expect("200");
        assert_eq!(next.status(), StatusCode::OK);
        assert_eq!(sends(&server)["1"].len(), 1);
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn two_retry_middlewares_stacked_still_send_a_request_at_most_twice() {
        let server = Server::start().await;
        for t in ["Bearer t1", "Bearer t2", "Bearer t3", "Bearer t4"] {
            server.revoke(t);
        }
        let (fetches, source) = common::counting_source();
        let client = ClientBuilder::new(
            reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
        )
        .with(RetryUnauthorized::new())
        .with(RetryUnauthorized::new())
        .with(BearerAuthLayer::from_source(source))
        .build();
        let response = post(&client, &server.url("/x"), "twice")
            .send()
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(sends(&server)["twice"].len(), 2, "sent four times before");
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    /// The README's chain: `FollowRedirects` first, then the retry, then the auth middleware.
    #[tokio::test]
    async fn with_follow_redirects_first_a_rejected_hop_is_retried() {
        let server = Server::start().await;
        server.revoke("Bearer t1");
        let (fetches, source) = common::counting_source();
        let reqwest = common::reqwest_without_redirects();
        let client = ClientBuilder::new(reqwest)
            .with(FollowRedirects::new())
            .with(RetryUnauthorized::new())
            .with(BearerAuthLayer::from_source(source))
            .build();
        let url = server.redirect(&server.url("/echo"), 307);
        let response = post(&client, &url, "1").send().await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        check_hop_retried(&server, &fetches);
    }

    #[tokio::test]
    async fn fixed_and_per_request_tokens_are_never_retried() {
        let server = Server::start().await;
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
        let sends = sends(&server);
        assert_eq!(sends["fixed"].len(), 1);
        assert_eq!(sends["mine"].len(), 1);
        assert_eq!(fetches.load(Ordering::SeqCst), 0);
    }
}

//! Rejected tokens: which responses are marked `TokenRejected` (and drop the cached token),
//! `invalidate_when`, and `RetryUnauthorized` as a tower retry policy, on tokio's paused clock.

use crate::TokenRejected;

use super::*;

fn marked<R>(response: &Response<R>) -> bool {
    response.extensions().get::<TokenRejected>().is_some()
}

/// An upstream answering every request with `status` and `headers`.
fn answering(
    status: StatusCode,
    headers: &[(&'static str, &'static str)],
) -> impl Service<
    Request<()>,
    Response = Response<Vec<String>>,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<Response<Vec<String>>, Infallible>> + Send,
> + Clone
       + Send
       + 'static {
    let headers = headers.to_vec();
    service_fn(move |_: Request<()>| {
        let mut response = Response::new(Vec::new());
        *response.status_mut() = status;
        for (name, value) in &headers {
            response
                .headers_mut()
                .insert(*name, HeaderValue::from_static(value));
        }
        std::future::ready(Ok::<_, Infallible>(response))
    })
}

// The marks on a burst of rejections, and on a late rejection of a token already replaced,
// are checked by the parent module's tests of those scenarios.

#[tokio::test(start_paused = true)]
async fn a_rejection_is_marked_on_both_paths_and_a_success_is_not() {
    let source = Source::new(Duration::ZERO, None);
    let up = Upstream::default();
    let svc = source_layer(&source, SEC).layer(up.service());
    // The path that waited for a fetch (no token cached yet).
    up.reject("Bearer t1");
    let response = send(&svc, get(API)).await.expect("401");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(marked(&response));
    // The cached path: t2 is fetched by the first request, then served from the cache.
    let response = send(&svc, get(API)).await.expect("200");
    assert!(!marked(&response), "a 200 is not a rejection");
    up.reject("Bearer t2");
    let response = send(&svc, get(API)).await.expect("401");
    assert_eq!(response.body(), &["Bearer t2"], "returned as it came");
    assert!(marked(&response));
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn per_request_fixed_and_own_credentials_are_never_marked() {
    let up = Upstream::default();
    up.reject("Bearer fixed");
    up.reject("Bearer mine");
    up.reject("Basic own");
    let fixed = BearerAuthLayer::new("fixed")
        .expect("valid")
        .layer(up.service());
    let response = send(&fixed, get(API)).await.expect("401");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(!marked(&response));

    let source = Source::new(Duration::ZERO, None);
    let svc = source_layer(&source, SEC).layer(up.service());
    let own = Request::get(API)
        .header(AUTHORIZATION, "Basic own")
        .body(())
        .expect("request");
    for req in [
        with(API, HeaderOverrides::new().bearer_token(token("mine"))),
        own,
    ] {
        let response = send(&svc, req).await.expect("401");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(!marked(&response));
    }
    // A 401 to a request with no token at all (suppressed) is not ours either.
    let svc = source_layer(&source, SEC).layer(answering(StatusCode::UNAUTHORIZED, &[]));
    let response = send(&svc, with(API, HeaderOverrides::new().without_auth()))
        .await
        .expect("401");
    assert!(!marked(&response));
    assert_eq!(source.fetches(), 0);
}

#[tokio::test(start_paused = true)]
async fn invalidate_when_replaces_the_default_test() {
    let source = Source::new(Duration::ZERO, None);
    let layer = |test: fn(StatusCode, &HeaderMap) -> bool| {
        BearerAuthLayer::builder()
            .source(source.clone())
            .invalidate_when(test)
            .build()
            .expect("valid")
    };
    let forbidden = |status: StatusCode, _: &HeaderMap| status == StatusCode::FORBIDDEN;

    // A 401 no longer rejects the token: unmarked, kept.
    let svc = layer(forbidden).layer(answering(StatusCode::UNAUTHORIZED, &[]));
    for _ in 0..3 {
        assert!(!marked(&send(&svc, get(API)).await.expect("401")));
    }
    assert_eq!(source.fetches(), 1);
    // A 403 does: marked, dropped, the next request fetches.
    let svc = layer(forbidden).layer(answering(StatusCode::FORBIDDEN, &[]));
    assert!(marked(&send(&svc, get(API)).await.expect("403")));
    assert_eq!(source.fetches(), 2);
    assert!(marked(&send(&svc, get(API)).await.expect("403")));
    assert_eq!(source.fetches(), 3);
}

#[tokio::test(start_paused = true)]
async fn grpc_unauthenticated_is_a_rejection_with_invalidate_when() {
    fn unauthenticated(_: StatusCode, headers: &HeaderMap) -> bool {
        headers.get("grpc-status").is_some_and(|code| code == "16")
    }
    let source = Source::new(Duration::ZERO, None);
    let layer = BearerAuthLayer::builder()
        .source(source.clone())
        .invalidate_when(unauthenticated)
        .build()
        .expect("valid");
    // A trailers-only UNAUTHENTICATED: HTTP 200, grpc-status 16 in the headers.
    let svc = layer.clone().layer(answering(
        StatusCode::OK,
        &[("content-type", "application/grpc"), ("grpc-status", "16")],
    ));
    let response = send(&svc, get(API)).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(marked(&response));
    // Any other gRPC status (PERMISSION_DENIED here) is not.
    let svc = layer.layer(answering(StatusCode::OK, &[("grpc-status", "7")]));
    assert!(!marked(&send(&svc, get(API)).await.expect("response")));
    assert_eq!(source.fetches(), 2);
}

#[test]
fn token_rejected_is_a_plain_copyable_extension() {
    fn extension<T: Clone + Copy + Send + Sync + std::fmt::Debug + 'static>() {}
    extension::<TokenRejected>();
    let mut extensions = http::Extensions::new();
    extensions.insert(TokenRejected);
    assert_eq!(extensions.get::<TokenRejected>(), Some(&TokenRejected));
    // The builder's Debug names the test, not the closure.
    let builder = BearerAuthLayer::builder().invalidate_when(|_, _| true);
    assert!(format!("{builder:?}").contains("invalidate_when: custom"));
}

#[cfg(feature = "tower-http")]
#[tokio::test]
async fn a_rejection_from_another_origin_is_not_marked() {
    use tower_http::follow_redirect::RequestUri;
    let source = Source::new(Duration::ZERO, None);
    let svc = source_layer(&source, SEC).layer(service_fn(|_: Request<()>| async {
        let mut response = Response::new(Vec::<String>::new());
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        response
            .extensions_mut()
            .insert(RequestUri(http::Uri::from_static(
                "https://elsewhere.example/x",
            )));
        Ok::<_, Infallible>(response)
    }));
    // The same token would go out again: retrying would change nothing.
    assert!(!marked(&send(&svc, get(API)).await.expect("401")));
    assert_eq!(source.fetches(), 1);
}

// ---------------------------------------------------------------- RetryUnauthorized (tower)

#[cfg(feature = "retry")]
mod retry {
    use std::collections::HashMap;

    use tower::ServiceBuilder;

    use super::*;
    use crate::RetryUnauthorized;

    /// A request to `API` named `x-id: id`, so that the upstream's record tells how often each
    /// request was sent.
    fn numbered(id: usize) -> Request<()> {
        Request::get(API)
            .header("x-id", id)
            .body(())
            .expect("request")
    }

    /// How many times the upstream saw each `x-id`.
    fn sends_per_request(up: &Upstream) -> HashMap<String, usize> {
        let mut sends = HashMap::new();
        for headers in up.seen.lock().expect("lock").iter() {
            if let Some(id) = headers.get("x-id").and_then(|v| v.to_str().ok()) {
                *sends.entry(id.to_owned()).or_insert(0) += 1;
            }
        }
        sends
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejected_request_is_sent_again_once_with_a_fresh_token_and_none_of_the_stale_one() {
        let source = Source::new(Duration::ZERO, None);
        let up = Upstream::default();
        let svc = ServiceBuilder::new()
            .retry(RetryUnauthorized::new())
            .layer(source_layer(&source, SEC))
            .service(up.service());
        assert_eq!(auth_of(&svc, numbered(0)).await, ["Bearer t1"]);
        up.reject("Bearer t1");
        let response = send(&svc, numbered(1)).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        // The retry carried exactly one Authorization, the fresh token: the copy was taken
        // before the auth layer touched the request.
        assert_eq!(response.body(), &["Bearer t2"]);
        assert!(!marked(&response));
        assert_eq!(sends_per_request(&up)["1"], 2);
        assert_eq!(source.fetches(), 2);
    }

    /// The scenario: the server revokes the token while 50 tasks send requests
    /// back to back. Zero 401s reach the callers, one fetch per revocation, and each request
    /// is sent at most twice.
    #[tokio::test(start_paused = true)]
    async fn revocations_under_load_reach_no_caller_and_cost_one_fetch_each() {
        let source = Source::new(SEC / 2, None);
        let up = Upstream::slow(SEC);
        let svc = ServiceBuilder::new()
            .retry(RetryUnauthorized::new())
            .layer(source_layer(&source, SEC))
            .service(up.service());
        let start = Instant::now();
        // t1 is revoked at 2.5 s, t2 at 7.5 s, while every task has a request in flight.
        let revoker = {
            let up = up.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(start + 5 * SEC / 2).await;
                up.reject("Bearer t1");
                tokio::time::sleep_until(start + 15 * SEC / 2).await;
                up.reject("Bearer t2");
            })
        };
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..50 {
            let svc = svc.clone();
            tasks.spawn(async move {
                let mut statuses = Vec::new();
                for i in 0..10 {
                    let response = send(&svc, numbered(task * 100 + i)).await;
                    statuses.push(response.expect("response").status());
                }
                statuses
            });
        }
        while let Some(statuses) = tasks.join_next().await {
            assert!(statuses.expect("task").iter().all(|s| *s == StatusCode::OK));
        }
        revoker.await.expect("revoker");
        assert_eq!(
            source.fetches(),
            3,
            "one fetch at start, one per revocation"
        );
        let sends = sends_per_request(&up);
        assert_eq!(sends.len(), 500);
        assert!(
            sends.values().all(|&n| n <= 2),
            "each request sent at most twice"
        );
        let retried = sends.values().filter(|&&n| n == 2).count();
        assert_eq!(
            retried, 100,
            "every request in flight at each revocation, once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_rejection_is_returned_marked_and_not_retried_again() {
        let source = Source::new(Duration::ZERO, None);
        let up = Upstream::default();
        for t in ["Bearer t1", "Bearer t2", "Bearer t3"] {
            up.reject(t);
        }
        let svc = ServiceBuilder::new()
            .retry(RetryUnauthorized::new())
            .layer(source_layer(&source, SEC))
            .service(up.service());
        let response = send(&svc, numbered(1)).await.expect("response");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(marked(&response));
        assert_eq!(response.body(), &["Bearer t2"]);
        assert_eq!(sends_per_request(&up)["1"], 2);
        assert_eq!(source.fetches(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn two_retry_layers_stacked_still_send_a_request_at_most_twice() {
        let source = Source::new(Duration::ZERO, None);
        let up = Upstream::default();
        for t in ["Bearer t1", "Bearer t2", "Bearer t3", "Bearer t4"] {
            up.reject(t);
        }
        let svc = ServiceBuilder::new()
            .retry(RetryUnauthorized::new())
            .retry(RetryUnauthorized::new())
            .layer(source_layer(&source, SEC))
            .service(up.service());
        let response = send(&svc, numbered(1)).await.expect("response");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(sends_per_request(&up)["1"], 2, "sent four times before");
        assert_eq!(source.fetches(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn fixed_per_request_and_own_tokens_are_never_retried_and_never_loop() {
        let up = Upstream::default();
        up.reject("Bearer fixed");
        up.reject("Bearer mine");
        up.reject("Basic own");
        // A fixed token (no source): the 401 comes back after one send.
        let fixed = ServiceBuilder::new()
            .retry(RetryUnauthorized::new())
            .layer(BearerAuthLayer::new("fixed").expect("valid"))
            .service(up.service());
        let response = send(&fixed, numbered(1)).await.expect("401");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

        let source = Source::new(Duration::ZERO, None);
        let svc = ServiceBuilder::new()
            .retry(RetryUnauthorized::new())
            .layer(source_layer(&source, SEC))
            .service(up.service());
        let mine = Request::get(API)
            .header("x-id", 2)
            .extension(HeaderOverrides::new().bearer_token(token("mine")))
            .body(())
            .expect("request");
        let own = Request::get(API)
            .header("x-id", 3)
            .header(AUTHORIZATION, "Basic own")
            .body(())
            .expect("request");
        for req in [mine, own] {
            let response = send(&svc, req).await.expect("401");
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
        let sends = sends_per_request(&up);
        assert_eq!(sends.len(), 3);
        assert!(sends.values().all(|&n| n == 1), "{sends:?}");
        assert_eq!(source.fetches(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn inside_the_auth_layer_it_sees_no_mark_so_it_never_replays_a_stale_token() {
        let source = Source::new(Duration::ZERO, None);
        let up = Upstream::default();
        up.reject("Bearer t1");
        let svc = ServiceBuilder::new()
            .layer(source_layer(&source, SEC))
            .retry(RetryUnauthorized::new())
            .service(up.service());
        let response = send(&svc, numbered(1)).await.expect("401");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(marked(&response), "marked on the way out, above the policy");
        assert_eq!(sends_per_request(&up)["1"], 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_fetch_for_the_retry_is_the_callers_error_and_nothing_is_resent() {
        let source = Source::new(Duration::ZERO, None);
        source.fail_fetch(2);
        let up = Upstream::default();
        up.reject("Bearer t1");
        let svc = ServiceBuilder::new()
            .retry(RetryUnauthorized::new())
            .layer(source_layer(&source, SEC))
            .service(up.service());
        let err = send(&svc, numbered(1)).await.expect_err("fetch 2 fails");
        assert_eq!(kind(&err), Some(ErrorKind::TokenFetch));
        assert_eq!(sends_per_request(&up)["1"], 1);
    }

    #[tokio::test(start_paused = true)]
    async fn grpc_unauthenticated_is_retried_with_invalidate_when() {
        let source = Source::new(Duration::ZERO, None);
        let auth = BearerAuthLayer::builder()
            .source(source.clone())
            .invalidate_when(|_, headers| headers.get("grpc-status").is_some_and(|c| c == "16"))
            .build()
            .expect("valid");
        let sent = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&sent);
        let server = service_fn(move |req: Request<()>| {
            let auth = req.headers()[AUTHORIZATION]
                .to_str()
                .unwrap_or("")
                .to_owned();
            let mut response = Response::new(Vec::<String>::new());
            if auth == "Bearer t1" {
                response
                    .headers_mut()
                    .insert("grpc-status", HeaderValue::from_static("16"));
            }
            record.lock().expect("lock").push(auth);
            std::future::ready(Ok::<_, Infallible>(response))
        });
        let svc = ServiceBuilder::new()
            .retry(RetryUnauthorized::new())
            .layer(auth)
            .service(server);
        let response = send(&svc, get(API)).await.expect("response");
        assert!(response.headers().get("grpc-status").is_none());
        assert_eq!(*sent.lock().expect("lock"), ["Bearer t1", "Bearer t2"]);
    }

    #[test]
    fn the_policy_is_clone_send_sync_debug_and_needs_a_clone_body_only() {
        fn clone_send_sync<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
        clone_send_sync::<RetryUnauthorized>();
        fn policy<P: tower::retry::Policy<Request<String>, Response<NotClone>, NotClone>>() {}
        struct NotClone;
        policy::<RetryUnauthorized>();
        assert_eq!(
            format!("{:?}", RetryUnauthorized::new()),
            "RetryUnauthorized { .. }"
        );
    }
}

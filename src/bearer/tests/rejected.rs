//! Rejected tokens: which responses are marked `TokenRejected` (and drop the cached token),
//! and `invalidate_when`, on tokio's paused clock.

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

#[tokio::test(start_paused = true)]
async fn every_rejection_of_a_source_token_is_marked_whether_or_not_it_dropped_it() {
    let source = Source::new(SEC, None);
    let up = Upstream::slow(SEC);
    let svc = source_layer(&source, 10 * SEC).layer(up.service());
    // The first request waited for the fetch: it carries the source's token all the same.
    let first = send(&svc, get(API)).await.expect("response");
    assert_eq!(first.status(), StatusCode::OK);
    assert!(!marked(&first), "a 200 is not a rejection");
    up.reject("Bearer t1");
    // 50 requests carry t1, all in flight at once: the first 401 drops t1, the other 49 find
    // it gone. Every one of them is marked, so a retry of any would get the next token.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let svc = svc.clone();
        tasks.spawn(async move { send(&svc, get(API)).await.expect("response") });
    }
    while let Some(response) = tasks.join_next().await {
        let response = response.expect("task");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(marked(&response));
        assert_eq!(response.body(), &["Bearer t1"], "returned as it came");
    }
    assert_eq!(source.fetches(), 1, "a rejection does not fetch by itself");
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t2"]);
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_late_rejection_of_a_replaced_token_is_marked_and_keeps_the_new_one() {
    let source = Source::new(Duration::ZERO, None);
    let up = Upstream::default();
    let svc = source_layer(&source, 10 * SEC).layer(up.service());
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t1"]);
    up.reject("Bearer t1");
    let mut slow = svc.clone();
    std::future::poll_fn(|cx| slow.poll_ready(cx))
        .await
        .expect("ready");
    let held = slow.call(get(API)); // carries t1
    assert!(marked(&send(&svc, get(API)).await.expect("401")));
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t2"]);
    let held = held.await.expect("401");
    assert_eq!(held.status(), StatusCode::UNAUTHORIZED);
    assert!(
        marked(&held),
        "an earlier rejection dropped t1: still a rejection"
    );
    assert_eq!(auth_of(&svc, get(API)).await, ["Bearer t2"]);
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

//! Fixtures shared by the benches: the one request every variant sends, the session headers,
//! the inner service, and the competing middleware, built the same way for every variant so
//! that the only difference between two variants is the middleware.
//!
//! Each bench target includes this file with `mod common;` and uses a subset of it.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::hint::black_box;
use std::sync::LazyLock;
use std::task::{Context, Poll};

use futures::FutureExt;
use http::header::{ACCEPT, AUTHORIZATION};
use http::{HeaderName, HeaderValue, Request, Response, Uri};
use tower::Layer;
use tower::{service_fn, Service};
use tower_client_headers::{BearerAuthLayer, BearerToken, BoxError, DefaultHeadersLayer, Token};
use tower_http::auth::AddAuthorizationLayer;
use tower_http::set_header::request::SetMultipleRequestHeadersLayer;
use tower_http::set_header::HeaderMetadata;

/// The URI every request goes to.
pub(crate) const API: &str = "https://api.example.com/v1/items";

/// A JWT-shaped token (the length of a real one matters little: it is a shared `Bytes`).
pub(crate) const TOKEN: &str =
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCIsImF1ZCI6ImFwaSJ9.c2lnbmF0dXJl";

/// Session header counts the `DefaultHeaders` benches compare.
pub(crate) const SIZES: [usize; 3] = [1, 8, 32];

/// The request's own headers (statics, so building a request does not re-validate them).
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static REQUEST_ID: HeaderValue = HeaderValue::from_static("5f0c6e1a-7d2b-4c1e-9a3f-2b8d4e6f8a10");
static APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
static API_URI: LazyLock<Uri> = LazyLock::new(|| Uri::from_static(API));

/// The request every variant sends, built fresh (its own header map, as every real request
/// has): an absolute URI and two headers of its own, neither of them a session header, so
/// every session header is added.
#[inline]
pub(crate) fn request() -> Request<()> {
    request_to(API_URI.clone(), ())
}

/// The same request to another URI with another body (the end-to-end bench).
#[inline]
pub(crate) fn request_to<B>(uri: Uri, body: B) -> Request<B> {
    let mut request = Request::new(body);
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(X_REQUEST_ID.clone(), REQUEST_ID.clone());
    headers.insert(ACCEPT, APPLICATION_JSON.clone());
    request
}

/// The inner service: answers at once, after making sure the request really exists.
pub(crate) fn inner() -> impl Service<
    Request<()>,
    Response = Response<()>,
    Error = Infallible,
    Future = Ready<Result<Response<()>, Infallible>>,
> + Clone
       + Send
       + 'static {
    service_fn(|req: Request<()>| {
        black_box(req);
        ready(Ok(Response::new(())))
    })
}

/// Send `req` through `svc`, which is always ready and whose future is ready at once.
#[inline]
pub(crate) fn call<S, R>(svc: &mut S, req: Request<R>) -> S::Response
where
    S: Service<Request<R>>,
    S::Error: std::fmt::Debug,
{
    svc.call(req)
        .now_or_never()
        .expect("the inner service answers at once")
        .expect("the bench request succeeds")
}

/// The session of the request shape "8 with accept": 8 realistic names, `accept` among them,
/// which the request carries too (as most requests carry a header or two of their own, and
/// sometimes one the session also sets): with the if-absent policy the request's `accept`
/// wins and 7 names are added. The other 7 are the first 7 of [`session_headers`].
pub(crate) fn session_headers_with_accept() -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = session_headers(7);
    headers.insert(
        1,
        (
            ACCEPT,
            HeaderValue::from_static("application/json, text/plain;q=0.5"),
        ),
    );
    headers
}

/// The session headers a bench size names: `"N"` is [`session_headers`]`(N)` (none of them on
/// the request), `"8_with_accept"` is [`session_headers_with_accept`].
pub(crate) fn session_of(size: &str) -> Vec<(HeaderName, HeaderValue)> {
    match size {
        "8_with_accept" => session_headers_with_accept(),
        n => session_headers(n.parse().expect("a header count or 8_with_accept")),
    }
}

/// The sizes (session header sets) the `DefaultHeaders` benches compare, by name.
pub(crate) const SHAPES: [&str; 4] = ["1", "8", "8_with_accept", "32"];

/// `n` (at most 32) realistic session headers. Names are static; values are static except
/// the API key, which is parsed at run time (as one read from the environment would be) and
/// marked sensitive.
pub(crate) fn session_headers(n: usize) -> Vec<(HeaderName, HeaderValue)> {
    const NAMES: [&str; 32] = [
        "user-agent",
        "accept-language",
        "x-api-key",
        "x-client-name",
        "x-client-version",
        "x-client-platform",
        "x-client-os",
        "x-client-build",
        "x-client-channel",
        "x-client-locale",
        "x-client-timezone",
        "x-client-region",
        "x-client-tenant",
        "x-client-session",
        "x-client-device",
        "x-client-os-version",
        "x-client-runtime",
        "x-client-sdk",
        "x-client-sdk-version",
        "x-client-features",
        "x-client-experiment",
        "x-client-app-id",
        "x-client-install-id",
        "x-client-sampled",
        "x-client-network",
        "x-client-screen",
        "x-client-theme",
        "x-client-a11y",
        "x-client-release",
        "x-client-git-sha",
        "x-client-environment",
        "x-client-priority",
    ];
    assert!(n <= NAMES.len(), "at most {} session headers", NAMES.len());
    NAMES[..n]
        .iter()
        .enumerate()
        .map(|(i, &name)| {
            let value = match name {
                "user-agent" => HeaderValue::from_static("bench-app/1.4.2 (linux; x86_64)"),
                "accept-language" => HeaderValue::from_static("en-GB,en;q=0.8"),
                "x-api-key" => {
                    let key = format!("k-{}", "3b9f2c7e41d85a60");
                    let mut value = HeaderValue::from_str(&key).expect("valid api key");
                    value.set_sensitive(true);
                    value
                }
                _ => HeaderValue::from_static(VALUES[i % VALUES.len()]),
            };
            (HeaderName::from_static(name), value)
        })
        .collect()
}

const VALUES: [&str; 4] = ["bench-app", "1.4.2", "linux", "2024.06.1-rc3"];

/// Our layer, every header with the default if-absent policy.
pub(crate) fn default_headers_layer(headers: &[(HeaderName, HeaderValue)]) -> DefaultHeadersLayer {
    headers
        .iter()
        .fold(DefaultHeadersLayer::builder(), |b, (name, value)| {
            b.header(name.clone(), value.clone())
        })
        .build()
        .expect("valid session headers")
}

/// Change one value of `layer`'s session (the first header's, `user-agent` for the realistic
/// sets) through its handle, as a live session does after it was put in use: services made
/// before the update see it on their next request.
pub(crate) fn update_one_value(layer: &DefaultHeadersLayer) {
    let first = layer
        .headers()
        .keys()
        .next()
        .cloned()
        .expect("a session header");
    layer
        .handle()
        .update(|session| {
            session.remove(first.clone()).header(
                first,
                HeaderValue::from_static("bench-app/1.4.3 (linux; x86_64)"),
            )
        })
        .expect("a valid update");
}

/// tower-http's `SetMultipleRequestHeadersLayer::if_not_present` with the same headers.
pub(crate) fn tower_http_multiple_layer(
    headers: &[(HeaderName, HeaderValue)],
) -> SetMultipleRequestHeadersLayer<Request<()>> {
    SetMultipleRequestHeadersLayer::if_not_present(
        headers
            .iter()
            .map(|(name, value)| HeaderMetadata::from((name.clone(), value.clone())))
            .collect(),
    )
}

/// tower-http's `SetRequestHeader::if_not_present`, one per header, stacked around `inner`
/// (the first header outermost). The type grows with the count, hence a macro.
#[allow(unused_macros)]
macro_rules! tower_http_stacked {
    ($inner:expr, $headers:expr; $($i:literal)*) => {{
        let headers: &[(::http::HeaderName, ::http::HeaderValue)] = $headers;
        let svc = $inner;
        $(
            let svc = ::tower_http::set_header::SetRequestHeader::if_not_present(
                svc,
                headers[headers.len() - 1 - $i].0.clone(),
                headers[headers.len() - 1 - $i].1.clone(),
            );
        )*
        svc
    }};
}
#[allow(unused_imports)]
pub(crate) use tower_http_stacked;

/// The floor a user could write by hand: `if !contains_key { insert }` per session header,
/// as a tower service around the same inner service.
#[derive(Clone)]
pub(crate) struct HandLoop<S> {
    inner: S,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl<S> HandLoop<S> {
    pub(crate) fn new(inner: S, headers: &[(HeaderName, HeaderValue)]) -> Self {
        Self {
            inner,
            headers: headers.to_vec(),
        }
    }
}

impl<S, B> Service<Request<B>> for HandLoop<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let headers = req.headers_mut();
        for (name, value) in &self.headers {
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
        self.inner.call(req)
    }
}

/// The floor for a bearer layer that keeps a request's own `Authorization`, as a user could
/// write it: `if !contains_key { insert }` of one fixed, sensitive value.
#[derive(Clone)]
pub(crate) struct HandAuth<S> {
    inner: S,
    value: HeaderValue,
}

impl<S> HandAuth<S> {
    pub(crate) fn new(inner: S) -> Self {
        let mut value = HeaderValue::try_from(format!("Bearer {TOKEN}")).expect("valid value");
        value.set_sensitive(true);
        Self { inner, value }
    }
}

impl<S, B> Service<Request<B>> for HandAuth<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let headers = req.headers_mut();
        if !headers.contains_key(AUTHORIZATION) {
            headers.insert(AUTHORIZATION, self.value.clone());
        }
        self.inner.call(req)
    }
}

/// Our fixed-token layer.
pub(crate) fn bearer_fixed_layer() -> BearerAuthLayer {
    BearerAuthLayer::new(TOKEN).expect("valid token")
}

/// tower-http's fixed bearer token, marked sensitive as ours is.
pub(crate) fn tower_http_auth_layer() -> AddAuthorizationLayer {
    AddAuthorizationLayer::bearer(TOKEN).as_sensitive(true)
}

/// Our refreshing layer over a source whose token never expires. The first request through it
/// fetches; every later one uses the cached token.
pub(crate) fn bearer_source_layer() -> BearerAuthLayer {
    BearerAuthLayer::from_source(|| async {
        Ok::<_, BoxError>(Token::new(BearerToken::new(TOKEN)?))
    })
}

/// The same over a source whose token expires in an hour (so the cached path reads the
/// clock to check it), the usual case for OAuth tokens.
pub(crate) fn bearer_expiring_source_layer() -> BearerAuthLayer {
    BearerAuthLayer::from_source(|| async {
        let token = BearerToken::new(TOKEN)?;
        Ok::<_, BoxError>(Token::new(token).expires_in(std::time::Duration::from_secs(3600)))
    })
}

/// A retry policy that keeps a copy of every request and never retries: what any retry
/// policy costs a request that succeeds (the floor for `RetryUnauthorized`).
#[cfg(feature = "retry")]
#[derive(Clone)]
pub(crate) struct CloneOnly;

#[cfg(feature = "retry")]
impl<B: Clone, R, E> tower::retry::Policy<Request<B>, Response<R>, E> for CloneOnly {
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _: &mut Request<B>,
        _: &mut Result<Response<R>, E>,
    ) -> Option<Self::Future> {
        None
    }

    fn clone_request(&mut self, req: &Request<B>) -> Option<Request<B>> {
        Some(req.clone())
    }
}

/// Wrap `inner` in `layer` (spelled out so call sites read as "layer around inner").
pub(crate) fn wrap<L: Layer<S>, S>(layer: &L, inner: S) -> L::Service {
    layer.layer(inner)
}

/// Run `iters` requests split over `tasks` tasks and return the wall time, scaled to exactly
/// `iters` requests. `task(per_task)` builds one task's work (cloning what it needs); all of
/// it is built before the clock starts.
pub(crate) fn run_split<F>(
    rt: &tokio::runtime::Runtime,
    tasks: u64,
    iters: u64,
    mut task: impl FnMut(u64) -> F,
) -> std::time::Duration
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let per_task = iters.div_ceil(tasks).max(1);
    let work: Vec<F> = (0..tasks).map(|_| task(per_task)).collect();
    rt.block_on(async move {
        let start = std::time::Instant::now();
        let handles: Vec<_> = work.into_iter().map(tokio::spawn).collect();
        for handle in handles {
            handle.await.expect("task completes");
        }
        start
            .elapsed()
            .mul_f64(iters as f64 / (per_task * tasks) as f64)
    })
}

/// Every variant the plain-loop benches (`callgrind`, `rounds`) know, by name. `SHAPE` is one
/// of [`SHAPES`].
pub(crate) const VARIANTS: &[&str] = &[
    "bare",
    "hand_loop/SHAPE",
    "default_headers/SHAPE",
    // The same layer, its session updated once (one value changed) after the service was built.
    "default_headers/SHAPE/updated",
    "tower_http_multiple/SHAPE",
    "tower_http_stacked/SHAPE",
    "tower_http_auth",
    "hand_auth",
    "fixed",
    "cached",
    "cached_expiring",
    // With the `retry` feature: `cached` behind tower's `Retry`.
    "retry_clone_only",
    "retry_unauthorized",
];

/// What a plain-loop bench does with the service of a variant.
pub(crate) trait Runner {
    fn run<S>(&mut self, svc: S)
    where
        S: Service<Request<()>> + Clone + Send + 'static,
        S::Future: Send,
        S::Response: Send,
        S::Error: std::fmt::Debug + Send;
}

/// Build the service of variant `name` (see [`VARIANTS`]) and hand it to `runner`. A cached
/// source's token is fetched first, on `rt`. Panics on an unknown name.
pub(crate) fn run_variant(name: &str, rt: &tokio::runtime::Runtime, runner: &mut impl Runner) {
    let (kind, shape) = name.split_once('/').unwrap_or((name, "0"));
    let (shape, updated) = match shape.split_once('/') {
        Some((shape, "updated")) if kind == "default_headers" => (shape, true),
        Some(_) => panic!("unknown variant {name:?}; one of {VARIANTS:?}, SHAPE one of {SHAPES:?}"),
        None => (shape, false),
    };
    let headers = session_of(shape);
    match kind {
        "default_headers" if updated => {
            let layer = default_headers_layer(&headers);
            let svc = wrap(&layer, inner());
            update_one_value(&layer);
            runner.run(svc)
        }
        "bare" => runner.run(inner()),
        "hand_loop" => runner.run(HandLoop::new(inner(), &headers)),
        "default_headers" => runner.run(wrap(&default_headers_layer(&headers), inner())),
        "tower_http_multiple" => runner.run(wrap(&tower_http_multiple_layer(&headers), inner())),
        "tower_http_stacked" => match headers.len() {
            1 => runner.run(tower_http_stacked!(inner(), &headers; 0)),
            8 => runner.run(tower_http_stacked!(inner(), &headers; 0 1 2 3 4 5 6 7)),
            32 => runner.run(tower_http_stacked!(inner(), &headers;
                0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15
                16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31)),
            n => panic!("tower_http_stacked is built for 1, 8 or 32 headers, not {n}"),
        },
        "tower_http_auth" => runner.run(wrap(&tower_http_auth_layer(), inner())),
        "hand_auth" => runner.run(HandAuth::new(inner())),
        "fixed" => runner.run(wrap(&bearer_fixed_layer(), inner())),
        "cached" => runner.run(warm(rt, &bearer_source_layer())),
        "cached_expiring" => runner.run(warm(rt, &bearer_expiring_source_layer())),
        #[cfg(feature = "retry")]
        "retry_clone_only" => runner.run(tower::retry::Retry::new(
            CloneOnly,
            warm(rt, &bearer_source_layer()),
        )),
        #[cfg(feature = "retry")]
        "retry_unauthorized" => runner.run(tower::retry::Retry::new(
            tower_client_headers::RetryUnauthorized::new(),
            warm(rt, &bearer_source_layer()),
        )),
        _ => panic!("unknown variant {name:?}; one of {VARIANTS:?}, SHAPE one of {SHAPES:?}"),
    }
}

/// A service over `layer`, its token fetched by one request first (on `rt`).
pub(crate) fn warm(
    rt: &tokio::runtime::Runtime,
    layer: &BearerAuthLayer,
) -> impl Service<
    Request<()>,
    Response = Response<()>,
    Error = BoxError,
    Future = impl std::future::Future<Output = Result<Response<()>, BoxError>> + Send,
> + Clone
       + Send
       + 'static {
    let mut svc = wrap(layer, inner());
    rt.block_on(svc.call(request()))
        .expect("the first fetch succeeds");
    svc
}

//! No secret in any output: every public type that can hold a token or a sensitive value is
//! built with one, and its `Debug` (`{:?}` and `{:#?}`), `Display` and error messages (sources
//! included) are checked not to contain it. Also: the sensitive values that reach the inner
//! service are marked sensitive, so `HeaderMap`'s own `Debug` hides them too.

use std::convert::Infallible;
use std::fmt::Debug;
use std::time::Duration;

use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use tower::{service_fn, Layer, ServiceBuilder, ServiceExt};
use tower_client_headers::{
    BearerAuth, BearerAuthLayer, BearerToken, BoxError, DefaultHeaders, DefaultHeadersLayer, Error,
    ErrorKind, HeaderOverrides, Token,
};

/// Distinct secrets, so a failure says which one leaked. None is a word any message could use.
const TOKEN: &str = "tok3n-S3CRET-a1";
const TOKEN2: &str = "tok3n-S3CRET-b2";
const API_KEY: &str = "k3y-S3CRET-c3";
const COOKIE_VALUE: &str = "sid=S3CRET-d4";
const BASIC: &str = "Basic S3CRET-e5";
const PASSWORD: &str = "pw-S3CRET-f6";
/// Every secret contains this, so one check catches them all (and parts of them).
const MARK: &str = "S3CRET";

/// Every rendering of `value` that a log line could contain.
fn renderings(value: &dyn Debug) -> [String; 2] {
    [format!("{value:?}"), format!("{value:#?}")]
}

#[track_caller]
fn assert_hidden(what: &str, text: &str) {
    assert!(!text.contains(MARK), "{what} shows a secret: {text}");
}

#[track_caller]
fn assert_debug_hidden(what: &str, value: &dyn Debug) {
    for text in renderings(value) {
        assert_hidden(what, &text);
    }
}

/// `Display` of the error and of every source, and `Debug` in both forms.
#[track_caller]
fn assert_error_hidden(what: &str, err: &(dyn std::error::Error + 'static)) {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        assert_hidden(what, &e.to_string());
        cur = e.source();
    }
    assert_debug_hidden(what, &err);
}

/// A transport with a `Debug` of its own, for the services' `Debug`.
#[derive(Clone, Debug)]
struct Transport {
    name: &'static str,
}

fn echo() -> impl tower::Service<
    Request<()>,
    Response = Response<HeaderMap>,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<Response<HeaderMap>, Infallible>> + Send + 'static,
> + Clone
       + Send
       + 'static {
    service_fn(|req: Request<()>| async move {
        Ok::<_, Infallible>(Response::new(req.headers().clone()))
    })
}

fn source_issuing(token: &'static str) -> impl tower_client_headers::TokenSource {
    move || async move {
        Ok::<_, BoxError>(Token::new(BearerToken::new(token)?).expires_in(Duration::from_secs(600)))
    }
}

#[test]
fn tokens_and_overrides() {
    let token = BearerToken::new(TOKEN).expect("valid");
    assert_debug_hidden("BearerToken", &token);
    let t = Token::new(token.clone());
    assert_debug_hidden("Token", &t);
    assert_debug_hidden("Token with expiry", &t.expires_in(Duration::from_secs(60)));
    assert_debug_hidden("Token from", &Token::from(token.clone()));

    let o = HeaderOverrides::new()
        .set(AUTHORIZATION, HeaderValue::from_static(BASIC))
        .set(
            HeaderName::from_static("x-api-key"),
            HeaderValue::from_static(API_KEY),
        )
        .set(COOKIE, HeaderValue::from_static(COOKIE_VALUE))
        .remove(HeaderName::from_static("user-agent"));
    assert_debug_hidden("HeaderOverrides with set", &o);
    assert_debug_hidden("HeaderOverrides with bearer_token", &o.bearer_token(token));
    // A request carrying them: the extension is part of the request's `Debug`.
    let req = Request::get("https://api.example.com/")
        .extension(HeaderOverrides::new().bearer_token(BearerToken::new(TOKEN2).expect("valid")))
        .body(())
        .expect("request");
    assert_debug_hidden("request extensions", req.extensions());
}

#[test]
fn session_layers_builders_and_services() {
    let builder = DefaultHeadersLayer::builder()
        .header("x-plain", "not secret")
        .sensitive_header("x-api-key", API_KEY)
        .header(AUTHORIZATION, BASIC)
        .override_header(PROXY_AUTHORIZATION, BASIC)
        .append_header(COOKIE, COOKIE_VALUE)
        .origin("https://api.example.com");
    assert_debug_hidden("DefaultHeadersBuilder", &builder);
    let layer = builder.build().expect("valid");
    assert_debug_hidden("DefaultHeadersLayer", &layer);
    // The session map marks them sensitive, so even `HeaderMap`'s `Debug` hides them.
    assert_debug_hidden("DefaultHeadersLayer::headers", &layer.headers());

    let svc: DefaultHeaders<Transport> = layer.layer(Transport { name: "transport" });
    assert_eq!(svc.get_ref().name, "transport");
    assert_debug_hidden("DefaultHeaders", &svc);
    assert!(format!("{svc:?}").contains("transport"), "{svc:?}");

    // A live session: its handle, the builder an update gets, the updated layer and service,
    // and an update's errors.
    let handle = layer.handle();
    assert_debug_hidden("SessionHandle", &handle);
    handle
        .update(|b| {
            let b = b
                .sensitive_header("x-session", API_KEY)
                .header_with("x-computed", |_| Some(HeaderValue::from_static(API_KEY)));
            assert_debug_hidden("DefaultHeadersBuilder in update", &b);
            b
        })
        .expect("valid");
    assert_debug_hidden("SessionHandle after update", &handle);
    assert_debug_hidden("DefaultHeadersLayer after update", &layer);
    assert_debug_hidden("DefaultHeaders after update", &svc);
    let err = handle
        .update(|b| b.sensitive_header("x-session", format!("{API_KEY}\n")))
        .expect_err("invalid value");
    assert_error_hidden("SessionHandle::update error", &err);
    let err = handle
        .update(|b| b.remove(format!("Bearer {TOKEN}")))
        .expect_err("a token where the name goes");
    assert_error_hidden("DefaultHeadersBuilder::remove error", &err);

    let mut map = HeaderMap::new();
    map.insert(AUTHORIZATION, HeaderValue::from_static(BASIC));
    map.insert(PROXY_AUTHORIZATION, HeaderValue::from_static(BASIC));
    map.insert(COOKIE, HeaderValue::from_static(COOKIE_VALUE));
    let from_map = DefaultHeadersLayer::new(map);
    assert_debug_hidden("DefaultHeadersLayer::new", &from_map);
    assert_debug_hidden("DefaultHeadersLayer::new headers", &from_map.headers());
    assert_debug_hidden(
        "DefaultHeaders::new",
        &DefaultHeaders::new(Transport { name: "t" }, from_map),
    );
}

#[tokio::test]
async fn sensitive_values_arrive_marked_sensitive() {
    let session = DefaultHeadersLayer::builder()
        .sensitive_header("x-api-key", API_KEY)
        .header(COOKIE, COOKIE_VALUE)
        .override_header(PROXY_AUTHORIZATION, BASIC)
        .build()
        .expect("valid");
    let auth = BearerAuthLayer::new(TOKEN).expect("valid");
    let client = ServiceBuilder::new()
        .layer(session)
        .layer(auth)
        .service(echo());

    let sent = client
        .clone()
        .oneshot(
            Request::get("https://api.example.com/")
                .body(())
                .expect("request"),
        )
        .await
        .expect("sent")
        .into_body();
    assert_eq!(sent.len(), 4, "{:?}", sent.keys().collect::<Vec<_>>());
    assert_debug_hidden("headers sent with the session and the layer token", &sent);

    // Per-request credentials too.
    let o = HeaderOverrides::new()
        .set(COOKIE, HeaderValue::from_static(COOKIE_VALUE))
        .set(PROXY_AUTHORIZATION, HeaderValue::from_static(BASIC))
        .bearer_token(BearerToken::new(TOKEN2).expect("valid"));
    let sent = client
        .oneshot(
            Request::get("https://api.example.com/")
                .extension(o)
                .body(())
                .expect("request"),
        )
        .await
        .expect("sent")
        .into_body();
    assert_eq!(sent[AUTHORIZATION], format!("Bearer {TOKEN2}").as_str());
    assert_debug_hidden("headers sent with per-request credentials", &sent);
}

#[tokio::test]
async fn bearer_layers_builders_and_services() {
    let fixed = BearerAuthLayer::new(TOKEN).expect("valid");
    assert_debug_hidden("BearerAuthLayer fixed", &fixed);

    let builder = BearerAuthLayer::builder()
        .token(TOKEN)
        .origin("https://api.example.com")
        .allow_http(false);
    assert_debug_hidden("BearerAuthBuilder with token", &builder);
    let scoped = builder.build().expect("valid");
    assert_debug_hidden("BearerAuthLayer scoped", &scoped);

    let builder = BearerAuthLayer::builder()
        .source(source_issuing(TOKEN2))
        .refresh_before(Duration::from_secs(5));
    assert_debug_hidden("BearerAuthBuilder with source", &builder);
    let from_source = builder.build().expect("valid");
    let plain_from_source = BearerAuthLayer::from_source(source_issuing(TOKEN2));
    assert_debug_hidden("BearerAuthLayer::from_source", &plain_from_source);

    let svc: BearerAuth<Transport> = fixed.layer(Transport { name: "transport" });
    assert_debug_hidden("BearerAuth fixed", &svc);
    assert!(format!("{svc:?}").contains("transport"), "{svc:?}");

    // With a token in the cache, and the response future while waiting for the first fetch.
    let svc = from_source.layer(echo());
    let future = svc.clone().oneshot(
        Request::get("https://api.example.com/")
            .body(())
            .expect("request"),
    );
    let sent = future.await.expect("sent").into_body();
    assert_eq!(sent[AUTHORIZATION], format!("Bearer {TOKEN2}").as_str());
    assert_debug_hidden("BearerAuthLayer with a cached token", &from_source);
    assert_debug_hidden(
        "BearerAuth with a cached token",
        &BearerAuth::new(Transport { name: "t" }, from_source.clone()),
    );
    let mut svc = from_source.layer(echo());
    let future = tower::Service::call(
        svc.ready().await.expect("ready"),
        Request::get("https://api.example.com/")
            .body(())
            .expect("request"),
    );
    assert_debug_hidden("ResponseFuture", &future);
    let _ = future.await;
}

#[test]
fn builder_errors_about_tokens_values_names_and_origins() {
    let cases: Vec<(&str, Error)> = vec![
        (
            "BearerToken::new with a space",
            BearerToken::new(format!("{TOKEN} x")).unwrap_err(),
        ),
        (
            "BearerToken::new with CRLF",
            BearerToken::new(format!("{TOKEN}\r\n")).unwrap_err(),
        ),
        (
            "BearerToken::new with `=` inside",
            BearerToken::new(format!("{TOKEN}=x")).unwrap_err(),
        ),
        (
            "BearerToken::new non-ASCII",
            BearerToken::new(format!("{TOKEN}é")).unwrap_err(),
        ),
        (
            "BearerToken::new as a header",
            BearerToken::new(format!("Bearer {TOKEN}")).unwrap_err(),
        ),
        (
            "BearerAuthLayer::new",
            BearerAuthLayer::new(format!("{TOKEN} ")).unwrap_err(),
        ),
        (
            "BearerAuthBuilder::token",
            BearerAuthLayer::builder()
                .token(format!("\"{TOKEN}\""))
                .build()
                .unwrap_err(),
        ),
        (
            "BearerAuthBuilder with token and source",
            BearerAuthLayer::builder()
                .token(TOKEN)
                .source(source_issuing(TOKEN2))
                .build()
                .unwrap_err(),
        ),
        (
            "sensitive_header with a bad value",
            DefaultHeadersLayer::builder()
                .sensitive_header("x-api-key", format!("{API_KEY}\n"))
                .build()
                .unwrap_err(),
        ),
        (
            "authorization with a bad value",
            DefaultHeadersLayer::builder()
                .header(AUTHORIZATION, format!("{BASIC}\r\nX-Injected: 1"))
                .build()
                .unwrap_err(),
        ),
        (
            "cookie with a bad value",
            DefaultHeadersLayer::builder()
                .append_header(COOKIE, format!("{COOKIE_VALUE}\0"))
                .build()
                .unwrap_err(),
        ),
        (
            "name and value swapped",
            DefaultHeadersLayer::builder()
                .header(format!("Bearer {TOKEN}"), "authorization")
                .build()
                .unwrap_err(),
        ),
        (
            "a secret as a header name",
            DefaultHeadersLayer::builder()
                .override_header(format!("{API_KEY}:"), "x")
                .build()
                .unwrap_err(),
        ),
    ];
    let origins = [
        format!("https://user:{PASSWORD}@api.example.com"),
        format!("https://{TOKEN}@api.example.com"),
        format!("https://api.example.com/?access_token={TOKEN}"),
        format!("https://api.example.com/#{TOKEN}"),
        format!("https://api.example.com/{TOKEN}"),
        format!("Bearer {TOKEN}"),
        TOKEN.to_owned(),
        format!("https://user:{PASSWORD}@api.example.com/?k={TOKEN}#{TOKEN2}"),
    ];
    let mut all = cases;
    for origin in &origins {
        all.push((
            "DefaultHeadersBuilder::origin",
            DefaultHeadersLayer::builder()
                .origin(origin)
                .build()
                .unwrap_err(),
        ));
        all.push((
            "BearerAuthBuilder::origin",
            BearerAuthLayer::builder()
                .token(TOKEN)
                .origin(origin)
                .build()
                .unwrap_err(),
        ));
    }
    for (what, err) in &all {
        assert_error_hidden(what, err);
    }
    // The kinds, so that each case fails for the reason it is meant to.
    let kinds: Vec<ErrorKind> = all.iter().map(|(_, e)| e.kind()).collect();
    assert_eq!(&kinds[..5], &[ErrorKind::InvalidToken; 5]);
    assert!(
        kinds[13..].iter().all(|k| *k == ErrorKind::InvalidOrigin),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn plaintext_refusals() {
    let fixed = BearerAuthLayer::new(TOKEN).expect("valid");
    let svc = fixed.layer(echo());
    for uri in [
        "http://api.example.com/".to_owned(),
        format!("http://user:{PASSWORD}@api.example.com/items?access_token={TOKEN2}"),
        format!("http://{TOKEN2}@evil.example.net:8080/"),
    ] {
        let err = svc
            .clone()
            .oneshot(Request::get(uri.as_str()).body(()).expect("request"))
            .await
            .expect_err(&uri);
        let ours = err.downcast_ref::<Error>().expect("our error");
        assert_eq!(ours.kind(), ErrorKind::PlaintextRefused);
        assert_error_hidden(&uri, err.as_ref());
    }
    // A per-request token over plain http is refused too, without showing it.
    let err = svc
        .oneshot(
            Request::get("http://api.example.com/")
                .extension(
                    HeaderOverrides::new().bearer_token(BearerToken::new(TOKEN2).expect("valid")),
                )
                .body(())
                .expect("request"),
        )
        .await
        .expect_err("refused");
    assert_error_hidden("per-request token refusal", err.as_ref());
}

#[tokio::test(start_paused = true)]
async fn token_fetch_errors() {
    // A source that issued a secret token once and then fails: neither the fetch error nor the
    // layer shows the old token.
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let layer = {
        let calls = std::sync::Arc::clone(&calls);
        BearerAuthLayer::from_source(move || {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if n == 0 {
                    Ok::<_, BoxError>(
                        Token::new(BearerToken::new(TOKEN)?).expires_in(Duration::from_secs(1)),
                    )
                } else {
                    Err("token endpoint said 503".into())
                }
            }
        })
    };
    let svc = layer.layer(echo());
    let get = || {
        Request::get("https://api.example.com/")
            .body(())
            .expect("request")
    };
    svc.clone().oneshot(get()).await.expect("first token");
    tokio::time::advance(Duration::from_secs(2)).await;
    let err = svc.clone().oneshot(get()).await.expect_err("fetch fails");
    assert_eq!(
        err.downcast_ref::<Error>().map(Error::kind),
        Some(ErrorKind::TokenFetch)
    );
    assert_error_hidden("failed fetch", err.as_ref());
    assert_debug_hidden("layer after a failed fetch", &layer);

    // A source that hands over an invalid token (with the secret in it) fails with our error
    // as the source's cause; no part of the chain shows the token.
    let svc = BearerAuthLayer::from_source(|| async {
        Ok::<_, BoxError>(Token::new(BearerToken::new(format!("{TOKEN} {TOKEN2}"))?))
    })
    .layer(echo());
    let err = svc.oneshot(get()).await.expect_err("invalid token");
    assert_eq!(
        err.downcast_ref::<Error>().map(Error::kind),
        Some(ErrorKind::TokenFetch)
    );
    let cause = err.source().expect("the source's error is the cause");
    assert_eq!(
        cause.downcast_ref::<Error>().map(Error::kind),
        Some(ErrorKind::InvalidToken)
    );
    assert_error_hidden("fetch of an invalid token", err.as_ref());

    // A hung source times out.
    let svc = BearerAuthLayer::builder()
        .source(std::future::pending::<Result<Token, BoxError>>)
        .fetch_timeout(Duration::from_secs(1))
        .build()
        .expect("valid")
        .layer(echo());
    let err = svc.oneshot(get()).await.expect_err("times out");
    assert_eq!(
        err.downcast_ref::<Error>().map(Error::kind),
        Some(ErrorKind::TokenFetchTimeout)
    );
    assert_error_hidden("fetch timeout", err.as_ref());
}

#[tokio::test]
async fn token_file_errors() {
    use tower_client_headers::sources::TokenFile;
    use tower_client_headers::TokenSource;

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("token");
    let source = TokenFile::new(&path);
    assert_debug_hidden("TokenFile", &source);
    for content in [
        format!("{TOKEN} {PASSWORD}\n"),
        format!("\"{TOKEN}\""),
        format!("{TOKEN}\r\nx-injected: {API_KEY}"),
    ] {
        std::fs::write(&path, &content).expect("write");
        let err = source.fetch().await.expect_err("not a token");
        assert_error_hidden("token file error", err.as_ref());
    }
}

/// The OAuth2 sources: the client secret, a refresh token and an extra parameter's value
/// appear in no `Debug`, and in no error, even when the token endpoint echoes them.
#[cfg(feature = "oauth2")]
#[tokio::test]
async fn oauth2_sources_and_errors() {
    use tower_client_headers::sources::{ClientCredentials, RefreshTokenGrant, TokenEndpoint};
    use tower_client_headers::TokenSource;

    let echoing = service_fn(|req: Request<bytes::Bytes>| async move {
        // Echo the whole request body (secrets included) in the error description.
        let body = String::from_utf8_lossy(req.body()).into_owned();
        let response = format!(
            r#"{{"error":"invalid_client","error_description":"bad {}","error_uri":"https://idp/{}"}}"#,
            body.replace('"', ""),
            body.replace('"', "")
        );
        let mut response = Response::new(response);
        *response.status_mut() = http::StatusCode::UNAUTHORIZED;
        Ok::<_, Infallible>(response)
    });
    let builder = TokenEndpoint::builder("https://idp.example.com/token")
        .client_id("app")
        .client_secret(PASSWORD)
        .client_auth(tower_client_headers::sources::ClientAuth::ClientSecretPost)
        .http_service(echoing);
    assert_debug_hidden("TokenEndpointBuilder", &builder);
    let endpoint = builder.build().expect("valid");
    assert_debug_hidden("TokenEndpoint", &endpoint);

    let cc = ClientCredentials::new(endpoint.clone()).param("client_assertion", API_KEY);
    assert_debug_hidden("ClientCredentials", &cc);
    let err = cc.fetch().await.expect_err("invalid_client");
    // The server echoed the form (secret in it, percent-encoded or not): cut out where it
    // appears as sent; the extra parameter's value is the caller's to keep out of the server.
    let text = err.to_string();
    assert!(!text.contains(PASSWORD), "{text}");

    let grant = RefreshTokenGrant::new(endpoint, TOKEN);
    assert_debug_hidden("RefreshTokenGrant", &grant);
    let err = grant.fetch().await.expect_err("invalid_client");
    let text = err.to_string();
    assert!(!text.contains(TOKEN) && !text.contains(PASSWORD), "{text}");
}

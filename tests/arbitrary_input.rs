//! Arbitrary input, the CI counterpart of `fuzz/fuzz_targets/builders.rs`: arbitrary strings and
//! bytes go to both builders (header names and values, origins, tokens, token sources) and
//! `BearerToken::new`, and, when the layers build, a request with an arbitrary URI, headers and
//! `HeaderOverrides` goes through both services, with and without a tokio runtime.
//!
//! Checked: nothing panics or hangs; a builder fails exactly when one of its inputs is invalid,
//! with the kind of the first invalid input (for `DefaultHeadersLayer`); every service error is
//! a `tower_client_headers::Error` of a per-request kind; and no error's `Display` or `Debug`
//! contains a token or a sensitive value.

use std::convert::Infallible;
use std::error::Error as _;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, Uri};
use proptest::prelude::*;
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_client_headers::{
    BearerAuthLayer, BearerToken, BoxError, DefaultHeadersLayer, Error, ErrorKind, HeaderOverrides,
    Token,
};

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

/// A name or value as a caller may hand it over: text or raw bytes.
#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Bytes(Vec<u8>),
}

impl Piece {
    fn bytes(&self) -> &[u8] {
        match self {
            Piece::Text(s) => s.as_bytes(),
            Piece::Bytes(b) => b,
        }
    }

    /// The piece as it could appear in a message.
    fn lossy(&self) -> String {
        String::from_utf8_lossy(self.bytes()).into_owned()
    }
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,16}",
        "[\\x00-\\x7f]{0,12}",
        "[a-z0-9-]{1,12}",
        "[A-Za-z0-9._~+/=-]{1,16}",
        Just("authorization".to_owned()),
        Just("cookie".to_owned()),
        Just("proxy-authorization".to_owned()),
    ]
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        3 => text().prop_map(Piece::Text),
        1 => prop::collection::vec(any::<u8>(), 0..16).prop_map(Piece::Bytes),
    ]
}

/// Mostly valid header names, so that layers get built and requests sent.
fn name_piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        5 => "[a-z0-9-]{1,12}".prop_map(Piece::Text),
        1 => Just(Piece::Text("authorization".to_owned())),
        2 => piece(),
    ]
}

/// Mostly valid header values.
fn value_piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        4 => "[ -~]{0,16}".prop_map(Piece::Text),
        2 => piece(),
    ]
}

/// Mostly valid tokens.
fn token_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9._~+/-]{1,12}=?",
        1 => text(),
    ]
}

fn origin_input() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => text(),
        3 => "(https?|HTTPS)://(api\\.example\\.com|\\[::1\\]|127\\.0\\.0\\.1|localhost)(:[0-9]{1,4})?/?",
        3 =>
        "(https?|HTTPS?|wss?|ftp|grpc|)(://)?((user(:[a-z0-9]{0,6})?|api\\.example\\.com)@)?\
         (api\\.example\\.com|API\\.EXAMPLE\\.com|\\[::1\\]|\\[0:0::1\\]|127\\.0\\.0\\.1|localhost|[a-z.]{0,8})\
         (:[0-9]{0,6})?(/[a-z]{0,4})?(\\?[a-z=]{0,6})?(#[a-z]{0,3})?",
    ]
}

fn uri_input() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => text(),
        3 =>
        "(https?|HTTPS?|ftp|)(://)?([a-z0-9:]{0,8}@)?\
         (api\\.example\\.com|\\[::1\\]|127\\.0\\.0\\.1|localhost|[a-z.]{0,8})\
         (:[0-9]{0,6})?(/[a-z]{0,4})?(\\?[a-z=]{0,6})?",
    ]
}

#[derive(Debug, Clone, Copy)]
enum Policy {
    Header,
    Override,
    Append,
    Sensitive,
}

#[derive(Debug, Clone)]
enum SessionCall {
    Header(Policy, Piece, Piece),
    Origin(String),
}

fn session_call() -> impl Strategy<Value = SessionCall> {
    let policy = prop_oneof![
        Just(Policy::Header),
        Just(Policy::Override),
        Just(Policy::Append),
        Just(Policy::Sensitive),
    ];
    prop_oneof![
        6 => (policy, name_piece(), value_piece()).prop_map(|(p, n, v)| SessionCall::Header(p, n, v)),
        1 => origin_input().prop_map(SessionCall::Origin),
    ]
}

#[derive(Debug, Clone)]
enum SourceSpec {
    Issue {
        token: String,
        lifetime_ms: Option<u64>,
    },
    Fail(String),
}

fn source_spec() -> impl Strategy<Value = SourceSpec> {
    prop_oneof![
        3 => (token_text(), prop::option::of(0u64..200))
            .prop_map(|(token, lifetime_ms)| SourceSpec::Issue { token, lifetime_ms }),
        1 => text().prop_map(SourceSpec::Fail),
    ]
}

#[derive(Debug, Clone)]
enum AuthCall {
    Token(String),
    Source(SourceSpec),
    Origin(String),
    AllowHttp(bool),
    RefreshBefore(u64),
    FetchTimeout(u64),
}

fn credential() -> impl Strategy<Value = AuthCall> {
    prop_oneof![
        token_text().prop_map(AuthCall::Token),
        source_spec().prop_map(AuthCall::Source),
    ]
}

fn auth_call() -> impl Strategy<Value = AuthCall> {
    prop_oneof![
        1 => credential(),
        2 => origin_input().prop_map(AuthCall::Origin),
        2 => any::<bool>().prop_map(AuthCall::AllowHttp),
        1 => (0u64..100).prop_map(AuthCall::RefreshBefore),
        1 => (0u64..100).prop_map(AuthCall::FetchTimeout),
    ]
}

/// Usually one credential first, then other calls (sometimes another credential).
fn auth_calls() -> impl Strategy<Value = Vec<AuthCall>> {
    (
        prop::option::weighted(0.9, credential()),
        prop::collection::vec(auth_call(), 0..4),
    )
        .prop_map(|(first, rest)| first.into_iter().chain(rest).collect())
}

#[derive(Debug, Clone)]
enum OverrideOp {
    Remove(Piece),
    Set(Piece, Piece),
    RemoveAll,
    WithoutAuth,
    Bearer(String),
}

fn override_op() -> impl Strategy<Value = OverrideOp> {
    prop_oneof![
        2 => name_piece().prop_map(OverrideOp::Remove),
        2 => (name_piece(), value_piece()).prop_map(|(n, v)| OverrideOp::Set(n, v)),
        1 => Just(OverrideOp::RemoveAll),
        1 => Just(OverrideOp::WithoutAuth),
        2 => token_text().prop_map(OverrideOp::Bearer),
    ]
}

#[derive(Debug, Clone)]
struct RequestSpec {
    uri: String,
    headers: Vec<(Piece, Piece)>,
    overrides: Option<Vec<OverrideOp>>,
}

fn request_spec() -> impl Strategy<Value = RequestSpec> {
    (
        uri_input(),
        prop::collection::vec((name_piece(), value_piece()), 0..4),
        prop::option::weighted(0.7, prop::collection::vec(override_op(), 0..5)),
    )
        .prop_map(|(uri, headers, overrides)| RequestSpec {
            uri,
            headers,
            overrides,
        })
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

/// What must never be printed, and what may legitimately be (header names, origins and URIs are
/// named in messages; a "secret" that is a substring of one of them proves nothing).
#[derive(Default)]
struct Secrets {
    secret: Vec<String>,
    public: Vec<String>,
}

impl Secrets {
    fn secret(&mut self, s: impl Into<String>) {
        self.secret.push(s.into());
    }

    fn public(&mut self, s: impl Into<String>) {
        self.public.push(s.into());
    }

    /// Fails if `text` (a message or `Debug` output) contains a secret longer than four
    /// characters that is neither part of a public string nor a substring of one of the
    /// message's ordinary (purely alphabetic) words.
    fn check(&self, what: &str, text: &str) -> Result<(), TestCaseError> {
        let ordinary: Vec<&str> = text
            .split(|c: char| !c.is_ascii_alphabetic() && c != '-')
            .filter(|w| !w.is_empty())
            .collect();
        for s in &self.secret {
            if s.chars().count() <= 4 || !text.contains(s.as_str()) {
                continue;
            }
            if self.public.iter().any(|p| p.contains(s.as_str())) {
                continue;
            }
            if ordinary.iter().any(|w| w.contains(s.as_str())) {
                continue;
            }
            return Err(TestCaseError::fail(format!(
                "{what} shows the secret {s:?}: {text}"
            )));
        }
        Ok(())
    }

    /// Checks `Display` of the error and of its sources, and `Debug` in both forms.
    fn check_error(&self, err: &(dyn std::error::Error + 'static)) -> Result<(), TestCaseError> {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = cur {
            self.check("error Display", &e.to_string())?;
            cur = e.source();
        }
        self.check("error Debug", &format!("{err:?}"))?;
        self.check("error Debug", &format!("{err:#?}"))
    }
}

fn always_sensitive(name: &[u8]) -> bool {
    HeaderName::from_bytes(name).is_ok_and(|n| {
        n == http::header::AUTHORIZATION
            || n == http::header::PROXY_AUTHORIZATION
            || n == http::header::COOKIE
    })
}

// ---------------------------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------------------------

/// Builds the session layer and checks the outcome: it fails exactly when a call was invalid,
/// with the kind of the first invalid one.
fn build_session(
    calls: &[SessionCall],
    secrets: &mut Secrets,
) -> Result<Option<DefaultHeadersLayer>, TestCaseError> {
    let mut b = DefaultHeadersLayer::builder();
    let mut first_error: Option<ErrorKind> = None;
    for call in calls {
        match call {
            SessionCall::Header(policy, name, value) => {
                let (n, v) = (name.bytes(), value.bytes());
                if matches!(policy, Policy::Sensitive) || always_sensitive(n) {
                    secrets.secret(value.lossy());
                }
                if HeaderName::from_bytes(n).is_ok() {
                    secrets.public(name.lossy());
                }
                let kind = if HeaderName::from_bytes(n).is_err() {
                    Some(ErrorKind::InvalidHeaderName)
                } else if HeaderValue::from_bytes(v).is_err() {
                    Some(ErrorKind::InvalidHeaderValue)
                } else {
                    None
                };
                first_error = first_error.or(kind);
                b = match policy {
                    Policy::Header => b.header(n, v),
                    Policy::Override => b.override_header(n, v),
                    Policy::Append => b.append_header(n, v),
                    Policy::Sensitive => b.sensitive_header(n, v),
                };
            }
            SessionCall::Origin(origin) => {
                secrets.public(origin.clone());
                // Whether this origin alone is accepted: the only way to know, through the
                // public API, what the origin parser thinks of it.
                let alone = DefaultHeadersLayer::builder().origin(origin).build();
                if let Err(err) = &alone {
                    prop_assert_eq!(err.kind(), ErrorKind::InvalidOrigin);
                    first_error = first_error.or(Some(ErrorKind::InvalidOrigin));
                }
                b = b.origin(origin);
            }
        }
    }
    let debug = format!("{b:?}");
    secrets.check("DefaultHeadersBuilder Debug", &debug)?;
    match b.build() {
        Ok(layer) => {
            prop_assert_eq!(first_error, None, "built although an input was invalid");
            secrets.check("DefaultHeadersLayer Debug", &format!("{layer:?}"))?;
            secrets.check("DefaultHeadersLayer Debug", &format!("{layer:#?}"))?;
            Ok(Some(layer))
        }
        Err(err) => {
            prop_assert_eq!(Some(err.kind()), first_error, "{}", err);
            secrets.check_error(&err)?;
            Ok(None)
        }
    }
}

fn source(spec: SourceSpec) -> impl tower_client_headers::TokenSource {
    move || {
        let spec = spec.clone();
        async move {
            match spec {
                SourceSpec::Issue { token, lifetime_ms } => {
                    let token = Token::new(BearerToken::new(token)?);
                    Ok(match lifetime_ms {
                        Some(ms) => token.expires_in(Duration::from_millis(ms)),
                        None => token,
                    })
                }
                SourceSpec::Fail(message) => Err::<Token, BoxError>(message.into()),
            }
        }
    }
}

fn build_auth(
    calls: &[AuthCall],
    secrets: &mut Secrets,
) -> Result<Option<BearerAuthLayer>, TestCaseError> {
    let mut b = BearerAuthLayer::builder();
    let mut token: Option<bool> = None;
    let mut has_source = false;
    let mut origins_ok = true;
    for call in calls {
        b = match call {
            AuthCall::Token(t) => {
                secrets.secret(t.clone());
                token = Some(BearerToken::new(t.clone()).is_ok());
                b.token(t.clone())
            }
            AuthCall::Source(spec) => {
                match spec {
                    SourceSpec::Issue { token, .. } => secrets.secret(token.clone()),
                    // The source's own error is the caller's to word.
                    SourceSpec::Fail(message) => secrets.public(message.clone()),
                }
                has_source = true;
                b.source(source(spec.clone()))
            }
            AuthCall::Origin(o) => {
                secrets.public(o.clone());
                origins_ok &= BearerAuthLayer::builder()
                    .token("t")
                    .origin(o)
                    .build()
                    .is_ok();
                b.origin(o)
            }
            AuthCall::AllowHttp(allow) => b.allow_http(*allow),
            AuthCall::RefreshBefore(ms) => b.refresh_before(Duration::from_millis(*ms)),
            AuthCall::FetchTimeout(ms) => b.fetch_timeout(Duration::from_millis(*ms)),
        };
    }
    secrets.check("BearerAuthBuilder Debug", &format!("{b:?}"))?;
    secrets.check("BearerAuthBuilder Debug", &format!("{b:#?}"))?;
    let expect_ok = origins_ok
        && match (token, has_source) {
            (Some(valid), false) => valid,
            (None, true) => true,
            _ => false,
        };
    match b.build() {
        Ok(layer) => {
            prop_assert!(
                expect_ok,
                "built although an input was invalid: {:?}",
                calls
            );
            secrets.check("BearerAuthLayer Debug", &format!("{layer:?}"))?;
            secrets.check("BearerAuthLayer Debug", &format!("{layer:#?}"))?;
            Ok(Some(layer))
        }
        Err(err) => {
            prop_assert!(!expect_ok, "{:?} failed: {}", calls, err);
            prop_assert!(
                matches!(
                    err.kind(),
                    ErrorKind::InvalidOrigin | ErrorKind::InvalidToken | ErrorKind::InvalidConfig
                ),
                "{:?}",
                err.kind()
            );
            secrets.check_error(&err)?;
            Ok(None)
        }
    }
}

fn build_request(spec: &RequestSpec, secrets: &mut Secrets) -> Request<()> {
    let uri: Uri = spec
        .uri
        .parse()
        .unwrap_or_else(|_| Uri::from_static("https://api.example.com/"));
    secrets.public(uri.to_string());
    let mut req = Request::new(());
    *req.uri_mut() = uri;
    for (name, value) in &spec.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.bytes()),
            HeaderValue::from_bytes(value.bytes()),
        ) {
            req.headers_mut().append(n, v);
        }
    }
    if let Some(ops) = &spec.overrides {
        let mut o = HeaderOverrides::new();
        for op in ops {
            o = match op {
                OverrideOp::Remove(name) => match HeaderName::from_bytes(name.bytes()) {
                    Ok(n) => o.remove(n),
                    Err(_) => o,
                },
                OverrideOp::Set(name, value) => match (
                    HeaderName::from_bytes(name.bytes()),
                    HeaderValue::from_bytes(value.bytes()),
                ) {
                    (Ok(n), Ok(v)) => {
                        if always_sensitive(name.bytes()) {
                            secrets.secret(value.lossy());
                        }
                        o.set(n, v)
                    }
                    _ => o,
                },
                OverrideOp::RemoveAll => o.remove_all(),
                OverrideOp::WithoutAuth => o.without_auth(),
                OverrideOp::Bearer(t) => {
                    secrets.secret(t.clone());
                    match BearerToken::new(t.clone()) {
                        Ok(token) => o.bearer_token(token),
                        Err(_) => o,
                    }
                }
            };
        }
        req.extensions_mut().insert(o);
    }
    req
}

// ---------------------------------------------------------------------------------------------
// Sending
// ---------------------------------------------------------------------------------------------

fn check_outcome(
    outcome: Result<Response<HeaderMap>, BoxError>,
    secrets: &Secrets,
) -> Result<(), TestCaseError> {
    match outcome {
        Ok(_) => Ok(()),
        Err(err) => {
            let Some(ours) = err.downcast_ref::<Error>() else {
                return Err(TestCaseError::fail(format!(
                    "service error that is not a tower_client_headers::Error: {err}"
                )));
            };
            prop_assert!(
                matches!(
                    ours.kind(),
                    ErrorKind::PlaintextRefused
                        | ErrorKind::TokenFetch
                        | ErrorKind::TokenFetchTimeout
                ),
                "{:?}",
                ours.kind()
            );
            secrets.check_error(err.as_ref())
        }
    }
}

/// Sends two requests (the second may find a cached token) through both layers, in the order
/// `session_outside` says, on a tokio runtime or, without one, with `futures`' executor.
fn send_all(
    session: DefaultHeadersLayer,
    auth: BearerAuthLayer,
    session_outside: bool,
    with_runtime: bool,
    spec: &RequestSpec,
    secrets: &mut Secrets,
) -> Result<(), TestCaseError> {
    let echo = service_fn(|req: Request<()>| async move {
        Ok::<_, Infallible>(Response::new(req.headers().clone()))
    });
    let requests = [build_request(spec, secrets), build_request(spec, secrets)];
    let send = async {
        let mut outcomes = Vec::new();
        for req in requests {
            let outcome = if session_outside {
                let svc = ServiceBuilder::new()
                    .layer(session.clone())
                    .layer(auth.clone())
                    .service(echo);
                svc.oneshot(req).await
            } else {
                let svc = ServiceBuilder::new()
                    .layer(auth.clone())
                    .layer(session.clone())
                    .service(echo);
                svc.oneshot(req).await
            };
            outcomes.push(outcome);
        }
        outcomes
    };
    let outcomes = if with_runtime {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), send).await })
            .map_err(|_| TestCaseError::fail("a request hung"))?
    } else {
        futures::executor::block_on(send)
    };
    for outcome in outcomes {
        check_outcome(outcome, secrets)?;
    }
    Ok(())
}

// 256 cases each (proptest's default); `PROPTEST_CASES=n` raises it for a longer hunt.
proptest! {
    /// Whatever the input: no panic, no hang, errors of the promised kinds, and no secret in
    /// any message or `Debug` output.
    #[test]
    fn arbitrary_input_through_builders_and_services(
        session_calls in prop::collection::vec(session_call(), 0..5),
        auth_calls in auth_calls(),
        request in request_spec(),
        session_outside in any::<bool>(),
        with_runtime in prop::bool::weighted(0.7),
    ) {
        let mut secrets = Secrets::default();
        let session = build_session(&session_calls, &mut secrets)?;
        let auth = build_auth(&auth_calls, &mut secrets)?;
        if let (Some(session), Some(auth)) = (session, auth) {
            send_all(session, auth, session_outside, with_runtime, &request, &mut secrets)?;
        }
    }

    /// `BearerToken::new` on arbitrary text: never a panic, and an error never shows the input.
    #[test]
    fn arbitrary_tokens(token in text()) {
        let mut secrets = Secrets::default();
        secrets.secret(token.clone());
        match BearerToken::new(token.clone()) {
            Ok(t) => {
                secrets.check("BearerToken Debug", &format!("{t:?} {t:#?}"))?;
                let t = Token::new(t).expires_in(Duration::from_secs(1));
                secrets.check("Token Debug", &format!("{t:?} {t:#?}"))?;
            }
            Err(err) => {
                prop_assert_eq!(err.kind(), ErrorKind::InvalidToken);
                secrets.check_error(&err)?;
            }
        }
    }

    /// Origins that carry a secret in their userinfo, query or fragment, or that are only a
    /// secret: rejected, without the secret in the message.
    #[test]
    fn secrets_in_origins_are_not_echoed(
        secret in "[a-z]{3}[0-9]{2}[A-Za-z0-9]{2,6}",
        shape in 0..5usize,
    ) {
        let origin = match shape {
            0 => format!("https://user:{secret}@api.example.com"),
            1 => format!("https://{secret}@api.example.com"),
            2 => format!("https://api.example.com/?key={secret}"),
            3 => format!("https://api.example.com/#{secret}"),
            _ => format!("Bearer {secret}"),
        };
        let mut secrets = Secrets::default();
        secrets.secret(secret);
        let err = DefaultHeadersLayer::builder().origin(&origin).build().expect_err(&origin);
        prop_assert_eq!(err.kind(), ErrorKind::InvalidOrigin);
        secrets.check_error(&err)?;
        let err = BearerAuthLayer::builder().token("t").origin(&origin).build().expect_err(&origin);
        prop_assert_eq!(err.kind(), ErrorKind::InvalidOrigin);
        secrets.check_error(&err)?;
        prop_assert!(err.source().is_none());
    }
}

// ---------------------------------------------------------------------------------------------
// URIs built by hand
// ---------------------------------------------------------------------------------------------

/// A URI whose authority `http::uri::Authority::from_static` took unchecked: http 1.5 validates
/// a static authority only up to a `/`, `?` or `#` and keeps the rest, and its `host()` then
/// panics on some of them (`a/@`). Such an authority names no host the layers can trust.
fn unchecked_uri(scheme: http::uri::Scheme, authority: &'static str) -> Uri {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(scheme);
    parts.authority = Some(http::uri::Authority::from_static(authority));
    parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    Uri::from_parts(parts).expect("a URI from parts")
}

/// Through both services, with and without origins and with a cached token answered by `401`:
/// nothing panics; plain http is refused; an origin-scoped layer adds nothing (the authority
/// matches no origin); an unscoped layer over https sends its credential as for any host.
#[tokio::test]
async fn unchecked_static_authorities_never_panic_and_match_no_origin() {
    use http::uri::Scheme;
    let echo = service_fn(|req: Request<()>| async move {
        let mut response = Response::new(req.headers().clone());
        *response.status_mut() = http::StatusCode::UNAUTHORIZED;
        Ok::<_, Infallible>(response)
    });
    let source = || async { Ok::<_, BoxError>(Token::new(BearerToken::new("cached")?)) };
    let unscoped = ServiceBuilder::new()
        .layer(BearerAuthLayer::from_source(source))
        .service(echo);
    let scoped_auth = ServiceBuilder::new()
        .layer(
            BearerAuthLayer::builder()
                .token("fixed")
                .origin("https://api.example.com")
                .build()
                .expect("layer"),
        )
        .service(echo);
    let scoped_session = ServiceBuilder::new()
        .layer(
            DefaultHeadersLayer::builder()
                .header("x-api-version", "2")
                .origin("https://api.example.com")
                .build()
                .expect("layer"),
        )
        .service(echo);
    for authority in [
        "a/@",
        "a/@[",
        "a?@",
        "x#@api.example.com",
        "api.example.com:443/",
    ] {
        let https = || Request::get(unchecked_uri(Scheme::HTTPS, authority)).body(());
        let http = || Request::get(unchecked_uri(Scheme::HTTP, authority)).body(());

        let err = unscoped
            .clone()
            .oneshot(http().expect("request"))
            .await
            .expect_err(authority);
        let kind = err.downcast_ref::<Error>().map(Error::kind);
        assert_eq!(kind, Some(ErrorKind::PlaintextRefused), "{authority}");
        for _ in 0..2 {
            let sent = unscoped.clone().oneshot(https().expect("request")).await;
            let sent = sent.expect(authority);
            assert_eq!(sent.body()["authorization"], "Bearer cached", "{authority}");
        }

        for scheme in [Scheme::HTTPS, Scheme::HTTP] {
            let request = || Request::get(unchecked_uri(scheme.clone(), authority)).body(());
            let sent = scoped_auth
                .clone()
                .oneshot(request().expect("request"))
                .await;
            assert!(!sent.expect(authority).body().contains_key("authorization"));
            let sent = scoped_session
                .clone()
                .oneshot(request().expect("request"))
                .await;
            assert!(!sent.expect(authority).body().contains_key("x-api-version"));
        }
    }
}

//! Fuzz target: arbitrary bytes, split into pieces, go to both builders (header names and
//! values, origins, tokens, token sources) and to `BearerToken::new`; when the layers build, a
//! request with an arbitrary URI, headers and `HeaderOverrides` goes through both services,
//! driven by `futures::executor::block_on` or a tokio current-thread runtime.
//!
//! Asserted: no panic, and every service error is a `tower_client_headers::Error` of a
//! per-request kind. `tests/arbitrary_input.rs` does the same with proptest, in CI.
//!
//! Run with `cargo +nightly fuzz run builders` from the crate root.

#![no_main]

use std::convert::Infallible;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Request, Response, Uri};
use libfuzzer_sys::fuzz_target;
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_client_headers::{
    BearerAuthLayer, BearerToken, BoxError, DefaultHeadersLayer, Error, ErrorKind, HeaderOverrides,
    Token,
};

/// Reads the fuzzer's bytes as a sequence of small numbers and length-prefixed pieces.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    fn piece(&mut self) -> &'a [u8] {
        let len = usize::from(self.byte() % 48).min(self.data.len());
        let (piece, rest) = self.data.split_at(len);
        self.data = rest;
        piece
    }

    fn text(&mut self) -> String {
        String::from_utf8_lossy(self.piece()).into_owned()
    }
}

fn source(
    token: String,
    lifetime_ms: Option<u8>,
    fail: bool,
) -> impl tower_client_headers::TokenSource {
    move || {
        let token = token.clone();
        async move {
            if fail {
                return Err::<Token, BoxError>(token.into());
            }
            let t = Token::new(BearerToken::new(token)?);
            Ok(match lifetime_ms {
                Some(ms) => t.expires_in(Duration::from_millis(u64::from(ms))),
                None => t,
            })
        }
    }
}

fn session(input: &mut Input<'_>) -> Option<DefaultHeadersLayer> {
    let mut b = DefaultHeadersLayer::builder();
    for _ in 0..input.byte() % 6 {
        b = match input.byte() % 5 {
            0 => b.header(input.piece(), input.piece()),
            1 => b.override_header(input.piece(), input.piece()),
            2 => b.append_header(input.piece(), input.piece()),
            3 => b.sensitive_header(input.piece(), input.piece()),
            _ => b.origin(&input.text()),
        };
    }
    let _ = format!("{b:?}");
    match b.build() {
        Ok(layer) => Some(layer),
        Err(err) => {
            assert!(matches!(
                err.kind(),
                ErrorKind::InvalidHeaderName
                    | ErrorKind::InvalidHeaderValue
                    | ErrorKind::InvalidOrigin
            ));
            let _ = (err.to_string(), format!("{err:?}"));
            None
        }
    }
}

fn auth(input: &mut Input<'_>) -> Option<BearerAuthLayer> {
    let mut b = BearerAuthLayer::builder();
    for _ in 0..input.byte() % 5 {
        b = match input.byte() % 7 {
            0 => b.token(input.text()),
            1 => {
                let token = input.text();
                let lifetime = input.byte();
                b.source(source(
                    token,
                    lifetime.is_multiple_of(2).then_some(lifetime),
                    false,
                ))
            }
            2 => b.source(source(input.text(), None, true)),
            3 => b.origin(&input.text()),
            4 => b.allow_http(input.byte().is_multiple_of(2)),
            5 => b.refresh_before(Duration::from_millis(u64::from(input.byte()))),
            _ => b.fetch_timeout(Duration::from_millis(u64::from(input.byte()))),
        };
    }
    let _ = format!("{b:?}");
    match b.build() {
        Ok(layer) => Some(layer),
        Err(err) => {
            assert!(matches!(
                err.kind(),
                ErrorKind::InvalidOrigin | ErrorKind::InvalidToken | ErrorKind::InvalidConfig
            ));
            let _ = (err.to_string(), format!("{err:?}"));
            None
        }
    }
}

fn request(input: &mut Input<'_>) -> Request<()> {
    let uri = input
        .text()
        .parse::<Uri>()
        .unwrap_or_else(|_| Uri::from_static("https://api.example.com/"));
    let mut req = Request::new(());
    *req.uri_mut() = uri;
    for _ in 0..input.byte() % 4 {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(input.piece()),
            HeaderValue::from_bytes(input.piece()),
        ) {
            req.headers_mut().append(n, v);
        }
    }
    let ops = input.byte() % 6;
    if ops > 0 {
        let mut o = HeaderOverrides::new();
        for _ in 1..ops {
            o = match input.byte() % 5 {
                0 => match HeaderName::from_bytes(input.piece()) {
                    Ok(n) => o.remove(n),
                    Err(_) => o,
                },
                1 => match (
                    HeaderName::from_bytes(input.piece()),
                    HeaderValue::from_bytes(input.piece()),
                ) {
                    (Ok(n), Ok(v)) => o.set(n, v),
                    _ => o,
                },
                2 => o.remove_all(),
                3 => o.without_auth(),
                _ => match BearerToken::new(input.text()) {
                    Ok(t) => o.bearer_token(t),
                    Err(_) => o,
                },
            };
        }
        let _ = format!("{o:?}");
        req.extensions_mut().insert(o);
    }
    req
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input { data };
    if let Ok(token) = BearerToken::new(input.text()) {
        let _ = format!("{:?}", Token::new(token));
    }
    let (Some(session), Some(auth)) = (session(&mut input), auth(&mut input)) else {
        return;
    };
    let mode = input.byte();
    let requests = [request(&mut input), request(&mut input)];
    let echo = service_fn(|req: Request<()>| async move {
        Ok::<_, Infallible>(Response::new(req.headers().clone()))
    });
    let send = async {
        let mut outcomes = Vec::new();
        for req in requests {
            let outcome = if mode.is_multiple_of(2) {
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
    let outcomes = if mode & 2 == 0 {
        futures::executor::block_on(send)
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
            .block_on(send)
    };
    for outcome in outcomes {
        if let Err(err) = outcome {
            let ours = err
                .downcast_ref::<Error>()
                .expect("every service error is a tower_client_headers::Error");
            assert!(matches!(
                ours.kind(),
                ErrorKind::PlaintextRefused | ErrorKind::TokenFetch | ErrorKind::TokenFetchTimeout
            ));
            let _ = (err.to_string(), format!("{err:?}"));
        }
    }
});

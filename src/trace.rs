//! Every event this crate emits, in one place, under the target `tower_client_headers`.
//!
//! With the `tracing` feature (on by default) each function emits one `tracing` event; without
//! it they compile to nothing. No event carries a token or a header value: only what happened,
//! timings, counts, error messages (ours never contain secrets; a token source's own error is
//! included by its `Display`, so a source must not put secrets there) and origins.

#![cfg_attr(not(feature = "tracing"), allow(unused_variables))]

use std::fmt;
use std::time::Duration;

use crate::error::Error;

/// Why a fetch started.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reason {
    /// No usable token: requests wait for it.
    NoToken,
    /// The cached token is inside its refresh window (requests keep using it).
    Refresh,
    /// `BearerAuthLayer::refresh()`.
    Requested,
}

pub(crate) fn fetch_started(flight: u64, reason: Reason) {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: "tower_client_headers", flight, reason = ?reason, "token fetch started");
}

/// A fetch succeeded: the token's lifetime, and when its refresh starts (either may be none).
pub(crate) fn fetch_succeeded(
    flight: u64,
    lifetime: Option<Duration>,
    refresh_in: Option<Duration>,
) {
    #[cfg(feature = "tracing")]
    match lifetime {
        Some(lifetime) => tracing::debug!(
            target: "tower_client_headers",
            flight,
            lifetime = ?lifetime,
            refresh_in = refresh_in.map(tracing::field::debug),
            "token fetched"
        ),
        None => tracing::debug!(
            target: "tower_client_headers",
            flight,
            refresh_in = refresh_in.map(tracing::field::debug),
            "token fetched (it never expires)"
        ),
    }
}

/// A fetch succeeded after failures.
pub(crate) fn recovered(flight: u64, failures: u32) {
    #[cfg(feature = "tracing")]
    tracing::info!(
        target: "tower_client_headers",
        flight,
        failures,
        "token fetched again after failed fetches; requests go through"
    );
}

/// A fetch failed and no usable token is cached: requests get the error.
pub(crate) fn fetch_failed(flight: u64, error: &Error) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        target: "tower_client_headers",
        flight,
        error = %Cause(error),
        "token fetch failed"
    );
}

/// A refresh failed while the cached token is still valid: requests go on using it.
pub(crate) fn refresh_failed(
    flight: u64,
    error: &Error,
    valid_for: Option<Duration>,
    retry_in: Option<Duration>,
) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        target: "tower_client_headers",
        flight,
        error = %Cause(error),
        valid_for = valid_for.map(tracing::field::debug),
        retry_in = retry_in.map(tracing::field::debug),
        "token refresh failed; the cached token stays in use until it expires"
    );
}

pub(crate) fn backoff_entered(failures: u32, delay: Duration) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        target: "tower_client_headers",
        failures,
        delay = ?delay,
        "token fetches backing off: requests fail at once until the delay passes"
    );
}

/// A fetch that outlived its deadline (the token it refreshed expired, or it ran past the
/// fetch timeout on a runtime that no longer runs it) was given up.
pub(crate) fn fetch_abandoned(flight: u64, why: crate::bearer::Overdue, running: Duration) {
    #[cfg(feature = "tracing")]
    match why {
        crate::bearer::Overdue::TokenExpired => tracing::warn!(
            target: "tower_client_headers",
            flight,
            running = ?running,
            "token refresh abandoned: still running when the token it refreshes expired; \
             a new fetch starts"
        ),
        crate::bearer::Overdue::TimedOut => tracing::warn!(
            target: "tower_client_headers",
            flight,
            running = ?running,
            "token fetch abandoned: it ran past the fetch timeout (is its runtime still \
             running?); a new fetch starts"
        ),
    }
}

pub(crate) fn invalidated_by_response() {
    #[cfg(feature = "tracing")]
    tracing::info!(
        target: "tower_client_headers",
        "cached token rejected by the server and dropped; the next request fetches a new one"
    );
}

pub(crate) fn invalidated_by_caller() {
    #[cfg(feature = "tracing")]
    tracing::info!(
        target: "tower_client_headers",
        "cached token dropped by invalidate(); the next request fetches a new one"
    );
}

pub(crate) fn logged_out() {
    #[cfg(feature = "tracing")]
    tracing::info!(
        target: "tower_client_headers",
        "credential cleared by invalidate() (logged out); requests go without one until set_credential"
    );
}

pub(crate) fn no_timer() {
    #[cfg(feature = "tracing")]
    tracing::error!(
        target: "tower_client_headers",
        "this tokio runtime has no timer (build it with enable_time() or enable_all()); \
         its token fetches fail"
    );
}

pub(crate) fn plaintext_refused(target: &dyn fmt::Display) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        target: "tower_client_headers",
        to = %target,
        "refused to send a credential in plain text; nothing was sent"
    );
}

/// What caused a failed fetch: for our "token fetch failed" errors, the chain below that
/// message (the source's own error), so events do not repeat their own message.
#[cfg(feature = "tracing")]
struct Cause<'a>(&'a Error);

#[cfg(feature = "tracing")]
impl fmt::Display for Cause<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::error::Error::source(self.0) {
            Some(source)
                if self.0.kind() == crate::ErrorKind::TokenFetch && !source.is::<Error>() =>
            {
                Chain(source).fmt(f)
            }
            _ => Chain(self.0).fmt(f),
        }
    }
}

/// reqwest followed a redirect to another origin below a scoped layer.
#[cfg(feature = "reqwest-middleware")]
pub(crate) fn hidden_redirect(from: &dyn fmt::Display, to: &dyn fmt::Display) {
    #[cfg(feature = "tracing")]
    tracing::error!(
        target: "tower_client_headers",
        from = %from,
        to = %to,
        "the reqwest client followed a redirect to another origin itself, below a scoped \
         layer: build it with redirect::Policy::none() and put FollowRedirects first"
    );
}

/// The token endpoint rotated the refresh token of a `RefreshTokenGrant`: handed to the
/// `on_rotation` callback (`persisted`), or kept only in memory.
#[cfg(feature = "oauth2")]
pub(crate) fn refresh_token_rotated(persisted: bool) {
    #[cfg(feature = "tracing")]
    if persisted {
        tracing::info!(
            target: "tower_client_headers",
            "refresh token rotated by the token endpoint; handed to on_rotation"
        );
    } else {
        tracing::warn!(
            target: "tower_client_headers",
            "refresh token rotated by the token endpoint and no on_rotation callback is set: \
             the new one is only in memory, and the old one may no longer work after a restart"
        );
    }
}

/// An error and its sources, `a: b: c`.
#[cfg(feature = "tracing")]
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

#[cfg(feature = "tracing")]
impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.0.to_string();
        let mut source = self.0.source();
        while let Some(err) = source {
            text.push_str(": ");
            text.push_str(&err.to_string());
            source = err.source();
        }
        f.write_str(&redact_urls(&text))
    }
}

/// The text with the userinfo, query and fragment of every `http://` or `https://` URL in it
/// replaced by `<redacted>`. A token source's error often quotes the token endpoint's URL
/// (reqwest's do), and client secrets end up in queries and userinfo. A query or fragment is
/// redacted up to the next white space, whatever it holds (`,`, `)` and `]` are left unencoded
/// in queries), and a bracketed IPv6 host is read whole.
#[cfg(any(feature = "tracing", test))]
pub(crate) fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = find_url(rest) {
        out.push_str(&rest[..start]);
        let url = &rest[start..];
        let after_scheme = url.find("://").map_or(url.len(), |i| i + 3);
        out.push_str(&url[..after_scheme]);
        let tail = &url[after_scheme..];
        // The authority: up to the first `/`, `?`, `#` or white space (a bracketed host may
        // hold `:`; a password may hold anything else, so `@` is looked for within it).
        let authority_end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("<redacted>@");
                out.push_str(&authority[at + 1..]);
            }
            None => out.push_str(authority),
        }
        let tail = &tail[authority_end..];
        // The path, up to what ends a URL quoted in prose.
        let path_end = tail
            .find(|c: char| {
                matches!(c, '?' | '#' | ')' | '"' | '\'' | '>' | ',' | ']') || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        out.push_str(&tail[..path_end]);
        let tail = &tail[path_end..];
        rest = match tail.chars().next() {
            Some(mark @ ('?' | '#')) => {
                out.push(mark);
                out.push_str("<redacted>");
                let end = tail.find(char::is_whitespace).unwrap_or(tail.len());
                // Keep a closing parenthesis the URL was quoted in.
                let quoted = &tail[..end];
                if quoted.ends_with(')') {
                    out.push(')');
                }
                &tail[end..]
            }
            _ => tail,
        };
    }
    out.push_str(rest);
    out
}

/// Where the next `http://` or `https://` (any case) starts.
#[cfg(any(feature = "tracing", test))]
fn find_url(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    [lower.find("http://"), lower.find("https://")]
        .into_iter()
        .flatten()
        .min()
}

#[cfg(test)]
mod redaction_tests {
    use super::redact_urls;

    #[test]
    fn urls_lose_userinfo_query_and_fragment() {
        assert_eq!(
            redact_urls(
                "error sending request for url \
                 (https://idp.example/token?client_id=a&client_secret=hunter2)"
            ),
            "error sending request for url (https://idp.example/token?<redacted>)"
        );
        assert_eq!(
            redact_urls("GET HTTP://user:hunter2@idp.example:8443/t#frag: 500"),
            "GET HTTP://<redacted>@idp.example:8443/t#<redacted> 500"
        );
        assert_eq!(
            redact_urls("a http://x/?k=hunter2 b https://y/p c"),
            "a http://x/?<redacted> b https://y/p c"
        );
        assert_eq!(redact_urls("no url here"), "no url here");
        // Characters reqwest leaves unencoded in a query do not end the redaction.
        for secret in [
            "scope=read,write&client_secret=S1",
            "a=)&client_secret=S2",
            "a=]&s=S3",
        ] {
            let text = format!("for url (http://127.0.0.1:8/token?{secret}) next");
            let out = redact_urls(&text);
            assert!(!out.contains('S'), "{out}");
            assert_eq!(out, "for url (http://127.0.0.1:8/token?<redacted>) next");
        }
        assert_eq!(
            redact_urls("url (http://[::1]:41621/token?client_secret=S4)"),
            "url (http://[::1]:41621/token?<redacted>)"
        );
        assert_eq!(
            redact_urls("http://u:p)w@[::1]/x"),
            "http://<redacted>@[::1]/x"
        );
        assert_eq!(redact_urls("https://"), "https://");
        assert_eq!(redact_urls("é https://h/é?s=é"), "é https://h/é?<redacted>");
    }
}

#[cfg(all(test, feature = "tracing"))]
mod tests {
    use super::*;
    use crate::error::{BoxError, ErrorKind};

    #[test]
    fn chain_shows_every_source() {
        let inner = Error::with_source(
            ErrorKind::TokenFetch,
            "token fetch failed",
            BoxError::from("503 from the token endpoint"),
        );
        let outer = Error::with_source(ErrorKind::TokenFetch, "backing off", BoxError::from(inner));
        assert_eq!(
            Chain(&outer).to_string(),
            "backing off: token fetch failed: 503 from the token endpoint"
        );
    }
}

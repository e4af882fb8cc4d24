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

/// A fetch failed and no usable token is cached: requests get the error.
pub(crate) fn fetch_failed(flight: u64, error: &Error) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        target: "tower_client_headers",
        flight,
        error = %Chain(error),
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
        error = %Chain(error),
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
pub(crate) fn fetch_abandoned(flight: u64) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        target: "tower_client_headers",
        flight,
        "token fetch abandoned: it outlived its token or its timeout; a new one may start"
    );
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
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
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

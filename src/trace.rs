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
    #[cfg(all(test, feature = "tracing"))]
    tests::ask_every_time();
    #[cfg(feature = "tracing")]
    tracing::debug!(target: "tower_client_headers", flight, reason = ?reason, "token fetch started");
}

/// A fetch succeeded: the token's lifetime, and when its refresh starts (either may be none).
pub(crate) fn fetch_succeeded(
    flight: u64,
    lifetime: Option<Duration>,
    refresh_in: Option<Duration>,
) {
    #[cfg(all(test, feature = "tracing"))]
    tests::ask_every_time();
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
    #[cfg(all(test, feature = "tracing"))]
    tests::ask_every_time();
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
    #[cfg(all(test, feature = "tracing"))]
    tests::ask_every_time();
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
    #[cfg(all(test, feature = "tracing"))]
    tests::ask_every_time();
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
    #[cfg(all(test, feature = "tracing"))]
    tests::ask_every_time();
    #[cfg(feature = "tracing")]
    tracing::warn!(
        target: "tower_client_headers",
        flight,
        "token fetch abandoned: it outlived its token or its timeout; a new one may start"
    );
}

pub(crate) fn invalidated_by_response() {
    #[cfg(all(test, feature = "tracing"))]
    tests::ask_every_time();
    #[cfg(feature = "tracing")]
    tracing::info!(
        target: "tower_client_headers",
        "cached token rejected by the server and dropped; the next request fetches a new one"
    );
}

pub(crate) fn invalidated_by_caller() {
    #[cfg(all(test, feature = "tracing"))]
    tests::ask_every_time();
    #[cfg(feature = "tracing")]
    tracing::info!(
        target: "tower_client_headers",
        "cached token dropped by invalidate(); the next request fetches a new one"
    );
}

pub(crate) fn no_timer() {
    #[cfg(all(test, feature = "tracing"))]
    tests::ask_every_time();
    #[cfg(feature = "tracing")]
    tracing::error!(
        target: "tower_client_headers",
        "this tokio runtime has no timer (build it with enable_time() or enable_all()); \
         its token fetches fail"
    );
}

pub(crate) fn plaintext_refused(target: &dyn fmt::Display) {
    #[cfg(all(test, feature = "tracing"))]
    tests::ask_every_time();
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
    #[cfg(all(test, feature = "tracing"))]
    tests::ask_every_time();
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
pub(crate) mod tests {
    use super::*;
    use crate::error::{BoxError, ErrorKind};

    /// Tests capture these events with `tracing::subscriber::set_default` while other tests
    /// emit them on other threads. tracing caches, per callsite, whether any subscriber wants
    /// it; a callsite first hit on a thread with no subscriber just as a test installs its
    /// own can be cached as unwanted, and that test then misses its events. A global
    /// subscriber that wants every callsite "sometimes" (and enables nothing), installed
    /// before any of our callsites is first hit, makes each event ask the current thread's
    /// subscriber every time.
    pub(crate) fn ask_every_time() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let _ = tracing::dispatcher::set_global_default(tracing::Dispatch::new(AskEveryTime));
        });
    }

    struct AskEveryTime;

    impl tracing::Subscriber for AskEveryTime {
        fn register_callsite(
            &self,
            _: &'static tracing::Metadata<'static>,
        ) -> tracing::subscriber::Interest {
            tracing::subscriber::Interest::sometimes()
        }

        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            false
        }

        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }

        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

        fn event(&self, _: &tracing::Event<'_>) {}

        fn enter(&self, _: &tracing::span::Id) {}

        fn exit(&self, _: &tracing::span::Id) {}
    }

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

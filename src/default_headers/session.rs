//! Live sessions: [`SessionHandle`] replaces a layer's session headers for every clone of the
//! layer and every service made from it.
//!
//! The current session is an `Arc<SessionHeaders>` in an [`ArcSwap`]: a request reads it with
//! one atomic load and no lock (a tower service keeps an `arc_swap::Cache`, which reloads only
//! after an update), and an update swaps in a whole new session, so a request sees the old one
//! or the new one, never a mix.

use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError, TryLockError};

use arc_swap::ArcSwap;
use http::HeaderMap;

use super::{DefaultHeadersBuilder, SessionHeaders};
use crate::error::{Error, ErrorKind};

/// The session every clone of a layer, every service made from it and every handle share.
pub(crate) struct Shared {
    session: ArcSwap<SessionHeaders>,
    /// Serialises updates, so that each builds on the one before and none is lost (`f` is
    /// `FnOnce`, so `ArcSwap::rcu`'s retry loop cannot be used). Requests never take it.
    update: Mutex<()>,
}

impl Shared {
    pub(crate) fn new(session: SessionHeaders) -> Arc<Self> {
        Arc::new(Self {
            session: ArcSwap::from_pointee(session),
            update: Mutex::new(()),
        })
    }

    /// The current session, for one request (not to be held: a guard is meant to be brief).
    #[inline]
    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<SessionHeaders>> {
        self.session.load()
    }

    /// Build a new session from the current one with `f` and install it.
    fn update<F>(self: &Arc<Self>, f: F) -> Result<(), Error>
    where
        F: FnOnce(DefaultHeadersBuilder) -> DefaultHeadersBuilder,
    {
        let Some(updating) = Updating::enter(self) else {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "SessionHandle::update was called again from inside the closure of an update \
                 of the same session, which would wait for itself forever; nothing was changed \
                 by the inner call: make every change on the builder the closure was given",
            ));
        };
        // A panic in an earlier `f` poisoned the lock, and changed nothing: the session is
        // only ever replaced whole, after `f` returned.
        let serial = if updating.nested {
            // Inside another session's update: waiting here could wait for a thread that
            // waits for that other session (two sessions updated nested in opposite orders
            // on two threads), forever. Refuse instead of waiting.
            match self.update.try_lock() {
                Ok(serial) => serial,
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::new(
                        ErrorKind::InvalidConfig,
                        "SessionHandle::update of a session that another thread is updating \
                         was called from inside the closure of an update of another session; \
                         waiting could deadlock (two sessions updated nested in opposite \
                         orders), so nothing was changed by the inner call: update the \
                         sessions one after the other",
                    ))
                }
            }
        } else {
            self.update.lock().unwrap_or_else(PoisonError::into_inner)
        };
        let current = self.session.load_full();
        let next = f(DefaultHeadersBuilder::from_session(&current)).into_session()?;
        self.session.store(Arc::new(next));
        // The previous session is dropped after the lock is released and this thread has left
        // the update: values it owns (a computed function's captures) may update sessions in
        // their `Drop`.
        drop(serial);
        drop(updating);
        drop(current);
        Ok(())
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `SessionHeaders`' Debug: names, policies and origins, never a value.
        fmt::Debug::fmt(&**self.session.load(), f)
    }
}

/// What a service's `arc_swap::Cache` reads the current session through.
#[derive(Clone)]
pub(crate) struct Live(pub(crate) Arc<Shared>);

impl Deref for Live {
    type Target = ArcSwap<SessionHeaders>;

    #[inline]
    fn deref(&self) -> &Self::Target {
        &self.0.session
    }
}

thread_local! {
    /// The sessions this thread is updating right now (nested updates of different sessions
    /// are fine; of the same one, they would deadlock on its lock).
    static UPDATING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// This thread's mark on a session it is updating, removed when the update ends (a panic in
/// `f` included).
struct Updating {
    id: usize,
    /// Whether this thread was already inside an update of another session.
    nested: bool,
}

impl Updating {
    /// `None` if this thread is already updating `shared`.
    fn enter(shared: &Arc<Shared>) -> Option<Self> {
        // The address identifies the session while the caller's handle keeps it alive.
        let id = Arc::as_ptr(shared) as usize;
        let entered = UPDATING
            .try_with(|updating| {
                let mut updating = updating.borrow_mut();
                if updating.contains(&id) {
                    return None;
                }
                let nested = !updating.is_empty();
                updating.push(id);
                Some(nested)
            })
            // Thread-locals are gone only while the thread exits; without them, no check.
            .unwrap_or(Some(false));
        entered.map(|nested| Self { id, nested })
    }
}

impl Drop for Updating {
    fn drop(&mut self) {
        let _ = UPDATING.try_with(|updating| {
            let mut updating = updating.borrow_mut();
            if let Some(at) = updating.iter().rposition(|id| *id == self.id) {
                updating.swap_remove(at);
            }
        });
    }
}

/// A handle on a [`DefaultHeadersLayer`](super::DefaultHeadersLayer)'s session headers, to
/// change them while the layer is in use: aiohttp's `session.headers[...] = ...`.
///
/// Get one with [`DefaultHeadersLayer::handle`](super::DefaultHeadersLayer::handle). It is
/// cheap to clone, `Send + Sync + 'static`, and acts on the session that every clone of the
/// layer, and every service made from it, before or after, share. Its `Debug` shows header
/// names, policies and origins, never a value.
///
/// For credentials, prefer the auth layer, which refuses plain `http://` to remote hosts:
/// [`BearerAuthLayer`](crate::BearerAuthLayer) for bearer tokens.
///
/// ```
/// use http::{Request, Response};
/// use std::convert::Infallible;
/// use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
/// use tower_client_headers::DefaultHeadersLayer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let layer = DefaultHeadersLayer::builder()
///     .header("user-agent", "my-app/1.0")
///     .origin("https://api.example.com")
///     .build()?;
/// let session = layer.handle();
/// let mut client = ServiceBuilder::new().layer(layer).service(service_fn(
///     |req: Request<()>| async move { Ok::<_, Infallible>(Response::new(req.headers().clone())) },
/// ));
///
/// // Logged in: every later request of the session carries the user's session id.
/// session.update(|s| s.sensitive_header("x-session-id", "s-7f3a"))?;
/// let request = Request::get("https://api.example.com/me").body(())?;
/// let sent = client.ready().await?.call(request).await?.into_body();
/// assert_eq!(sent["x-session-id"], "s-7f3a");
///
/// // Logged out: gone.
/// session.update(|s| s.remove("x-session-id"))?;
/// let request = Request::get("https://api.example.com/me").body(())?;
/// let sent = client.ready().await?.call(request).await?.into_body();
/// assert!(sent.get("x-session-id").is_none());
/// assert_eq!(sent["user-agent"], "my-app/1.0");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SessionHandle {
    shared: Arc<Shared>,
}

impl SessionHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Change the session: `f` gets a [`DefaultHeadersBuilder`] holding the current session
    /// (every value with its policy and sensitivity, the computed values, the origins) and
    /// returns the new one, which is then installed for every clone of the layer and every
    /// service made from it.
    ///
    /// - **Atomic.** A request sees the old session or the new one, never a mix; requests
    ///   already merged keep what they got.
    /// - **All or nothing.** If the builder holds an error (an invalid name, value or origin),
    ///   nothing changes and that error is returned.
    /// - **None lost.** Concurrent updates apply one after the other, each to the session the
    ///   one before installed.
    /// - **As on a fresh builder.** `.header` on a name the session has adds a value; to
    ///   replace a value, [`remove`](DefaultHeadersBuilder::remove) the name first. The last
    ///   policy given for a name applies to all its values. `.origin` adds an origin.
    ///
    /// Requests never wait for an update (they read the session without a lock). A service
    /// keeps the session it last used until its next request, so an idle service holds the
    /// previous session in memory (never sending it) until it is used again or dropped.
    ///
    /// `f` runs on the calling thread, holding the session's update lock: keep it short, and
    /// do not make it wait for another thread's update of the same session. If `f` panics, the
    /// panic reaches the caller and the session is unchanged; later updates work as usual.
    ///
    /// # Errors
    ///
    /// The builder's errors, as [`build`](DefaultHeadersBuilder::build) reports them; and
    /// [`ErrorKind::InvalidConfig`] when `f` itself calls `update` on the same session (which
    /// could only wait for itself): that inner call changes nothing.
    ///
    /// ```
    /// use tower_client_headers::{DefaultHeadersLayer, ErrorKind};
    ///
    /// let layer = DefaultHeadersLayer::builder().header("accept", "application/json").build()?;
    /// let session = layer.handle();
    ///
    /// // Replace a value: remove the name, then give it again.
    /// session.update(|s| s.remove("accept").header("accept", "text/csv"))?;
    /// assert_eq!(layer.headers()["accept"], "text/csv");
    ///
    /// // An invalid value: an error, and the session is as it was.
    /// let err = session.update(|s| s.header("x-note", "line\nbreak")).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidHeaderValue);
    /// assert!(layer.headers().get("x-note").is_none());
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn update<F>(&self, f: F) -> Result<(), Error>
    where
        F: FnOnce(DefaultHeadersBuilder) -> DefaultHeadersBuilder,
    {
        self.shared.update(f)
    }

    /// A snapshot of the session's static header values, every value in order (sensitive
    /// values stay marked). Computed values are not in it: they exist only per request.
    ///
    /// ```
    /// use tower_client_headers::DefaultHeadersLayer;
    ///
    /// let layer = DefaultHeadersLayer::builder().header("accept", "application/json").build()?;
    /// let session = layer.handle();
    /// session.update(|s| s.header("accept", "text/plain"))?;
    /// assert_eq!(session.headers().get_all("accept").iter().count(), 2);
    /// # Ok::<(), tower_client_headers::Error>(())
    /// ```
    pub fn headers(&self) -> HeaderMap {
        self.shared.load().headers().clone()
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionHandle")
            .field("session", &self.shared)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::mpsc;
    use std::time::Duration;

    use http::header::{ACCEPT, AUTHORIZATION, COOKIE, USER_AGENT};
    use http::{HeaderValue, Request, Response};
    use tower::{service_fn, Service, ServiceExt};
    use tower_layer::Layer;

    use super::super::merge::tests::{merged, values};
    use super::super::DefaultHeadersLayer;
    use super::*;

    const API: &str = "https://api.example.com/v1/items";

    /// The headers a request to `uri` with its own `request` headers leaves with.
    fn sent(layer: &DefaultHeadersLayer, uri: &str, request: &[(&str, &str)]) -> HeaderMap {
        merged(layer, uri, request, None)
    }

    /// Every value of every name, with its sensitivity, in order.
    fn described(headers: &HeaderMap) -> Vec<(String, String, bool)> {
        headers
            .iter()
            .map(|(n, v)| {
                let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (n.to_string(), value, v.is_sensitive())
            })
            .collect()
    }

    /// A layer with every kind of entry: several values, each policy, sensitive values,
    /// always-sensitive names, computed values of each policy, two origins.
    fn everything() -> DefaultHeadersLayer {
        DefaultHeadersLayer::builder()
            .header(ACCEPT, "application/json")
            .header(ACCEPT, "text/plain")
            .override_header(USER_AGENT, "app/1")
            .append_header("x-tags", "s1")
            .append_header("x-tags", "s2")
            .sensitive_header("x-api-key", "hunter2")
            .header(AUTHORIZATION, "Basic c2VjcmV0")
            .append_header(COOKIE, "sid=1")
            .header_with("x-request-id", |_| Some(HeaderValue::from_static("rid")))
            .override_header_with("x-path", |head| {
                HeaderValue::from_str(head.uri().path()).ok()
            })
            .append_header_with("x-trace", |_| Some(HeaderValue::from_static("t")))
            .sensitive_header_with("x-signature", |_| Some(HeaderValue::from_static("sg-9f1")))
            .origin("https://api.example.com")
            .origin("https://uploads.example.com:8443")
            .build()
            .expect("valid")
    }

    /// What `layer` does to a set of requests that tells every policy apart.
    fn behaviour(layer: &DefaultHeadersLayer) -> Vec<HeaderMap> {
        let own = [
            ("accept", "text/csv"),
            ("user-agent", "curl"),
            ("x-tags", "r"),
            ("x-api-key", "own"),
            ("authorization", "Bearer own"),
            ("cookie", "r=1"),
            ("x-request-id", "mine"),
            ("x-path", "own"),
            ("x-trace", "own"),
            ("x-signature", "own"),
        ];
        [
            sent(layer, API, &[]),
            sent(layer, API, &own),
            sent(layer, "https://uploads.example.com:8443/up", &[]),
            sent(layer, "https://elsewhere.example.com/", &own[..2]),
        ]
        .into()
    }

    fn described_all(maps: &[HeaderMap]) -> Vec<Vec<(String, String, bool)>> {
        maps.iter().map(described).collect()
    }

    #[test]
    fn an_update_returning_the_builder_unchanged_changes_nothing() {
        let layer = everything();
        let (headers, debug, before) = (layer.headers(), format!("{layer:?}"), behaviour(&layer));
        // The requests tell the policies apart (else this test could not fail).
        assert_eq!(values(&before[1], "user-agent"), ["app/1"]);
        assert_eq!(values(&before[1], "x-tags"), ["r", "s1", "s2"]);
        assert_eq!(values(&before[1], "accept"), ["text/csv"]);
        assert_eq!(values(&before[1], "x-path"), ["/v1/items"]);
        assert_eq!(values(&before[1], "x-trace"), ["own", "t"]);
        assert_eq!(values(&before[0], "x-signature"), ["sg-9f1"]);
        assert_eq!(before[3].len(), 2, "outside the origins: untouched");

        layer.handle().update(|b| b).expect("unchanged");
        assert_eq!(described(&layer.headers()), described(&headers));
        assert_eq!(format!("{layer:?}"), debug);
        assert_eq!(described_all(&behaviour(&layer)), described_all(&before));
    }

    #[test]
    fn remove_forgets_every_value_and_the_policy() {
        let layer = DefaultHeadersLayer::builder()
            .override_header("x-a", "1")
            .override_header("x-a", "2")
            .header(ACCEPT, "application/json")
            .override_header_with("x-b", |_| Some(HeaderValue::from_static("computed")))
            .build()
            .expect("valid");
        let session = layer.handle();
        session
            .update(|b| b.remove("x-a").remove("x-b").remove("x-not-there"))
            .expect("removed");
        assert!(layer.headers().get("x-a").is_none());
        let h = sent(&layer, API, &[("x-a", "own"), ("x-b", "own")]);
        assert_eq!(values(&h, "x-a"), ["own"]);
        assert_eq!(values(&h, "x-b"), ["own"]);
        assert_eq!(values(&h, "accept"), ["application/json"]);
        // Given again, the name starts afresh: one value, the if-absent policy.
        session.update(|b| b.header("x-a", "3")).expect("added");
        assert_eq!(
            values(&sent(&layer, API, &[("x-a", "own")]), "x-a"),
            ["own"]
        );
        assert_eq!(values(&sent(&layer, API, &[]), "x-a"), ["3"]);
        assert!(!format!("{layer:?}").contains("Override"), "{layer:?}");

        // On a fresh builder too; an invalid name is an error, counted among the calls.
        let err = DefaultHeadersLayer::builder()
            .header("x-a", "1")
            .remove("bad name")
            .build()
            .expect_err("invalid name");
        assert_eq!(err.kind(), ErrorKind::InvalidHeaderName);
        assert!(err.to_string().contains("remove #2"), "{err}");
    }

    #[test]
    fn an_invalid_update_changes_nothing_and_returns_the_error() {
        let layer = everything();
        let (headers, before) = (layer.headers(), behaviour(&layer));
        let session = layer.handle();
        let err = session
            .update(|b| {
                b.remove(ACCEPT)
                    .header("x-new", "ok")
                    .sensitive_header("x-key", "hunter3\r\nInjected: 1")
            })
            .expect_err("invalid value");
        assert_eq!(err.kind(), ErrorKind::InvalidHeaderValue);
        assert!(err.to_string().contains("x-key"), "{err}");
        assert!(!err.to_string().contains("hunter3"), "{err}");
        // Counted from the update's own calls.
        let err = session
            .update(|b| b.header("x-new", "ok").header("bad name", "v"))
            .expect_err("invalid name");
        assert!(err.to_string().contains("header #2"), "{err}");
        let err = session
            .update(|b| b.header("x-new", "ok").origin("https://a.example/path"))
            .expect_err("invalid origin");
        assert_eq!(err.kind(), ErrorKind::InvalidOrigin);

        assert_eq!(described(&layer.headers()), described(&headers));
        assert_eq!(described_all(&behaviour(&layer)), described_all(&before));
    }

    /// Run `f` on another thread and fail (instead of hanging) if it does not finish.
    fn within_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("finished in time: no deadlock")
    }

    #[test]
    fn two_sessions_updated_nested_in_opposite_orders_never_deadlock() {
        use std::sync::mpsc;
        use std::sync::Barrier;
        use std::time::Duration;

        let a = DefaultHeadersLayer::builder()
            .build()
            .expect("valid")
            .handle();
        let b = DefaultHeadersLayer::builder()
            .build()
            .expect("valid")
            .handle();
        let barrier = Arc::new(Barrier::new(2));
        let (done, finished) = mpsc::channel();
        for (outer, inner) in [(a.clone(), b.clone()), (b.clone(), a.clone())] {
            let (barrier, done) = (Arc::clone(&barrier), done.clone());
            std::thread::spawn(move || {
                let mut inner_result = None;
                let outer_result = outer.update(|builder| {
                    // Both threads hold their outer session's lock here.
                    barrier.wait();
                    inner_result = Some(inner.update(|b| b.header("x-inner", "1")));
                    builder.header("x-outer", "1")
                });
                let _ = done.send((outer_result, inner_result));
            });
        }
        let mut inner_errors = 0;
        for _ in 0..2 {
            let (outer, inner) = finished
                .recv_timeout(Duration::from_secs(10))
                .expect("a deadlock: no update finished within 10 s");
            assert!(outer.is_ok(), "{outer:?}");
            if let Some(Err(err)) = inner {
                assert_eq!(err.kind(), ErrorKind::InvalidConfig);
                inner_errors += 1;
            }
        }
        // At least one inner update had to be refused; nothing is stuck afterwards.
        assert!(inner_errors >= 1);
        a.update(|b| b.header("x-after", "1")).expect("not stuck");
        b.update(|b| b.header("x-after", "1")).expect("not stuck");
    }

    #[test]
    fn a_reentrant_update_is_an_error_not_a_deadlock() {
        let layer = DefaultHeadersLayer::builder()
            .header("x-a", "1")
            .build()
            .expect("valid");
        let other = DefaultHeadersLayer::new(HeaderMap::new());
        let (session, other_session) = (layer.handle(), other.handle());
        let inner = within_seconds(move || {
            let mut inner = None;
            let outer = session.update(|b| {
                inner = Some(session.clone().update(|b| b.header("x-inner", "1")));
                // Another session may be updated from here.
                other_session
                    .update(|b| b.header("x-other", "1"))
                    .expect("another session");
                b.header("x-outer", "1")
            });
            outer.expect("the outer update applies");
            // Afterwards, this thread updates the session as usual.
            session.update(|b| b.header("x-after", "1")).expect("after");
            inner.expect("the closure ran")
        });
        let err = inner.expect_err("re-entrant update");
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.to_string().contains("inside the closure"), "{err}");
        let headers = layer.headers();
        assert!(headers.contains_key("x-outer") && headers.contains_key("x-after"));
        assert!(!headers.contains_key("x-inner"));
        assert!(other.headers().contains_key("x-other"));
    }

    #[test]
    fn a_panic_in_update_changes_nothing_and_later_updates_work() {
        let layer = DefaultHeadersLayer::builder()
            .header("x-a", "1")
            .build()
            .expect("valid");
        let session = layer.handle();
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            session.update(|b| {
                let _half_done = b.remove("x-a");
                panic!("the caller's closure panics");
            })
        }));
        assert!(panicked.is_err());
        assert!(
            layer.shared.update.is_poisoned(),
            "the test needs a poisoned lock"
        );
        assert_eq!(values(&layer.headers(), "x-a"), ["1"]);
        // Recovered: no panic, and the update applies (on this thread and on others).
        session.update(|b| b.header("x-b", "2")).expect("recovered");
        let other = session.clone();
        within_seconds(move || other.update(|b| b.header("x-c", "3")))
            .expect("recovered elsewhere");
        let h = layer.headers();
        assert_eq!(values(&h, "x-a"), ["1"]);
        assert_eq!(values(&h, "x-b"), ["2"]);
        assert_eq!(values(&h, "x-c"), ["3"]);
    }

    #[test]
    fn concurrent_updates_are_never_lost() {
        let layer = DefaultHeadersLayer::new(HeaderMap::new());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let session = layer.handle();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        session
                            .update(|b| b.header("x-n", format!("{t}-{i}")))
                            .expect("valid");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("no panic");
        }
        assert_eq!(layer.headers().get_all("x-n").iter().count(), 200);
    }

    fn echo(
    ) -> impl Service<Request<()>, Response = Response<HeaderMap>, Error = Infallible> + Clone {
        service_fn(|req: Request<()>| async move {
            Ok::<_, Infallible>(Response::new(req.headers().clone()))
        })
    }

    #[tokio::test]
    async fn an_update_reaches_every_clone_and_every_service_before_and_after() {
        let layer = DefaultHeadersLayer::builder()
            .header(USER_AGENT, "app/1")
            .build()
            .expect("valid");
        let clone = layer.clone();
        let mut before = layer.layer(echo());
        let mut before_clone = before.clone();
        // A service that never sends a request until after the update.
        let idle = clone.layer(echo());
        clone
            .handle()
            .update(|b| b.remove(USER_AGENT).header(USER_AGENT, "app/2"))
            .expect("valid");
        let after = layer.layer(echo());
        for svc in [&mut before, &mut before_clone] {
            let h = svc
                .ready()
                .await
                .expect("ready")
                .call(Request::new(()))
                .await;
            assert_eq!(h.expect("infallible").body()[USER_AGENT], "app/2");
        }
        for svc in [idle, after] {
            let h = svc.oneshot(Request::new(())).await.expect("infallible");
            assert_eq!(h.body()[USER_AGENT], "app/2");
        }
        assert_eq!(layer.headers()[USER_AGENT], "app/2");
        assert_eq!(layer.handle().headers()[USER_AGENT], "app/2");
    }

    #[test]
    fn debug_never_shows_values() {
        let layer = everything();
        let session = layer.handle();
        let mut inside = String::new();
        session
            .update(|b| {
                let b = b
                    .sensitive_header("x-token", "s3cr3t")
                    .header("x-plain", "pl41n");
                inside = format!("{b:?}");
                b
            })
            .expect("valid");
        let svc = layer.layer(());
        for dbg in [
            inside,
            format!("{session:?}"),
            format!("{session:#?}"),
            format!("{layer:?}"),
            format!("{svc:?}"),
        ] {
            for secret in ["hunter2", "c2VjcmV0", "sid=1", "s3cr3t", "pl41n", "sg-9f1"] {
                assert!(!dbg.contains(secret), "{secret} in {dbg}");
            }
            assert!(
                dbg.contains("x-token") && dbg.contains("x-signature"),
                "{dbg}"
            );
        }
        assert!(format!("{session:?}").starts_with("SessionHandle"));
    }

    #[test]
    fn handles_are_clone_send_sync_static() {
        fn assert_bounds<T: Clone + Send + Sync + fmt::Debug + 'static>() {}
        assert_bounds::<SessionHandle>();
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<super::super::RequestHead<'static>>();
    }
}

//! A `tracing` subscriber that blocks (a full pipe, a slow disk) while it writes an event of
//! ours must not hold up other requests: no event is emitted while the token cache is locked.
//!
//! Its own test binary: tracing caches per-callsite interest process-wide.
#![cfg(feature = "tracing")]

use std::convert::Infallible;
use std::io::Write;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use tower::service_fn;
use tower_client_headers::{BearerAuthLayer, BearerToken, BoxError, Token};
use tower_layer::Layer;
use tracing_subscriber::fmt::MakeWriter;

/// A writer that, on the "token fetch started" event, says so and then blocks until released.
#[derive(Clone)]
struct Blocking {
    entered: Sender<()>,
    release: Arc<Mutex<Receiver<()>>>,
}

impl Write for Blocking {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if String::from_utf8_lossy(buf).contains("token fetch started") {
            let _ = self.entered.send(());
            let _ = self
                .release
                .lock()
                .expect("lock")
                .recv_timeout(Duration::from_secs(60));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Blocking {
    type Writer = Self;

    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

#[test]
fn a_blocked_subscriber_does_not_block_requests_with_a_cached_token() {
    let auth = BearerAuthLayer::from_source(|| async {
        Ok::<_, BoxError>(Token::new(BearerToken::new("t")?).expires_in(Duration::from_secs(3600)))
    });
    let svc = auth
        .clone()
        .layer(service_fn(|req: Request<()>| async move {
            Ok::<_, Infallible>(Response::new(req.headers().contains_key("authorization")))
        }));
    let send = |svc: &_| {
        futures::executor::block_on(tower::ServiceExt::<Request<()>>::oneshot(
            Clone::clone(svc),
            Request::get("https://api.example.com/")
                .body(())
                .expect("request"),
        ))
    };
    assert!(send(&svc).expect("the first fetch").into_body());

    // Thread A: `refresh()` with a subscriber that blocks in "token fetch started".
    let (entered_tx, entered) = channel();
    let (release, release_rx) = channel();
    let writer = Blocking {
        entered: entered_tx,
        release: Arc::new(Mutex::new(release_rx)),
    };
    let refresher = {
        let auth = auth.clone();
        std::thread::spawn(move || {
            let subscriber = tracing_subscriber::fmt()
                .with_writer(writer)
                .with_max_level(tracing::Level::DEBUG)
                .finish();
            let _guard = tracing::subscriber::set_default(subscriber);
            futures::executor::block_on(auth.refresh())
        })
    };
    entered
        .recv_timeout(Duration::from_secs(20))
        .expect("the refresh emitted no \"token fetch started\" event");

    // Thread B, while A's subscriber is stuck: the cached token, at once.
    let (done_tx, done) = channel();
    let other = svc.clone();
    std::thread::spawn(move || {
        let _ = done_tx.send(
            send(&other)
                .map(Response::into_body)
                .map_err(|e| e.to_string()),
        );
    });
    let sent = done.recv_timeout(Duration::from_secs(20));
    let _ = release.send(());
    assert_eq!(
        sent.expect("a request waited for a blocked subscriber: the cache was locked"),
        Ok(true)
    );
    refresher.join().expect("thread").expect("refreshed");
}

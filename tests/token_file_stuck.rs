//! A token file whose read never returns (a hung network mount; here a FIFO with no writer):
//! at most one blocking thread is ever stuck on it, and the fetches after it fail fast,
//! saying so. Alone in its binary, as it counts the process's threads.
#![cfg(target_os = "linux")]

use std::time::Duration;

use tower_client_headers::sources::TokenFile;
use tower_client_headers::BearerAuthLayer;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").expect("/proc").count()
}

#[test]
fn a_stuck_read_holds_one_thread_and_later_fetches_fail_fast() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let layer = BearerAuthLayer::builder()
        .source(TokenFile::new(&path))
        .fetch_timeout(Duration::from_millis(100))
        .build()
        .expect("layer");
    let before = threads();
    let errors: Vec<String> = rt.block_on(async {
        let mut errors = Vec::new();
        for _ in 0..8 {
            let err = layer.refresh().await.expect_err("nothing to read");
            errors.push(format!("{err}: {:?}", std::error::Error::source(&err)));
        }
        errors
    });
    let stuck = threads() - before;
    // Unblock the reader (open the FIFO for writing, then close it) so the runtime can stop.
    let _ = std::process::Command::new("timeout")
        .args(["5", "sh", "-c"])
        .arg(format!("exec 3>'{}'", path.display()))
        .status();
    drop(rt);
    assert!(stuck <= 2, "{stuck} threads stuck after 8 timed-out reads");
    assert!(
        errors
            .iter()
            .skip(1)
            .any(|e| e.contains("has not returned")),
        "{errors:#?}"
    );
}

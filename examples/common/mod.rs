//! Shared by the examples: an echo server on `127.0.0.1:0` and a small table printer.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;

use axum::http::HeaderMap;
use axum::{Json, Router};
use http_body_util::BodyExt;
use tower_client_headers::BoxError;

/// Start a server on `127.0.0.1:0` that answers every request with the headers it received,
/// as a JSON list of `[name, value]` pairs in order.
pub async fn echo_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let app = Router::new().fallback(|headers: HeaderMap| async move {
        Json(
            headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect::<Vec<_>>(),
        )
    });
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    addr
}

/// Headers as the echo server reports them.
pub type Received = Vec<(String, String)>;

/// Read the echo server's answer: the headers it received.
pub async fn received<B>(response: http::Response<B>) -> Result<Received, BoxError>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let body = response.into_body().collect().await.map_err(Into::into)?;
    Ok(serde_json::from_slice(&body.to_bytes())?)
}

/// All values of `name`, comma-separated, or `-`.
pub fn values(received: &Received, name: &str) -> String {
    let all: Vec<&str> = received
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect();
    if all.is_empty() {
        "-".to_owned()
    } else {
        all.join(", ")
    }
}

/// Print rows under a header line, each column as wide as its widest cell.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("  {}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    line(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    );
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

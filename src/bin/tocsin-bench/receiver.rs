//! The benchmark's receiver: records when each delivery arrived, its `webhook-id` and the
//! event it carries, and answers 200 at once. Plus a listener that accepts connections and
//! never answers, for the isolation scenario.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Instant,
};

use axum::{body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post, Router};
use tokio::net::TcpListener;

pub struct Arrival {
    pub webhook_id: String,
    pub event: String,
    pub at: Instant,
}

#[derive(Default)]
pub struct Inbox {
    pub arrivals: Mutex<Vec<Arrival>>,
    pub count: AtomicUsize,
    pub baseline: AtomicUsize,
}

/// The producer's event id, which tocsin puts first in the v2 body: `{"version":"v2","event":{"id":"…"`.
/// Through a source that names events itself (Alertmanager), the first `bench-N` anywhere
/// in the body (the alert's instance label) stands for it.
fn event_id(body: &[u8]) -> String {
    let text = std::str::from_utf8(body).unwrap_or("");
    let first = text
        .split_once("\"id\":\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(id, _)| id.to_owned())
        .unwrap_or_default();
    if first.starts_with("bench-") {
        return first;
    }
    text.split_once("bench-")
        .map(|(_, rest)| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            format!("bench-{digits}")
        })
        .unwrap_or(first)
}

async fn delivery(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let at = Instant::now();
    let webhook_id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let arrival = Arrival {
        webhook_id,
        event: event_id(&body),
        at,
    };
    inbox.arrivals.lock().unwrap().push(arrival);
    inbox.count.fetch_add(1, Ordering::Relaxed);
    StatusCode::OK
}

async fn baseline(State(inbox): State<Arc<Inbox>>, _body: Bytes) -> StatusCode {
    inbox.baseline.fetch_add(1, Ordering::Relaxed);
    StatusCode::OK
}

/// Serves on `listener` until the process ends.
pub fn serve(listener: TcpListener, inbox: Arc<Inbox>) {
    let app = Router::new()
        .route("/hook/{n}", post(delivery))
        .route("/baseline", post(baseline))
        .with_state(inbox);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
}

/// Accepts connections and never answers: a receiver that hangs.
pub async fn black_hole() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    address
}

//! The HTTP server's own limits: a connection that dribbles its headers is closed after the
//! header-read timeout, a keep-alive connection resting between requests after the (longer)
//! idle timeout, and connections past the cap are closed at once.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{spawn_app_with, Backend, DEADLINE};

fn address(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

/// Waits (with the test deadline) until the server closes the connection: read gives
/// end-of-file or an error.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 1024];
    tokio::time::timeout(DEADLINE, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue, // e.g. a 408 answer before closing
            }
        }
    })
    .await
    .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| {
        c.http.header_read_timeout = Duration::from_secs(1);
    })
    .await
    else {
        return;
    };
    let mut slow = TcpStream::connect(address(&app.address)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Never finishes the headers: the server must hang up.
    assert!(
        closed_by_server(&mut slow).await,
        "a dribbling connection stayed open"
    );
    // A prompt request on a new connection is served.
    let mut quick = TcpStream::connect(address(&app.address)).await.unwrap();
    quick
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    quick.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// Sends one request on the connection and reads its whole (small) answer.
async fn served(stream: &mut TcpStream) {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 1024];
    let n = stream.read(&mut buffer).await.unwrap();
    let answer = String::from_utf8_lossy(&buffer[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resting_connections_get_the_idle_timeout_and_requests_the_header_timeout() {
    const HEADERS: Duration = Duration::from_millis(400);
    const IDLE: Duration = Duration::from_millis(2500);
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| {
        c.http.header_read_timeout = HEADERS;
        c.http.idle_timeout = IDLE;
    })
    .await
    else {
        return;
    };
    // A keep-alive connection resting after its answer stays open well past the header
    // timeout and is closed at the idle timeout.
    let mut resting = TcpStream::connect(address(&app.address)).await.unwrap();
    served(&mut resting).await;
    let answered = std::time::Instant::now();
    assert!(closed_by_server(&mut resting).await, "never closed");
    let rested = answered.elapsed();
    assert!(
        rested >= IDLE - Duration::from_millis(100),
        "closed after {rested:?}, before the idle timeout"
    );
    // Once the next request's first bytes arrive, its head is due within the header timeout.
    let mut dribbling = TcpStream::connect(address(&app.address)).await.unwrap();
    served(&mut dribbling).await;
    dribbling
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert!(closed_by_server(&mut dribbling).await, "never closed");
    let waited = started.elapsed();
    assert!(
        waited >= HEADERS - Duration::from_millis(50) && waited < IDLE,
        "a started request was cut off after {waited:?}, not the header timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| {
        c.http.max_connections = 3;
    })
    .await
    else {
        return;
    };
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(address(&app.address)).await.unwrap();
        // A served request proves the connection holds a place.
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buffer = [0u8; 512];
        let n = s.read(&mut buffer).await.unwrap();
        assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    let mut fourth = TcpStream::connect(address(&app.address)).await.unwrap();
    let _ = fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert!(
        closed_by_server(&mut fourth).await,
        "the fourth connection was served"
    );
    // A place frees when a connection ends.
    drop(held.pop());
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let mut again = TcpStream::connect(address(&app.address)).await.unwrap();
        let _ = again
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
        let mut answer = String::new();
        let _ = again.read_to_string(&mut answer).await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the freed place was never reused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

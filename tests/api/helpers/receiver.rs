//! A real HTTP receiver on 127.0.0.1:0 that records every request and answers what the
//! test scripted (per path), 200 otherwise.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    Router,
};
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// One text field of `data.resource_data` (the incident) in each v2 body received, in
/// arrival order.
pub fn resource_data(got: &[Received], field: &str) -> Vec<String> {
    got.iter()
        .map(|r| {
            r.json()["data"]["resource_data"][field]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    /// Answer only after this long (a slow or hanging receiver).
    pub delay: Option<Duration>,
    /// The answer's body (default: a short text).
    pub body: &'static [u8],
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            delay: None,
            body: b"receiver says hi",
        }
    }
}

/// Decides an answer from the request and everything received before it.
pub type Responder = Arc<dyn Fn(&Received, &[Received]) -> Reply + Send + Sync>;

#[derive(Default)]
struct Inner {
    received: Mutex<Vec<Received>>,
    scripts: Mutex<HashMap<String, VecDeque<Reply>>>,
    responders: Mutex<HashMap<String, Responder>>,
    arrived: Notify,
}

pub struct Receiver {
    pub base: String,
    inner: Arc<Inner>,
}

async fn record(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let request = Received {
        method,
        path: path.clone(),
        headers,
        body,
        at: Instant::now(),
    };
    let responder = inner.responders.lock().unwrap().get(&path).cloned();
    let reply = match responder {
        Some(decide) => decide(&request, &inner.received.lock().unwrap()),
        None => inner
            .scripts
            .lock()
            .unwrap()
            .get_mut(&path)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Reply::status(200)),
    };
    inner.received.lock().unwrap().push(request);
    inner.arrived.notify_waiters();
    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::start_on(0).await
    }

    /// On a given port, to bring a receiver "back up" where one was down.
    pub async fn start_on(port: u16) -> Receiver {
        let inner = Arc::new(Inner::default());
        let app = Router::new().fallback(record).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { base, inner }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The next answers for `path`, in order; 200 after they run out.
    pub fn script(&self, path: &str, replies: Vec<Reply>) {
        self.inner
            .scripts
            .lock()
            .unwrap()
            .insert(path.to_owned(), replies.into());
    }

    /// Answers for `path` decided by a function instead of a list.
    pub fn respond(
        &self,
        path: &str,
        decide: impl Fn(&Received, &[Received]) -> Reply + Send + Sync + 'static,
    ) {
        self.inner
            .responders
            .lock()
            .unwrap()
            .insert(path.to_owned(), Arc::new(decide));
    }

    /// `path` answers `status` until the returned switch is turned on, then 200.
    pub fn failing_until(&self, path: &str, status: u16) -> Switch {
        let on = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = on.clone();
        self.respond(path, move |_, _| {
            Reply::status(if seen.load(std::sync::atomic::Ordering::SeqCst) {
                200
            } else {
                status
            })
        });
        Switch(on)
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        self.inner
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Waits (at most `DEADLINE`) until `path` received at least `n` requests.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Received> {
        self.wait_for_within(path, n, crate::helpers::DEADLINE)
            .await
    }

    /// Waits at most `within` until `path` received at least `n` requests.
    pub async fn wait_for_within(&self, path: &str, n: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.inner.arrived.notified();
            let got = self.received(path);
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "{path}: expected {n} requests, got {} before the deadline",
                    got.len()
                );
            }
        }
    }
}

/// Turns a [`Receiver::failing_until`] path back to answering 200.
#[derive(Clone)]
pub struct Switch(Arc<std::sync::atomic::AtomicBool>);

impl Switch {
    pub fn on(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

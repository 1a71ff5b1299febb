//! A TCP relay in front of PostgreSQL that, once armed with a marker, lets the next
//! transaction that sends it (a value bound to a statement: prepared statements are sent by
//! name, so their text may not be on the wire) commit on the server, and then drops the
//! client's connection before the answer to its `COMMIT` reaches it: a connection lost at
//! the one moment where the client cannot know whether its write happened. Or, armed to
//! cut before, drops the connection instead of passing the marked message on.

use std::sync::{
    atomic::{AtomicBool, AtomicUsize, Ordering},
    Arc, Mutex,
};

use tocsin::config::Config;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

#[derive(Default)]
struct Shared {
    /// Where PostgreSQL listens (`host:port`), taken from the configuration it routes.
    upstream: Mutex<String>,
    marker: Mutex<Vec<u8>>,
    /// Cut before the marked message reaches the server, instead of after the commit.
    before: AtomicBool,
    armed: AtomicBool,
    cuts: AtomicUsize,
}

pub struct CommitCutter {
    port: u16,
    shared: Arc<Shared>,
}

impl CommitCutter {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let relay_shared = shared.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = relay_shared.upstream.lock().unwrap().clone();
                let shared = relay_shared.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        relay(client, server, &shared).await;
                    }
                });
            }
        });
        Self { port, shared }
    }

    /// Points `config`'s PostgreSQL URL at the relay, which forwards to where it pointed.
    pub fn route(&self, config: &mut Config) {
        let mut url = url::Url::parse(&config.database_url).expect("a PostgreSQL URL");
        let upstream = format!(
            "{}:{}",
            url.host_str().expect("a host"),
            url.port().unwrap_or(5432)
        );
        *self.shared.upstream.lock().unwrap() = upstream;
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.port)).unwrap();
        // In clear, so the relay can read the protocol (the server may offer TLS).
        url.query_pairs_mut().append_pair("sslmode", "disable");
        config.database_url = url.to_string();
    }

    /// The next transaction that sends `marker` is cut once its `COMMIT` was answered.
    pub fn arm(&self, marker: &str) {
        self.arm_cut(marker, false);
    }

    /// The next connection that sends `marker` is cut before it reaches the server: a
    /// connection that died in the pool, found dead on its next use.
    pub fn arm_before(&self, marker: &str) {
        self.arm_cut(marker, true);
    }

    fn arm_cut(&self, marker: &str, before: bool) {
        *self.shared.marker.lock().unwrap() = marker.as_bytes().to_vec();
        self.shared.before.store(before, Ordering::SeqCst);
        self.shared.armed.store(true, Ordering::SeqCst);
    }

    /// How many connections were cut.
    pub fn cuts(&self) -> usize {
        self.shared.cuts.load(Ordering::SeqCst)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn relay(mut client: TcpStream, mut server: TcpStream, shared: &Shared) {
    let (mut from_client, mut from_server) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    // This connection's transaction sent the marker while armed; its COMMIT was sent.
    let (mut marked, mut committing) = (false, false);
    loop {
        tokio::select! {
            read = client.read(&mut from_client) => {
                let n = match read { Ok(0) | Err(_) => return, Ok(n) => n };
                let chunk = &from_client[..n];
                if shared.armed.load(Ordering::SeqCst)
                    && contains(chunk, &shared.marker.lock().unwrap())
                {
                    if shared.before.load(Ordering::SeqCst)
                        && shared.armed.swap(false, Ordering::SeqCst)
                    {
                        shared.cuts.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    marked = true;
                }
                // The simple protocol's `Query` message: the text, NUL-terminated.
                if marked && contains(chunk, b"COMMIT\0") {
                    committing = true;
                }
                if server.write_all(chunk).await.is_err() {
                    return;
                }
            }
            read = server.read(&mut from_server) => {
                let n = match read { Ok(0) | Err(_) => return, Ok(n) => n };
                let chunk = &from_server[..n];
                // The server's `CommandComplete` for that COMMIT: committed. Nothing of the
                // answer is passed on; both connections close as this returns. (Cut once: a
                // second connection's commit meanwhile goes through.)
                if committing && contains(chunk, b"COMMIT\0") {
                    (marked, committing) = (false, false);
                    if shared.armed.swap(false, Ordering::SeqCst) {
                        shared.cuts.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
                if client.write_all(chunk).await.is_err() {
                    return;
                }
            }
        }
    }
}

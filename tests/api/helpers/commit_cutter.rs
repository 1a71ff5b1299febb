//! A TCP relay in front of PostgreSQL that, once armed with a marker, lets the next
//! transaction that sends it (a value bound to a statement: prepared statements are sent by
//! name, so their text may not be on the wire) commit on the server, and then drops the
//! client's connection before the answer to its `COMMIT` reaches it: a connection lost at
//! the one moment where the client cannot know whether its write happened. Or, armed to
//! cut before, drops the connection instead of passing the marked message on. Or takes
//! PostgreSQL away altogether ([`CommitCutter::go_down`]: every connection is dropped and
//! new ones are closed at once; [`CommitCutter::go_silent`]: nothing passes either way, as
//! in a network partition), until [`CommitCutter::come_back`].

use std::sync::{
    atomic::{AtomicBool, AtomicUsize, Ordering},
    Arc, Mutex,
};

use tocsin::config::Config;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    Up,
    /// Connections dropped, new ones closed at once.
    Down,
    /// Connections kept open, nothing passed on: every call waits.
    Silent,
}

struct Shared {
    /// Whether PostgreSQL is reachable now.
    down: tokio::sync::watch::Sender<Reach>,
    /// Where PostgreSQL listens (`host:port`), taken from the configuration it routes.
    upstream: Mutex<String>,
    marker: Mutex<Vec<u8>>,
    /// Cut before the marked message reaches the server, instead of after the commit.
    before: AtomicBool,
    /// Pass the marked message on, then nothing more either way: the node behind the
    /// connection froze inside its transaction.
    freeze: AtomicBool,
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
        let shared = Arc::new(Shared {
            down: tokio::sync::watch::channel(Reach::Up).0,
            upstream: Mutex::default(),
            marker: Mutex::default(),
            before: AtomicBool::default(),
            freeze: AtomicBool::default(),
            armed: AtomicBool::default(),
            cuts: AtomicUsize::default(),
        });
        let relay_shared = shared.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                match *relay_shared.down.borrow() {
                    Reach::Up => {}
                    Reach::Down => continue,
                    Reach::Silent => {
                        // Held open until PostgreSQL is reachable again, answering nothing.
                        let mut reach = relay_shared.down.subscribe();
                        tokio::spawn(async move {
                            let _held = client;
                            let _ = reach.wait_for(|r| *r == Reach::Up).await;
                        });
                        continue;
                    }
                }
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

    /// The next connection that sends `marker` passes it on and then freezes: its
    /// transaction stays open on the server, holding its locks, as a node paused inside it
    /// (SIGSTOP) would leave it. Counted as a cut.
    pub fn arm_freeze(&self, marker: &str) {
        self.shared.freeze.store(true, Ordering::SeqCst);
        self.arm_cut(marker, false);
    }

    fn arm_cut(&self, marker: &str, before: bool) {
        *self.shared.marker.lock().unwrap() = marker.as_bytes().to_vec();
        self.shared.before.store(before, Ordering::SeqCst);
        self.shared.armed.store(true, Ordering::SeqCst);
    }

    /// `config` as it was before [`CommitCutter::route`]: straight to PostgreSQL.
    pub fn unroute(&self, config: &mut Config) {
        let mut url = url::Url::parse(&config.database_url).expect("a PostgreSQL URL");
        let upstream = self.shared.upstream.lock().unwrap().clone();
        let (host, port) = upstream.rsplit_once(':').expect("host:port");
        url.set_host(Some(host)).unwrap();
        url.set_port(Some(port.parse().unwrap())).unwrap();
        config.database_url = url.to_string();
    }

    /// PostgreSQL goes away: open connections drop, new ones are closed at once.
    pub fn go_down(&self) {
        self.shared.down.send_replace(Reach::Down);
    }

    /// PostgreSQL stops answering (a partition): open connections and new ones are held,
    /// nothing passes.
    pub fn go_silent(&self) {
        self.shared.down.send_replace(Reach::Silent);
    }

    /// And is back.
    pub fn come_back(&self) {
        self.shared.down.send_replace(Reach::Up);
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
    let mut down = shared.down.subscribe();
    loop {
        let reach = *down.borrow_and_update();
        match reach {
            Reach::Up => {}
            Reach::Down => return,
            Reach::Silent => {
                // Dropped once the partition heals: the other end's connection is long dead.
                let _ = down.wait_for(|r| *r != Reach::Silent).await;
                return;
            }
        }
        tokio::select! {
            _ = down.changed() => continue,
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
                    if shared.freeze.load(Ordering::SeqCst)
                        && shared.armed.swap(false, Ordering::SeqCst)
                    {
                        let _ = server.write_all(chunk).await;
                        shared.cuts.fetch_add(1, Ordering::SeqCst);
                        // Frozen: both ends held open, nothing passed, until the cutter's
                        // reach changes.
                        let _ = down.changed().await;
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

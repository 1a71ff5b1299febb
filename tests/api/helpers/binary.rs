//! The real binary: `tocsin serve` as a child process (started, read, stopped or killed
//! with deadlines) and one-shot commands.

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex},
    time::Duration,
};

use super::DEADLINE;

pub const BIN: &str = env!("CARGO_BIN_EXE_tocsin");

pub struct Server {
    child: Child,
    pub url: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts `tocsin serve` and waits (with a deadline) for it to say where it listens.
    pub fn start(database_url: &str) -> Server {
        Self::start_with(database_url, &[])
    }

    /// The same with extra environment variables (settings).
    pub fn start_with(database_url: &str, env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ])
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(String::new()));
        let log_sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Logged before the address is handed over, so the start line is in the
                // log once `start` returns.
                {
                    let mut log = log_sink.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
                // A text line ends with the address; in a JSON line a quote follows it.
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let url = rest.split(['"', ' ']).next().unwrap_or("").trim();
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let stdout = Arc::new(Mutex::new(String::new()));
        let sink = stdout.clone();
        let mut out = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = out.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        let url = rx
            .recv_timeout(DEADLINE)
            .expect("server reports its address");
        Server {
            child,
            url,
            stdout,
            stderr: log,
            reader: Some(reader),
        }
    }

    /// Everything printed on standard output so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Everything logged so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The node's name from its start line (what `deliveries.lease_owner` holds for it).
    pub fn node(&self) -> String {
        let log = self.stderr();
        let line = log
            .lines()
            .find(|l| l.contains("listening on "))
            .expect("the start line is logged before `start` returns");
        let rest = line
            .split("; node ")
            .nth(1)
            .expect("the start line names the node");
        rest.trim_end_matches(')').to_owned()
    }

    /// The owner token a first start prints (waits for it with a deadline).
    pub fn owner_token(&self) -> String {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            if let Some(token) = find_token(&self.stdout.lock().unwrap()) {
                return token;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no owner token printed"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then the exit status and everything printed on standard output.
    pub fn stop(mut self) -> (bool, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = wait_with_deadline(&mut self.child);
        // The reader sees end-of-file once the process is gone.
        let _ = self.reader.take().unwrap().join();
        let out = self.stdout.lock().unwrap().clone();
        (status.success(), out)
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        wait_with_deadline(&mut self.child);
    }
}

pub fn wait_with_deadline(child: &mut Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "server did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn tocsin(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().expect("binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub async fn get_status(url: &str, token: &str) -> u16 {
    crate::helpers::http_client()
        .get(format!("{url}/v3/extensions/event-webhooks"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

pub fn find_token(text: &str) -> Option<String> {
    text.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_'))
        .find(|w| tocsin::domain::token::looks_like_token(w))
        .map(str::to_owned)
}

/// POSTs a JSON body with a bearer token to a server process; its status and JSON answer.
pub async fn post_json(
    client: &reqwest::Client,
    url: String,
    token: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = client
        .post(url)
        .bearer_auth(token)
        .body(body.to_string())
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON answer, got {text:?}"));
    (status, body)
}

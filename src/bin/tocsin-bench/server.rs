//! `tocsin serve` as a separate process, as an operator runs it.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

pub struct Tocsin {
    child: Child,
    pub url: String,
    pub token: String,
    /// The sealing key every node of the run shares.
    key: String,
}

/// `token create` initialises an empty database and works on any; prints the token alone.
fn create_token(binary: &Path, database_url: &str, key: &str) -> anyhow::Result<String> {
    let out = Command::new(binary)
        .args([
            "token",
            "create",
            "--name",
            "bench",
            "--abilities",
            "admin",
            "--database-url",
            database_url,
        ])
        .env("TOCSIN_SECRET_KEY", key)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "token create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// The `tocsin` binary beside this one, built (release) if it is missing.
pub fn binary(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path);
    }
    let me = std::env::current_exe()?;
    let sibling = me.with_file_name("tocsin");
    if !sibling.exists() {
        eprintln!("building tocsin (cargo build --release --bin tocsin)…");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--bin", "tocsin"])
            .status()?;
        anyhow::ensure!(
            status.success(),
            "cargo build --release --bin tocsin failed"
        );
    }
    Ok(sibling)
}

impl Tocsin {
    /// Starts one node on a fresh database, with a key and a token of the run's own.
    pub fn start(
        binary: &Path,
        database_url: &str,
        settings: &[(&str, String)],
    ) -> anyhow::Result<Tocsin> {
        // A key of the run's own, so no tocsin.key is left in the working directory (which
        // is where it would go for PostgreSQL).
        let key = tocsin::domain::sealing::SecretKey::generate().to_base64();
        let token = create_token(binary, database_url, &key)?;
        Self::start_node(binary, database_url, settings, key, token)
    }

    /// Another node on the same database, with the first one's key and token.
    pub fn another(
        &self,
        binary: &Path,
        database_url: &str,
        settings: &[(&str, String)],
    ) -> anyhow::Result<Tocsin> {
        Self::start_node(
            binary,
            database_url,
            settings,
            self.key.clone(),
            self.token.clone(),
        )
    }

    fn start_node(
        binary: &Path,
        database_url: &str,
        settings: &[(&str, String)],
        key: String,
        token: String,
    ) -> anyhow::Result<Tocsin> {
        let mut child = Command::new(binary)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ])
            .env("RUST_LOG", "warn")
            .env("TOCSIN_SECRET_KEY", &key)
            // The load is the point: no per-token limit.
            .env("TOCSIN_HTTP__RATE_LIMIT", "0")
            .env("TOCSIN_HTTP__INTAKE_RATE_LIMIT", "0")
            .envs(settings.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    // The address, then "(N async worker threads)".
                    let url = rest.split_whitespace().next().unwrap_or("");
                    let _ = tx.send(url.to_owned());
                } else {
                    eprintln!("tocsin: {line}");
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| anyhow::anyhow!("tocsin did not start within 60 s"))?;
        Ok(Tocsin {
            child,
            url,
            token,
            key,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory so far (VmHWM), in MB.
    pub fn peak_rss_mb(&self) -> f64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// User plus system CPU time so far, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let t = proc_times(self.pid()).unwrap_or_default();
        t.own / clock_ticks()
    }

    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// A process's CPU time in clock ticks: its own, and that of its children it has waited
/// for (which is where an exited child's time goes).
#[derive(Default)]
struct ProcTimes {
    own: f64,
    children: f64,
    parent: u32,
}

fn proc_times(pid: u32) -> Option<ProcTimes> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at state.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let number = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    Some(ProcTimes {
        own: number(11)? + number(12)?,
        children: number(13)? + number(14)?,
        parent: number(1)? as u32,
    })
}

/// PostgreSQL's CPU time so far on this machine, in seconds: every `postgres` process's
/// own, plus each postmaster's exited children (backends that have ended). `None` when no
/// PostgreSQL runs here (a remote server cannot be measured this way). It counts every
/// database's work, so nothing else should use this PostgreSQL during a run.
pub fn postgres_cpu_seconds() -> Option<f64> {
    let processes: Vec<(u32, ProcTimes)> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        })
        .filter_map(|pid| Some((pid, proc_times(pid)?)))
        .collect();
    let pids: Vec<u32> = processes.iter().map(|(pid, _)| *pid).collect();
    // Each cluster's postmaster: a `postgres` process whose parent is not one.
    let ended: f64 = processes
        .iter()
        .filter(|(_, t)| !pids.contains(&t.parent))
        .map(|(_, t)| t.children)
        .sum();
    let own: f64 = processes.iter().map(|(_, t)| t.own).sum();
    (!processes.is_empty()).then(|| (own + ended) / clock_ticks())
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

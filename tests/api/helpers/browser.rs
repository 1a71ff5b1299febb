//! Pages in a real browser: headless Chromium driven over WebDriver (chromedriver) against
//! the real server on 127.0.0.1:0. Each test writes screenshots of the pages it visits to
//! `target/ui-screenshots/`. Without Chromium, each test prints a `SKIPPED in the browser`
//! line (`.ci/run` installs it).

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use fantoccini::{elements::Element, Client, ClientBuilder, Locator};
use serde_json::json;

use crate::helpers::DEADLINE;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    base: String,
}

pub fn screenshot_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots")
}

impl Browser {
    /// A fresh headless Chromium pointed at `base`; `None`, with a printed line (a failure
    /// under `CI=true`), when Chromium or its driver is not installed.
    pub async fn start(base: &str, test: &str) -> Option<Browser> {
        if !std::path::Path::new(CHROMIUM).exists() || !std::path::Path::new(CHROMEDRIVER).exists()
        {
            super::skipped(&format!(
                "SKIPPED in the browser: {test} ({CHROMIUM} or {CHROMEDRIVER} is missing; .ci/run installs the Debian packages chromium and chromium-driver)"
            ));
            return None;
        }
        let mut driver = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let stdout = driver.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.split("started successfully on port ").nth(1) {
                    let _ = tx.send(port.trim_end_matches('.').trim().to_owned());
                }
            }
        });
        let port = rx
            .recv_timeout(DEADLINE)
            .expect("chromedriver reports its port");
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1280,1000".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({"binary": CHROMIUM, "args": args}),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session");
        Some(Browser {
            client,
            driver,
            _profile: profile,
            base: base.to_owned(),
        })
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("page loads");
    }

    /// Waits (with the test deadline) for an element.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(DEADLINE)
            .every(Duration::from_millis(50))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .map_or(0, |v| v.len())
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        el.clear().await.expect("clear");
        el.send_keys(text).await.expect("type");
    }

    pub async fn select(&self, css: &str, value: &str) {
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("select {value} in {css}: {e}"));
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("text")
    }

    /// Waits until the page body contains `needle`.
    pub async fn wait_text(&self, needle: &str) {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            // The page may be replaced between finding the body and reading it (a
            // navigation, an htmx swap): that is "not yet", not a failure.
            let body = match self.client.find(Locator::Css("body")).await {
                Ok(el) => el.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if body.contains(needle) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "page never showed {needle:?}; it shows:\n{body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves the page as `target/ui-screenshots/{name}.png`, tall enough for all of it.
    pub async fn screenshot(&self, name: &str) {
        let height = self
            .client
            .execute("return document.documentElement.scrollHeight", vec![])
            .await
            .ok()
            .and_then(|v| v.as_u64())
            .unwrap_or(1000)
            .clamp(400, 4000) as u32;
        let (width, _) = self.client.get_window_size().await.unwrap_or((1280, 1000));
        let _ = self
            .client
            .set_window_size(width as u32, height + 120)
            .await;
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
        let _ = self.client.set_window_size(width as u32, 1000).await;
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

//! The load generator: `n` POSTs with `concurrency` workers, as fast as they are taken or on
//! a fixed schedule. The same generator measures the raw baseline and drives tocsin.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

pub struct Load {
    /// Request `i` goes to `urls[i % urls.len()]` (several nodes: round-robin).
    pub urls: Vec<String>,
    pub token: Option<String>,
    pub n: usize,
    pub concurrency: usize,
    /// Requests per second; `None` means as fast as they are taken.
    pub rate: Option<f64>,
}

pub struct Outcome {
    /// When request `i` was sent (its scheduled time under a fixed rate).
    pub sent: Vec<Instant>,
    pub started: Instant,
    pub finished: Instant,
}

impl Outcome {
    pub fn per_second(&self) -> f64 {
        self.sent.len() as f64 / (self.finished - self.started).as_secs_f64()
    }
}

pub async fn run(
    client: &reqwest::Client,
    load: &Load,
    body: impl Fn(usize) -> String + Send + Sync + 'static,
    done: Arc<AtomicUsize>,
) -> anyhow::Result<Outcome> {
    let body = Arc::new(body);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..load.concurrency {
        let (client, body, next, done) = (client.clone(), body.clone(), next.clone(), done.clone());
        let (urls, token, n, rate) = (load.urls.clone(), load.token.clone(), load.n, load.rate);
        workers.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(sent);
                }
                let at = match rate {
                    Some(rate) => {
                        let due = started + Duration::from_secs_f64(i as f64 / rate);
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => Instant::now(),
                };
                let mut request = client
                    .post(&urls[i % urls.len()])
                    .header("content-type", "application/json")
                    .body(body(i));
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await?;
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                anyhow::ensure!(status.is_success(), "request {i} answered {status}: {text}");
                sent.push((i, at));
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut sent = vec![started; load.n];
    for worker in workers {
        for (i, at) in worker.await?? {
            sent[i] = at;
        }
    }
    Ok(Outcome {
        sent,
        started,
        finished: Instant::now(),
    })
}

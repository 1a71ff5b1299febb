//! The one HTTP client for all deliveries: connections are reused per receiver, redirects
//! are not followed, and every resolved address passes the SSRF guard.

use std::{sync::Arc, time::Duration};

use super::guard::{GuardedResolver, NetworkPolicy};

pub fn build(policy: Arc<NetworkPolicy>) -> anyhow::Result<reqwest::Client> {
    // reqwest is built without a TLS provider of its own; ring is ours. Installing twice is
    // harmless (the second call reports the first).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .no_proxy()
        .build()?;
    Ok(client)
}

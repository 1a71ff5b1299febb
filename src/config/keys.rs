//! Every setting's one-line meaning, as `tocsin config` prints it above each key.

/// Every key with its one-line meaning. `tocsin config` prints these; a unit test keeps
/// this list and the struct in step.
pub const KEYS: &[(&str, &str)] = &[
    ("listen", "Address and port the HTTP API listens on."),
    (
        "database_url",
        "sqlite://PATH (embedded, created if missing) or postgres://USER@HOST/DB.",
    ),
    (
        "public_url",
        "Address people use to reach tocsin, for links in e-mails; empty means http://<listen>.",
    ),
    (
        "log_format",
        "text, or json for one JSON object per line (timestamp, level, target, fields); the level follows RUST_LOG.",
    ),
    (
        "metrics_listen",
        "Address and port serving GET /metrics without authentication, for Prometheus (keep it private); empty: off. /metrics on listen always needs the read ability.",
    ),
    (
        "secret_key",
        "Key that seals webhook secrets, credential headers and URL passwords in the database (base64 of 32 bytes); empty means tocsin.key beside the SQLite file, generated on first start. Nodes on one PostgreSQL must share it.",
    ),
    (
        "worker_threads",
        "Threads running the async work (HTTP, matching, rendering, sending); 0 means half the machine's cores, at least one, leaving the rest to the database and the network.",
    ),
    (
        "delivery.allowed_networks",
        "CIDRs that webhooks may reach although private or loopback, e.g. [\"10.0.0.0/8\"].",
    ),
    (
        "delivery.retry_schedule",
        "Waits before retry 1, 2, …; the last repeats. Durations like 10s, 5m, 1h.",
    ),
    (
        "delivery.concurrency",
        "Most HTTP calls in flight at once, over all URLs.",
    ),
    (
        "delivery.per_url_concurrency",
        "Most HTTP calls in flight at once to one URL.",
    ),
    (
        "delivery.shutdown_grace",
        "On SIGTERM, how long attempts in flight may finish before their leases are given back.",
    ),
    (
        "delivery.max_age",
        "A delivery still pending this long after it was made (retrying, parked behind an open circuit or its lane) fails as expired, and is e-mailed like any failure.",
    ),
    (
        "delivery.disable_after",
        "A webhook whose every URL has failed this long without one success is disabled (and its failure addresses told); 0s never.",
    ),
    (
        "delivery.record_linger",
        "How long attempt results wait for company before they are written (one commit for many at low rates; 0s writes each at once); a lane's next delivery may start that much later (at most 1s).",
    ),
    (
        "delivery.lease",
        "How long a node's claim on a delivery lasts: a node that dies mid-attempt has its deliveries taken over by another this long after its claim (an attempt's claim always covers its timeout and 30s more); at least 1s, at most 10m.",
    ),
    (
        "delivery.intake_linger",
        "How long a received event may wait for the next one so that both are stored in one commit; only when the last tenth of a second's rate brings half an event to four within one wait (250 to 2,000 events/s at 2ms), and not right after a wait that caught none; the sender's answer waits that much longer (0s never waits; at most 100ms).",
    ),
    (
        "smtp.host",
        "SMTP server for failure e-mails; empty means e-mails are recorded, not sent.",
    ),
    (
        "smtp.port",
        "SMTP port: 587 for starttls, 465 for tls, 25 for none.",
    ),
    ("smtp.tls", "none, starttls or tls."),
    (
        "smtp.username",
        "SMTP user name; empty means no authentication.",
    ),
    ("smtp.password", "SMTP password."),
    ("smtp.from", "From address of failure e-mails."),
    (
        "notify.window",
        "At most one failure e-mail per webhook in this window; later failures wait for a digest.",
    ),
    (
        "http.max_connections",
        "Most open client connections; past it new ones are closed at once.",
    ),
    (
        "http.header_read_timeout",
        "A request's headers must arrive within this (from the connection's opening or the request's first byte).",
    ),
    (
        "http.idle_timeout",
        "A keep-alive connection resting between requests is closed after this.",
    ),
    (
        "http.rate_limit",
        "API requests per second per token or person (past the burst: 429 with Retry-After); 0 for no limit.",
    ),
    ("http.rate_burst", "API requests a caller may make at once above the rate."),
    (
        "http.trusted_proxies",
        "CIDRs of the reverse proxies in front of tocsin, e.g. [\"10.0.0.0/8\"]: from them, X-Forwarded-For (else Forwarded) names the client whose failed logins are counted. Empty: the connection's address is the client.",
    ),
    (
        "http.intake_rate_limit",
        "POST /v3/events per second per token, counted apart from other calls; 0 for no limit.",
    ),
    ("http.intake_rate_burst", "Events a token may post at once above that rate."),
    (
        "http.organization_rate_limit",
        "API requests and pages per second for one organization, all its tokens and people together (each also has http.rate_limit); 0 for no limit.",
    ),
    (
        "http.organization_rate_burst",
        "What an organization may request at once above that rate.",
    ),
    (
        "retention.deliveries",
        "Finished deliveries older than this are deleted, with their attempts, payloads and events nothing else refers to; 0s keeps everything.",
    ),
    (
        "retention.notifications_and_audit",
        "Sent or skipped notifications and notices, audit entries and finished bulk retries older than this are deleted; 0s keeps everything.",
    ),
];

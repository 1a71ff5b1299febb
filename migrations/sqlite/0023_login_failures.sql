-- Failed logins, each under its email (`email:…`) and its client address (`ip:…`), so that
-- login throttling counts the same failures on every node. Each failure recorded forgets
-- those older than the throttling window, so the table holds one window's worth.
CREATE TABLE login_failures (
    subject  TEXT NOT NULL,
    at       BIGINT NOT NULL
);
CREATE INDEX login_failures_by_subject ON login_failures (subject, at);
CREATE INDEX login_failures_by_time ON login_failures (at);

-- Which notifier (of which node) is e-mailing about a webhook right now. Taken before the
-- one-e-mail-per-window check and given back once the e-mail's outcome is recorded, so two
-- nodes cannot both find the window free and both send.
CREATE TABLE mail_reservations (
    webhook_id  TEXT PRIMARY KEY REFERENCES webhooks (id) ON DELETE CASCADE,
    owner       TEXT NOT NULL,
    until       BIGINT NOT NULL
);

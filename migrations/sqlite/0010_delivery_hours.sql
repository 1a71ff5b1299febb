-- Finished deliveries counted per webhook and hour (by when they finished), written in the
-- same transaction as the result: the overview and the webhooks list read these few rows
-- instead of counting a day of deliveries. Filled from the deliveries already finished.
CREATE TABLE delivery_hours (
    organization_id  TEXT NOT NULL,
    webhook_id       TEXT NOT NULL,
    hour             BIGINT NOT NULL,
    succeeded        BIGINT NOT NULL DEFAULT 0,
    failed           BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, webhook_id, hour)
);

CREATE INDEX delivery_hours_by_hour ON delivery_hours (organization_id, hour);

INSERT INTO delivery_hours (organization_id, webhook_id, hour, succeeded, failed)
SELECT organization_id, webhook_id, (completed_at / 3600000000) * 3600000000,
       SUM(CASE WHEN state = 'succeeded' THEN 1 ELSE 0 END),
       SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END)
FROM deliveries
WHERE completed_at IS NOT NULL AND state IN ('succeeded', 'failed')
GROUP BY organization_id, webhook_id, (completed_at / 3600000000) * 3600000000;

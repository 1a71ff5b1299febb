-- The secret before the last rotation (sealed like the secret), signing beside the new one
-- until previous_secret_until (micros).
ALTER TABLE webhooks ADD COLUMN previous_secret TEXT;
ALTER TABLE webhooks ADD COLUMN previous_secret_until BIGINT;

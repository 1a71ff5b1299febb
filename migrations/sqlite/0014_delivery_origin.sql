-- Why a delivery exists: an event ('event'), a test sent by hand ('test'), or sending a
-- logged delivery again ('resend', with the delivery it repeats in resent_from).
ALTER TABLE deliveries ADD COLUMN origin TEXT NOT NULL DEFAULT 'event';
ALTER TABLE deliveries ADD COLUMN resent_from TEXT;

-- Claiming must not walk the deliveries in flight: due work that nobody holds, and leases
-- that expired, each get their own partial index.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_unleased_due ON deliveries (next_attempt_at, seq) WHERE state = 'pending' AND lease_owner IS NULL;
CREATE INDEX deliveries_leased ON deliveries (leased_until) WHERE state = 'pending' AND lease_owner IS NOT NULL;

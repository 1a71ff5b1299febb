-- Intake writes an event, its incident row and its deliveries in one transaction, and the
-- organization comes from the caller's own token, so these references hold by
-- construction; retention deletes deliveries before their events and checks incidents
-- first. PostgreSQL checked each one per row with a query that also share-locked the
-- row referred to: every event locked its organization's one row, so concurrent intake
-- batches and recordings piled up multixacts on it (BENCHMARKS.md, eleventh session).
-- Kept: deliveries → webhooks (deleting a webhook deletes its deliveries) and
-- deliveries → payloads (a resend refers to an earlier payload that retention may be
-- deleting at that moment; the check makes the loser fail instead of leaving a delivery
-- without its payload). SQLite keeps all of them: its checks take no locks.
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_organization_id_fkey;
ALTER TABLE incidents DROP CONSTRAINT IF EXISTS incidents_event_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_event_id_fkey;

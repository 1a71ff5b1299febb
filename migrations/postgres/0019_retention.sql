-- Retention finds a pruned delivery's siblings (same event) to tell whether its payload
-- and event are still referred to.
CREATE INDEX deliveries_event ON deliveries (event_id);

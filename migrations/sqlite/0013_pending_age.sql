-- Finds the oldest pending deliveries for delivery.max_age without reading the rest.
CREATE INDEX deliveries_pending_age ON deliveries (created_at) WHERE state = 'pending';

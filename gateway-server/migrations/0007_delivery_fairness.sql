-- Fair delivery and retention (issue 12).
-- Times are Unix milliseconds.

-- A merchant's webhook endpoint as a whole: after enough consecutive failed
-- attempts it is backed off until `blocked_until` (none of its deliveries is
-- claimed before then); a success resets it. No row means healthy.
CREATE TABLE webhook_endpoints (
    merchant_id   TEXT PRIMARY KEY,
    failures      INTEGER NOT NULL DEFAULT 0,
    blocked_until INTEGER NOT NULL DEFAULT 0,
    updated_at    INTEGER NOT NULL
);

-- The claim counts each merchant's deliveries in flight (claimed, not expired).
CREATE INDEX webhook_deliveries_claimed ON webhook_deliveries(status, claimed_until);
-- Retention finds finished deliveries and processed inbound events by age.
CREATE INDEX webhook_deliveries_created ON webhook_deliveries(status, created_at);
CREATE INDEX webhook_events_processed ON webhook_events(processed_at);

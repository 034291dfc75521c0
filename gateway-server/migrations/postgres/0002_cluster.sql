-- Several gateway instances on one database.

-- Named leases: work one instance does at a time (an idempotency key being
-- processed, …). A lease is held until released or until `expires_at`
-- (Unix ms) passes, so the leases of an instance that died run out.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- The cluster event bus: every intent change published on one instance, for
-- the others. NOTIFY carries only the id (payloads are limited to 8000
-- bytes); listeners read the rows, and catch up from here after a lost
-- connection. Rows are pruned after an hour.
CREATE TABLE cluster_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    origin     TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX cluster_events_created ON cluster_events(created_at);

-- Events, several webhook endpoints per merchant, secret rotation (issue 14).
-- Times are Unix milliseconds.

-- Every merchant-visible event, stored in the transaction of the change that
-- produced it, whether or not the merchant has an endpoint. `seq` is the
-- order a stream resumes from; the payload's `sequence`.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    merchant_id  TEXT NOT NULL REFERENCES merchants(id),
    payment_id   TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    -- The change behind it (bus event id); one event per change and type.
    source_event TEXT NOT NULL,
    -- The payment (and, for a refund's event, the refund) as the API showed them.
    payment      TEXT NOT NULL,
    refund       TEXT,
    created_at   INTEGER NOT NULL,
    UNIQUE (merchant_id, source_event, event_type)
);
CREATE INDEX events_merchant ON events(merchant_id, seq);
CREATE INDEX events_merchant_payment ON events(merchant_id, payment_id, seq);
CREATE INDEX events_created ON events(created_at);

-- The events of the deliveries made before events existed: the delivery's id
-- is the event's id, its sequence the event's.
INSERT INTO events (seq, id, merchant_id, payment_id, event_type, source_event, payment, refund, created_at)
SELECT seq, id, merchant_id, payment_id, event_type, source_event, payment, refund, created_at
FROM webhook_deliveries ORDER BY seq;
-- New events continue after every delivery of before (their sequence numbers).
DELETE FROM sqlite_sequence WHERE name = 'events';
INSERT INTO sqlite_sequence (name, seq) SELECT 'events', seq FROM sqlite_sequence WHERE name = 'webhook_deliveries';

-- A merchant's webhook endpoints (at most 16), each with its own URL,
-- filter, signing secrets and backoff state (consecutive failed attempts;
-- none of its deliveries is claimed before `blocked_until`).
CREATE TABLE webhook_endpoints_v2 (
    id             TEXT PRIMARY KEY,
    merchant_id    TEXT NOT NULL REFERENCES merchants(id),
    url            TEXT NOT NULL,
    enabled        BOOLEAN NOT NULL DEFAULT TRUE,
    -- A JSON array of event types; ["*"] is every type.
    enabled_events TEXT NOT NULL,
    description    TEXT,
    failures       INTEGER NOT NULL DEFAULT 0,
    blocked_until  INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_merchant ON webhook_endpoints_v2(merchant_id, created_at, id);

-- Each merchant's webhook URL becomes its first endpoint, keeping the old
-- backoff state.
INSERT INTO webhook_endpoints_v2 (id, merchant_id, url, enabled, enabled_events, failures, blocked_until,
                                  created_at, updated_at)
SELECT 'we_' || lower(hex(randomblob(16))), m.id, m.webhook_url, TRUE, '["*"]',
       COALESCE(e.failures, 0), COALESCE(e.blocked_until, 0), m.created_at, COALESCE(e.updated_at, m.created_at)
FROM merchants m LEFT JOIN webhook_endpoints e ON e.merchant_id = m.id
WHERE m.webhook_url IS NOT NULL;
DROP TABLE webhook_endpoints;
ALTER TABLE webhook_endpoints_v2 RENAME TO webhook_endpoints;
-- The URL lives in the endpoint now.
UPDATE merchants SET webhook_url = NULL;

-- An endpoint's signing secrets, sealed with the master key: the current one
-- (`expires_at` NULL) and, after a rotation, the previous ones until their
-- grace period ends. `bound_to` says which associated data sealed it:
-- 'endpoint' (merchant and endpoint id) or 'merchant' (the merchant's id only:
-- the secrets of before endpoints, which stay valid as they were sealed).
CREATE TABLE webhook_endpoint_secrets (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id TEXT NOT NULL,
    merchant_id TEXT NOT NULL,
    sealed      BLOB NOT NULL,
    bound_to    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER
);
CREATE INDEX webhook_endpoint_secrets_endpoint ON webhook_endpoint_secrets(endpoint_id, seq);

INSERT INTO webhook_endpoint_secrets (endpoint_id, merchant_id, sealed, bound_to, created_at)
SELECT e.id, s.merchant_id, s.sealed, 'merchant', s.updated_at
FROM merchant_signing_secrets s JOIN webhook_endpoints e ON e.merchant_id = s.merchant_id;

-- Deliveries are per (event, endpoint), and an event may be sent again, so a
-- delivery has its own id; the table is rebuilt without the old one-per-change
-- key (events hold it now). Rows of before keep their ids (= their event's).
CREATE TABLE webhook_deliveries_v2 (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    merchant_id      TEXT NOT NULL REFERENCES merchants(id),
    payment_id       TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    source_event     TEXT NOT NULL,
    payment          TEXT NOT NULL,
    url              TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    claimed_until    INTEGER,
    created_at       INTEGER NOT NULL,
    delivered_at     INTEGER,
    last_status      INTEGER,
    last_error       TEXT,
    refund           TEXT,
    event_id         TEXT NOT NULL,
    -- NULL for a delivery of before whose merchant had removed its URL.
    endpoint_id      TEXT,
    event_seq        INTEGER NOT NULL,
    event_created_at INTEGER NOT NULL
);
INSERT INTO webhook_deliveries_v2 (seq, id, merchant_id, payment_id, event_type, source_event, payment, url,
    status, attempts, next_attempt_at, claimed_until, created_at, delivered_at, last_status, last_error, refund,
    event_id, endpoint_id, event_seq, event_created_at)
SELECT d.seq, d.id, d.merchant_id, d.payment_id, d.event_type, d.source_event, d.payment, d.url, d.status,
       d.attempts, d.next_attempt_at, d.claimed_until, d.created_at, d.delivered_at, d.last_status, d.last_error,
       d.refund, d.id, (SELECT e.id FROM webhook_endpoints e WHERE e.merchant_id = d.merchant_id), d.seq,
       d.created_at
FROM webhook_deliveries d ORDER BY d.seq;
DROP TABLE webhook_deliveries;
ALTER TABLE webhook_deliveries_v2 RENAME TO webhook_deliveries;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);
CREATE INDEX webhook_deliveries_merchant ON webhook_deliveries(merchant_id, seq);
CREATE INDEX webhook_deliveries_claimed ON webhook_deliveries(status, claimed_until);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries(status, created_at);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries(event_id, seq);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries(endpoint_id, status);

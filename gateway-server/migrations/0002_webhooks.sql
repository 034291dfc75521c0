-- Gateway server schema, version 2: inbound webhooks, outbound merchant
-- webhooks (outbox, attempts, signing secrets), provider-reference lookups.

-- Every verified inbound provider event, stored before it is acknowledged.
CREATE TABLE webhook_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    provider     TEXT NOT NULL,
    -- The provider account: a merchant id, or '' for the gateway-wide account.
    account      TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    body         BLOB NOT NULL,
    received_at  INTEGER NOT NULL,
    processed_at INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    UNIQUE (provider, account, event_id)
);
CREATE INDEX webhook_events_unprocessed ON webhook_events(seq) WHERE processed_at IS NULL;

-- Each merchant's secret for signing outbound webhooks, sealed with the master key.
CREATE TABLE merchant_signing_secrets (
    merchant_id TEXT PRIMARY KEY REFERENCES merchants(id),
    sealed      BLOB NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- The outbox: one row per event to deliver to a merchant, written in the
-- transaction that changed the payment.
CREATE TABLE webhook_deliveries (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    merchant_id     TEXT NOT NULL REFERENCES merchants(id),
    payment_id      TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    -- The change behind it (bus event id); one delivery per change and type.
    source_event    TEXT NOT NULL,
    payment         TEXT NOT NULL,
    url             TEXT NOT NULL,
    -- pending, delivered or failed (gave up).
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    -- A worker owns the row until then (a crash mid-send frees it at expiry).
    claimed_until   INTEGER,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    UNIQUE (merchant_id, source_event, event_type)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);
CREATE INDEX webhook_deliveries_merchant ON webhook_deliveries(merchant_id, seq);

-- Every delivery attempt.
CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    http_status INTEGER,
    latency_ms  INTEGER NOT NULL,
    error       TEXT,
    PRIMARY KEY (delivery_id, attempt)
);

CREATE INDEX payments_provider_ref ON payments(provider, provider_ref);
CREATE INDEX payments_status_updated ON payments(status, updated_at);

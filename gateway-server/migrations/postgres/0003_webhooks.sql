-- Gateway server schema for PostgreSQL, version 3: inbound webhooks and
-- outbound merchant webhooks, as in the SQLite set (migrations/0002_webhooks.sql).
-- Times are Unix milliseconds.

CREATE TABLE webhook_events (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider     TEXT NOT NULL,
    account      TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    body         BYTEA NOT NULL,
    received_at  BIGINT NOT NULL,
    processed_at BIGINT,
    attempts     BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT,
    UNIQUE (provider, account, event_id)
);
CREATE INDEX webhook_events_unprocessed ON webhook_events(seq) WHERE processed_at IS NULL;

CREATE TABLE merchant_signing_secrets (
    merchant_id TEXT PRIMARY KEY REFERENCES merchants(id),
    sealed      BYTEA NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    merchant_id     TEXT NOT NULL REFERENCES merchants(id),
    payment_id      TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    source_event    TEXT NOT NULL,
    payment         TEXT NOT NULL,
    url             TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until   BIGINT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    last_status     BIGINT,
    last_error      TEXT,
    UNIQUE (merchant_id, source_event, event_type)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);
CREATE INDEX webhook_deliveries_merchant ON webhook_deliveries(merchant_id, seq);

CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    http_status BIGINT,
    latency_ms  BIGINT NOT NULL,
    error       TEXT,
    PRIMARY KEY (delivery_id, attempt)
);

CREATE INDEX payments_provider_ref ON payments(provider, provider_ref);
CREATE INDEX payments_status_updated ON payments(status, updated_at);

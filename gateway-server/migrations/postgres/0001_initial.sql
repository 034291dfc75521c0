-- Gateway server schema for PostgreSQL, version 1: the same tables as the
-- SQLite set (migrations/0001_initial.sql). Times are Unix milliseconds.
CREATE TABLE merchants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    webhook_url TEXT,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants(id),
    key_hash    TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX api_keys_merchant ON api_keys(merchant_id);

CREATE TABLE provider_credentials (
    merchant_id TEXT NOT NULL REFERENCES merchants(id),
    provider    TEXT NOT NULL,
    sealed      BYTEA NOT NULL,
    masked      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, provider)
);

CREATE TABLE payments (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    merchant_id     TEXT NOT NULL REFERENCES merchants(id),
    provider        TEXT NOT NULL,
    provider_ref    TEXT NOT NULL,
    -- Written only from PaymentRow::status() (derived), as a filter index.
    status          TEXT NOT NULL,
    currency        TEXT NOT NULL,
    amount_e4       BIGINT NOT NULL,
    amount_refunded BIGINT NOT NULL DEFAULT 0,
    idempotency_key TEXT,
    saved_card_id   TEXT,
    customer_email  TEXT,
    return_url      TEXT,
    intent          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX payments_merchant_seq ON payments(merchant_id, seq);

CREATE TABLE refunds (
    id          TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL REFERENCES merchants(id),
    payment_id  TEXT NOT NULL REFERENCES payments(id),
    refund      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX refunds_payment ON refunds(payment_id);

CREATE TABLE customers (
    merchant_id          TEXT NOT NULL REFERENCES merchants(id),
    provider             TEXT NOT NULL,
    email                TEXT NOT NULL,
    provider_customer_id TEXT NOT NULL,
    created_at           BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, provider, email)
);

CREATE TABLE saved_cards (
    id                      TEXT PRIMARY KEY,
    merchant_id             TEXT NOT NULL REFERENCES merchants(id),
    provider                TEXT NOT NULL,
    provider_customer_id    TEXT NOT NULL,
    provider_payment_method TEXT NOT NULL,
    customer_email          TEXT NOT NULL,
    brand                   TEXT NOT NULL,
    last4                   TEXT NOT NULL,
    exp_month               BIGINT NOT NULL,
    exp_year                BIGINT NOT NULL,
    is_default              BOOLEAN NOT NULL,
    active                  BOOLEAN NOT NULL,
    created_at              BIGINT NOT NULL
);
CREATE INDEX saved_cards_merchant ON saved_cards(merchant_id, created_at);

CREATE TABLE idempotency_keys (
    merchant_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status      BIGINT NOT NULL,
    body        BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);

-- The payment timeline (issue 14): what happened to a payment, recorded
-- with the payment's own writes. `at` is in Unix microseconds (the entries
-- of one request are often less than a millisecond apart).
--
-- `kind` is the entry's type (`api_request`, `provider_call`,
-- `webhook_received`, `status_changed`, `handler`); `detail` its fields as
-- JSON (never a secret, a body or card data). `seq` orders entries of the
-- same millisecond. Bounded per payment by the insert itself (see
-- store/shared/timeline.rs); merchant deliveries are read from the outbox.
CREATE TABLE payment_timeline (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id TEXT NOT NULL,
    payment_id  TEXT NOT NULL,
    at          BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    detail      TEXT NOT NULL
);
-- One payment's timeline, in order; also what the per-payment cap counts.
CREATE INDEX payment_timeline_payment ON payment_timeline(payment_id, at, seq);

-- Gateway server schema for PostgreSQL, version 5: the refund lifecycle and
-- the inbound sweep, as in the SQLite set (migrations/0004_refund_lifecycle.sql).
--
-- Refunds: one row per provider refund of a payment, and the refund's status
-- and last change as columns. Existing rows take them from the document;
-- duplicates of one provider refund keep the oldest row.
DELETE FROM refunds
WHERE provider_refund_id IS NOT NULL
  AND EXISTS (
    SELECT 1 FROM refunds AS older
    WHERE older.payment_id = refunds.payment_id
      AND older.provider_refund_id = refunds.provider_refund_id
      AND (older.created_at < refunds.created_at
           OR (older.created_at = refunds.created_at AND older.id < refunds.id))
  );
DROP INDEX refunds_payment_provider_id;
CREATE UNIQUE INDEX refunds_payment_provider_id ON refunds(payment_id, provider_refund_id);
ALTER TABLE refunds ADD COLUMN status TEXT NOT NULL DEFAULT 'pending';
ALTER TABLE refunds ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
UPDATE refunds SET status = COALESCE(refund::jsonb ->> 'status', 'pending'), updated_at = created_at;
CREATE INDEX refunds_status_updated ON refunds(status, updated_at);

-- Inbound events: retried in the order of their next attempt (with
-- backoff), not always the oldest first. 0 is "due now".
ALTER TABLE webhook_events ADD COLUMN next_attempt_at BIGINT NOT NULL DEFAULT 0;
DROP INDEX webhook_events_unprocessed;
CREATE INDEX webhook_events_due ON webhook_events(next_attempt_at, seq) WHERE processed_at IS NULL;

-- Merchant webhooks about a refund (`payment.refunded`, `refund.failed`, …)
-- carry the refund as the API shows it, beside the payment.
ALTER TABLE webhook_deliveries ADD COLUMN refund TEXT;

-- Gateway server schema for PostgreSQL, version 4: refunds are looked up by
-- the provider's refund id through a column of their own, not through the
-- JSON document, as in the SQLite set (migrations/0003_refund_provider_id.sql).
-- Existing rows take it from the document.
ALTER TABLE refunds ADD COLUMN provider_refund_id TEXT;
UPDATE refunds SET provider_refund_id = refund::jsonb ->> 'id';
CREATE INDEX refunds_payment_provider_id ON refunds(payment_id, provider_refund_id);

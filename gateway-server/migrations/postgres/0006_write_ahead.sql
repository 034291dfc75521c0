-- Gateway server schema for PostgreSQL, version 6: write-ahead payments and
-- in-progress idempotency records, as in the SQLite set
-- (migrations/0005_write_ahead.sql, which explains the columns).
ALTER TABLE payments ADD COLUMN pending_step TEXT;
ALTER TABLE payments ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
CREATE INDEX payments_pending_step ON payments(updated_at) WHERE pending_step IS NOT NULL;

UPDATE payments SET provider_ref = provider_ref || '#duplicate-' || seq
WHERE provider_ref <> ''
  AND seq NOT IN (SELECT MIN(seq) FROM payments GROUP BY provider, provider_ref);
DROP INDEX payments_provider_ref;
CREATE UNIQUE INDEX payments_provider_ref ON payments(provider, provider_ref) WHERE provider_ref <> '';

ALTER TABLE idempotency_keys ADD COLUMN state TEXT NOT NULL DEFAULT 'done';
ALTER TABLE idempotency_keys ADD COLUMN resource_id TEXT;

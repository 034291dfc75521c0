-- Gateway server schema, version 5: write-ahead payments and in-progress
-- idempotency records.
--
-- A payment row is written before money can move. `pending_step` names the
-- provider call that was asked for and whose answer is not stored yet
-- (`create`, `create_confirm`, `confirm`, `capture`, `cancel`); NULL once the
-- stored intent is the provider's answer. Reconciliation resolves rows left
-- with one. `version` makes every update conditional on the row read.
ALTER TABLE payments ADD COLUMN pending_step TEXT;
ALTER TABLE payments ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
CREATE INDEX payments_pending_step ON payments(updated_at) WHERE pending_step IS NOT NULL;

-- One payment row per provider intent. Older databases may hold several rows
-- for one intent (the mock's ids repeated across restarts): the newer rows
-- keep their data with the reference marked, so the index can be unique.
UPDATE payments SET provider_ref = provider_ref || '#duplicate-' || seq
WHERE provider_ref <> ''
  AND seq NOT IN (SELECT MIN(seq) FROM payments GROUP BY provider, provider_ref);
DROP INDEX payments_provider_ref;
CREATE UNIQUE INDEX payments_provider_ref ON payments(provider, provider_ref) WHERE provider_ref <> '';

-- An idempotency record is written `in_progress` (with the request's
-- fingerprint and the id reserved for what it creates) before the provider
-- is called, and becomes `done` with the stored response.
ALTER TABLE idempotency_keys ADD COLUMN state TEXT NOT NULL DEFAULT 'done';
ALTER TABLE idempotency_keys ADD COLUMN resource_id TEXT;

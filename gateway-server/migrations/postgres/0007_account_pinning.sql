-- Gateway server schema for PostgreSQL, version 7: account pinning, as in
-- the SQLite set (migrations/0006_account_pinning.sql, which explains the column).
ALTER TABLE payments ADD COLUMN provider_account TEXT;
ALTER TABLE customers ADD COLUMN provider_account TEXT;
ALTER TABLE saved_cards ADD COLUMN provider_account TEXT;

-- Gateway server schema, version 6: account pinning.
--
-- A merchant can use a provider through the gateway-wide account or through
-- its own stored credentials, and what one account made the other does not
-- know. `provider_account` records which one made a payment, a customer or a
-- saved card (`gateway` or `merchant`), so later calls (capture, refund,
-- cancel, charging or detaching a card) go to that account. NULL for rows
-- stored before this version: they resolve as they always did (the
-- merchant's own account if it has one, else the gateway-wide one).
ALTER TABLE payments ADD COLUMN provider_account TEXT;
ALTER TABLE customers ADD COLUMN provider_account TEXT;
ALTER TABLE saved_cards ADD COLUMN provider_account TEXT;

-- Gateway server schema, version 3: refunds are looked up by the provider's
-- refund id (inbound `refund.*` events) through a column of their own, not
-- through the JSON document. Existing rows take it from the document.
ALTER TABLE refunds ADD COLUMN provider_refund_id TEXT;
UPDATE refunds SET provider_refund_id = json_extract(refund, '$.id');
CREATE INDEX refunds_payment_provider_id ON refunds(payment_id, provider_refund_id);

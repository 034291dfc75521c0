//! The contract of refunds as their lifecycle needs it: one row per provider
//! refund of a payment, status changes, the unsettled ones by age, the
//! migration that added the columns; and the inbound sweep's order.

use super::*;

fn refund_row(id: &str, payment_id: &str, provider_refund_id: &str, status: &str, at: i64) -> RefundRow {
    let mut refund = refund(provider_refund_id, "pi_1", 100);
    refund.status = gateway_core::RefundStatus::parse(status).unwrap();
    RefundRow {
        id: id.to_owned(),
        merchant_id: "m1".to_owned(),
        payment_id: payment_id.to_owned(),
        refund,
        created_at: at,
        updated_at: at,
    }
}

async fn with_payment(backend: Backend) -> Opened {
    let store = open(backend).await;
    let paid = payment(
        "m1",
        "pay_1",
        intent("pi_1", IntentStatus::Succeeded, 1000, "USD"),
        NOW,
    );
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            Change::InsertPayment(Box::new(paid)),
        ])
        .await
        .unwrap();
    store
}

pub(super) async fn a_provider_refund_is_stored_once_per_payment(backend: Backend) {
    let store = with_payment(backend).await;
    store
        .commit(vec![Change::InsertRefund(Box::new(refund_row(
            "ref_1", "pay_1", "re_1", "pending", NOW,
        )))])
        .await
        .unwrap();
    // The same provider refund again (a webhook racing the API): a conflict,
    // and nothing else of that commit applies.
    let mut paid = store.payment("m1", "pay_1").await.unwrap().unwrap();
    paid.amount_refunded = 200;
    let twice = store
        .commit(vec![
            Change::UpdatePayment(Box::new(paid)),
            Change::InsertRefund(Box::new(refund_row("ref_2", "pay_1", "re_1", "pending", NOW))),
        ])
        .await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    assert_eq!(
        store
            .payment("m1", "pay_1")
            .await
            .unwrap()
            .unwrap()
            .amount_refunded,
        0
    );
    let rows = store.refunds_of_payment("pay_1").await.unwrap();
    assert_eq!(ids(&rows, |r| &r.id), ["ref_1"]);
    // Another provider refund of the same payment is another row.
    store
        .commit(vec![Change::InsertRefund(Box::new(refund_row(
            "ref_3",
            "pay_1",
            "re_2",
            "succeeded",
            NOW + 1,
        )))])
        .await
        .unwrap();
    let rows = store.refunds_of_payment("pay_1").await.unwrap();
    assert_eq!(ids(&rows, |r| &r.id), ["ref_1", "ref_3"], "oldest first");
}

pub(super) async fn refunds_change_status_and_unsettled_ones_are_listed_by_age(backend: Backend) {
    let store = with_payment(backend).await;
    store
        .commit(vec![
            Change::InsertRefund(Box::new(refund_row("ref_a", "pay_1", "re_a", "pending", NOW + 2))),
            Change::InsertRefund(Box::new(refund_row(
                "ref_b",
                "pay_1",
                "re_b",
                "requires_action",
                NOW + 1,
            ))),
            Change::InsertRefund(Box::new(refund_row("ref_c", "pay_1", "re_c", "succeeded", NOW))),
            Change::InsertRefund(Box::new(refund_row(
                "ref_d",
                "pay_1",
                "re_d",
                "pending",
                NOW + 50,
            ))),
        ])
        .await
        .unwrap();
    let unsettled = store.unsettled_refunds(NOW + 10, 10).await.unwrap();
    assert_eq!(
        ids(&unsettled, |r| &r.id),
        ["ref_b", "ref_a"],
        "oldest change first"
    );
    assert_eq!(
        ids(&store.unsettled_refunds(NOW + 10, 1).await.unwrap(), |r| &r.id),
        ["ref_b"]
    );

    let mut failed = refund_row("ref_a", "pay_1", "re_a", "failed", NOW + 2);
    failed.refund.failure_reason = Some("expired_or_canceled_card".to_owned());
    failed.updated_at = NOW + 20;
    store
        .commit(vec![Change::UpdateRefund(Box::new(failed.clone()))])
        .await
        .unwrap();
    assert_eq!(store.refund("m1", "ref_a").await.unwrap().unwrap(), failed);
    // Touching a still-pending refund puts it at the back of the line.
    let mut touched = refund_row("ref_b", "pay_1", "re_b", "requires_action", NOW + 1);
    touched.updated_at = NOW + 30;
    store
        .commit(vec![Change::UpdateRefund(Box::new(touched))])
        .await
        .unwrap();
    assert!(store.unsettled_refunds(NOW + 10, 10).await.unwrap().is_empty());
    assert_eq!(
        ids(&store.unsettled_refunds(NOW + 100, 10).await.unwrap(), |r| &r.id),
        ["ref_b", "ref_d"]
    );
}

pub(super) async fn the_refund_lifecycle_migration_fills_statuses_and_drops_duplicates(backend: Backend) {
    let (url, _dir) = database(backend).await;
    let mut pending = refund("re_1", "pi_1", 100);
    pending.status = gateway_core::RefundStatus::Pending;
    let pending = serde_json::to_string(&pending).unwrap();
    let succeeded = serde_json::to_string(&refund("re_2", "pi_1", 300)).unwrap();
    // A schema with provider refund ids (version 3 / 4) and the same
    // provider refund stored twice, as an older gateway could.
    let before = format!(
        "INSERT INTO merchants (id, name, created_at) VALUES ('m1', 'm', 1); \
         INSERT INTO payments (id, merchant_id, provider, provider_ref, status, currency, amount_e4, \
         intent, created_at, updated_at) VALUES ('pay_1', 'm1', 'mock', 'pi_1', 'completed', 'USD', 1, \
         '{{}}', 1, 1); \
         INSERT INTO refunds (id, merchant_id, payment_id, provider_refund_id, refund, created_at) VALUES \
         ('ref_1', 'm1', 'pay_1', 're_1', '{pending}', 5), \
         ('ref_1_again', 'm1', 'pay_1', 're_1', '{pending}', 6), \
         ('ref_2', 'm1', 'pay_1', 're_2', '{succeeded}', 7); \
         INSERT INTO webhook_events (provider, account, event_id, event_type, body, received_at) \
         VALUES ('mock', '', 'evt_old', 'charge.refunded', '', 9);",
        pending = pending.replace('\'', "''"),
        succeeded = succeeded.replace('\'', "''"),
    );
    migrate_from(backend, &url, [3, 4], &before).await;
    let store = open_url(backend, &url).await;
    let rows = store.refunds_of_payment("pay_1").await.unwrap();
    assert_eq!(
        ids(&rows, |r| &r.id),
        ["ref_1", "ref_2"],
        "the oldest of two copies stays"
    );
    assert_eq!((rows[0].updated_at, rows[1].updated_at), (5, 7));
    let unsettled = store.unsettled_refunds(100, 10).await.unwrap();
    assert_eq!(
        ids(&unsettled, |r| &r.id),
        ["ref_1"],
        "the status column came from the document"
    );
    // Events stored before the column are due at once.
    let due = store.unprocessed_webhook_events(0, 10).await.unwrap();
    assert_eq!(ids(&due, |e| &e.key.event_id), ["evt_old"]);
}

pub(super) async fn inbound_events_are_retried_in_the_order_of_their_next_attempt(backend: Backend) {
    let store = open(backend).await;
    store
        .commit(vec![
            Change::InsertWebhookEvent(Box::new(event("evt_old", NOW))),
            Change::InsertWebhookEvent(Box::new(event("evt_mid", NOW + 1))),
            Change::InsertWebhookEvent(Box::new(event("evt_new", NOW + 2))),
        ])
        .await
        .unwrap();
    let failed = |id: &str, retry_at| Change::WebhookEventFailed {
        key: event_key(id),
        error: "not yet".to_owned(),
        retry_at,
    };
    // The oldest keeps failing and backs off; the newer ones are not starved.
    store
        .commit(vec![failed("evt_old", NOW + 1_000), failed("evt_mid", NOW + 10)])
        .await
        .unwrap();
    let due = store.unprocessed_webhook_events(NOW + 5, 10).await.unwrap();
    assert_eq!(ids(&due, |e| &e.key.event_id), ["evt_new"]);
    let due = store.unprocessed_webhook_events(NOW + 10, 10).await.unwrap();
    assert_eq!(ids(&due, |e| &e.key.event_id), ["evt_new", "evt_mid"]);
    assert_eq!(due[1].next_attempt_at, NOW + 10);
    assert_eq!(due[1].attempts, 1);
    let due = store.unprocessed_webhook_events(NOW + 1_000, 2).await.unwrap();
    assert_eq!(
        ids(&due, |e| &e.key.event_id),
        ["evt_new", "evt_mid"],
        "the longest due first, up to the limit"
    );
    let due = store.unprocessed_webhook_events(NOW + 1_000, 10).await.unwrap();
    assert_eq!(ids(&due, |e| &e.key.event_id), ["evt_new", "evt_mid", "evt_old"]);
}

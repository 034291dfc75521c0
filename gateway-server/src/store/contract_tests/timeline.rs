//! The contract of payment timelines: entries stored with a commit, read in
//! time order per merchant and payment, only for a payment of that merchant,
//! bounded per payment except for the uncapped kind, and removed with a
//! draft payment that is removed.

use super::*;

fn entry(merchant_id: &str, payment_id: &str, at: i64, kind: &str) -> TimelineRow {
    TimelineRow {
        seq: 0,
        merchant_id: merchant_id.to_owned(),
        payment_id: payment_id.to_owned(),
        at,
        kind: kind.to_owned(),
        detail: format!("{{\"type\":\"{kind}\",\"at\":{at}}}"),
    }
}

fn insert(rows: Vec<TimelineRow>, cap: i64) -> Change {
    Change::InsertTimeline {
        rows,
        cap,
        uncapped_kind: "status_changed",
    }
}

fn kinds(rows: &[TimelineRow]) -> Vec<(i64, &str)> {
    rows.iter().map(|row| (row.at, row.kind.as_str())).collect()
}

pub(super) async fn timeline_entries_commit_with_their_payment_in_time_order(backend: Backend) {
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
            Change::InsertMerchant(merchant("m2")),
            // In the same commit as the payment: the entry sees it.
            Change::InsertPayment(Box::new(paid)),
            insert(
                vec![
                    entry("m1", "pay_1", NOW + 5, "provider_call"),
                    entry("m1", "pay_1", NOW + 5, "status_changed"),
                    entry("m1", "pay_1", NOW + 1, "api_request"),
                ],
                10,
            ),
        ])
        .await
        .unwrap();
    store
        .commit(vec![insert(
            vec![
                entry("m1", "pay_1", NOW + 3, "webhook_received"),
                // Another merchant's claim on the payment, and a payment that does not exist: not stored.
                entry("m2", "pay_1", NOW + 4, "api_request"),
                entry("m1", "pay_nope", NOW + 4, "api_request"),
            ],
            10,
        )])
        .await
        .unwrap();
    let rows = store.timeline("m1", "pay_1").await.unwrap();
    assert_eq!(
        kinds(&rows),
        [
            (NOW + 1, "api_request"),
            (NOW + 3, "webhook_received"),
            (NOW + 5, "provider_call"),
            (NOW + 5, "status_changed"),
        ],
        "by time, then in insertion order"
    );
    assert!(rows.windows(2).all(|pair| pair[0].seq != pair[1].seq));
    assert_eq!(
        rows[0].detail,
        format!("{{\"type\":\"api_request\",\"at\":{}}}", NOW + 1)
    );
    assert!(store.timeline("m2", "pay_1").await.unwrap().is_empty());
    assert!(store.timeline("m1", "pay_nope").await.unwrap().is_empty());

    // A commit that fails stores none of its entries.
    let failing = store
        .commit(vec![
            insert(vec![entry("m1", "pay_1", NOW + 9, "handler")], 10),
            Change::FinishWebhookEvent {
                key: event_key("evt_never_stored"),
                at: NOW,
                note: None,
            },
        ])
        .await;
    assert!(matches!(failing, Err(StoreError::Conflict(_))));
    assert_eq!(store.timeline("m1", "pay_1").await.unwrap().len(), 4);
}

pub(super) async fn timelines_stop_at_their_cap_except_status_changes(backend: Backend) {
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
    let cap = 3;
    for i in 0..10 {
        store
            .commit(vec![insert(
                vec![entry("m1", "pay_1", NOW + i, "api_request")],
                cap,
            )])
            .await
            .unwrap();
    }
    store
        .commit(vec![insert(
            vec![
                entry("m1", "pay_1", NOW + 20, "status_changed"),
                entry("m1", "pay_1", NOW + 21, "handler"),
            ],
            cap,
        )])
        .await
        .unwrap();
    let rows = store.timeline("m1", "pay_1").await.unwrap();
    let capped = rows.iter().filter(|row| row.kind != "status_changed").count();
    assert_eq!(capped as i64, cap + 1, "the cap, and one that says it was passed");
    assert_eq!(rows.last().unwrap().kind, "status_changed");
    assert_eq!(rows.last().unwrap().at, NOW + 20);
}

pub(super) async fn a_removed_draft_takes_its_timeline_with_it(backend: Backend) {
    let store = open(backend).await;
    let mut draft = payment(
        "m1",
        "pay_draft",
        intent("", IntentStatus::RequiresPaymentMethod, 1000, "USD"),
        NOW,
    );
    draft.pending_step = Some(crate::domain::records::PendingStep::Create);
    let kept = payment(
        "m1",
        "pay_kept",
        intent("pi_kept", IntentStatus::Succeeded, 1000, "USD"),
        NOW,
    );
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            Change::InsertPayment(Box::new(draft)),
            Change::InsertPayment(Box::new(kept)),
            insert(
                vec![
                    entry("m1", "pay_draft", NOW, "provider_call"),
                    entry("m1", "pay_kept", NOW, "provider_call"),
                ],
                10,
            ),
        ])
        .await
        .unwrap();
    store
        .commit(vec![
            Change::DeleteDraftPayment {
                merchant_id: "m1".to_owned(),
                id: "pay_draft".to_owned(),
            },
            // A payment with a provider intent is never removed, nor its timeline.
            Change::DeleteDraftPayment {
                merchant_id: "m1".to_owned(),
                id: "pay_kept".to_owned(),
            },
        ])
        .await
        .unwrap();
    assert!(store.timeline("m1", "pay_draft").await.unwrap().is_empty());
    assert_eq!(store.timeline("m1", "pay_kept").await.unwrap().len(), 1);
}

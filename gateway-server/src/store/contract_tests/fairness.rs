//! Fair claims (turns between merchants, a cap per merchant, endpoints backed
//! off as a whole) and retention (old finished rows go in bounded batches).

use super::*;

fn delivery_of(merchant_id: &str, id: &str, next_attempt_at: i64) -> Box<DeliveryRow> {
    let mut row = delivery(id, &format!("pay_{id}"), "payment.completed", next_attempt_at);
    row.merchant_id = merchant_id.to_owned();
    Box::new(row)
}

fn per_merchant(rows: &[DeliveryRow]) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for row in rows {
        *counts.entry(row.merchant_id.clone()).or_insert(0) += 1;
    }
    counts
}

fn counts(pairs: &[(&str, usize)]) -> std::collections::BTreeMap<String, usize> {
    pairs.iter().map(|(m, n)| ((*m).to_owned(), *n)).collect()
}

pub(super) async fn claims_take_turns_and_respect_the_per_merchant_cap(backend: Backend) {
    let store = open(backend).await;
    let mut changes = vec![
        Change::InsertMerchant(merchant("m1")),
        Change::InsertMerchant(merchant("m2")),
        Change::InsertMerchant(merchant("m3")),
    ];
    // m1 floods the outbox first; m2 and m3 come later.
    for n in 0..10 {
        changes.push(Change::InsertDelivery(delivery_of(
            "m1",
            &format!("a{n}"),
            NOW + n,
        )));
    }
    changes.push(Change::InsertDelivery(delivery_of("m2", "b0", NOW + 20)));
    changes.push(Change::InsertDelivery(delivery_of("m2", "b1", NOW + 21)));
    changes.push(Change::InsertDelivery(delivery_of("m3", "c0", NOW + 30)));
    store.commit(changes).await.unwrap();

    let first = store
        .claim_deliveries(NOW + 100, NOW + 1_000, 5, 3)
        .await
        .unwrap();
    assert_eq!(
        per_merchant(&first),
        counts(&[("m1", 2), ("m2", 2), ("m3", 1)]),
        "merchants take turns: {:?}",
        ids(&first, |d| &d.id)
    );
    assert!(
        ids(&first, |d| &d.id).contains(&"a0".to_owned()),
        "each merchant's oldest first"
    );
    // m1 has 2 in flight: one more reaches its cap of 3; the others have nothing left.
    let second = store
        .claim_deliveries(NOW + 100, NOW + 1_000, 10, 3)
        .await
        .unwrap();
    assert_eq!(ids(&second, |d| &d.id), ["a2"]);
    assert!(store
        .claim_deliveries(NOW + 100, NOW + 1_000, 10, 3)
        .await
        .unwrap()
        .is_empty());
    // An attempt recorded frees its slot.
    store
        .commit(vec![Change::RecordAttempt {
            attempt: attempt("a0", 1, Some(200)),
            outcome: DeliveryOutcome::Delivered,
        }])
        .await
        .unwrap();
    let third = store
        .claim_deliveries(NOW + 100, NOW + 1_000, 10, 3)
        .await
        .unwrap();
    assert_eq!(ids(&third, |d| &d.id), ["a3"]);
    // Claims that ran out count no more: m1 gets its cap again, never more.
    let later = store
        .claim_deliveries(NOW + 2_000, NOW + 3_000, 10, 3)
        .await
        .unwrap();
    assert_eq!(per_merchant(&later), counts(&[("m1", 3), ("m2", 2), ("m3", 1)]));
    assert_eq!(
        ids(&later, |d| &d.id)
            .into_iter()
            .filter(|id| id.starts_with('a'))
            .collect::<Vec<_>>(),
        ["a1", "a2", "a3"],
        "the oldest of m1 first"
    );
}

/// `delivery_of`, to the endpoint `endpoint_id`.
fn delivery_to(merchant_id: &str, endpoint_id: &str, id: &str, next_attempt_at: i64) -> Box<DeliveryRow> {
    let mut row = delivery_of(merchant_id, id, next_attempt_at);
    row.endpoint_id = Some(endpoint_id.to_owned());
    row
}

pub(super) async fn an_endpoint_that_keeps_failing_is_backed_off_as_a_whole(backend: Backend) {
    let store = open(backend).await;
    // m1 has a failing endpoint (a0, a1) and a healthy one (h0); m2 one endpoint.
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            Change::InsertMerchant(merchant("m2")),
            Change::InsertEndpoint(Box::new(endpoint("m1", "we_dead", NOW))),
            Change::InsertEndpoint(Box::new(endpoint("m1", "we_ok", NOW + 1))),
            Change::InsertEndpoint(Box::new(endpoint("m2", "we_m2", NOW))),
            Change::InsertDelivery(delivery_to("m1", "we_dead", "a0", NOW)),
            Change::InsertDelivery(delivery_to("m1", "we_dead", "a1", NOW)),
            Change::InsertDelivery(delivery_to("m1", "we_ok", "h0", NOW)),
            Change::InsertDelivery(delivery_to("m2", "we_m2", "b0", NOW)),
        ])
        .await
        .unwrap();
    let failed = |retry_at: i64| Change::EndpointFailed {
        endpoint_id: "we_dead".to_owned(),
        retry_at,
        after: 2,
    };
    let due = |at: i64| {
        let store = &store;
        async move {
            let mut claimed = ids(&store.claim_deliveries(at, at, 10, 10).await.unwrap(), |d| &d.id);
            claimed.sort();
            claimed
        }
    };
    // One failure is below the threshold: the endpoint is not backed off.
    store.commit(vec![failed(NOW + 500)]).await.unwrap();
    assert_eq!(due(NOW + 1).await, ["a0", "a1", "b0", "h0"]);
    // The second in a row backs it off until its retry time; others, the
    // merchant's healthy endpoint included, are not held up.
    store.commit(vec![failed(NOW + 500)]).await.unwrap();
    assert_eq!(due(NOW + 2).await, ["b0", "h0"]);
    assert_eq!(due(NOW + 499).await, ["b0", "h0"]);
    assert_eq!(due(NOW + 500).await, ["a0", "a1", "b0", "h0"]);
    // Every further failure moves it; a success resets the count.
    store.commit(vec![failed(NOW + 900)]).await.unwrap();
    assert_eq!(due(NOW + 600).await, ["b0", "h0"]);
    store
        .commit(vec![Change::EndpointRecovered {
            endpoint_id: "we_dead".to_owned(),
        }])
        .await
        .unwrap();
    assert_eq!(due(NOW + 602).await, ["a0", "a1", "b0", "h0"]);
    store.commit(vec![failed(NOW + 2_000)]).await.unwrap();
    assert_eq!(
        due(NOW + 603).await,
        ["a0", "a1", "b0", "h0"],
        "one failure after the reset"
    );
    let dead = store.endpoint("m1", "we_dead").await.unwrap().unwrap();
    assert_eq!((dead.failures, dead.blocked_until), (1, 0));
}

pub(super) async fn retention_prunes_old_finished_rows_in_bounded_batches(backend: Backend) {
    let store = open(backend).await;
    let cutoff = NOW + 10_000;
    // Inbound events: three old processed, one old never processed, one recent.
    let mut changes = vec![Change::InsertMerchant(merchant("m1"))];
    for id in ["old_1", "old_2", "old_3", "old_unprocessed", "recent"] {
        let received = if id == "recent" { NOW + 20_000 } else { NOW };
        changes.push(Change::InsertWebhookEvent(Box::new(event(id, received))));
    }
    for (id, at) in [
        ("old_1", NOW),
        ("old_2", NOW),
        ("old_3", NOW),
        ("recent", NOW + 20_000),
    ] {
        changes.push(Change::FinishWebhookEvent {
            key: event_key(id),
            at,
            note: None,
        });
    }
    // Deliveries: three old delivered, one old given up, one old still
    // retrying, one recent delivered.
    for id in ["d1", "d2", "d3", "gave_up", "retrying"] {
        changes.push(Change::InsertDelivery(delivery_of("m1", id, NOW)));
    }
    changes.push(Change::InsertDelivery(delivery_of("m1", "recent", NOW + 20_000)));
    store.commit(changes).await.unwrap();
    let mut attempts = Vec::new();
    for id in ["d1", "d2", "d3"] {
        attempts.push(Change::RecordAttempt {
            attempt: attempt(id, 1, Some(200)),
            outcome: DeliveryOutcome::Delivered,
        });
    }
    attempts.push(Change::RecordAttempt {
        attempt: attempt("gave_up", 1, Some(500)),
        outcome: DeliveryOutcome::GaveUp,
    });
    attempts.push(Change::RecordAttempt {
        attempt: attempt("retrying", 1, None),
        outcome: DeliveryOutcome::RetryAt(NOW + 5),
    });
    attempts.push(Change::RecordAttempt {
        attempt: AttemptRow {
            at: NOW + 20_001,
            ..attempt("recent", 1, Some(200))
        },
        outcome: DeliveryOutcome::Delivered,
    });
    store.commit(attempts).await.unwrap();

    // At most the batch per call, until none is left.
    assert_eq!(store.prune_webhook_events(cutoff, 2).await.unwrap(), 2);
    assert_eq!(store.prune_webhook_events(cutoff, 2).await.unwrap(), 1);
    assert_eq!(store.prune_webhook_events(cutoff, 2).await.unwrap(), 0);
    for (id, kept) in [
        ("old_1", false),
        ("old_3", false),
        ("old_unprocessed", true),
        ("recent", true),
    ] {
        assert_eq!(
            store.webhook_event(&event_key(id)).await.unwrap().is_some(),
            kept,
            "{id}"
        );
    }
    assert_eq!(store.prune_deliveries(cutoff, 3).await.unwrap(), 3);
    assert_eq!(store.prune_deliveries(cutoff, 3).await.unwrap(), 1);
    assert_eq!(store.prune_deliveries(cutoff, 3).await.unwrap(), 0);
    for (id, kept) in [
        ("d1", false),
        ("d3", false),
        ("gave_up", false),
        ("retrying", true),
        ("recent", true),
    ] {
        assert_eq!(store.delivery("m1", id).await.unwrap().is_some(), kept, "{id}");
        assert_eq!(
            store.delivery_attempts(&[id]).await.unwrap().len(),
            usize::from(kept),
            "{id}'s attempts go with it"
        );
    }
}

pub(super) async fn concurrent_claims_never_share_a_row_nor_give_one_merchant_a_batch(backend: Backend) {
    let store = open(backend).await;
    let mut changes = vec![
        Change::InsertMerchant(merchant("m1")),
        Change::InsertMerchant(merchant("m2")),
    ];
    for n in 0..40 {
        changes.push(Change::InsertDelivery(delivery_of(
            "m1",
            &format!("a{n}"),
            NOW + n,
        )));
    }
    for n in 0..3 {
        changes.push(Change::InsertDelivery(delivery_of(
            "m2",
            &format!("b{n}"),
            NOW + 100 + n,
        )));
    }
    store.commit(changes).await.unwrap();
    // Eight claims at once, as from several instances (PostgreSQL: eight connections).
    let claims = (0..8).map(|_| {
        let store = store.store.clone();
        tokio::spawn(async move { store.claim_deliveries(NOW + 1_000, NOW + 5_000, 16, 3).await })
    });
    let mut claimed = Vec::new();
    for claim in claims {
        let rows = claim.await.unwrap().unwrap();
        assert!(
            per_merchant(&rows).get("m1").copied().unwrap_or(0) <= 3,
            "one claim never hands out more than the cap"
        );
        claimed.extend(rows);
    }
    let mut seen = ids(&claimed, |d| &d.id);
    seen.sort();
    let count = seen.len();
    seen.dedup();
    assert_eq!(seen.len(), count, "no row claimed twice: {seen:?}");
    let counts = per_merchant(&claimed);
    // Racing claims may each see the other's picks as free (see the claim).
    let m1 = counts.get("m1").copied().unwrap_or(0);
    assert!((3..=6).contains(&m1), "{counts:?}");
    assert_eq!(counts.get("m2").copied(), Some(3), "{counts:?}");
}

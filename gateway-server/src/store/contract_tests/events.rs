//! Events (stored once per change, listed, read after a sequence number in
//! commit order, pruned), webhook endpoints and their secrets.

use super::*;

fn event_row(merchant_id: &str, id: &str, payment_id: &str, event_type: &str, created_at: i64) -> EventRow {
    EventRow {
        seq: 0,
        id: id.to_owned(),
        merchant_id: merchant_id.to_owned(),
        payment_id: payment_id.to_owned(),
        event_type: event_type.to_owned(),
        source_event: format!("bus-{id}"),
        payment: format!("{{\"id\":\"{payment_id}\"}}"),
        refund: None,
        created_at,
    }
}

fn insert(row: EventRow) -> Change {
    Change::InsertEvent(Box::new(row))
}

pub(super) async fn events_are_stored_once_per_change_and_listed_by_filter(backend: Backend) {
    let store = open(backend).await;
    let mut refund = event_row("m1", "evt_3", "pay_1", "refund.failed", NOW + 2);
    refund.refund = Some("{\"id\":\"re_1\"}".to_owned());
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            Change::InsertMerchant(merchant("m2")),
            insert(event_row("m1", "evt_1", "pay_1", "payment.completed", NOW)),
            insert(event_row("m1", "evt_2", "pay_2", "payment.completed", NOW + 1)),
            insert(refund),
            insert(event_row("m2", "evt_other", "pay_9", "payment.completed", NOW)),
        ])
        .await
        .unwrap();
    // The same change and type again stores nothing.
    let mut again = event_row("m1", "evt_dup", "pay_1", "payment.completed", NOW + 3);
    again.source_event = "bus-evt_1".to_owned();
    store.commit(vec![insert(again)]).await.unwrap();
    assert!(store.event("m1", "evt_dup").await.unwrap().is_none());

    let one = store.event("m1", "evt_3").await.unwrap().unwrap();
    assert_eq!(one.refund.as_deref(), Some("{\"id\":\"re_1\"}"));
    assert_eq!((one.payment_id.as_str(), one.created_at), ("pay_1", NOW + 2));
    assert!(
        store.event("m2", "evt_3").await.unwrap().is_none(),
        "another merchant's"
    );

    let list = |filter: EventFilter| {
        let store = store.store.clone();
        async move {
            let rows = store
                .events("m1", &EventFilter { limit: 10, ..filter })
                .await
                .unwrap();
            ids(&rows, |row| &row.id)
        }
    };
    assert_eq!(list(EventFilter::default()).await, ["evt_3", "evt_2", "evt_1"]);
    let completed = EventFilter {
        event_type: Some("payment.completed".to_owned()),
        ..EventFilter::default()
    };
    assert_eq!(list(completed).await, ["evt_2", "evt_1"]);
    let of_payment = EventFilter {
        payment_id: Some("pay_1".to_owned()),
        ..EventFilter::default()
    };
    assert_eq!(list(of_payment).await, ["evt_3", "evt_1"]);
    let window = EventFilter {
        since_ms: Some(NOW + 1),
        until_ms: Some(NOW + 1),
        ..EventFilter::default()
    };
    assert_eq!(list(window).await, ["evt_2"]);
    let second = store.event("m1", "evt_2").await.unwrap().unwrap();
    let after_cursor = EventFilter {
        before_seq: Some(second.seq),
        ..EventFilter::default()
    };
    assert_eq!(list(after_cursor).await, ["evt_1"]);
    let page = store
        .events(
            "m1",
            &EventFilter {
                limit: 2,
                ..EventFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(&page, |row| &row.id), ["evt_3", "evt_2"]);
}

pub(super) async fn events_after_reads_in_seq_order_and_resumes(backend: Backend) {
    let store = open(backend).await;
    let mut changes = vec![
        Change::InsertMerchant(merchant("m1")),
        Change::InsertMerchant(merchant("m2")),
    ];
    for n in 0..6 {
        let kind = if n % 2 == 0 {
            "payment.completed"
        } else {
            "payment.failed"
        };
        changes.push(insert(event_row(
            "m1",
            &format!("evt_{n}"),
            "pay_1",
            kind,
            NOW + n,
        )));
        changes.push(insert(event_row(
            "m2",
            &format!("evt_m2_{n}"),
            "pay_2",
            kind,
            NOW + n,
        )));
    }
    store.commit(changes).await.unwrap();
    let first = store.events_after("m1", 0, &[], 4).await.unwrap();
    assert_eq!(ids(&first, |e| &e.id), ["evt_0", "evt_1", "evt_2", "evt_3"]);
    assert!(
        first.windows(2).all(|pair| pair[0].seq < pair[1].seq),
        "increasing seq"
    );
    // Resuming after the last seen gives the rest, nothing twice.
    let rest = store.events_after("m1", first[3].seq, &[], 10).await.unwrap();
    assert_eq!(ids(&rest, |e| &e.id), ["evt_4", "evt_5"]);
    assert!(store
        .events_after("m1", rest[1].seq, &[], 10)
        .await
        .unwrap()
        .is_empty());
    // A filter of types.
    let failed = store
        .events_after("m1", 0, &["payment.failed".to_owned()], 10)
        .await
        .unwrap();
    assert_eq!(ids(&failed, |e| &e.id), ["evt_1", "evt_3", "evt_5"]);
    // A later commit comes after.
    store
        .commit(vec![insert(event_row(
            "m1",
            "evt_late",
            "pay_1",
            "payment.completed",
            NOW,
        ))])
        .await
        .unwrap();
    let late = store.events_after("m1", rest[1].seq, &[], 10).await.unwrap();
    assert_eq!(ids(&late, |e| &e.id), ["evt_late"]);
}

pub(super) async fn concurrent_event_commits_become_visible_in_seq_order(backend: Backend) {
    let store = open(backend).await;
    store
        .commit(vec![Change::InsertMerchant(merchant("m1"))])
        .await
        .unwrap();
    // Many commits at once (PostgreSQL: on many connections), and a reader
    // resuming after the last seq it saw: it must see every event once.
    let writers: Vec<_> = (0..40)
        .map(|n| {
            let store = store.store.clone();
            tokio::spawn(async move {
                store
                    .commit(vec![
                        Change::InsertEvent(Box::new(event_row(
                            "m1",
                            &format!("evt_{n}"),
                            "pay_1",
                            "payment.completed",
                            NOW + n,
                        ))),
                        Change::EndpointRecovered {
                            endpoint_id: format!("we_{n}"),
                        },
                    ])
                    .await
                    .unwrap();
            })
        })
        .collect();
    let reader = {
        let store = store.store.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut after = 0;
            for _ in 0..2_000 {
                for event in store.events_after("m1", after, &[], 100).await.unwrap() {
                    after = event.seq;
                    seen.push(event.id);
                }
                if seen.len() >= 40 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            seen
        })
    };
    for writer in writers {
        writer.await.unwrap();
    }
    let mut seen = reader.await.unwrap();
    assert_eq!(seen.len(), 40, "every event seen once: {seen:?}");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 40);
}

pub(super) async fn deliveries_need_their_event_and_carry_its_sequence(backend: Backend) {
    let store = open(backend).await;
    let event = event_row("m1", "evt_1", "pay_1", "payment.completed", NOW);
    let mut to_a = delivery("whd_a", "pay_1", "payment.completed", NOW + 5);
    to_a.event_id = "evt_1".to_owned();
    to_a.endpoint_id = Some("we_a".to_owned());
    let mut to_b = to_a.clone();
    to_b.id = "whd_b".to_owned();
    to_b.endpoint_id = Some("we_b".to_owned());
    let mut orphan = to_a.clone();
    orphan.id = "whd_orphan".to_owned();
    orphan.event_id = "evt_missing".to_owned();
    store
        .store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            insert(event),
            Change::InsertDelivery(Box::new(to_a)),
            Change::InsertDelivery(Box::new(to_b)),
            Change::InsertDelivery(Box::new(orphan)),
        ])
        .await
        .unwrap();
    let stored = store.event("m1", "evt_1").await.unwrap().unwrap();
    let deliveries = store.event_deliveries("m1", "evt_1", 50).await.unwrap();
    assert_eq!(ids(&deliveries, |d| &d.id), ["whd_a", "whd_b"]);
    let newest = store.event_deliveries("m1", "evt_1", 1).await.unwrap();
    assert_eq!(ids(&newest, |d| &d.id), ["whd_b"], "the newest within the limit");
    for d in &deliveries {
        assert_eq!((d.event_seq, d.event_created_at), (stored.seq, NOW));
    }
    assert!(store.delivery("m1", "whd_orphan").await.unwrap().is_none());
    assert!(store
        .event_deliveries("m2", "evt_1", 50)
        .await
        .unwrap()
        .is_empty());
    // The payment's deliveries, as the timeline reads them.
    let of_payment = store
        .deliveries(
            "m1",
            &DeliveryFilter {
                payment_id: Some("pay_1".to_owned()),
                limit: 10,
                ..DeliveryFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(of_payment.len(), 2);
}

fn secret(endpoint_id: &str, sealed: u8, created_at: i64) -> EndpointSecretRow {
    EndpointSecretRow {
        endpoint_id: endpoint_id.to_owned(),
        merchant_id: "m1".to_owned(),
        sealed: vec![sealed],
        bound_to: "endpoint".to_owned(),
        created_at,
        expires_at: None,
    }
}

pub(super) async fn endpoints_and_their_secrets_round_trip(backend: Backend) {
    let store = open(backend).await;
    let mut second = endpoint("m1", "we_2", NOW + 1);
    second.enabled_events = "[\"payment.failed\"]".to_owned();
    second.description = Some("failures".to_owned());
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            Change::InsertMerchant(merchant("m2")),
            Change::InsertEndpoint(Box::new(second)),
            Change::InsertEndpoint(Box::new(endpoint("m1", "we_1", NOW))),
            Change::AddEndpointSecret(Box::new(secret("we_1", 1, NOW))),
        ])
        .await
        .unwrap();
    let all = store.endpoints("m1").await.unwrap();
    assert_eq!(ids(&all, |e| &e.id), ["we_1", "we_2"], "oldest first");
    assert!(store.endpoints("m2").await.unwrap().is_empty());
    assert!(store.endpoint("m2", "we_1").await.unwrap().is_none());
    let two = store.endpoint("m1", "we_2").await.unwrap().unwrap();
    assert_eq!(two.enabled_events, "[\"payment.failed\"]");
    assert_eq!(two.description.as_deref(), Some("failures"));

    // An update changes what it names and resets the backoff.
    store
        .commit(vec![Change::EndpointFailed {
            endpoint_id: "we_2".to_owned(),
            retry_at: NOW + 100,
            after: 1,
        }])
        .await
        .unwrap();
    assert_eq!(
        store.endpoint("m1", "we_2").await.unwrap().unwrap().blocked_until,
        NOW + 100
    );
    let mut changed = two.clone();
    changed.url = "https://merchant.example/new".to_owned();
    changed.enabled = false;
    changed.description = None;
    changed.updated_at = NOW + 50;
    store
        .commit(vec![Change::UpdateEndpoint(Box::new(changed))])
        .await
        .unwrap();
    let two = store.endpoint("m1", "we_2").await.unwrap().unwrap();
    assert_eq!(
        (
            two.url.as_str(),
            two.enabled,
            two.description.clone(),
            two.updated_at
        ),
        ("https://merchant.example/new", false, None, NOW + 50)
    );
    assert_eq!((two.failures, two.blocked_until), (0, 0));

    // A rotation with a grace period: both valid, the new first, until it ends.
    store
        .commit(vec![
            Change::ExpireEndpointSecrets {
                endpoint_id: "we_1".to_owned(),
                until: NOW + 1_000,
                now: NOW + 10,
            },
            Change::AddEndpointSecret(Box::new(secret("we_1", 2, NOW + 10))),
        ])
        .await
        .unwrap();
    let valid = |at: i64| {
        let store = store.store.clone();
        async move {
            store
                .endpoint_secrets("we_1", at)
                .await
                .unwrap()
                .iter()
                .map(|s| s.sealed[0])
                .collect::<Vec<u8>>()
        }
    };
    assert_eq!(valid(NOW + 20).await, [2, 1]);
    assert_eq!(
        valid(NOW + 1_000).await,
        [2],
        "the old one ends with its grace period"
    );
    // A rotation without grace: only the newest.
    store
        .commit(vec![
            Change::ExpireEndpointSecrets {
                endpoint_id: "we_1".to_owned(),
                until: NOW + 30,
                now: NOW + 30,
            },
            Change::AddEndpointSecret(Box::new(secret("we_1", 3, NOW + 30))),
        ])
        .await
        .unwrap();
    assert_eq!(valid(NOW + 31).await, [3]);
    assert!(store.endpoint_secrets("we_2", NOW).await.unwrap().is_empty());
}

pub(super) async fn a_deleted_endpoint_gives_up_its_pending_deliveries(backend: Backend) {
    let store = open(backend).await;
    let to = |id: &str, endpoint_id: &str| {
        let mut row = delivery(id, "pay_1", "payment.completed", NOW);
        row.endpoint_id = Some(endpoint_id.to_owned());
        Change::InsertDelivery(Box::new(row))
    };
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            Change::InsertEndpoint(Box::new(endpoint("m1", "we_gone", NOW))),
            Change::InsertEndpoint(Box::new(endpoint("m1", "we_kept", NOW))),
            Change::AddEndpointSecret(Box::new(secret("we_gone", 1, NOW))),
            to("d_gone", "we_gone"),
            to("d_kept", "we_kept"),
        ])
        .await
        .unwrap();
    store
        .commit(vec![Change::DeleteEndpoint {
            merchant_id: "m1".to_owned(),
            id: "we_gone".to_owned(),
            reason: "the webhook endpoint was deleted".to_owned(),
        }])
        .await
        .unwrap();
    assert!(store.endpoint("m1", "we_gone").await.unwrap().is_none());
    assert!(store.endpoint_secrets("we_gone", NOW).await.unwrap().is_empty());
    let gone = store.delivery("m1", "d_gone").await.unwrap().unwrap();
    assert_eq!(gone.status, DeliveryStatus::Failed);
    assert_eq!(
        gone.last_error.as_deref(),
        Some("the webhook endpoint was deleted")
    );
    let kept = store.delivery("m1", "d_kept").await.unwrap().unwrap();
    assert_eq!(kept.status, DeliveryStatus::Pending);
    let claimed = store.claim_deliveries(NOW + 1, NOW + 100, 10, 10).await.unwrap();
    assert_eq!(ids(&claimed, |d| &d.id), ["d_kept"]);
}

pub(super) async fn a_merchant_has_at_most_sixteen_endpoints(backend: Backend) {
    let store = open(backend).await;
    let mut changes = vec![
        Change::InsertMerchant(merchant("m1")),
        Change::InsertMerchant(merchant("m2")),
    ];
    for n in 0..MAX_ENDPOINTS {
        changes.push(Change::InsertEndpoint(Box::new(endpoint(
            "m1",
            &format!("we_{n}"),
            NOW + n,
        ))));
    }
    store.commit(changes).await.unwrap();
    let refused = store
        .commit(vec![Change::InsertEndpoint(Box::new(endpoint(
            "m1", "we_extra", NOW,
        )))])
        .await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    assert_eq!(store.endpoints("m1").await.unwrap().len(), 16);
    // Another merchant's count is its own.
    store
        .commit(vec![Change::InsertEndpoint(Box::new(endpoint(
            "m2", "we_m2", NOW,
        )))])
        .await
        .unwrap();
    // Two creates racing for m2's last place (several instances on one
    // PostgreSQL database): one is stored, the other refused.
    let mut changes = Vec::new();
    for n in 1..MAX_ENDPOINTS - 1 {
        changes.push(Change::InsertEndpoint(Box::new(endpoint(
            "m2",
            &format!("we_m2_{n}"),
            NOW + n,
        ))));
    }
    store.commit(changes).await.unwrap();
    let racer = |id: &str| store.commit(vec![Change::InsertEndpoint(Box::new(endpoint("m2", id, NOW)))]);
    let (first, second) = tokio::join!(racer("we_race_1"), racer("we_race_2"));
    assert!(
        first.is_ok() != second.is_ok(),
        "exactly one of the racing creates is stored: {first:?} {second:?}"
    );
    for refused in [first, second].into_iter().filter_map(Result::err) {
        assert!(
            matches!(refused, StoreError::Conflict(TOO_MANY_ENDPOINTS)),
            "{refused:?}"
        );
    }
    assert_eq!(store.endpoints("m2").await.unwrap().len(), 16);
}

pub(super) async fn old_events_are_pruned_unless_a_delivery_is_pending(backend: Backend) {
    let store = open(backend).await;
    let cutoff = NOW + 10_000;
    let mut pending = delivery("d_pending", "pay_1", "payment.completed", NOW);
    pending.event_id = "evt_pending".to_owned();
    let mut done = delivery("d_done", "pay_1", "payment.completed", NOW);
    done.event_id = "evt_done".to_owned();
    let mut changes = vec![Change::InsertMerchant(merchant("m1"))];
    for id in ["evt_old_1", "evt_old_2", "evt_old_3", "evt_pending", "evt_done"] {
        changes.push(insert(event_row("m1", id, "pay_1", "payment.completed", NOW)));
    }
    changes.push(insert(event_row(
        "m1",
        "evt_recent",
        "pay_1",
        "payment.completed",
        NOW + 20_000,
    )));
    changes.push(Change::InsertDelivery(Box::new(pending)));
    changes.push(Change::InsertDelivery(Box::new(done)));
    changes.push(Change::RecordAttempt {
        attempt: attempt("d_done", 1, Some(200)),
        outcome: DeliveryOutcome::Delivered,
    });
    store.store.commit(changes).await.unwrap();
    assert_eq!(store.prune_events(cutoff, 2).await.unwrap(), 2);
    assert_eq!(store.prune_events(cutoff, 2).await.unwrap(), 2);
    assert_eq!(store.prune_events(cutoff, 2).await.unwrap(), 0);
    for (id, kept) in [
        ("evt_old_1", false),
        ("evt_old_3", false),
        ("evt_done", false),
        ("evt_pending", true),
        ("evt_recent", true),
    ] {
        assert_eq!(store.event("m1", id).await.unwrap().is_some(), kept, "{id}");
    }
}

pub(super) async fn the_events_migration_keeps_deliveries_urls_and_secrets(backend: Backend) {
    let (url, _dir) = database(backend).await;
    let sealed = match backend {
        Backend::Sqlite => "X'0A0B0C'",
        Backend::Postgres => "'\\x0a0b0c'::bytea",
    };
    // Version 7 / 8: one URL and secret per merchant, deliveries keyed by
    // change, the merchant's endpoint backed off. m2 removed its URL with a
    // delivery still pending.
    let before = format!(
        "INSERT INTO merchants (id, name, webhook_url, created_at) VALUES \
         ('m1', 'm', 'https://m1.example/hooks', 1), ('m2', 'n', NULL, 2); \
         INSERT INTO merchant_signing_secrets (merchant_id, sealed, updated_at) VALUES \
         ('m1', {sealed}, 3), ('m2', {sealed}, 4); \
         INSERT INTO webhook_endpoints (merchant_id, failures, blocked_until, updated_at) VALUES ('m1', 2, 99, 5); \
         INSERT INTO webhook_deliveries (id, merchant_id, payment_id, event_type, source_event, payment, url, \
         status, attempts, next_attempt_at, created_at, refund) VALUES \
         ('evt_a', 'm1', 'pay_1', 'payment.completed', 'bus-a', '{{\"id\":\"pay_1\"}}', 'https://m1.example/hooks', \
          'delivered', 1, 10, 10, NULL), \
         ('evt_b', 'm1', 'pay_1', 'payment.refunded', 'bus-b', '{{\"id\":\"pay_1\"}}', 'https://m1.example/hooks', \
          'pending', 0, 20, 20, '{{\"id\":\"ref_1\"}}'), \
         ('evt_c', 'm2', 'pay_2', 'payment.completed', 'bus-c', '{{\"id\":\"pay_2\"}}', 'https://m2.example/old', \
          'pending', 0, 30, 30, NULL);"
    );
    migrate_from(backend, &url, [7, 8], &before).await;
    let store = open_url(backend, &url).await;

    // Each delivery's event, with the delivery's id and sequence.
    let old_b = store.delivery("m1", "evt_b").await.unwrap().unwrap();
    let event_b = store.event("m1", "evt_b").await.unwrap().unwrap();
    assert_eq!(event_b.seq, old_b.seq);
    assert_eq!((old_b.event_id.as_str(), old_b.event_seq), ("evt_b", old_b.seq));
    assert_eq!(old_b.event_created_at, 20);
    assert_eq!(event_b.refund.as_deref(), Some("{\"id\":\"ref_1\"}"));
    assert_eq!(
        ids(&store.events_after("m1", 0, &[], 10).await.unwrap(), |e| &e.id),
        ["evt_a", "evt_b"]
    );
    // The URL became the merchant's endpoint, with its backoff and its secret
    // (still sealed for the merchant).
    let endpoints = store.endpoints("m1").await.unwrap();
    assert_eq!(endpoints.len(), 1);
    let endpoint = &endpoints[0];
    assert!(endpoint.id.starts_with("we_"), "{}", endpoint.id);
    assert_eq!(
        (
            endpoint.url.as_str(),
            endpoint.enabled,
            endpoint.enabled_events.as_str()
        ),
        ("https://m1.example/hooks", true, "[\"*\"]")
    );
    assert_eq!((endpoint.failures, endpoint.blocked_until), (2, 99));
    let secrets = store.endpoint_secrets(&endpoint.id, NOW).await.unwrap();
    assert_eq!(secrets.len(), 1);
    assert_eq!(
        (secrets[0].sealed.as_slice(), secrets[0].bound_to.as_str()),
        (&[10u8, 11, 12][..], "merchant")
    );
    assert_eq!(old_b.endpoint_id.as_deref(), Some(endpoint.id.as_str()));
    assert!(store.merchant("m1").await.unwrap().unwrap().webhook_url.is_none());
    // m2 had no URL: no endpoint; its pending delivery keeps its URL and the merchant's secret.
    assert!(store.endpoints("m2").await.unwrap().is_empty());
    let orphan = store.delivery("m2", "evt_c").await.unwrap().unwrap();
    assert_eq!(
        (orphan.endpoint_id.as_deref(), orphan.url.as_str()),
        (None, "https://m2.example/old")
    );
    assert_eq!(store.signing_secret("m2").await.unwrap(), Some(vec![10, 11, 12]));
    // New events come after every delivery of before.
    store
        .commit(vec![insert(event_row(
            "m1",
            "evt_new",
            "pay_1",
            "payment.completed",
            NOW,
        ))])
        .await
        .unwrap();
    let new = store.event("m1", "evt_new").await.unwrap().unwrap();
    let orphan_seq = orphan.seq;
    assert!(
        new.seq > orphan_seq.max(old_b.seq),
        "{} after {}",
        new.seq,
        orphan_seq
    );
}

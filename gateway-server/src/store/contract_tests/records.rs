//! The contract of merchants, keys and credentials, payments and refunds,
//! customers and cards, and idempotency records.

use gateway_core::{IntentStatus, PaymentStatus};

use super::*;
use crate::domain::records::ProviderAccount;
use crate::domain::scopes::Scopes;

pub(super) async fn merchants_keys_and_credentials_round_trip(backend: Backend) {
    let store = open(backend).await;
    assert_eq!(store.merchant_count().await.unwrap(), 0);
    let key = ApiKeyRow {
        id: "k1".to_owned(),
        merchant_id: "m1".to_owned(),
        key_hash: "hash-1".to_owned(),
        prefix: "gw_live_ab".to_owned(),
        scopes: Scopes::all(),
        created_at: NOW,
        revoked_at: None,
    };
    let credential = |masked: &str, at| CredentialRow {
        merchant_id: "m1".to_owned(),
        provider: "stripe".to_owned(),
        sealed: vec![1, 2, 3, 0, 255],
        masked: masked.to_owned(),
        updated_at: at,
    };
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            Change::InsertMerchant(merchant("m2")),
            Change::InsertApiKey(key.clone()),
            Change::UpsertCredential(credential("{\"secret_key\":\"sk_…1\"}", NOW)),
        ])
        .await
        .unwrap();
    assert_eq!(store.merchant_count().await.unwrap(), 2);
    let m1 = store.merchant("m1").await.unwrap().unwrap();
    assert_eq!((m1.name.as_str(), m1.created_at), ("merchant m1", NOW));
    assert!(store.merchant("nobody").await.unwrap().is_none());

    let found = store.api_key_by_hash("hash-1").await.unwrap().unwrap();
    assert_eq!((found.id.as_str(), found.prefix.as_str()), ("k1", "gw_live_ab"));
    assert_eq!(found.scopes, Scopes::all());
    assert_eq!(found.revoked_at, None);
    assert!(store.api_key_by_hash("hash-2").await.unwrap().is_none());

    // A newer credential replaces the provider's; revoking is once.
    store
        .commit(vec![
            Change::UpsertCredential(credential("{\"secret_key\":\"sk_…2\"}", NOW + 1)),
            Change::RevokeApiKey {
                merchant_id: "m1".to_owned(),
                id: "k1".to_owned(),
                at: NOW + 5,
            },
        ])
        .await
        .unwrap();
    store
        .commit(vec![Change::RevokeApiKey {
            merchant_id: "m1".to_owned(),
            id: "k1".to_owned(),
            at: NOW + 9,
        }])
        .await
        .unwrap();
    let keys = store.api_keys("m1").await.unwrap();
    assert_eq!(ids(&keys, |k| &k.id), ["k1"]);
    assert_eq!(keys[0].revoked_at, Some(NOW + 5));
    assert!(store.api_keys("m2").await.unwrap().is_empty());
    let credentials = store.credentials("m1").await.unwrap();
    assert_eq!(credentials.len(), 1);
    assert_eq!(credentials[0].masked, "{\"secret_key\":\"sk_…2\"}");
    assert_eq!(
        (credentials[0].sealed.as_slice(), credentials[0].updated_at),
        (&[1u8, 2, 3, 0, 255][..], NOW + 1)
    );
    assert_eq!(store.signing_secret("m2").await.unwrap(), None);
}

pub(super) async fn payments_and_refunds_round_trip(backend: Backend) {
    let store = open(backend).await;
    let mut row = payment(
        "m1",
        "pay_1",
        intent("pi_1", IntentStatus::Processing, 1250, "EUR"),
        NOW,
    );
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            Change::InsertMerchant(merchant("m2")),
            Change::InsertPayment(Box::new(row.clone())),
        ])
        .await
        .unwrap();
    let read = store.payment("m1", "pay_1").await.unwrap().unwrap();
    assert_eq!(read.intent, row.intent);
    assert_eq!(read.idempotency_key.as_deref(), Some("key-pay_1"));
    assert_eq!(read.customer_email.as_deref(), Some("a@example.com"));
    assert!(
        store.payment("m2", "pay_1").await.unwrap().is_none(),
        "another merchant's"
    );

    // The update shows through every read, cached or not.
    row.intent.status = IntentStatus::Succeeded;
    row.intent.amount_received = 1250;
    row.amount_refunded = 250;
    row.updated_at = NOW + 10;
    let re = refund("re_1", "pi_1", 250);
    store
        .commit(vec![
            Change::update_payment(&mut row),
            Change::InsertRefund(Box::new(RefundRow {
                id: "ref_1".to_owned(),
                merchant_id: "m1".to_owned(),
                payment_id: "pay_1".to_owned(),
                refund: re.clone(),
                created_at: NOW + 10,
                updated_at: NOW + 10,
            })),
        ])
        .await
        .unwrap();
    let read = store.payment("m1", "pay_1").await.unwrap().unwrap();
    assert_eq!(
        (read.status(), read.amount_refunded, read.updated_at),
        (PaymentStatus::PartiallyRefunded, 250, NOW + 10)
    );
    let by_ref = store
        .payment_by_provider_ref(None, "mock", "pi_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_ref.id, "pay_1");
    assert_eq!(by_ref.intent.status, IntentStatus::Succeeded);
    assert!(store
        .payment_by_provider_ref(Some("m1"), "mock", "pi_1")
        .await
        .unwrap()
        .is_some());
    assert!(store
        .payment_by_provider_ref(Some("m2"), "mock", "pi_1")
        .await
        .unwrap()
        .is_none());
    assert!(store
        .payment_by_provider_ref(None, "stripe", "pi_1")
        .await
        .unwrap()
        .is_none());

    let stored = store.refund("m1", "ref_1").await.unwrap().unwrap();
    assert_eq!((stored.payment_id.as_str(), &stored.refund), ("pay_1", &re));
    assert!(store.refund("m2", "ref_1").await.unwrap().is_none());
    let of_payment = store.refunds_of_payment("pay_1").await.unwrap();
    assert_eq!(ids(&of_payment, |r| &r.id), ["ref_1"]);
    assert_eq!(of_payment[0], stored);
    assert!(store.refunds_of_payment("pay_2").await.unwrap().is_empty());
}

pub(super) async fn many_payments_in_one_commit(backend: Backend) {
    let store = open(backend).await;
    // More than one multi-row chunk (32, 8, 1, …), each with its own JSON.
    let rows: Vec<PaymentRow> = (0..45)
        .map(|n| {
            let intent = intent(&format!("pi_{n}"), IntentStatus::Processing, 100 + n, "USD");
            payment("m1", &format!("pay_{n:02}"), intent, NOW + n)
        })
        .collect();
    let mut changes = vec![Change::InsertMerchant(merchant("m1"))];
    changes.extend(
        rows.iter()
            .cloned()
            .map(|row| Change::InsertPayment(Box::new(row))),
    );
    store.commit(changes).await.unwrap();
    let filter = PaymentFilter {
        limit: 100,
        ..PaymentFilter::default()
    };
    let listed = store.payments("m1", &filter).await.unwrap();
    assert_eq!(listed.len(), 45);
    for (read, written) in listed.iter().zip(rows.iter().rev()) {
        assert_eq!((&read.id, &read.intent), (&written.id, &written.intent));
    }
}

pub(super) async fn payment_filters_and_pagination(backend: Backend) {
    let store = open(backend).await;
    let p = |id: &str, status, amount, currency, provider: &str, at| {
        let mut row = payment(
            "m1",
            id,
            intent(&format!("pi_{id}"), status, amount, currency),
            at,
        );
        row.provider = provider.to_owned();
        Change::InsertPayment(Box::new(row))
    };
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            Change::InsertMerchant(merchant("m2")),
            p("a", IntentStatus::Processing, 1_000, "USD", "mock", NOW),
            p("b", IntentStatus::Succeeded, 2_000, "USD", "stripe", NOW + 1),
            p("c", IntentStatus::Succeeded, 300, "JPY", "mock", NOW + 2),
            p("d", IntentStatus::Canceled, 5_000, "EUR", "mock", NOW + 3),
            Change::InsertPayment(Box::new(payment(
                "m2",
                "other",
                intent("pi_other", IntentStatus::Succeeded, 1, "USD"),
                NOW,
            ))),
        ])
        .await
        .unwrap();
    let list = |filter: PaymentFilter| {
        let store = store.store.clone();
        async move {
            let rows = store
                .payments("m1", &PaymentFilter { limit: 10, ..filter })
                .await
                .unwrap();
            ids(&rows, |row| &row.id)
        }
    };
    assert_eq!(list(PaymentFilter::default()).await, ["d", "c", "b", "a"]);
    let by_provider = PaymentFilter {
        provider: Some("stripe".to_owned()),
        ..PaymentFilter::default()
    };
    assert_eq!(list(by_provider).await, ["b"]);
    let completed = PaymentFilter {
        status: Some(PaymentStatus::Completed),
        ..PaymentFilter::default()
    };
    assert_eq!(list(completed).await, ["c", "b"]);
    let usd = PaymentFilter {
        currency: Some("USD".to_owned()),
        ..PaymentFilter::default()
    };
    assert_eq!(list(usd).await, ["b", "a"]);
    // Amounts compare across currencies: 300 JPY (300.00) is above 20.00, 50.00 EUR too.
    let amounts = PaymentFilter {
        min_amount_e4: Some(amount_e4(1_000, 2)),
        max_amount_e4: Some(amount_e4(2_000, 2)),
        ..PaymentFilter::default()
    };
    assert_eq!(list(amounts).await, ["b", "a"]);
    let window = PaymentFilter {
        since_ms: Some(NOW + 1),
        until_ms: Some(NOW + 2),
        ..PaymentFilter::default()
    };
    assert_eq!(list(window).await, ["c", "b"]);
    // Pages: two at a time, each after the last id of the one before.
    let first = store
        .payments(
            "m1",
            &PaymentFilter {
                limit: 2,
                ..PaymentFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(&first, |row| &row.id), ["d", "c"]);
    let second = PaymentFilter {
        after_id: Some("c".to_owned()),
        limit: 2,
        ..PaymentFilter::default()
    };
    assert_eq!(
        ids(&store.payments("m1", &second).await.unwrap(), |row| &row.id),
        ["b", "a"]
    );
    let past_the_end = PaymentFilter {
        after_id: Some("a".to_owned()),
        ..PaymentFilter::default()
    };
    assert!(list(past_the_end).await.is_empty());
    let foreign_cursor = PaymentFilter {
        after_id: Some("other".to_owned()),
        ..PaymentFilter::default()
    };
    assert!(
        list(foreign_cursor).await.is_empty(),
        "another merchant's id is no cursor"
    );
}

pub(super) async fn stale_payments_are_the_old_pending_ones(backend: Backend) {
    let store = open(backend).await;
    let p = |id: &str, status, at| {
        Change::InsertPayment(Box::new(payment(
            "m1",
            id,
            intent(&format!("pi_{id}"), status, 100, "USD"),
            at,
        )))
    };
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            p("new", IntentStatus::Processing, NOW + 100),
            p("old", IntentStatus::RequiresAction, NOW),
            p("older", IntentStatus::Processing, NOW - 100),
            p("done", IntentStatus::Succeeded, NOW - 200),
        ])
        .await
        .unwrap();
    let stale = store.stale_payments(NOW + 50, 10).await.unwrap();
    assert_eq!(ids(&stale, |row| &row.id), ["older", "old"]);
    assert_eq!(store.stale_payments(NOW + 50, 1).await.unwrap().len(), 1);
}

pub(super) async fn customers_and_cards_round_trip(backend: Backend) {
    let store = open(backend).await;
    let card = |id: &str, email: &str, at| CardRow {
        id: id.to_owned(),
        merchant_id: "m1".to_owned(),
        provider: "mock".to_owned(),
        provider_customer_id: "cus_1".to_owned(),
        provider_payment_method: format!("pm_{id}"),
        customer_email: email.to_owned(),
        brand: "visa".to_owned(),
        last4: "4242".to_owned(),
        exp_month: 12,
        exp_year: 2030,
        is_default: false,
        active: true,
        provider_account: None,
        created_at: at,
    };
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            Change::InsertCustomer(CustomerRow {
                merchant_id: "m1".to_owned(),
                provider: "mock".to_owned(),
                email: "a@example.com".to_owned(),
                provider_customer_id: "cus_1".to_owned(),
                provider_account: None,
                created_at: NOW,
            }),
            Change::InsertCard(card("c1", "a@example.com", NOW)),
            Change::InsertCard(card("c2", "a@example.com", NOW + 1)),
            Change::InsertCard(card("c3", "b@example.com", NOW + 2)),
            Change::SetDefaultCard {
                merchant_id: "m1".to_owned(),
                email: "a@example.com".to_owned(),
                card_id: "c1".to_owned(),
            },
        ])
        .await
        .unwrap();
    let customer = store
        .customer("m1", "mock", "a@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (customer.provider_customer_id.as_str(), customer.created_at),
        ("cus_1", NOW)
    );
    assert!(store
        .customer("m1", "stripe", "a@example.com")
        .await
        .unwrap()
        .is_none());
    let c1 = store.card("m1", "c1").await.unwrap().unwrap();
    assert!(c1.is_default && c1.active);
    assert_eq!(
        (c1.exp_month, c1.exp_year, c1.provider_payment_method.as_str()),
        (12, 2030, "pm_c1")
    );
    assert!(store.card("m2", "c1").await.unwrap().is_none());
    assert_eq!(
        ids(&store.cards("m1", None).await.unwrap(), |c| &c.id),
        ["c3", "c2", "c1"]
    );
    assert_eq!(
        ids(&store.cards("m1", Some("a@example.com")).await.unwrap(), |c| &c
            .id),
        ["c2", "c1"]
    );

    // One default per email; a deactivated card is listed no more.
    store
        .commit(vec![
            Change::SetDefaultCard {
                merchant_id: "m1".to_owned(),
                email: "a@example.com".to_owned(),
                card_id: "c2".to_owned(),
            },
            Change::DeactivateCard {
                merchant_id: "m1".to_owned(),
                id: "c2".to_owned(),
            },
        ])
        .await
        .unwrap();
    let c1 = store.card("m1", "c1").await.unwrap().unwrap();
    let c2 = store.card("m1", "c2").await.unwrap().unwrap();
    assert!(!c1.is_default);
    assert!(!c2.is_default && !c2.active);
    assert_eq!(
        ids(&store.cards("m1", Some("a@example.com")).await.unwrap(), |c| &c
            .id),
        ["c1"]
    );
}

pub(super) async fn idempotency_records_begin_complete_expire_and_purge(backend: Backend) {
    let store = open(backend).await;
    let day = crate::domain::records::IDEMPOTENCY_RETENTION_MS;
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            Change::SaveIdempotency(record("m1", "old", 200, 1_000)),
            Change::SaveIdempotency(record("m2", "old", 409, 5_000)),
            Change::BeginIdempotency(in_progress("m1", "new", "fp-new", 5_000)),
        ])
        .await
        .unwrap();
    let old = store.idempotency("m1", "old").await.unwrap().unwrap();
    let response = old.response.expect("a done record");
    assert_eq!(
        (
            response.status,
            old.fingerprint.as_str(),
            response.body.as_slice()
        ),
        (200, "fp-200", &b"{\"status\":200}"[..])
    );
    assert_eq!(
        store
            .idempotency("m2", "old")
            .await
            .unwrap()
            .unwrap()
            .response
            .unwrap()
            .status,
        409,
        "keys are per merchant"
    );
    let started = store.idempotency("m1", "new").await.unwrap().unwrap();
    assert!(started.response.is_none(), "in progress");
    assert_eq!(started.resource_id.as_deref(), Some("res-new"));

    // A live key cannot be begun again, nor answered by another request.
    let again = store
        .commit(vec![Change::BeginIdempotency(in_progress(
            "m1", "new", "fp-new", 6_000,
        ))])
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let other = store
        .commit(vec![Change::SaveIdempotency(record("m1", "new", 201, 6_000))])
        .await;
    assert!(matches!(other, Err(StoreError::Conflict(_))), "{other:?}");
    assert!(store
        .idempotency("m1", "old")
        .await
        .unwrap()
        .unwrap()
        .response
        .is_some());
    let taken = store
        .commit(vec![Change::SaveIdempotency(record("m1", "old", 502, 6_000))])
        .await;
    assert!(
        matches!(taken, Err(StoreError::Conflict(_))),
        "a done record is never replaced while fresh"
    );

    // Its own request completes it.
    let mut done = in_progress("m1", "new", "fp-new", 5_000);
    done.response = Some(crate::domain::records::StoredResponse {
        status: 201,
        body: b"{}".to_vec(),
    });
    store.commit(vec![Change::SaveIdempotency(done)]).await.unwrap();
    let completed = store.idempotency("m1", "new").await.unwrap().unwrap();
    assert_eq!(
        (completed.response.unwrap().status, completed.created_at),
        (201, 5_000)
    );

    // An expired record gives its key to a new request.
    store
        .commit(vec![Change::BeginIdempotency(in_progress(
            "m1",
            "old",
            "fp-again",
            1_000 + day + 1,
        ))])
        .await
        .unwrap();
    let reused = store.idempotency("m1", "old").await.unwrap().unwrap();
    assert_eq!(
        (reused.fingerprint.as_str(), reused.response.is_none()),
        ("fp-again", true)
    );

    assert_eq!(store.purge_idempotency(5_500).await.unwrap(), 2);
    assert!(store.idempotency("m1", "new").await.unwrap().is_none());
    assert!(store.idempotency("m1", "old").await.unwrap().is_some());
    assert_eq!(store.purge_idempotency(5_500).await.unwrap(), 0);
}

pub(super) async fn payment_updates_apply_to_the_version_read_and_refs_are_unique(backend: Backend) {
    let store = open(backend).await;
    let mut draft = payment(
        "m1",
        "pay_1",
        intent("", IntentStatus::RequiresPaymentMethod, 500, "USD"),
        NOW,
    );
    draft.pending_step = Some(crate::domain::records::PendingStep::CreateConfirm);
    let mut other_draft = payment(
        "m1",
        "pay_2",
        intent("", IntentStatus::RequiresPaymentMethod, 500, "USD"),
        NOW,
    );
    other_draft.pending_step = Some(crate::domain::records::PendingStep::Create);
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            Change::InsertPayment(Box::new(draft.clone())),
            Change::InsertPayment(Box::new(other_draft)),
        ])
        .await
        .expect("drafts have no provider reference yet, so they do not collide");
    let read = store.payment("m1", "pay_1").await.unwrap().unwrap();
    assert_eq!(
        (read.pending_step, read.version),
        (Some(crate::domain::records::PendingStep::CreateConfirm), 0)
    );
    let listed = store.unresolved_payments(NOW + 1, 10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        store.stale_payments(NOW + 1, 10).await.unwrap().is_empty(),
        "unresolved rows are not stale ones"
    );

    // Two writers read version 0: the first update lands, the second conflicts.
    let mut first = read.clone();
    first.intent = intent("pi_1", IntentStatus::RequiresConfirmation, 500, "USD");
    first.pending_step = Some(crate::domain::records::PendingStep::Confirm);
    let mut second = read.clone();
    second.return_url = Some("https://shop.example/back".to_owned());
    store
        .commit(vec![Change::update_payment(&mut first)])
        .await
        .unwrap();
    assert_eq!(first.version, 1);
    let lost = store.commit(vec![Change::update_payment(&mut second)]).await;
    assert!(matches!(lost, Err(StoreError::Conflict(_))), "{lost:?}");
    let read = store.payment("m1", "pay_1").await.unwrap().unwrap();
    assert_eq!(
        (read.intent.id.as_str(), read.version, read.return_url),
        ("pi_1", 1, None)
    );

    // A second row for the same provider intent is refused.
    let twin = payment(
        "m1",
        "pay_3",
        intent("pi_1", IntentStatus::Succeeded, 500, "USD"),
        NOW,
    );
    let duplicate = store.commit(vec![Change::InsertPayment(Box::new(twin))]).await;
    assert!(
        matches!(duplicate, Err(StoreError::Duplicate(_))),
        "{duplicate:?}"
    );
    assert!(store.payment("m1", "pay_3").await.unwrap().is_none());

    // A draft the provider refused is removed; a row with an intent never is.
    store
        .commit(vec![
            Change::DeleteDraftPayment {
                merchant_id: "m1".into(),
                id: "pay_2".into(),
            },
            Change::DeleteDraftPayment {
                merchant_id: "m1".into(),
                id: "pay_1".into(),
            },
        ])
        .await
        .unwrap();
    assert!(store.payment("m1", "pay_2").await.unwrap().is_none());
    assert!(store.payment("m1", "pay_1").await.unwrap().is_some());
}

pub(super) async fn a_failing_change_rolls_back_its_whole_commit(backend: Backend) {
    let store = open(backend).await;
    store
        .commit(vec![Change::InsertMerchant(merchant("m1"))])
        .await
        .unwrap();
    let duplicate = store
        .commit(vec![
            Change::SaveIdempotency(record("m1", "with-bad", 200, 1)),
            Change::InsertMerchant(merchant("m1")),
        ])
        .await;
    assert!(duplicate.is_err(), "a second merchant m1");
    assert!(store.idempotency("m1", "with-bad").await.unwrap().is_none());
    assert_eq!(store.merchant_count().await.unwrap(), 1);
    store
        .commit(vec![Change::SaveIdempotency(record("m1", "good", 200, 1))])
        .await
        .unwrap();
    assert!(store.idempotency("m1", "good").await.unwrap().is_some());
}

/// The account a payment, customer or card was made on is stored and read
/// back (NULL for rows that predate it), and a customer stored again for
/// the same email (made on another account) replaces the one before.
pub(super) async fn provider_accounts_round_trip(backend: Backend) {
    let store = open(backend).await;
    let mut pinned = payment(
        "m1",
        "p1",
        intent("pi_1", IntentStatus::Succeeded, 1000, "USD"),
        NOW,
    );
    pinned.provider_account = Some(ProviderAccount::Merchant);
    let legacy = payment(
        "m1",
        "p2",
        intent("pi_2", IntentStatus::Succeeded, 1000, "USD"),
        NOW,
    );
    let customer = |id: &str, account| CustomerRow {
        merchant_id: "m1".to_owned(),
        provider: "mock".to_owned(),
        email: "a@example.com".to_owned(),
        provider_customer_id: id.to_owned(),
        provider_account: Some(account),
        created_at: NOW,
    };
    let card = CardRow {
        id: "c1".to_owned(),
        merchant_id: "m1".to_owned(),
        provider: "mock".to_owned(),
        provider_customer_id: "cus_gateway".to_owned(),
        provider_payment_method: "pm_1".to_owned(),
        customer_email: "a@example.com".to_owned(),
        brand: "visa".to_owned(),
        last4: "4242".to_owned(),
        exp_month: 12,
        exp_year: 2030,
        is_default: true,
        active: true,
        provider_account: Some(ProviderAccount::Gateway),
        created_at: NOW,
    };
    store
        .commit(vec![
            Change::InsertMerchant(merchant("m1")),
            Change::InsertPayment(Box::new(pinned)),
            Change::InsertPayment(Box::new(legacy)),
            Change::InsertCustomer(customer("cus_gateway", ProviderAccount::Gateway)),
            Change::InsertCard(card),
        ])
        .await
        .unwrap();
    let account = |id: &'static str| {
        let store = &store;
        async move { store.payment("m1", id).await.unwrap().unwrap().provider_account }
    };
    assert_eq!(account("p1").await, Some(ProviderAccount::Merchant));
    assert_eq!(account("p2").await, None);
    let card = store.card("m1", "c1").await.unwrap().unwrap();
    assert_eq!(card.provider_account, Some(ProviderAccount::Gateway));

    store
        .commit(vec![Change::InsertCustomer(customer(
            "cus_merchant",
            ProviderAccount::Merchant,
        ))])
        .await
        .unwrap();
    let stored = store
        .customer("m1", "mock", "a@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.provider_customer_id.as_str(), stored.provider_account),
        ("cus_merchant", Some(ProviderAccount::Merchant))
    );
    // The card saved on the customer before keeps its own customer and account.
    let card = store.card("m1", "c1").await.unwrap().unwrap();
    assert_eq!(
        (card.provider_customer_id.as_str(), card.provider_account),
        ("cus_gateway", Some(ProviderAccount::Gateway))
    );
}

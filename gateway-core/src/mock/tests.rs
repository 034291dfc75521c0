use super::*;
use crate::intent::{CaptureMethod, IntentStatus, NextAction};
use crate::money::{Currency, Money};
use crate::provider::CreateCustomer;
use crate::refund::RefundStatus;
use crate::webhook::EventObject;

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::new(text).unwrap()
}

fn usd(decimal: &str) -> Money {
    Money::parse(decimal, Currency::USD).unwrap()
}

fn charge(amount: &str, payment_method: &str) -> CreateIntent {
    let mut request = CreateIntent::new(usd(amount));
    request.payment_method = Some(payment_method.to_owned());
    request.confirm = true;
    request.metadata.insert("order_id".into(), "order-1".into());
    request
}

fn event_types(mock: &MockProvider) -> Vec<String> {
    mock.events().into_iter().map(|event| event.event_type).collect()
}

#[tokio::test]
async fn a_visa_payment_succeeds_and_emits_created_then_succeeded() {
    let mock = MockProvider::new();
    let intent = mock
        .create_intent(charge("50.00", "pm_card_visa"), &key("k1"))
        .await
        .unwrap();
    assert_eq!(intent.status, IntentStatus::Succeeded);
    assert_eq!((intent.amount, intent.amount_received), (5000, 5000));
    assert_eq!(intent.order_id(), Some("order-1"));
    assert!(intent
        .client_secret
        .as_deref()
        .unwrap()
        .starts_with(&format!("{}_secret_", intent.id)));
    assert_eq!(mock.retrieve_intent(&intent.id).await.unwrap(), intent);
    assert_eq!(
        event_types(&mock),
        ["payment_intent.created", "payment_intent.succeeded"]
    );
    assert_eq!(mock.events()[1].intent(), Some(&intent));
    assert_eq!(mock.stats().charges_made, 1);
}

#[tokio::test]
async fn each_decline_card_fails_with_stripes_codes() {
    let cases = [
        ("pm_card_chargeDeclined", "card_declined", "generic_decline"),
        ("pm_card_declined", "card_declined", "generic_decline"),
        (
            "pm_card_chargeDeclinedInsufficientFunds",
            "card_declined",
            "insufficient_funds",
        ),
        (
            "pm_card_chargeDeclinedExpiredCard",
            "expired_card",
            "expired_card",
        ),
        (
            "pm_card_chargeDeclinedIncorrectCvc",
            "incorrect_cvc",
            "incorrect_cvc",
        ),
    ];
    for (card, expected_code, expected_decline) in cases {
        let mock = MockProvider::new();
        let error = mock
            .create_intent(charge("10.00", card), &key("k"))
            .await
            .unwrap_err();
        let ProviderError::CardDeclined {
            code,
            decline_code,
            intent,
            ..
        } = &error
        else {
            panic!("{card}: expected a decline, got {error:?}");
        };
        assert_eq!(code, expected_code, "{card}");
        assert_eq!(decline_code.as_deref(), Some(expected_decline), "{card}");
        let intent = intent.as_deref().unwrap();
        assert_eq!(intent.status, IntentStatus::RequiresPaymentMethod, "{card}");
        assert_eq!(intent.amount_received, 0);
        let last = intent.last_payment_error.as_ref().unwrap();
        assert_eq!(last.decline_code.as_deref(), Some(expected_decline));
        assert_eq!(mock.retrieve_intent(&intent.id).await.unwrap(), *intent);
        assert_eq!(
            event_types(&mock),
            ["payment_intent.created", "payment_intent.payment_failed"]
        );
        assert_eq!(mock.stats().charges_made, 0, "{card}");
    }
}

#[tokio::test]
async fn a_declined_intent_can_be_retried_with_another_card() {
    let mock = MockProvider::new();
    let error = mock
        .create_intent(charge("10.00", "pm_card_chargeDeclined"), &key("k1"))
        .await
        .unwrap_err();
    let intent_id = error.intent().unwrap().id.clone();
    let confirm = ConfirmIntent {
        payment_method: Some("pm_card_mastercard".into()),
        ..Default::default()
    };
    let intent = mock
        .confirm_intent(&intent_id, confirm, &key("k2"))
        .await
        .unwrap();
    assert_eq!(intent.status, IntentStatus::Succeeded);
    assert_eq!(intent.last_payment_error, None);
}

#[tokio::test]
async fn three_d_secure_succeeds_after_authentication() {
    let mock = MockProvider::new();
    let mut request = charge("20.00", "pm_card_threeDSecure2Required");
    request.return_url = Some("https://shop.example/return".into());
    let intent = mock.create_intent(request, &key("k1")).await.unwrap();
    assert_eq!(intent.status, IntentStatus::RequiresAction);
    let Some(NextAction::RedirectToUrl { url, return_url }) = &intent.next_action else {
        panic!("expected a redirect, got {:?}", intent.next_action);
    };
    assert!(url.ends_with(&intent.id));
    assert_eq!(return_url.as_deref(), Some("https://shop.example/return"));
    assert_eq!(mock.stats().charges_made, 0);

    let done = mock.complete_authentication(&intent.id, true).unwrap();
    assert_eq!(done.status, IntentStatus::Succeeded);
    assert_eq!(done.next_action, None);
    assert_eq!(done.amount_received, 2000);
    assert_eq!(
        event_types(&mock),
        [
            "payment_intent.created",
            "payment_intent.requires_action",
            "payment_intent.succeeded"
        ]
    );
    assert_eq!(mock.stats().charges_made, 1);
    assert!(
        mock.complete_authentication(&intent.id, true).is_err(),
        "only once"
    );
}

#[tokio::test]
async fn three_d_secure_failure_returns_to_requires_payment_method() {
    let mock = MockProvider::new();
    let intent = mock
        .create_intent(charge("20.00", "pm_card_threeDSecure2Required"), &key("k1"))
        .await
        .unwrap();
    let failed = mock.complete_authentication(&intent.id, false).unwrap();
    assert_eq!(failed.status, IntentStatus::RequiresPaymentMethod);
    assert_eq!(
        failed.last_payment_error.unwrap().code.as_deref(),
        Some("payment_intent_authentication_failure")
    );
    assert_eq!(
        event_types(&mock).last().unwrap(),
        "payment_intent.payment_failed"
    );
    assert_eq!(mock.stats().charges_made, 0);
}

#[tokio::test]
async fn three_d_secure_off_session_is_declined_as_authentication_required() {
    let mock = MockProvider::new();
    let mut request = charge("20.00", "pm_card_threeDSecure2Required");
    request.off_session = true;
    let error = mock.create_intent(request, &key("k1")).await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::AuthenticationRequired { decline_code: Some(d), .. } if d == "authentication_required"),
        "{error:?}"
    );
    assert_eq!(
        error.intent().unwrap().status,
        IntentStatus::RequiresPaymentMethod
    );
}

#[tokio::test]
async fn manual_capture_in_part_releases_the_rest() {
    let mock = MockProvider::new();
    let mut request = charge("100.00", "pm_card_visa");
    request.capture_method = CaptureMethod::Manual;
    let intent = mock.create_intent(request, &key("k1")).await.unwrap();
    assert_eq!(intent.status, IntentStatus::RequiresCapture);
    assert_eq!((intent.amount_capturable, intent.amount_received), (10_000, 0));
    assert_eq!(event_types(&mock)[1], "payment_intent.amount_capturable_updated");

    let too_much = CaptureIntent {
        amount_to_capture: Some(10_001),
    };
    let error = mock
        .capture_intent(&intent.id, too_much, &key("k2"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::InvalidRequest { ref param, .. } if param.as_deref() == Some("amount_to_capture"))
    );

    let partial = CaptureIntent {
        amount_to_capture: Some(7_500),
    };
    let captured = mock
        .capture_intent(&intent.id, partial, &key("k3"))
        .await
        .unwrap();
    assert_eq!(captured.status, IntentStatus::Succeeded);
    assert_eq!((captured.amount_received, captured.amount_capturable), (7_500, 0));
    let again = mock
        .capture_intent(&intent.id, CaptureIntent::default(), &key("k4"))
        .await
        .unwrap_err();
    assert!(
        matches!(again, ProviderError::InvalidRequest { ref code, .. } if code.as_deref() == Some("payment_intent_unexpected_state"))
    );
}

#[tokio::test]
async fn cancel_works_before_capture_and_not_after_success() {
    let mock = MockProvider::new();
    let mut request = charge("10.00", "pm_card_visa");
    request.capture_method = CaptureMethod::Manual;
    let held = mock.create_intent(request, &key("k1")).await.unwrap();
    let canceled = mock
        .cancel_intent(&held.id, CancelIntent::default(), &key("k2"))
        .await
        .unwrap();
    assert_eq!(canceled.status, IntentStatus::Canceled);
    assert_eq!(canceled.amount_capturable, 0);
    assert_eq!(event_types(&mock).last().unwrap(), "payment_intent.canceled");

    let paid = mock
        .create_intent(charge("10.00", "pm_card_visa"), &key("k3"))
        .await
        .unwrap();
    let error = mock
        .cancel_intent(&paid.id, CancelIntent::default(), &key("k4"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), crate::ProviderErrorKind::InvalidRequest);
}

#[tokio::test]
async fn refunds_in_part_then_in_full_never_above_what_was_captured() {
    let mock = MockProvider::new();
    let mut request = charge("100.00", "pm_card_visa");
    request.capture_method = CaptureMethod::Manual;
    let intent = mock.create_intent(request, &key("k1")).await.unwrap();
    let capture = CaptureIntent {
        amount_to_capture: Some(6_000),
    };
    mock.capture_intent(&intent.id, capture, &key("k2"))
        .await
        .unwrap();

    let first = mock
        .create_refund(CreateRefund::partial(&intent.id, 2_500), &key("r1"))
        .await
        .unwrap();
    assert_eq!((first.amount, first.status), (2_500, RefundStatus::Succeeded));
    assert_eq!(mock.retrieve_refund(&first.id).await.unwrap(), first);

    let over = mock
        .create_refund(CreateRefund::partial(&intent.id, 3_501), &key("r2"))
        .await
        .unwrap_err();
    assert!(
        matches!(over, ProviderError::InvalidRequest { ref code, .. } if code.as_deref() == Some("amount_too_large"))
    );

    let rest = mock
        .create_refund(CreateRefund::full(&intent.id), &key("r3"))
        .await
        .unwrap();
    assert_eq!(rest.amount, 3_500, "a full refund takes what remains");
    let none_left = mock
        .create_refund(CreateRefund::partial(&intent.id, 1), &key("r4"))
        .await
        .unwrap_err();
    assert!(
        matches!(none_left, ProviderError::InvalidRequest { ref code, .. } if code.as_deref() == Some("charge_already_refunded"))
    );
    let refund_events = mock.events().into_iter().filter(|e| e.refund().is_some()).count();
    assert_eq!(refund_events, 2);
}

#[tokio::test]
async fn refund_test_cards_settle_later_and_a_failed_refund_frees_its_amount() {
    let mock = MockProvider::new();
    let pending_card = mock
        .create_intent(charge("10.00", "pm_card_pendingRefund"), &key("k1"))
        .await
        .unwrap();
    let pending = mock
        .create_refund(CreateRefund::full(&pending_card.id), &key("r1"))
        .await
        .unwrap();
    assert_eq!(pending.status, RefundStatus::Pending);
    mock.take_events();
    let settled = mock.settle_refund(&pending.id).unwrap();
    assert_eq!(settled.status, RefundStatus::Succeeded);
    assert_eq!(mock.retrieve_refund(&pending.id).await.unwrap(), settled);
    assert_eq!(event_types(&mock), ["charge.refund.updated"]);
    assert_eq!(
        mock.settle_refund(&pending.id).unwrap(),
        settled,
        "nothing left to settle"
    );
    assert_eq!(mock.events().len(), 1);

    let failing_card = mock
        .create_intent(charge("10.00", "pm_card_refundFail"), &key("k2"))
        .await
        .unwrap();
    let failing = mock
        .create_refund(CreateRefund::partial(&failing_card.id, 600), &key("r2"))
        .await
        .unwrap();
    assert_eq!(
        failing.status,
        RefundStatus::Succeeded,
        "it starts succeeded, as at Stripe"
    );
    let failed = mock.settle_refund(&failing.id).unwrap();
    assert_eq!(failed.status, RefundStatus::Failed);
    assert!(failed.failure_reason.is_some());
    // The failed refund's amount can be refunded again.
    let again = mock
        .create_refund(CreateRefund::full(&failing_card.id), &key("r3"))
        .await
        .unwrap();
    assert_eq!(again.amount, 1_000);
}

#[tokio::test]
async fn refunding_an_unpaid_intent_is_refused() {
    let mock = MockProvider::new();
    let intent = mock
        .create_intent(CreateIntent::new(usd("5.00")), &key("k1"))
        .await
        .unwrap();
    assert_eq!(intent.status, IntentStatus::RequiresPaymentMethod);
    let error = mock
        .create_refund(CreateRefund::full(&intent.id), &key("r1"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::InvalidRequest { ref code, .. } if code.as_deref() == Some("charge_not_captured"))
    );
    let missing = mock
        .create_refund(CreateRefund::full("pi_nope"), &key("r2"))
        .await
        .unwrap_err();
    assert!(
        matches!(missing, ProviderError::InvalidRequest { ref code, .. } if code.as_deref() == Some("resource_missing"))
    );
}

#[tokio::test]
async fn same_key_same_parameters_replays_without_a_second_charge() {
    let mock = MockProvider::new();
    let first = mock
        .create_intent(charge("10.00", "pm_card_visa"), &key("k1"))
        .await
        .unwrap();
    let replay = mock
        .create_intent(charge("10.00", "pm_card_visa"), &key("k1"))
        .await
        .unwrap();
    assert_eq!(first, replay);
    let stats = mock.stats();
    assert_eq!(
        (stats.calls("create_intent"), stats.executed("create_intent")),
        (2, 1)
    );
    assert_eq!((stats.replays, stats.charges_made), (1, 1));
    assert_eq!(mock.events().len(), 2, "a replay emits nothing");

    // Declines are replayed too: the first result stands.
    let declined = mock
        .create_intent(charge("10.00", "pm_card_chargeDeclined"), &key("k2"))
        .await
        .unwrap_err();
    let again = mock
        .create_intent(charge("10.00", "pm_card_chargeDeclined"), &key("k2"))
        .await
        .unwrap_err();
    assert_eq!(declined.intent(), again.intent());
}

#[tokio::test]
async fn same_key_different_parameters_is_a_conflict() {
    let mock = MockProvider::new();
    mock.create_intent(charge("10.00", "pm_card_visa"), &key("k1"))
        .await
        .unwrap();
    let error = mock
        .create_intent(charge("10.01", "pm_card_visa"), &key("k1"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::IdempotencyConflict { .. }),
        "{error:?}"
    );
    let other_operation = mock
        .create_refund(CreateRefund::full("pi_x"), &key("k1"))
        .await
        .unwrap_err();
    assert!(matches!(
        other_operation,
        ProviderError::IdempotencyConflict { .. }
    ));
    assert_eq!(mock.stats().charges_made, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_charge_once() {
    let mock = MockProvider::new();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let mock = mock.clone();
            tokio::spawn(async move {
                mock.create_intent(charge("10.00", "pm_card_visa"), &key("same"))
                    .await
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        ids.insert(task.await.unwrap().unwrap().id);
    }
    assert_eq!(ids.len(), 1);
    let stats = mock.stats();
    assert_eq!(
        (stats.executed("create_intent"), stats.charges_made, stats.replays),
        (1, 1, 19)
    );
}

#[tokio::test]
async fn an_unavailable_fault_fails_before_anything_happens() {
    let mock = MockProvider::new();
    mock.inject_fault(Fault::Unavailable);
    let error = mock
        .create_intent(charge("10.00", "pm_card_visa"), &key("k1"))
        .await
        .unwrap_err();
    assert!(error.is_retryable());
    assert_eq!(mock.stats().charges_made, 0);
    assert!(mock.events().is_empty());
    let retried = mock
        .create_intent(charge("10.00", "pm_card_visa"), &key("k1"))
        .await
        .unwrap();
    assert_eq!(retried.status, IntentStatus::Succeeded);
    assert_eq!(mock.stats().charges_made, 1);
}

#[tokio::test]
async fn a_rate_limit_fault_is_retryable() {
    let mock = MockProvider::new();
    mock.inject_fault(Fault::RateLimited);
    let error = mock.retrieve_intent("pi_any").await.unwrap_err();
    assert!(matches!(error, ProviderError::RateLimited { .. }) && error.is_retryable());
}

#[tokio::test]
async fn a_lost_response_is_healed_by_retrying_the_same_key() {
    let mock = MockProvider::new();
    mock.inject_fault(Fault::LostResponse);
    let error = mock
        .create_intent(charge("10.00", "pm_card_visa"), &key("k1"))
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert_eq!(
        mock.stats().charges_made,
        1,
        "the charge was made before the response was lost"
    );
    let retried = mock
        .create_intent(charge("10.00", "pm_card_visa"), &key("k1"))
        .await
        .unwrap();
    assert_eq!(retried.status, IntentStatus::Succeeded);
    assert_eq!(
        mock.stats().charges_made,
        1,
        "the retry replays, it does not charge again"
    );
}

#[tokio::test]
async fn a_500_before_changes_nothing_and_a_retry_runs_the_call() {
    let mock = MockProvider::new();
    mock.inject_fault(Fault::ServerErrorBefore);
    let error = mock
        .create_intent(charge("10.00", "pm_card_visa"), &key("k1"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ProviderError::Unavailable {
                status: Some(500),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.outcome_unknown(), "the caller cannot know nothing happened");
    let ledger = mock.ledger();
    assert!(ledger.intents.is_empty() && ledger.movements.is_empty());
    assert!(mock.events().is_empty());
    let retried = mock
        .create_intent(charge("10.00", "pm_card_visa"), &key("k1"))
        .await
        .unwrap();
    assert_eq!(retried.status, IntentStatus::Succeeded);
    assert_eq!(mock.stats().charges_made, 1);
    assert_eq!(mock.stats().replays, 0, "nothing was saved under the key");
}

#[tokio::test]
async fn a_500_after_charges_and_the_same_key_replays_the_500() {
    let mock = MockProvider::new();
    mock.inject_fault(Fault::ServerErrorAfter);
    let first = mock
        .create_intent(charge("10.00", "pm_card_visa"), &key("k1"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            first,
            ProviderError::Unavailable {
                status: Some(500),
                ..
            }
        ),
        "{first:?}"
    );
    assert_eq!(mock.stats().charges_made, 1, "carried out before the 500");
    let again = mock
        .create_intent(charge("10.00", "pm_card_visa"), &key("k1"))
        .await
        .unwrap_err();
    assert_eq!(
        again.to_string(),
        first.to_string(),
        "Stripe replays the stored 500 for the same key"
    );
    assert!(matches!(
        again,
        ProviderError::Unavailable {
            status: Some(500),
            ..
        }
    ));
    assert_eq!(mock.stats().charges_made, 1);
    let ledger = mock.ledger();
    assert_eq!(ledger.intents.len(), 1);
    assert_eq!(ledger.intents[0].status, IntentStatus::Succeeded);
    assert_eq!(
        event_types(&mock),
        ["payment_intent.created", "payment_intent.succeeded"],
        "the webhooks still tell what happened"
    );
}

#[tokio::test]
async fn a_timeout_after_sending_and_an_unreadable_reply_leave_the_outcome_unknown() {
    for (fault, status) in [
        (Fault::TimeoutAfterSend, None),
        (Fault::UnreadableReply, Some(200)),
    ] {
        let mock = MockProvider::new();
        assert!(fault.hides_a_carried_out_call());
        mock.inject_fault(fault.clone());
        let error = mock
            .create_intent(charge("10.00", "pm_card_visa"), &key("k1"))
            .await
            .unwrap_err();
        let ProviderError::OutcomeUnknown { status: seen, .. } = &error else {
            panic!("{fault:?}: expected OutcomeUnknown, got {error:?}");
        };
        assert_eq!(*seen, status, "{fault:?}");
        assert!(error.outcome_unknown() && !error.is_retryable());
        assert_eq!(mock.stats().charges_made, 1, "{fault:?}: carried out");
        let replayed = mock
            .create_intent(charge("10.00", "pm_card_visa"), &key("k1"))
            .await
            .unwrap();
        assert_eq!(
            replayed,
            mock.ledger().intents[0],
            "{fault:?}: the key replays the result"
        );
        assert_eq!(mock.stats().charges_made, 1, "{fault:?}");
    }
    assert!(!Fault::ServerErrorBefore.hides_a_carried_out_call());
    assert!(Fault::ServerErrorAfter.hides_a_carried_out_call());
}

#[tokio::test]
async fn a_fault_on_one_operation_lets_other_calls_pass() {
    let mock = MockProvider::new();
    let intent = mock
        .create_intent(charge("10.00", "pm_card_visa"), &key("k1"))
        .await
        .unwrap();
    mock.inject_fault_on("create_refund", Fault::UnreadableReply);
    assert_eq!(mock.retrieve_intent(&intent.id).await.unwrap(), intent);
    let refund = CreateRefund {
        payment_intent: intent.id.clone(),
        amount: Some(400),
        reason: None,
        metadata: Default::default(),
    };
    let error = mock.create_refund(refund.clone(), &key("r1")).await.unwrap_err();
    assert!(matches!(error, ProviderError::OutcomeUnknown { .. }));
    assert_eq!(mock.ledger().refunds.len(), 1, "the refund was made");
    mock.inject_fault(Fault::Unavailable);
    assert_eq!(mock.clear_faults(), 1);
    assert_eq!(mock.create_refund(refund, &key("r1")).await.unwrap().amount, 400);
}

#[tokio::test]
async fn the_ledger_names_the_key_of_every_movement_of_money() {
    let mock = MockProvider::new();
    let mut held = charge("30.00", "pm_card_visa");
    held.capture_method = CaptureMethod::Manual;
    held.metadata.insert("gateway_payment_id".into(), "pay_1".into());
    let intent = mock.create_intent(held, &key("create")).await.unwrap();
    let capture = CaptureIntent {
        amount_to_capture: Some(2500),
    };
    mock.capture_intent(&intent.id, capture, &key("capture"))
        .await
        .unwrap();
    let refund = CreateRefund {
        payment_intent: intent.id.clone(),
        amount: Some(1000),
        reason: None,
        metadata: Default::default(),
    };
    let refund = mock.create_refund(refund, &key("refund")).await.unwrap();
    let three_ds = mock
        .create_intent(charge("5.00", "pm_card_threeDSecure2Required"), &key("3ds"))
        .await
        .unwrap();
    mock.complete_authentication(&three_ds.id, true).unwrap();
    let ledger = mock.ledger();
    let moved: Vec<(MovementKind, i64, Option<&str>)> = ledger
        .movements
        .iter()
        .map(|m| (m.kind, m.amount, m.key.as_ref().map(|k| k.as_str())))
        .collect();
    assert_eq!(
        moved,
        [
            (MovementKind::Charge, 3000, Some("create")),
            (MovementKind::Capture, 2500, Some("capture")),
            (MovementKind::Refund, 1000, Some("refund")),
            (MovementKind::Charge, 500, None),
        ]
    );
    assert_eq!(ledger.movements[2].refund.as_deref(), Some(refund.id.as_str()));
    assert_eq!(ledger.intents.len(), 2);
    let first = &ledger.intents[0];
    assert_eq!((first.amount, first.amount_received), (3000, 2500));
    assert_eq!(first.metadata["gateway_payment_id"], "pay_1");
    assert_eq!(ledger.refunds_of(&intent.id).map(|r| r.amount).sum::<i64>(), 1000);
    assert_eq!(ledger.movements_of(&intent.id, MovementKind::Charge).count(), 1);
    assert_eq!(ledger.intents[1].status, IntentStatus::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn a_slow_fault_delays_on_tokios_clock() {
    let mock = MockProvider::new();
    mock.inject_fault(Fault::Slow(Duration::from_secs(30)));
    let started = tokio::time::Instant::now();
    let slow_key = key("k1");
    let slow = mock.create_intent(charge("10.00", "pm_card_visa"), &slow_key);
    let timed_out = tokio::time::timeout(Duration::from_secs(10), slow).await;
    assert!(timed_out.is_err(), "the call is still waiting after 10 s");
    assert_eq!(
        mock.stats().charges_made,
        0,
        "a timed-out call that never ran charges nothing"
    );

    let intent = mock
        .create_intent(charge("10.00", "pm_card_visa"), &key("k1"))
        .await
        .unwrap();
    assert_eq!(intent.status, IntentStatus::Succeeded);
    assert!(started.elapsed() >= Duration::from_secs(10));
}

#[tokio::test]
async fn customers_and_saved_cards() {
    let mock = MockProvider::new();
    let customer = mock
        .create_customer(
            CreateCustomer {
                email: Some("ada@example.com".into()),
                ..Default::default()
            },
            &key("c1"),
        )
        .await
        .unwrap();
    let visa = mock
        .attach_payment_method(&customer.id, "pm_card_visa", &key("a1"))
        .await
        .unwrap();
    let master = mock
        .attach_payment_method(&customer.id, "pm_card_mastercard", &key("a2"))
        .await
        .unwrap();
    assert_ne!(
        visa.id, "pm_card_visa",
        "attaching a test token creates a payment method"
    );
    let card = visa.card.as_ref().unwrap();
    assert_eq!((card.brand.as_str(), card.last4.as_str()), ("visa", "4242"));
    assert_eq!((card.exp_month, card.exp_year), (12, 2034));
    let listed = mock.list_payment_methods(&customer.id).await.unwrap();
    assert_eq!(listed, vec![master.clone(), visa.clone()], "newest first");

    // Charge the saved card off-session.
    let mut request = charge("12.00", &visa.id);
    request.customer = Some(customer.id.clone());
    request.off_session = true;
    let intent = mock.create_intent(request, &key("p1")).await.unwrap();
    assert_eq!(intent.status, IntentStatus::Succeeded);
    assert_eq!(intent.customer.as_deref(), Some(customer.id.as_str()));

    // Without its customer, the saved card is refused.
    let error = mock
        .create_intent(charge("12.00", &visa.id), &key("p2"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::InvalidRequest { ref param, .. } if param.as_deref() == Some("payment_method"))
    );

    let detached = mock.detach_payment_method(&visa.id, &key("d1")).await.unwrap();
    assert_eq!(detached.customer, None);
    assert_eq!(
        mock.list_payment_methods(&customer.id).await.unwrap(),
        vec![master]
    );
    let mut request = charge("12.00", &visa.id);
    request.customer = Some(customer.id.clone());
    assert!(
        mock.create_intent(request, &key("p3")).await.is_err(),
        "a detached card is unusable"
    );
    assert!(mock.detach_payment_method(&visa.id, &key("d2")).await.is_err());
    assert!(mock.list_payment_methods("cus_nope").await.is_err());
}

#[tokio::test]
async fn update_changes_amount_before_confirmation_only() {
    let mock = MockProvider::new();
    let intent = mock
        .create_intent(CreateIntent::new(usd("10.00")), &key("k1"))
        .await
        .unwrap();
    let update = UpdateIntent {
        amount: Some(usd("12.50")),
        metadata: Some([("order_id".to_owned(), "o-9".to_owned())].into()),
        description: None,
    };
    let updated = mock.update_intent(&intent.id, update, &key("k2")).await.unwrap();
    assert_eq!((updated.amount, updated.order_id()), (1250, Some("o-9")));
    let wrong_currency = UpdateIntent {
        amount: Some(Money::parse("10", Currency::JPY).unwrap()),
        ..Default::default()
    };
    assert!(mock
        .update_intent(&intent.id, wrong_currency, &key("k3"))
        .await
        .is_err());
    let confirm = ConfirmIntent {
        payment_method: Some("pm_card_visa".into()),
        ..Default::default()
    };
    mock.confirm_intent(&intent.id, confirm, &key("k4"))
        .await
        .unwrap();
    let late = UpdateIntent {
        amount: Some(usd("99.00")),
        ..Default::default()
    };
    assert!(mock.update_intent(&intent.id, late, &key("k5")).await.is_err());
}

#[tokio::test]
async fn client_side_flow_and_bad_requests() {
    let mock = MockProvider::new();
    let error = mock
        .create_intent(
            CreateIntent {
                confirm: true,
                ..CreateIntent::new(usd("1.00"))
            },
            &key("k1"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::InvalidRequest { ref param, .. } if param.as_deref() == Some("payment_method"))
    );
    let unknown = mock
        .create_intent(charge("1.00", "pm_card_bogus"), &key("k2"))
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, ProviderError::InvalidRequest { ref code, .. } if code.as_deref() == Some("resource_missing"))
    );
    assert!(matches!(
        mock.retrieve_intent("pi_missing").await,
        Err(ProviderError::NotFound { .. })
    ));
}

#[tokio::test]
async fn events_reach_subscribers_and_round_trip_as_webhooks() {
    let mock = MockProvider::new();
    let mut subscriber = mock.subscribe();
    let intent = mock
        .create_intent(charge("10.00", "pm_card_visa"), &key("k1"))
        .await
        .unwrap();
    let created = subscriber.recv().await.unwrap();
    let succeeded = subscriber.recv().await.unwrap();
    assert_eq!(created.event_type, "payment_intent.created");
    assert_eq!(succeeded.intent(), Some(&intent));

    let request = mock.webhook_request(&succeeded, 1_700_000_100);
    let verified = mock.verify_webhook(&request).unwrap();
    assert_eq!(verified.event_id, succeeded.id);
    assert_eq!(verified.object_id.as_deref(), Some(intent.id.as_str()));
    assert_eq!(mock.interpret_webhook(&verified).await.unwrap(), succeeded);

    let unsigned = WebhookRequest::new(request.body.clone(), 0);
    assert!(matches!(
        mock.verify_webhook(&unsigned),
        Err(WebhookError::MissingHeader { .. })
    ));
    let forged = WebhookRequest::new(request.body.clone(), 0).with_header(MOCK_SIGNATURE_HEADER, "nope");
    assert_eq!(mock.verify_webhook(&forged), Err(WebhookError::BadSignature));
    assert_eq!(mock.take_events().len(), 2);
    assert!(mock.events().is_empty());
    assert!(matches!(succeeded.object, EventObject::Intent { .. }));
}

#[tokio::test]
async fn the_same_seed_gives_the_same_ids() {
    let run = |config: MockConfig| async move {
        let mock = MockProvider::with_config(config);
        mock.create_intent(charge("10.00", "pm_card_visa"), &key("k1"))
            .await
            .unwrap()
    };
    assert_eq!(
        run(MockConfig::deterministic(42)).await,
        run(MockConfig::deterministic(42)).await
    );
    assert_ne!(
        run(MockConfig::deterministic(42)).await.id,
        run(MockConfig::deterministic(43)).await.id
    );
}

#[tokio::test]
async fn default_accounts_have_ids_and_webhook_secrets_of_their_own() {
    let (first, second) = (MockConfig::default(), MockConfig::default());
    assert_ne!(first.seed, second.seed);
    assert_ne!(first.webhook_secret, second.webhook_secret);
    assert_ne!(first.webhook_secret, "whsec_mock", "no public default secret");
    let ids: Vec<String> = futures_free_ids(&[first, second]).await;
    assert_ne!(
        ids[0], ids[1],
        "ids do not repeat from one account (process) to the next"
    );
    let fixed = MockConfig::deterministic(7);
    assert_eq!(fixed.webhook_secret, MockConfig::deterministic(7).webhook_secret);
    assert_eq!(fixed.seed, 7);
}

/// The first intent id of an account made from each configuration.
async fn futures_free_ids(configs: &[MockConfig]) -> Vec<String> {
    let mut ids = Vec::new();
    for config in configs {
        let mock = MockProvider::with_config(config.clone());
        let intent = mock
            .create_intent(charge("1.00", "pm_card_visa"), &key("k"))
            .await
            .unwrap();
        ids.push(intent.id);
    }
    ids
}

#[tokio::test]
async fn a_sandbox_account_forgets_its_oldest_objects_past_the_limits() {
    let mock = MockProvider::with_config(MockConfig {
        retention: Retention {
            intents: Some(3),
            idempotency_keys: Some(3),
            events: Some(4),
        },
        ..MockConfig::default()
    });
    let mut ids = Vec::new();
    for index in 0..5 {
        let intent = mock
            .create_intent(charge("1.00", "pm_card_visa"), &key(&format!("k{index}")))
            .await
            .unwrap();
        ids.push(intent.id);
    }
    assert!(matches!(
        mock.retrieve_intent(&ids[0]).await,
        Err(ProviderError::NotFound { .. })
    ));
    assert!(mock.retrieve_intent(&ids[4]).await.is_ok());
    assert_eq!(mock.events().len(), 4, "the newest four of ten events");
    assert_eq!(mock.events().last().unwrap().intent().unwrap().id, ids[4]);
    // The oldest key was forgotten: it runs again (a new intent), as after Stripe's 24 hours.
    let again = mock
        .create_intent(charge("1.00", "pm_card_visa"), &key("k0"))
        .await
        .unwrap();
    assert_ne!(again.id, ids[0]);
    let replay = mock
        .create_intent(charge("1.00", "pm_card_visa"), &key("k4"))
        .await
        .unwrap();
    assert_eq!(replay.id, ids[4]);
}

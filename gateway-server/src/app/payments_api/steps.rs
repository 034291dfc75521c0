//! A payment's provider steps, run from its written-ahead row.
//!
//! The row names the step whose answer is not stored yet
//! ([`PendingStep`]); [`Steps::advance`] runs the creation steps (create the
//! intent unconfirmed, store it, confirm it), and [`Steps::settle`] stores
//! the answer of a call on a known intent. Every call's provider key comes
//! from the payment's operation, so running a step again (a client's retry
//! resuming the request) replays it at the provider instead of repeating it.
//! An outcome the provider left unknown keeps the step on the row: the API
//! answers `202`, and a retry or reconciliation resolves it.

use gateway_core::{
    ConfirmIntent, CreateIntent, Money, PaymentIntent, PaymentProvider, ProviderError,
    GATEWAY_MERCHANT_METADATA_KEY, GATEWAY_PAYMENT_METADATA_KEY,
};

use super::payment_outcome;
use crate::app::core::Core;
use crate::app::idempotency::{Outcome, ProviderKeys};
use crate::app::payments::{
    apply_intent_change, commit_and_publish, intent_created, ChangeSource, IntentUpdate,
};
use crate::domain::error::{success_bytes, ApiError, Status};
use crate::domain::records::PendingStep;
use crate::domain::views::PaymentView;
use crate::store::{Change, PaymentRow};

/// What the provider is asked to create for a drafted row: always
/// unconfirmed (no money moves), with the gateway's payment and merchant ids
/// in its metadata, so an intent whose reply was lost can be matched to its row.
fn intent_request(row: &PaymentRow) -> Result<CreateIntent, ApiError> {
    // Validated as money when the row was drafted.
    let amount =
        Money::from_minor(row.intent.amount, row.intent.currency).map_err(|_| ApiError::internal())?;
    let mut request = CreateIntent::new(amount);
    request.capture_method = row.intent.capture_method;
    request.metadata = row.intent.metadata.clone();
    request
        .metadata
        .insert(GATEWAY_PAYMENT_METADATA_KEY.to_owned(), row.id.clone());
    request
        .metadata
        .insert(GATEWAY_MERCHANT_METADATA_KEY.to_owned(), row.merchant_id.clone());
    request.description = row.intent.description.clone();
    request.receipt_email = row.customer_email.clone();
    request.customer = row.intent.customer.clone();
    request.payment_method = row.intent.payment_method.clone();
    Ok(request)
}

/// What a payment's provider calls run with.
pub(crate) struct Steps<'a> {
    pub(crate) core: &'a Core,
    pub(crate) provider: &'a dyn PaymentProvider,
    /// The keys of the operation that drafted the row (or asked for the call).
    pub(crate) keys: &'a ProviderKeys,
    pub(crate) source: ChangeSource,
    /// Whether an earlier call under these keys may have run (a resumed
    /// request, or resolution). A rate limit then says nothing about that
    /// call, so the draft and its pending step are kept; only on a first
    /// call does a rate limit mean nothing happened.
    pub(crate) after_earlier_call: bool,
}

/// Where a payment's steps ended: the row, the changes to commit with the
/// answer, and how to answer.
pub(crate) struct Advanced {
    pub(crate) row: PaymentRow,
    pub(crate) changes: Vec<Change>,
    pub(crate) updates: Vec<IntentUpdate>,
    end: End,
}

/// How the last provider call ended.
enum End {
    /// The provider answered; the stored intent is its answer.
    Answered,
    /// The provider refused or declined (the intent, if any, is stored).
    Refused(ProviderError),
    /// The provider left the outcome of a call that can move money unknown:
    /// the row keeps its pending step (answered `202`).
    Unknown,
    /// The provider asks to try again (an outage before the intent is known,
    /// a rate limit): answered with its error, not stored, so a retry resumes.
    Retry(ProviderError),
    /// The provider refused to create the intent: nothing exists there, and
    /// the draft is removed.
    NotCreated(ProviderError),
}

impl Advanced {
    fn ended(row: PaymentRow, changes: Vec<Change>, updates: Vec<IntentUpdate>, end: End) -> Self {
        Advanced {
            row,
            changes,
            updates,
            end,
        }
    }

    /// The answer: the payment (`200`, or `202` while its outcome is
    /// unknown), or the provider's refusal naming it.
    pub(crate) fn into_outcome(self) -> Outcome {
        self.outcome(false)
    }

    /// [`Advanced::into_outcome`] for create and confirm: the answer shows
    /// the `client_secret` while the customer has to act; what is stored for
    /// replay does not (a replay fills it in again from the payment row).
    pub(crate) fn into_outcome_with_client_secret(self) -> Outcome {
        self.outcome(true)
    }

    fn outcome(self, client_secret: bool) -> Outcome {
        let shows_secret = client_secret
            && matches!(self.end, End::Answered | End::Unknown)
            && PaymentView::has_client_secret(&self.row);
        let answer = shows_secret.then(|| success_bytes(&PaymentView::with_client_secret(&self.row)));
        let (status, body) = match self.end {
            End::Answered => payment_outcome(&self.row, None),
            End::Refused(error) => payment_outcome(&self.row, Some(error)),
            End::Unknown => (Status::ACCEPTED, success_bytes(&PaymentView::new(&self.row))),
            End::Retry(error) => {
                let api = ApiError::from(error).with_payment(self.row.id.clone());
                (api.status(), api.body_bytes())
            }
            End::NotCreated(error) => {
                let api = ApiError::from(error);
                (api.status(), api.body_bytes())
            }
        };
        let (body, replay) = match answer {
            Some(answer) => (answer, Some(body)),
            None => (body, None),
        };
        Outcome {
            replay,
            status,
            body,
            changes: self.changes,
            updates: self.updates,
        }
    }
}

impl Steps<'_> {
    /// Runs the row's creation steps from where it stands; `changes` are
    /// committed before any call that can move money.
    pub(crate) async fn advance(
        &self,
        mut row: PaymentRow,
        mut changes: Vec<Change>,
    ) -> Result<Advanced, ApiError> {
        let mut updates = Vec::new();
        loop {
            match row.pending_step {
                Some(PendingStep::Create | PendingStep::CreateConfirm) => {
                    let key = self.keys.step("create_intent")?;
                    match self.provider.create_intent(intent_request(&row)?, &key).await {
                        Ok(intent) => {
                            let next = (row.pending_step == Some(PendingStep::CreateConfirm))
                                .then_some(PendingStep::Confirm);
                            let (change, update) = intent_created(&mut row, intent, next, self.source);
                            changes.push(change);
                            updates.push(update);
                        }
                        // No money moves on creation: the draft waits for a retry with
                        // the same key (or for reconciliation to learn what happened).
                        Err(error)
                            if error.outcome_unknown()
                                || (self.after_earlier_call && error.is_retryable()) =>
                        {
                            return Ok(Advanced::ended(row, changes, updates, End::Retry(error)))
                        }
                        Err(error) => {
                            // Refused (rate-limited: nothing was processed): nothing exists there.
                            changes.push(Change::DeleteDraftPayment {
                                merchant_id: row.merchant_id.clone(),
                                id: row.id.clone(),
                            });
                            let end = if error.is_retryable() {
                                End::Retry(error)
                            } else {
                                End::NotCreated(error)
                            };
                            return Ok(Advanced::ended(row, changes, updates, end));
                        }
                    }
                }
                Some(PendingStep::Confirm) => {
                    // The intent and the step are stored before money can move.
                    commit_and_publish(
                        self.core,
                        std::mem::take(&mut changes),
                        &std::mem::take(&mut updates),
                    )
                    .await?;
                    let request = ConfirmIntent {
                        payment_method: None,
                        return_url: row.return_url.clone(),
                        off_session: row.saved_card_id.is_some(),
                    };
                    let key = self.keys.step("confirm")?;
                    let result = self.provider.confirm_intent(&row.intent.id, request, &key).await;
                    return Ok(self.settle(row, result, changes, updates));
                }
                Some(PendingStep::Capture | PendingStep::Cancel) | None => {
                    return Ok(Advanced::ended(row, changes, updates, End::Answered));
                }
            }
        }
    }

    /// Stores the answer of a call on the row's intent: the provider's intent
    /// (also one that comes with a decline), or nothing when the outcome is
    /// unknown (the pending step stays for a retry or reconciliation).
    pub(crate) fn settle(
        &self,
        mut row: PaymentRow,
        result: Result<PaymentIntent, ProviderError>,
        mut changes: Vec<Change>,
        mut updates: Vec<IntentUpdate>,
    ) -> Advanced {
        let (intent, end) = match result {
            Ok(intent) => (Some(intent), End::Answered),
            Err(error) if error.outcome_unknown() => {
                return Advanced::ended(row, changes, updates, End::Unknown)
            }
            // Refused before anything happened (rate-limited): the step is cleared, the answer not stored.
            // Rate-limited: nothing was processed by this call. A first call's
            // step is cleared; after an earlier call whose outcome is unknown it stays.
            Err(error) if error.is_retryable() && self.after_earlier_call => {
                return Advanced::ended(row, changes, updates, End::Retry(error))
            }
            Err(error) if error.is_retryable() => (None, End::Retry(error)),
            Err(error) => (error.intent().cloned(), End::Refused(error)),
        };
        row.pending_step = None;
        match intent.and_then(|intent| apply_intent_change(&mut row, intent, self.source)) {
            Some((change, update)) => {
                changes.push(change);
                updates.push(update);
            }
            // The intent did not move (or moved illegally): only the step is cleared.
            None => changes.push(Change::update_payment(&mut row)),
        }
        Advanced::ended(row, changes, updates, end)
    }
}

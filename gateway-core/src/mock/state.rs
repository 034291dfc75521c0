//! The mock's in-memory account: intents, refunds, customers and payment
//! methods, changed the way Stripe's test mode changes them.

use std::collections::{HashMap, VecDeque};

use tokio::sync::mpsc::UnboundedSender;

use super::bounded::BoundedMap;
use super::cards::{CardOutcome, RefundOutcome, TestCard};
use super::ids::IdGenerator;
use super::ledger::{Ledger, LedgerMethod, MovementKind, MovementLog};
use super::Retention;
use crate::customer::{Customer, SavedPaymentMethod};
use crate::error::ProviderError;
use crate::intent::{
    CaptureMethod, IntentStatus, NextAction, PaymentErrorDetails, PaymentIntent, UnixTimestamp,
};
use crate::provider::{
    CancelIntent, CaptureIntent, ConfirmIntent, CreateCustomer, CreateIntent, CreateRefund, UpdateIntent,
};
use crate::refund::{Refund, RefundStatus};
use crate::webhook::{EventObject, ProviderEvent};
use crate::wire_amount::WireAmountRules;

/// Where the mock's 3-D Secure pages pretend to live.
pub(super) const THREE_DS_URL_BASE: &str = "https://mock-3ds.gateway.invalid/authenticate/";

/// A payment method object created by attaching a test token to a customer.
#[derive(Debug, Clone)]
struct MethodRecord {
    saved: SavedPaymentMethod,
    card: &'static TestCard,
    /// A detached method can never be used again (as at Stripe).
    detached: bool,
    /// Creation order, for listing newest first.
    sequence: u64,
}

/// The whole account.
#[derive(Debug)]
pub(super) struct Account {
    pub(super) provider: String,
    ids: IdGenerator,
    now: UnixTimestamp,
    sequence: u64,
    intents: BoundedMap<String, PaymentIntent>,
    refunds: HashMap<String, Refund>,
    customers: HashMap<String, Customer>,
    methods: HashMap<String, MethodRecord>,
    /// Emitted and not yet taken, oldest first; the oldest are dropped past the limit.
    events: VecDeque<ProviderEvent>,
    event_limit: Option<usize>,
    pub(super) subscribers: Vec<UnboundedSender<ProviderEvent>>,
    /// Authorizations that went through.
    pub(super) charges_made: u64,
    /// Every movement of money, with the key of the call that made it.
    pub(super) log: MovementLog,
}

fn unexpected_state(intent: &PaymentIntent, action: &str) -> ProviderError {
    ProviderError::invalid(
        Some("payment_intent_unexpected_state"),
        None,
        format!(
            "You cannot {action} this PaymentIntent because it has a status of {}.",
            intent.status
        ),
    )
}

fn missing(param: &str, kind: &str, id: &str) -> ProviderError {
    ProviderError::invalid(
        Some("resource_missing"),
        Some(param),
        format!("No such {kind}: '{id}'"),
    )
}

impl Account {
    pub(super) fn new(provider: String, seed: u64, start_time: UnixTimestamp, retention: Retention) -> Self {
        Account {
            provider,
            ids: IdGenerator::new(seed),
            now: start_time,
            sequence: 0,
            intents: BoundedMap::new(retention.intents),
            refunds: HashMap::new(),
            customers: HashMap::new(),
            methods: HashMap::new(),
            events: VecDeque::new(),
            event_limit: retention.events,
            subscribers: Vec::new(),
            charges_made: 0,
            log: MovementLog::default(),
        }
    }

    /// Every state change moves the clock one second, so timestamps are ordered and deterministic.
    fn tick(&mut self) -> UnixTimestamp {
        self.now += 1;
        self.now
    }

    fn emit(&mut self, event_type: &str, object: EventObject) {
        let event = ProviderEvent {
            id: self.ids.next_id("evt"),
            provider: self.provider.clone(),
            event_type: event_type.to_owned(),
            created: self.now,
            object,
        };
        self.subscribers
            .retain(|subscriber| subscriber.send(event.clone()).is_ok());
        if self.event_limit.is_some_and(|limit| self.events.len() >= limit) {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    fn emit_intent(&mut self, event_type: &str, intent: &PaymentIntent) {
        self.emit(
            event_type,
            EventObject::Intent {
                intent: intent.clone(),
            },
        );
    }

    pub(super) fn events(&self) -> Vec<ProviderEvent> {
        self.events.iter().cloned().collect()
    }

    pub(super) fn take_events(&mut self) -> Vec<ProviderEvent> {
        self.events.drain(..).collect()
    }

    pub(super) fn intent(&self, id: &str) -> Result<PaymentIntent, ProviderError> {
        self.intents
            .get(id)
            .cloned()
            .ok_or_else(|| ProviderError::not_found("payment_intent", id))
    }

    fn store(&mut self, mut intent: PaymentIntent) -> PaymentIntent {
        intent.updated = self.now;
        self.intents.insert(intent.id.clone(), intent.clone());
        intent
    }

    /// The test card behind a payment method id: a test token, or a method created by attaching one.
    fn card_for(
        &self,
        payment_method: &str,
        customer: Option<&str>,
    ) -> Result<&'static TestCard, ProviderError> {
        if let Some(card) = TestCard::by_token(payment_method) {
            return Ok(card);
        }
        let record = self
            .methods
            .get(payment_method)
            .ok_or_else(|| missing("payment_method", "PaymentMethod", payment_method))?;
        if record.detached {
            return Err(ProviderError::invalid(
                Some("payment_method_unexpected_state"),
                Some("payment_method"),
                "This PaymentMethod was detached from its customer and cannot be used again.",
            ));
        }
        if record.saved.customer.as_deref() != customer {
            return Err(ProviderError::invalid(
                Some("payment_method_invalid_parameter"),
                Some("payment_method"),
                "The PaymentMethod belongs to another customer; pass that customer with it.",
            ));
        }
        Ok(record.card)
    }

    pub(super) fn create_intent(&mut self, request: CreateIntent) -> Result<PaymentIntent, ProviderError> {
        WireAmountRules::STRIPE.charge_to_wire(request.amount)?;
        if let Some(customer) = &request.customer {
            if !self.customers.contains_key(customer) {
                return Err(missing("customer", "customer", customer));
            }
        }
        if request.off_session && !request.confirm {
            return Err(ProviderError::invalid(
                None,
                Some("off_session"),
                "off_session can only be used together with confirm=true.",
            ));
        }
        if request.confirm && request.payment_method.is_none() {
            return Err(ProviderError::invalid(
                Some("parameter_missing"),
                Some("payment_method"),
                "A payment method is required to confirm this PaymentIntent.",
            ));
        }
        if let Some(method) = &request.payment_method {
            self.card_for(method, request.customer.as_deref())?;
        }
        let created = self.tick();
        let id = self.ids.next_id("pi");
        let secret = self.ids.next_id("secret");
        let intent = PaymentIntent {
            client_secret: Some(format!("{id}_{secret}")),
            id,
            provider: self.provider.clone(),
            amount: request.amount.minor_units(),
            amount_received: 0,
            amount_capturable: 0,
            currency: request.amount.currency(),
            status: if request.payment_method.is_some() {
                IntentStatus::RequiresConfirmation
            } else {
                IntentStatus::RequiresPaymentMethod
            },
            capture_method: request.capture_method,
            customer: request.customer,
            payment_method: request.payment_method,
            metadata: request.metadata,
            description: request.description,
            next_action: None,
            last_payment_error: None,
            cancellation_reason: None,
            created,
            updated: created,
        };
        let intent = self.store(intent);
        self.emit_intent("payment_intent.created", &intent);
        if request.confirm {
            let confirm = ConfirmIntent {
                payment_method: None,
                return_url: request.return_url,
                off_session: request.off_session,
            };
            return self.confirm_intent(&intent.id, confirm);
        }
        Ok(intent)
    }

    pub(super) fn update_intent(
        &mut self,
        id: &str,
        request: UpdateIntent,
    ) -> Result<PaymentIntent, ProviderError> {
        let mut intent = self.intent(id)?;
        if let Some(amount) = request.amount {
            if !matches!(
                intent.status,
                IntentStatus::RequiresPaymentMethod | IntentStatus::RequiresConfirmation
            ) {
                return Err(unexpected_state(&intent, "update the amount of"));
            }
            if amount.currency() != intent.currency {
                return Err(ProviderError::invalid(
                    None,
                    Some("currency"),
                    format!(
                        "The new amount must be in {}, the currency of the PaymentIntent.",
                        intent.currency
                    ),
                ));
            }
            WireAmountRules::STRIPE.charge_to_wire(amount)?;
            intent.amount = amount.minor_units();
        }
        if let Some(metadata) = request.metadata {
            intent.metadata.extend(metadata);
        }
        if let Some(description) = request.description {
            intent.description = Some(description);
        }
        self.tick();
        Ok(self.store(intent))
    }

    pub(super) fn confirm_intent(
        &mut self,
        id: &str,
        request: ConfirmIntent,
    ) -> Result<PaymentIntent, ProviderError> {
        let mut intent = self.intent(id)?;
        if !matches!(
            intent.status,
            IntentStatus::RequiresPaymentMethod
                | IntentStatus::RequiresConfirmation
                | IntentStatus::RequiresAction
        ) {
            return Err(unexpected_state(&intent, "confirm"));
        }
        if let Some(method) = request.payment_method {
            intent.payment_method = Some(method);
        }
        let Some(method) = intent.payment_method.clone() else {
            return Err(ProviderError::invalid(
                Some("parameter_missing"),
                Some("payment_method"),
                "A payment method is required to confirm this PaymentIntent.",
            ));
        };
        let card = self.card_for(&method, intent.customer.as_deref())?;
        self.tick();
        match card.outcome {
            CardOutcome::Succeed => Ok(self.authorize(intent)),
            CardOutcome::Decline {
                code,
                decline_code,
                message,
            } => Err(self.decline(intent, code, decline_code, message)),
            CardOutcome::RequireAuthentication if request.off_session => {
                let code = "authentication_required";
                let message = "Your card was declined. This transaction requires authentication.";
                Err(self.decline(intent, code, code, message))
            }
            CardOutcome::RequireAuthentication => {
                intent.status = IntentStatus::RequiresAction;
                intent.next_action = Some(NextAction::RedirectToUrl {
                    url: format!("{THREE_DS_URL_BASE}{}", intent.id),
                    return_url: request.return_url,
                });
                intent.last_payment_error = None;
                let intent = self.store(intent);
                self.emit_intent("payment_intent.requires_action", &intent);
                Ok(intent)
            }
        }
    }

    /// The issuer approved: capture at once, or hold the funds for a manual capture.
    fn authorize(&mut self, mut intent: PaymentIntent) -> PaymentIntent {
        self.charges_made += 1;
        self.log
            .record(MovementKind::Charge, &intent.id, None, intent.amount, self.now);
        intent.next_action = None;
        intent.last_payment_error = None;
        let event = match intent.capture_method {
            CaptureMethod::Automatic => {
                intent.status = IntentStatus::Succeeded;
                intent.amount_received = intent.amount;
                "payment_intent.succeeded"
            }
            CaptureMethod::Manual => {
                intent.status = IntentStatus::RequiresCapture;
                intent.amount_capturable = intent.amount;
                "payment_intent.amount_capturable_updated"
            }
        };
        let intent = self.store(intent);
        self.emit_intent(event, &intent);
        intent
    }

    /// The attempt failed: back to `requires_payment_method` with the reason, as Stripe does.
    fn decline(
        &mut self,
        mut intent: PaymentIntent,
        code: &str,
        decline_code: &str,
        message: &str,
    ) -> ProviderError {
        intent.status = IntentStatus::RequiresPaymentMethod;
        intent.payment_method = None;
        intent.next_action = None;
        intent.last_payment_error = Some(PaymentErrorDetails {
            code: Some(code.to_owned()),
            decline_code: Some(decline_code.to_owned()),
            message: message.to_owned(),
        });
        let intent = self.store(intent);
        self.emit_intent("payment_intent.payment_failed", &intent);
        let intent = Some(Box::new(intent));
        if code == "authentication_required" {
            ProviderError::AuthenticationRequired {
                code: code.to_owned(),
                decline_code: Some(decline_code.to_owned()),
                message: message.to_owned(),
                intent,
            }
        } else {
            ProviderError::CardDeclined {
                code: code.to_owned(),
                decline_code: Some(decline_code.to_owned()),
                message: message.to_owned(),
                intent,
            }
        }
    }

    /// The customer finished (or failed) 3-D Secure for an intent in `requires_action`.
    pub(super) fn complete_authentication(
        &mut self,
        id: &str,
        succeed: bool,
    ) -> Result<PaymentIntent, ProviderError> {
        let mut intent = self.intent(id)?;
        if intent.status != IntentStatus::RequiresAction {
            return Err(unexpected_state(&intent, "authenticate"));
        }
        self.tick();
        if succeed {
            return Ok(self.authorize(intent));
        }
        intent.status = IntentStatus::RequiresPaymentMethod;
        intent.payment_method = None;
        intent.next_action = None;
        intent.last_payment_error = Some(PaymentErrorDetails {
            code: Some("payment_intent_authentication_failure".to_owned()),
            decline_code: None,
            message: "The provided PaymentMethod has failed authentication.".to_owned(),
        });
        let intent = self.store(intent);
        self.emit_intent("payment_intent.payment_failed", &intent);
        Ok(intent)
    }

    pub(super) fn capture_intent(
        &mut self,
        id: &str,
        request: CaptureIntent,
    ) -> Result<PaymentIntent, ProviderError> {
        let mut intent = self.intent(id)?;
        if intent.status != IntentStatus::RequiresCapture {
            return Err(unexpected_state(&intent, "capture"));
        }
        let amount = request.amount_to_capture.unwrap_or(intent.amount_capturable);
        if amount <= 0 || amount > intent.amount_capturable {
            return Err(ProviderError::invalid(
                Some("amount_too_large"),
                Some("amount_to_capture"),
                format!(
                    "The amount to capture must be between 1 and the capturable {}.",
                    intent.amount_capturable
                ),
            ));
        }
        WireAmountRules::STRIPE.to_wire(amount, intent.currency, "amount_to_capture")?;
        self.tick();
        self.log
            .record(MovementKind::Capture, &intent.id, None, amount, self.now);
        intent.amount_received = amount;
        intent.amount_capturable = 0;
        intent.status = IntentStatus::Succeeded;
        let intent = self.store(intent);
        self.emit_intent("payment_intent.succeeded", &intent);
        Ok(intent)
    }

    pub(super) fn cancel_intent(
        &mut self,
        id: &str,
        request: CancelIntent,
    ) -> Result<PaymentIntent, ProviderError> {
        let mut intent = self.intent(id)?;
        if intent.status.is_terminal() {
            return Err(unexpected_state(&intent, "cancel"));
        }
        self.tick();
        intent.status = IntentStatus::Canceled;
        intent.amount_capturable = 0;
        intent.next_action = None;
        intent.cancellation_reason = Some(
            request
                .reason
                .unwrap_or_else(|| "requested_by_customer".to_owned()),
        );
        let intent = self.store(intent);
        self.emit_intent("payment_intent.canceled", &intent);
        Ok(intent)
    }

    /// Minor units of `intent` refunded or being refunded.
    fn refunded(&self, intent_id: &str) -> i64 {
        self.refunds
            .values()
            .filter(|refund| refund.payment_intent == intent_id && refund.status.holds_funds())
            .map(|refund| refund.amount)
            .sum()
    }

    pub(super) fn create_refund(&mut self, request: CreateRefund) -> Result<Refund, ProviderError> {
        let intent = self
            .intent(&request.payment_intent)
            .map_err(|_| missing("payment_intent", "payment_intent", &request.payment_intent))?;
        if intent.status != IntentStatus::Succeeded {
            return Err(ProviderError::invalid(
                Some("charge_not_captured"),
                Some("payment_intent"),
                format!(
                    "This PaymentIntent has no captured funds to refund; its status is {}.",
                    intent.status
                ),
            ));
        }
        let remaining = intent.amount_received - self.refunded(&intent.id);
        if remaining <= 0 {
            return Err(ProviderError::invalid(
                Some("charge_already_refunded"),
                Some("payment_intent"),
                "This payment has already been refunded in full.",
            ));
        }
        let amount = request.amount.unwrap_or(remaining);
        if amount <= 0 || amount > remaining {
            return Err(ProviderError::invalid(
                Some("amount_too_large"),
                Some("amount"),
                format!("Refund amount must be between 1 and the {remaining} not yet refunded."),
            ));
        }
        WireAmountRules::STRIPE.to_wire(amount, intent.currency, "amount")?;
        let created = self.tick();
        let status = match self.refund_outcome(&intent) {
            RefundOutcome::PendingThenSucceed => RefundStatus::Pending,
            RefundOutcome::Succeed | RefundOutcome::SucceedThenFail => RefundStatus::Succeeded,
        };
        let refund = Refund {
            id: self.ids.next_id("re"),
            provider: self.provider.clone(),
            payment_intent: intent.id,
            amount,
            currency: intent.currency,
            status,
            reason: request.reason,
            failure_reason: None,
            metadata: request.metadata,
            created,
        };
        self.refunds.insert(refund.id.clone(), refund.clone());
        self.log.record(
            MovementKind::Refund,
            &refund.payment_intent,
            Some(&refund.id),
            amount,
            created,
        );
        self.emit(
            "charge.refunded",
            EventObject::Refund {
                refund: refund.clone(),
            },
        );
        Ok(refund)
    }

    /// What refunds of `intent` do: its test card says (a succeeding refund otherwise).
    fn refund_outcome(&self, intent: &PaymentIntent) -> RefundOutcome {
        let Some(method) = intent.payment_method.as_deref() else {
            return RefundOutcome::Succeed;
        };
        TestCard::by_token(method)
            .or_else(|| self.methods.get(method).map(|record| record.card))
            .map_or(RefundOutcome::Succeed, |card| card.refund)
    }

    /// The bank settles a refund "some time later", as on Stripe's refund
    /// test cards: a pending refund succeeds, a succeeded refund of
    /// `pm_card_refundFail` fails. Emits `charge.refund.updated`, or nothing
    /// when the refund has nothing left to settle.
    pub(super) fn settle_refund(&mut self, id: &str) -> Result<Refund, ProviderError> {
        let mut refund = self.refund(id)?;
        let intent = self.intent(&refund.payment_intent)?;
        let next = match (self.refund_outcome(&intent), refund.status) {
            (RefundOutcome::SucceedThenFail, RefundStatus::Succeeded | RefundStatus::Pending) => {
                RefundStatus::Failed
            }
            (_, RefundStatus::Pending | RefundStatus::RequiresAction) => RefundStatus::Succeeded,
            _ => return Ok(refund),
        };
        self.tick();
        refund.status = next;
        if next == RefundStatus::Failed {
            refund.failure_reason = Some("expired_or_canceled_card".to_owned());
        }
        self.refunds.insert(refund.id.clone(), refund.clone());
        self.emit(
            "charge.refund.updated",
            EventObject::Refund {
                refund: refund.clone(),
            },
        );
        Ok(refund)
    }

    pub(super) fn refund(&self, id: &str) -> Result<Refund, ProviderError> {
        self.refunds
            .get(id)
            .cloned()
            .ok_or_else(|| ProviderError::not_found("refund", id))
    }

    pub(super) fn create_customer(&mut self, request: CreateCustomer) -> Customer {
        let created = self.tick();
        let customer = Customer {
            id: self.ids.next_id("cus"),
            provider: self.provider.clone(),
            email: request.email,
            name: request.name,
            metadata: request.metadata,
            created,
        };
        self.customers.insert(customer.id.clone(), customer.clone());
        customer
    }

    pub(super) fn attach(
        &mut self,
        customer: &str,
        payment_method: &str,
    ) -> Result<SavedPaymentMethod, ProviderError> {
        if !self.customers.contains_key(customer) {
            return Err(missing("customer", "customer", customer));
        }
        let created = self.tick();
        self.sequence += 1;
        if let Some(card) = TestCard::by_token(payment_method) {
            // Attaching a test token creates a new payment method object, as at Stripe.
            let saved = SavedPaymentMethod {
                id: self.ids.next_id("pm"),
                provider: self.provider.clone(),
                customer: Some(customer.to_owned()),
                card: Some(card.details()),
                created,
            };
            let record = MethodRecord {
                saved: saved.clone(),
                card,
                detached: false,
                sequence: self.sequence,
            };
            self.methods.insert(saved.id.clone(), record);
            return Ok(saved);
        }
        let record = self
            .methods
            .get_mut(payment_method)
            .ok_or_else(|| missing("payment_method", "PaymentMethod", payment_method))?;
        match (&record.saved.customer, record.detached) {
            (_, true) => Err(ProviderError::invalid(
                Some("payment_method_unexpected_state"),
                Some("payment_method"),
                "This PaymentMethod was detached and cannot be attached again.",
            )),
            (Some(owner), _) if owner != customer => Err(ProviderError::invalid(
                Some("payment_method_unexpected_state"),
                Some("payment_method"),
                "This PaymentMethod is already attached to another customer.",
            )),
            _ => {
                record.saved.customer = Some(customer.to_owned());
                Ok(record.saved.clone())
            }
        }
    }

    pub(super) fn list_methods(&self, customer: &str) -> Result<Vec<SavedPaymentMethod>, ProviderError> {
        if !self.customers.contains_key(customer) {
            return Err(ProviderError::not_found("customer", customer));
        }
        let mut records: Vec<_> = self
            .methods
            .values()
            .filter(|record| record.saved.customer.as_deref() == Some(customer))
            .collect();
        records.sort_by_key(|record| std::cmp::Reverse(record.sequence));
        Ok(records.into_iter().map(|record| record.saved.clone()).collect())
    }

    pub(super) fn detach(&mut self, payment_method: &str) -> Result<SavedPaymentMethod, ProviderError> {
        self.tick();
        let record = self
            .methods
            .get_mut(payment_method)
            .ok_or_else(|| ProviderError::not_found("payment_method", payment_method))?;
        if record.saved.customer.is_none() {
            return Err(ProviderError::invalid(
                Some("payment_method_unexpected_state"),
                Some("payment_method"),
                "The payment method is not attached to a customer.",
            ));
        }
        record.saved.customer = None;
        record.detached = true;
        Ok(record.saved.clone())
    }

    /// Everything the account holds, oldest first, and every movement of money.
    pub(super) fn ledger(&self) -> Ledger {
        let mut intents: Vec<PaymentIntent> = self.intents.values().cloned().collect();
        intents.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        let mut refunds: Vec<Refund> = self.refunds.values().cloned().collect();
        refunds.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        let mut customers: Vec<Customer> = self.customers.values().cloned().collect();
        customers.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        let mut methods: Vec<&MethodRecord> = self.methods.values().collect();
        methods.sort_by_key(|record| record.sequence);
        Ledger {
            intents,
            refunds,
            customers,
            payment_methods: methods
                .into_iter()
                .map(|record| LedgerMethod {
                    method: record.saved.clone(),
                    detached: record.detached,
                })
                .collect(),
            movements: self.log.movements(),
        }
    }
}

//! The provider's truth, for checkers: every object the mock account holds
//! and every movement of money with the idempotency key of the call that made it.
//!
//! A fault-injection test compares this with what the gateway stored: a
//! charge the gateway has no row for, two charges for one request, a refund
//! counted twice all show up as a difference between the two.

use crate::customer::{Customer, SavedPaymentMethod};
use crate::intent::{PaymentIntent, UnixTimestamp};
use crate::provider::IdempotencyKey;
use crate::refund::Refund;

/// How money moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MovementKind {
    /// The issuer authorized the intent's amount (captured at once for
    /// automatic capture, held for manual capture).
    Charge,
    /// Held funds were captured (manual capture).
    Capture,
    /// Captured funds were given back.
    Refund,
}

/// One movement of money at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneyMovement {
    /// What moved.
    pub kind: MovementKind,
    /// The intent it belongs to.
    pub intent: String,
    /// The refund, for [`MovementKind::Refund`].
    pub refund: Option<String>,
    /// Minor units moved.
    pub amount: i64,
    /// The idempotency key of the call that moved it; `None` when no API
    /// call did (the customer finishing 3-D Secure).
    pub key: Option<IdempotencyKey>,
    /// The provider's clock when it moved.
    pub at: UnixTimestamp,
}

/// A payment method object with whether it was detached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerMethod {
    /// The method as the provider shows it.
    pub method: SavedPaymentMethod,
    /// Detached methods can never be used again.
    pub detached: bool,
}

/// Everything a mock account holds, oldest first (see [`crate::MockProvider::ledger`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Every intent still remembered, by creation.
    pub intents: Vec<PaymentIntent>,
    /// Every refund, by creation.
    pub refunds: Vec<Refund>,
    /// Every customer, by creation.
    pub customers: Vec<Customer>,
    /// Every payment method created by attaching a test token, by creation.
    pub payment_methods: Vec<LedgerMethod>,
    /// Every movement of money, in order.
    pub movements: Vec<MoneyMovement>,
}

impl Ledger {
    /// The movements of `kind` for `intent`.
    pub fn movements_of<'a>(
        &'a self,
        intent: &'a str,
        kind: MovementKind,
    ) -> impl Iterator<Item = &'a MoneyMovement> + 'a {
        self.movements
            .iter()
            .filter(move |movement| movement.intent == intent && movement.kind == kind)
    }

    /// The refunds of `intent` that hold funds (pending or succeeded).
    pub fn refunds_of<'a>(&'a self, intent: &'a str) -> impl Iterator<Item = &'a Refund> + 'a {
        self.refunds
            .iter()
            .filter(move |refund| refund.payment_intent == intent && refund.status.holds_funds())
    }
}

/// The movements an account records as it changes, stamped with the key of
/// the call being carried out.
#[derive(Debug, Default)]
pub(super) struct MovementLog {
    /// The key of the call the account is carrying out, if any.
    current_key: Option<IdempotencyKey>,
    movements: Vec<MoneyMovement>,
}

impl MovementLog {
    /// Stamps the movements recorded until [`MovementLog::end_call`] with `key`.
    pub(super) fn begin_call(&mut self, key: Option<&IdempotencyKey>) {
        self.current_key = key.cloned();
    }

    /// Movements from now on belong to no call (until the next `begin_call`).
    pub(super) fn end_call(&mut self) {
        self.current_key = None;
    }

    /// Records one movement of the call being carried out.
    pub(super) fn record(
        &mut self,
        kind: MovementKind,
        intent: &str,
        refund: Option<&str>,
        amount: i64,
        at: UnixTimestamp,
    ) {
        self.movements.push(MoneyMovement {
            kind,
            intent: intent.to_owned(),
            refund: refund.map(str::to_owned),
            amount,
            key: self.current_key.clone(),
            at,
        });
    }

    pub(super) fn movements(&self) -> Vec<MoneyMovement> {
        self.movements.clone()
    }
}

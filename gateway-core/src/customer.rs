//! Provider customers and their saved card payment methods.

use serde::{Deserialize, Serialize};

use crate::intent::{Metadata, UnixTimestamp};

/// A customer at the provider, to which payment methods are saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// The provider's reference (`cus_…` at Stripe).
    pub id: String,
    /// The provider that holds the customer.
    pub provider: String,
    /// The customer's email address.
    pub email: Option<String>,
    /// The customer's name.
    pub name: Option<String>,
    /// Free-form metadata.
    pub metadata: Metadata,
    /// When the provider created it.
    pub created: UnixTimestamp,
}

/// The details of a card that are safe to store and show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardDetails {
    /// Card brand as the provider names it (`visa`, `mastercard`, `amex`, …).
    pub brand: String,
    /// The last four digits.
    pub last4: String,
    /// Expiry month, 1 to 12.
    pub exp_month: u8,
    /// Four-digit expiry year.
    pub exp_year: u16,
    /// The card's funding (`credit`, `debit`, `prepaid`, `unknown`).
    pub funding: Option<String>,
    /// Two-letter country of the issuer.
    pub country: Option<String>,
}

/// A payment method saved at the provider, possibly attached to a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPaymentMethod {
    /// The provider's reference (`pm_…` at Stripe).
    pub id: String,
    /// The provider that holds it.
    pub provider: String,
    /// The customer it is attached to; `None` once detached.
    pub customer: Option<String>,
    /// Card details, for card payment methods.
    pub card: Option<CardDetails>,
    /// When the provider created it.
    pub created: UnixTimestamp,
}

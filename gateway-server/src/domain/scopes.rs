//! API-key scopes (what a key may do) and the authenticated [`Caller`].

use std::fmt;
use std::sync::Arc;

use crate::domain::error::{ApiError, Status};

/// One permission an API key may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Read payments, refunds and saved cards.
    PaymentsRead,
    /// Create and change payments, refunds and saved cards.
    PaymentsWrite,
    /// Read the merchant's configuration and keys.
    MerchantRead,
    /// Change the merchant's configuration and keys.
    MerchantWrite,
    /// Read webhook configuration and deliveries.
    WebhooksRead,
}

impl Scope {
    /// Every scope.
    pub(crate) const ALL: [Scope; 5] = [
        Scope::PaymentsRead,
        Scope::PaymentsWrite,
        Scope::MerchantRead,
        Scope::MerchantWrite,
        Scope::WebhooksRead,
    ];

    /// The scope's name, e.g. `payments:write`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scope::PaymentsRead => "payments:read",
            Scope::PaymentsWrite => "payments:write",
            Scope::MerchantRead => "merchant:read",
            Scope::MerchantWrite => "merchant:write",
            Scope::WebhooksRead => "webhooks:read",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// Parses a scope name.
    pub(crate) fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == name.trim())
    }
}

/// A set of scopes, written `payments:read,payments:write`.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Scopes(u8);

impl Scopes {
    /// Every scope.
    pub(crate) fn all() -> Scopes {
        Scopes(Scope::ALL.iter().fold(0, |bits, scope| bits | scope.bit()))
    }

    /// Whether `scope` is in the set.
    pub(crate) fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether every scope of `other` is in this set.
    pub(crate) fn covers(self, other: Scopes) -> bool {
        self.0 & other.0 == other.0
    }

    /// Parses a comma-separated list; the error names the unknown scope.
    pub(crate) fn parse_list(text: &str) -> Result<Scopes, String> {
        Scopes::from_names(text.split(',').map(str::trim).filter(|name| !name.is_empty()))
    }

    /// Parses scope names; the error names the unknown scope.
    pub(crate) fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Scopes, String> {
        names.into_iter().try_fold(Scopes(0), |scopes, name| {
            Scope::parse(name)
                .map(|scope| Scopes(scopes.0 | scope.bit()))
                .ok_or_else(|| name.to_owned())
        })
    }

    /// Whether the set is empty.
    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scope names, in a fixed order.
    pub(crate) fn names(self) -> Vec<&'static str> {
        Scope::ALL
            .into_iter()
            .filter(|scope| self.contains(*scope))
            .map(Scope::as_str)
            .collect()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({self})")
    }
}

/// The authenticated caller: a merchant through one of its keys.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) merchant_id: Arc<str>,
    pub(crate) key_id: Arc<str>,
    pub(crate) scopes: Scopes,
}

impl Caller {
    /// 403 naming `scope` unless the key carries it.
    pub(crate) fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(ApiError::new(
                Status::FORBIDDEN,
                "insufficient_scope",
                format!("this API key lacks the scope {}", scope.as_str()),
            )
            .with_param(scope.as_str()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_print() {
        let scopes = Scopes::parse_list("payments:read, merchant:write").unwrap();
        assert!(scopes.contains(Scope::PaymentsRead) && scopes.contains(Scope::MerchantWrite));
        assert!(!scopes.contains(Scope::PaymentsWrite));
        assert_eq!(scopes.to_string(), "payments:read,merchant:write");
        assert_eq!(Scopes::parse_list("payments:read,nope"), Err("nope".to_owned()));
        assert_eq!(Scopes::parse_list(&Scopes::all().to_string()), Ok(Scopes::all()));
        assert!(Scopes::all().covers(scopes) && !scopes.covers(Scopes::all()));
    }
}

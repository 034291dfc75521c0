//! The gateway's own vocabulary, above `support`: API-key scopes, the
//! merchant-facing wire views (shared by the HTTP answers and the merchant
//! webhooks), the API's error, and the types of a payment's changes.
//! No storage, no I/O, no actix.

pub(crate) mod changes;
pub(crate) mod error;
pub(crate) mod records;
pub(crate) mod scopes;
pub(crate) mod views;

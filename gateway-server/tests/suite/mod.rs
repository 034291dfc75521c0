//! The integration tests both backends run: each module drives a real server
//! through `crate::common::TestServer`, which gives every server a database
//! of the binary's backend.

mod cards;
mod idempotency;
mod merchants;
mod operations;
mod payments;
mod robustness;
mod stripe_webhooks;
mod webhooks;

//! The integration tests both backends run: each module drives a real server
//! through `crate::common::TestServer`, which gives every server a database
//! of the binary's backend.
//!
//! A new test file goes here, listed below: the `sqlite` and `postgres`
//! binaries both run it (`cargo test -p gateway-server --test sqlite`, or
//! `--test postgres`). Tests of several instances on one database go in
//! `postgres/cluster.rs` instead: only PostgreSQL shares a database.

mod account_pinning;
mod cards;
mod delivery_fairness;
mod dev_cli;
mod egress;
mod events;
mod faults;
mod idempotency;
mod inbound_sweep;
mod limits;
mod merchants;
mod modes_and_secrets;
mod openapi_contract;
mod operations;
mod ordering;
mod payments;
mod refund_lifecycle;
mod robustness;
mod stripe_refunds;
mod stripe_webhooks;
mod timeline;
mod webhook_endpoints;
mod webhooks;

//! The server's integration suite again, against PostgreSQL, and the tests
//! of several instances on one database (`cluster`).
//!
//! One throwaway PostgreSQL cluster serves this whole binary (see
//! `common/postgres.rs`); each test gets a database of its own. The test
//! files are the SQLite suite's own: their `common` sees it runs in this
//! binary and gives every server a PostgreSQL database.

// Each included test file brings its own copy of `common`; they share one cluster.
#![allow(clippy::duplicate_mod)]

#[path = "../cards.rs"]
mod cards;
#[path = "../idempotency.rs"]
mod idempotency;
#[path = "../merchants.rs"]
mod merchants;
#[path = "../operations.rs"]
mod operations;
#[path = "../payments.rs"]
mod payments;
#[path = "../robustness.rs"]
mod robustness;
#[path = "../stripe_webhooks.rs"]
mod stripe_webhooks;
#[path = "../webhooks.rs"]
mod webhooks;

#[path = "../common/mod.rs"]
mod common;

mod cluster;

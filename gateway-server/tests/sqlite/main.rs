//! The server's integration suite against SQLite: every server a test starts
//! gets a temporary database file of its own.
//!
//! The tests are `suite/`, shared with the `postgres` binary; the tests of
//! several instances on one database are only there (SQLite is one process's
//! database).

#[path = "../common/mod.rs"]
mod common;
mod slow_clients;
#[path = "../suite/mod.rs"]
mod suite;

/// The database of every server in this binary.
const BACKEND: common::Backend = common::Backend::Sqlite;

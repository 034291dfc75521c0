//! The server's integration suite against PostgreSQL, and the tests of
//! several instances on one database (`cluster`).
//!
//! One throwaway PostgreSQL cluster serves this whole binary (see
//! `common/postgres.rs`); every server a test starts gets a database of its
//! own. The tests are `suite/`, shared with the `sqlite` binary; `cluster`
//! runs only here.

#[path = "../common/mod.rs"]
mod common;
#[path = "../suite/mod.rs"]
mod suite;

mod cluster;

/// The database of every server in this binary.
const BACKEND: common::Backend = common::Backend::Postgres;

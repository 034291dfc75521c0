//! The Gateway server: an actix-web API over payment providers, with
//! merchants and scoped API keys, idempotent POSTs, and SQLite or PostgreSQL
//! storage (several instances share a PostgreSQL database; see [`cluster`]).
//!
//! Run it with `cargo run -p gateway-server` (the `gateway` binary); embed it
//! (tests do) with [`ServerBuilder`].

mod auth;
mod body;
mod clock;
mod config;
mod crypto;
mod errors;
mod idempotency;
mod ids;
mod leases;
mod locks;
mod metrics;
mod openapi;
mod payments;
mod providers;
mod routes;
mod server;
mod state;
mod storage;

pub mod cli;
pub mod cluster;

pub use config::{Config, ConfigError, LogFormat};
pub use crypto::MasterKey;
pub use server::{RunningServer, ServerBuilder, StartError};

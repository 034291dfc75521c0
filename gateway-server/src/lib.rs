//! The Gateway server: an actix-web API over payment providers, with
//! merchants and scoped API keys, idempotent POSTs, and SQLite or PostgreSQL
//! storage (several instances share a PostgreSQL database; see [`cluster`]).
//! Payment changes are published on gateway-core's event bus (handlers
//! linked into the binary run on them, on every instance); provider webhooks
//! are verified, stored and processed durably; merchants receive signed
//! webhooks from a durable outbox; reconciliation heals missed webhooks.
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
mod inbound;
mod leases;
mod locks;
mod metrics;
mod openapi;
mod outbound;
mod payments;
mod providers;
mod reconcile;
mod routes;
mod server;
mod state;
mod storage;

pub mod cli;
pub mod cluster;

pub use config::{Config, ConfigError, LogFormat};
pub use crypto::MasterKey;
pub use outbound::DeliverySchedule;
pub use reconcile::ReconcileSettings;
pub use server::{RunningServer, ServerBuilder, StartError};
pub use state::Clock;

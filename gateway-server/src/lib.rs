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
//!
//! The crate is in layers, each a module that imports only from the ones
//! below it (`ARCHITECTURE.md` is the map; `tests/layers.rs` enforces it):
//! [`support`](self) ← `domain` ← `store` ← `app` ← `http` ← `server`.

mod app;
mod domain;
mod http;
mod server;
mod store;
mod support;

pub use server::{cli, cluster};

pub use app::core::Clock;
pub use app::outbound::{DeliveryLimits, DeliverySchedule};
pub use app::reconcile::ReconcileSettings;
pub use app::retention::Pruned;
pub use server::config::{choose_mode, Config, ConfigError, LogFormat, Mode, NO_MODE_WARNING};
pub use server::{RunningServer, ServerBuilder, StartError};
pub use support::crypto::MasterKey;
pub use support::egress::{Cidr, CidrError, EgressPolicy};

#![doc = include_str!("../README.md")]
//!
//! ## This crate
//!
//! `gateway` is the facade applications depend on. It re-exports
//! [`gateway_core`] (money, payment intents, the [`PaymentProvider`] trait,
//! [`MockProvider`]) and the `#[payment_handler]` attribute, so an
//! application adds one dependency.

pub use gateway_core::*;
pub use gateway_macros::payment_handler;

//! The Stripe provider for Gateway (in progress: see the Stripe provider issue).

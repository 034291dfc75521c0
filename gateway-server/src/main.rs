//! The `gateway` binary: see `gateway --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Keep the Stripe provider crate linked so its registration is found.
    #[cfg(feature = "stripe")]
    let _ = gateway_stripe::link();
    gateway_server::cli::main()
}

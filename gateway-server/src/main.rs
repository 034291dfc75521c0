//! The `gateway` binary: see `gateway --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    gateway_server::cli::main()
}

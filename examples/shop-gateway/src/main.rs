//! Run with `cargo run -p example-shop-gateway` (the binary `shop-gateway`).
//!
//! The whole `gateway` command line — `serve` (the default), `migrate`,
//! `merchant create`, `apikey create|revoke`, `config` — with the
//! order-fulfillment plugin linked in and an order book in its handlers'
//! context. Every setting is the bundled gateway's (`--config`, `GATEWAY_*`).

use example_order_fulfillment::{OrderBook, PLUGIN};

fn main() -> std::process::ExitCode {
    gateway_server::cli::main_with(|server| {
        server
            .plugin(&PLUGIN)
            .handler_context(|ctx| ctx.with_extension(OrderBook::default()))
    })
}

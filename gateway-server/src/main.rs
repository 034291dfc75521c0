//! The `gateway` binary.

fn main() {
    let providers: Vec<_> = gateway_core::provider_factories()
        .iter()
        .map(|f| f.name)
        .collect();
    println!("gateway: providers linked in: {}", providers.join(", "));
}

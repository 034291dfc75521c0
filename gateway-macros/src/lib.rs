//! `#[payment_handler]`: registers a typed async handler for a payment-intent event.
//! Use it through the `gateway` crate (`gateway::payment_handler`).

use proc_macro::TokenStream;

/// Registers an `async fn(event: IntentSucceeded, ctx: HandlerContext) -> Result<(), HandlerError>`
/// as a handler for its event type.
#[proc_macro_attribute]
pub fn payment_handler(_args: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    quote::quote! {
        ::core::compile_error!("#[payment_handler] arrives with the event bus; it registers nothing yet");
        #item
    }
    .into()
}

//! `#[payment_handler]`: registers a typed async handler for a payment-intent
//! event. Use it through the `gateway` crate (`gateway::payment_handler`);
//! the generated code names every path through `gateway::__private`.

mod options;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType, Type};

use crate::options::HandlerArgs;

/// Registers an `async fn(event: E, ctx: HandlerContext) -> Result<(), HandlerError>`
/// as the handler of event type `E` (`IntentSucceeded`, `IntentCanceled`, …,
/// or `AnyIntentEvent` for every event).
///
/// The function is left as it is, so it also works as a plain function.
///
/// Options: `name = "…"` (default: the function's name), `retries = 3`,
/// `timeout = "30s"` (`ms`, `s` or `m`), `local_only` (skip changes relayed
/// from another gateway instance), `crate = path` (where the gateway crate
/// is, default `::gateway`).
///
/// ```ignore
/// use gateway::{payment_handler, HandlerContext, HandlerError, IntentSucceeded};
///
/// #[payment_handler(retries = 5, timeout = "10s")]
/// async fn mark_order_paid(event: IntentSucceeded, ctx: HandlerContext) -> Result<(), HandlerError> {
///     println!("order {:?} paid", event.intent.order_id());
///     Ok(())
/// }
/// ```
#[proc_macro_attribute]
pub fn payment_handler(args: TokenStream, item: TokenStream) -> TokenStream {
    let item2 = TokenStream2::from(item.clone());
    let function = match syn::parse::<ItemFn>(item) {
        Ok(function) => function,
        Err(error) => return with_error(item2, error),
    };
    let args = match HandlerArgs::parse(args.into()) {
        Ok(args) => args,
        Err(error) => return with_error(item2, error),
    };
    match expand(&function, args) {
        Ok(registration) => quote!(#function #registration).into(),
        Err(error) => with_error(item2, error),
    }
}

/// The item unchanged (so later errors stay meaningful) plus the error.
fn with_error(item: TokenStream2, error: syn::Error) -> TokenStream {
    let error = error.to_compile_error();
    quote!(#item #error).into()
}

const SIGNATURE: &str =
    "write it as `async fn name(event: IntentSucceeded, ctx: HandlerContext) -> Result<(), HandlerError>`";

fn check_signature(function: &ItemFn) -> syn::Result<(&Type, &Type, &Type)> {
    let sig = &function.sig;
    if let Some(constness) = &sig.constness {
        return Err(syn::Error::new_spanned(
            constness,
            "a payment handler cannot be `const`; remove `const`",
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        return Err(syn::Error::new_spanned(
            unsafety,
            "a payment handler cannot be `unsafe`; remove `unsafe`",
        ));
    }
    if let Some(abi) = &sig.abi {
        return Err(syn::Error::new_spanned(
            abi,
            "a payment handler cannot have an ABI; remove it",
        ));
    }
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span,
            format!("a payment handler must be async: write `async fn`; {SIGNATURE}"),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "a payment handler cannot be generic: the event type of its first argument selects the events it receives; remove the generic parameters",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new_spanned(
            variadic,
            "a payment handler cannot be variadic",
        ));
    }
    let mut types = Vec::with_capacity(2);
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                return Err(syn::Error::new_spanned(
                    receiver,
                    "a payment handler is a free function, not a method: remove `self` and move it out of the `impl` block",
                ))
            }
            FnArg::Typed(typed) => types.push(&*typed.ty),
        }
    }
    if types.is_empty() {
        return Err(syn::Error::new(
            sig.paren_token.span.join(),
            format!("a payment handler takes the event and the context; {SIGNATURE}"),
        ));
    }
    if types.len() == 1 {
        return Err(syn::Error::new_spanned(
            &sig.inputs,
            "a payment handler also takes the context: add `ctx: HandlerContext` as its second argument",
        ));
    }
    if let Some(extra) = sig.inputs.iter().nth(2) {
        return Err(syn::Error::new_spanned(
            extra,
            format!("a payment handler takes exactly two arguments; remove this one ({SIGNATURE})"),
        ));
    }
    let output = match &sig.output {
        ReturnType::Type(_, output) => &**output,
        ReturnType::Default => {
            return Err(syn::Error::new(
                sig.paren_token.span.close(),
                "a payment handler must return `Result<(), HandlerError>`: add `-> Result<(), HandlerError>` and end with `Ok(())`",
            ))
        }
    };
    Ok((types[0], types[1], output))
}

fn expand(function: &ItemFn, args: HandlerArgs) -> syn::Result<TokenStream2> {
    let (event, context, output) = check_signature(function)?;
    let ident = &function.sig.ident;
    let krate = args.krate.unwrap_or_else(|| syn::parse_quote!(::gateway));
    let private = quote!(#krate::__private);
    let name = args.name.unwrap_or_else(|| ident.to_string());
    let retries = args.retries.unwrap_or(3);
    let timeout_ms = args.timeout_ms.unwrap_or(30_000);
    let local_only = args.local_only;

    // Each conversion carries the span of the argument it checks, so a wrong
    // type is reported once, on that argument, with the trait's own message.
    let event_span = event.span();
    let to_event = quote_spanned! {event_span=>
        <#event as #private::IntentEventType>::from_change(change)
    };
    let to_context = quote_spanned! {context.span()=>
        <#context as #private::IsHandlerContext>::from_context(ctx)
    };
    // The callee is a local alias spanned at the return type, so a wrong
    // return type or a future that is not `Send` is reported there; the
    // notes name the function it stands for (`handler_future`), never the alias.
    let boxed = quote_spanned! {output.span()=>
        __gateway_handler_future(#ident(event, ctx))
    };
    let kind = quote_spanned! {event_span=>
        <#event as #private::IntentEventType>::KIND
    };
    Ok(quote! {
        const _: () = {
            use #private::handler_future as __gateway_handler_future;

            fn __call(change: #private::SharedChange, ctx: #private::HandlerContext) -> #private::HandlerFuture {
                let event = #to_event;
                let ctx = #to_context;
                #boxed
            }

            #private::inventory::submit! {
                #private::HandlerRegistration {
                    name: #name,
                    crate_name: ::core::env!("CARGO_PKG_NAME"),
                    kind: #kind,
                    options: #private::HandlerOptions {
                        retries: #retries,
                        timeout: #private::Duration::from_millis(#timeout_ms),
                        local_only: #local_only,
                    },
                    call: __call,
                }
            }
        };
    })
}

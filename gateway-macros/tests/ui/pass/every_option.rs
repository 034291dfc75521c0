use gateway::{
    payment_handler, AnyIntentEvent, HandlerContext, HandlerError, IntentCanceled, IntentRequiresCapture,
    IntentSucceeded,
};

#[payment_handler]
async fn plain(event: IntentSucceeded, _ctx: HandlerContext) -> Result<(), HandlerError> {
    let _ = &event.intent.id;
    Ok(())
}

#[payment_handler(name = "capture-waitlist", retries = 5, timeout = "500ms", local_only)]
async fn with_options(_event: IntentRequiresCapture, _ctx: HandlerContext) -> Result<(), HandlerError> {
    Ok(())
}

#[payment_handler(local_only = false, timeout = "2m")]
async fn every_event(_event: AnyIntentEvent, _ctx: HandlerContext) -> Result<(), HandlerError> {
    Ok(())
}

#[payment_handler(crate = ::gateway)]
pub async fn explicit_crate(_: IntentCanceled, _: HandlerContext) -> Result<(), HandlerError> {
    Err(HandlerError::permanent("nothing to do"))
}

fn main() {
    let names: Vec<_> = gateway::registered_handlers().iter().map(|h| h.name).collect();
    assert_eq!(names, ["capture-waitlist", "every_event", "explicit_crate", "plain"]);
    // Still a plain function.
    let _future = plain;
}

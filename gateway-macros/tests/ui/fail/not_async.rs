use gateway::{payment_handler, HandlerContext, HandlerError, IntentSucceeded};

#[payment_handler]
fn handler(_event: IntentSucceeded, _ctx: HandlerContext) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {}

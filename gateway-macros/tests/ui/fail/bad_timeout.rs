use gateway::{payment_handler, HandlerContext, HandlerError, IntentSucceeded};

#[payment_handler(timeout = "30")]
async fn handler(_event: IntentSucceeded, _ctx: HandlerContext) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {}

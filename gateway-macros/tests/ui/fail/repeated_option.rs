use gateway::{payment_handler, HandlerContext, HandlerError, IntentSucceeded};

#[payment_handler(retries = 3, retries = 4)]
async fn handler(_event: IntentSucceeded, _ctx: HandlerContext) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {}

use gateway::{payment_handler, HandlerError, IntentSucceeded};

#[payment_handler]
async fn handler(_event: IntentSucceeded, _ctx: String) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {}

use gateway::{payment_handler, HandlerError, IntentSucceeded};

#[payment_handler]
async fn handler(_event: IntentSucceeded) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {}

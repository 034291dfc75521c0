use gateway::{payment_handler, HandlerContext, HandlerError, IntentEventType};

#[payment_handler]
async fn handler<E: IntentEventType>(_event: E, _ctx: HandlerContext) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {}

use gateway::{payment_handler, HandlerContext, IntentSucceeded};

#[payment_handler]
async fn handler(_event: IntentSucceeded, _ctx: HandlerContext) -> Result<(), String> {
    Ok(())
}

fn main() {}

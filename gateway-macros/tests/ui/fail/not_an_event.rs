use gateway::{payment_handler, HandlerContext, HandlerError, PaymentIntent};

#[payment_handler]
async fn handler(_event: PaymentIntent, _ctx: HandlerContext) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {}

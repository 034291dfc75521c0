use gateway::{payment_handler, HandlerContext, HandlerError, IntentSucceeded};

struct Shop;

impl Shop {
    #[payment_handler]
    async fn handler(&self, _event: IntentSucceeded, _ctx: HandlerContext) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}

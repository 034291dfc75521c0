use std::rc::Rc;

use gateway::{payment_handler, HandlerContext, IntentSucceeded};

async fn notify() {}

#[payment_handler]
async fn handler(_event: IntentSucceeded, _ctx: HandlerContext) -> Result<(), gateway::HandlerError> {
    let counter = Rc::new(1);
    notify().await;
    drop(counter);
    Ok(())
}

fn main() {}

use gateway::{payment_handler, HandlerError};

#[payment_handler]
async fn handler() -> Result<(), HandlerError> {
    Ok(())
}

fn main() {}

//! actix polls a handler's extractors together, so which one fails first
//! would depend on timing (a body still arriving, a key still being looked
//! up). The extractors of this layer take turns instead: each completes only
//! after the one before it in the handler's arguments, so a request with
//! several faults is always answered with the first in argument order —
//! `Auth` (401, 403) first, then the body, then the path.

use std::future::Future;
use std::pin::Pin;

use actix_web::{HttpMessage, HttpRequest};
use futures_util::future::{FutureExt, Shared};

use crate::http::errors::ApiError;

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// How the last extractor registered on a request ended.
#[derive(Clone)]
struct Turn(Shared<LocalBoxFuture<Result<(), ApiError>>>);

/// Runs `work` once the extractors registered before on `req` succeeded;
/// the error of the first that failed otherwise.
pub(crate) fn in_turn<T: 'static>(
    req: &HttpRequest,
    work: impl Future<Output = Result<T, ApiError>> + 'static,
) -> LocalBoxFuture<Result<T, ApiError>> {
    let previous = req.extensions().get::<Turn>().cloned();
    let (done, ended) = tokio::sync::oneshot::channel::<Result<(), ApiError>>();
    let mine: LocalBoxFuture<Result<(), ApiError>> =
        Box::pin(async move { ended.await.unwrap_or_else(|_| Err(ApiError::internal())) });
    req.extensions_mut().insert(Turn(mine.shared()));
    Box::pin(async move {
        if let Some(Turn(previous)) = previous {
            if let Err(error) = previous.await {
                let _ = done.send(Err(error.clone()));
                return Err(error);
            }
        }
        let result = work.await;
        let _ = done.send(result.as_ref().map(drop).map_err(ApiError::clone));
        result
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use actix_web::test::TestRequest;

    use super::*;
    use crate::domain::error::Status;

    #[actix_web::test]
    async fn turns_end_in_registration_order() {
        let req = TestRequest::default().to_http_request();
        let slow_ok = in_turn(&req, async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            Ok(1)
        });
        let fast_err = in_turn(&req, async {
            Err::<u8, _>(ApiError::new(Status::NOT_FOUND, "second", "second"))
        });
        let third = in_turn(&req, async { Ok(3) });
        let (a, b, c) = tokio::join!(slow_ok, fast_err, third);
        assert_eq!(a.unwrap(), 1);
        assert_eq!(b.unwrap_err().code(), "second");
        assert_eq!(
            c.unwrap_err().code(),
            "second",
            "a later turn reports the earlier failure"
        );
        let req = TestRequest::default().to_http_request();
        let first = in_turn(&req, async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            Err::<u8, _>(ApiError::new(Status::UNAUTHORIZED, "first", "first"))
        });
        let second = in_turn(&req, async {
            Err::<u8, _>(ApiError::new(Status::NOT_FOUND, "second", "second"))
        });
        let (a, b) = tokio::join!(first, second);
        assert_eq!(a.unwrap_err().code(), "first");
        assert_eq!(b.unwrap_err().code(), "first");
    }
}

//! Request bodies: size limit, content type, strict JSON with precise errors,
//! and exact decimal amounts read from the JSON text (never through `f64`).

use std::time::Duration;

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::HttpRequest;
use gateway_core::{Currency, Money};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::app::amounts::amount_in;
use crate::app::core::Core;
use crate::domain::error::Status;
use crate::http::errors::ApiError;

/// How long a body may take when no `Core` is configured (unit tests).
const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the whole body, refusing more than `limit` bytes with 413, and a
/// body that does not arrive within `Config::body_read_timeout` with 408
/// `request_timeout` (the connection is then closed: see `http::errors`).
pub(crate) async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            Status::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body exceeds the limit of {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let deadline = req
        .app_data::<web::Data<Core>>()
        .map_or(DEFAULT_BODY_TIMEOUT, |core| core.body_read_timeout);
    let Ok(read) = tokio::time::timeout(deadline, payload.to_bytes_limited(limit)).await else {
        return Err(ApiError::new(
            Status::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request body did not arrive within {} ms",
                deadline.as_millis()
            ),
        ));
    };
    match read {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(error)) => Err(ApiError::new(
            Status::BAD_REQUEST,
            "invalid_body",
            format!("the request body could not be read: {error}"),
        )),
        Err(_) => Err(too_large()),
    }
}

/// Parses a JSON body strictly: `application/json` content type, no unknown
/// fields, errors naming the line and column or the parameter. An empty
/// body reads as `{}`.
pub(crate) fn parse_json<T: DeserializeOwned>(req: &HttpRequest, body: &[u8]) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        check_content_type(req)?;
        body
    };
    serde_json::from_slice(body).map_err(|error| json_error(&error))
}

fn check_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(
            Status::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "send the body as JSON with Content-Type: application/json (got {:?})",
                if content_type.is_empty() {
                    "nothing"
                } else {
                    content_type
                }
            ),
        ))
    }
}

/// Turns a serde_json error into a 400 naming the position or the parameter.
pub(crate) fn json_error(error: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let text = error.to_string();
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::new(
            Status::BAD_REQUEST,
            "invalid_json",
            format!(
                "the body is not valid JSON: {} (line {}, column {})",
                strip_position(&text),
                error.line(),
                error.column()
            ),
        ),
        Category::Data => {
            let field = between_backticks(&text);
            if text.starts_with("unknown field") {
                let mut api = ApiError::new(Status::BAD_REQUEST, "parameter_unknown", text.clone());
                if let Some(field) = field {
                    api = api.with_param(field);
                }
                api
            } else if text.starts_with("missing field") {
                match field {
                    Some(field) => ApiError::missing_param(field),
                    None => ApiError::new(Status::BAD_REQUEST, "parameter_missing", text),
                }
            } else {
                ApiError::new(Status::BAD_REQUEST, "parameter_invalid", text)
            }
        }
    }
}

fn strip_position(text: &str) -> &str {
    text.rfind(" at line ").map_or(text, |at| &text[..at])
}

fn between_backticks(text: &str) -> Option<&str> {
    let start = text.find('`')? + 1;
    let end = start + text[start..].find('`')?;
    Some(&text[start..end])
}

/// Parses an amount exactly in `currency`.
pub(crate) fn parse_amount(raw: &RawValue, currency: Currency, param: &str) -> Result<Money, ApiError> {
    amount_in(raw, currency, param)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        amount: Box<RawValue>,
        currency: String,
    }

    fn json_req() -> HttpRequest {
        TestRequest::default()
            .insert_header(("content-type", "application/json; charset=utf-8"))
            .to_http_request()
    }

    #[test]
    fn amounts_are_exact_from_number_or_string() {
        for (text, minor) in [("50.00", 5000), ("\"50.00\"", 5000), ("0.1", 10), ("19.99", 1999)] {
            let body = format!(r#"{{"amount": {text}, "currency": "USD"}}"#);
            let parsed: Body = parse_json(&json_req(), body.as_bytes()).unwrap();
            let money = parse_amount(&parsed.amount, Currency::USD, "amount").unwrap();
            assert_eq!(money.minor_units(), minor, "{text}");
        }
        for bad in ["5e1", "-1", "0", "50.001", "true", "null", "\"abc\"", "[1]"] {
            let body = format!(r#"{{"amount": {bad}, "currency": "USD"}}"#);
            let parsed: Body = parse_json(&json_req(), body.as_bytes()).unwrap();
            assert!(
                parse_amount(&parsed.amount, Currency::USD, "amount").is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn json_errors_name_position_and_param() {
        let err = parse_json::<Body>(&json_req(), b"{\"amount\": 5,").unwrap_err();
        assert_eq!(err.code(), "invalid_json");
        assert!(String::from_utf8(err.body_bytes()).unwrap().contains("column"));
        let err =
            parse_json::<Body>(&json_req(), br#"{"amount": 5, "currency": "USD", "x": 1}"#).unwrap_err();
        assert_eq!(err.code(), "parameter_unknown");
        let err = parse_json::<Body>(&json_req(), br#"{"amount": 5}"#).unwrap_err();
        assert_eq!(err.code(), "parameter_missing");
        let plain = TestRequest::default()
            .insert_header(("content-type", "text/plain"))
            .to_http_request();
        let err = parse_json::<Body>(&plain, br#"{"amount": 5}"#).unwrap_err();
        assert_eq!(err.status(), Status::UNSUPPORTED_MEDIA_TYPE);
    }
}

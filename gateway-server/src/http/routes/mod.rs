//! HTTP routes, one module per resource, and the validation they share.

pub(crate) mod cards;
pub(crate) mod live;
pub(crate) mod merchant;
pub(crate) mod ops;
pub(crate) mod payments;
pub(crate) mod refunds;
pub(crate) mod webhooks;

use crate::domain::error::Status;
use actix_web::{web, HttpRequest, HttpResponse};
use gateway_core::Metadata;
use serde::de::DeserializeOwned;

use crate::http::errors::ApiError;

/// Registers every route.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/payments")
            .route(web::post().to(payments::create))
            .route(web::get().to(payments::list))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/payments/cards")
            .route(web::post().to(cards::create))
            .route(web::get().to(cards::list))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/payments/cards/{id}")
            .route(web::delete().to(cards::delete))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/payments/{id}")
            .route(web::get().to(payments::get))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/payments/{id}/wait")
            .route(web::get().to(live::wait))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/payments/{id}/events")
            .route(web::get().to(live::events))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/webhooks/{provider}")
            .route(web::post().to(webhooks::receive_global))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/webhooks/{provider}/{merchant_id}")
            .route(web::post().to(webhooks::receive_merchant))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/webhook-deliveries")
            .route(web::get().to(webhooks::list_deliveries))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/webhook-deliveries/{id}")
            .route(web::get().to(webhooks::get_delivery))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/webhook-deliveries/{id}/retry")
            .route(web::post().to(webhooks::retry_delivery))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/payments/{id}/confirm")
            .route(web::post().to(payments::confirm))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/payments/{id}/capture")
            .route(web::post().to(payments::capture))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/payments/{id}/cancel")
            .route(web::post().to(payments::cancel))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/refunds")
            .route(web::post().to(refunds::create))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/refunds/{id}")
            .route(web::get().to(refunds::get))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/merchant")
            .route(web::get().to(merchant::get))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/merchant/providers")
            .route(web::put().to(merchant::put_providers))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/merchant/webhook")
            .route(web::put().to(merchant::put_webhook))
            .route(web::get().to(merchant::get_webhook))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/merchant/api_keys")
            .route(web::post().to(merchant::create_key))
            .route(web::get().to(merchant::list_keys))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/merchant/api_keys/{id}")
            .route(web::delete().to(merchant::revoke_key))
            .default_service(web::to(method_not_allowed)),
    )
    .service(web::resource("/healthz").route(web::get().to(ops::healthz)))
    .service(web::resource("/readyz").route(web::get().to(ops::readyz)))
    .service(web::resource("/metrics").route(web::get().to(ops::metrics)))
    .service(web::resource("/openapi.json").route(web::get().to(ops::openapi)));
}

/// 404 in the envelope for any unknown path.
pub(crate) async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        Status::NOT_FOUND,
        "route_not_found",
        format!("no route for {} {}", req.method(), req.path()),
    ))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        Status::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.path()),
    ))
}

/// Parses the query string strictly into `T`.
pub(crate) fn parse_query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|error| {
            ApiError::new(
                Status::BAD_REQUEST,
                "parameter_invalid",
                format!("invalid query string: {error}"),
            )
        })
}

/// A URL the gateway may send customers or events to: `https://` (or `http://`
/// for `localhost` / `127.0.0.1` during development), a host, no credentials,
/// no whitespace, at most 2048 characters.
pub(crate) fn validate_url(param: &str, url: &str) -> Result<(), ApiError> {
    let invalid = |why: &str| ApiError::invalid_param(param, format!("{param} {why}"));
    if url.len() > 2048 {
        return Err(invalid("is longer than 2048 characters"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("must not contain whitespace"));
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| invalid("must be an absolute https:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(invalid("must not carry credentials"));
    }
    let host = if authority.starts_with('[') {
        authority
            .split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or("").to_owned()
    };
    if host.is_empty() || host.starts_with('.') || host.ends_with('.') {
        return Err(invalid("must name a host"));
    }
    if let Some(port) = authority.strip_prefix(&host).and_then(|p| p.strip_prefix(':')) {
        if port.parse::<u16>().is_err() {
            return Err(invalid("has an invalid port"));
        }
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]") => Ok(()),
        _ => Err(invalid("must use https://")),
    }
}

/// An email address, checked loosely: one `@`, something on each side, a dot in the domain.
pub(crate) fn validate_email(param: &str, email: &str) -> Result<(), ApiError> {
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        });
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid_param(
            param,
            format!("{param} is not a valid email address"),
        ))
    }
}

/// Stripe's metadata limits: 50 keys, keys up to 40 characters, values up to 500.
pub(crate) fn validate_metadata(metadata: &Metadata) -> Result<(), ApiError> {
    if metadata.len() > 50 {
        return Err(ApiError::invalid_param(
            "metadata",
            "metadata has more than 50 keys",
        ));
    }
    for (key, value) in metadata {
        if key.is_empty() || key.chars().count() > 40 {
            return Err(ApiError::invalid_param(
                "metadata",
                "metadata keys must be 1 to 40 characters",
            ));
        }
        if value.chars().count() > 500 {
            return Err(ApiError::invalid_param(
                "metadata",
                format!("metadata value for {key:?} is longer than 500 characters"),
            ));
        }
    }
    Ok(())
}

/// A string parameter of at most `max` characters.
pub(crate) fn validate_len(param: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.chars().count() > max {
        Err(ApiError::invalid_param(
            param,
            format!("{param} is longer than {max} characters"),
        ))
    } else {
        Ok(())
    }
}

/// Path ids are opaque; refuse absurd ones before they reach storage.
pub(crate) fn check_id<'a>(kind: &str, id: &'a str) -> Result<&'a str, ApiError> {
    if id.is_empty() || id.len() > 100 {
        Err(ApiError::not_found(kind, id.get(..100).unwrap_or(id)))
    } else {
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(validate_url("u", "https://merchant.com/return?x=1").is_ok());
        assert!(validate_url("u", "https://merchant.com:8443/hook").is_ok());
        assert!(validate_url("u", "http://localhost:3000/hook").is_ok());
        for bad in [
            "http://merchant.com/x",
            "ftp://merchant.com",
            "merchant.com",
            "https://",
            "https://user:pw@merchant.com",
            "https://mer chant.com",
            "https://merchant.com:99999/",
            "javascript:alert(1)",
        ] {
            assert!(validate_url("u", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert!(validate_email("e", "user@example.com").is_ok());
        for bad in [
            "user",
            "@example.com",
            "user@example",
            "a b@example.com",
            "a@b@c.com",
        ] {
            assert!(validate_email("e", bad).is_err(), "{bad}");
        }
    }
}

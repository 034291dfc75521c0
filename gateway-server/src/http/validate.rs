//! Checks request types share: URLs, emails, metadata, lengths.

use gateway_core::Metadata;

use crate::http::errors::ApiError;

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

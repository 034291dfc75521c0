//! Wall-clock time as Unix milliseconds, and RFC 3339 text.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// Microseconds since the Unix epoch (for ordering events closer than a millisecond).
pub(crate) fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as i64)
}

/// `2025-01-01T12:00:00Z` (seconds precision, UTC).
pub(crate) fn rfc3339(ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Parses `2025-06-01T00:00:00Z` (or without the `Z`, or a date alone) or Unix seconds.
pub(crate) fn parse_time(text: &str) -> Option<i64> {
    if let Ok(seconds) = text.parse::<i64>() {
        return seconds.checked_mul(1000);
    }
    let owned;
    let text = if text.len() == 10 {
        owned = format!("{text}T00:00:00Z");
        &owned
    } else {
        text
    };
    let time = humantime::parse_rfc3339_weak(text).ok()?;
    time.duration_since(UNIX_EPOCH)
        .ok()
        .map(|elapsed| elapsed.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(rfc3339(1_735_732_800_000), "2025-01-01T12:00:00Z");
        assert_eq!(parse_time("2025-01-01T12:00:00Z"), Some(1_735_732_800_000));
        assert_eq!(parse_time("2025-01-01"), Some(1_735_689_600_000));
        assert_eq!(parse_time("1735732800"), Some(1_735_732_800_000));
        assert_eq!(parse_time("yesterday"), None);
    }
}

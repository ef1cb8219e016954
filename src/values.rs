//! What a flag's value is, parsed where the command line is read (clap
//! calls these): durations, rates of bytes, URLs. Sizes and destinations
//! parse by their own types (`types::ByteSize`, `types::Destination`). A
//! value that does not parse is refused before any setting is built, in
//! one line naming the flag (clap adds it) and the reason (said here).

use std::time::Duration;

use crate::types::ByteSize;

/// `500ms`, `90s`, `30m`, `24h`, `7d`, or a number of seconds.
pub fn duration(value: &str) -> Result<Duration, String> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| "not a duration: write it like 30s, 10m, 24h or 7d".to_string())?;
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err("an unknown unit: use ms, s, m, h or d".into()),
    };
    Ok(Duration::from_millis(n.saturating_mul(unit_ms)))
}

/// A duration more than 0.
pub fn positive_duration(value: &str) -> Result<Duration, String> {
    let d = duration(value)?;
    if d.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(d)
}

/// A rate of bytes per second more than 0, like `20MiB/s` (the `/s` may
/// be left out).
pub fn rate(value: &str) -> Result<u64, String> {
    let v = value.trim();
    let size: ByteSize = v
        .strip_suffix("/s")
        .unwrap_or(v)
        .parse()
        .map_err(|e| format!("{e}"))?;
    if size.get() == 0 {
        return Err("must be more than 0, e.g. 20MiB/s".into());
    }
    Ok(size.get())
}

/// An http(s) URL, without spaces.
pub fn http_url(value: &str) -> Result<String, String> {
    url(value, false)
}

/// An absolute path like `/media/`, or an http(s) URL, without spaces.
pub fn path_or_url(value: &str) -> Result<String, String> {
    url(value, true)
}

fn url(value: &str, allow_path: bool) -> Result<String, String> {
    let ok = value.starts_with("http://")
        || value.starts_with("https://")
        || (allow_path && value.starts_with('/'));
    if !ok || value.chars().any(char::is_whitespace) {
        let what = if allow_path {
            "an absolute path like /media/ or an http(s):// URL"
        } else {
            "an http(s):// URL"
        };
        return Err(format!("must be {what}, without spaces"));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_rates_and_urls() {
        assert_eq!(duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("0"), Ok(Duration::ZERO));
        assert!(duration("soon").unwrap_err().contains("not a duration"));
        assert!(duration("5y").unwrap_err().contains("unknown unit"));
        assert!(positive_duration("0s").unwrap_err().contains("more than 0"));
        assert_eq!(rate("20MiB/s"), Ok(20 << 20));
        assert_eq!(rate("1k"), Ok(1024));
        assert!(rate("0/s").is_err() && rate("fast").is_err());
        assert!(http_url("https://cdn.example/").is_ok());
        assert!(http_url("/media/").is_err() && path_or_url("/media/").is_ok());
        assert!(http_url("https://a b").is_err());
    }
}

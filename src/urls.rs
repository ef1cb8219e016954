//! Building the URLs that go into rewrite maps and reports.
//!
//! Browsers, nginx and CDNs disagree about which characters a path may carry
//! raw, so every path segment is percent-encoded the strict way (RFC 3986):
//! only the unreserved characters `A-Z a-z 0-9 - . _ ~` stay as they are;
//! everything else, including `+`, space, `%`, `#`, `?` and every byte of a
//! non-ASCII character, becomes `%XX`. `/` between segments is kept.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986 unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes each `/`-separated segment of `path`.
pub fn encode_path(path: &str) -> String {
    path.split('/')
        .map(|seg| utf8_percent_encode(seg, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// `base` with exactly one `/` before `encoded_path`.
pub fn join(base: &str, encoded_path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        encoded_path.trim_start_matches('/')
    )
}

/// What a browser requests for a URL an application writes raw, as its
/// base and a file's path: the path up to a `#` (a fragment, not sent) and
/// a `?` (a query), with spaces, control characters, non-ASCII bytes and
/// the few characters a request line may not carry percent-encoded; a
/// `\` becomes `/` (WHATWG URL parsing). `+`, `%` and the rest go as they
/// are, so what the server makes of them is what a visitor gets.
pub fn as_a_browser_sends(raw: &str) -> String {
    let (raw, _fragment) = raw.split_once('#').unwrap_or((raw, ""));
    let (path, query) = match raw.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (raw, None),
    };
    let mut out = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        match b {
            b'\\' => out.push('/'),
            b if b <= b' ' || b >= 0x7f || b"\"<>`{}|^[]".contains(&b) => {
                out.push_str(&format!("%{b:02X}"));
            }
            b => out.push(b as char),
        }
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The URL a file is served at: base URL plus its encoded relative path.
pub fn url_for(base: &str, path: &str) -> String {
    join(base, &encode_path(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_path_is_sent_as_a_browser_sends_it() {
        assert_eq!(
            as_a_browser_sends("2024/11/sunset beach-café.jpg"),
            "2024/11/sunset%20beach-caf%C3%A9.jpg"
        );
        // What S3 makes of these is what a visitor gets.
        assert_eq!(
            as_a_browser_sends("red+blue 100%25.png"),
            "red+blue%20100%25.png"
        );
        assert_eq!(as_a_browser_sends("a#b.jpg"), "a");
        assert_eq!(as_a_browser_sends("a?b.jpg"), "a?b.jpg");
        assert_eq!(as_a_browser_sends("a\\b|c.jpg"), "a/b%7Cc.jpg");
    }

    #[test]
    fn unreserved_characters_stay() {
        assert_eq!(encode_path("a-b.c_d~e/F9.jpg"), "a-b.c_d~e/F9.jpg");
    }

    #[test]
    fn reserved_and_unsafe_characters_are_encoded() {
        assert_eq!(encode_path("a b+c.jpg"), "a%20b%2Bc.jpg");
        assert_eq!(encode_path("100%#?.png"), "100%25%23%3F.png");
        assert_eq!(
            encode_path("x&y=z;(1)!'*,@$.gif"),
            "x%26y%3Dz%3B%281%29%21%27%2A%2C%40%24.gif"
        );
    }

    #[test]
    fn utf8_is_encoded_bytewise_and_nfc_nfd_differ() {
        // NFC é (U+00E9) and NFD e + U+0301 are different names on disk,
        // so they must give different URLs.
        assert_eq!(encode_path("caf\u{e9}.jpg"), "caf%C3%A9.jpg");
        assert_eq!(encode_path("cafe\u{301}.jpg"), "cafe%CC%81.jpg");
        assert_eq!(encode_path("🎬.mp4"), "%F0%9F%8E%AC.mp4");
    }

    #[test]
    fn slashes_separate_segments() {
        assert_eq!(encode_path("a/b c/d"), "a/b%20c/d");
    }

    #[test]
    fn bases_join_with_one_slash() {
        assert_eq!(url_for("/", "a b.jpg"), "/a%20b.jpg");
        assert_eq!(
            url_for("https://cdn.example.com/media/", "x.jpg"),
            "https://cdn.example.com/media/x.jpg"
        );
        assert_eq!(
            url_for("https://cdn.example.com/media", "x.jpg"),
            "https://cdn.example.com/media/x.jpg"
        );
    }
}

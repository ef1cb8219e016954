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

/// The URL a file is served at: base URL plus its encoded relative path.
pub fn url_for(base: &str, path: &str) -> String {
    join(base, &encode_path(path))
}

#[cfg(test)]
mod tests {
    use super::*;

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

//! PHP-serialized values (WordPress options and post meta, plugin data):
//! `s:N:"...";` declares its length in bytes, so a string whose URL is
//! replaced must declare its new length, and a serialized value stored
//! inside a serialized string (plugins do this) changes the outer length
//! too. The value is parsed whole; each string's content is rewritten (as
//! a nested serialized value if it is one, else as text) and written with
//! its new length. A value that looks serialized but does not parse (a
//! length already wrong) is left exactly as it is, and where it broke is
//! reported.

/// Whether `v` looks like a serialized PHP value (and so must parse).
pub fn looks_serialized(v: &[u8]) -> bool {
    match v {
        [b'a' | b'O' | b's' | b'C' | b'E', b':', d, ..] => d.is_ascii_digit(),
        [b'i' | b'd' | b'b', b':', ..] => v.ends_with(b";"),
        _ => false,
    }
}

/// Where a serialized value stopped parsing, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub at: usize,
    pub what: &'static str,
}

/// Rewrites `v` (a whole serialized value): `text` rewrites a string's
/// content and says whether it changed. `Ok(None)`: nothing changed.
pub fn rewrite(
    v: &[u8],
    text: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
) -> Result<Option<Vec<u8>>, Broken> {
    let mut p = Parser {
        s: v,
        i: 0,
        out: Vec::with_capacity(v.len() + 64),
        changed: false,
        text,
    };
    p.value(0)?;
    if p.i != v.len() {
        return Err(Broken {
            at: p.i,
            what: "bytes after the end of the value",
        });
    }
    Ok(p.changed.then_some(p.out))
}

struct Parser<'a, 'f> {
    s: &'a [u8],
    i: usize,
    out: Vec<u8>,
    changed: bool,
    text: &'f mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
}

/// Nesting deeper than this is not data anyone wrote by hand: refuse it
/// rather than recurse without end.
const MAX_DEPTH: usize = 64;

impl<'a> Parser<'a, '_> {
    fn fail<T>(&self, what: &'static str) -> Result<T, Broken> {
        Err(Broken { at: self.i, what })
    }

    fn expect(&mut self, b: &[u8]) -> Result<(), Broken> {
        if self.s[self.i..].starts_with(b) {
            self.out.extend_from_slice(b);
            self.i += b.len();
            Ok(())
        } else {
            self.fail("unexpected byte")
        }
    }

    /// Digits up to `end`, copied; their value.
    fn number(&mut self, end: u8) -> Result<usize, Broken> {
        let start = self.i;
        while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        let n = std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(|d| d.parse().ok());
        let Some(n) = n else {
            return self.fail("a length that is not a number");
        };
        if self.s.get(self.i) != Some(&end) {
            return self.fail("unexpected byte after a length");
        }
        self.i += 1;
        Ok(n)
    }

    /// `len` bytes quoted: `"..."` followed by `after`; returns them.
    fn quoted(&mut self, len: usize, after: &[u8]) -> Result<&'a [u8], Broken> {
        let start = self.i + 1;
        let end = start + len;
        if self.s.get(self.i) != Some(&b'"')
            || self.s.get(end) != Some(&b'"')
            || !self.s[(end + 1).min(self.s.len())..].starts_with(after)
        {
            return self.fail("a string whose declared length does not match its bytes");
        }
        self.i = end + 1 + after.len();
        let s: &'a [u8] = self.s;
        Ok(&s[start..end])
    }

    fn value(&mut self, depth: usize) -> Result<(), Broken> {
        if depth > MAX_DEPTH {
            return self.fail("nested too deep");
        }
        let Some(&tag) = self.s.get(self.i) else {
            return self.fail("the value ends early");
        };
        match tag {
            b'N' => self.expect(b"N;"),
            b'b' | b'i' | b'd' | b'r' | b'R' => {
                let end = self.s[self.i..]
                    .iter()
                    .position(|&b| b == b';')
                    .map(|n| self.i + n + 1);
                let Some(end) = end.filter(|&e| e >= self.i + 3) else {
                    return self.fail("a scalar without its ;");
                };
                let ok = self.s[self.i + 1] == b':'
                    && self.s[self.i + 2..end - 1]
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || b"-+.".contains(b));
                if !ok {
                    return self.fail("a malformed scalar");
                }
                self.out.extend_from_slice(&self.s[self.i..end]);
                self.i = end;
                Ok(())
            }
            b's' => {
                self.i += 2;
                if self.s.get(self.i - 1) != Some(&b':') {
                    return self.fail("unexpected byte");
                }
                let len = self.number(b':')?;
                let content = self.quoted(len, b";")?;
                let new = nested(content, &mut *self.text, depth);
                match new {
                    Some(new) => {
                        self.changed = true;
                        self.out
                            .extend_from_slice(format!("s:{}:\"", new.len()).as_bytes());
                        self.out.extend_from_slice(&new);
                    }
                    None => {
                        self.out.extend_from_slice(format!("s:{len}:\"").as_bytes());
                        self.out.extend_from_slice(content);
                    }
                }
                self.out.extend_from_slice(b"\";");
                Ok(())
            }
            b'a' => {
                self.expect(b"a:")?;
                let n = self.number(b':')?;
                self.out.extend_from_slice(format!("{n}:").as_bytes());
                self.expect(b"{")?;
                for _ in 0..n {
                    self.value(depth + 1)?; // key
                    self.value(depth + 1)?;
                }
                self.expect(b"}")
            }
            b'O' | b'E' | b'C' => {
                // Class and enum names are copied as they are.
                self.out.extend_from_slice(&[tag, b':']);
                self.i += 2;
                let len = self.number(b':')?;
                self.out.extend_from_slice(format!("{len}:").as_bytes());
                let after: &[u8] = if tag == b'E' { b";" } else { b":" };
                let name = self.quoted(len, after)?.to_vec();
                self.out.push(b'"');
                self.out.extend_from_slice(&name);
                self.out.push(b'"');
                self.out.extend_from_slice(after);
                match tag {
                    b'E' => Ok(()),
                    b'O' => {
                        let n = self.number(b':')?;
                        self.out.extend_from_slice(format!("{n}:").as_bytes());
                        self.expect(b"{")?;
                        for _ in 0..n {
                            self.value(depth + 1)?;
                            self.value(depth + 1)?;
                        }
                        self.expect(b"}")
                    }
                    _ => {
                        // C: a class's own format, opaque: copied.
                        let n = self.number(b':')?;
                        let body = self.s.get(self.i + 1..self.i + 1 + n);
                        let closes = self.s.get(self.i + 1 + n) == Some(&b'}');
                        if self.s.get(self.i) != Some(&b'{') || body.is_none() || !closes {
                            return self.fail("a custom object whose length does not match");
                        }
                        self.out.extend_from_slice(format!("{n}:").as_bytes());
                        self.out.extend_from_slice(&self.s[self.i..self.i + n + 2]);
                        self.i += n + 2;
                        Ok(())
                    }
                }
            }
            _ => self.fail("not a serialized value"),
        }
    }
}

/// A string's content rewritten: as a nested serialized value if it parses
/// as one, else as text.
fn nested(
    content: &[u8],
    text: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
    depth: usize,
) -> Option<Vec<u8>> {
    if looks_serialized(content) {
        let mut p = Parser {
            s: content,
            i: 0,
            out: Vec::with_capacity(content.len() + 64),
            changed: false,
            text,
        };
        if p.value(depth + 1).is_ok() && p.i == content.len() {
            return p.changed.then_some(p.out);
        }
    }
    text(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replaces "OLD" by "NEW-LONGER" in text.
    fn swap(t: &[u8]) -> Option<Vec<u8>> {
        let s = std::str::from_utf8(t).ok()?;
        s.contains("OLD")
            .then(|| s.replace("OLD", "NEW-LONGER").into_bytes())
    }

    fn run(v: &str) -> Result<Option<String>, Broken> {
        rewrite(v.as_bytes(), &mut swap).map(|o| o.map(|b| String::from_utf8(b).unwrap()))
    }

    #[test]
    fn lengths_are_recomputed_in_bytes_nested_ones_too() {
        assert_eq!(
            run(r#"a:2:{s:3:"url";s:11:"/OLD/é.jpg";i:0;b:1;}"#)
                .unwrap()
                .unwrap(),
            r#"a:2:{s:3:"url";s:18:"/NEW-LONGER/é.jpg";i:0;b:1;}"#
        );
        // A serialized array stored in a string of a serialized array.
        let inner = r#"a:1:{i:0;s:3:"OLD";}"#;
        let outer = format!(r#"a:1:{{s:4:"data";s:{}:"{inner}";}}"#, inner.len());
        let new_inner = r#"a:1:{i:0;s:10:"NEW-LONGER";}"#;
        assert_eq!(
            run(&outer).unwrap().unwrap(),
            format!(r#"a:1:{{s:4:"data";s:{}:"{new_inner}";}}"#, new_inner.len())
        );
        assert_eq!(
            run(r#"O:8:"stdClass":1:{s:1:"u";s:3:"OLD";}"#)
                .unwrap()
                .unwrap(),
            r#"O:8:"stdClass":1:{s:1:"u";s:10:"NEW-LONGER";}"#
        );
        assert_eq!(
            run(r#"a:1:{i:0;d:1.5E+25;}"#).unwrap(),
            None,
            "nothing to change"
        );
        // A string holding quotes and semicolons is read by its length.
        assert_eq!(
            run(r#"s:8:"a";s:OLD";"#).unwrap().unwrap(),
            r#"s:15:"a";s:NEW-LONGER";"#
        );
    }

    #[test]
    fn a_wrong_length_is_reported_where_it_is() {
        let e = run(r#"a:1:{i:0;s:5:"OLD";}"#).unwrap_err();
        assert_eq!(e.at, 13, "the quote after s:5:");
        assert!(e.what.contains("declared length"));
        assert!(run(r#"a:2:{i:0;N;}"#).is_err(), "fewer items than declared");
        assert!(looks_serialized(b"a:1:{}"));
        assert!(!looks_serialized(b"a: plain text"));
        assert!(!looks_serialized(b"<p>html</p>"));
    }
}

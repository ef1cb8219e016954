//! Database dumps, as mysqldump (and MariaDB's) and pg_dump write them.
//!
//! A dump is SQL around string literals; the references are inside the
//! literals, written as the application stored them and then escaped by
//! the dump. So the dump is split as it streams: code, comments and
//! identifiers pass through untouched; each string literal (and, in a
//! pg_dump `COPY` block, each field) is checked for a base in any
//! escaping, and only then decoded, rewritten as a value (PHP-serialized
//! lengths recomputed, nested ones too), and escaped again as the dump
//! would. A literal that did not change is written as it was read, byte
//! for byte.
//!
//! The scanner follows `INSERT INTO`, `CREATE TABLE` and `COPY` to know
//! each literal's table and column: counts are reported per table, and
//! WordPress's `guid` column (an identifier, not a link) is left alone
//! unless asked. Memory holds one chunk and the literal being read.

use std::collections::BTreeMap;
use std::io::{self, Read};

use super::refs::{Rewriter, Stats};
use super::rollback::Out;
use super::serialized;
use super::text::fill;

const CHUNK: usize = 1 << 20;
/// Code bytes of one statement kept to read its table and columns.
const STATEMENT_HEAD: usize = 64 * 1024;
/// Bytes a code token may need to look ahead (`$tag$`, `*/`, `\.`).
const LOOKAHEAD: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// mysqldump, mariadb-dump: `'...'` with backslash escapes.
    MySql,
    /// pg_dump: `'...'` with `''`, `E'...'` with backslashes, COPY blocks.
    Postgres,
}

/// The dump's dialect from its first bytes, if it is a dump; a `.sql`
/// file without a known header is read as MySQL.
pub fn detect(head: &[u8], sql_extension: bool) -> Option<Dialect> {
    let has = |s: &[u8]| head.windows(s.len()).any(|w| w == s);
    if has(b"PostgreSQL database dump") {
        Some(Dialect::Postgres)
    } else if has(b"-- MySQL dump") || has(b"-- MariaDB dump") || sql_extension {
        Some(Dialect::MySql)
    } else {
        None
    }
}

/// What a dump's rewrite did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DumpStats {
    pub stats: Stats,
    /// Replacements per table.
    pub tables: BTreeMap<String, u64>,
    /// What the dump did not let the rewrite know (said once each).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Code,
    LineComment,
    BlockComment,
    /// An identifier quoted with this byte (`` ` `` or `"`).
    Ident(u8),
    /// A string literal from `start`: its quote, whether backslash escapes.
    Literal {
        start: usize,
        quote: u8,
        escapes: bool,
    },
    /// pg_dump dollar quoting (`$tag$ ... $tag$`, function bodies).
    Dollar,
    /// pg_dump `COPY ... FROM stdin;` rows, until `\.`.
    Copy,
}

/// The scanner's state across chunks.
struct Scanner<'r, 'o> {
    rw: Rewriter<'r>,
    out: &'o mut Out,
    dialect: Dialect,
    include_guid: bool,
    buf: Vec<u8>,
    /// Where scanning continues.
    pos: usize,
    /// Everything before this is written.
    written: usize,
    state: State,
    dollar_tag: Vec<u8>,
    /// Code bytes of the statement so far.
    head: Vec<u8>,
    table: Option<String>,
    /// Column names per table, from CREATE TABLE.
    columns: BTreeMap<String, Vec<String>>,
    /// This statement's own column list (INSERT ... (cols) or COPY).
    own_columns: Option<Vec<String>>,
    insert: bool,
    depth: u32,
    column: usize,
    /// Whether this statement's own column list was looked for.
    columns_checked: bool,
    /// Input bytes dropped from the front of `buf` so far.
    base: u64,
    stats: DumpStats,
}

/// Rewrites a dump from `input` to `out`.
pub fn rewrite(
    input: &mut impl Read,
    out: &mut Out,
    rw: Rewriter<'_>,
    dialect: Dialect,
    include_guid: bool,
) -> io::Result<DumpStats> {
    let mut s = Scanner {
        rw,
        out,
        dialect,
        include_guid,
        buf: Vec::with_capacity(CHUNK + LOOKAHEAD),
        pos: 0,
        written: 0,
        state: State::Code,
        dollar_tag: Vec::new(),
        head: Vec::new(),
        table: None,
        columns: BTreeMap::new(),
        own_columns: None,
        insert: false,
        depth: 0,
        column: 0,
        columns_checked: false,
        base: 0,
        stats: DumpStats::default(),
    };
    loop {
        let eof = fill(input, &mut s.buf, CHUNK)?;
        s.scan(eof)?;
        let keep = match s.state {
            State::Literal { start, .. } => start,
            _ => s.pos,
        };
        s.out.same(&s.buf[s.written..keep])?;
        s.buf.drain(..keep);
        s.base += keep as u64;
        s.pos -= keep;
        s.written = 0;
        if let State::Literal { start, .. } = &mut s.state {
            *start -= keep;
        }
        if eof {
            // A literal the dump never closed is written as it was.
            let rest = std::mem::take(&mut s.buf);
            s.out.same(&rest)?;
            return Ok(s.stats);
        }
    }
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

impl Scanner<'_, '_> {
    /// Scans as far as the buffer allows; stops where it would need bytes
    /// not read yet.
    fn scan(&mut self, eof: bool) -> io::Result<()> {
        loop {
            let len = self.buf.len();
            if self.pos >= len {
                return Ok(());
            }
            match self.state {
                State::Literal {
                    start,
                    quote,
                    escapes,
                } => {
                    let rest = &self.buf[self.pos..];
                    let hit = if escapes {
                        memchr::memchr2(quote, b'\\', rest)
                    } else {
                        memchr::memchr(quote, rest)
                    };
                    let Some(n) = hit else {
                        self.pos = len;
                        return Ok(());
                    };
                    let at = self.pos + n;
                    if at + 1 >= len && !eof {
                        // The next byte decides (an escape, a doubled quote).
                        self.pos = at;
                        return Ok(());
                    }
                    if self.buf[at] == b'\\' {
                        self.pos = at + 2;
                        continue;
                    }
                    if self.buf.get(at + 1) == Some(&quote) {
                        self.pos = at + 2; // '' is one quote
                        continue;
                    }
                    self.pos = at + 1;
                    self.literal(start, at + 1, quote, escapes)?;
                    self.state = State::Code;
                }
                State::Copy => {
                    let Some(n) = memchr::memchr(b'\n', &self.buf[self.pos..]) else {
                        if eof {
                            self.pos = len;
                        }
                        return Ok(());
                    };
                    let (start, end) = (self.pos, self.pos + n + 1);
                    self.pos = end;
                    if &self.buf[start..end] == b"\\.\n" {
                        self.state = State::Code;
                        self.table = None;
                        self.own_columns = None;
                        continue;
                    }
                    self.copy_row(start, end)?;
                }
                State::Dollar => {
                    let finder = memchr::memmem::Finder::new(&self.dollar_tag);
                    match finder.find(&self.buf[self.pos..]) {
                        Some(n) => {
                            self.pos += n + self.dollar_tag.len();
                            self.state = State::Code;
                        }
                        None => {
                            // Keep the tag's length back: it may be cut.
                            let safe = len.saturating_sub(self.dollar_tag.len());
                            self.pos = if eof { len } else { safe.max(self.pos) };
                            return Ok(());
                        }
                    }
                }
                State::LineComment => match memchr::memchr(b'\n', &self.buf[self.pos..]) {
                    Some(n) => {
                        self.pos += n + 1;
                        self.state = State::Code;
                    }
                    None => {
                        self.pos = len;
                        return Ok(());
                    }
                },
                State::BlockComment => match memchr::memmem::find(&self.buf[self.pos..], b"*/") {
                    Some(n) => {
                        self.pos += n + 2;
                        self.state = State::Code;
                    }
                    None => {
                        self.pos = if eof { len } else { (len - 1).max(self.pos) };
                        return Ok(());
                    }
                },
                State::Ident(q) => match memchr::memchr(q, &self.buf[self.pos..]) {
                    Some(n) => {
                        let end = self.pos + n + 1;
                        let piece = self.buf[self.pos..end].to_vec();
                        self.keep_head(&piece);
                        self.pos = end;
                        self.state = State::Code;
                    }
                    None => {
                        let piece = self.buf[self.pos..].to_vec();
                        self.keep_head(&piece);
                        self.pos = len;
                        return Ok(());
                    }
                },
                State::Code => {
                    if !eof && self.pos + LOOKAHEAD > len {
                        return Ok(());
                    }
                    self.code()?;
                }
            }
        }
    }

    fn keep_head(&mut self, b: &[u8]) {
        let room = STATEMENT_HEAD.saturating_sub(self.head.len());
        self.head.extend_from_slice(&b[..b.len().min(room)]);
    }

    /// One byte of code (or the token it starts).
    fn code(&mut self) -> io::Result<()> {
        let i = self.pos;
        let b = self.buf[i];
        let next = self.buf.get(i + 1).copied();
        let prev_ident = i > 0 && is_ident_byte(self.buf[i - 1]);
        self.pos = i + 1;
        let mysql = self.dialect == Dialect::MySql;
        match b {
            b'\'' => return self.open_literal(i, b'\'', mysql),
            b'"' if mysql => return self.open_literal(i, b'"', true),
            b'"' => self.state = State::Ident(b'"'),
            b'`' if mysql => self.state = State::Ident(b'`'),
            b'E' | b'e' if !mysql && next == Some(b'\'') && !prev_ident => {
                // The literal starts at its quote; `E` is code.
                self.keep_head(&[b]);
                return self.open_literal(i + 1, b'\'', true);
            }
            b'-' if next == Some(b'-') => {
                self.state = State::LineComment;
                return Ok(());
            }
            b'#' if mysql => {
                self.state = State::LineComment;
                return Ok(());
            }
            b'/' if next == Some(b'*') => {
                self.pos = i + 2;
                self.state = State::BlockComment;
                return Ok(());
            }
            b'$' if !mysql && !prev_ident => {
                let tag_end = self.buf[i + 1..]
                    .iter()
                    .take(LOOKAHEAD - 1)
                    .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_'))
                    .map(|n| i + 1 + n);
                if let Some(e) = tag_end.filter(|&e| self.buf[e] == b'$') {
                    self.dollar_tag = self.buf[i..=e].to_vec();
                    self.pos = e + 1;
                    self.state = State::Dollar;
                    return Ok(());
                }
            }
            b'(' if self.insert => {
                self.depth += 1;
                if self.depth == 1 {
                    self.column = 0;
                }
            }
            b')' if self.insert => self.depth = self.depth.saturating_sub(1),
            b',' if self.insert && self.depth == 1 => self.column += 1,
            b';' => {
                self.keep_head(b";");
                self.statement_end();
                return Ok(());
            }
            _ => {}
        }
        if b == b'('
            && !self.insert
            && (self.head_starts_with("INSERT") || self.head_starts_with("REPLACE"))
        {
            self.insert = true;
            self.depth = 1;
            self.column = 0;
            self.table = insert_table(&self.head);
        }
        self.keep_head(&[b]);
        Ok(())
    }

    fn head_starts_with(&self, word: &str) -> bool {
        let h = trim_start(&self.head);
        h.len() >= word.len() && h[..word.len()].eq_ignore_ascii_case(word.as_bytes())
    }

    fn open_literal(&mut self, start: usize, quote: u8, escapes: bool) -> io::Result<()> {
        if self.insert && !self.columns_checked {
            self.columns_checked = true;
            self.own_columns = insert_columns(&self.head);
        }
        self.pos = start + 1;
        self.state = State::Literal {
            start,
            quote,
            escapes,
        };
        Ok(())
    }

    /// The statement's `;`: CREATE TABLE columns are learned, a COPY
    /// block begins.
    fn statement_end(&mut self) {
        let head = std::mem::take(&mut self.head);
        self.insert = false;
        self.columns_checked = false;
        self.depth = 0;
        self.own_columns = None;
        self.table = None;
        let h = trim_start(&head);
        let starts =
            |w: &str| h.len() >= w.len() && h[..w.len()].eq_ignore_ascii_case(w.as_bytes());
        if starts("CREATE TABLE") {
            if let Some(t) = table_name(h, "CREATE TABLE") {
                self.columns.insert(t, create_columns(h));
            }
        } else if starts("COPY") && self.dialect == Dialect::Postgres {
            self.table = table_name(h, "COPY");
            self.own_columns = insert_columns(h);
            // The rows start after this line's newline.
            if let Some(n) = memchr::memchr(b'\n', &self.buf[self.pos..]) {
                self.pos += n + 1;
                self.state = State::Copy;
            } else {
                self.state = State::Copy;
            }
        }
    }

    fn column_name(&self) -> Option<&str> {
        let cols = self
            .own_columns
            .as_ref()
            .or_else(|| self.table.as_ref().and_then(|t| self.columns.get(t)))?;
        cols.get(self.column).map(String::as_str)
    }

    /// Whether this literal's column is one left alone.
    fn skipped_column(&mut self) -> bool {
        let posts = self.table.as_deref().is_some_and(|t| t.ends_with("posts"));
        if self.include_guid || !posts {
            return false;
        }
        if self.column_name().is_none() {
            let t = self.table.clone().unwrap_or_default();
            let w = format!(
                "table {t}: the dump has neither its CREATE TABLE nor a column list, so its guid column cannot be told apart and is rewritten too; dump with the table definitions (or --complete-insert) to keep guid"
            );
            if !self.stats.warnings.contains(&w) {
                self.stats.warnings.push(w);
            }
            return false;
        }
        self.column_name() == Some("guid")
    }

    /// A literal `buf[start..end]`, quotes included, is complete.
    fn literal(&mut self, start: usize, end: usize, quote: u8, escapes: bool) -> io::Result<()> {
        if self.skipped_column() {
            return Ok(()); // written with the code around it
        }
        if !serialized::looks_serialized(&self.buf[start + 1..end - 1]) {
            return self.literal_as_written(start, end);
        }
        if !self.rw.finder.may_hold(&self.buf[start..end]) {
            return Ok(());
        }
        let raw = self.buf[start..end].to_vec();
        let inner = &raw[1..raw.len() - 1];
        let value = if escapes {
            unescape_backslash(inner, quote, self.dialect)
        } else {
            undouble(inner, quote)
        };
        let mut stats = Stats::part_of(&self.stats.stats);
        let new = match self.value(&value, &mut stats, start) {
            Some(v) => v,
            None => {
                self.stats.stats.add(&stats);
                return Ok(());
            }
        };
        let mut lit = Vec::with_capacity(new.len() + 16);
        lit.push(quote);
        if escapes {
            escape_backslash(&new, quote, self.dialect, &mut lit);
        } else {
            double(&new, quote, &mut lit);
        }
        lit.push(quote);
        self.count(&stats);
        self.replace(start, end, &raw, &lit)
    }

    /// `buf[start..end]` (which is `old`) is written as `new`; the rollback
    /// records only what lies between their common ends.
    fn replace(&mut self, start: usize, end: usize, old: &[u8], new: &[u8]) -> io::Result<()> {
        self.out.same(&self.buf[self.written..start])?;
        let (a, b) = trim_common(old, new);
        self.out.same(&old[..a])?;
        self.out
            .changed(&old[a..old.len() - b], &new[a..new.len() - b])?;
        self.out.same(&old[old.len() - b..])?;
        self.written = end;
        Ok(())
    }

    /// A literal that is not serialized data, rewritten as it is written:
    /// a URL needs no escaping in a dump, and JSON's `\/` is found as the
    /// dump escapes it (`\\/`), so nothing is decoded and only the
    /// references change.
    fn literal_as_written(&mut self, start: usize, end: usize) -> io::Result<()> {
        let mut stats = Stats::part_of(&self.stats.stats);
        let inner = &self.buf[start + 1..end - 1];
        let edits = self.rw.edits(inner, inner.len(), &mut stats);
        if edits.is_empty() {
            self.stats.stats.add(&stats);
            return Ok(());
        }
        self.count(&stats);
        let base = start + 1;
        self.out.same(&self.buf[self.written..base])?;
        let mut at = base;
        for e in &edits {
            self.out.same(&self.buf[at..base + e.start])?;
            self.out
                .changed(&self.buf[base + e.start..base + e.end], &e.with)?;
            at = base + e.end;
        }
        self.written = at;
        Ok(())
    }

    fn count(&mut self, stats: &Stats) {
        self.stats.stats.add(stats);
        if stats.replacements > 0 {
            let t = self.table.clone().unwrap_or_else(|| "(no table)".into());
            *self.stats.tables.entry(t).or_insert(0) += stats.replacements;
        }
    }

    /// A decoded value rewritten: as PHP-serialized data if it looks like
    /// it (left as it is, and reported, if it does not parse), else as text.
    fn value(&mut self, v: &[u8], stats: &mut Stats, at: usize) -> Option<Vec<u8>> {
        if serialized::looks_serialized(v) {
            let rw = self.rw;
            let mut inner = Stats::part_of(stats);
            match serialized::rewrite(v, &mut |t| rw.rewrite(t, &mut inner)) {
                Ok(new) => {
                    stats.add(&inner);
                    new
                }
                Err(b) => {
                    let where_ = match &self.table {
                        Some(t) => format!("table {t}, "),
                        None => String::new(),
                    };
                    stats.serialized_errors.push(format!(
                        "{where_}the string literal at byte {}: {} at byte {} of the value; left unchanged",
                        self.base + at as u64,
                        b.what,
                        b.at
                    ));
                    None
                }
            }
        } else {
            self.rw.rewrite(v, stats)
        }
    }

    /// A COPY row `buf[start..end]` (its newline included): each field
    /// that may hold a reference is decoded, rewritten and escaped again.
    fn copy_row(&mut self, start: usize, end: usize) -> io::Result<()> {
        let row = self.buf[start..end].to_vec();
        if !self.rw.finder.may_hold(&row) {
            return Ok(());
        }
        let body = &row[..row.len() - 1];
        let mut new_row = Vec::with_capacity(row.len() + 64);
        let mut changed = false;
        let mut stats = Stats::part_of(&self.stats.stats);
        for (i, field) in body.split(|&b| b == b'\t').enumerate() {
            if i > 0 {
                new_row.push(b'\t');
            }
            self.column = i;
            let keep = field == b"\\N" || !self.rw.finder.may_hold(field) || self.skipped_column();
            let new = if keep {
                None
            } else {
                let value = copy_unescape(field);
                self.value(&value, &mut stats, start)
            };
            match new {
                Some(v) => {
                    changed = true;
                    copy_escape(&v, &mut new_row);
                }
                None => new_row.extend_from_slice(field),
            }
        }
        new_row.push(b'\n');
        if !changed {
            self.stats.stats.add(&stats);
            return Ok(());
        }
        self.count(&stats);
        self.replace(start, end, &row, &new_row)
    }
}

fn trim_start(h: &[u8]) -> &[u8] {
    let n = h.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &h[n..]
}

/// Lengths of the common prefix and suffix of `a` and `b` (not
/// overlapping): the rollback records only what lies between.
fn trim_common(a: &[u8], b: &[u8]) -> (usize, usize) {
    let pre = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let max = a.len().min(b.len()) - pre;
    let suf = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(max)
        .take_while(|(x, y)| x == y)
        .count();
    (pre, suf)
}

/// The table of `INSERT [IGNORE] INTO name`.
fn insert_table(head: &[u8]) -> Option<String> {
    let at = head
        .windows(5)
        .position(|w| w.eq_ignore_ascii_case(b"INTO "))?;
    table_name(&head[at..], "INTO")
}

/// The name after `keyword` (quoted or not, schema kept), unquoted.
fn table_name(head: &[u8], keyword: &str) -> Option<String> {
    let h = trim_start(head);
    let rest = trim_start(h.get(keyword.len()..)?);
    let rest = strip_words(rest, &["IF NOT EXISTS", "ONLY"]);
    let end = rest
        .iter()
        .position(|&b| b.is_ascii_whitespace() || b == b'(' || b == b';')
        .unwrap_or(rest.len());
    let name: Vec<u8> = rest[..end]
        .iter()
        .copied()
        .filter(|&b| b != b'`' && b != b'"')
        .collect();
    (!name.is_empty()).then(|| String::from_utf8_lossy(&name).into_owned())
}

fn strip_words<'a>(mut s: &'a [u8], words: &[&str]) -> &'a [u8] {
    for w in words {
        if s.len() >= w.len() && s[..w.len()].eq_ignore_ascii_case(w.as_bytes()) {
            s = trim_start(&s[w.len()..]);
        }
    }
    s
}

/// `INSERT INTO t (a, b) VALUES` or `COPY t (a, b) FROM`: the column list.
fn insert_columns(head: &[u8]) -> Option<Vec<String>> {
    let open = memchr::memchr(b'(', head)?;
    let close = open + memchr::memchr(b')', &head[open..])?;
    let after = trim_start(&head[close + 1..]);
    let is =
        |w: &str| after.len() >= w.len() && after[..w.len()].eq_ignore_ascii_case(w.as_bytes());
    if !(is("VALUES") || is("FROM")) {
        return None;
    }
    Some(
        head[open + 1..close]
            .split(|&b| b == b',')
            .map(|c| {
                String::from_utf8_lossy(c)
                    .trim()
                    .trim_matches(|c| c == '`' || c == '"')
                    .to_string()
            })
            .collect(),
    )
}

/// Column names of a CREATE TABLE statement, in order.
fn create_columns(stmt: &[u8]) -> Vec<String> {
    let Some(open) = memchr::memchr(b'(', stmt) else {
        return Vec::new();
    };
    let body = String::from_utf8_lossy(&stmt[open + 1..]);
    let mut cols = Vec::new();
    for line in body.lines() {
        let l = line.trim();
        let word = l.split_whitespace().next().unwrap_or("");
        let upper = word.to_ascii_uppercase();
        if l.is_empty()
            || l.starts_with(')')
            || matches!(
                upper.as_str(),
                "PRIMARY"
                    | "KEY"
                    | "UNIQUE"
                    | "CONSTRAINT"
                    | "INDEX"
                    | "FULLTEXT"
                    | "SPATIAL"
                    | "CHECK"
                    | "FOREIGN"
            )
        {
            continue;
        }
        let name = if let Some(q) = l.strip_prefix('`') {
            q.split('`').next().unwrap_or("")
        } else if let Some(q) = l.strip_prefix('"') {
            q.split('"').next().unwrap_or("")
        } else {
            word.trim_end_matches(',')
        };
        if !name.is_empty() {
            cols.push(name.to_string());
        }
    }
    cols
}

/// A MySQL (or PostgreSQL `E''`) literal's content, decoded.
pub fn unescape_backslash(inner: &[u8], quote: u8, dialect: Dialect) -> Vec<u8> {
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let b = inner[i];
        if b == quote && inner.get(i + 1) == Some(&quote) {
            out.push(quote);
            i += 2;
            continue;
        }
        if b != b'\\' || i + 1 >= inner.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let e = inner[i + 1];
        i += 2;
        match (dialect, e) {
            (_, b'n') => out.push(b'\n'),
            (_, b'r') => out.push(b'\r'),
            (_, b't') => out.push(b'\t'),
            (_, b'b') => out.push(8),
            (Dialect::MySql, b'0') => out.push(0),
            (Dialect::MySql, b'Z') => out.push(26),
            // MySQL keeps the backslash of \% and \_ (they are LIKE escapes).
            (Dialect::MySql, b'%' | b'_') => out.extend_from_slice(&[b'\\', e]),
            (Dialect::Postgres, b'f') => out.push(12),
            (Dialect::Postgres, b'0'..=b'7') => {
                out.push(octal(e, inner, &mut i));
            }
            (_, other) => out.push(other),
        }
    }
    out
}

/// `value` escaped as mysqldump writes it (or for a PostgreSQL `E''`).
pub fn escape_backslash(value: &[u8], quote: u8, dialect: Dialect, out: &mut Vec<u8>) {
    for &b in value {
        match b {
            0 if dialect == Dialect::MySql => out.extend_from_slice(b"\\0"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            26 if dialect == Dialect::MySql => out.extend_from_slice(b"\\Z"),
            b'\'' | b'"' if dialect == Dialect::MySql => {
                out.push(b'\\');
                out.push(b);
            }
            q if q == quote => out.extend_from_slice(&[q, q]),
            _ => out.push(b),
        }
    }
}

/// A standard SQL literal's content (`''` for a quote), decoded.
fn undouble(inner: &[u8], quote: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        out.push(inner[i]);
        i += if inner[i] == quote && inner.get(i + 1) == Some(&quote) {
            2
        } else {
            1
        };
    }
    out
}

fn double(value: &[u8], quote: u8, out: &mut Vec<u8>) {
    for &b in value {
        out.push(b);
        if b == quote {
            out.push(b);
        }
    }
}

/// A COPY text-format field, decoded.
fn copy_unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' || i + 1 >= field.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let e = field[i + 1];
        i += 2;
        match e {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                out.push(octal(e, field, &mut i));
            }
            b'x' => {
                let hex = field
                    .get(i..i + 2)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'x'),
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// A value escaped as pg_dump writes a COPY field.
fn copy_escape(value: &[u8], out: &mut Vec<u8>) {
    for &b in value {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            8 => out.extend_from_slice(b"\\b"),
            12 => out.extend_from_slice(b"\\f"),
            11 => out.extend_from_slice(b"\\v"),
            _ => out.push(b),
        }
    }
}

/// An octal escape (`\1` to `\377`) whose first digit is `first` and
/// whose other digits, up to two, follow at `*i` in `bytes`; `*i` moves
/// past them.
fn octal(first: u8, bytes: &[u8], i: &mut usize) -> u8 {
    let mut v = u32::from(first - b'0');
    let mut n = 1;
    while n < 3 && bytes.get(*i).is_some_and(|c| (b'0'..=b'7').contains(c)) {
        v = v * 8 + u32::from(bytes[*i] - b'0');
        *i += 1;
        n += 1;
    }
    v as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cutover::rewrite::find::Finder;
    use crate::cutover::rewrite::refs::tests::table;

    fn run(dump: &str, dialect: Dialect) -> (String, DumpStats) {
        let t = table();
        let f = Finder::new(&t.bases, true).unwrap();
        let rw = Rewriter {
            table: &t,
            finder: &f,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.sql");
        let mut out = Out::new(Some(&path), None).unwrap();
        let stats = rewrite(&mut dump.as_bytes(), &mut out, rw, dialect, false).unwrap();
        out.finish((&path, 0, String::new()), &path, None).unwrap();
        (std::fs::read_to_string(&path).unwrap(), stats)
    }

    #[test]
    fn octal_escapes_take_up_to_three_digits() {
        // E'...' strings and COPY fields: \101 is 'A', \0 a NUL, and a
        // fourth digit is a digit.
        assert_eq!(
            unescape_backslash(br"\101\0x\1012", b'\'', Dialect::Postgres),
            b"A\0xA2"
        );
        assert_eq!(copy_unescape(br"\101\7\1012"), b"A\x07A2");
    }

    #[test]
    fn mysqldump_escapes_around_serialized_and_json_values() {
        let inner = r#"a:1:{s:3:"img";s:32:"https://shop.example/media/a.jpg";}"#;
        let dump = format!(
            "-- MariaDB dump 10.19\n/*!40101 SET NAMES utf8mb4 */;\nCREATE TABLE `wp_postmeta` (\n  `meta_id` bigint(20),\n  `meta_value` longtext\n);\nINSERT INTO `wp_postmeta` VALUES (1,'{}'),(2,'{{\\\"u\\\":\\\"https:\\\\/\\\\/shop.example\\\\/media\\\\/a.jpg\\\"}}'),(3,'it\\'s \\\\ /media/a.jpg');\n",
            inner.replace('"', "\\\"")
        );
        let (out, s) = run(&dump, Dialect::MySql);
        let new_inner = r#"a:1:{s:3:"img";s:30:"https://cdn.example/shop/a.jpg";}"#;
        assert!(
            out.contains(&format!("(1,'{}')", new_inner.replace('"', "\\\""))),
            "{out}"
        );
        assert!(
            out.contains(r#"(2,'{\"u\":\"https:\\/\\/cdn.example\\/shop\\/a.jpg\"}')"#),
            "{out}"
        );
        assert!(
            out.contains(r"(3,'it\'s \\ https://cdn.example/shop/a.jpg')"),
            "{out}"
        );
        assert!(out.starts_with("-- MariaDB dump 10.19\n/*!40101 SET NAMES utf8mb4 */;\n"));
        assert_eq!(s.stats.replacements, 3);
        assert_eq!(s.tables["wp_postmeta"], 3);
    }

    #[test]
    fn guid_is_left_alone_and_comments_are_not_literals() {
        let dump = "CREATE TABLE `wp_posts` (\n  `ID` bigint,\n  `post_content` longtext,\n  `guid` varchar(255)\n);\n-- it's a comment with /media/a.jpg\nINSERT INTO `wp_posts` VALUES (1,'<img src=\"/media/a.jpg\">','https://shop.example/media/a.jpg');\n";
        let (out, s) = run(dump, Dialect::MySql);
        // Only the reference changes (the literal's quotes stay as written).
        assert!(
            out.contains(r#"(1,'<img src="https://cdn.example/shop/a.jpg">','https://shop.example/media/a.jpg')"#),
            "{out}"
        );
        assert!(out.contains("-- it's a comment with /media/a.jpg\n"));
        assert_eq!(s.stats.replacements, 1);
    }

    #[test]
    fn pg_dump_copy_rows_and_inserts() {
        let dump = "-- PostgreSQL database dump\nCREATE TABLE public.pages (\n    id integer,\n    body text\n);\nCOPY public.pages (id, body) FROM stdin;\n1\t<img src=\"/media/a.jpg\">\\nline two\n2\tnothing\n\\.\nINSERT INTO public.pages VALUES (3, 'it''s /media/a.jpg', E'x\\\\y /media/a.jpg');\nCREATE FUNCTION f() RETURNS text AS $$ SELECT '/media/a.jpg' $$ LANGUAGE sql;\n";
        let (out, s) = run(dump, Dialect::Postgres);
        assert!(
            out.contains(
                "1\t<img src=\"https://cdn.example/shop/a.jpg\">\\nline two\n2\tnothing\n\\.\n"
            ),
            "{out}"
        );
        assert!(out.contains("(3, 'it''s https://cdn.example/shop/a.jpg', E'x\\\\y https://cdn.example/shop/a.jpg')"), "{out}");
        assert!(
            out.contains("$$ SELECT '/media/a.jpg' $$"),
            "function bodies pass through"
        );
        assert_eq!(s.stats.replacements, 3);
        assert_eq!(s.tables["public.pages"], 3);
    }

    #[test]
    fn a_wrong_serialized_length_is_reported_and_kept() {
        let dump = "INSERT INTO `wp_options` VALUES (1,'a:1:{i:0;s:99:\\\"/media/a.jpg\\\";}');\n";
        let (out, s) = run(dump, Dialect::MySql);
        assert_eq!(out, dump);
        assert_eq!(s.stats.serialized_errors.len(), 1);
        assert!(
            s.stats.serialized_errors[0].contains("table wp_options"),
            "{:?}",
            s.stats.serialized_errors
        );
    }

    #[test]
    fn literals_escapes_and_quotes_cut_by_a_chunk_boundary_are_read_whole() {
        // A tuple whose escapes, doubled quotes and reference fall on the
        // 1 MiB boundary at every shift.
        // (A lead of 100 bytes: a literal opens only 64 bytes or more
        // before the end of what was read.)
        let lead = "y".repeat(100);
        let tail = format!(r#"'{lead}it\'s '' \\ <img src=\"/media/a.jpg\">'"#);
        for shift in 100..tail.len() + 2 {
            // The tuple starts `shift` bytes before the boundary.
            let pad = "x".repeat(CHUNK - 32 - shift);
            let dump = format!("INSERT INTO `t` VALUES (1,'{pad}'),(2,{tail});\n");
            let (out, s) = run(&dump, Dialect::MySql);
            assert_eq!(s.stats.replacements, 1, "shift {shift}");
            assert_eq!(
                out,
                dump.replace("/media/a.jpg", "https://cdn.example/shop/a.jpg"),
                "shift {shift}"
            );
        }
        // A serialized value with a doubled quote (pg_dump): read whole, or
        // its length would not be fixed.
        let tail = format!(r#"'a:1:{{i:0;s:117:"{lead}it''s /media/a.jpg";}}'"#);
        for shift in 100..tail.len() + 2 {
            let pad = "x".repeat(CHUNK - 32 - shift);
            let dump = format!("INSERT INTO t VALUES (1,'{pad}'),(2,{tail});\n");
            let (out, s) = run(&dump, Dialect::Postgres);
            assert_eq!(s.stats.replacements, 1, "shift {shift}");
            let want =
                format!(r#"'a:1:{{i:0;s:135:"{lead}it''s https://cdn.example/shop/a.jpg";}}'"#);
            assert_eq!(out, dump.replace(&tail, &want), "shift {shift}");
        }
    }

    #[test]
    fn replace_into_and_data_only_dumps() {
        let create = "CREATE TABLE `wp_posts` (\n  `ID` bigint,\n  `guid` varchar(255)\n);\n";
        let rows = "REPLACE INTO `wp_posts` VALUES (1,'/media/a.jpg');\n";
        let (out, s) = run(&format!("{create}{rows}"), Dialect::MySql);
        assert!(out.ends_with(rows), "guid kept: {out}");
        assert_eq!((s.stats.replacements, s.warnings.len()), (0, 0));
        // Without the table definition guid cannot be found: said so.
        let (_, s) = run(rows, Dialect::MySql);
        assert_eq!(s.stats.replacements, 1);
        assert_eq!(s.tables["wp_posts"], 1);
        assert!(
            s.warnings[0].contains("--complete-insert"),
            "{:?}",
            s.warnings
        );
    }

    #[test]
    fn escapes_round_trip() {
        let v: Vec<u8> = (0u8..=255).collect();
        let mut e = Vec::new();
        escape_backslash(&v, b'\'', Dialect::MySql, &mut e);
        assert_eq!(unescape_backslash(&e, b'\'', Dialect::MySql), v);
        let mut c = Vec::new();
        copy_escape(&v, &mut c);
        assert_eq!(copy_unescape(&c), v);
        assert_eq!(trim_common(b"abXcd", b"abYYcd"), (2, 2));
        assert_eq!(trim_common(b"aaa", b"aaaa"), (3, 0));
    }
}

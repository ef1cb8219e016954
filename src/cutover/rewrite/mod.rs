//! `rewrite`: the cutover. The application's own data (a database dump,
//! theme and content files) still holds the old media URLs; this rewrites
//! every reference the map knows to its new URL, in whatever encoding it
//! is written, and keeps a record to undo it byte for byte.
//!
//! The stages, each its own module:
//! - `table`: the map as a lookup (old path to new URL, and whether that
//!   URL ends with the path), and the forms (bases) under which the
//!   application writes the old URLs.
//! - `find`: one multi-pattern search (aho-corasick) for every base in
//!   every escaping, so bytes without a reference cost almost nothing.
//! - `refs`: after a base, the longest path the map holds that ends where
//!   the URL ends, read as its context writes it (JSON `\/` and `\uXXXX`,
//!   HTML `&amp;`, percent-encoding), and replaced keeping that form: the
//!   new URL's head, then the path as it was written; Magento
//!   `{{media url=...}}` directives.
//! - `serialized`: PHP-serialized values, rewritten with their byte lengths
//!   recomputed, nested serialized strings included.
//! - `sql`: dumps (mysqldump, pg_dump) split into string literals, which are
//!   decoded, rewritten as the application stores them, and re-escaped
//!   only when they changed; everything else passes through untouched.
//! - `text`: any other file, streamed with a carry-over so a reference
//!   across a buffer boundary is found.
//! - `rollback`: the record of what was replaced (positions and original
//!   bytes) and the undo.
//! - `file`: one INPUT, its format told, streamed through the above into
//!   its staged output with its record.
//!
//! Memory does not grow with the input: files are streamed in chunks and
//! only one SQL string literal at a time is held whole.

pub mod file;
pub mod find;
pub mod pipe;
pub mod refs;
pub mod rollback;
pub mod serialized;
pub mod sql;
pub mod table;
pub mod text;

pub use table::{MapError, Table};

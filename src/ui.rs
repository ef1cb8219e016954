//! What the user sees on stderr while a run goes on: progress bars and log
//! lines. The only code that knows indicatif; stages report through
//! `progress`, which this implements.
//!
//! On a terminal, bars (unless `--no-progress`). Otherwise (cron, systemd,
//! a pipe), a one-line status every `--progress-interval`, without ANSI
//! codes: files, bytes, rate, ETA, and what the store is doing. Log lines
//! are written through the bars (suspending them) so they never tear a
//! bar.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::{Bar, Progress, Sink, Status, Unit};
use crate::types::ByteSize;

static MULTI: OnceLock<MultiProgress> = OnceLock::new();

/// Where stages report: bars if stderr is a terminal, a status line every
/// `interval` if it is not; nowhere unless `enabled`.
pub fn progress(enabled: bool, interval: Duration) -> Progress {
    if !enabled {
        Progress::none()
    } else if io::stderr().is_terminal() {
        let multi = MULTI
            .get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
            .clone();
        Progress::to(Arc::new(Terminal { multi }))
    } else {
        Progress::to(Lines::start(interval))
    }
}

/// One phase as the status line sees it.
struct Line {
    label: String,
    unit: Unit,
    total: AtomicU64,
    known_total: bool,
    pos: AtomicU64,
    done: AtomicBool,
    started: Instant,
}

impl Bar for Line {
    fn inc(&self, n: u64) {
        self.pos.fetch_add(n, Ordering::Relaxed);
    }

    fn inc_length(&self, n: u64) {
        self.total.fetch_add(n, Ordering::Relaxed);
    }

    fn finish(&self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

impl Line {
    /// "uploading 1.2 GiB/3.4 GiB (35%), 45.0 MiB/s, ETA 52s".
    fn describe(&self) -> String {
        let pos = self.pos.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let amount = |n: u64| match self.unit {
            Unit::Bytes | Unit::FileBytes => ByteSize(n).to_string(),
            Unit::Files | Unit::Items => n.to_string(),
        };
        let mut out = format!("{} {}", self.label, amount(pos));
        if self.known_total && total > 0 {
            out.push_str(&format!("/{} ({}%)", amount(total), pos * 100 / total));
            let rate = pos as f64 / secs;
            if self.unit == Unit::Bytes {
                out.push_str(&format!(", {}/s", ByteSize(rate as u64)));
            }
            if rate > 0.0 && pos < total {
                let eta = (total - pos) as f64 / rate;
                out.push_str(&format!(", ETA {}", short_duration(eta)));
            }
        } else if self.unit == Unit::Files {
            out.push_str(" files");
        }
        out
    }
}

fn short_duration(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

/// The status-line sink: phases, and a thread that prints them.
struct Lines {
    phases: Mutex<Vec<Arc<Line>>>,
    status: Mutex<Option<Status>>,
}

impl Lines {
    /// Starts the printer; it ends once the sink is dropped.
    fn start(interval: Duration) -> Arc<Self> {
        let lines = Arc::new(Self {
            phases: Mutex::new(Vec::new()),
            status: Mutex::new(None),
        });
        let weak: Weak<Self> = Arc::downgrade(&lines);
        let _ = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                let tick = Duration::from_millis(100).min(interval);
                let mut since = Instant::now();
                loop {
                    std::thread::sleep(tick);
                    let Some(lines) = weak.upgrade() else { return };
                    if since.elapsed() >= interval {
                        since = Instant::now();
                        if let Some(line) = lines.line() {
                            let _ = writeln!(io::stderr(), "mediashift: {}", terminal_safe(&line));
                        }
                    }
                }
            });
        lines
    }

    /// What is going on now, or `None` when nothing is.
    fn line(&self) -> Option<String> {
        let mut phases = self.phases.lock().ok()?;
        phases.retain(|p| !p.done.load(Ordering::Relaxed));
        let parts: Vec<String> = phases
            .iter()
            .filter(|p| p.unit != Unit::FileBytes)
            .map(|p| p.describe())
            .collect();
        if parts.is_empty() {
            return None;
        }
        let mut line = parts.join("; ");
        if let Some(extra) = self.status.lock().ok().as_ref().and_then(|s| s.as_ref()) {
            let extra = extra();
            if !extra.is_empty() {
                line.push_str("; ");
                line.push_str(&extra);
            }
        }
        Some(line)
    }
}

impl Sink for Lines {
    fn start(&self, label: &str, unit: Unit, total: Option<u64>) -> Arc<dyn Bar> {
        let line = Arc::new(Line {
            label: label.to_string(),
            unit,
            total: AtomicU64::new(total.unwrap_or(0)),
            known_total: total.is_some(),
            pos: AtomicU64::new(0),
            done: AtomicBool::new(false),
            started: Instant::now(),
        });
        if let Ok(mut p) = self.phases.lock() {
            p.push(line.clone());
        }
        line
    }

    fn status(&self, status: Status) {
        if let Ok(mut s) = self.status.lock() {
            *s = Some(status);
        }
    }
}

struct Terminal {
    multi: MultiProgress,
}

fn style(template: &str) -> ProgressStyle {
    // The templates are constants below; a bad one is a bug caught by the
    // unit test, and falls back to the default style rather than failing.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

// The bar takes what the terminal's width leaves (`wide_bar`), so a line
// never wraps, however narrow the terminal.
const COUNTER: &str = "{spinner} {msg}: {human_pos} files";
const BYTES: &str =
    "{msg:>10} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}";
const ITEMS: &str = "{msg:>10} [{wide_bar}] {human_pos}/{human_len} ETA {eta}";

impl Sink for Terminal {
    fn start(&self, label: &str, unit: Unit, total: Option<u64>) -> Arc<dyn Bar> {
        let bar = total.map_or_else(ProgressBar::no_length, ProgressBar::new);
        let template = match unit {
            Unit::Files => COUNTER,
            Unit::Bytes | Unit::FileBytes => BYTES,
            Unit::Items => ITEMS,
        };
        let bar = self.multi.add(
            bar.with_style(style(template))
                .with_message(terminal_safe(label).into_owned()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Arc::new(Drawn(bar))
    }
}

struct Drawn(ProgressBar);

impl Bar for Drawn {
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }

    fn inc_length(&self, n: u64) {
        self.0.inc_length(n);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// Text for a terminal: control characters other than newline and tab
/// (an escape sequence in a file name, which would recolour or rewrite the
/// screen) shown as Rust escapes, `\u{1b}`, as `scan` shows names that are
/// not UTF-8.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Sets up log lines on stderr: warnings by default, `-v` debug (with the
/// seconds since start, to see where a run's time goes), `-vv` trace, `-q`
/// errors only. RUST_LOG overrides; the SDK's own logs stay at error.
pub fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("error,mediashift={level}")));
    // Plain text: no colour codes in a log file or the journal, and every
    // line made terminal-safe (a file name can hold an escape sequence),
    // which our own colour codes would not survive.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogWriter)
        .with_ansi(false)
        .with_target(false);
    if verbose > 0 {
        logs.with_timer(tracing_subscriber::fmt::time::uptime())
            .init();
    } else {
        logs.without_time().init();
    }
}

/// A `tracing` writer that prints log lines above the bars.
#[derive(Clone, Copy, Default)]
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A whole line at a time (tracing writes each event at once).
        let text = String::from_utf8_lossy(buf);
        let line = terminal_safe(&text);
        match MULTI.get() {
            Some(m) => m.suspend(|| io::stderr().write_all(line.as_bytes()))?,
            None => io::stderr().write_all(line.as_bytes())?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogWriter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A terminal of a given width that keeps what is drawn on it.
    #[derive(Debug)]
    struct Narrow {
        width: u16,
        drawn: Arc<Mutex<Vec<String>>>,
    }

    impl indicatif::TermLike for Narrow {
        fn width(&self) -> u16 {
            self.width
        }
        fn move_cursor_up(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> io::Result<()> {
            if let Ok(mut d) = self.drawn.lock() {
                d.push(s.to_string());
            }
            Ok(())
        }
        fn clear_line(&self) -> io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn bars_fit_a_narrow_terminal() {
        for (template, width) in [(BYTES, 50u16), (ITEMS, 50), (BYTES, 120), (ITEMS, 72)] {
            let drawn = Arc::new(Mutex::new(Vec::new()));
            let term = Narrow {
                width,
                drawn: drawn.clone(),
            };
            let bar = ProgressBar::with_draw_target(
                Some(3 << 30),
                ProgressDrawTarget::term_like(Box::new(term)),
            )
            .with_style(style(template))
            .with_message("uploading");
            bar.inc(1 << 30);
            bar.tick();
            bar.finish();
            let drawn = drawn.lock().map(|d| d.clone()).unwrap_or_default();
            assert!(!drawn.is_empty(), "the bar was drawn");
            for line in drawn.iter().flat_map(|s| s.lines()) {
                // The templates have no colour codes: a char is a column.
                let cols = line.chars().count();
                assert!(
                    cols <= usize::from(width),
                    "{cols} > {width} columns: {line:?}"
                );
            }
        }
    }

    #[test]
    fn control_characters_are_escaped_for_the_terminal() {
        assert_eq!(terminal_safe("a.jpg\n\tb"), "a.jpg\n\tb");
        assert_eq!(
            terminal_safe("red\u{1b}[31m.jpg and \u{7}bell"),
            "red\\u{1b}[31m.jpg and \\u{7}bell"
        );
        assert!(matches!(
            terminal_safe("plain é"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn the_status_line_says_what_is_going_on() {
        let lines = Lines {
            phases: Mutex::new(Vec::new()),
            status: Mutex::new(None),
        };
        assert_eq!(lines.line(), None, "nothing going on: no line");
        let bytes = lines.start("uploading", Unit::Bytes, Some(4 << 20));
        let objects = lines.start("objects", Unit::Items, Some(10));
        lines.start("…video.mp4", Unit::FileBytes, Some(100)).inc(5);
        bytes.inc(1 << 20);
        objects.inc(3);
        lines.status(Box::new(|| "throttled 2".to_string()));
        let line = lines.line().unwrap();
        assert!(line.starts_with("uploading 1 MiB/4 MiB (25%), "), "{line}");
        assert!(line.contains("; objects 3/10 (30%)"), "{line}");
        assert!(line.ends_with("; throttled 2"), "{line}");
        assert!(
            !line.contains("video"),
            "one file's bar is not in the line: {line}"
        );
        assert!(!line.contains('\x1b'), "no ANSI codes: {line}");
        bytes.finish();
        objects.finish();
        assert_eq!(lines.line(), None);
        assert_eq!(short_duration(75.0), "75s");
        assert_eq!(short_duration(200.0), "3m20s");
    }

    #[test]
    fn the_bar_templates_are_valid() {
        for t in [COUNTER, BYTES, ITEMS] {
            assert!(ProgressStyle::with_template(t).is_ok(), "{t}");
        }
    }
}

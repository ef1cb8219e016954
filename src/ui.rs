//! What the user sees on stderr while a run goes on: progress bars and log
//! lines. The only code that knows indicatif; stages report through
//! `progress`, which this implements.
//!
//! Bars are drawn only when stderr is a terminal and `--no-progress` was
//! not given; otherwise [`progress`] returns a `Progress` that reports to
//! nobody. Log lines are written through the bars (suspending them) so they
//! never tear a bar.

use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::{Bar, Progress, Sink, Unit};

static MULTI: OnceLock<MultiProgress> = OnceLock::new();

/// Where stages report: bars on the terminal if `enabled` and stderr is
/// one, nowhere otherwise.
pub fn progress(enabled: bool) -> Progress {
    if enabled && io::stderr().is_terminal() {
        let multi = MULTI
            .get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
            .clone();
        Progress::to(Arc::new(Terminal { multi }))
    } else {
        Progress::none()
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

const COUNTER: &str = "{spinner} {msg}: {human_pos} files";
const BYTES: &str =
    "{msg:>10} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}";
const ITEMS: &str = "{msg:>10} [{bar:30}] {human_pos}/{human_len} ETA {eta}";

impl Sink for Terminal {
    fn start(&self, label: &str, unit: Unit, total: Option<u64>) -> Arc<dyn Bar> {
        let bar = total.map_or_else(ProgressBar::no_length, ProgressBar::new);
        let template = match unit {
            Unit::Files => COUNTER,
            Unit::Bytes => BYTES,
            Unit::Items => ITEMS,
        };
        let bar = self.multi.add(
            bar.with_style(style(template))
                .with_message(label.to_string()),
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
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogWriter)
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
        match MULTI.get() {
            Some(m) => m.suspend(|| io::stderr().write_all(buf))?,
            None => io::stderr().write_all(buf)?,
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

    #[test]
    fn the_bar_templates_are_valid() {
        for t in [COUNTER, BYTES, ITEMS] {
            assert!(ProgressStyle::with_template(t).is_ok(), "{t}");
        }
    }
}

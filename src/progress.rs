//! How the stages say how far they are, without knowing who listens.
//!
//! Stages take a [`Progress`] and open [`Phase`]s on it (a counter, a bar
//! over bytes or items). What draws them is a [`Sink`], implemented by the
//! terminal UI (`ui`, the only code that knows indicatif); without one,
//! every call is a cheap no-op, so the stages call them unconditionally
//! and unit tests pass [`Progress::none`].

use std::sync::Arc;

/// What a phase counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Files found, no total known ("walking: 12,345 files").
    Files,
    Bytes,
    Items,
    /// The bytes of one file (a large file's parts, its hashing): worth a
    /// bar on a terminal, too many for a status line.
    FileBytes,
}

/// A line of what else is going on (throttling, concurrency), asked for
/// when progress is shown.
pub type Status = Box<dyn Fn() -> String + Send + Sync>;

/// Draws phases: implemented by the UI.
pub trait Sink: Send + Sync {
    fn start(&self, label: &str, unit: Unit, total: Option<u64>) -> Arc<dyn Bar>;

    /// Where the extra status comes from; a sink may ignore it.
    fn status(&self, _status: Status) {}
}

/// One drawn phase.
pub trait Bar: Send + Sync {
    fn inc(&self, n: u64);
    fn inc_length(&self, n: u64);
    fn finish(&self);
}

/// Where stages report; cloning shares it.
#[derive(Clone, Default)]
pub struct Progress {
    sink: Option<Arc<dyn Sink>>,
}

impl Progress {
    /// Reports to nobody.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn to(sink: Arc<dyn Sink>) -> Self {
        Self { sink: Some(sink) }
    }

    fn start(&self, label: &str, unit: Unit, total: Option<u64>) -> Phase {
        Phase {
            bar: self.sink.as_ref().map(|s| s.start(label, unit, total)),
        }
    }

    /// A counter of files with no known total.
    pub fn counter(&self, label: &str) -> Phase {
        self.start(label, Unit::Files, None)
    }

    /// A bar over a known number of bytes.
    pub fn bytes(&self, label: &str, total: u64) -> Phase {
        self.start(label, Unit::Bytes, Some(total))
    }

    /// A bar over a known number of items.
    pub fn items(&self, label: &str, total: u64) -> Phase {
        self.start(label, Unit::Items, Some(total))
    }

    /// A bar over one file's bytes.
    pub fn file_bytes(&self, label: &str, total: u64) -> Phase {
        self.start(label, Unit::FileBytes, Some(total))
    }

    /// Says where the extra status comes from.
    pub fn status(&self, status: Status) {
        if let Some(s) = &self.sink {
            s.status(status);
        }
    }
}

/// One counter or bar. Cloning shares it (safe across threads).
#[derive(Clone, Default)]
pub struct Phase {
    bar: Option<Arc<dyn Bar>>,
}

impl Phase {
    pub fn hidden() -> Self {
        Self::default()
    }

    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    pub fn inc_length(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc_length(n);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}

/// Progress of the upload phase: overall bytes (rate, ETA), objects done,
/// and one bar per large file in flight.
#[derive(Clone, Default)]
pub struct Transfer {
    progress: Progress,
    bytes: Phase,
    objects: Phase,
}

impl Transfer {
    pub fn new(progress: &Progress, total_bytes: u64, total_objects: u64) -> Self {
        Self {
            progress: progress.clone(),
            bytes: progress.bytes("uploading", total_bytes),
            objects: progress.items("objects", total_objects),
        }
    }

    /// Bytes of a part acknowledged by the server.
    pub fn bytes(&self, n: u64) {
        self.bytes.inc(n);
    }

    /// An object finished; `bytes` not yet counted through [`Self::bytes`].
    pub fn object_done(&self, bytes: u64) {
        self.bytes.inc(bytes);
        self.objects.inc(1);
    }

    pub fn object_failed(&self) {
        self.objects.inc(1);
    }

    /// A bar for one large file's parts.
    pub fn large_file(&self, name: &str, size: u64) -> Phase {
        self.progress.file_bytes(&short(name), size)
    }

    /// A bar for hashing one large file before its upload.
    pub fn hashing(&self, name: &str, size: u64) -> Phase {
        self.progress
            .file_bytes(&format!("hash {}", short(name)), size)
    }

    pub fn finish(&self) {
        self.bytes.finish();
        self.objects.finish();
    }
}

/// The last 24 characters of a path, for bar labels.
fn short(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    if chars.len() <= 24 {
        name.to_string()
    } else {
        format!("…{}", chars[chars.len() - 23..].iter().collect::<String>())
    }
}

/// Logs a phase boundary with the memory in use (at -v), to see where a
/// run's time and memory go.
pub fn phase_done(name: &str) {
    let (rss, peak) = memory_kib();
    tracing::debug!(
        "{name} done: RSS {} MiB, peak {} MiB",
        rss / 1024,
        peak / 1024
    );
}

/// The process's resident memory now and at its peak, in KiB (Linux).
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records what a stage reported.
    #[derive(Default)]
    struct Recorded(Mutex<Vec<String>>);

    struct Line(Arc<Recorded>, String);

    impl Bar for Line {
        fn inc(&self, n: u64) {
            self.0.0.lock().unwrap().push(format!("{} +{n}", self.1));
        }
        fn inc_length(&self, n: u64) {
            self.0.0.lock().unwrap().push(format!("{} len+{n}", self.1));
        }
        fn finish(&self) {
            self.0.0.lock().unwrap().push(format!("{} done", self.1));
        }
    }

    struct Rec(Arc<Recorded>);

    impl Sink for Rec {
        fn start(&self, label: &str, unit: Unit, total: Option<u64>) -> Arc<dyn Bar> {
            self.0
                .0
                .lock()
                .unwrap()
                .push(format!("{label} {unit:?} {total:?}"));
            Arc::new(Line(self.0.clone(), label.to_string()))
        }
    }

    #[test]
    fn phases_reach_the_sink_and_no_sink_is_silent() {
        let rec = Arc::new(Recorded::default());
        let p = Progress::to(Arc::new(Rec(rec.clone())));
        let t = Transfer::new(&p, 10, 2);
        t.object_done(4);
        t.large_file("a/very/long/path/to/some/video-file.mp4", 6)
            .finish();
        t.finish();
        let got = rec.0.lock().unwrap().clone();
        assert_eq!(
            got,
            [
                "uploading Bytes Some(10)",
                "objects Items Some(2)",
                "uploading +4",
                "objects +1",
                "…/to/some/video-file.mp4 FileBytes Some(6)",
                "…/to/some/video-file.mp4 done",
                "uploading done",
                "objects done",
            ]
        );
        // Nobody listening: nothing to observe, nothing to fail.
        let none = Transfer::new(&Progress::none(), 10, 2);
        none.object_done(4);
        none.finish();
    }
}

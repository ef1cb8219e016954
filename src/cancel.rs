//! The stop signal: what Ctrl-C and SIGTERM mean at each moment of a run.
//!
//! Before uploads start there is nothing to save, so a signal quits at
//! once. During uploads the first one asks for a graceful stop: nothing new
//! starts, requests in flight get a bounded time (`--stop-timeout`) to
//! finish, then the rest are cancelled ([`Stop::cancelled`]), the journal
//! is flushed and the maps are written. A second one quits at once; the
//! journal is consistent at any instant. Quitting is the caller's to carry
//! out (see [`Stop::quitting`]): library code never ends the process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

#[derive(Debug)]
struct Inner {
    requested: AtomicBool,
    uploading: AtomicBool,
    quit: watch::Sender<bool>,
    cancel: watch::Sender<bool>,
    /// How long work in flight gets after a graceful stop request.
    grace: std::sync::Mutex<std::time::Duration>,
}

/// Shared by everything that must notice a stop. Cloning shares it.
#[derive(Debug, Clone)]
pub struct Stop {
    inner: Arc<Inner>,
}

impl Default for Stop {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                requested: AtomicBool::new(false),
                uploading: AtomicBool::new(false),
                quit: watch::Sender::new(false),
                cancel: watch::Sender::new(false),
                grace: std::sync::Mutex::new(std::time::Duration::from_secs(10)),
            }),
        }
    }
}

impl Stop {
    /// A stop whose work in flight gets `grace` after a graceful request.
    pub fn with_grace(grace: std::time::Duration) -> Self {
        let s = Self::default();
        if let Ok(mut g) = s.inner.grace.lock() {
            *g = grace;
        }
        s
    }

    /// Asks for a graceful stop: nothing new starts, and work in flight is
    /// cancelled once the grace period is over. Needs a Tokio runtime.
    pub fn request(&self) {
        if self.inner.requested.swap(true, Ordering::SeqCst) {
            return;
        }
        let grace = self
            .inner
            .grace
            .lock()
            .map_or(std::time::Duration::ZERO, |g| *g);
        let s = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            s.cancel();
        });
    }

    /// Cancels the work in flight now.
    pub fn cancel(&self) {
        self.inner.requested.store(true, Ordering::SeqCst);
        self.inner.cancel.send_replace(true);
    }

    /// Resolves once the work in flight must be cancelled.
    pub async fn cancelled(&self) {
        let mut rx = self.inner.cancel.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    pub fn requested(&self) -> bool {
        self.inner.requested.load(Ordering::SeqCst)
    }

    /// Marks the start of the upload phase (from then on a first signal
    /// is graceful).
    pub fn uploading(&self) {
        self.inner.uploading.store(true, Ordering::SeqCst);
    }

    /// Asks to quit at once.
    pub fn quit(&self) {
        self.cancel();
        self.inner.quit.send_replace(true);
    }

    /// Resolves once [`Stop::quit`] was called (at once if it already was).
    pub async fn quitting(&self) {
        let mut rx = self.inner.quit.subscribe();
        let _ = rx.wait_for(|q| *q).await;
    }

    /// What one signal means now.
    fn signal(&self) -> Signal {
        if self.requested() || !self.inner.uploading.load(Ordering::SeqCst) {
            self.quit();
            Signal::Quit
        } else {
            self.request();
            Signal::Graceful
        }
    }

    /// Listens for Ctrl-C and SIGTERM on the current runtime for as long
    /// as it runs.
    pub fn listen(&self) {
        let stop = self.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate()).ok();
            loop {
                let sigterm = async {
                    match term.as_mut() {
                        Some(t) => {
                            t.recv().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = sigterm => {}
                }
                if stop.signal() == Signal::Graceful {
                    eprintln!(
                        "mediashift: stopping after the requests in flight (Ctrl-C again to quit at once); progress is kept in the journal"
                    );
                }
            }
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Graceful,
    Quit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_signal_quits_before_uploads_and_stops_gracefully_during_them() {
        let before = Stop::default();
        assert_eq!(before.signal(), Signal::Quit);
        before.quitting().await; // already quit: resolves at once

        let during = Stop::default();
        during.uploading();
        assert_eq!(during.signal(), Signal::Graceful);
        assert!(during.requested());
        let waiting = tokio::spawn({
            let s = during.clone();
            async move { s.quitting().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "a graceful stop does not quit");
        assert_eq!(during.signal(), Signal::Quit, "the second signal quits");
        waiting.await.unwrap();
    }
}

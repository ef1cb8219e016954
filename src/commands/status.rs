//! `mediashift status`: what the journal knows, without touching the
//! store. Safe while a migration runs (the journal is read, not locked).

use std::path::{Path, PathBuf};

use crate::journal::{
    FailedFile, Identity, InFlight, JournalError, OffloadCount, Reader, StateCount,
};

/// What the journal says.
#[derive(Debug)]
pub struct Status {
    pub journal: PathBuf,
    pub identity: Identity,
    /// Files and bytes by state, in state order.
    pub counts: Vec<StateCount>,
    pub in_flight: Vec<InFlight>,
    pub failures: Vec<FailedFile>,
    /// Files `offload` took out of SOURCE_DIR.
    pub offloaded: OffloadCount,
}

pub fn run(state_dir: &Path) -> Result<Status, JournalError> {
    let r = Reader::open(state_dir)?;
    Ok(Status {
        journal: r.path().to_path_buf(),
        identity: r.identity().clone(),
        counts: r.counts()?,
        in_flight: r.in_flight()?,
        failures: r.failures()?,
        offloaded: r.offloaded()?,
    })
}

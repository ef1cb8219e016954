//! The settings of the commands that read a journal or maps: `status`,
//! `gc`, `maps merge`.

use std::path::PathBuf;

use super::common::{OutputSettings, SettingsError, bad, connection, resolved};
use crate::cli::{GcArgs, MergeArgs, StatusArgs};
use crate::store::ConnectionSettings;
use crate::types::Destination;

/// Everything `status` needs.
#[derive(Debug, Clone)]
pub struct StatusSettings {
    pub state_dir: PathBuf,
    pub output: OutputSettings,
}

impl StatusSettings {
    pub fn from_args(args: &StatusArgs, quiet: bool) -> Result<Self, SettingsError> {
        Ok(Self {
            state_dir: resolved("--state", &args.state)?,
            output: OutputSettings::new(&args.out, quiet),
        })
    }
}

/// Everything `maps merge` needs.
#[derive(Debug, Clone)]
pub struct MergeSettings {
    pub inputs: Vec<PathBuf>,
    pub output: PathBuf,
    pub out: OutputSettings,
}

impl MergeSettings {
    pub fn from_args(args: &MergeArgs, quiet: bool) -> Result<Self, SettingsError> {
        let output = resolved("--output", &args.output)?;
        let mut inputs = Vec::new();
        for dir in &args.inputs {
            let d = resolved("MAP_DIR", dir)?;
            if !d.join("map.json").is_file() {
                return Err(bad(
                    "MAP_DIR",
                    format!(
                        "'{}' has no map.json: give the --map-dir of each shard",
                        dir.display()
                    ),
                ));
            }
            if d == output {
                return Err(bad(
                    "--output",
                    format!(
                        "'{}' is one of the inputs: merge into another directory",
                        args.output.display()
                    ),
                ));
            }
            if inputs.contains(&d) {
                return Err(bad(
                    "MAP_DIR",
                    format!("'{}' is given twice", dir.display()),
                ));
            }
            inputs.push(d);
        }
        Ok(Self {
            inputs,
            output,
            out: OutputSettings::new(&args.out, quiet),
        })
    }
}

/// Everything `gc` needs.
#[derive(Debug, Clone)]
pub struct GcSettings {
    pub destination: Destination,
    pub connection: ConnectionSettings,
    pub older_than: std::time::Duration,
    pub state_dir: PathBuf,
    pub all: bool,
    pub dry_run: bool,
    pub output: OutputSettings,
}

impl GcSettings {
    pub fn from_args(args: &GcArgs, quiet: bool) -> Result<Self, SettingsError> {
        Ok(Self {
            destination: args.destination.clone(),
            connection: connection(&args.connection, ConnectionSettings::default().ceiling)?,
            older_than: args.older_than,
            state_dir: resolved("--state", &args.state)?,
            all: args.all,
            dry_run: args.dry_run,
            output: OutputSettings::new(&args.out, quiet),
        })
    }
}

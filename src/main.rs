//! The `mediashift` binary: parse the command line, run, and turn the
//! outcome into an exit code: 0 all good, 1 some files could not be
//! handled, 2 a usage, configuration or connection error, 130 stopped (run
//! the same command again to resume). A closed stdout ends quietly with 0.

use std::process::ExitCode;

use clap::Parser as _;
use clap::error::ErrorKind;
use mediashift::cli::Cli;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    mediashift::init_logging(cli.verbose, cli.quiet);
    match mediashift::run(&cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(err) if err.is_closed_stdout() => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!(
                "mediashift: error: {}",
                mediashift::terminal_safe(&err.text())
            );
            ExitCode::from(err.exit_code())
        }
    }
}

/// A command line clap refused, in one line naming the flag and the
/// reason, exit code 2 (help and the version are printed as clap prints
/// them, exit code 0).
fn usage_error(e: clap::Error) -> ExitCode {
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    // clap's message, up to its usage and tips, joined into one line
    // ("the following required arguments were not provided: --quarantine
    // <DIR>|--delete").
    let text = e.render().to_string();
    let said: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
        .map(str::trim)
        .collect();
    let line = said.join(" ");
    eprintln!(
        "mediashift: error: {}",
        line.strip_prefix("error: ").unwrap_or(&line)
    );
    ExitCode::from(2)
}

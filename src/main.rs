//! The `mediashift` binary: parse the command line, run, and turn the
//! outcome into an exit code: 0 all good, 1 some files could not be
//! handled, 2 a usage, configuration or connection error, 130 stopped (run
//! the same command again to resume). A closed stdout ends quietly with 0.

use std::process::ExitCode;

use clap::Parser as _;
use mediashift::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
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

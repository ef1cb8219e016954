//! The program from parsed flags to an exit status: checked settings, the
//! runtime, the command, its report on stdout.
//!
//! Everything here is the library's; `main` only parses, calls [`run`] and
//! turns the outcome into the process's exit code. Nothing here ends the
//! process: a stop request that must take effect at once makes [`run`]
//! return [`Exit::Interrupted`].

use std::io::Write as _;

use serde::Serialize;

use crate::cancel::Stop;
use crate::cli::{Cli, Command, MapsCommand};
use crate::commands;
use crate::error::{Error, Result};
use crate::report::{
    GcDoc, MergeDoc, MigrateDoc, OffloadDoc, PlanDoc, RestoreDoc, RewriteDoc, StatusDoc, UndoDoc,
    VerifyDoc, VisitedDoc, gc_text, merge_text, migrate_text, offload_text, plan_text,
    restore_text, rewrite_text, status_text, undo_text, verify_text, visited_text,
};
use crate::settings::{
    GcSettings, MergeSettings, MigrateSettings, OffloadSettings, RestoreSettings, RewriteSettings,
    RunSettings, StatusSettings, VerifySettings,
};
use crate::{priority, ui};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for was done.
    Clean,
    /// Some files could not be handled (listed in the report).
    Failures,
    /// Stopped by a signal; the same command resumes.
    Interrupted,
}

impl Exit {
    /// The process's exit code: 0, 1, or 130 (as a shell reports SIGINT).
    pub fn code(self) -> u8 {
        match self {
            Self::Clean => 0,
            Self::Failures => 1,
            Self::Interrupted => 130,
        }
    }

    fn of(clean: bool) -> Self {
        if clean { Self::Clean } else { Self::Failures }
    }
}

/// A command with its checked settings.
#[expect(
    clippy::large_enum_variant,
    reason = "one per process, made once and borrowed"
)]
enum Resolved {
    Plan(RunSettings),
    Migrate(MigrateSettings),
    Status(StatusSettings),
    Verify(VerifySettings),
    Gc(GcSettings),
    Rewrite(RewriteSettings),
    Offload(OffloadSettings),
    Restore(RestoreSettings),
    MergeMaps(MergeSettings),
    Completions(crate::cli::Shell),
    Man(Option<String>),
}

/// Checks the flags of the command `cli` names.
fn resolve(cli: &Cli) -> Result<Resolved> {
    Ok(match &cli.command {
        Command::Plan(args) => {
            Resolved::Plan(MigrateSettings::from_args(args, cli.quiet, false)?.run)
        }
        Command::Migrate(args) => {
            let settings = MigrateSettings::from_args(args, cli.quiet, true)?;
            if settings.dry_run {
                Resolved::Plan(settings.run)
            } else {
                Resolved::Migrate(settings)
            }
        }
        Command::Status(args) => Resolved::Status(StatusSettings::from_args(args, cli.quiet)?),
        Command::Verify(args) => Resolved::Verify(VerifySettings::from_args(args, cli.quiet)?),
        Command::Gc(args) => Resolved::Gc(GcSettings::from_args(args, cli.quiet)?),
        Command::Rewrite(args) => Resolved::Rewrite(RewriteSettings::from_args(args, cli.quiet)?),
        Command::Offload(args) => Resolved::Offload(OffloadSettings::from_args(args, cli.quiet)?),
        Command::Restore(args) => Resolved::Restore(RestoreSettings::from_args(args, cli.quiet)?),
        Command::Maps {
            command: MapsCommand::Merge(args),
        } => Resolved::MergeMaps(MergeSettings::from_args(args, cli.quiet)?),
        Command::Completions { shell } => Resolved::Completions(*shell),
        Command::Man { command } => Resolved::Man(command.clone()),
    })
}

/// Runs the command `cli` names.
pub fn run(cli: &Cli) -> Result<Exit> {
    let command = resolve(cli)?;
    // Before the runtime's threads start, so that they inherit it.
    if let Resolved::Migrate(settings) = &command
        && settings.low_priority
    {
        priority::lower().map_err(Error::Priority)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let exit = dispatch(&runtime, &command, cli.quiet);
    // Blocking tasks still running (a walk cut short by a stop) must not
    // hold the process.
    runtime.shutdown_background();
    exit
}

fn dispatch(runtime: &tokio::runtime::Runtime, command: &Resolved, quiet: bool) -> Result<Exit> {
    let out = Out { quiet };
    let exit = match command {
        Resolved::Plan(settings) => plan(runtime, settings, out),
        Resolved::Migrate(settings) => migrate(runtime, settings, out),
        Resolved::Status(settings) => {
            let status = commands::status::run(&settings.state_dir)?;
            let doc = StatusDoc::new(&status);
            out.print(settings.output.json, &doc, status_text)?;
            Ok(Exit::of(doc.is_clean()))
        }
        Resolved::Verify(settings) => {
            let progress =
                out.progress(settings.output.progress, settings.output.progress_interval);
            if let Some(base) = &settings.via_url {
                let visited =
                    runtime.block_on(commands::verify::run_via_url(settings, base, &progress))?;
                let doc = VisitedDoc::new(&visited, settings);
                out.print(settings.output.json, &doc, visited_text)?;
                Ok(Exit::of(doc.is_clean()))
            } else {
                let checked = runtime.block_on(commands::verify::run(settings, &progress))?;
                let doc = VerifyDoc::new(&checked, settings);
                out.print(settings.output.json, &doc, verify_text)?;
                Ok(Exit::of(doc.is_clean()))
            }
        }
        Resolved::Gc(settings) => {
            let collected = runtime.block_on(commands::gc::run(settings))?;
            let doc = GcDoc::new(&collected, settings);
            out.print(settings.output.json, &doc, gc_text)?;
            Ok(Exit::of(doc.is_clean()))
        }
        Resolved::Rewrite(RewriteSettings::Rewrite {
            map,
            bases,
            jobs,
            reverse,
            include_guid,
            dry_run,
            strict,
            output,
        }) => {
            // Files are streamed on this thread: no runtime needed.
            let done = commands::rewrite::run(map, bases, jobs, *reverse, *include_guid, *dry_run)?;
            let doc = RewriteDoc::new(&done, *strict);
            out.print(output.json, &doc, rewrite_text)?;
            Ok(Exit::of(doc.is_clean()))
        }
        Resolved::Offload(settings) => {
            let progress =
                out.progress(settings.output.progress, settings.output.progress_interval);
            let done = runtime.block_on(commands::offload::run(settings, &progress))?;
            let doc = OffloadDoc::new(&done, settings);
            out.print(settings.output.json, &doc, offload_text)?;
            Ok(Exit::of(doc.is_clean()))
        }
        Resolved::Restore(settings) => {
            let progress =
                out.progress(settings.output.progress, settings.output.progress_interval);
            let done = runtime.block_on(commands::restore::run(settings, &progress))?;
            let doc = RestoreDoc::new(&done);
            out.print(settings.output.json, &doc, restore_text)?;
            Ok(Exit::of(doc.is_clean()))
        }
        Resolved::MergeMaps(settings) => {
            let merged = commands::maps::run(settings)?;
            let doc = MergeDoc::new(&merged, settings);
            out.print(settings.out.json, &doc, merge_text)?;
            Ok(Exit::of(doc.is_clean()))
        }
        Resolved::Completions(shell) => {
            let mut stdout = std::io::stdout().lock();
            crate::cli::completions(*shell, &mut stdout);
            stdout.flush().map_err(Error::Output)?;
            Ok(Exit::Clean)
        }
        Resolved::Man(command) => {
            let mut stdout = std::io::stdout().lock();
            if !crate::cli::man(command.as_deref(), &mut stdout).map_err(Error::Output)? {
                return Err(Error::Settings(crate::settings::SettingsError::new(
                    "mediashift man",
                    format!(
                        "{}: no such command (see mediashift --help)",
                        command.as_deref().unwrap_or_default()
                    ),
                )));
            }
            stdout.flush().map_err(Error::Output)?;
            Ok(Exit::Clean)
        }
        Resolved::Rewrite(RewriteSettings::Undo {
            record,
            output,
            to,
            report,
        }) => {
            let header = commands::rewrite::undo(record, output, to)?;
            out.print(report.json, &UndoDoc::new(&header, to), undo_text)?;
            Ok(Exit::Clean)
        }
    };
    if quiet && matches!(exit, Ok(Exit::Failures)) {
        eprintln!(
            "mediashift: finished with failures (exit 1); run it again without -q, or see `mediashift status`, for the list"
        );
    }
    exit
}

/// `plan`, and `migrate --dry-run`, which prints exactly the same.
fn plan(runtime: &tokio::runtime::Runtime, settings: &RunSettings, out: Out) -> Result<Exit> {
    let progress = out.progress(settings.output.progress, settings.output.progress_interval);
    let planned = runtime.block_on(commands::plan::run(settings, &progress))?;
    out.print(
        settings.output.json,
        &PlanDoc::new(&planned, settings),
        plan_text,
    )?;
    Ok(Exit::of(planned.plan.is_clean(&planned.scan.skipped)))
}

fn migrate(
    runtime: &tokio::runtime::Runtime,
    settings: &MigrateSettings,
    out: Out,
) -> Result<Exit> {
    let o = &settings.run.output;
    let progress = out.progress(o.progress, o.progress_interval);
    let stop = Stop::with_grace(settings.stop_timeout);
    let migrated = runtime.block_on(async {
        stop.listen();
        tokio::select! {
            r = commands::migrate::run(settings, &progress, stop.clone()) => Some(r),
            () = stop.quitting() => None,
        }
    });
    let Some(migrated) = migrated else {
        eprintln!("mediashift: stopped; run the same command again to resume");
        return Ok(Exit::Interrupted);
    };
    let migrated = migrated?;
    let doc = MigrateDoc::new(&migrated, settings);
    out.print(settings.run.output.json, &doc, migrate_text)?;
    if let Some(report) = &settings.report {
        crate::report::audit::write(report, &doc, &migrated.files).map_err(|source| {
            Error::Report {
                path: report.display().to_string(),
                source,
            }
        })?;
    }
    if stop.requested() || migrated.interrupted > 0 {
        eprintln!(
            "mediashift: interrupted with {} object(s) left; run the same command again to resume",
            migrated.interrupted
        );
        return Ok(Exit::Interrupted);
    }
    Ok(Exit::of(doc.is_clean()))
}

/// Where the run's output goes: with `-q`, errors only.
#[derive(Debug, Clone, Copy)]
struct Out {
    quiet: bool,
}

impl Out {
    /// Progress on stderr, unless turned off or quiet.
    fn progress(self, enabled: bool, interval: std::time::Duration) -> crate::progress::Progress {
        ui::progress(enabled && !self.quiet, interval)
    }

    /// The report on stdout: its JSON when asked for (even with `-q`), its
    /// text unless quiet.
    fn print<T: Serialize>(
        self,
        json: bool,
        doc: &T,
        text: impl FnOnce(&T) -> String,
    ) -> Result<()> {
        if self.quiet && !json {
            return Ok(());
        }
        print(json, doc, text)
    }
}

/// Writes a document on stdout: one JSON document, or its text.
fn print<T: Serialize>(json: bool, doc: &T, text: impl FnOnce(&T) -> String) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, doc).map_err(|e| Error::Output(e.into()))?;
        out.write_all(b"\n").map_err(Error::Output)?;
    } else {
        let text = text(doc);
        out.write_all(ui::terminal_safe(&text).as_bytes())
            .map_err(Error::Output)?;
    }
    out.flush().map_err(Error::Output)
}

//! The `mediashift` binary: parse, resolve settings, run, map the outcome
//! to an exit code (0 all good, 1 some files could not be handled, 2 usage,
//! configuration or connection error).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use mediashift::cli::{Cli, Command};
use mediashift::report::{self, MigrateDoc, PlanDoc, Reporter};
use mediashift::settings::{MigrateSettings, RunSettings};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("mediashift: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    // Our own crate at the chosen level; the SDK only at warn, so nothing it
    // logs at debug (request details) shows unless RUST_LOG asks for it.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("error,mediashift={level}")));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(report::LogWriter)
        .with_target(false);
    // Warnings are one-liners for the user; -v logs are for finding where
    // time goes, so they carry the seconds since start.
    if cli.verbose > 0 {
        logs.with_timer(tracing_subscriber::fmt::time::uptime())
            .init();
    } else {
        logs.without_time().init();
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match &cli.command {
        Command::Plan(args) => {
            let settings = RunSettings::from_args(args)?;
            plan(&runtime, &settings)
        }
        Command::Migrate(args) => {
            let settings = MigrateSettings::from_args(args)?;
            if settings.dry_run {
                return plan(&runtime, &settings.run);
            }
            let reporter = Reporter::new(settings.run.output.progress);
            let stop = mediashift::upload::Stop::default();
            let migrated = runtime.block_on(async {
                mediashift::commands::migrate::handle_signals(stop.clone());
                mediashift::commands::migrate::run(&settings, &reporter, stop.clone()).await
            })?;
            let doc = MigrateDoc::new(&migrated, &settings);
            if settings.run.output.json {
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                print!("{}", report::migrate_text(&doc));
            }
            if stop.requested() || migrated.interrupted > 0 {
                eprintln!(
                    "mediashift: interrupted with {} object(s) left; run the same command again to resume",
                    migrated.interrupted
                );
                return Ok(ExitCode::from(130));
            }
            Ok(exit_code(doc.is_clean()))
        }
        Command::Status(args) => {
            let state = std::path::absolute(&args.state)?;
            let doc = mediashift::commands::status::run(&state)?;
            print_doc(args.json, &doc, report::status_text)?;
            Ok(exit_code(doc.failures.is_empty()))
        }
        Command::Verify(args) => {
            let settings = mediashift::settings::VerifySettings::from_args(args)?;
            let reporter = Reporter::new(settings.output.progress);
            let doc = runtime.block_on(mediashift::commands::verify::run(&settings, &reporter))?;
            print_doc(settings.output.json, &doc, report::verify_text)?;
            Ok(exit_code(doc.is_clean()))
        }
        Command::Gc(args) => {
            let settings = mediashift::settings::GcSettings::from_args(args)?;
            let doc = runtime.block_on(mediashift::commands::gc::run(&settings))?;
            print_doc(settings.json, &doc, report::gc_text)?;
            Ok(exit_code(doc.failed == 0))
        }
    }
}

fn print_doc<T: serde::Serialize>(
    json: bool,
    doc: &T,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(doc)?);
    } else {
        print!("{}", text(doc));
    }
    Ok(())
}

/// `plan`, and `migrate --dry-run`, which prints exactly the same.
fn plan(runtime: &tokio::runtime::Runtime, settings: &RunSettings) -> anyhow::Result<ExitCode> {
    let reporter = Reporter::new(settings.output.progress);
    let planned = runtime.block_on(mediashift::commands::plan::run(settings, &reporter))?;
    let doc = PlanDoc::new(&planned, settings);
    if settings.output.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", report::plan_text(&doc));
    }
    Ok(exit_code(doc.failed.is_empty() && doc.conflicts.is_empty()))
}

fn exit_code(clean: bool) -> ExitCode {
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

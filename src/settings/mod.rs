//! Turning raw command-line values into checked, typed settings, one
//! value per command, built once and complete: clap has already parsed
//! sizes, durations, URLs and choices into their types (`cli`, `values`);
//! what is checked here is what needs more than one flag, the file system
//! or the environment, with a one-line message that names the flag or path
//! and says what to do. Nothing downstream sees clap or re-validates.
//!
//! `run` holds `plan`'s and `migrate`'s settings, `verify` verify's,
//! `cutover` those of `rewrite`, `offload` and `restore`, `journal` those
//! of the commands that read a journal (`status`, `gc`, `maps merge`).

mod common;
mod cutover;
mod journal;
mod run;
mod verify;

pub use common::SettingsError;
pub use cutover::{
    OffloadSettings, OffloadTo, RestoreFrom, RestoreSettings, RewriteJob, RewriteSettings,
};
pub use journal::{GcSettings, MergeSettings, StatusSettings};
pub use run::{MigrateSettings, RunSettings, Sharding};
pub use verify::VerifySettings;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Command, command_of};
    use std::time::Duration;

    fn line(args: &[&str]) -> Command {
        command_of(
            std::iter::once("mediashift")
                .chain(args.iter().copied())
                .map(String::from),
        )
        .unwrap()
    }

    #[test]
    fn values_are_typed_where_the_command_line_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let Command::Migrate(args) = line(&[
            "migrate",
            &d,
            "s3://bucket/p",
            "--request-timeout",
            "90s",
            "--max-bandwidth",
            "20MiB/s",
            "--part-size",
            "16MiB",
            "--concurrency",
            "12",
            "--sse",
            "aws:kms",
            "--no-progress",
        ]) else {
            unreachable!()
        };
        let s = MigrateSettings::from_args(&args, false, false).unwrap();
        assert_eq!(s.run.connection.request_timeout, Duration::from_secs(90));
        assert_eq!(s.run.connection.caps.bytes_per_s, Some(20 << 20));
        assert_eq!(s.run.rules.part_size, 16 << 20);
        assert_eq!(s.upload.options.sse.as_deref(), Some("aws:kms"));
        // --concurrency is the connection's ceiling, set where it is built.
        assert_eq!(s.run.connection.ceiling, 12);
        assert!(!s.run.output.progress && !s.run.output.quiet);
        // -q: errors only, no progress.
        let q = MigrateSettings::from_args(&args, true, false).unwrap();
        assert!(q.run.output.quiet && !q.run.output.progress);

        // A value that does not parse is refused naming the flag.
        let e = command_of(
            [
                "mediashift",
                "plan",
                &d,
                "s3://bucket",
                "--request-timeout",
                "soon",
            ]
            .into_iter()
            .map(String::from),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("--request-timeout") && e.contains("not a duration"),
            "{e}"
        );
        let e = command_of(
            [
                "mediashift",
                "plan",
                &d,
                "s3://bucket",
                "--request-timeout",
                "0",
            ]
            .into_iter()
            .map(String::from),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("must be more than 0"), "{e}");
    }

    #[test]
    fn a_kms_key_needs_kms_and_every_command_gets_its_concurrency() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let Command::Migrate(args) = line(&[
            "migrate",
            &d,
            "s3://bucket",
            "--sse",
            "AES256",
            "--sse-kms-key-id",
            "k",
        ]) else {
            unreachable!()
        };
        let e = MigrateSettings::from_args(&args, false, false).unwrap_err();
        // The flag and the reason, as data; the message reads them in turn.
        assert_eq!(
            e,
            SettingsError::new("--sse-kms-key-id", "needs --sse aws:kms")
        );
        assert_eq!(e.to_string(), "--sse-kms-key-id needs --sse aws:kms");
        let Command::Offload(args) = line(&[
            "offload",
            &d,
            "s3://bucket",
            "--delete",
            "--concurrency",
            "0",
        ]) else {
            unreachable!()
        };
        let e = OffloadSettings::from_args(&args, false).unwrap_err();
        assert_eq!(e.flag, "--concurrency", "{e}");
        let Command::Migrate(args) = line(&["migrate", &d, "s3://bucket", "--exclude", "a/[b"])
        else {
            unreachable!()
        };
        let e = MigrateSettings::from_args(&args, false, false).unwrap_err();
        assert_eq!(e.flag, "--exclude", "{e}");
        assert!(e.reason.starts_with("'a/[b' is not a valid glob"), "{e}");
        let Command::Verify(args) = line(&["verify", &d, "s3://bucket", "--concurrency", "7"])
        else {
            unreachable!()
        };
        assert_eq!(
            VerifySettings::from_args(&args, false)
                .unwrap()
                .connection
                .ceiling,
            7
        );
    }
}

//! `verify`'s settings.

use std::path::PathBuf;

use super::common::{
    OutputSettings, SettingsError, bad, concurrency_flag, connection, resolve_source, resolved,
};
use crate::cli::VerifyArgs;
use crate::store::ConnectionSettings;
use crate::types::Destination;

/// Everything `verify` needs.
#[derive(Debug, Clone)]
pub struct VerifySettings {
    pub source: PathBuf,
    pub destination: Destination,
    pub connection: ConnectionSettings,
    /// One journal, or every shard's (`--state` repeated).
    pub state_dirs: Vec<PathBuf>,
    pub deep: bool,
    /// `--via-url BASE`: check what a visitor gets at BASE instead of
    /// proving objects through the S3 API. Ends with `/`.
    pub via_url: Option<String>,
    pub concurrency: usize,
    pub output: OutputSettings,
}

impl VerifySettings {
    pub fn from_args(args: &VerifyArgs, quiet: bool) -> Result<Self, SettingsError> {
        let concurrency = concurrency_flag(args.concurrency)?;
        let connection = connection(&args.connection, concurrency)?;
        Ok(Self {
            source: resolve_source(&args.source)?,
            destination: args.destination.clone(),
            connection,
            state_dirs: args
                .state
                .iter()
                .map(|d| resolved("--state", d))
                .collect::<Result<_, _>>()?,
            deep: args.deep,
            via_url: args.via_url.as_deref().map(via_url).transpose()?,
            concurrency,
            output: OutputSettings::new(&args.out, quiet),
        })
    }
}

/// `--via-url BASE`: an http(s) URL with a host, no query or fragment,
/// ending with `/` (added if missing).
fn via_url(base: &str) -> Result<String, SettingsError> {
    let bad_url = |why: &str| {
        bad(
            "--via-url",
            format!(
                "{base}: {why}: give the URL the application will use for the media, such as https://cdn.example/media/"
            ),
        )
    };
    let Some((scheme, rest)) = base.split_once("://") else {
        return Err(bad_url("not a URL"));
    };
    if !matches!(scheme, "http" | "https") {
        return Err(bad_url("only http:// and https:// URLs are fetched"));
    }
    if rest.is_empty() || rest.starts_with('/') {
        return Err(bad_url("no host"));
    }
    if base.contains(['?', '#']) || base.contains(char::is_whitespace) {
        return Err(bad_url("a base URL carries no query, fragment or space"));
    }
    let mut base = base.to_string();
    if !base.ends_with('/') {
        base.push('/');
    }
    Ok(base)
}

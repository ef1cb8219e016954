//! `mediashift plan`: the survey, against the bucket, writing nothing.

use crate::error::Result;
use crate::progress::Progress;
use crate::settings::RunSettings;
use crate::stages::survey::{Planned, survey};
use crate::store::S3;

pub async fn run(settings: &RunSettings, progress: &Progress) -> Result<Planned> {
    let store = S3::open(&settings.connection, &settings.destination.bucket, progress).await?;
    survey(settings, &store, progress, None).await
}

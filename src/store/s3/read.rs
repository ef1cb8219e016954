//! Reads: HeadObject with its checksums, and a streamed download that
//! hashes what it receives (`verify --deep`, `restore --from`).

use aws_sdk_s3::types::ChecksumMode;
use sha2::{Digest as _, Sha256};

use super::Sdk;
use super::write::{checksum_type, checksums};
use crate::store::error::{ErrorKind, StoreError, absent};
use crate::store::interface::{Checksums, RemoteObject};
use crate::types::Sha256Digest;

impl Sdk {
    pub(super) async fn head_object(&self, key: &str) -> Result<Option<RemoteObject>, StoreError> {
        let operation = format!("HeadObject {key}");
        let result = self
            .client()
            .head_object()
            .bucket(self.bucket())
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| self.err(&operation, e));
        match result {
            Ok(o) => Ok(Some(RemoteObject {
                size: o.content_length().unwrap_or(0).max(0) as u64,
                etag: o.e_tag().map(str::to_string),
                content_type: o.content_type().map(str::to_string),
                metadata: o
                    .metadata()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
                checksums: checksums!(o, checksum_type(o.checksum_type())),
            })),
            Err(e) => absent(e),
        }
    }

    /// Downloads an object, handing each piece to `sink` as it arrives,
    /// and hashes it: (size, SHA-256), or `None` when there is no such
    /// object. An error from `sink` ends the download.
    pub(super) async fn get_object(
        &self,
        key: &str,
        mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<Option<(u64, Sha256Digest)>, StoreError> {
        let operation = format!("GetObject {key}");
        let out = match self
            .client()
            .get_object()
            .bucket(self.bucket())
            .key(key)
            .send()
            .await
            .map_err(|e| self.err(&operation, e))
        {
            Ok(o) => o,
            Err(e) => return absent(e),
        };
        let mut body = out.body;
        let mut sha = Sha256::new();
        let mut len = 0u64;
        while let Some(chunk) = body.try_next().await.map_err(|e| {
            StoreError::new(
                ErrorKind::Transient,
                &operation,
                format!("{operation}: reading the body: {e}"),
            )
        })? {
            sha.update(&chunk);
            len += chunk.len() as u64;
            sink(&chunk).map_err(|e| {
                StoreError::new(
                    ErrorKind::Fatal,
                    &operation,
                    format!("{operation}: writing what arrived: {e}"),
                )
            })?;
        }
        Ok(Some((len, Sha256Digest(sha.finalize().into()))))
    }
}

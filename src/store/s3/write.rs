//! Writes: PutObject and the multipart upload calls, which make up the
//! [`ObjectStore`] the upload engine uses (with HeadObject and ListParts,
//! which `read` and `list` implement).
//!
//! Every body carries the checksum computed from the bytes read, so the
//! server rejects a body that changed in transit; what the server answers
//! (ETag and checksums) is handed back for the proof.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumType as SdkChecksumType, CompletedMultipartUpload, CompletedPart,
    MetadataDirective, ObjectCannedAcl, ServerSideEncryption, StorageClass,
};
use bytes::Bytes;

use super::Sdk;
use super::watch::Watch;
use crate::checksum::Algorithm;
use crate::store::error::{ErrorKind, StoreError};
use crate::store::interface::{
    BodyChecksum, ChecksumType, Checksums, DonePart, ListedPart, ListedUpload, NewObject,
    ObjectStore, Page, RemoteObject, UploadsMarker, Written,
};
use crate::types::UploadId;

fn sdk_algorithm(a: Algorithm) -> ChecksumAlgorithm {
    match a {
        Algorithm::Crc64nvme => ChecksumAlgorithm::Crc64Nvme,
        Algorithm::Sha256 => ChecksumAlgorithm::Sha256,
        Algorithm::Crc32c => ChecksumAlgorithm::Crc32C,
    }
}

pub(super) fn checksum_type(t: Option<&SdkChecksumType>) -> Option<ChecksumType> {
    match t? {
        SdkChecksumType::FullObject => Some(ChecksumType::FullObject),
        SdkChecksumType::Composite => Some(ChecksumType::Composite),
        _ => None,
    }
}

/// Sets the `x-amz-checksum-*` value of the chosen algorithm on any builder.
macro_rules! with_checksum {
    ($req:expr, $alg:expr, $value:expr) => {
        match $alg {
            Algorithm::Crc64nvme => $req.checksum_crc64_nvme($value),
            Algorithm::Sha256 => $req.checksum_sha256($value),
            Algorithm::Crc32c => $req.checksum_crc32_c($value),
        }
    };
}

/// PutObject or UploadPart, with its body signed or not as the endpoint
/// needs (`payload_signing_needed`); the two builders share no trait.
macro_rules! signing {
    ($store:expr, $req:expr) => {{
        let op = $req.customize();
        if $store.sign_payload() {
            op
        } else {
            op.disable_payload_signing()
        }
    }};
}

/// Sends PutObject or UploadPart with a body of `len` bytes, timed by its
/// progress (`watch`): cut off when no byte of it is taken for the request
/// timeout.
macro_rules! send_watched {
    ($store:expr, $req:expr, $len:expr, $operation:expr) => {{
        let watch = Watch::new();
        let send = signing!($store, $req)
            .interceptor(watch.interceptor())
            .config_override($store.timeout_for($len))
            .send();
        $store.watched(&watch, $operation, send).await
    }};
}

/// Sends a request built on any operation's builder with the time it may
/// take, as for a body of `work` bytes (`S3::timeout_for`), naming the
/// operation in its error.
macro_rules! send_within {
    ($store:expr, $req:expr, $work:expr, $operation:expr) => {
        $req.customize()
            .config_override($store.timeout_for($work))
            .send()
            .await
            .map_err(|e| $store.err($operation, e))
    };
}

/// The checksums of any output or HeadObject answer (same getter names on
/// all), with the checksum type where the output has one.
macro_rules! checksums {
    ($out:expr, $kind:expr) => {{
        let o = &$out;
        let other = [
            ("CRC32", o.checksum_crc32()),
            ("SHA1", o.checksum_sha1()),
            ("SHA512", o.checksum_sha512()),
            ("MD5", o.checksum_md5()),
            ("XXHASH64", o.checksum_xxhash64()),
            ("XXHASH3", o.checksum_xxhash3()),
            ("XXHASH128", o.checksum_xxhash128()),
        ]
        .into_iter()
        .find_map(|(name, v)| v.map(|_| name));
        Checksums {
            crc64nvme: o.checksum_crc64_nvme().map(str::to_string),
            sha256: o.checksum_sha256().map(str::to_string),
            crc32c: o.checksum_crc32_c().map(str::to_string),
            other,
            kind: $kind,
        }
    }};
}
pub(super) use checksums;

/// Sets content type, metadata and object options on PutObject or
/// CreateMultipartUpload builders (same setter names on both).
macro_rules! with_object {
    ($req:expr, $obj:expr) => {{
        let mut r = $req.key($obj.key).content_type($obj.content_type);
        for (k, v) in $obj.metadata {
            r = r.metadata(*k, v);
        }
        let o = $obj.options;
        for (k, v) in &o.metadata {
            r = r.metadata(k, v);
        }
        if let Some(v) = &o.cache_control {
            r = r.cache_control(v);
        }
        if let Some(v) = &o.content_disposition {
            r = r.content_disposition(v);
        }
        if let Some(v) = &o.storage_class {
            r = r.storage_class(StorageClass::from(v.as_str()));
        }
        if let Some(v) = &o.acl {
            r = r.acl(ObjectCannedAcl::from(v.as_str()));
        }
        if let Some(v) = &o.sse {
            r = r.server_side_encryption(ServerSideEncryption::from(v.as_str()));
        }
        if let Some(v) = &o.sse_kms_key_id {
            r = r.ssekms_key_id(v);
        }
        r
    }};
}

/// The time a server-side copy is given beyond the request timeout, as if
/// it were a body of this many bytes (at the backstop rate: about an hour
/// and a half): a copy sends nothing, but the server may take a while to
/// copy a large object before it answers.
const COPY_WORK: u64 = 64 << 20;

impl Sdk {
    /// `x-amz-copy-source` for `key` in this bucket: URL-encoded, as S3
    /// requires (each segment the strict way, so `+`, `%`, `?`, `#`, spaces
    /// and non-ASCII names name the right object).
    fn copy_source(&self, key: &str) -> String {
        format!("{}/{}", self.bucket(), crate::urls::encode_path(key))
    }
}

impl ObjectStore for Sdk {
    fn endpoint(&self) -> &str {
        Sdk::endpoint(self)
    }

    fn bucket_url(&self) -> String {
        Sdk::bucket_url(self)
    }

    async fn list_page(
        &self,
        prefix: &str,
        from: Option<String>,
    ) -> Result<Page<(String, u64), String>, StoreError> {
        self.objects_page(prefix, from).await
    }

    async fn parts_page(
        &self,
        key: &str,
        upload: &UploadId,
        from: Option<String>,
    ) -> Result<Page<ListedPart, String>, StoreError> {
        self.parts_of(key, upload, from).await
    }

    async fn uploads_page(
        &self,
        prefix: &str,
        from: Option<UploadsMarker>,
    ) -> Result<Page<ListedUpload, UploadsMarker>, StoreError> {
        self.uploads_under(prefix, from).await
    }

    async fn download(
        &self,
        key: &str,
        sink: impl FnMut(&[u8]) -> std::io::Result<()> + Send,
    ) -> Result<Option<(u64, crate::types::Sha256Digest)>, StoreError> {
        self.get_object(key, sink).await
    }

    async fn put_object(
        &self,
        obj: &NewObject<'_>,
        body: Bytes,
        checksum: &BodyChecksum,
        must_not_exist: bool,
    ) -> Result<Written, StoreError> {
        let len = body.len() as u64;
        let operation = format!("PutObject {}", obj.key);
        let mut req = with_object!(self.client().put_object().bucket(self.bucket()), obj)
            .content_length(len as i64)
            .body(ByteStream::from(body));
        if must_not_exist {
            req = req.if_none_match("*");
        }
        let req = with_checksum!(req, checksum.algorithm, &checksum.value);
        let out = send_watched!(self, req, len, &operation)?;
        Ok(Written {
            etag: out.e_tag().map(str::to_string),
            checksums: checksums!(out, checksum_type(out.checksum_type())),
        })
    }

    async fn create_multipart(
        &self,
        obj: &NewObject<'_>,
        algorithm: Algorithm,
    ) -> Result<UploadId, StoreError> {
        let kind = if algorithm.full_object() {
            SdkChecksumType::FullObject
        } else {
            SdkChecksumType::Composite
        };
        let operation = format!("CreateMultipartUpload {}", obj.key);
        let out = with_object!(
            self.client()
                .create_multipart_upload()
                .bucket(self.bucket()),
            obj
        )
        .checksum_algorithm(sdk_algorithm(algorithm))
        .checksum_type(kind)
        .send()
        .await
        .map_err(|e| self.err(&operation, e))?;
        out.upload_id()
            .map(|id| UploadId(id.to_string()))
            .ok_or_else(|| {
                StoreError::new(
                    ErrorKind::Fatal,
                    &operation,
                    format!("{operation}: no upload id in the answer"),
                )
            })
    }

    async fn upload_part(
        &self,
        key: &str,
        upload: &UploadId,
        number: u32,
        body: Bytes,
        checksum: &BodyChecksum,
    ) -> Result<Written, StoreError> {
        let len = body.len() as u64;
        let operation = format!("UploadPart {key} #{number}");
        let req = self
            .client()
            .upload_part()
            .bucket(self.bucket())
            .key(key)
            .upload_id(&upload.0)
            .part_number(number as i32)
            .content_length(len as i64)
            .body(ByteStream::from(body));
        let req = with_checksum!(req, checksum.algorithm, &checksum.value);
        let out = send_watched!(self, req, len, &operation)?;
        Ok(Written {
            etag: out.e_tag().map(str::to_string),
            checksums: checksums!(out, None),
        })
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload: &UploadId,
        parts: &[DonePart],
        algorithm: Algorithm,
        full_object: Option<&str>,
        must_not_exist: bool,
    ) -> Result<Written, StoreError> {
        let completed: Vec<CompletedPart> = parts
            .iter()
            .map(|p| {
                let b = CompletedPart::builder()
                    .part_number(p.number as i32)
                    .e_tag(&p.etag);
                if p.checksum.is_empty() {
                    b.build()
                } else {
                    with_checksum!(b, algorithm, &p.checksum).build()
                }
            })
            .collect();
        let operation = format!("CompleteMultipartUpload {key}");
        // S3 may take a while to assemble many parts: the request timeout
        // plus a second per part (the backstop rate is 8 KiB/s).
        let work = parts.len() as u64 * 8 * 1024;
        let mut req = self
            .client()
            .complete_multipart_upload()
            .bucket(self.bucket())
            .key(key)
            .upload_id(&upload.0)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            );
        if let Some(full) = full_object {
            req = with_checksum!(req, algorithm, full).checksum_type(SdkChecksumType::FullObject);
        }
        if must_not_exist {
            req = req.if_none_match("*");
        }
        let out = send_within!(self, req, work, &operation)?;
        Ok(Written {
            etag: out.e_tag().map(str::to_string),
            checksums: checksums!(out, checksum_type(out.checksum_type())),
        })
    }

    async fn abort_multipart(&self, key: &str, upload: &UploadId) -> Result<(), StoreError> {
        let operation = format!("AbortMultipartUpload {key}");
        self.client()
            .abort_multipart_upload()
            .bucket(self.bucket())
            .key(key)
            .upload_id(&upload.0)
            .send()
            .await
            .map_err(|e| self.err(&operation, e))?;
        Ok(())
    }

    async fn head(&self, key: &str) -> Result<Option<RemoteObject>, StoreError> {
        self.head_object(key).await
    }

    async fn copy_object(
        &self,
        obj: &NewObject<'_>,
        from: &str,
        algorithm: Algorithm,
        must_not_exist: bool,
    ) -> Result<Written, StoreError> {
        let operation = format!("CopyObject {from} -> {}", obj.key);
        let source = self.copy_source(from);
        let mut req = with_object!(self.client().copy_object().bucket(self.bucket()), obj)
            .copy_source(&source)
            .metadata_directive(MetadataDirective::Replace)
            .checksum_algorithm(sdk_algorithm(algorithm));
        if must_not_exist {
            req = req.if_none_match("*");
        }
        let out = send_within!(self, req, COPY_WORK, &operation)?;
        let result = out.copy_object_result();
        Ok(Written {
            etag: result.and_then(|r| r.e_tag()).map(str::to_string),
            checksums: result
                .map(|r| checksums!(r, checksum_type(r.checksum_type())))
                .unwrap_or_default(),
        })
    }

    async fn upload_part_copy(
        &self,
        key: &str,
        upload: &UploadId,
        number: u32,
        from: &str,
        range: (u64, u64),
    ) -> Result<Written, StoreError> {
        let operation = format!("UploadPartCopy {from} -> {key} #{number}");
        let source = self.copy_source(from);
        let bytes = format!("bytes={}-{}", range.0, range.1.saturating_sub(1));
        let req = self
            .client()
            .upload_part_copy()
            .bucket(self.bucket())
            .key(key)
            .upload_id(&upload.0)
            .part_number(number as i32)
            .copy_source(&source)
            .copy_source_range(&bytes);
        let out = send_within!(self, req, COPY_WORK, &operation)?;
        let result = out.copy_part_result();
        Ok(Written {
            etag: result.and_then(|r| r.e_tag()).map(str::to_string),
            checksums: result.map(|r| checksums!(r, None)).unwrap_or_default(),
        })
    }
}

//! The S3 front's multipart operations: create, upload part (also by copy), complete,
//! abort, list parts and uploads, each over the sealed scheme of
//! [`crate::objects::Objects::create_upload`] and friends.

use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CopyPartResult, CopySource, CreateMultipartUploadInput,
    CreateMultipartUploadOutput, ListMultipartUploadsInput, ListMultipartUploadsOutput,
    ListPartsInput, ListPartsOutput, MultipartUpload, Part, Timestamp, UploadPartCopyInput,
    UploadPartCopyOutput, UploadPartInput, UploadPartOutput,
};

use super::{Incoming3, body_checks, etag_dto, plain_body, sealed_metadata};
use crate::error::{Error, Result};
use crate::objects::{Objects, RangeSpec};
use crate::routes::RESERVED_PREFIX;
use crate::store::Store;

fn part_number(n: i32) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::BadRequest(format!("part number {n}")))
}

pub(crate) async fn create(
    objects: &Objects,
    i: CreateMultipartUploadInput,
) -> Result<CreateMultipartUploadOutput> {
    if i.sse_customer_algorithm.is_some() || i.server_side_encryption.is_some() {
        return Err(Error::NotImplemented(
            "server-side encryption options (the gateway already seals every object)".into(),
        ));
    }
    let metadata = sealed_metadata(Incoming3 {
        content_type: i.content_type,
        cache_control: i.cache_control,
        content_disposition: i.content_disposition,
        content_encoding: i.content_encoding,
        content_language: i.content_language,
        metadata: i.metadata,
    })?;
    let id = objects.create_upload(&i.bucket, &i.key, &metadata).await?;
    Ok(CreateMultipartUploadOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(id),
        ..Default::default()
    })
}

pub(crate) async fn upload_part(
    objects: &Objects,
    i: UploadPartInput,
    trailers: Option<s3s::TrailingHeaders>,
    body_idle: std::time::Duration,
) -> Result<UploadPartOutput> {
    if i.sse_customer_algorithm.is_some() {
        return Err(Error::NotImplemented("SSE-C".into()));
    }
    let body = i.body.ok_or(Error::IncompleteBody)?;
    let len = i
        .content_length
        .and_then(|n| u64::try_from(n).ok())
        .ok_or(Error::LengthRequired)?;
    let expected = s3s::dto::Checksum {
        checksum_crc32: i.checksum_crc32,
        checksum_crc32c: i.checksum_crc32c,
        checksum_sha1: i.checksum_sha1,
        checksum_sha256: i.checksum_sha256,
        checksum_crc64nvme: i.checksum_crc64nvme,
        ..Default::default()
    };
    let (checks, _) = body_checks(
        i.content_md5.as_deref(),
        expected,
        i.checksum_algorithm.as_ref(),
        trailers,
    )?;
    let etag = objects
        .upload_part(
            &i.bucket,
            &i.key,
            &i.upload_id,
            part_number(i.part_number)?,
            len,
            plain_body(body, body_idle),
            checks,
        )
        .await?;
    Ok(UploadPartOutput {
        e_tag: etag_dto(etag.as_ref()),
        ..Default::default()
    })
}

pub(crate) async fn upload_part_copy(
    objects: &Objects,
    i: UploadPartCopyInput,
) -> Result<UploadPartCopyOutput> {
    let CopySource::Bucket {
        bucket: src_bucket,
        key: src_key,
        version_id,
    } = &i.copy_source
    else {
        return Err(Error::NotImplemented("access-point copy sources".into()));
    };
    if version_id.is_some() {
        return Err(Error::NotImplemented("versioning".into()));
    }
    let range = match &i.copy_source_range {
        Some(r) => RangeSpec::parse(r)?,
        None => None,
    };
    let got = objects.get(src_bucket, src_key, range).await?;
    let len = got.range.as_ref().map_or(got.info.len, |r| r.end - r.start);
    let failure = got.failure.clone();
    let etag = objects
        .upload_part(
            &i.bucket,
            &i.key,
            &i.upload_id,
            part_number(i.part_number)?,
            len,
            got.body,
            crate::codec::Checks::default(),
        )
        .await
        .map_err(|e| failure.take().unwrap_or(e))?;
    Ok(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: etag_dto(etag.as_ref()),
            last_modified: Some(Timestamp::from(time::OffsetDateTime::now_utc())),
            ..Default::default()
        }),
        ..Default::default()
    })
}

pub(crate) async fn complete(
    objects: &Objects,
    i: CompleteMultipartUploadInput,
) -> Result<CompleteMultipartUploadOutput> {
    let parts = i
        .multipart_upload
        .and_then(|m| m.parts)
        .ok_or_else(|| Error::BadRequest("MalformedXML: no parts".into()))?;
    let list = parts
        .into_iter()
        .map(|p| {
            let n = p
                .part_number
                .ok_or_else(|| Error::BadRequest("a part without a PartNumber".into()))?;
            Ok((part_number(n)?, p.e_tag.map(|e| e.value().to_owned())))
        })
        .collect::<Result<Vec<_>>>()?;
    let etag = objects
        .complete_upload(&i.bucket, &i.key, &i.upload_id, &list)
        .await?;
    Ok(CompleteMultipartUploadOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        e_tag: etag_dto(etag.as_ref()),
        ..Default::default()
    })
}

pub(crate) async fn abort(
    objects: &Objects,
    i: AbortMultipartUploadInput,
) -> Result<AbortMultipartUploadOutput> {
    objects
        .abort_upload(&i.bucket, &i.key, &i.upload_id)
        .await?;
    Ok(AbortMultipartUploadOutput::default())
}

pub(crate) async fn list_parts(objects: &Objects, i: ListPartsInput) -> Result<ListPartsOutput> {
    let marker = u32::try_from(i.part_number_marker.unwrap_or(0).max(0)).unwrap_or(0);
    let max = usize::try_from(i.max_parts.unwrap_or(1000).clamp(1, 1000)).unwrap_or(1000);
    let all = objects
        .list_upload_parts(&i.bucket, &i.key, &i.upload_id)
        .await?;
    let rest: Vec<_> = all.into_iter().filter(|(n, _, _)| *n > marker).collect();
    let truncated = rest.len() > max;
    let page: Vec<Part> = rest
        .into_iter()
        .take(max)
        .map(|(n, size, etag)| Part {
            part_number: i32::try_from(n).ok(),
            size: i64::try_from(size).ok(),
            e_tag: etag_dto(Some(&etag)),
            ..Default::default()
        })
        .collect();
    let next = page.last().and_then(|p| p.part_number);
    Ok(ListPartsOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(i.upload_id),
        max_parts: i32::try_from(max).ok(),
        part_number_marker: i.part_number_marker,
        is_truncated: Some(truncated),
        next_part_number_marker: if truncated { next } else { None },
        parts: Some(page),
        ..Default::default()
    })
}

pub(crate) async fn list_uploads(
    objects: &Objects,
    i: ListMultipartUploadsInput,
) -> Result<ListMultipartUploadsOutput> {
    if !objects.routes().serves_bucket(&i.bucket) {
        return Err(Error::NoRoute {
            bucket: i.bucket,
            key: String::new(),
        });
    }
    let Store::S3(s3) = objects.store() else {
        return Err(Error::NotImplemented(
            "multipart uploads need an S3 upstream".into(),
        ));
    };
    let page = s3
        .list_uploads(&i.bucket, i.prefix.as_deref(), None)
        .await?;
    let truncated = page.truncated;
    let uploads = page
        .uploads
        .into_iter()
        .filter(|u| !u.key.starts_with(RESERVED_PREFIX))
        .map(|u| MultipartUpload {
            key: Some(u.key),
            upload_id: Some(u.upload_id),
            ..Default::default()
        })
        .collect();
    Ok(ListMultipartUploadsOutput {
        bucket: Some(i.bucket),
        prefix: i.prefix,
        is_truncated: Some(truncated),
        uploads: Some(uploads),
        ..Default::default()
    })
}

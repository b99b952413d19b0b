//! The S3 front: the S3 object API on `s3s` (request parsing, SigV4 header and presigned
//! verification against gateway-issued keys, aws-chunked bodies, XML errors), with every
//! operation given plaintext semantics over the sealed store. Operations not listed in
//! `docs/GATEWAY.md` answer `NotImplemented` (s3s's default), never a plaintext
//! pass-through.

mod checks;
mod list;
mod multipart;

use std::convert::Infallible;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use s3s::dto::{
    CopyObjectInput, CopyObjectOutput, CopyObjectResult, CopySource, DeleteObjectInput,
    DeleteObjectOutput, DeleteObjectsInput, DeleteObjectsOutput, DeletedObject, ETag,
    ETagCondition, GetObjectInput, GetObjectOutput, HeadObjectInput, HeadObjectOutput,
    PutObjectInput, PutObjectOutput, StreamingBlob, Timestamp, TimestampFormat,
};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use crate::codec::Checks;
use crate::config::{S3Front, read_secret_lines};
use crate::error::{Error, Result};
use crate::meta;
use crate::metrics::Metrics;
use crate::objects::{GetObject, ObjectInfo, Objects, PutObject, RangeSpec};
use crate::store::BodyStream;

/// The gateway's `s3s` implementation.
pub(crate) struct S3Gateway {
    objects: Arc<Objects>,
    /// How long an upload body may send nothing before the request fails.
    body_idle: std::time::Duration,
}

/// An S3 error for a gateway error: the S3 code, the HTTP status, a message.
pub(crate) fn s3_error(e: &Error) -> S3Error {
    let code = match e {
        Error::NotFound => S3ErrorCode::NoSuchKey,
        Error::NoRoute { .. } | Error::Denied { .. } | Error::Unauthenticated => {
            S3ErrorCode::AccessDenied
        }
        Error::BadRequest(_) => S3ErrorCode::InvalidRequest,
        Error::BadDigest(_) => S3ErrorCode::BadDigest,
        Error::IncompleteBody => S3ErrorCode::IncompleteBody,
        Error::LengthRequired => S3ErrorCode::MissingContentLength,
        Error::RangeNotSatisfiable { .. } => S3ErrorCode::InvalidRange,
        Error::TooLarge(_) => S3ErrorCode::EntityTooLarge,
        Error::NotImplemented(_) => S3ErrorCode::NotImplemented,
        Error::PreconditionFailed => S3ErrorCode::PreconditionFailed,
        Error::NotModified => S3ErrorCode::NotModified,
        Error::CustodianUnavailable(_) | Error::UpstreamUnavailable(_) => {
            S3ErrorCode::ServiceUnavailable
        }
        Error::StoreRefused { code, .. } => {
            S3ErrorCode::from_str(code).unwrap_or(S3ErrorCode::InvalidRequest)
        }
        other => S3ErrorCode::from_str(other.code()).unwrap_or(S3ErrorCode::InternalError),
    };
    let mut err = S3Error::with_message(code, e.to_string());
    err.set_status_code(e.status());
    err
}

fn internal(e: Error) -> S3Error {
    if e.status().is_server_error() {
        tracing::warn!(error = %e, "s3 request failed");
    } else {
        tracing::info!(error = %e, "s3 request refused");
    }
    s3_error(&e)
}

/// Refuses what the gateway does not implement rather than passing it through.
fn refuse_sse(customer: bool, sse: bool) -> S3Result<()> {
    if customer || sse {
        return Err(s3_error(&Error::NotImplemented(
            "server-side encryption options (the gateway already seals every object)".into(),
        )));
    }
    Ok(())
}

pub(crate) fn etag_dto(etag: Option<&String>) -> Option<ETag> {
    etag.map(|e| ETag::Strong(e.trim_matches('"').to_owned()))
}

fn timestamp(http_date: Option<&String>) -> Option<Timestamp> {
    http_date.and_then(|s| Timestamp::parse(TimestampFormat::HttpDate, s).ok())
}

fn condition_matches(cond: &ETagCondition, etag: Option<&String>) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => etag.is_some_and(|have| have.trim_matches('"') == e.value()),
    }
}

fn check_conditions(
    info: &ObjectInfo,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> Result<()> {
    if let Some(c) = if_match
        && !condition_matches(c, info.etag.as_ref())
    {
        return Err(Error::PreconditionFailed);
    }
    if let Some(c) = if_none_match
        && condition_matches(c, info.etag.as_ref())
    {
        return Err(Error::NotModified);
    }
    Ok(())
}

fn range_spec(r: Option<s3s::dto::Range>) -> Option<RangeSpec> {
    r.map(|r| match r {
        s3s::dto::Range::Int {
            first,
            last: Some(l),
        } => RangeSpec::FromTo(first, l),
        s3s::dto::Range::Int { first, last: None } => RangeSpec::From(first),
        s3s::dto::Range::Suffix { length } => RangeSpec::Suffix(length),
    })
}

/// Sealed metadata → the representation fields and user metadata of a response.
struct Representation {
    content_type: Option<String>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    metadata: Option<s3s::dto::Metadata>,
}

fn representation(m: &custodia_envelope::Metadata) -> Representation {
    let get = |k: &str| m.get(k).map(str::to_owned);
    let user: s3s::dto::Metadata = meta::user_metadata(m).into_iter().collect();
    Representation {
        content_type: get("content-type"),
        cache_control: get("cache-control"),
        content_disposition: get("content-disposition"),
        content_encoding: get("content-encoding"),
        content_language: get("content-language"),
        metadata: (!user.is_empty()).then_some(user),
    }
}

/// Request fields → sealed metadata.
pub(crate) struct Incoming3 {
    content_type: Option<String>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    metadata: Option<s3s::dto::Metadata>,
}

pub(crate) fn sealed_metadata(i: Incoming3) -> Result<custodia_envelope::Metadata> {
    let mut m = custodia_envelope::Metadata::new();
    let pairs = [
        ("content-type", i.content_type),
        ("cache-control", i.cache_control),
        ("content-disposition", i.content_disposition),
        ("content-encoding", i.content_encoding),
        ("content-language", i.content_language),
    ];
    for (k, v) in pairs {
        if let Some(v) = v {
            m.insert(k, &v)
                .map_err(|e| Error::BadRequest(format!("{k}: {e}")))?;
        }
    }
    for (k, v) in i.metadata.unwrap_or_default() {
        meta::insert_user(&mut m, &k, &v)?;
    }
    Ok(m)
}

/// The checks of a body: `Content-MD5` (also returned as metadata to seal) and the
/// flexible checksums in headers or trailers.
pub(crate) fn body_checks(
    content_md5: Option<&str>,
    expected: s3s::dto::Checksum,
    algorithm: Option<&s3s::dto::ChecksumAlgorithm>,
    trailers: Option<s3s::TrailingHeaders>,
) -> Result<(Checks, custodia_envelope::Metadata)> {
    let (md5_meta, mut checks) = match content_md5 {
        Some(md5) => {
            let mut h = http::HeaderMap::new();
            h.insert(
                "content-md5",
                md5.parse()
                    .map_err(|_| Error::BadRequest("bad Content-MD5".into()))?,
            );
            meta::from_headers(&h)?
        }
        None => (custodia_envelope::Metadata::new(), Checks::default()),
    };
    if let Some(c) = checks::S3Checks::new(expected, algorithm, trailers)? {
        checks = checks.with(Box::new(c));
    }
    Ok((checks, md5_meta))
}

fn blob(body: BodyStream) -> StreamingBlob {
    StreamingBlob::wrap(sync_wrapper::SyncStream::new(body))
}

/// An upload body as the gateway reads it: failing after `idle` without bytes.
pub(crate) fn plain_body(body: StreamingBlob, idle: std::time::Duration) -> BodyStream {
    crate::body_idle::idle_timeout(
        body.map_err(|e| std::io::Error::other(e.to_string()))
            .boxed(),
        idle,
    )
}

impl S3Gateway {
    async fn get_inner(&self, input: GetObjectInput) -> Result<GetObjectOutput> {
        let got = self
            .objects
            .get(&input.bucket, &input.key, range_spec(input.range))
            .await?
            .first_verified()
            .await?;
        check_conditions(
            &got.info,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
        )?;
        let GetObject {
            info,
            range,
            body,
            failure,
        } = got;
        let len = range.as_ref().map_or(info.len, |r| r.end - r.start);
        let bucket = input.bucket.clone();
        let key = input.key.clone();
        let body = body
            .inspect_err(move |e| {
                let cause = failure
                    .take()
                    .map_or_else(|| e.to_string(), |c| c.to_string());
                tracing::warn!(bucket, key, cause, "s3 GET aborted mid-body");
            })
            .boxed();
        let r = representation(&info.metadata);
        Ok(GetObjectOutput {
            body: Some(blob(body)),
            content_length: i64::try_from(len).ok(),
            content_range: range
                .map(|rg| format!("bytes {}-{}/{}", rg.start, rg.end - 1, info.len)),
            accept_ranges: Some("bytes".into()),
            e_tag: etag_dto(info.etag.as_ref()),
            last_modified: timestamp(info.last_modified.as_ref()),
            content_type: r.content_type,
            cache_control: r.cache_control,
            content_disposition: r.content_disposition,
            content_encoding: r.content_encoding,
            content_language: r.content_language,
            metadata: r.metadata,
            ..Default::default()
        })
    }

    async fn put_inner(
        &self,
        input: PutObjectInput,
        trailers: Option<s3s::TrailingHeaders>,
    ) -> Result<PutObjectOutput> {
        if input.sse_customer_algorithm.is_some()
            || input.server_side_encryption.is_some()
            || input.ssekms_key_id.is_some()
        {
            return Err(Error::NotImplemented(
                "server-side encryption options (the gateway already seals every object)".into(),
            ));
        }
        let body = input.body.ok_or(Error::IncompleteBody)?;
        let len = input
            .content_length
            .map(|n| u64::try_from(n).map_err(|_| Error::BadRequest("negative length".into())))
            .transpose()?;
        let mut metadata = sealed_metadata(Incoming3 {
            content_type: input.content_type,
            cache_control: input.cache_control,
            content_disposition: input.content_disposition,
            content_encoding: input.content_encoding,
            content_language: input.content_language,
            metadata: input.metadata,
        })?;
        let expected = s3s::dto::Checksum {
            checksum_crc32: input.checksum_crc32,
            checksum_crc32c: input.checksum_crc32c,
            checksum_sha1: input.checksum_sha1,
            checksum_sha256: input.checksum_sha256,
            checksum_crc64nvme: input.checksum_crc64nvme,
            ..Default::default()
        };
        let (checks, md5_meta) = body_checks(
            input.content_md5.as_deref(),
            expected,
            input.checksum_algorithm.as_ref(),
            trailers,
        )?;
        for (k, v) in md5_meta.iter() {
            metadata
                .insert(k, v)
                .map_err(|e| Error::TooLarge(format!("metadata: {e}")))?;
        }
        let etag = self
            .objects
            .put(PutObject {
                bucket: input.bucket,
                key: input.key,
                len,
                body: plain_body(body, self.body_idle),
                metadata,
                checks,
            })
            .await?;
        Ok(PutObjectOutput {
            e_tag: etag_dto(etag.as_ref()),
            ..Default::default()
        })
    }

    async fn copy_inner(&self, input: CopyObjectInput) -> Result<CopyObjectOutput> {
        let CopySource::Bucket {
            bucket: src_bucket,
            key: src_key,
            version_id,
        } = &input.copy_source
        else {
            return Err(Error::NotImplemented("access-point copy sources".into()));
        };
        if version_id.is_some() {
            return Err(Error::NotImplemented("versioning".into()));
        }
        let got = self.objects.get(src_bucket, src_key, None).await?;
        check_conditions(
            &got.info,
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
        )
        .map_err(|e| match e {
            Error::NotModified => Error::PreconditionFailed,
            other => other,
        })?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == "REPLACE");
        let metadata = if replace {
            sealed_metadata(Incoming3 {
                content_type: input.content_type,
                cache_control: input.cache_control,
                content_disposition: input.content_disposition,
                content_encoding: input.content_encoding,
                content_language: input.content_language,
                metadata: input.metadata,
            })?
        } else {
            got.info.metadata.clone()
        };
        let failure = got.failure.clone();
        let etag = self
            .objects
            .put(PutObject {
                bucket: input.bucket,
                key: input.key,
                len: Some(got.info.len),
                body: got.body,
                metadata,
                checks: Checks::default(),
            })
            .await
            .map_err(|e| failure.take().unwrap_or(e))?;
        Ok(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: etag_dto(etag.as_ref()),
                last_modified: Some(Timestamp::from(time::OffsetDateTime::now_utc())),
                ..Default::default()
            }),
            ..Default::default()
        })
    }
}

#[async_trait::async_trait]
impl S3 for S3Gateway {
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let trailers = req.trailing_headers.clone();
        self.put_inner(req.input, trailers)
            .await
            .map(S3Response::new)
            .map_err(internal)
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let i = &req.input;
        refuse_sse(i.sse_customer_algorithm.is_some(), false)?;
        if i.version_id.is_some() || i.part_number.is_some() {
            return Err(s3_error(&Error::NotImplemented(
                "versionId and partNumber reads".into(),
            )));
        }
        self.get_inner(req.input)
            .await
            .map(S3Response::new)
            .map_err(internal)
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let i = req.input;
        refuse_sse(i.sse_customer_algorithm.is_some(), false)?;
        if i.version_id.is_some() || i.part_number.is_some() {
            return Err(s3_error(&Error::NotImplemented(
                "versionId and partNumber reads".into(),
            )));
        }
        let info = self
            .objects
            .head(&i.bucket, &i.key)
            .await
            .map_err(internal)?;
        check_conditions(&info, i.if_match.as_ref(), i.if_none_match.as_ref()).map_err(internal)?;
        let r = representation(&info.metadata);
        Ok(S3Response::new(HeadObjectOutput {
            content_length: i64::try_from(info.len).ok(),
            accept_ranges: Some("bytes".into()),
            e_tag: etag_dto(info.etag.as_ref()),
            last_modified: timestamp(info.last_modified.as_ref()),
            content_type: r.content_type,
            cache_control: r.cache_control,
            content_disposition: r.content_disposition,
            content_encoding: r.content_encoding,
            content_language: r.content_language,
            metadata: r.metadata,
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let i = req.input;
        if i.version_id.is_some() {
            return Err(s3_error(&Error::NotImplemented("versioning".into())));
        }
        match self.objects.delete(&i.bucket, &i.key).await {
            Ok(()) | Err(Error::NotFound) => Ok(S3Response::new(DeleteObjectOutput::default())),
            Err(e) => Err(internal(e)),
        }
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let i = req.input;
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for o in i.delete.objects {
            match self.objects.delete(&i.bucket, &o.key).await {
                Ok(()) | Err(Error::NotFound) => deleted.push(DeletedObject {
                    key: Some(o.key),
                    ..Default::default()
                }),
                Err(e) => {
                    let s3 = s3_error(&e);
                    errors.push(s3s::dto::Error {
                        key: Some(o.key),
                        code: Some(s3.code().as_str().to_owned()),
                        message: Some(e.to_string()),
                        ..Default::default()
                    });
                }
            }
        }
        let quiet = i.delete.quiet.unwrap_or(false);
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: (!quiet).then_some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let i = req.input;
        refuse_sse(
            i.sse_customer_algorithm.is_some() || i.copy_source_sse_customer_algorithm.is_some(),
            i.server_side_encryption.is_some(),
        )?;
        self.copy_inner(i)
            .await
            .map(S3Response::new)
            .map_err(internal)
    }

    async fn list_objects(
        &self,
        req: S3Request<s3s::dto::ListObjectsInput>,
    ) -> S3Result<S3Response<s3s::dto::ListObjectsOutput>> {
        list::list_v1(&self.objects, req.input)
            .await
            .map(S3Response::new)
            .map_err(internal)
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<s3s::dto::ListObjectsV2Input>,
    ) -> S3Result<S3Response<s3s::dto::ListObjectsV2Output>> {
        list::list_v2(&self.objects, req.input)
            .await
            .map(S3Response::new)
            .map_err(internal)
    }

    async fn list_buckets(
        &self,
        _req: S3Request<s3s::dto::ListBucketsInput>,
    ) -> S3Result<S3Response<s3s::dto::ListBucketsOutput>> {
        list::list_buckets(&self.objects)
            .await
            .map(S3Response::new)
            .map_err(internal)
    }

    async fn head_bucket(
        &self,
        req: S3Request<s3s::dto::HeadBucketInput>,
    ) -> S3Result<S3Response<s3s::dto::HeadBucketOutput>> {
        list::bucket_op(&self.objects, &http::Method::HEAD, &req.input.bucket)
            .await
            .map_err(internal)?;
        Ok(S3Response::new(s3s::dto::HeadBucketOutput::default()))
    }

    async fn create_bucket(
        &self,
        req: S3Request<s3s::dto::CreateBucketInput>,
    ) -> S3Result<S3Response<s3s::dto::CreateBucketOutput>> {
        list::bucket_op(&self.objects, &http::Method::PUT, &req.input.bucket)
            .await
            .map_err(internal)?;
        Ok(S3Response::new(s3s::dto::CreateBucketOutput::default()))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<s3s::dto::DeleteBucketInput>,
    ) -> S3Result<S3Response<s3s::dto::DeleteBucketOutput>> {
        list::bucket_op(&self.objects, &http::Method::DELETE, &req.input.bucket)
            .await
            .map_err(internal)?;
        Ok(S3Response::new(s3s::dto::DeleteBucketOutput::default()))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<s3s::dto::CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<s3s::dto::CreateMultipartUploadOutput>> {
        multipart::create(&self.objects, req.input)
            .await
            .map(S3Response::new)
            .map_err(internal)
    }

    async fn upload_part(
        &self,
        req: S3Request<s3s::dto::UploadPartInput>,
    ) -> S3Result<S3Response<s3s::dto::UploadPartOutput>> {
        let trailers = req.trailing_headers.clone();
        multipart::upload_part(&self.objects, req.input, trailers, self.body_idle)
            .await
            .map(S3Response::new)
            .map_err(internal)
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<s3s::dto::UploadPartCopyInput>,
    ) -> S3Result<S3Response<s3s::dto::UploadPartCopyOutput>> {
        multipart::upload_part_copy(&self.objects, req.input)
            .await
            .map(S3Response::new)
            .map_err(internal)
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<s3s::dto::CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<s3s::dto::CompleteMultipartUploadOutput>> {
        multipart::complete(&self.objects, req.input)
            .await
            .map(S3Response::new)
            .map_err(internal)
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<s3s::dto::AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<s3s::dto::AbortMultipartUploadOutput>> {
        multipart::abort(&self.objects, req.input)
            .await
            .map(S3Response::new)
            .map_err(internal)
    }

    async fn list_parts(
        &self,
        req: S3Request<s3s::dto::ListPartsInput>,
    ) -> S3Result<S3Response<s3s::dto::ListPartsOutput>> {
        multipart::list_parts(&self.objects, req.input)
            .await
            .map(S3Response::new)
            .map_err(internal)
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<s3s::dto::ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<s3s::dto::ListMultipartUploadsOutput>> {
        multipart::list_uploads(&self.objects, req.input)
            .await
            .map(S3Response::new)
            .map_err(internal)
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<s3s::dto::GetBucketLocationInput>,
    ) -> S3Result<S3Response<s3s::dto::GetBucketLocationOutput>> {
        list::bucket_op(&self.objects, &http::Method::HEAD, &req.input.bucket)
            .await
            .map_err(internal)?;
        Ok(S3Response::new(s3s::dto::GetBucketLocationOutput::default()))
    }
}

/// The S3 front as a hyper service: s3s behind metrics, its errors as S3 XML.
///
/// # Errors
/// [`Error::Config`] / [`Error::File`] for an unreadable access key file or bad domain.
pub fn service(
    objects: Arc<Objects>,
    front: S3Front,
    metrics: Arc<Metrics>,
    max_concurrent: usize,
    read_wait: std::time::Duration,
    body_idle: std::time::Duration,
) -> Result<
    impl hyper::service::Service<
        Request<Incoming>,
        Response = Response<s3s::Body>,
        Error = Infallible,
        Future = impl Send,
    > + Clone
    + Send
    + Sync
    + 'static,
> {
    let mut auth = s3s::auth::SimpleAuth::new();
    let mut n = 0;
    for line in read_secret_lines(&front.access_keys_file)? {
        let (ak, sk) = line.split_once(char::is_whitespace).ok_or_else(|| {
            Error::config(
                "s3.access_keys_file",
                "expected `ACCESS_KEY_ID SECRET` per line",
            )
        })?;
        auth.register(ak.to_owned(), s3s::auth::SecretKey::from(sk.trim()));
        n += 1;
    }
    if n == 0 {
        return Err(Error::config("s3.access_keys_file", "no access keys"));
    }
    let mut builder = s3s::service::S3ServiceBuilder::new(S3Gateway {
        objects: objects.clone(),
        body_idle: body_idle.max(std::time::Duration::from_secs(1)),
    });
    builder.set_auth(auth);
    if let Some(domain) = &front.domain {
        let host = s3s::host::MultiDomain::new([domain.as_str()])
            .map_err(|e| Error::config("s3.domain", e.to_string()))?;
        builder.set_host(host);
    }
    let s3 = builder.build();
    let slots = Arc::new(crate::slots::Slots::new(max_concurrent, read_wait));
    Ok(hyper::service::service_fn(move |req: Request<Incoming>| {
        let s3 = s3.clone();
        let slots = slots.clone();
        let metrics = metrics.clone();
        let objects = objects.clone();
        async move {
            let started = Instant::now();
            let _in_flight = metrics.start();
            let op = match *req.method() {
                http::Method::PUT => "put",
                http::Method::GET => "get",
                http::Method::HEAD => "head",
                http::Method::DELETE => "delete",
                http::Method::POST => "post",
                _ => "other",
            };
            // Bucket names cannot start with '_': these never shadow an S3 request.
            if req.method() == http::Method::GET {
                match req.uri().path() {
                    "/_custodia/metrics" => {
                        let body = metrics.render(objects.client().stats());
                        return Ok(Response::new(s3s::Body::from(body)));
                    }
                    "/_custodia/healthz" => {
                        return Ok(Response::new(s3s::Body::from("ok\n".to_owned())));
                    }
                    _ => {}
                }
            }
            // A 100-continue request with an empty body is answered without hyper ever
            // sending `100 Continue`; botocore then misreads the next response on that
            // connection (a 60 s stall). Closing the connection after it avoids that.
            let expect_empty = req
                .headers()
                .get(http::header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
                && req
                    .headers()
                    .get(http::header::CONTENT_LENGTH)
                    .is_some_and(|v| v.as_bytes() == b"0");
            // Browser form uploads (POST Object) are not served, and s3s would read their
            // form fields before it checks any signature: refuse them before they take a
            // slot or a byte of body is read.
            if req.method() == http::Method::POST
                && req
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| {
                        v.trim_start()
                            .to_ascii_lowercase()
                            .starts_with("multipart/form-data")
                    })
            {
                let mut r = Response::new(s3s::Body::from(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NotImplemented</Code>\
                     <Message>POST Object (form uploads) is not supported</Message></Error>"
                        .to_owned(),
                ));
                *r.status_mut() = StatusCode::NOT_IMPLEMENTED;
                r.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
                metrics.request("s3", op, 501, started.elapsed().as_secs_f64());
                return Ok(r);
            }
            let method = req.method().clone();
            let Some(slot) = slots.acquire(&method).await else {
                // As S3 answers when it is overloaded: retry later.
                let mut r = Response::new(s3s::Body::from(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                     <Message>no request slot freed up in time</Message></Error>"
                        .to_owned(),
                ));
                *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                r.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("5"),
                );
                return Ok(r);
            };
            let served = hyper::service::Service::call(&s3, req).await;
            drop(slot);
            let mut resp = match served {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = ?e, "s3 request failed");
                    let mut r = Response::new(s3s::Body::empty());
                    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                    r
                }
            };
            if expect_empty {
                resp.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            metrics.request(
                "s3",
                op,
                resp.status().as_u16(),
                started.elapsed().as_secs_f64(),
            );
            Ok::<_, Infallible>(resp)
        }
    }))
}

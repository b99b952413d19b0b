//! An S3-compatible upstream store (AWS S3, Garage, Ceph RGW, MinIO, s3s-fs): path-style
//! requests, each re-signed (SigV4, `UNSIGNED-PAYLOAD`) with the gateway's own credentials.
//! Client credentials never reach the store.

use std::ops::Range;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{HeaderMap, Method, Request, StatusCode, header};

use super::{BodyStream, Fetched, Http, Stored, UpBody, encode_path, fetched, send_error};
use crate::error::{Error, Result};

/// An S3 store.
pub struct S3Store {
    endpoint: String,
    region: String,
    identity: Identity,
    http: Http,
}

impl S3Store {
    /// A store at `endpoint` (`http://host:port`), signing for `region` with the access key
    /// pair.
    #[must_use]
    pub fn new(endpoint: &str, region: &str, access_key: &str, secret_key: &str) -> Self {
        let creds = Credentials::new(access_key, secret_key, None, None, "custodia-gateway");
        Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            region: region.to_owned(),
            identity: creds.into(),
            http: super::http_client(),
        }
    }

    /// A signed request for `bucket`/`key` (an empty key addresses the bucket) with `query`
    /// (already encoded, without `?`) and `headers`.
    pub(crate) fn signed(
        &self,
        method: &Method,
        bucket: &str,
        key: &str,
        query: &str,
        headers: HeaderMap,
        body: UpBody,
    ) -> Result<Request<UpBody>> {
        let mut path = format!("/{}", encode_path(bucket));
        if !key.is_empty() {
            path.push('/');
            path.push_str(&encode_path(key));
        }
        let uri = if query.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{query}", self.endpoint)
        };
        let mut req = Request::builder()
            .method(method.clone())
            .uri(&uri)
            .body(body)
            .map_err(|e| Error::Upstream(format!("request: {e}")))?;
        *req.headers_mut() = headers;
        let host = req
            .uri()
            .authority()
            .map(ToString::to_string)
            .ok_or_else(|| Error::Upstream("endpoint without a host".into()))?;
        req.headers_mut().insert(
            header::HOST,
            host.parse()
                .map_err(|_| Error::Upstream("endpoint host is not a valid header".into()))?,
        );
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| Error::Upstream(format!("signing: {e}")))?
            .into();
        let pairs: Vec<(&str, &str)> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
            .collect();
        let signable = SignableRequest::new(
            method.as_str(),
            uri.as_str(),
            pairs.into_iter(),
            SignableBody::UnsignedPayload,
        )
        .map_err(|e| Error::Upstream(format!("signing: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| Error::Upstream(format!("signing: {e}")))?
            .into_parts();
        instructions.apply_to_request_http1x(&mut req);
        Ok(req)
    }

    /// Sends a signed request.
    pub(crate) async fn send(
        &self,
        req: Request<UpBody>,
    ) -> Result<http::Response<hyper::body::Incoming>> {
        self.http.request(req).await.map_err(|e| send_error(&e))
    }

    pub(crate) async fn put(
        &self,
        bucket: &str,
        key: &str,
        len: u64,
        body: BodyStream,
    ) -> Result<Stored> {
        self.put_if(bucket, key, len, body, None).await
    }

    /// Stores `body` (exactly `len` bytes) at `bucket`/`key` only if the object there still
    /// has the store's entity tag `if_match` (`If-Match`, RFC 9110 §13.1.1; S3 conditional
    /// writes). A changed or deleted object is left alone: [`Error::PreconditionFailed`].
    ///
    /// # Errors
    /// [`Error::PreconditionFailed`], [`Error::NotFound`], store errors.
    pub async fn put_if_match(
        &self,
        bucket: &str,
        key: &str,
        len: u64,
        body: BodyStream,
        if_match: &str,
    ) -> Result<Stored> {
        self.put_if(bucket, key, len, body, Some(if_match)).await
    }

    async fn put_if(
        &self,
        bucket: &str,
        key: &str,
        len: u64,
        body: BodyStream,
        if_match: Option<&str>,
    ) -> Result<Stored> {
        let mut headers = HeaderMap::new();
        if let Some(etag) = if_match {
            headers.insert(
                header::IF_MATCH,
                etag.parse()
                    .map_err(|_| Error::Upstream("the store sent an unusable ETag".into()))?,
            );
        }
        headers.insert(header::CONTENT_LENGTH, len.into());
        headers.insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/octet-stream"),
        );
        let req = self.signed(
            &Method::PUT,
            bucket,
            key,
            "",
            headers,
            UpBody::new(body, Some(len)),
        )?;
        let resp = self.send(req).await?;
        match resp.status() {
            StatusCode::OK => Ok(Stored {
                etag: super::header_string(resp.headers(), header::ETAG),
            }),
            StatusCode::NOT_FOUND => Err(Error::NotFound),
            StatusCode::PRECONDITION_FAILED => Err(Error::PreconditionFailed),
            s => Err(super::upstream_status(s, resp).await),
        }
    }

    /// Fetches `bucket`/`key` (or its stored bytes `range`).
    ///
    /// # Errors
    /// As [`super::Store::get`].
    pub async fn get(&self, bucket: &str, key: &str, range: Option<Range<u64>>) -> Result<Fetched> {
        let mut headers = HeaderMap::new();
        if let Some(r) = &range {
            let v = format!("bytes={}-{}", r.start, r.end.saturating_sub(1));
            headers.insert(
                header::RANGE,
                v.parse()
                    .map_err(|_| Error::Upstream("range header".into()))?,
            );
        }
        let req = self.signed(&Method::GET, bucket, key, "", headers, UpBody::empty())?;
        let resp = self.send(req).await?;
        fetched(resp, range).await
    }

    /// Deletes `bucket`/`key` (idempotent on S3).
    ///
    /// # Errors
    /// Store errors.
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        let req = self.signed(
            &Method::DELETE,
            bucket,
            key,
            "",
            HeaderMap::new(),
            UpBody::empty(),
        )?;
        let resp = self.send(req).await?;
        match resp.status() {
            StatusCode::OK | StatusCode::NO_CONTENT => Ok(()),
            StatusCode::NOT_FOUND => Err(Error::NotFound),
            s => Err(super::upstream_status(s, resp).await),
        }
    }
}

/// One page of an upstream listing.
#[derive(Debug, Default)]
pub struct ListPage {
    /// Objects (stored sizes and the store's ETags).
    pub objects: Vec<s3s::dto::Object>,
    /// Common prefixes (with a delimiter).
    pub prefixes: Vec<String>,
    /// Whether more results follow.
    pub truncated: bool,
    /// V2: the token for the next page.
    pub next_token: Option<String>,
    /// V1: the marker for the next page.
    pub next_marker: Option<String>,
}

/// Parameters of a listing (V1 uses `marker`, V2 `token` and `start_after`).
#[derive(Debug, Default, Clone)]
pub struct ListParams {
    /// Key prefix.
    pub prefix: Option<String>,
    /// Delimiter (an empty one is treated as absent, as AWS does).
    pub delimiter: Option<String>,
    /// Page size.
    pub max_keys: Option<i32>,
    /// V2 continuation token.
    pub token: Option<String>,
    /// V2 start-after.
    pub start_after: Option<String>,
    /// V1 marker.
    pub marker: Option<String>,
}

fn query_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A canonical query string (sorted pairs, RFC 3986 encoding).
pub(crate) fn canonical_query(pairs: Vec<(&str, String)>) -> String {
    query(pairs)
}

fn query(mut pairs: Vec<(&str, String)>) -> String {
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", query_encode(k), query_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn xml_error(e: &dyn std::fmt::Display) -> Error {
    Error::Upstream(format!("malformed listing: {e}"))
}

impl S3Store {
    pub(crate) async fn read_body(
        resp: http::Response<hyper::body::Incoming>,
        limit: usize,
    ) -> Result<bytes::Bytes> {
        Self::body_of(resp, limit).await
    }

    async fn body_of(
        resp: http::Response<hyper::body::Incoming>,
        limit: usize,
    ) -> Result<bytes::Bytes> {
        use http_body_util::BodyExt as _;
        http_body_util::Limited::new(resp.into_body(), limit)
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .map_err(|e| Error::UpstreamUnavailable(format!("reading a response: {e}")))
    }

    /// A request without a body; the response if its status is 2xx.
    pub(crate) async fn call(
        &self,
        method: &Method,
        bucket: &str,
        key: &str,
        query: &str,
        headers: HeaderMap,
    ) -> Result<http::Response<hyper::body::Incoming>> {
        let req = self.signed(method, bucket, key, query, headers, UpBody::empty())?;
        let resp = self.send(req).await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        Err(match status {
            StatusCode::NOT_FOUND if key.is_empty() => Error::Upstream("NoSuchBucket".into()),
            StatusCode::NOT_FOUND => Error::NotFound,
            s => super::upstream_status(s, resp).await,
        })
    }

    /// Lists objects (V2 when `v2`, else V1).
    ///
    /// # Errors
    /// Store errors; [`Error::Upstream`] for a malformed listing.
    pub async fn list(&self, bucket: &str, p: &ListParams, v2: bool) -> Result<ListPage> {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if v2 {
            pairs.push(("list-type", "2".into()));
        }
        if let Some(v) = &p.prefix {
            pairs.push(("prefix", v.clone()));
        }
        if let Some(v) = p.delimiter.as_ref().filter(|d| !d.is_empty()) {
            pairs.push(("delimiter", v.clone()));
        }
        if let Some(v) = p.max_keys {
            pairs.push(("max-keys", v.to_string()));
        }
        if let Some(v) = &p.token {
            pairs.push(("continuation-token", v.clone()));
        }
        if let Some(v) = &p.start_after {
            pairs.push(("start-after", v.clone()));
        }
        if let Some(v) = &p.marker {
            pairs.push(("marker", v.clone()));
        }
        let resp = self
            .call(&Method::GET, bucket, "", &query(pairs), HeaderMap::new())
            .await?;
        let body = Self::body_of(resp, 64 << 20).await?;
        parse_list(&body)
    }

    /// The store's buckets.
    ///
    /// # Errors
    /// Store errors.
    pub async fn list_buckets(&self) -> Result<Vec<s3s::dto::Bucket>> {
        let req = self.signed(&Method::GET, "", "", "", HeaderMap::new(), UpBody::empty());
        // The service root: path "/" (signed() builds "/{bucket}" = "/" for an empty bucket).
        let resp = self.send(req?).await?;
        if !resp.status().is_success() {
            let s = resp.status();
            return Err(super::upstream_status(s, resp).await);
        }
        let body = Self::body_of(resp, 8 << 20).await?;
        let mut d = s3s::xml::Deserializer::new(&body);
        let mut out = Vec::new();
        d.named_element("ListAllMyBucketsResult", |d| {
            d.for_each_element(|d, x| match x {
                b"Buckets" => d.for_each_element(|d, x| match x {
                    b"Bucket" => {
                        out.push(d.content::<s3s::dto::Bucket>()?);
                        Ok(())
                    }
                    _ => Err(s3s::xml::DeError::UnexpectedTagName),
                }),
                _ => d
                    .text(|_| Ok(()))
                    .or_else(|_| d.for_each_element(|d, _| d.text(|_| Ok(())))),
            })
        })
        .map_err(|e| xml_error(&format!("{e:?}")))?;
        Ok(out)
    }

    /// Creates, deletes or checks a bucket (`PUT`, `DELETE`, `HEAD`).
    ///
    /// # Errors
    /// Store errors.
    pub async fn bucket(&self, method: &Method, bucket: &str) -> Result<()> {
        let mut headers = HeaderMap::new();
        if method == Method::PUT {
            headers.insert(header::CONTENT_LENGTH, 0u64.into());
        }
        self.call(method, bucket, "", "", headers).await.map(|_| ())
    }
}

/// Parses a `ListBucketResult` (V1 or V2) from the store.
///
/// # Errors
/// [`Error::Upstream`] for a malformed listing.
pub fn parse_listing(body: &[u8]) -> Result<ListPage> {
    parse_list(body)
}

fn parse_list(body: &[u8]) -> Result<ListPage> {
    let mut page = ListPage::default();
    let mut d = s3s::xml::Deserializer::new(body);
    d.named_element("ListBucketResult", |d| {
        d.for_each_element(|d, x| match x {
            b"Contents" => {
                page.objects.push(d.content::<s3s::dto::Object>()?);
                Ok(())
            }
            b"CommonPrefixes" => {
                let cp: s3s::dto::CommonPrefix = d.content()?;
                if let Some(p) = cp.prefix {
                    page.prefixes.push(p);
                }
                Ok(())
            }
            b"IsTruncated" => {
                page.truncated = d.content()?;
                Ok(())
            }
            b"NextContinuationToken" => {
                page.next_token = Some(d.content()?);
                Ok(())
            }
            b"NextMarker" => {
                page.next_marker = Some(d.content()?);
                Ok(())
            }
            _ => d.text(|_| Ok(())),
        })
    })
    .map_err(|e| xml_error(&format!("{e:?}")))?;
    Ok(page)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn listings_parse() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated><Contents><Key>a b</Key><LastModified>2026-11-23T01:00:00.000Z</LastModified><ETag>"abc"</ETag><Size>1040</Size><StorageClass>STANDARD</StorageClass></Contents><CommonPrefixes><Prefix>x/</Prefix></CommonPrefixes><NextContinuationToken>tok</NextContinuationToken></ListBucketResult>"#;
        let page = parse_list(xml).unwrap();
        assert_eq!(page.objects.len(), 1);
        assert_eq!(page.objects[0].key.as_deref(), Some("a b"));
        assert_eq!(page.objects[0].size, Some(1040));
        assert_eq!(page.prefixes, vec!["x/".to_owned()]);
        assert!(page.truncated);
        assert_eq!(page.next_token.as_deref(), Some("tok"));
        assert!(parse_list(b"<nope/>").is_err());
    }

    #[test]
    fn queries_are_canonical() {
        assert_eq!(
            query(vec![("prefix", "a b/".into()), ("list-type", "2".into())]),
            "list-type=2&prefix=a%20b%2F"
        );
    }
}

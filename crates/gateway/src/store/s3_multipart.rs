//! Multipart upload calls to an S3 upstream: create, upload a part, list parts, complete,
//! abort, list uploads. Part bodies are already sealed when they get here.

use http::{HeaderMap, Method, StatusCode, header};

use super::s3::S3Store;
use super::{BodyStream, UpBody};
use crate::error::{Error, Result};

/// One uploaded part as the store lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    /// Part number (1..=10000).
    pub number: u32,
    /// Stored (sealed) size.
    pub size: u64,
    /// The store's ETag of the part (some stores, e.g. s3s-fs, omit it from listings).
    pub etag: Option<String>,
}

/// One in-progress upload as the store lists it.
#[derive(Debug, Clone)]
pub struct StoredUpload {
    /// Key.
    pub key: String,
    /// Upload id.
    pub upload_id: String,
    /// When the store says it was initiated.
    pub initiated: Option<time::OffsetDateTime>,
}

/// One page of in-progress uploads.
#[derive(Debug, Clone)]
pub struct UploadPage {
    /// The uploads listed.
    pub uploads: Vec<StoredUpload>,
    /// Whether the store has more than it listed (then the page does not say which uploads
    /// are live).
    pub truncated: bool,
    /// Where the next page starts (key marker, upload id marker), when truncated.
    pub next: Option<(String, String)>,
}

/// Most pages of uploads one full listing reads (1,000 uploads a page).
const MAX_UPLOAD_PAGES: usize = 1000;

fn xml_err(e: &dyn std::fmt::Debug) -> Error {
    Error::Upstream(format!("malformed multipart response: {e:?}"))
}

fn upload_query(upload_id: &str, extra: &[(&str, String)]) -> String {
    let mut pairs: Vec<(&str, String)> = extra.to_vec();
    pairs.push(("uploadId", upload_id.to_owned()));
    super::s3::canonical_query(pairs)
}

impl S3Store {
    /// Starts an upload; returns the store's upload id.
    ///
    /// # Errors
    /// Store errors.
    pub async fn create_multipart(&self, bucket: &str, key: &str) -> Result<String> {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/octet-stream"),
        );
        let resp = self.call(&Method::POST, bucket, key, "uploads=", h).await?;
        let body = Self::read_body(resp, 1 << 20).await?;
        let mut id = None;
        let mut d = s3s::xml::Deserializer::new(&body);
        d.named_element("InitiateMultipartUploadResult", |d| {
            d.for_each_element(|d, x| match x {
                b"UploadId" => {
                    id = Some(d.content::<String>()?);
                    Ok(())
                }
                _ => d.text(|_| Ok(())),
            })
        })
        .map_err(|e| xml_err(&e))?;
        id.ok_or_else(|| Error::Upstream("no UploadId in the store's answer".into()))
    }

    /// Uploads part `number` (`len` stored bytes); returns the store's ETag.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown upload, store errors.
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        len: u64,
        body: BodyStream,
    ) -> Result<Option<String>> {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, len.into());
        let q = upload_query(upload_id, &[("partNumber", number.to_string())]);
        let req = self.signed(
            &Method::PUT,
            bucket,
            key,
            &q,
            h,
            UpBody::new(body, Some(len)),
        )?;
        let resp = self.send(req).await?;
        match resp.status() {
            StatusCode::OK => Ok(super::header_string(resp.headers(), header::ETAG)),
            StatusCode::NOT_FOUND => Err(Error::NotFound),
            s => Err(super::upstream_status(s, resp).await),
        }
    }

    /// Every part uploaded so far, in part-number order (all pages).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown upload, store errors.
    pub async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<StoredPart>> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..20 {
            let mut extra = vec![("max-parts", "1000".to_owned())];
            if let Some(m) = &marker {
                extra.push(("part-number-marker", m.clone()));
            }
            let resp = self
                .call(
                    &Method::GET,
                    bucket,
                    key,
                    &upload_query(upload_id, &extra),
                    HeaderMap::new(),
                )
                .await?;
            let body = Self::read_body(resp, 16 << 20).await?;
            let mut truncated = false;
            let mut next = None;
            let mut d = s3s::xml::Deserializer::new(&body);
            d.named_element("ListPartsResult", |d| {
                d.for_each_element(|d, x| match x {
                    b"Part" => {
                        let p: s3s::dto::Part = d.content()?;
                        out.push(p);
                        Ok(())
                    }
                    b"IsTruncated" => {
                        truncated = d.content()?;
                        Ok(())
                    }
                    b"NextPartNumberMarker" => {
                        next = Some(d.content::<String>()?);
                        Ok(())
                    }
                    b"Initiator" | b"Owner" => d.for_each_element(|d, _| d.text(|_| Ok(()))),
                    _ => d.text(|_| Ok(())),
                })
            })
            .map_err(|e| xml_err(&e))?;
            if !truncated {
                break;
            }
            marker = next;
            if marker.is_none() {
                return Err(Error::Upstream(
                    "truncated part listing without a marker".into(),
                ));
            }
        }
        out_parts(out)
    }

    /// Completes the upload from `parts` (number, store ETag); returns the store's ETag.
    ///
    /// # Errors
    /// Store errors (also an error sent with status 200, as S3 may).
    pub async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<Option<String>> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (n, etag) in parts {
            let e = etag
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('"', "&quot;");
            xml.push_str(&format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>"
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, (xml.len() as u64).into());
        let body = futures_util::StreamExt::boxed(futures_util::stream::iter([Ok(
            bytes::Bytes::from(xml.clone()),
        )]));
        let q = upload_query(upload_id, &[]);
        let req = self.signed(
            &Method::POST,
            bucket,
            key,
            &q,
            h,
            UpBody::new(body, Some(xml.len() as u64)),
        )?;
        let resp = self.send(req).await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(match status {
                StatusCode::NOT_FOUND => Error::NotFound,
                s => super::upstream_status(s, resp).await,
            });
        }
        let body = Self::read_body(resp, 1 << 20).await?;
        if body.windows(7).any(|w| w == b"<Error>") {
            return Err(Error::UpstreamUnavailable(format!(
                "completing the upload: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            )));
        }
        let mut etag = None;
        let mut d = s3s::xml::Deserializer::new(&body);
        let _ = d.named_element("CompleteMultipartUploadResult", |d| {
            d.for_each_element(|d, x| match x {
                b"ETag" => {
                    etag = Some(d.content::<String>()?);
                    Ok(())
                }
                _ => d.text(|_| Ok(())),
            })
        });
        Ok(etag)
    }

    /// Aborts the upload.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown upload, store errors.
    pub async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        self.call(
            &Method::DELETE,
            bucket,
            key,
            &upload_query(upload_id, &[]),
            HeaderMap::new(),
        )
        .await
        .map(|_| ())
    }

    /// In-progress uploads under `prefix` (one page of up to 1000).
    ///
    /// # Errors
    /// Store errors.
    pub async fn list_uploads(
        &self,
        bucket: &str,
        prefix: Option<&str>,
        after: Option<&(String, String)>,
    ) -> Result<UploadPage> {
        let mut pairs = vec![("uploads", String::new())];
        if let Some(p) = prefix {
            pairs.push(("prefix", p.to_owned()));
        }
        if let Some((key, upload)) = after {
            pairs.push(("key-marker", key.clone()));
            pairs.push(("upload-id-marker", upload.clone()));
        }
        let resp = self
            .call(
                &Method::GET,
                bucket,
                "",
                &super::s3::canonical_query(pairs),
                HeaderMap::new(),
            )
            .await?;
        let body = Self::read_body(resp, 16 << 20).await?;
        let mut out = Vec::new();
        let mut truncated = false;
        let (mut next_key, mut next_upload) = (None::<String>, None::<String>);
        let mut d = s3s::xml::Deserializer::new(&body);
        d.named_element("ListMultipartUploadsResult", |d| {
            d.for_each_element(|d, x| match x {
                b"IsTruncated" => {
                    truncated = d.content()?;
                    Ok(())
                }
                b"NextKeyMarker" => {
                    next_key = Some(d.content()?);
                    Ok(())
                }
                b"NextUploadIdMarker" => {
                    next_upload = Some(d.content()?);
                    Ok(())
                }
                b"Upload" => {
                    let u: s3s::dto::MultipartUpload = d.content()?;
                    if let (Some(key), Some(upload_id)) = (u.key, u.upload_id) {
                        out.push(StoredUpload {
                            key,
                            upload_id,
                            initiated: u.initiated.map(time::OffsetDateTime::from),
                        });
                    }
                    Ok(())
                }
                b"CommonPrefixes" => d.for_each_element(|d, _| d.text(|_| Ok(()))),
                _ => d.text(|_| Ok(())),
            })
        })
        .map_err(|e| xml_err(&e))?;
        // Where the next page starts: the store's markers, else the last upload listed.
        let next = truncated
            .then(|| match (next_key, next_upload) {
                (Some(k), Some(u)) if !k.is_empty() => Some((k, u)),
                _ => out.last().map(|l| (l.key.clone(), l.upload_id.clone())),
            })
            .flatten();
        Ok(UploadPage {
            uploads: out,
            truncated,
            next,
        })
    }

    /// Every upload under `prefix`, page after page (at most 1,000 pages); `truncated` only
    /// if the store stopped giving a place to go on from, or the bound was reached — then the
    /// listing does not say which uploads are live.
    ///
    /// # Errors
    /// As [`Self::list_uploads`].
    pub async fn list_all_uploads(&self, bucket: &str, prefix: Option<&str>) -> Result<UploadPage> {
        let mut all = UploadPage {
            uploads: Vec::new(),
            truncated: false,
            next: None,
        };
        let mut after = None;
        for _ in 0..MAX_UPLOAD_PAGES {
            let page = self.list_uploads(bucket, prefix, after.as_ref()).await?;
            all.uploads.extend(page.uploads);
            match (page.truncated, page.next) {
                (false, _) => return Ok(all),
                (true, Some(next)) if after.as_ref() != Some(&next) => after = Some(next),
                (true, _) => break,
            }
        }
        all.truncated = true;
        Ok(all)
    }
}

fn out_parts(parts: Vec<s3s::dto::Part>) -> Result<Vec<StoredPart>> {
    parts
        .into_iter()
        .map(|p| {
            let number = p
                .part_number
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| Error::Upstream("part without a number".into()))?;
            let size = p
                .size
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| Error::Upstream("part without a size".into()))?;
            let etag = p.e_tag.map(|e| e.value().to_owned());
            Ok(StoredPart { number, size, etag })
        })
        .collect()
}

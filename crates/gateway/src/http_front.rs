//! The plain HTTP/WebDAV front: `PUT`/`GET`/`HEAD`/`DELETE /{bucket}/{key}` with bearer-token
//! authentication, `Range` reads, `If-None-Match`/`If-Match`, plus unauthenticated
//! `/healthz` and `/metrics`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use subtle::ConstantTimeEq;
use tracing::Instrument as _;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::meta;
use crate::metrics::Metrics;
use crate::objects::{GetObject, ObjectInfo, Objects, PutObject, RangeSpec};
use crate::slots::Slots;
use crate::store::UpBody;

/// How long a request body may send nothing before the upload is abandoned (the store then
/// keeps no object): a stalled client must not hold a request slot and an upstream upload
/// for as long as the store tolerates. The default of [`HttpFront::body_idle_timeout`].
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The HTTP front's state.
pub struct HttpFront {
    objects: Arc<Objects>,
    tokens: Vec<[u8; 32]>,
    metrics: Arc<Metrics>,
    slots: Slots,
    next_id: AtomicU64,
    body_idle: Duration,
}

fn digest(token: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl HttpFront {
    /// A front over `objects` accepting `tokens` (only their SHA-256 digests are kept).
    #[must_use]
    pub fn new(
        objects: Arc<Objects>,
        tokens: &[Zeroizing<String>],
        metrics: Arc<Metrics>,
        max_concurrent: usize,
        read_wait: Duration,
    ) -> Self {
        Self {
            objects,
            tokens: tokens.iter().map(|t| digest(t.as_bytes())).collect(),
            metrics,
            slots: Slots::new(max_concurrent, read_wait),
            next_id: AtomicU64::new(1),
            body_idle: BODY_IDLE_TIMEOUT,
        }
    }

    /// Sets how long a request body may send nothing before the upload is abandoned
    /// (`limits.idle_timeout_secs`; default [`BODY_IDLE_TIMEOUT`]).
    #[must_use]
    pub fn body_idle_timeout(mut self, limit: Duration) -> Self {
        self.body_idle = limit.max(Duration::from_secs(1));
        self
    }

    fn authorised(&self, req: &Request<Incoming>) -> bool {
        let Some(token) = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        let d = digest(token.trim().as_bytes());
        // Every configured token is compared, in constant time.
        self.tokens
            .iter()
            .fold(subtle::Choice::from(0), |acc, t| acc | t.ct_eq(&d))
            .into()
    }

    /// Serves one request.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<UpBody>, Infallible> {
        let started = Instant::now();
        let id = format!("{:08x}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let method = req.method().clone();
        let op = match method {
            Method::PUT => "put",
            Method::GET => "get",
            Method::HEAD => "head",
            Method::DELETE => "delete",
            _ => "other",
        };
        let span = tracing::info_span!("http", request_id = %id, %method);
        // The span is attached to the future, never entered across an await: a guard held over
        // an await leaves the span current on whichever thread polls next.
        Ok(self
            .serve(req, id, method, op, started)
            .instrument(span)
            .await)
    }

    async fn serve(
        self: Arc<Self>,
        req: Request<Incoming>,
        id: String,
        method: Method,
        op: &'static str,
        started: Instant,
    ) -> Response<UpBody> {
        let path = req.uri().path().to_owned();
        if method == Method::GET && path == "/healthz" {
            return text(StatusCode::OK, "ok\n");
        }
        if method == Method::GET && path == "/metrics" {
            let body = self.metrics.render(self.objects.client().stats());
            let mut r = text(StatusCode::OK, body);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            return r;
        }
        let _in_flight = self.metrics.start();
        let result = match self.slots.acquire(&method).await {
            Some(_permit) => self.route(req, &id).await,
            None => Err(Error::CustodianUnavailable(
                "no request slot freed up in time (reads waiting on a custodian)".into(),
            )),
        };
        let mut resp = result.unwrap_or_else(|e| {
            if e.status().is_server_error() {
                tracing::warn!(error = %e, "request failed");
            } else {
                tracing::info!(error = %e, "request refused");
            }
            error_response(&e, method == Method::HEAD)
        });
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        let status = resp.status().as_u16();
        tracing::info!(op, status, "served");
        self.metrics
            .request("http", op, status, started.elapsed().as_secs_f64());
        resp
    }

    async fn route(&self, req: Request<Incoming>, id: &str) -> Result<Response<UpBody>> {
        if !self.authorised(&req) {
            return Err(Error::Unauthenticated);
        }
        let (bucket, key) = split_path(req.uri().path())?;
        if matches!(*req.method(), Method::PUT | Method::DELETE)
            && (req.headers().contains_key(header::IF_MATCH)
                || req.headers().contains_key(header::IF_NONE_MATCH))
        {
            // Refused rather than ignored: a client relying on a create-only or
            // compare-and-swap write must not get an unconditional one.
            return Err(Error::NotImplemented(
                "If-Match / If-None-Match on PUT and DELETE".into(),
            ));
        }
        match *req.method() {
            Method::PUT => self.put(req, bucket, key).await,
            Method::GET => self.get(req, &bucket, &key, id).await,
            Method::HEAD => {
                let info = self.objects.head(&bucket, &key).await?;
                check_conditions(req.headers(), &info)?;
                let mut r = Response::new(UpBody::empty());
                object_headers(&mut r, &info);
                set(&mut r, header::CONTENT_LENGTH, &info.len.to_string());
                Ok(r)
            }
            Method::DELETE => {
                self.objects.delete(&bucket, &key).await?;
                let mut r = Response::new(UpBody::empty());
                *r.status_mut() = StatusCode::NO_CONTENT;
                Ok(r)
            }
            _ => {
                let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
                set(&mut r, header::ALLOW, "GET, HEAD, PUT, DELETE");
                Ok(r)
            }
        }
    }

    async fn put(
        &self,
        req: Request<Incoming>,
        bucket: String,
        key: String,
    ) -> Result<Response<UpBody>> {
        let len = match req.headers().get(header::CONTENT_LENGTH) {
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| Error::BadRequest("bad Content-Length".into()))?,
            ),
            None => None,
        };
        let (metadata, checks) = meta::from_headers(req.headers())?;
        let body = crate::body_idle::idle_timeout(
            req.into_body()
                .into_data_stream()
                .map_err(std::io::Error::other)
                .boxed(),
            self.body_idle,
        );
        let etag = self
            .objects
            .put(PutObject {
                bucket,
                key,
                len,
                body,
                metadata,
                checks,
            })
            .await?;
        let mut r = Response::new(UpBody::empty());
        *r.status_mut() = StatusCode::CREATED;
        if let Some(e) = etag {
            set(&mut r, header::ETAG, &e);
        }
        Ok(r)
    }

    async fn get(
        &self,
        req: Request<Incoming>,
        bucket: &str,
        key: &str,
        id: &str,
    ) -> Result<Response<UpBody>> {
        let range = match req.headers().get(header::RANGE) {
            Some(v) => RangeSpec::parse(
                v.to_str()
                    .map_err(|_| Error::BadRequest("bad Range header".into()))?,
            )?,
            None => None,
        };
        let got = self.objects.get(bucket, key, range).await?;
        check_conditions(req.headers(), &got.info)?;
        Ok(body_response(got.first_verified().await?, id.to_owned()))
    }
}

/// A GET response: 200 or 206 with exact lengths; the body aborts on any failure.
pub fn body_response(got: GetObject, id: String) -> Response<UpBody> {
    let GetObject {
        info,
        range,
        body,
        failure,
    } = got;
    let len = range.as_ref().map_or(info.len, |r| r.end - r.start);
    let body = body
        .inspect_err(move |e| {
            let cause = failure
                .take()
                .map_or_else(|| e.to_string(), |c| c.to_string());
            tracing::warn!(request_id = %id, cause, "response aborted mid-body");
        })
        .boxed();
    let mut r = Response::new(UpBody::new(body, Some(len)));
    object_headers(&mut r, &info);
    set(&mut r, header::CONTENT_LENGTH, &len.to_string());
    if let Some(rg) = range {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        set(
            &mut r,
            header::CONTENT_RANGE,
            &format!("bytes {}-{}/{}", rg.start, rg.end - 1, info.len),
        );
    }
    r
}

/// `If-Match` / `If-None-Match` against the object's opaque ETag.
///
/// # Errors
/// [`Error::PreconditionFailed`], [`Error::NotModified`].
pub fn check_conditions(headers: &http::HeaderMap, info: &ObjectInfo) -> Result<()> {
    let etag = info.etag.as_deref().unwrap_or("");
    let matches = |v: &HeaderValue| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || (!etag.is_empty() && t == etag))
        })
    };
    if let Some(v) = headers.get(header::IF_MATCH)
        && !matches(v)
    {
        return Err(Error::PreconditionFailed);
    }
    if let Some(v) = headers.get(header::IF_NONE_MATCH)
        && matches(v)
    {
        return Err(Error::NotModified);
    }
    Ok(())
}

fn object_headers(r: &mut Response<UpBody>, info: &ObjectInfo) {
    set(r, header::ACCEPT_RANGES, "bytes");
    if let Some(e) = &info.etag {
        set(r, header::ETAG, e);
    }
    if let Some(lm) = &info.last_modified {
        set(r, header::LAST_MODIFIED, lm);
    }
    for (k, v) in meta::to_headers(&info.metadata) {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::try_from(k.as_str()),
            HeaderValue::from_str(&v),
        ) {
            r.headers_mut().insert(k, v);
        }
    }
    if info.legacy {
        set(r, "x-custodia-legacy-plaintext", "true");
    }
}

fn set(r: &mut Response<UpBody>, name: impl http::header::IntoHeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<UpBody> {
    let mut r = Response::new(UpBody::full(body));
    *r.status_mut() = status;
    r
}

/// An error as the HTTP front answers it: status, code header, `Retry-After` where retrying
/// helps, and a one-line text body (none for HEAD and 304).
#[must_use]
pub fn error_response(e: &Error, head: bool) -> Response<UpBody> {
    let status = e.status();
    let mut r = if head || status == StatusCode::NOT_MODIFIED {
        let mut r = Response::new(UpBody::empty());
        *r.status_mut() = status;
        r
    } else {
        text(status, format!("{}: {e}\n", e.code()))
    };
    set(&mut r, "x-custodia-error", e.code());
    if let Some(s) = e.retry_after() {
        set(&mut r, header::RETRY_AFTER, &s.to_string());
    }
    if let Error::RangeNotSatisfiable { len } = e {
        set(&mut r, header::CONTENT_RANGE, &format!("bytes */{len}"));
    }
    if matches!(e, Error::Unauthenticated) {
        set(&mut r, header::WWW_AUTHENTICATE, "Bearer");
    }
    r
}

/// `/{bucket}/{key}`, percent-decoded: the HTTP front's request path parser.
///
/// # Errors
/// [`Error::BadRequest`] for a path that is not UTF-8, lacks a bucket or key, or has dot
/// segments.
pub fn split_path(path: &str) -> Result<(String, String)> {
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| Error::BadRequest("the path is not UTF-8".into()))?;
    let trimmed = decoded.strip_prefix('/').unwrap_or(&decoded);
    let (bucket, key) = trimmed
        .split_once('/')
        .ok_or_else(|| Error::BadRequest("expected /{bucket}/{key}".into()))?;
    if bucket.is_empty() || key.is_empty() {
        return Err(Error::BadRequest("expected /{bucket}/{key}".into()));
    }
    if key.split('/').any(|s| s == ".." || s == ".") {
        return Err(Error::BadRequest(
            "dot segments are not allowed in keys".into(),
        ));
    }
    Ok((bucket.to_owned(), key.to_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn paths_split_into_bucket_and_key() {
        assert_eq!(
            split_path("/mail/a%40b.ie/INBOX/1.eml").unwrap(),
            ("mail".into(), "a@b.ie/INBOX/1.eml".into())
        );
        assert!(split_path("/mail").is_err());
        assert!(split_path("/mail/").is_err());
        assert!(split_path("/mail/a/../b").is_err());
    }
}

//! Upstream stores: where sealed objects live. Only ciphertext ever crosses this module's
//! boundary. A plain HTTP/WebDAV server ([`webdav`]) or any S3-compatible store ([`s3`]),
//! behind one [`Store`] with the operations the fronts need.

pub mod s3;
pub mod s3_multipart;
pub mod webdav;

use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use http::{HeaderMap, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::{Error, Result};

/// A body as a stream of byte buffers; an `Err` item aborts the transfer.
pub type BodyStream = BoxStream<'static, std::io::Result<Bytes>>;

/// The HTTP client upstream requests go through (plain HTTP, pooled keep-alive).
pub(crate) type Http = HyperClient<HttpConnector, UpBody>;

/// A streaming HTTP body of a known (or unknown) length: request bodies sent upstream and
/// response bodies sent to clients. An `Err` from the stream aborts the transfer.
pub struct UpBody {
    stream: Option<BodyStream>,
    len: Option<u64>,
    /// Data frames were produced (so a client may already have verified bytes in flight).
    sent: bool,
    /// An error held back for one poll (see [`Body::poll_frame`]).
    deferred: Option<std::io::Error>,
}

impl UpBody {
    /// A body of one buffer.
    #[must_use]
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let b: Bytes = bytes.into();
        let len = b.len() as u64;
        Self::new(futures_util::stream::iter([Ok(b)]).boxed(), Some(len))
    }

    /// An empty body.
    #[must_use]
    pub fn empty() -> Self {
        Self {
            stream: None,
            len: Some(0),
            sent: false,
            deferred: None,
        }
    }

    /// `stream`, announced as exactly `len` bytes when known (else sent chunked).
    #[must_use]
    pub fn new(stream: BodyStream, len: Option<u64>) -> Self {
        Self {
            stream: Some(stream),
            len,
            sent: false,
            deferred: None,
        }
    }
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = std::io::Error;

    /// An error after data frames is held back for one poll (returning `Pending` and waking
    /// at once): hyper then flushes the verified bytes it has buffered before the error
    /// aborts the connection, instead of dropping them with it. Clients see the bytes that
    /// verified and then a broken-off response, never a response that vanished.
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Self::Error>>> {
        if let Some(e) = self.deferred.take() {
            self.stream = None;
            return Poll::Ready(Some(Err(e)));
        }
        let sent = self.sent;
        let Some(stream) = self.stream.as_mut() else {
            return Poll::Ready(None);
        };
        match stream.poll_next_unpin(cx) {
            Poll::Ready(Some(Err(e))) if sent => {
                self.deferred = Some(e);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Ready(Some(Ok(b))) => {
                self.sent = true;
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            other => other.map(|item| item.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_none() && self.deferred.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        self.len
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

pub(crate) fn http_client() -> Http {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .build(connector)
}

/// A stored object's body, or part of it.
pub struct Fetched {
    /// The whole stored object's length (from `Content-Length` or `Content-Range`).
    pub total_len: u64,
    /// The store's entity tag, as sent.
    pub etag: Option<String>,
    /// `Last-Modified`, as sent.
    pub last_modified: Option<String>,
    /// The representation headers and user metadata (`x-amz-meta-*`) the store sent: what
    /// a migration keeps of a legacy plaintext object (sealed into its metadata).
    pub kept_headers: HeaderMap,
    /// The bytes asked for.
    pub body: BodyStream,
}

/// What a PUT returned.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The store's entity tag of the new object, if it sent one.
    pub etag: Option<String>,
}

/// The upstream store.
pub enum Store {
    /// A plain HTTP/WebDAV server.
    Webdav(webdav::WebdavStore),
    /// An S3-compatible store.
    S3(s3::S3Store),
}

impl Store {
    /// Whether PUTs need the stored length before the body (S3 does; WebDAV takes chunked).
    #[must_use]
    pub fn needs_length(&self) -> bool {
        matches!(self, Self::S3(_))
    }

    /// Stores `body` (exactly `len` bytes when given) at `bucket`/`key`. If the body stream
    /// fails, the upload is aborted and the store keeps no complete object.
    ///
    /// # Errors
    /// [`Error::Upstream`], [`Error::UpstreamUnavailable`].
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        len: Option<u64>,
        body: BodyStream,
    ) -> Result<Stored> {
        match self {
            Self::Webdav(s) => s.put(bucket, key, len, body).await,
            Self::S3(s) => {
                let len = len.ok_or(Error::LengthRequired)?;
                s.put(bucket, key, len, body).await
            }
        }
    }

    /// Fetches `bucket`/`key`, or only the stored bytes `range` of it.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Upstream`], [`Error::UpstreamUnavailable`];
    /// [`Error::NotSealed`] if the store answers 416 (an empty object has no header).
    pub async fn get(&self, bucket: &str, key: &str, range: Option<Range<u64>>) -> Result<Fetched> {
        match self {
            Self::Webdav(s) => s.get(bucket, key, range).await,
            Self::S3(s) => s.get(bucket, key, range).await,
        }
    }

    /// Deletes `bucket`/`key`.
    ///
    /// # Errors
    /// [`Error::NotFound`] (WebDAV only: S3 deletes are idempotent), [`Error::Upstream`],
    /// [`Error::UpstreamUnavailable`].
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        match self {
            Self::Webdav(s) => s.delete(bucket, key).await,
            Self::S3(s) => s.delete(bucket, key).await,
        }
    }
}

/// Percent-encodes a path (each segment; `/` kept), RFC 3986 unreserved characters left as
/// they are: the encoding S3 signing expects and WebDAV servers accept.
#[must_use]
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The total length from a `Content-Range: bytes a-b/total` header.
pub(crate) fn content_range_total(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get(http::header::CONTENT_RANGE)?.to_str().ok()?;
    v.rsplit_once('/')?.1.trim().parse().ok()
}

pub(crate) fn header_string(headers: &HeaderMap, name: http::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Turns a fetched response into [`Fetched`], mapping statuses to errors. A store that
/// ignored the `range` asked for (answered 200) has its body cut down to the range.
pub(crate) async fn fetched(
    resp: http::Response<hyper::body::Incoming>,
    range: Option<Range<u64>>,
) -> Result<Fetched> {
    let status = resp.status();
    match status {
        StatusCode::OK | StatusCode::PARTIAL_CONTENT => {}
        StatusCode::NOT_FOUND => return Err(Error::NotFound),
        StatusCode::RANGE_NOT_SATISFIABLE => return Err(Error::NotSealed),
        s => return Err(upstream_status(s, resp).await),
    }
    let headers = resp.headers();
    let total_len = if status == StatusCode::PARTIAL_CONTENT {
        content_range_total(headers)
    } else {
        headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
    }
    .ok_or_else(|| Error::Upstream("response without a usable length".into()))?;
    let etag = header_string(headers, http::header::ETAG);
    let last_modified = header_string(headers, http::header::LAST_MODIFIED);
    let mut kept_headers = HeaderMap::new();
    for (name, value) in headers {
        if crate::meta::KEPT_HEADERS.contains(&name.as_str())
            || name.as_str().starts_with(crate::meta::USER_META_PREFIX)
        {
            kept_headers.append(name.clone(), value.clone());
        }
    }
    let mut body = resp
        .into_body()
        .into_data_stream()
        .map(|r| r.map_err(std::io::Error::other))
        .boxed();
    if let (StatusCode::OK, Some(r)) = (status, range) {
        body = cut(body, r);
    }
    Ok(Fetched {
        total_len,
        etag,
        last_modified,
        kept_headers,
        body,
    })
}

/// The bytes `range` of a stream that starts at offset 0.
fn cut(body: BodyStream, range: Range<u64>) -> BodyStream {
    let mut pos = 0u64;
    body.filter_map(move |item| {
        let out = match item {
            Err(e) => Some(Err(e)),
            Ok(b) => {
                let start = pos;
                pos += b.len() as u64;
                let lo = range.start.clamp(start, pos) - start;
                let hi = range.end.clamp(start, pos) - start;
                #[allow(clippy::cast_possible_truncation, reason = "within one buffer")]
                (lo < hi).then(|| Ok(b.slice(lo as usize..hi as usize)))
            }
        };
        std::future::ready(out)
    })
    .boxed()
}

/// An error for an unexpected upstream status, with the start of its body for the log.
pub(crate) async fn upstream_status(
    status: StatusCode,
    resp: http::Response<hyper::body::Incoming>,
) -> Error {
    let body = http_body_util::Limited::new(resp.into_body(), 2048)
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    let detail: String = body.chars().filter(|c| !c.is_control()).take(300).collect();
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find("</")? + start;
        Some(body[start..end].to_owned())
    };
    if status.is_client_error()
        && status != StatusCode::FORBIDDEN
        && let Some(code) = tag("Code")
    {
        // A request the store finds wrong for its own rules (part sizes, bucket names...):
        // the client's to fix, so it keeps its code. 403 stays internal: the gateway's own
        // credentials are the store's business, not the client's.
        return Error::StoreRefused {
            status: status.as_u16(),
            code,
            message: tag("Message").unwrap_or_default(),
        };
    }
    if status == StatusCode::NOT_IMPLEMENTED {
        return Error::NotImplemented(format!("the store does not implement this: {detail}"));
    }
    if status.is_server_error() {
        Error::UpstreamUnavailable(format!("{status}: {detail}"))
    } else {
        Error::Upstream(format!("{status}: {detail}"))
    }
}

/// Maps a client error (connection refused, reset...) to [`Error::UpstreamUnavailable`].
pub(crate) fn send_error(e: &hyper_util::client::legacy::Error) -> Error {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    Error::UpstreamUnavailable(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_per_segment() {
        assert_eq!(encode_path("a b/c+d/é"), "a%20b/c%2Bd/%C3%A9");
        assert_eq!(encode_path("x@y.ie/INBOX/1.eml"), "x%40y.ie/INBOX/1.eml");
    }
}

//! A plain HTTP/WebDAV store (nginx with `dav_methods PUT DELETE`, Apache mod_dav, ...):
//! objects at `endpoint/bucket/key`, with optional basic or bearer authentication.

use std::ops::Range;

use http::{Method, Request, StatusCode, header};
use zeroize::Zeroizing;

use super::{BodyStream, Fetched, Http, Stored, UpBody, encode_path, fetched, send_error};
use crate::error::{Error, Result};

/// A WebDAV store.
pub struct WebdavStore {
    endpoint: String,
    authorization: Option<Zeroizing<String>>,
    http: Http,
}

impl WebdavStore {
    /// A store at `endpoint` (`http://host:port[/prefix]`), sending `authorization` (a full
    /// `Authorization` header value) if given.
    #[must_use]
    pub fn new(endpoint: &str, authorization: Option<Zeroizing<String>>) -> Self {
        Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            authorization,
            http: super::http_client(),
        }
    }

    fn url(&self, bucket: &str, key: &str) -> String {
        format!(
            "{}/{}/{}",
            self.endpoint,
            encode_path(bucket),
            encode_path(key)
        )
    }

    fn request(&self, method: Method, bucket: &str, key: &str) -> http::request::Builder {
        let mut b = Request::builder().method(method).uri(self.url(bucket, key));
        if let Some(a) = &self.authorization {
            b = b.header(header::AUTHORIZATION, a.as_str());
        }
        b
    }

    pub(crate) async fn put(
        &self,
        bucket: &str,
        key: &str,
        len: Option<u64>,
        body: BodyStream,
    ) -> Result<Stored> {
        let mut b = self.request(Method::PUT, bucket, key);
        if let Some(n) = len {
            b = b.header(header::CONTENT_LENGTH, n);
        }
        let req = b
            .body(UpBody::new(body, len))
            .map_err(|e| Error::Upstream(e.to_string()))?;
        let resp = self.http.request(req).await.map_err(|e| send_error(&e))?;
        match resp.status() {
            StatusCode::OK | StatusCode::CREATED | StatusCode::NO_CONTENT => Ok(Stored {
                etag: super::header_string(resp.headers(), header::ETAG),
            }),
            s => Err(super::upstream_status(s, resp).await),
        }
    }

    pub(crate) async fn get(
        &self,
        bucket: &str,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<Fetched> {
        let mut b = self.request(Method::GET, bucket, key);
        if let Some(r) = &range {
            b = b.header(
                header::RANGE,
                format!("bytes={}-{}", r.start, r.end.saturating_sub(1)),
            );
        }
        let req = b
            .body(UpBody::empty())
            .map_err(|e| Error::Upstream(e.to_string()))?;
        let resp = self.http.request(req).await.map_err(|e| send_error(&e))?;
        fetched(resp, range).await
    }

    pub(crate) async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        let req = self
            .request(Method::DELETE, bucket, key)
            .body(UpBody::empty())
            .map_err(|e| Error::Upstream(e.to_string()))?;
        let resp = self.http.request(req).await.map_err(|e| send_error(&e))?;
        match resp.status() {
            StatusCode::OK | StatusCode::NO_CONTENT | StatusCode::ACCEPTED => Ok(()),
            StatusCode::NOT_FOUND => Err(Error::NotFound),
            s => Err(super::upstream_status(s, resp).await),
        }
    }
}

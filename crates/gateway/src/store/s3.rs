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
        let mut headers = HeaderMap::new();
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
            s => Err(super::upstream_status(s, resp).await),
        }
    }

    pub(crate) async fn get(
        &self,
        bucket: &str,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<Fetched> {
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

    pub(crate) async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
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

//! Talking S3 to the gateways and to the store: the gateway crate's own S3 client (real
//! SigV4 signing, path-style), whole bodies in memory, and S3 error answers turned into
//! `STATUS Code: Message` lines (a refusal reads `403 AccessDenied: custodian ie/… refused:
//! approval_required`).

use bytes::Bytes;
use custodia_gateway::Error as GatewayError;
use custodia_gateway::store::s3::S3Store;
use custodia_gateway::store::{BodyStream, Store};
use futures_util::{StreamExt as _, TryStreamExt as _};

use super::setup::{BUCKET, Keys, S3_REGION};
use crate::failure::{CliResult, Failure, Status};

/// An S3 client of one endpoint.
pub(crate) struct S3Client {
    store: Store,
}

impl S3Client {
    /// A client of `endpoint` (`host:port`) signing with `keys`.
    pub(crate) fn new(endpoint: std::net::SocketAddr, keys: &Keys) -> Self {
        Self::of(S3Store::new(
            &format!("http://{endpoint}"),
            S3_REGION,
            &keys.access,
            &keys.secret,
        ))
    }

    /// A client over an existing S3 store handle.
    pub(crate) fn of(store: S3Store) -> Self {
        Self {
            store: Store::S3(store),
        }
    }

    /// `PUT /mail/KEY` with `body`.
    pub(crate) async fn put(&self, key: &str, body: &'static [u8]) -> CliResult {
        let stream: BodyStream = futures_util::stream::iter([Ok(Bytes::from_static(body))]).boxed();
        self.store
            .put(BUCKET, key, Some(body.len() as u64), stream)
            .await
            .map(drop)
            .map_err(|e| failure(&e))
    }

    /// `GET /mail/KEY`: the whole body.
    pub(crate) async fn get(&self, key: &str) -> CliResult<Vec<u8>> {
        let fetched = self
            .store
            .get(BUCKET, key, None)
            .await
            .map_err(|e| failure(&e))?;
        let chunks: Vec<Bytes> = fetched
            .body
            .try_collect()
            .await
            .map_err(|e| Failure::failed(format!("reading the body of {key}: {e}")))?;
        Ok(chunks.concat())
    }
}

/// A failure carrying the S3 answer as `STATUS Code: Message`; a 403 is a refusal (status
/// 4), a 5xx or an unreachable endpoint status 5.
fn failure(e: &GatewayError) -> Failure {
    match e {
        GatewayError::Upstream(detail) => {
            let text = s3_error(detail);
            let status = if text.starts_with("403") {
                Status::Denied
            } else {
                Status::Failed
            };
            Failure::new(status, text)
        }
        GatewayError::UpstreamUnavailable(detail) => {
            Failure::new(Status::Unavailable, s3_error(detail))
        }
        GatewayError::NotFound => Failure::failed("404 NoSuchKey"),
        other => Failure::failed(other.to_string()),
    }
}

/// `403 Forbidden: <?xml …><Error><Code>C</Code><Message>M</Message>…` → `403 C: M`.
pub(crate) fn s3_error(detail: &str) -> String {
    let (status, body) = detail.split_once(": ").unwrap_or((detail, ""));
    let code = status.split_whitespace().next().unwrap_or(status);
    let tag = |name: &str| -> Option<String> {
        let (_, rest) = body.split_once(&format!("<{name}>"))?;
        let (value, _) = rest.split_once(&format!("</{name}>"))?;
        Some(unescape(value))
    };
    match (tag("Code"), tag("Message")) {
        (Some(c), Some(m)) => format!("{code} {c}: {m}"),
        (Some(c), None) => format!("{code} {c}"),
        _ => detail.to_owned(),
    }
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_errors_read_as_one_line() {
        let detail = "403 Forbidden: <?xml version=\"1.0\" encoding=\"UTF-8\"?><Error>\
                      <Code>AccessDenied</Code><Message>custodian ie/ie-custodian refused: \
                      approval_required</Message><RequestId>1</RequestId></Error>";
        assert_eq!(
            s3_error(detail),
            "403 AccessDenied: custodian ie/ie-custodian refused: approval_required"
        );
        assert_eq!(s3_error("500 oops"), "500 oops");
        assert_eq!(
            s3_error("400 Bad: <Error><Code>X</Code><Message>a &amp; b</Message></Error>"),
            "400 X: a & b"
        );
    }
}

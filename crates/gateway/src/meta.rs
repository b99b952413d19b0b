//! What of a request's headers is sealed into the object's metadata, and how it comes back:
//! the representation headers (`Content-Type`, `Cache-Control`, ...), user metadata
//! (`x-amz-meta-*`) and the client's checksums. The store sees none of it.

use base64::Engine as _;
use custodia_envelope::Metadata;
use http::HeaderMap;

use crate::codec::Checks;
use crate::error::{Error, Result};

/// Representation headers preserved through the envelope.
pub const KEPT_HEADERS: [&str; 6] = [
    "content-type",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
];

/// Prefix of user metadata headers.
pub const USER_META_PREFIX: &str = "x-amz-meta-";

/// Metadata key prefix for user metadata.
const META: &str = "meta.";
/// Metadata key of the client's `Content-MD5`.
pub const CHECKSUM_MD5: &str = "checksum.md5";

/// The sealed metadata and the checks for a request's headers.
///
/// # Errors
/// [`Error::BadRequest`] for a malformed `Content-MD5` or non-text metadata;
/// [`Error::TooLarge`] past the envelope's metadata limits.
pub fn from_headers(headers: &HeaderMap) -> Result<(Metadata, Checks)> {
    let mut m = Metadata::new();
    let mut checks = Checks::default();
    let too_large = metadata_error;
    for name in KEPT_HEADERS {
        if let Some(v) = headers.get(name) {
            let v = v
                .to_str()
                .map_err(|_| Error::BadRequest(format!("{name} is not text")))?;
            m.insert(name, v).map_err(too_large)?;
        }
    }
    for (name, value) in headers {
        if let Some(user) = name.as_str().strip_prefix(USER_META_PREFIX) {
            let v = value
                .to_str()
                .map_err(|_| Error::BadRequest(format!("{name} is not text")))?;
            m.insert(&format!("{META}{user}"), v).map_err(too_large)?;
        }
    }
    if let Some(v) = headers.get("content-md5") {
        let text = v
            .to_str()
            .map_err(|_| Error::BadRequest("Content-MD5 is not text".into()))?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .ok_or_else(|| Error::BadRequest("Content-MD5 is not a base64 MD5".into()))?;
        checks = checks.md5(raw);
        m.insert(CHECKSUM_MD5, text.trim()).map_err(too_large)?;
    }
    Ok((m, checks))
}

/// The headers a GET or HEAD returns for sealed `metadata`.
#[must_use]
pub fn to_headers(metadata: &Metadata) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in metadata.iter() {
        if KEPT_HEADERS.contains(&k) {
            out.push((k.to_owned(), v.to_owned()));
        } else if let Some(user) = k.strip_prefix(META) {
            out.push((format!("{USER_META_PREFIX}{user}"), v.to_owned()));
        } else if k == CHECKSUM_MD5 {
            out.push(("content-md5".to_owned(), v.to_owned()));
        }
    }
    out
}

/// User metadata (`x-amz-meta-` stripped) of sealed `metadata`.
#[must_use]
pub fn user_metadata(metadata: &Metadata) -> Vec<(String, String)> {
    metadata
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(META)?.to_owned(), v.to_owned())))
        .collect()
}

/// Puts user metadata (names without the prefix) into `m`.
///
/// # Errors
/// [`Error::BadRequest`], [`Error::TooLarge`].
pub fn insert_user(m: &mut Metadata, name: &str, value: &str) -> Result<()> {
    m.insert(&format!("{META}{}", name.to_ascii_lowercase()), value)
        .map_err(metadata_error)
}

/// A metadata name or value the envelope cannot hold is the client's to fix; too much of it
/// is too large.
fn metadata_error(e: custodia_envelope::Error) -> Error {
    match e {
        custodia_envelope::Error::NonCanonical { .. } => Error::BadRequest(format!(
            "metadata: {e} (names: lowercase letters, digits, '.', '_', '-')"
        )),
        other => Error::TooLarge(format!("metadata: {other}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn headers_round_trip_through_sealed_metadata() {
        let mut h = HeaderMap::new();
        h.insert("content-type", "message/rfc822".parse().unwrap());
        h.insert("x-amz-meta-folder", "INBOX".parse().unwrap());
        h.insert("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==".parse().unwrap());
        h.insert("authorization", "Bearer secret".parse().unwrap());
        let (m, _) = from_headers(&h).unwrap();
        let back = to_headers(&m);
        assert!(back.contains(&("content-type".into(), "message/rfc822".into())));
        assert!(back.contains(&("x-amz-meta-folder".into(), "INBOX".into())));
        assert!(back.contains(&("content-md5".into(), "1B2M2Y8AsgTpgAmY7PhCfg==".into())));
        assert!(!back.iter().any(|(k, _)| k == "authorization"));
        assert_eq!(user_metadata(&m), vec![("folder".into(), "INBOX".into())]);
    }

    #[test]
    fn a_malformed_content_md5_is_refused() {
        let mut h = HeaderMap::new();
        h.insert("content-md5", "not-base64!".parse().unwrap());
        assert!(matches!(from_headers(&h), Err(Error::BadRequest(_))));
    }
}

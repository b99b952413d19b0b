//! The gateway's object operations with plaintext semantics, shared by the HTTP and S3
//! fronts: PUT seals as the body streams in; GET and HEAD open, verify and report plaintext
//! lengths; ranges fetch only the chunks they need. Fails closed: a key no route covers is
//! refused, an object without a Custodia header is never served (unless its route allows
//! legacy plaintext).

use std::ops::Range;

use bytes::Bytes;
use custodia::Client;
use custodia_envelope::{Binding, Header, Metadata};
use futures_util::StreamExt;

use crate::codec::{self, Checks, Failure, Start};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::routes::{Resolved, Routes};
use crate::store::{BodyStream, Store};

mod multipart;
mod records;
pub(crate) use multipart::upload_of;
pub use multipart::{LAYOUT_PREFIX, MAX_PARTS, UPLOADS_PREFIX, parse_layout_key};
pub use records::Swept;

/// Whether `header` is one part of a multipart-layout object (the gateway's per-part
/// envelopes), rather than a whole object's.
#[must_use]
pub fn is_multipart_part(header: &Header) -> bool {
    multipart::is_part(header)
}

/// A plaintext range as a client asks for it (`Range: bytes=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `bytes=a-b` (both inclusive).
    FromTo(u64, u64),
    /// `bytes=a-`.
    From(u64),
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

impl RangeSpec {
    /// Parses one `bytes=` range (multiple ranges are not supported: `None`, served whole,
    /// as RFC 9110 allows).
    ///
    /// # Errors
    /// [`Error::BadRequest`] for a malformed header.
    pub fn parse(value: &str) -> Result<Option<Self>> {
        let bad = || Error::BadRequest(format!("bad Range header {value:?}"));
        let Some(spec) = value.trim().strip_prefix("bytes=") else {
            return Err(bad());
        };
        if spec.contains(',') {
            return Ok(None);
        }
        let (a, b) = spec.split_once('-').ok_or_else(bad)?;
        let num = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
        Ok(Some(match (a.trim().is_empty(), b.trim().is_empty()) {
            (true, false) => Self::Suffix(num(b)?),
            (false, true) => Self::From(num(a)?),
            (false, false) => {
                let (a, b) = (num(a)?, num(b)?);
                if b < a {
                    return Err(bad());
                }
                Self::FromTo(a, b)
            }
            (true, true) => return Err(bad()),
        }))
    }

    /// The byte range `start..end` of an object of `len` bytes.
    ///
    /// # Errors
    /// [`Error::RangeNotSatisfiable`].
    pub fn resolve(self, len: u64) -> Result<Range<u64>> {
        let r = match self {
            Self::FromTo(a, b) => a..b.saturating_add(1).min(len),
            Self::From(a) => a..len,
            Self::Suffix(n) => len.saturating_sub(n)..len,
        };
        if r.start >= r.end {
            return Err(Error::RangeNotSatisfiable { len });
        }
        Ok(r)
    }
}

/// A new object: where, its plaintext body and what to seal with it.
pub struct PutObject {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Plaintext length, when the client declared it.
    pub len: Option<u64>,
    /// The plaintext body.
    pub body: BodyStream,
    /// Sealed metadata (content type, user metadata, client checksums).
    pub metadata: Metadata,
    /// Checksums to verify the body against.
    pub checks: Checks,
}

/// What a client may know of a stored object without its body.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    /// Plaintext length.
    pub len: u64,
    /// Opaque, stable entity tag (quoted); never derived from the plaintext.
    pub etag: Option<String>,
    /// The store's `Last-Modified`.
    pub last_modified: Option<String>,
    /// The sealed metadata (empty for legacy plaintext).
    pub metadata: Metadata,
    /// Whether this is a legacy plaintext object served during a migration.
    pub legacy: bool,
}

/// An object being read.
pub struct GetObject {
    /// The object.
    pub info: ObjectInfo,
    /// The plaintext range served, if a range was asked for.
    pub range: Option<Range<u64>>,
    /// Verified plaintext; an `Err` item means "abort the response".
    pub body: BodyStream,
    /// Why the body stream failed, if it did.
    pub failure: Failure,
}

impl GetObject {
    /// Waits for the body's first verified bytes (or its end) before the response starts, so
    /// that an object whose first chunk fails verification (for a one-chunk mail message, any
    /// damage) is answered with an error status and code rather than with a response that
    /// breaks off before its first byte. Costs nothing: those bytes must be verified before
    /// anything can be sent anyway, and at most one chunk is held.
    ///
    /// # Errors
    /// Why the body failed: [`Error::Tampered`], [`Error::UpstreamUnavailable`]...
    pub async fn first_verified(mut self) -> Result<Self> {
        match self.body.next().await {
            // An ended stream must not be polled again.
            None => self.body = futures_util::stream::empty().boxed(),
            Some(Ok(first)) => {
                let rest = std::mem::replace(&mut self.body, futures_util::stream::empty().boxed());
                self.body = futures_util::stream::once(std::future::ready(Ok(first)))
                    .chain(rest)
                    .boxed();
            }
            Some(Err(e)) => {
                return Err(self.failure.take().unwrap_or_else(|| {
                    Error::UpstreamUnavailable(format!("reading the object: {e}"))
                }));
            }
        }
        Ok(self)
    }
}

/// The object operations over one store, one SDK client and the routes.
#[derive(Clone)]
pub struct Objects {
    client: std::sync::Arc<Client>,
    store: std::sync::Arc<Store>,
    routes: Routes,
    max_object_bytes: u64,
    metrics: std::sync::Arc<Metrics>,
    /// Background layout clean-ups in flight (bounded: when all are busy, one is skipped).
    cleanups: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Background layout clean-ups at once.
const CLEANUPS: usize = 16;

/// An opaque entity tag from the store's: stable while the stored object is, not shaped
/// like an MD5 (so clients do not compare it with their own digests), and derived only
/// from stored (sealed) bytes' metadata.
#[must_use]
pub fn opaque_etag(store_etag: &str) -> String {
    let inner = store_etag.trim().trim_start_matches("W/").trim_matches('"');
    let d = ring::digest::digest(&ring::digest::SHA256, inner.as_bytes());
    format!("\"cx-{}\"", hex::encode(&d.as_ref()[..12]))
}

/// Refuses an object whose sealed context names another mailbox than `expected` (the
/// canonical mailbox its key names), compared in canonical form, so objects sealed before
/// mailbox ids were canonical still match their key.
///
/// # Errors
/// [`Error::WrongMailbox`].
pub(crate) fn check_sealed_mailbox(header: &Header, expected: &str) -> Result<()> {
    match custodia_envelope::canonical_mailbox(header.context().mailbox()) {
        Ok(m) if m == expected => Ok(()),
        _ => Err(Error::WrongMailbox),
    }
}

impl Objects {
    /// The operations over `store`, sealing and opening with `client`.
    #[must_use]
    pub fn new(
        client: Client,
        store: Store,
        routes: Routes,
        max_object_bytes: u64,
        metrics: std::sync::Arc<Metrics>,
    ) -> Self {
        Self {
            client: std::sync::Arc::new(client),
            store: std::sync::Arc::new(store),
            routes,
            max_object_bytes,
            metrics,
            cleanups: std::sync::Arc::new(tokio::sync::Semaphore::new(CLEANUPS)),
        }
    }

    /// The SDK client.
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The upstream store.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The routes.
    #[must_use]
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// Seals and stores an object. Returns the opaque ETag when the store reported one.
    ///
    /// # Errors
    /// [`Error::NoRoute`] (nothing reaches the store), [`Error::BadDigest`],
    /// [`Error::IncompleteBody`], [`Error::TooLarge`], [`Error::LengthRequired`], store
    /// errors.
    pub async fn put(&self, put: PutObject) -> Result<Option<String>> {
        let route = self.routes.resolve(&put.bucket, &put.key)?;
        if put.len.is_some_and(|n| n > self.max_object_bytes) {
            return Err(Error::TooLarge(format!(
                "the object exceeds limits.max_object_bytes ({})",
                self.max_object_bytes
            )));
        }
        if put.len.is_none() && self.store.needs_length() {
            return Err(Error::LengthRequired);
        }
        let binding = Binding::new(&put.bucket, &put.key).map_err(Error::Tampered)?;
        let (header, sealer) = self
            .client
            .begin_seal(&route.mailbox, &binding, &put.metadata)?;
        let profile = self.client.profile();
        let stored_len = match put.len {
            Some(n) => Some(
                profile
                    .sealed_len(n)
                    .ok_or_else(|| Error::TooLarge("object length overflows".into()))?,
            ),
            None => None,
        };
        let failure = Failure::default();
        let counted = count(put.body, &self.metrics.bytes_in);
        let body = codec::seal_body(
            header,
            sealer,
            counted,
            put.len,
            self.max_object_bytes,
            put.checks,
            failure.clone(),
        );
        match self
            .store
            .put(&put.bucket, &put.key, stored_len, body)
            .await
        {
            Ok(stored) => {
                if let Some(etag) = &stored.etag {
                    self.forget_replaced_layouts(&put.bucket, &put.key, etag);
                }
                Ok(stored.etag.as_deref().map(opaque_etag))
            }
            Err(e) => Err(failure.take().unwrap_or(e)),
        }
    }

    /// After a single PUT over `key`, removes (in the background, off the request's path) the
    /// layout records of a multipart object it replaced: see
    /// `multipart::Objects::drop_stale_layouts`. Costs one listing per PUT on S3 stores; a
    /// record missed (the gateway stopped first) stays until the key is written or deleted
    /// again.
    fn forget_replaced_layouts(&self, bucket: &str, key: &str, written: &str) {
        if !matches!(self.store.as_ref(), Store::S3(_)) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Ok(permit) = self.cleanups.clone().try_acquire_owned() else {
            tracing::debug!("layout clean-up skipped: too many in flight");
            return;
        };
        let this = self.clone();
        let (bucket, key, written) = (bucket.to_owned(), key.to_owned(), written.to_owned());
        handle.spawn(async move {
            if let Err(e) = this.drop_stale_layouts(&bucket, &key, &written).await {
                tracing::warn!(error = %e, "could not remove a replaced object's layout records");
            }
            drop(permit);
        });
    }

    /// Reads the header of `bucket`/`key` (one ranged fetch) and its stored length.
    pub(crate) async fn fetch_header(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<(Start, crate::store::Fetched)> {
        let want = self.client.profile().header_size() as u64;
        let mut fetched = self.store.get(bucket, key, Some(0..want)).await?;
        let start = codec::read_header(&mut fetched.body).await;
        let start = match start {
            // The object's header is larger than this gateway's profile: fetch it whole.
            Err(Error::Tampered(custodia_envelope::Error::Truncated { .. }))
                if fetched.total_len > want =>
            {
                fetched = self.store.get(bucket, key, None).await?;
                codec::read_header(&mut fetched.body).await?
            }
            other => other?,
        };
        Ok((start, fetched))
    }

    async fn unlock(
        &self,
        header: &Header,
        bucket: &str,
        key: &str,
        mailbox: &str,
    ) -> Result<custodia_envelope::Unlocked> {
        // Before any custodian is asked: the object must be sealed to `mailbox`, the one its
        // key names. (The binding would fail it too, but only after an audited release.)
        check_sealed_mailbox(header, mailbox)?;
        let binding = Binding::new(bucket, key).map_err(Error::Tampered)?;
        match self.client.unlock(header, &binding, None).await {
            Ok(unlocked) => Ok(unlocked),
            // The custodian could not open the stanza: the header was changed in the store
            // (context, object id or stanza), which is damage, not a policy decision.
            Err(custodia::Error::Denied {
                denial: custodia::Denial::StanzaInvalid,
                ..
            }) => Err(Error::Tampered(
                custodia_envelope::Error::StanzaAuthentication,
            )),
            // A rate limit passes: answer it as retryable (503 + Retry-After, as S3 answers
            // SlowDown), not as a refusal clients would take as final.
            Err(custodia::Error::Denied {
                region,
                custodian,
                denial: custodia::Denial::RateLimited,
            }) => Err(Error::CustodianUnavailable(format!(
                "custodian {region}/{custodian} refused: rate_limited (this caller read this \
                 mailbox too often; retry later)"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    fn info(
        fetched: &crate::store::Fetched,
        len: u64,
        metadata: Metadata,
        legacy: bool,
    ) -> ObjectInfo {
        ObjectInfo {
            len,
            etag: fetched.etag.as_deref().map(opaque_etag),
            last_modified: fetched.last_modified.clone(),
            metadata,
            legacy,
        }
    }

    /// What a HEAD reports: plaintext length and sealed metadata (the header is unwrapped,
    /// so this is a read: denied out of region, audited by the custodian).
    ///
    /// # Errors
    /// [`Error::NoRoute`], [`Error::NotFound`], [`Error::NotSealed`], [`Error::Denied`],
    /// [`Error::CustodianUnavailable`], [`Error::Tampered`], store errors.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<ObjectInfo> {
        let route = self.routes.resolve(bucket, key)?;
        let (start, fetched) = match self.fetch_header(bucket, key).await {
            Err(Error::NotSealed) if route.legacy_plaintext => {
                let f = self.store.get(bucket, key, None).await?;
                return Ok(Self::info(&f, f.total_len, Metadata::new(), true));
            }
            other => other?,
        };
        match start {
            Start::Plain(_) if route.legacy_plaintext => Ok(Self::info(
                &fetched,
                fetched.total_len,
                Metadata::new(),
                true,
            )),
            Start::Plain(_) => Err(Error::NotSealed),
            Start::Sealed { header, .. } if multipart::is_part(&header) => {
                check_sealed_mailbox(&header, &route.mailbox)?;
                self.head_multipart(bucket, key, &header, fetched).await
            }
            Start::Sealed { header, .. } => {
                let unlocked = self.unlock(&header, bucket, key, &route.mailbox).await?;
                let len = header
                    .profile()
                    .plaintext_len(fetched.total_len)
                    .map_err(Error::Tampered)?;
                Ok(Self::info(
                    &fetched,
                    len,
                    unlocked.metadata().clone(),
                    false,
                ))
            }
        }
    }

    /// Opens `bucket`/`key` (or the plaintext `range` of it). The custodians are asked
    /// before any byte is returned; the body then streams verified plaintext.
    ///
    /// # Errors
    /// As [`Self::head`], plus [`Error::RangeNotSatisfiable`].
    pub async fn get(
        &self,
        bucket: &str,
        key: &str,
        range: Option<RangeSpec>,
    ) -> Result<GetObject> {
        let route = self.routes.resolve(bucket, key)?;
        if let Some(spec) = range {
            return self.get_range(bucket, key, spec, &route).await;
        }
        let mut fetched = match self.store.get(bucket, key, None).await {
            // An empty stored object: no header.
            Err(Error::NotSealed) if route.legacy_plaintext => {
                return Ok(legacy(
                    Bytes::new(),
                    self.store.get(bucket, key, None).await?,
                    None,
                ));
            }
            other => other?,
        };
        let failure = Failure::default();
        match codec::read_header(&mut fetched.body).await? {
            Start::Plain(prefix) if route.legacy_plaintext => {
                tracing::warn!(bucket, key, "serving a legacy plaintext object");
                Ok(legacy(prefix, fetched, None))
            }
            Start::Plain(_) => Err(Error::NotSealed),
            Start::Sealed { header, rest } if multipart::is_part(&header) => {
                check_sealed_mailbox(&header, &route.mailbox)?;
                self.get_multipart(bucket, key, &header, rest, fetched)
                    .await
            }
            Start::Sealed { header, rest } => {
                let unlocked = self.unlock(&header, bucket, key, &route.mailbox).await?;
                let len = header
                    .profile()
                    .plaintext_len(fetched.total_len)
                    .map_err(Error::Tampered)?;
                let opener = unlocked.opener().map_err(Error::Tampered)?;
                let info = Self::info(&fetched, len, unlocked.metadata().clone(), false);
                let body = codec::open_body(opener, rest, fetched.body, failure.clone());
                Ok(GetObject {
                    info,
                    range: None,
                    body: count(body, &self.metrics.bytes_out),
                    failure,
                })
            }
        }
    }

    async fn get_range(
        &self,
        bucket: &str,
        key: &str,
        spec: RangeSpec,
        route: &Resolved,
    ) -> Result<GetObject> {
        let (start, fetched) = self.fetch_header(bucket, key).await?;
        let header = match start {
            Start::Sealed { header, .. } => header,
            Start::Plain(_) if route.legacy_plaintext => {
                let r = spec.resolve(fetched.total_len)?;
                let f = self.store.get(bucket, key, Some(r.clone())).await?;
                return Ok(legacy(Bytes::new(), f, Some(r)));
            }
            Start::Plain(_) => return Err(Error::NotSealed),
        };
        if multipart::is_part(&header) {
            check_sealed_mailbox(&header, &route.mailbox)?;
            return self
                .get_multipart_range(bucket, key, &header, fetched, spec)
                .await;
        }
        let profile = header.profile();
        let len = profile
            .plaintext_len(fetched.total_len)
            .map_err(Error::Tampered)?;
        let range = spec.resolve(len)?;
        let unlocked = self.unlock(&header, bucket, key, &route.mailbox).await?;
        let chunks = profile
            .chunk_range(len, range.start, range.end)
            .map_err(Error::Tampered)?;
        let part = self
            .store
            .get(bucket, key, Some(chunks.stored_start..chunks.stored_end))
            .await?;
        let failure = Failure::default();
        let body = codec::open_range_body(&unlocked, chunks, part.body, failure.clone())?;
        Ok(GetObject {
            info: Self::info(&fetched, len, unlocked.metadata().clone(), false),
            range: Some(range),
            body: count(body, &self.metrics.bytes_out),
            failure,
        })
    }

    /// Deletes `bucket`/`key` (refused like any other operation when no route covers it).
    ///
    /// # Errors
    /// [`Error::NoRoute`], store errors.
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        self.routes.resolve(bucket, key)?;
        self.store.delete(bucket, key).await?;
        if matches!(self.store.as_ref(), Store::S3(_)) {
            // A multipart object's layout records go with it (not those of an upload still
            // completing, whose object may land after this delete).
            self.drop_layouts_after_delete(bucket, key).await?;
        }
        Ok(())
    }
}

/// A legacy plaintext object served as stored (`prefix` already read off `fetched`).
fn legacy(prefix: Bytes, fetched: crate::store::Fetched, range: Option<Range<u64>>) -> GetObject {
    let head = futures_util::stream::iter((!prefix.is_empty()).then_some(Ok(prefix)));
    GetObject {
        info: ObjectInfo {
            len: fetched.total_len,
            etag: fetched.etag.as_deref().map(opaque_etag),
            last_modified: fetched.last_modified.clone(),
            metadata: Metadata::new(),
            legacy: true,
        },
        range,
        body: head.chain(fetched.body).boxed(),
        failure: Failure::default(),
    }
}

/// Counts the bytes of `body` into `counter`.
fn count(body: BodyStream, counter: &std::sync::Arc<std::sync::atomic::AtomicU64>) -> BodyStream {
    let counter = counter.clone();
    body.inspect(move |item| {
        if let Ok(b) = item {
            counter.fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn ranges_parse_and_resolve_like_rfc_9110() {
        assert_eq!(
            RangeSpec::parse("bytes=0-9").unwrap(),
            Some(RangeSpec::FromTo(0, 9))
        );
        assert_eq!(
            RangeSpec::parse("bytes=5-").unwrap(),
            Some(RangeSpec::From(5))
        );
        assert_eq!(
            RangeSpec::parse("bytes=-3").unwrap(),
            Some(RangeSpec::Suffix(3))
        );
        assert_eq!(RangeSpec::parse("bytes=0-1,4-5").unwrap(), None);
        assert!(RangeSpec::parse("bytes=9-1").is_err());
        assert!(RangeSpec::parse("items=0-1").is_err());
        assert!(RangeSpec::parse("bytes=-").is_err());
        assert_eq!(RangeSpec::FromTo(0, 99).resolve(10).unwrap(), 0..10);
        assert_eq!(RangeSpec::Suffix(3).resolve(10).unwrap(), 7..10);
        assert_eq!(RangeSpec::Suffix(30).resolve(10).unwrap(), 0..10);
        assert!(matches!(
            RangeSpec::From(10).resolve(10),
            Err(Error::RangeNotSatisfiable { len: 10 })
        ));
        assert!(RangeSpec::Suffix(0).resolve(10).is_err());
        assert!(RangeSpec::From(0).resolve(0).is_err());
    }

    #[test]
    fn etags_are_opaque_stable_and_not_md5_shaped() {
        let a = opaque_etag("\"9e107d9d372bb6826bd81d3542a419d6\"");
        assert_eq!(a, opaque_etag("9e107d9d372bb6826bd81d3542a419d6"));
        assert!(a.starts_with("\"cx-"));
        assert!(!a.contains("9e107d9d"));
        assert_ne!(a, opaque_etag("\"other\""));
    }
}

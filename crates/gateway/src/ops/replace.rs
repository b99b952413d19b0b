//! Replacing an object by a verified sealed copy of its plaintext, shared by `migrate`
//! (plaintext originals) and `reseal` (originals sealed to the wrong region).
//!
//! The copy is sealed for the object's final name while the plaintext is hashed, written to
//! a temporary key under the job's reserved prefix (`.custodia/<job>/<run>/`), read back and
//! opened with the data key just drawn (no custodian releases anything) and compared with
//! the source's plaintext hash and length; only then is it written over the original, and
//! only if the original is unchanged (`If-Match` on the ETag it was read at). At no moment
//! is the only copy of a message half-written.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use custodia_envelope::{Binding, Metadata};
use futures_util::StreamExt;

use super::Scope;
use crate::codec::{self, Checks, Failure};
use crate::error::{Error, Result};
use crate::routes::RESERVED_PREFIX;
use crate::store::BodyStream;
use crate::store::s3::{ListParams, S3Store};

/// Sealed copies up to this size are kept in memory after they verified and written over
/// the original from there; larger ones are read from the store again (constant memory).
const KEEP_IN_MEMORY: u64 = 8 << 20;

/// Why one attempt did not finish.
pub(crate) enum Stop {
    /// The original changed under us: try again from its new contents.
    Changed,
    /// Give up on this object (or on the job, if the error is fatal).
    Fail(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Self::Fail(e)
    }
}

/// How a replacement ended.
pub(crate) enum Replaced {
    /// The original was replaced.
    Done,
    /// The original was deleted meanwhile: not brought back.
    Gone,
}

/// Replaces objects of one bucket, keeping its temporary copies under `temp_prefix`.
pub(crate) struct Replacer<'a> {
    scope: &'a Scope,
    s3: &'a S3Store,
    /// Under [`RESERVED_PREFIX`], one per run.
    temp_prefix: String,
}

impl<'a> Replacer<'a> {
    /// The replacer of a run whose temporary copies live under `{base}{run_id}/` (`base`
    /// under [`RESERVED_PREFIX`]). Unless `dry_run`, copies left by a crashed attempt of the
    /// same run are removed first: their originals are either untouched (to be redone) or
    /// already replaced.
    ///
    /// # Errors
    /// [`Error::NotImplemented`] for a WebDAV store; store errors.
    pub(crate) async fn start(
        scope: &'a Scope,
        base: &str,
        run_id: &str,
        dry_run: bool,
    ) -> Result<Self> {
        let s3 = scope.s3()?;
        let temp_prefix = format!("{base}{run_id}/");
        debug_assert!(temp_prefix.starts_with(RESERVED_PREFIX));
        if !dry_run {
            remove_under(s3, &scope.bucket, &temp_prefix).await?;
        }
        Ok(Self {
            scope,
            s3,
            temp_prefix,
        })
    }

    /// The store.
    pub(crate) fn s3(&self) -> &'a S3Store {
        self.s3
    }

    /// Refuses a store that ignores `If-Match` (see [`probe_conditional_writes`]).
    ///
    /// # Errors
    /// As [`probe_conditional_writes`].
    pub(crate) async fn require_conditional_writes(&self) -> Result<()> {
        probe_conditional_writes(self.s3, &self.scope.bucket, &self.temp_prefix).await
    }

    /// After a run that walked the whole bucket: removes what is left of its copies.
    ///
    /// # Errors
    /// Store errors.
    pub(crate) async fn finish(&self) -> Result<()> {
        remove_under(self.s3, &self.scope.bucket, &self.temp_prefix).await
    }

    fn temp_key(&self, key: &str) -> String {
        let d = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
        format!("{}{}", self.temp_prefix, hex::encode(&d.as_ref()[..20]))
    }

    /// Seals `plain` (`len` bytes, with `metadata`) for `mailbox` under `key`'s binding and
    /// writes it over `key` if the stored object still has `etag`. See the module
    /// documentation.
    pub(crate) async fn seal_over(
        &self,
        key: &str,
        mailbox: &str,
        metadata: &Metadata,
        len: u64,
        plain: BodyStream,
        etag: &str,
    ) -> std::result::Result<Replaced, Stop> {
        let bucket = self.scope.bucket.as_str();
        let client = self.scope.objects.client();
        let binding = Binding::new(bucket, key).map_err(Error::Tampered)?;
        let (header, sealer, check) = client
            .begin_seal_checked(mailbox, &binding, metadata)
            .map_err(Error::from)?;
        let sealed_len = client
            .profile()
            .sealed_len(len)
            .ok_or_else(|| Error::TooLarge("object length overflows".into()))?;
        let hasher = Arc::new(Mutex::new(ring::digest::Context::new(
            &ring::digest::SHA256,
        )));
        let h = hasher.clone();
        let plain: BodyStream = plain
            .map(move |r| {
                if let (Ok(b), Ok(mut h)) = (&r, h.lock()) {
                    h.update(b);
                }
                r
            })
            .boxed();
        let failure = Failure::default();
        let body = codec::seal_body(
            header,
            sealer,
            plain,
            Some(len),
            u64::MAX,
            Checks::default(),
            failure.clone(),
        );
        let temp = self.temp_key(key);
        if let Err(e) = self.s3.put(bucket, &temp, sealed_len, body).await {
            return Err(failure.take().unwrap_or(e).into());
        }
        let source = hasher
            .lock()
            .map_err(|_| Error::Upstream("hash state poisoned".into()))?
            .clone()
            .finish();
        let (kept, verified_etag) = match self
            .check_copy(&temp, &check, source.as_ref(), len, sealed_len)
            .await
        {
            Ok(v) => v,
            Err(e) => {
                let _ = self.s3.delete(bucket, &temp).await;
                return Err(e.into());
            }
        };
        // The replacement is the verified copy: its bytes as read back (small objects), or
        // read from the store once more (large ones, in constant memory), then only if the
        // store still holds the version that verified (same length and ETag).
        let replacement: BodyStream = match kept {
            Some(bytes) => futures_util::stream::once(std::future::ready(Ok(bytes))).boxed(),
            None => {
                let copy = self.s3.get(bucket, &temp, None).await?;
                if copy.total_len != sealed_len || copy.etag != verified_etag {
                    let _ = self.s3.delete(bucket, &temp).await;
                    return Err(Error::Upstream(
                        "the sealed copy changed in the store after it was verified".into(),
                    )
                    .into());
                }
                copy.body
            }
        };
        match self
            .s3
            .put_if_match(bucket, key, sealed_len, replacement, etag)
            .await
        {
            Ok(_) => {
                // A leftover copy is harmless (sealed, in the reserved prefix) and removed
                // at the end of the run; the replacement itself is done.
                let _ = self.s3.delete(bucket, &temp).await;
                Ok(Replaced::Done)
            }
            Err(Error::PreconditionFailed | Error::NotFound) => {
                let _ = self.s3.delete(bucket, &temp).await;
                match self.s3.get(bucket, key, Some(0..1)).await {
                    Err(Error::NotFound) => Ok(Replaced::Gone),
                    _ => Err(Stop::Changed),
                }
            }
            Err(e) => {
                let _ = self.s3.delete(bucket, &temp).await;
                Err(e.into())
            }
        }
    }

    /// Reads the sealed copy back and opens it with the writer's keys: its header must be
    /// the one written, and its plaintext must hash to `source` and be `len` bytes. Returns
    /// the verified stored bytes when the copy is at most [`KEEP_IN_MEMORY`], and the ETag
    /// of the version that verified.
    async fn check_copy(
        &self,
        temp: &str,
        check: &custodia::SealCheck,
        source: &[u8],
        len: u64,
        sealed_len: u64,
    ) -> Result<(Option<Bytes>, Option<String>)> {
        let fetched = self.s3.get(&self.scope.bucket, temp, None).await?;
        let etag = fetched.etag.clone();
        if fetched.total_len != sealed_len {
            return Err(Error::Upstream(
                "the sealed copy read back from the store has the wrong length".into(),
            ));
        }
        let keep =
            Arc::new(Mutex::new((sealed_len <= KEEP_IN_MEMORY).then(|| {
                Vec::with_capacity(usize::try_from(sealed_len).unwrap_or(0))
            })));
        let k = keep.clone();
        let mut body: BodyStream = fetched
            .body
            .map(move |r| {
                if let (Ok(b), Ok(mut k)) = (&r, k.lock())
                    && let Some(v) = k.as_mut()
                {
                    v.extend_from_slice(b);
                }
                r
            })
            .boxed();
        let want = check.header();
        let mut head = Vec::with_capacity(want.len());
        let mut rest = Bytes::new();
        while head.len() < want.len() {
            match body.next().await {
                Some(Ok(b)) => {
                    let take = (want.len() - head.len()).min(b.len());
                    head.extend_from_slice(&b[..take]);
                    rest = b.slice(take..);
                }
                Some(Err(e)) => return Err(Error::UpstreamUnavailable(e.to_string())),
                None => break,
            }
        }
        let bad = |what: &str| {
            Error::Upstream(format!(
                "the sealed copy read back from the store {what}: the original was left as it is"
            ))
        };
        if head != want {
            return Err(bad("does not carry the header written"));
        }
        let opener = check.opener().map_err(Error::from)?;
        let failure = Failure::default();
        let mut plain = codec::open_body(opener, rest, body, failure.clone());
        let mut h = ring::digest::Context::new(&ring::digest::SHA256);
        let mut n = 0u64;
        while let Some(item) = plain.next().await {
            match item {
                Ok(b) => {
                    n += b.len() as u64;
                    h.update(&b);
                }
                Err(e) => {
                    return Err(failure.take().map_or_else(
                        || bad(&format!("could not be read ({e})")),
                        |f| bad(&format!("does not open ({f})")),
                    ));
                }
            }
        }
        if n != len || h.finish().as_ref() != source {
            return Err(bad("does not open to the original's bytes"));
        }
        let kept = keep
            .lock()
            .map_err(|_| Error::Upstream("copy buffer poisoned".into()))?
            .take();
        Ok((kept.map(Bytes::from), etag))
    }
}

/// Deletes every object under `prefix` (the caller's own temporary objects).
async fn remove_under(s3: &S3Store, bucket: &str, prefix: &str) -> Result<()> {
    debug_assert!(prefix.starts_with(RESERVED_PREFIX));
    let mut token = None;
    loop {
        let p = ListParams {
            prefix: Some(prefix.to_owned()),
            token: token.clone(),
            max_keys: Some(1000),
            ..ListParams::default()
        };
        let page = s3.list(bucket, &p, true).await?;
        for o in page.objects {
            if let Some(k) = o.key {
                s3.delete(bucket, &k).await?;
            }
        }
        token = page.next_token;
        if !page.truncated || token.is_none() {
            return Ok(());
        }
    }
}

/// Refuses a store that ignores `If-Match` on PUT (some S3-compatible stores answer 200 and
/// overwrite): a conditional write of a probe object under `prefix` with an ETag no object
/// has must be refused. A store that accepts it gets the probe deleted and an error.
///
/// # Errors
/// [`Error::Upstream`] if the store ignores `If-Match`; store errors.
async fn probe_conditional_writes(s3: &S3Store, bucket: &str, prefix: &str) -> Result<()> {
    debug_assert!(prefix.starts_with(RESERVED_PREFIX));
    let probe = format!("{prefix}if-match-probe");
    let body: BodyStream =
        futures_util::stream::once(std::future::ready(Ok(Bytes::from_static(b"probe")))).boxed();
    match s3
        .put_if_match(
            bucket,
            &probe,
            5,
            body,
            "\"00000000000000000000000000000000\"",
        )
        .await
    {
        Err(Error::PreconditionFailed | Error::NotFound) => Ok(()),
        Ok(_) => {
            let _ = s3.delete(bucket, &probe).await;
            Err(Error::Upstream(
                "the store ignores If-Match on PUT: an object changed during the job could be \
                 overwritten with older contents, so the job does not run on this store"
                    .into(),
            ))
        }
        Err(e) => Err(e),
    }
}

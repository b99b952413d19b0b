//! `migrate`: seal the plaintext objects of a bucket in place, by the residency rules.
//!
//! For each plaintext object: read it (its ETag noted), seal it for its final name while
//! hashing the plaintext, write the sealed copy to a temporary key under
//! `.custodia/migrate/<run>/`, read that copy back and open it with the data key just drawn
//! (no custodian releases anything) and compare its plaintext hash and length with the
//! source's, then write it over the original only if the original is unchanged
//! (`If-Match` on its ETag), and delete the temporary. At no moment is the only copy of a
//! message half-written: the original stays until a verified sealed copy replaces it in
//! one atomic PUT. A message deleted during the run is not brought back (the conditional
//! write fails on a missing object); one changed during the run is migrated again from
//! its new contents. Sealed objects are recognised by their header and left alone, so a
//! second run, or work redone after a crash, changes nothing.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use custodia_envelope::Binding;
use futures_util::StreamExt;

use super::runner::{PerObject, Runner};
use super::{Kind, Options, Outcome, Progress, Scope, Summary};
use crate::codec::{self, Checks, Failure, Start};
use crate::error::{Error, Result};
use crate::routes::RESERVED_PREFIX;
use crate::store::BodyStream;
use crate::store::s3::{ListParams, S3Store};

/// Where migrations keep their temporary sealed copies (inside the gateway's reserved
/// prefix: hidden from listings, refused to clients).
pub const TEMP_PREFIX: &str = ".custodia/migrate/";

/// Sealed copies up to this size are kept in memory after they verified and written over
/// the original from there; larger ones are read from the store again (constant memory).
const KEEP_IN_MEMORY: u64 = 8 << 20;

/// Attempts per object when it changes under the migration.
const ATTEMPTS: usize = 3;

/// Seals every plaintext object of `scope` in place. See the module documentation.
///
/// # Errors
/// Unknown bucket, store unreachable before the walk starts, checkpoint file errors.
/// Per-object failures are counted in the summary (`failed`), and stop the walk only if
/// they would fail every object (store or custodian unreachable).
pub async fn migrate(scope: &Scope, opts: &Options, progress: &dyn Progress) -> Result<Summary> {
    let runner = Runner::start(scope, opts, progress, "migrate", "")?;
    if !opts.dry_run {
        // Sealing needs every custodian's signed manifest (its public key), nothing more:
        // a custodian going down later does not stop a migration.
        if let Err(e) = scope.objects.client().directory().refresh().await {
            progress.note(&format!(
                "fetching the custodians' manifests: {e} (objects of that region will fail)"
            ));
        }
    }
    let s3 = scope.s3()?;
    let temp_prefix = format!("{TEMP_PREFIX}{}/", runner.run_id());
    if !opts.dry_run {
        // Copies left by a crashed attempt of this run: their originals are either still
        // plaintext (to be redone) or already replaced.
        remove_under(s3, &scope.bucket, &temp_prefix).await?;
    }
    let work = MigrateWork {
        scope,
        s3,
        temp_prefix: temp_prefix.clone(),
        dry_run: opts.dry_run,
    };
    let mut summary = runner.drive(&work).await?;
    if !opts.dry_run && summary.complete {
        remove_under(s3, &scope.bucket, &temp_prefix).await?;
    }
    let left = summary.count(Kind::WouldMigrate) + summary.count(Kind::Failed);
    let legacy = scope.objects.routes().legacy_routes(&scope.bucket);
    if summary.complete && left == 0 && !opts.dry_run {
        if scope.prefix.is_some() {
            summary.notes.push(format!(
                "every object under {}/{} is sealed; before turning legacy_plaintext off for \
                 bucket {}, check the whole bucket (`custodia verify` without --prefix)",
                scope.bucket, summary.prefix, scope.bucket
            ));
        } else if legacy.is_empty() {
            summary.notes.push(format!(
                "every object under {}/{} is sealed",
                scope.bucket, summary.prefix
            ));
        } else {
            summary.notes.push(format!(
                "every object under {}/{} is sealed: legacy_plaintext can now be turned off \
                 for the routes of bucket {} ({}), if no route covers plaintext elsewhere",
                scope.bucket,
                summary.prefix,
                scope.bucket,
                legacy.join(", ")
            ));
        }
    } else if left > 0 {
        summary.notes.push(format!(
            "{left} object(s) are still plaintext: keep legacy_plaintext on for their routes"
        ));
    }
    Ok(summary)
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

struct MigrateWork<'a> {
    scope: &'a Scope,
    s3: &'a S3Store,
    temp_prefix: String,
    dry_run: bool,
}

/// Why one attempt did not finish.
enum Stop {
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

impl PerObject for MigrateWork<'_> {
    async fn one(&self, key: &str) -> Outcome {
        self.object(key).await
    }
}

impl MigrateWork<'_> {
    fn temp_key(&self, key: &str) -> String {
        let d = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
        format!("{}{}", self.temp_prefix, hex::encode(&d.as_ref()[..20]))
    }

    async fn object(&self, key: &str) -> Outcome {
        let mailbox = match self.scope.objects.routes().resolve(&self.scope.bucket, key) {
            Ok(r) => r.mailbox,
            Err(e) => return Outcome::because(Kind::Failed, e.to_string()),
        };
        for _ in 0..ATTEMPTS {
            match self.attempt(key, &mailbox).await {
                Ok(o) => return o,
                Err(Stop::Changed) => {}
                Err(Stop::Fail(e)) => return Outcome::failed(&e),
            }
        }
        Outcome::because(
            Kind::Failed,
            "the object kept changing during the migration: run again",
        )
    }

    async fn attempt(&self, key: &str, mailbox: &str) -> std::result::Result<Outcome, Stop> {
        let bucket = self.scope.bucket.as_str();
        let mut src = match self.s3.get(bucket, key, None).await {
            Ok(f) => f,
            Err(Error::NotFound) => return Ok(Outcome::of(Kind::Gone, 0)),
            Err(e) => return Err(e.into()),
        };
        let len = src.total_len;
        let prefix = match codec::read_header(&mut src.body).await {
            Ok(Start::Sealed { .. }) => return Ok(Outcome::of(Kind::AlreadySealed, 0)),
            Ok(Start::Plain(prefix)) => prefix,
            Err(Error::Tampered(e)) => {
                return Ok(Outcome::because(
                    Kind::Failed,
                    format!(
                        "starts like a Custodia object but its header is damaged ({e}): left alone"
                    ),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        if self.dry_run {
            return Ok(Outcome::of(Kind::WouldMigrate, len));
        }
        let etag = src.etag.clone().ok_or_else(|| {
            Error::Upstream("the store sent no ETag: the original cannot be replaced safely".into())
        })?;
        let client = self.scope.objects.client();
        let binding = Binding::new(bucket, key).map_err(Error::Tampered)?;
        // The original's Content-Type, other representation headers and user metadata
        // are sealed with it, as the gateway seals a client's.
        let (metadata, _) = crate::meta::from_headers(&src.kept_headers)?;
        let (header, sealer, check) = client
            .begin_seal_checked(mailbox, &binding, &metadata)
            .map_err(Error::from)?;
        let sealed_len = client
            .profile()
            .sealed_len(len)
            .ok_or_else(|| Error::TooLarge("object length overflows".into()))?;
        let hasher = Arc::new(Mutex::new(ring::digest::Context::new(
            &ring::digest::SHA256,
        )));
        let h = hasher.clone();
        let plain: BodyStream = futures_util::stream::once(std::future::ready(Ok(prefix)))
            .chain(src.body)
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
        let kept = match self
            .check_copy(&temp, &check, source.as_ref(), len, sealed_len)
            .await
        {
            Ok(kept) => kept,
            Err(e) => {
                let _ = self.s3.delete(bucket, &temp).await;
                return Err(e.into());
            }
        };
        // The replacement is the verified copy: its bytes as read back (small objects), or
        // read from the store once more (large ones, in constant memory).
        let replacement: BodyStream = match kept {
            Some(bytes) => futures_util::stream::once(std::future::ready(Ok(bytes))).boxed(),
            None => {
                let copy = self.s3.get(bucket, &temp, None).await?;
                if copy.total_len != sealed_len {
                    let _ = self.s3.delete(bucket, &temp).await;
                    return Err(Error::Upstream(
                        "the sealed copy changed length in the store".into(),
                    )
                    .into());
                }
                copy.body
            }
        };
        match self
            .s3
            .put_if_match(bucket, key, sealed_len, replacement, &etag)
            .await
        {
            Ok(_) => {}
            Err(Error::PreconditionFailed | Error::NotFound) => {
                let _ = self.s3.delete(bucket, &temp).await;
                return match self.s3.get(bucket, key, Some(0..1)).await {
                    Err(Error::NotFound) => Ok(Outcome::of(Kind::Gone, 0)),
                    _ => Err(Stop::Changed),
                };
            }
            Err(e) => {
                let _ = self.s3.delete(bucket, &temp).await;
                return Err(e.into());
            }
        }
        // A leftover copy is harmless (sealed, in the reserved prefix) and removed at the
        // end of the run; the migration itself is done.
        let _ = self.s3.delete(bucket, &temp).await;
        Ok(Outcome::of(Kind::Migrated, len))
    }

    /// Reads the sealed copy back and opens it with the writer's keys: its header must be
    /// the one written, and its plaintext must hash to `source` and be `len` bytes. Returns
    /// the verified stored bytes when the copy is at most [`KEEP_IN_MEMORY`].
    async fn check_copy(
        &self,
        temp: &str,
        check: &custodia::SealCheck,
        source: &[u8],
        len: u64,
        sealed_len: u64,
    ) -> Result<Option<Bytes>> {
        let fetched = self.s3.get(&self.scope.bucket, temp, None).await?;
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
        Ok(kept.map(Bytes::from))
    }
}

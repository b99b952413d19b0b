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

use futures_util::StreamExt;

use super::replace::{Replaced, Replacer, Stop};
use super::runner::{PerObject, Runner};
use super::{Kind, Options, Outcome, Progress, Scope, Summary};
use crate::codec::{self, Start};
use crate::error::{Error, Result};
use crate::store::BodyStream;
use crate::store::s3::S3Store;

/// Where migrations keep their temporary sealed copies (inside the gateway's reserved
/// prefix: hidden from listings, refused to clients).
pub const TEMP_PREFIX: &str = ".custodia/migrate/";

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
    let replacer = Replacer::start(scope, TEMP_PREFIX, runner.run_id(), opts.dry_run).await?;
    let work = MigrateWork {
        scope,
        s3: replacer.s3(),
        replacer,
        dry_run: opts.dry_run,
    };
    let mut summary = runner.drive(&work).await?;
    if !opts.dry_run && summary.complete {
        work.replacer.finish().await?;
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

struct MigrateWork<'a> {
    scope: &'a Scope,
    s3: &'a S3Store,
    replacer: Replacer<'a>,
    dry_run: bool,
}

impl PerObject for MigrateWork<'_> {
    async fn one(&self, key: &str) -> Outcome {
        self.object(key).await
    }
}

impl MigrateWork<'_> {
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
        // The original's Content-Type, other representation headers and user metadata
        // are sealed with it, as the gateway seals a client's.
        let (metadata, _) = crate::meta::from_headers(&src.kept_headers)?;
        let plain: BodyStream = futures_util::stream::once(std::future::ready(Ok(prefix)))
            .chain(src.body)
            .boxed();
        Ok(
            match self
                .replacer
                .seal_over(key, mailbox, &metadata, len, plain, &etag)
                .await?
            {
                Replaced::Done => Outcome::of(Kind::Migrated, len),
                Replaced::Gone => Outcome::of(Kind::Gone, 0),
            },
        )
    }
}

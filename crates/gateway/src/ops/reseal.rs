//! `reseal`: move mail sealed to the wrong region to its mailbox's home region.
//!
//! Before mailbox ids were canonical, an exact residency rule missed other spellings of its
//! mailbox (`CEO@example.com` for `ceo@example.com`), and that mail was sealed by the domain
//! rule to another region. `verify --residency` names it; `reseal` fixes it. It runs in the
//! region the objects were wrongly sealed to (whose custodian releases their keys to that
//! region's own callers, each unwrap on its audit log like any read): for every object sealed
//! to this region whose key's canonical mailbox lives elsewhere, it opens the object through
//! the object layer (the same checks as a client's GET: binding, mailbox, every chunk), seals
//! the plaintext and its sealed metadata afresh for the canonical mailbox (so to its home
//! region, under the same binding), and replaces the original exactly as `migrate` does
//! (a verified temporary copy under `.custodia/reseal/<run>/`, then `If-Match`). A
//! multipart object becomes a single-part one and its layout records are removed.
//!
//! Left alone, and reported: objects sealed to another mailbox than their key names (moved
//! under another key; resealing would launder the move) and objects sealed to a third region
//! (that region runs its own reseal). No custodian other than this region's is asked for
//! anything, and an object is never written anywhere but over itself.

use custodia_envelope::Region;

use super::replace::{Replaced, Replacer, Stop, remove_under};
use super::runner::{PerObject, Runner};
use super::verify::{Inspected, Placement, inspect, placement, versions};
use super::{Kind, Options, Outcome, Progress, Scope, Summary};
use crate::error::{Error, Result};
use crate::objects::{is_multipart_part, opaque_etag};
use crate::routes::RESERVED_PREFIX;

/// Where reseals keep their temporary sealed copies.
pub const TEMP_PREFIX: &str = ".custodia/reseal/";

/// Attempts per object when it changes under the job.
const ATTEMPTS: usize = 3;

/// Reseals every object of `scope` sealed to `own_region` (the region of the config's
/// identity, whose custodian can open them) whose key's canonical mailbox lives in another
/// region. See the module documentation.
///
/// # Errors
/// As [`super::migrate::migrate`]; [`Error::CustodianUnavailable`] if the custodians'
/// manifests (the home regions' public keys) cannot be fetched.
pub async fn reseal(
    scope: &Scope,
    opts: &Options,
    own_region: &Region,
    progress: &dyn Progress,
) -> Result<Summary> {
    let runner = Runner::start(scope, opts, progress, "reseal", own_region.as_str())?;
    if !opts.dry_run {
        scope
            .objects
            .client()
            .directory()
            .refresh()
            .await
            .map_err(|e| Error::CustodianUnavailable(e.to_string()))?;
    }
    let s3 = scope.s3()?;
    let temp_prefix = format!("{TEMP_PREFIX}{}/", runner.run_id());
    debug_assert!(temp_prefix.starts_with(RESERVED_PREFIX));
    if !opts.dry_run {
        // Copies left by a crashed attempt of this run: their originals are either still
        // misplaced (to be redone) or already replaced.
        remove_under(s3, &scope.bucket, &temp_prefix).await?;
    }
    let work = ResealWork {
        scope,
        own_region,
        replacer: Replacer {
            scope,
            s3,
            temp_prefix: temp_prefix.clone(),
        },
        dry_run: opts.dry_run,
    };
    let mut summary = runner.drive(&work).await?;
    if !opts.dry_run && summary.complete {
        remove_under(s3, &scope.bucket, &temp_prefix).await?;
    }
    let left = summary.count(Kind::WrongRegion);
    if left > 0 {
        summary.notes.push(format!(
            "{left} object(s) are still not where their key says they belong and were left \
             alone: see each one's reason (another region's gateway reseals what is sealed to \
             that region; an object under another mailbox's key is not moved)"
        ));
    }
    let would = summary.count(Kind::WouldReseal);
    if would > 0 {
        summary.notes.push(format!(
            "{would} object(s) would be resealed to their mailbox's home region"
        ));
    }
    Ok(summary)
}

struct ResealWork<'a> {
    scope: &'a Scope,
    own_region: &'a Region,
    replacer: Replacer<'a>,
    dry_run: bool,
}

impl PerObject for ResealWork<'_> {
    async fn one(&self, key: &str) -> Outcome {
        for _ in 0..ATTEMPTS {
            match self.attempt(key).await {
                Ok(o) => return o,
                Err(Stop::Changed) => {}
                Err(Stop::Fail(e)) => return Outcome::failed(&e),
            }
        }
        Outcome::because(
            Kind::Failed,
            "the object kept changing during the reseal: run again",
        )
    }
}

impl ResealWork<'_> {
    async fn attempt(&self, key: &str) -> std::result::Result<Outcome, Stop> {
        let (header, etag) = match inspect(self.scope, key).await? {
            Inspected::Gone => return Ok(Outcome::of(Kind::Gone, 0)),
            Inspected::Plaintext(_) => {
                return Ok(Outcome::because(
                    Kind::Skipped,
                    "plaintext: `custodia migrate` seals it to its home region",
                ));
            }
            Inspected::Damaged(why) => return Ok(Outcome::because(Kind::Damaged, why)),
            Inspected::Sealed(header, _, etag) => (header, etag),
        };
        let was = versions(&header);
        let (mailbox, sealed) = match placement(self.scope, key, &header) {
            Placement::Home => {
                let mut o = Outcome::of(Kind::Current, 0);
                o.versions = was;
                return Ok(o);
            }
            Placement::Undecided(why) => return Ok(Outcome::because(Kind::Failed, why)),
            p @ Placement::OtherMailbox { .. } => {
                return Ok(Outcome::because(
                    Kind::WrongRegion,
                    format!(
                        "{}: left alone (an object moved under another mailbox's key is not \
                         resealed; find out how it got there)",
                        p.problem().unwrap_or_default()
                    ),
                ));
            }
            Placement::OtherRegion { sealed, .. } if sealed != *self.own_region => {
                return Ok(Outcome::because(
                    Kind::WrongRegion,
                    format!(
                        "sealed to region {}: only that region's custodian can open it; run \
                         reseal there, with a gateway config of region {}",
                        sealed.as_str(),
                        sealed.as_str()
                    ),
                ));
            }
            Placement::OtherRegion {
                mailbox, sealed, ..
            } => (mailbox, sealed),
        };
        if self.dry_run {
            let mut o = Outcome::of(Kind::WouldReseal, 0);
            o.versions = was;
            return Ok(o);
        }
        let etag = etag.ok_or_else(|| {
            Error::Upstream("the store sent no ETag: the original cannot be replaced safely".into())
        })?;
        // Opened as a client's GET opens it: one audited unwrap by this region's custodian,
        // the mailbox and binding checked, every chunk verified on the way.
        let got = match self.scope.objects.get(&self.scope.bucket, key, None).await {
            Ok(g) => g,
            Err(Error::NotFound) => return Ok(Outcome::of(Kind::Gone, 0)),
            Err(e @ (Error::Tampered(_) | Error::NotSealed | Error::WrongMailbox)) => {
                return Ok(Outcome::because(Kind::Damaged, e.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        if got.info.etag.as_deref() != Some(opaque_etag(&etag).as_str()) {
            // Rewritten between the header read and the open: start over from it.
            return Err(Stop::Changed);
        }
        let len = got.info.len;
        let opened = got.failure.clone();
        let result = self
            .replacer
            .seal_over(key, &mailbox, &got.info.metadata, len, got.body, &etag)
            .await;
        let stored = match result {
            Ok(Replaced::Done(stored)) => stored,
            Ok(Replaced::Gone) => return Ok(Outcome::of(Kind::Gone, 0)),
            Err(Stop::Fail(e)) => {
                return Ok(match opened.take() {
                    // The original did not open end to end: nothing was replaced.
                    Some(why) => Outcome::because(Kind::Damaged, why.to_string()),
                    None => Outcome::failed(&e),
                });
            }
            Err(Stop::Changed) => return Err(Stop::Changed),
        };
        if is_multipart_part(&header)
            && let Some(new_etag) = stored.etag.as_deref()
        {
            self.scope
                .objects
                .drop_replaced_layout(&self.scope.bucket, key, new_etag)
                .await?;
        }
        let mut o = Outcome::of(Kind::Resealed, len);
        o.detail = Some(format!(
            "from region {} to its mailbox's home region",
            sealed.as_str()
        ));
        Ok(o)
    }
}

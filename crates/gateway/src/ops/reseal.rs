//! `reseal`: move mail sealed to the wrong region by the mailbox-spelling bug home.
//!
//! Before mailbox ids were canonical, an exact residency rule missed other spellings of its
//! mailbox (`CEO@example.com` for `ceo@example.com`), and that mail was sealed by the domain
//! rule to another region, under the spelling its key used. `verify --residency` names it;
//! `reseal` fixes it. It runs in the region the objects were wrongly sealed to (whose
//! custodian releases their keys to that region's own callers, each unwrap on its audit log
//! like any read), and the operator names the destination (`--to`) and every mailbox whose
//! mail may move (`--mailbox`). An object is resealed only if all of these hold:
//!
//! * it is sealed to this config's region;
//! * its key's canonical mailbox is one the operator named;
//! * its sealed mailbox is a *non-canonical* spelling of the mailbox its key names (the bug's
//!   signature: every gateway since the fix seals the canonical id);
//! * that mailbox's home region under the residency rules is the `--to` region, not this one.
//!
//! It is then opened through the object layer (the same checks as a client's GET: binding,
//! mailbox, every chunk), its plaintext and sealed metadata are sealed afresh for the
//! canonical mailbox, so to the `--to` region, under the same binding, and the original is
//! replaced exactly as `migrate` replaces one (a verified temporary copy under
//! `.custodia/reseal/<run>/`, then `If-Match`). A multipart object becomes a single-part one
//! and its upload's layout records are removed.
//!
//! Everything else that is misplaced is left alone and reported: an object sealed under its
//! canonical id (sealed by the rules in force when it was written: moving it would change an
//! existing mailbox's region, which no bulk job does), one sealed to another mailbox than its
//! key names (moved under another key; resealing would launder the move), one sealed to a
//! region other than this config's (only that region's custodian can open it), one of a
//! mailbox the operator did not name, one whose home is not the `--to` region.
//!
//! A reseal hands the named mailboxes' mail to the `--to` region: nothing in an object tells
//! mail the spelling bug misplaced from mail a newer rule moved, and the residency rules are
//! the provider's. The `--mailbox` list is the key holder's own decision, mailbox by mailbox
//! (docs/OPERATIONS.md §2.5). No custodian other than this region's is asked to unwrap
//! anything, and an object is never written anywhere but over itself.

use std::collections::BTreeSet;

use custodia_envelope::Region;

use super::replace::{Replaced, Replacer, Stop};
use super::runner::{PerObject, Runner};
use super::verify::{Inspected, Placement, inspect, placement, versions};
use super::{Kind, Options, Outcome, Progress, Scope, Summary};
use crate::error::{Error, Result};
use crate::objects::{opaque_etag, upload_of};

/// Where reseals keep their temporary sealed copies.
pub const TEMP_PREFIX: &str = ".custodia/reseal/";

/// Attempts per object when it changes under the job.
const ATTEMPTS: usize = 3;

/// From which region to which a reseal moves mail, and whose.
#[derive(Debug, Clone)]
pub struct ResealTarget {
    /// The region of the config's identity: the objects' current region, whose custodian
    /// opens them.
    pub from: Region,
    /// The region the operator moves them to: their mailboxes' home under the rules.
    pub to: Region,
    /// The canonical mailboxes whose mail may move (the operator names each one).
    pub mailboxes: BTreeSet<String>,
}

/// Reseals every object of `scope` that the module documentation's conditions select, from
/// `target.from` to `target.to`.
///
/// # Errors
/// [`Error::Config`] (field `to`) if `to` is `from`; as [`super::migrate::migrate`];
/// [`Error::CustodianUnavailable`] if the custodians' manifests (the `to` region's public
/// keys) cannot be fetched.
pub async fn reseal(
    scope: &Scope,
    opts: &Options,
    target: &ResealTarget,
    progress: &dyn Progress,
) -> Result<Summary> {
    if target.to == target.from {
        return Err(Error::config(
            "to",
            format!(
                "--to {} is this config's own region: reseal moves mail out of it",
                target.to.as_str()
            ),
        ));
    }
    let names: Vec<&str> = target.mailboxes.iter().map(String::as_str).collect();
    let params = format!(
        "{}>{} {}",
        target.from.as_str(),
        target.to.as_str(),
        names.join(",")
    );
    let runner = Runner::start(scope, opts, progress, "reseal", &params)?;
    if !opts.dry_run {
        scope
            .objects
            .client()
            .directory()
            .refresh()
            .await
            .map_err(|e| Error::CustodianUnavailable(e.to_string()))?;
    }
    let replacer = Replacer::start(scope, TEMP_PREFIX, runner.run_id(), opts.dry_run).await?;
    if !opts.dry_run {
        replacer.require_conditional_writes().await?;
    }
    let work = ResealWork {
        scope,
        target,
        replacer,
        dry_run: opts.dry_run,
    };
    let mut summary = runner.drive(&work).await?;
    if !opts.dry_run && summary.complete {
        work.replacer.finish().await?;
    }
    let left = summary.count(Kind::WrongRegion);
    if left > 0 {
        summary.notes.push(format!(
            "{left} object(s) are not where their key says they belong and were left alone: \
             see each one's reason"
        ));
    }
    let would = summary.count(Kind::WouldReseal);
    if would > 0 {
        summary.notes.push(format!(
            "{would} object(s) would be resealed from region {} to region {}",
            target.from.as_str(),
            target.to.as_str()
        ));
    }
    Ok(summary)
}

struct ResealWork<'a> {
    scope: &'a Scope,
    target: &'a ResealTarget,
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
        let left = |why: String| Ok(Outcome::because(Kind::WrongRegion, why));
        let (mailbox, home) = match placement(self.scope, key, &header) {
            Placement::Home => {
                let mut o = Outcome::of(Kind::Current, 0);
                o.versions = was;
                return Ok(o);
            }
            Placement::Undecided(why) => return Ok(Outcome::because(Kind::Skipped, why)),
            p @ Placement::OtherMailbox { .. } => {
                return left(format!(
                    "{}: left alone (an object moved under another mailbox's key is not \
                     resealed; find out how it got there)",
                    p.problem().unwrap_or_default()
                ));
            }
            Placement::OtherRegion { sealed, .. } if sealed != self.target.from => {
                return left(format!(
                    "sealed to region {}, not to this config's region {}: left alone (only \
                     that region's custodian can open it)",
                    sealed.as_str(),
                    self.target.from.as_str()
                ));
            }
            Placement::OtherRegion { mailbox, home, .. } => (mailbox, home),
        };
        if !self.target.mailboxes.contains(&mailbox) {
            return left(format!(
                "sealed to region {} but mailbox {mailbox} lives in {}: left alone (not one \
                 of the --mailbox names)",
                self.target.from.as_str(),
                home.as_str()
            ));
        }
        if header.context().mailbox() == mailbox {
            return left(format!(
                "sealed to region {} under the canonical id {mailbox}, by the residency rules \
                 in force when it was written: left alone (reseal fixes only mail sealed under \
                 another spelling of its mailbox; it does not move a mailbox's existing mail)",
                self.target.from.as_str()
            ));
        }
        if home != self.target.to {
            return left(format!(
                "mailbox {mailbox} lives in {}, not in --to {}: left alone",
                home.as_str(),
                self.target.to.as_str()
            ));
        }
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
        match result {
            Ok(Replaced::Done) => {}
            Ok(Replaced::Gone) => return Ok(Outcome::of(Kind::Gone, 0)),
            Err(Stop::Fail(e)) => {
                // Nothing was replaced. Why: the original's body failed (tampered, or its
                // store or custodian failed mid-read), else the copy or the write failed.
                return Ok(match opened.take() {
                    Some(why @ (Error::Tampered(_) | Error::NotSealed | Error::WrongMailbox)) => {
                        Outcome::because(Kind::Damaged, why.to_string())
                    }
                    Some(why) => Outcome::failed(&why),
                    None => Outcome::failed(&e),
                });
            }
            Err(Stop::Changed) => return Err(Stop::Changed),
        }
        let mut o = Outcome::of(Kind::Resealed, len);
        if let Some(upload) = upload_of(&header) {
            // The object is resealed whatever happens here: a record left behind is named
            // in the detail (readers ignore it: the object is no longer multipart).
            if let Err(e) = self
                .scope
                .objects
                .drop_layout_of(&self.scope.bucket, key, upload)
                .await
            {
                o.detail = Some(format!(
                    "resealed; its old multipart layout record(s) could not be removed ({e})"
                ));
            }
        }
        Ok(o)
    }
}

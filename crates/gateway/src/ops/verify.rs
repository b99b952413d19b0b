//! `verify`: walk a bucket and say what it holds — plaintext, sealed (and to which key
//! versions), damaged — and, `--deep`, open every sealed object end to end (each unwrap
//! asked of the custodians and audited like any read; only in-region callers can);
//! `--residency`, name every object sealed to another region than its mailbox's residency
//! (mail sealed before mailbox ids were canonical, when an exact rule missed a spelling).

use custodia_envelope::{Header, Region};
use futures_util::StreamExt;

use super::runner::{PerObject, Runner};
use super::{Kind, Options, Outcome, Progress, Scope, Summary};
use crate::codec::Start;
use crate::error::{Error, Result};
use crate::objects::is_multipart_part;

/// How one object's header reads.
pub(crate) enum Inspected {
    /// Deleted since it was listed.
    Gone,
    /// No Custodia header.
    Plaintext(u64),
    /// A parsed header (boxed: large), the stored length and the store's ETag.
    Sealed(Box<Header>, u64, Option<String>),
    /// A header that does not parse.
    Damaged(String),
}

/// The key versions a header's stanzas are sealed to, as `region/custodian v3`.
pub(crate) fn versions(header: &Header) -> Vec<String> {
    header
        .stanzas()
        .iter()
        .map(|s| {
            format!(
                "{}/{} v{}",
                s.recipient.region.as_str(),
                s.recipient.custodian.as_str(),
                s.recipient.key_version.0
            )
        })
        .collect()
}

/// Reads the header of `key` (one ranged fetch).
pub(crate) async fn inspect(scope: &Scope, key: &str) -> Result<Inspected> {
    match scope.objects.fetch_header(&scope.bucket, key).await {
        Ok((Start::Plain(_), f)) => Ok(Inspected::Plaintext(f.total_len)),
        Ok((Start::Sealed { header, .. }, f)) => Ok(Inspected::Sealed(header, f.total_len, f.etag)),
        Err(Error::NotFound) => Ok(Inspected::Gone),
        // An empty object: the store answers 416 to a ranged read.
        Err(Error::NotSealed) => Ok(Inspected::Plaintext(0)),
        Err(Error::Tampered(e)) => Ok(Inspected::Damaged(e.to_string())),
        Err(e) => Err(e),
    }
}

/// Where an object is sealed, against where its key says it belongs.
#[derive(Debug)]
pub(crate) enum Placement {
    /// Sealed to its key's mailbox (in any spelling of it), in that mailbox's home region.
    Home,
    /// Sealed to another mailbox than its key names (moved under another mailbox's key).
    OtherMailbox {
        /// The mailbox in the sealed context, as sealed.
        sealed: String,
        /// The canonical mailbox its key names.
        key_mailbox: String,
    },
    /// Sealed to its key's mailbox but to another region than that mailbox's home (sealed
    /// before mailbox ids were canonical, when an exact rule missed a spelling).
    OtherRegion {
        /// The canonical mailbox.
        mailbox: String,
        /// The region it is sealed to.
        sealed: Region,
        /// The region the residency rules give the mailbox.
        home: Region,
    },
    /// No route or residency rule decides it.
    Undecided(String),
}

impl Placement {
    /// What is wrong, for a report; `None` for [`Placement::Home`].
    pub(crate) fn problem(&self) -> Option<String> {
        match self {
            Self::Home => None,
            Self::OtherMailbox {
                sealed,
                key_mailbox,
            } => Some(format!(
                "sealed to mailbox {sealed:?}, its key names {key_mailbox}"
            )),
            Self::OtherRegion {
                mailbox,
                sealed,
                home,
            } => Some(format!(
                "sealed to region {}, mailbox {mailbox} lives in {}",
                sealed.as_str(),
                home.as_str()
            )),
            Self::Undecided(why) => Some(why.clone()),
        }
    }
}

/// Compares `header`'s sealed mailbox and region with the canonical mailbox `key` names
/// under the scope's routes and that mailbox's home under its residency rules.
pub(crate) fn placement(scope: &Scope, key: &str, header: &Header) -> Placement {
    let objects = &scope.objects;
    let mailbox = match objects.routes().resolve(&scope.bucket, key) {
        Ok(r) => r.mailbox,
        Err(e) => return Placement::Undecided(e.to_string()),
    };
    let sealed = header.context();
    if custodia_envelope::canonical_mailbox(sealed.mailbox())
        .ok()
        .as_deref()
        != Some(mailbox.as_str())
    {
        return Placement::OtherMailbox {
            sealed: sealed.mailbox().to_owned(),
            key_mailbox: mailbox,
        };
    }
    match objects.client().policy().region_for(&mailbox) {
        Ok(home) if home == *sealed.region() => Placement::Home,
        Ok(home) => Placement::OtherRegion {
            mailbox,
            sealed: sealed.region().clone(),
            home,
        },
        Err(e) => Placement::Undecided(format!(
            "sealed to region {}: {e}",
            sealed.region().as_str()
        )),
    }
}

/// Counts plaintext, sealed and damaged objects and the key versions in use; `deep` also
/// opens every sealed object.
///
/// # Errors
/// As [`super::migrate::migrate`].
pub async fn verify(
    scope: &Scope,
    opts: &Options,
    checks: Checks,
    progress: &dyn Progress,
) -> Result<Summary> {
    let params = match (checks.deep, checks.residency) {
        (true, true) => "deep,residency",
        (true, false) => "deep",
        (false, true) => "residency",
        (false, false) => "",
    };
    let runner = Runner::start(scope, opts, progress, "verify", params)?;
    let mut summary = runner
        .drive(&VerifyWork {
            scope,
            deep: checks.deep,
            residency: checks.residency,
        })
        .await?;
    let wrong = summary.count(Kind::WrongRegion);
    if wrong > 0 {
        summary.notes.push(format!(
            "{wrong} object(s) are sealed to another region than their mailbox's residency: \
             the region they are sealed to can open them, the mailbox's home region cannot"
        ));
    }
    let legacy = summary.count(Kind::LegacyLayout);
    if legacy > 0 {
        summary.notes.push(format!(
            "{legacy} multipart object(s) have a legacy (version 1 or 2) layout, which does not \
             bind their parts (1) or can be forged with public keys (2): they open only where the \
             route sets legacy_layouts; read each through a gateway whose route sets it and write \
             it again to re-seal it (docs/GATEWAY.md)"
        ));
    }
    let plain = summary.count(Kind::Plaintext);
    if plain > 0 {
        summary.notes.push(format!(
            "{plain} object(s) are plaintext: run `custodia migrate` on this bucket"
        ));
    }
    Ok(summary)
}

/// What `verify` checks beyond reading each header.
#[derive(Debug, Clone, Copy, Default)]
pub struct Checks {
    /// Open every sealed object end to end.
    pub deep: bool,
    /// Compare each object's sealed region and mailbox with its key's canonical mailbox and
    /// that mailbox's residency.
    pub residency: bool,
}

struct VerifyWork<'a> {
    scope: &'a Scope,
    deep: bool,
    residency: bool,
}

impl PerObject for VerifyWork<'_> {
    async fn one(&self, key: &str) -> Outcome {
        self.object(key).await
    }
}

impl VerifyWork<'_> {
    async fn object(&self, key: &str) -> Outcome {
        let (header, len) = match inspect(self.scope, key).await {
            Ok(Inspected::Gone) => return Outcome::of(Kind::Gone, 0),
            Ok(Inspected::Plaintext(n)) => return Outcome::of(Kind::Plaintext, n),
            Ok(Inspected::Damaged(why)) => return Outcome::because(Kind::Damaged, why),
            Ok(Inspected::Sealed(h, n, _)) => (h, n),
            Err(e) => return Outcome::failed(&e),
        };
        let mut o = Outcome::of(Kind::Sealed, len);
        o.versions = versions(&header);
        if self.residency
            && let Some(why) = placement(self.scope, key, &header).problem()
        {
            o.kind = Kind::WrongRegion;
            o.detail = Some(why);
            return o;
        }
        if is_multipart_part(&header) {
            o.detail = Some("multipart layout (first part's header)".into());
            // A version 1 layout binds no part, a version 2 one has no tag: listed, to be
            // re-sealed.
            match self
                .scope
                .objects
                .has_legacy_layout(&self.scope.bucket, key, &header)
                .await
            {
                Ok(false) => {}
                Ok(true) => {
                    o.kind = Kind::LegacyLayout;
                    o.detail = Some(
                        "multipart object with a legacy layout (version 1: its parts are not \
                         bound; version 2: no tag, so the store could forge a shorter one): \
                         readable only where the route sets legacy_layouts; re-seal it"
                            .into(),
                    );
                    return o;
                }
                Err(e @ (Error::Tampered(_) | Error::NotSealed | Error::WrongMailbox)) => {
                    o.kind = Kind::Damaged;
                    o.detail = Some(e.to_string());
                    return o;
                }
                Err(e) => {
                    let versions = o.versions;
                    o = Outcome::failed(&e);
                    o.versions = versions;
                    return o;
                }
            }
        }
        if self.deep {
            match self.open(key).await {
                Ok(()) => {}
                Err(e @ (Error::Tampered(_) | Error::NotSealed)) => {
                    o.kind = Kind::Damaged;
                    o.detail = Some(e.to_string());
                }
                Err(e @ (Error::Denied { .. } | Error::NoRoute { .. })) => {
                    o.kind = Kind::Unreadable;
                    o.detail = Some(e.to_string());
                }
                Err(e) => {
                    let versions = o.versions;
                    o = Outcome::failed(&e);
                    o.versions = versions;
                }
            }
        }
        o
    }

    /// Opens the object as the gateway serves it, reading every verified byte.
    async fn open(&self, key: &str) -> Result<()> {
        let got = self
            .scope
            .objects
            .get(&self.scope.bucket, key, None)
            .await?;
        let failure = got.failure.clone();
        let mut body = got.body;
        while let Some(item) = body.next().await {
            if let Err(e) = item {
                return Err(failure
                    .take()
                    .unwrap_or_else(|| Error::UpstreamUnavailable(e.to_string())));
            }
        }
        Ok(())
    }
}

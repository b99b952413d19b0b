//! The SDK's one error type: which region and custodian refused or failed, why, and whether
//! trying again later can help ([`Error::is_retryable`]).

use custodia_custodian::api::Denial;
use custodia_envelope::{CustodianName, Region};
use thiserror::Error;

/// Everything a [`Client`](crate::Client) or [`Directory`](crate::Directory) call can fail
/// with. No variant carries key material or plaintext.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The residency [`Policy`](crate::Policy) has no rule for this mailbox: nothing is
    /// sealed (fail closed). Add a rule for the mailbox or its domain.
    #[error("no residency rule for mailbox {mailbox:?}")]
    NoResidencyRule {
        /// The mailbox that matched no rule.
        mailbox: String,
    },
    /// The mailbox id is not valid (see [`custodia_envelope::canonical_mailbox`]): nothing
    /// is sealed.
    #[error("invalid mailbox id {mailbox:?}: {reason}")]
    InvalidMailbox {
        /// The id as given.
        mailbox: String,
        /// Which rule it breaks.
        reason: custodia_envelope::MailboxError,
    },
    /// The [`Directory`](crate::Directory) lists no custodian for this region.
    #[error("no custodians configured for region {region}")]
    NoCustodians {
        /// The region.
        region: Region,
    },
    /// A stanza names a custodian that the [`Directory`](crate::Directory) does not know.
    #[error("custodian {region}/{custodian} is not in the directory")]
    UnknownCustodian {
        /// Its region.
        region: Region,
        /// Its name.
        custodian: CustodianName,
    },
    /// No verified, unexpired manifest is cached for this custodian, so nothing can be sealed
    /// to it. [`Directory::refresh`](crate::Directory::refresh) once it is reachable.
    #[error("no usable manifest for custodian {region}/{custodian}: {reason}")]
    ManifestUnavailable {
        /// The custodian's region.
        region: Region,
        /// The custodian.
        custodian: CustodianName,
        /// Why (never fetched, expired, failed verification, unreachable...).
        reason: String,
    },
    /// The custodian refused to release its share (a typed policy decision, audited by the
    /// custodian). Retrying does not help unless the denial is a rate limit.
    #[error("custodian {region}/{custodian} denied the request: {denial}")]
    Denied {
        /// The custodian's region.
        region: Region,
        /// The custodian.
        custodian: CustodianName,
        /// The custodian's reason.
        denial: Denial,
    },
    /// The custodian could not be reached or answered with an error.
    #[error("custodian {region}/{custodian} unavailable: {source}")]
    Unavailable {
        /// The custodian's region.
        region: Region,
        /// The custodian.
        custodian: CustodianName,
        /// The client error.
        #[source]
        source: custodia_custodian::Error,
    },
    /// The header is one record of a multipart object (its context names an `upload`, a
    /// reserved key: docs/FORMAT.md §2.2): opened alone it would yield one part as if it
    /// were the whole object. Read the object through the gateway, which checks its layout.
    #[error(
        "this is one part or record of a multipart object (its context names upload {upload:?}): \
         it is not opened alone; read the object through the gateway, which checks its layout"
    )]
    MultipartRecord {
        /// The upload its context names.
        upload: String,
    },
    /// The object is malformed, tampered with, moved, or the call was invalid.
    #[error("envelope: {0}")]
    Envelope(#[from] custodia_envelope::Error),
    /// Reading or writing a stream failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Whether the same call may succeed later without any change on the caller's side:
    /// transport failures, custodian 5xx/429 answers, rate-limit denials and a missing
    /// manifest (after a refresh). Policy denials, bad objects and missing rules are not.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Denied { denial, .. } => denial.is_retryable(),
            Self::Unavailable { source, .. } => source.is_retryable(),
            Self::ManifestUnavailable { .. } => true,
            Self::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
            ),
            _ => false,
        }
    }

    /// The error for a failed custodian call: a typed denial becomes [`Error::Denied`],
    /// anything else [`Error::Unavailable`].
    pub(crate) fn from_custodian(
        region: &Region,
        custodian: &CustodianName,
        e: custodia_custodian::Error,
    ) -> Self {
        match e {
            custodia_custodian::Error::Denied(denial) => Self::Denied {
                region: region.clone(),
                custodian: custodian.clone(),
                denial,
            },
            source => Self::Unavailable {
                region: region.clone(),
                custodian: custodian.clone(),
                source,
            },
        }
    }
}

/// A copy of a custodian client error, for reporting one failed batch call against each
/// object in it (the original is not `Clone`: it may hold an `io::Error`).
pub(crate) fn copy_custodian_error(e: &custodia_custodian::Error) -> custodia_custodian::Error {
    use custodia_custodian::Error as E;
    match e {
        E::Denied(d) => E::Denied(*d),
        E::Transport(s) => E::Transport(s.clone()),
        E::LogUnavailable(s) => E::LogUnavailable(s.clone()),
        E::Http {
            status,
            code,
            detail,
        } => E::Http {
            status: *status,
            code: code.clone(),
            detail: detail.clone(),
        },
        E::Tls(s) => E::Tls(s.clone()),
        E::Manifest(s) => E::Manifest(s.clone()),
        E::Envelope(e) => E::Envelope(e.clone()),
        other => E::Protocol(other.to_string()),
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;

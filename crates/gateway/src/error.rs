//! The gateway's one error type, named for what the caller (a client, an operator) can do
//! about it, with its HTTP status and S3 error code.

use custodia_envelope::{CustodianName, Region};
use http::StatusCode;
use thiserror::Error;

/// Result with the gateway's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong serving a request or loading the configuration.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid: fix the named field.
    #[error("config {field}: {reason}")]
    Config {
        /// The field at fault, e.g. `route[2].key`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No residency rule covers this bucket and key (or the key names no mailbox): nothing
    /// is sealed to a guessed region, nothing is read.
    #[error("no residency rule covers {bucket}/{key}")]
    NoRoute {
        /// The bucket (first path segment on the HTTP front).
        bucket: String,
        /// The key.
        key: String,
    },
    /// The key names a mailbox id that is not valid (whitespace, control or invisible
    /// characters, a non-ASCII local part, a bad domain): nothing is written or read.
    #[error("the key names an invalid mailbox id: {reason}")]
    InvalidMailbox {
        /// Which rule the id breaks.
        reason: custodia_envelope::MailboxError,
    },
    /// The object's sealed context names another mailbox than its key does (it was moved or
    /// copied in the store under another mailbox's name): refused before any custodian is
    /// asked.
    #[error("the stored object belongs to another mailbox than its key names")]
    WrongMailbox,
    /// The request carries no valid credentials.
    #[error("authentication required")]
    Unauthenticated,
    /// The request is malformed (a bad header, a bad range syntax...).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The body does not match the checksum the client sent with it.
    #[error("the body does not match its {0} checksum")]
    BadDigest(&'static str),
    /// The body is shorter or longer than its declared length.
    #[error("the body length does not match Content-Length")]
    IncompleteBody,
    /// A body of unknown length to a store that needs the length up front.
    #[error("Content-Length is required for this store")]
    LengthRequired,
    /// No such object.
    #[error("no such object")]
    NotFound,
    /// The range lies outside the object.
    #[error("range not satisfiable (object is {len} bytes)")]
    RangeNotSatisfiable {
        /// The object's plaintext length.
        len: u64,
    },
    /// The stored object carries no Custodia header: it is refused, never served as
    /// plaintext (unless its route allows legacy plaintext).
    #[error("the stored object is not sealed by Custodia; refusing to serve it")]
    NotSealed,
    /// A multipart object whose layout record predates part binding (layout version 1): a
    /// part re-sent during its upload could have been put back in its place, so it is
    /// refused unless its route sets `legacy_layouts`.
    #[error(
        "the multipart object has a version 1 layout, which does not bind its parts; refused \
         unless its route sets legacy_layouts (re-seal it: docs/GATEWAY.md)"
    )]
    LegacyLayout,
    /// The stored object failed verification (tampered, truncated, moved or swapped).
    #[error("the stored object failed verification: {0}")]
    Tampered(custodia_envelope::Error),
    /// A custodian refused to release its share.
    #[error("custodian {region}/{custodian} refused: {reason}")]
    Denied {
        /// The custodian's region.
        region: Region,
        /// The custodian.
        custodian: CustodianName,
        /// Why (the custodian's typed denial).
        reason: String,
    },
    /// A custodian (or its manifest) is unavailable: retry later.
    #[error("custodian unavailable: {0}")]
    CustodianUnavailable(String),
    /// The upstream store failed or answered something unexpected.
    #[error("upstream store: {0}")]
    Upstream(String),
    /// The upstream store refused the request as the client's fault (a 4xx with an S3
    /// error code, e.g. `EntityTooSmall` for a multipart part under the store's minimum).
    #[error("the store refused the request: {code}: {message}")]
    StoreRefused {
        /// The store's status.
        status: u16,
        /// The store's error code.
        code: String,
        /// The store's message, if any.
        message: String,
    },
    /// The upstream store could not be reached: retry later.
    #[error("upstream store unavailable: {0}")]
    UpstreamUnavailable(String),
    /// An object or its metadata exceeds a configured or format limit.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The operation is not supported by the gateway (never passed through in plaintext).
    #[error("not implemented: {0}")]
    NotImplemented(String),
    /// A conditional request's precondition failed.
    #[error("precondition failed")]
    PreconditionFailed,
    /// A conditional GET found the client's copy current.
    #[error("not modified")]
    NotModified,
    /// I/O on a local file (configuration, certificates).
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The HTTP status the client sees.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Config { .. } | Self::File { .. } | Self::Upstream(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::NoRoute { .. } | Self::Denied { .. } | Self::InvalidMailbox { .. } => {
                StatusCode::FORBIDDEN
            }
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) | Self::BadDigest(_) | Self::IncompleteBody => {
                StatusCode::BAD_REQUEST
            }
            Self::LengthRequired => StatusCode::LENGTH_REQUIRED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::NotSealed | Self::Tampered(_) | Self::WrongMailbox | Self::LegacyLayout => {
                StatusCode::BAD_GATEWAY
            }
            Self::CustodianUnavailable(_) | Self::UpstreamUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::StoreRefused { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
            }
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::NotModified => StatusCode::NOT_MODIFIED,
        }
    }

    /// Seconds after which retrying may help, for errors where it can.
    #[must_use]
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Self::CustodianUnavailable(_) | Self::UpstreamUnavailable(_) => Some(5),
            _ => None,
        }
    }

    /// A short machine-readable code (the S3 error code where one fits).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Config { .. } | Self::File { .. } | Self::Upstream(_) => "InternalError",
            Self::NoRoute { .. } | Self::Denied { .. } | Self::InvalidMailbox { .. } => {
                "AccessDenied"
            }
            Self::Unauthenticated => "AccessDenied",
            Self::BadRequest(_) => "InvalidRequest",
            Self::BadDigest(_) => "BadDigest",
            Self::IncompleteBody => "IncompleteBody",
            Self::LengthRequired => "MissingContentLength",
            Self::NotFound => "NoSuchKey",
            Self::RangeNotSatisfiable { .. } => "InvalidRange",
            Self::NotSealed => "NotSealed",
            Self::LegacyLayout => "LegacyLayout",
            Self::Tampered(_) | Self::WrongMailbox => "ObjectVerificationFailed",
            Self::CustodianUnavailable(_) | Self::UpstreamUnavailable(_) => "ServiceUnavailable",
            Self::TooLarge(_) => "EntityTooLarge",
            Self::StoreRefused { .. } => "StoreRefused",
            Self::NotImplemented(_) => "NotImplemented",
            Self::PreconditionFailed => "PreconditionFailed",
            Self::NotModified => "NotModified",
        }
    }

    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<custodia::Error> for Error {
    fn from(e: custodia::Error) -> Self {
        match e {
            custodia::Error::NoResidencyRule { mailbox } => Self::NoRoute {
                bucket: String::new(),
                key: format!("(mailbox {mailbox:?})"),
            },
            custodia::Error::InvalidMailbox { reason, .. } => Self::InvalidMailbox { reason },
            custodia::Error::Denied {
                region,
                custodian,
                denial,
            } => Self::Denied {
                region,
                custodian,
                reason: denial.to_string(),
            },
            custodia::Error::Envelope(custodia_envelope::Error::NotSealed) => Self::NotSealed,
            custodia::Error::Envelope(e) => Self::Tampered(e),
            custodia::Error::Io(e) => Self::Upstream(e.to_string()),
            other if other.is_retryable() => Self::CustodianUnavailable(other.to_string()),
            other => Self::Upstream(other.to_string()),
        }
    }
}

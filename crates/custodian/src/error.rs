//! The custodian crate's one error type, grouped by what the caller can do about it.

use thiserror::Error;

use crate::api::Denial;

/// Everything that can go wrong in the custodian service, its client and its documents.
/// No variant carries key material.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    // ---- the operator must fix configuration or files --------------------------------------
    /// A configuration value is wrong; `field` names it (e.g. `client_ca[1].cert`).
    #[error("config: {field}: {reason}")]
    Config {
        /// Dotted path of the offending field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The keystore cannot be opened: wrong key-encryption key, or the file is damaged.
    #[error("keystore: {0}")]
    Keystore(String),
    /// The keys are marked insecure (development) and the service was not started with `--dev`.
    #[error("keys are marked insecure (development only); start with --dev to use them")]
    InsecureKeys,

    // ---- a document or a peer is not acceptable -------------------------------------------
    /// A signed manifest failed verification (signature, pinned key, serial, expiry).
    #[error("manifest rejected: {0}")]
    Manifest(String),
    /// An approval or revocation document is malformed or does not verify.
    #[error("approval rejected: {0}")]
    Approval(Denial),
    /// The peer sent something that does not follow the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The envelope rejected a stanza, context or header.
    #[error("envelope: {0}")]
    Envelope(#[from] custodia_envelope::Error),

    // ---- a request was refused or could not be made ---------------------------------------
    /// The custodian refused (a typed policy denial).
    #[error("denied: {0}")]
    Denied(Denial),
    /// The custodian answered with an HTTP error.
    #[error("custodian answered {status}: {code}: {detail}")]
    Http {
        /// HTTP status.
        status: u16,
        /// The error body's code.
        code: String,
        /// The error body's detail.
        detail: String,
    },
    /// Could not reach the custodian or the connection broke: worth retrying later.
    #[error("transport: {0}")]
    Transport(String),
    /// TLS setup failed (certificates, keys).
    #[error("tls: {0}")]
    Tls(String),
    /// The audit log could not be written: nothing is released.
    #[error("audit log unavailable: {0}")]
    LogUnavailable(String),
    /// The policy was reloaded while the request was decided: nothing was logged or released;
    /// retry (the connection is re-identified under the new policy).
    #[error("the custodian's policy changed while the request was decided: retry")]
    PolicyChanged,
}

impl Error {
    /// An [`Error::Config`] for `field`.
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    /// Whether retrying the same call later may succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(_) | Self::LogUnavailable(_) | Self::PolicyChanged => true,
            Self::Denied(d) => d.is_retryable(),
            Self::Http { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;

//! The command line's one error type and its exit statuses: every failure carries a message
//! that names the file, field or server at fault, and one of the statuses documented in
//! `docs/CLI.md`.

use core::fmt;

use custodia_custodian::Error as CustodianError;

/// Exit statuses (documented in `docs/CLI.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// 1: the command failed (bad input file, configuration, I/O, refused document, …).
    Failed = 1,
    /// 2: the command line itself is wrong (clap uses 2 too).
    Usage = 2,
    /// 3: a verification failed: an audit log, checkpoint or report does not verify, or an
    /// approval checked with `--check` is not (yet) usable.
    Verification = 3,
    /// 4: a custodian refused (a policy denial, e.g. `approval_required`).
    Denied = 4,
    /// 5: a custodian could not be reached or answered 5xx: trying again later may help.
    Unavailable = 5,
    /// 130: interrupted (Ctrl-C) after saving what was done; run again to resume.
    Interrupted = 130,
}

/// A failure: what went wrong (for `custodia: <message>` on stderr) and the exit status.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: Status,
    pub(crate) message: String,
}

/// Shorthand for the command line's results.
pub(crate) type CliResult<T = ()> = Result<T, Failure>;

impl Failure {
    /// A failure with `status`.
    pub(crate) fn new(status: Status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// Status 1.
    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Self::new(Status::Failed, message)
    }

    /// Status 2.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(Status::Usage, message)
    }

    /// Status 3.
    pub(crate) fn verification(message: impl Into<String>) -> Self {
        Self::new(Status::Verification, message)
    }

    /// The same failure with `what: ` in front of its message.
    #[must_use]
    pub(crate) fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// The process exit code.
    pub(crate) fn code(&self) -> u8 {
        self.status as u8
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<CustodianError> for Failure {
    fn from(e: CustodianError) -> Self {
        let status = match &e {
            CustodianError::Denied(_) => Status::Denied,
            e if e.is_retryable() => Status::Unavailable,
            _ => Status::Failed,
        };
        Self::new(status, e.to_string())
    }
}

impl From<custodia::Error> for Failure {
    fn from(e: custodia::Error) -> Self {
        let status = match &e {
            custodia::Error::Denied { denial, .. } if !denial.is_retryable() => Status::Denied,
            e if e.is_retryable() => Status::Unavailable,
            _ => Status::Failed,
        };
        Self::new(status, e.to_string())
    }
}

impl From<custodia_envelope::Error> for Failure {
    fn from(e: custodia_envelope::Error) -> Self {
        Self::failed(format!("envelope: {e}"))
    }
}

/// Adds context (the file, field or server) to a failing result.
pub(crate) trait Context<T> {
    /// Prefixes the failure's message with `what: `.
    fn context(self, what: impl fmt::Display) -> CliResult<T>;
}

impl<T, E: Into<Failure>> Context<T> for Result<T, E> {
    fn context(self, what: impl fmt::Display) -> CliResult<T> {
        self.map_err(|e| e.into().context(what))
    }
}

/// A failure for an I/O error on `path`.
pub(crate) fn io_error(path: &std::path::Path, e: &std::io::Error) -> Failure {
    Failure::failed(format!("{}: {e}", path.display()))
}

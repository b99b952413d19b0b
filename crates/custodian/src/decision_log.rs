//! What the custodian decides, and the interface every decision goes through before anything
//! is released. [`crate::audit_store::AuditStore`] implements it as a verifiable Merkle log.

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::audit::policy::PolicyDoc;
use crate::audit_store::AuditReceipt;

/// Allowed or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The operation went ahead (a share was released, a stanza rewrapped, a key changed).
    Allow,
    /// Refused.
    Deny,
}

impl Outcome {
    /// `allow` or `deny`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// One decision, with everything an auditor needs. The log splits it into a public entry
/// (the mailbox only as a keyed, salted commitment) and restricted details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Sequence number in the log (assigned on append).
    pub seq: u64,
    /// Unix time, seconds.
    pub time: u64,
    /// `unwrap`, `rewrap`, `rotate`, `retire`, `destroy`, `revoke`.
    pub operation: String,
    /// Caller's region (from its certificate's CA).
    pub caller_region: String,
    /// Caller's name (policy entry name, else certificate identity).
    pub caller_name: String,
    /// SHA-256 of the caller's certificate public key, hex (restricted).
    pub caller_key_hash: String,
    /// Mailbox concerned, if any (restricted; public only as a commitment).
    pub mailbox: Option<String>,
    /// Object concerned, hex, if any (restricted).
    pub object_id: Option<String>,
    /// Key version concerned, if any.
    pub key_version: Option<u32>,
    /// Approval used, if any (hex id).
    pub approval_id: Option<String>,
    /// Allow or deny.
    pub outcome: Outcome,
    /// Why (`in_region`, `approval`, or the denial's name).
    pub reason: String,
    /// Flags raised, e.g. `bulk`.
    pub flags: Vec<String>,
    /// On a `policy` decision: the policy taking effect (restricted; public only as its
    /// hash).
    pub policy: Option<PolicyDoc>,
}

/// Where decisions go. An implementation returns only once the batch is durable.
pub trait DecisionLog: Send + Sync {
    /// Appends a batch (assigning sequence numbers) and returns the proof of it. Must be
    /// durable (fsync'd) before returning `Ok`.
    ///
    /// # Errors
    /// [`crate::Error::LogUnavailable`]: nothing may be released.
    fn append(&self, batch: &mut [Decision]) -> Result<AuditReceipt>;
}

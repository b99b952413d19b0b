//! Wire types of the custodian HTTP API (`docs/API.md`), shared by the service and its client.
//!
//! Binary fields are lowercase hex strings. Unknown fields are refused
//! (`deny_unknown_fields`) so a client cannot believe a field it sent was honoured.

use serde::{Deserialize, Serialize};

use crate::approval::SignedApproval;
use crate::audit_store::AuditReceipt;

/// Most items in one unwrap or rewrap batch.
pub const MAX_BATCH: usize = 1024;

/// One object's stanza to unwrap (or rewrap).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StanzaItem {
    /// The object id (hex, 32 bytes).
    pub object_id: String,
    /// The object's encoded authenticated context (hex).
    pub context: String,
    /// The encoded stanza addressed to this custodian (hex).
    pub stanza: String,
}

/// `POST /v1/unwrap` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnwrapRequest {
    /// The caller's ephemeral X25519 public key (hex, 32 bytes): released shares are
    /// HPKE-sealed to it.
    pub caller_key: String,
    /// A lawful-access approval, for callers outside the region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<SignedApproval>,
    /// The stanzas (at most [`MAX_BATCH`]).
    pub items: Vec<StanzaItem>,
}

/// Why a custodian refused to release (or rewrap) one share. Shared by service and client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Denial {
    /// The caller is outside the region (or the object is not this region's) and brought no
    /// approval.
    ApprovalRequired,
    /// The approval's signatures, fields or format are invalid (tampered, malformed).
    ApprovalInvalid,
    /// Fewer than M distinct configured approvers signed.
    ApprovalInsufficientSignatures,
    /// The approval is not valid yet.
    ApprovalNotYetValid,
    /// The approval has expired.
    ApprovalExpired,
    /// The approval's uses for this mailbox are used up.
    ApprovalUsedUp,
    /// An approver revoked the approval.
    ApprovalRevoked,
    /// The approval does not name this mailbox.
    ApprovalWrongMailbox,
    /// The approval was issued to another caller.
    ApprovalWrongCaller,
    /// The approval was issued for another custodian or region.
    ApprovalWrongCustodian,
    /// The stanza is addressed to another custodian or region.
    WrongCustodian,
    /// No such key (id and version) here.
    UnknownKey,
    /// The key version was destroyed (crypto-shredded).
    KeyDestroyed,
    /// The stanza did not open: relabelled context, wrong object id, or corrupted.
    StanzaInvalid,
    /// The item is malformed (bad hex, bad encoding).
    Malformed,
    /// The caller exceeded its rate limit for this mailbox.
    RateLimited,
    /// The caller's policy entry lacks the role for this operation (or it has no entry).
    RoleMissing,
    /// The operation is only for callers in the custodian's region (rewrap, admin).
    OutOfRegion,
}

impl Denial {
    /// Stable snake_case name (as on the wire and in logs and metrics).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApprovalRequired => "approval_required",
            Self::ApprovalInvalid => "approval_invalid",
            Self::ApprovalInsufficientSignatures => "approval_insufficient_signatures",
            Self::ApprovalNotYetValid => "approval_not_yet_valid",
            Self::ApprovalExpired => "approval_expired",
            Self::ApprovalUsedUp => "approval_used_up",
            Self::ApprovalRevoked => "approval_revoked",
            Self::ApprovalWrongMailbox => "approval_wrong_mailbox",
            Self::ApprovalWrongCaller => "approval_wrong_caller",
            Self::ApprovalWrongCustodian => "approval_wrong_custodian",
            Self::WrongCustodian => "wrong_custodian",
            Self::UnknownKey => "unknown_key",
            Self::KeyDestroyed => "key_destroyed",
            Self::StanzaInvalid => "stanza_invalid",
            Self::Malformed => "malformed",
            Self::RateLimited => "rate_limited",
            Self::RoleMissing => "role_missing",
            Self::OutOfRegion => "out_of_region",
        }
    }

    /// Whether asking again later may succeed (rate limits only).
    #[must_use]
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::RateLimited)
    }
}

impl core::fmt::Display for Denial {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One item's outcome in an unwrap response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum UnwrapResult {
    /// The share, HPKE-sealed to the caller's key (hex, 48 bytes), in the batch's HPKE
    /// context: the k-th released share is the k-th message of that context.
    Share(String),
    /// Refused.
    Denied(Denial),
}

/// `POST /v1/unwrap` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnwrapResponse {
    /// The HPKE encapsulated key of the batch's response context (hex, 32 bytes).
    pub enc: String,
    /// One result per request item, in order.
    pub results: Vec<UnwrapResult>,
    /// The batch's audit-log entries (one per item, in order), the signed checkpoint after
    /// them and their inclusion proofs: what the caller keeps to prove what was logged.
    pub audit: AuditReceipt,
}

/// `POST /v1/rewrap` request: stanzas to move to this custodian's active key version.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewrapRequest {
    /// The stanzas (at most [`MAX_BATCH`]).
    pub items: Vec<StanzaItem>,
}

/// One item's outcome in a rewrap response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RewrapResult {
    /// The new stanza (hex).
    Stanza(String),
    /// Refused.
    Denied(Denial),
}

/// `POST /v1/rewrap` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewrapResponse {
    /// One result per request item, in order.
    pub results: Vec<RewrapResult>,
}

/// An error body (every non-2xx response).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `bad_request`, `forbidden`, `log_unavailable`.
    pub error: String,
    /// Human-readable detail (never key material).
    pub detail: String,
}

/// `POST /v1/keys/{version}/destroy` request: an M-of-N approval of the destruction.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestroyRequest {
    /// A `destroy_key` approval naming this key version and the calling admin.
    pub approval: SignedApproval,
}

/// `GET /healthz` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Always `ok` when served.
    pub status: String,
    /// This custodian's region.
    pub region: String,
    /// This custodian's name.
    pub custodian: String,
    /// The active key version.
    pub active_version: u32,
}

/// The HPKE `info` of an unwrap reply context:
/// `"custodia v1 unwrap reply" || u8 len region || region || u8 len custodian || custodian`.
#[must_use]
pub fn reply_info(region: &str, custodian: &str) -> Vec<u8> {
    let mut info = b"custodia v1 unwrap reply".to_vec();
    for part in [region, custodian] {
        info.push(u8::try_from(part.len()).unwrap_or(u8::MAX));
        info.extend_from_slice(part.as_bytes());
    }
    info
}

/// The AAD of the reply carrying item `index`'s share: `u32be(index) || object_id`.
#[must_use]
pub fn reply_aad(index: usize, object_id: &[u8; 32]) -> Vec<u8> {
    let mut aad = u32::try_from(index)
        .unwrap_or(u32::MAX)
        .to_be_bytes()
        .to_vec();
    aad.extend_from_slice(object_id);
    aad
}

/// `GET /v1/audit/entries` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntriesResponse {
    /// Index of the first entry.
    pub start: u64,
    /// The public entries, as the exact record bytes hashed into the tree.
    pub entries: Vec<String>,
}

/// `GET /v1/audit/proof/...` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofResponse {
    /// The proof's hashes, hex.
    pub proof: Vec<String>,
}

/// `GET /v1/audit/details` response (auditor role only).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetailsResponse {
    /// The key of the public mailbox commitments (hex), so the auditor can check them.
    pub commitment_key: String,
    /// The restricted details.
    pub details: Vec<crate::audit::entry::DetailEntry>,
}

//! Lawful-access and key-destruction approvals: documents signed offline by M of a region's N
//! approvers (`custodia approve`), verified by the custodian before it releases a share to a
//! caller outside the region or destroys a key version.
//!
//! An [`Approval`] names the custodian (region and name), the caller it is issued to (the
//! SHA-256 of the caller certificate's SubjectPublicKeyInfo, see [`caller_key_hash`]), a
//! request id, a purpose, a validity window and an [`Action`]. Each approver signs the
//! approval's *signed bytes* with Ed25519; a [`SignedApproval`] carries the approval and the
//! signatures. [`ApproverSet::verify`] checks a document against the custodian's configured
//! approvers; mailbox coverage, uses and revocation are the caller's to check, against
//! the audit log (uses and revocations are counted from its entries, see `service`).
//!
//! ## Signed bytes
//!
//! Integers are big-endian. Strings are UTF-8, each preceded by its length in bytes.
//! `caller_key_hash` is the 32 raw bytes (the JSON holds them as 64 lowercase hex characters).
//!
//! Lawful access ([`Action::LawfulAccess`]):
//!
//! ```text
//! "custodia lawful access v1"                  25 bytes, ASCII, no terminator
//! u8 len(region)      || region                 2..=16 bytes, a valid region name
//! u8 len(custodian)   || custodian              1..=32 bytes, a valid custodian name
//! caller_key_hash                               32 bytes
//! u16 len(request_id) || request_id             1..=128 bytes of printable ASCII, shown text
//! u16 len(purpose)    || purpose                1..=1024 bytes, shown text (below)
//! u16 count(mailboxes)                          1..=256
//! (u16 len(mailbox)   || mailbox) * count       each a canonical mailbox id (FORMAT.md §2.2),
//!                                               in the order given, no duplicates
//! u64 not_before                                seconds since the Unix epoch, not_before < not_after
//! u64 not_after
//! u32 max_uses_per_mailbox                      >= 1
//! ```
//!
//! Key destruction ([`Action::DestroyKey`]):
//!
//! ```text
//! "custodia key destruction v1"                27 bytes, ASCII, no terminator
//! u8 len(region)      || region
//! u8 len(custodian)   || custodian
//! caller_key_hash                               32 bytes
//! u16 len(request_id) || request_id
//! u16 len(purpose)    || purpose
//! u64 not_before
//! u64 not_after
//! u32 key_version
//! ```
//!
//! *Shown text* ([`is_shown_text`]): no control character, no invisible or format character
//! (bidirectional overrides, zero-width characters, line and paragraph separators), no
//! whitespace but U+0020, none at either end: what an approver reads is what is signed. The
//! same rule holds for a signature's (unsigned, informational) approver name. A document that
//! breaks it is refused when it is written, signed and verified (`ApprovalInvalid`).
//!
//! The approval id ([`ApprovalId`]) is the first 16 bytes of SHA-256(signed bytes): any change
//! to any field changes it, and two JSON spellings of the same approval share it.
//!
//! A revocation ([`Revocation`]) is one approver's Ed25519 signature over
//! `"custodia approval revocation v1" || approval_id` (31 + 16 bytes). Any one configured
//! approver may revoke.
//!
//! ## Verification
//!
//! [`ApproverSet::verify`] applies these rules in order; the first that fails decides the
//! [`Denial`]:
//!
//! 1. [`Denial::ApprovalInvalid`]: a field breaks the limits above, a `public_key` or
//!    `signature` is not lowercase hex of the right length, there are more than
//!    [`MAX_SIGNATURES`] signatures, an approver name is longer than [`MAX_APPROVER_NAME`], or a
//!    signature whose key **is** a configured approver's does not verify over the signed bytes.
//!    One bad signature from a configured approver invalidates the whole document even if M
//!    others verify: the document was changed after that approver signed, or is forged. So a
//!    tampered approval (any field) is `ApprovalInvalid`, not `ApprovalInsufficientSignatures`.
//!    Signatures by keys that are not configured approvers are not verified and do not count.
//! 2. [`Denial::ApprovalWrongCustodian`]: the region or custodian is not this custodian's.
//! 3. [`Denial::ApprovalWrongCaller`]: `caller_key_hash` is not the caller's (constant-time).
//! 4. [`Denial::ApprovalInsufficientSignatures`]: fewer than M **distinct** configured approver
//!    keys signed (an approver signing twice counts once).
//! 5. [`Denial::ApprovalNotYetValid`]: `now < not_before`.
//! 6. [`Denial::ApprovalExpired`]: `now >= not_after`.

use core::fmt;
use core::str::FromStr;

use custodia_envelope::{CustodianName, Randomness, Region};
use ring::digest::{SHA256, digest};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::api::Denial;
use crate::{Error, Result};

/// Domain label of a lawful-access approval's signed bytes.
pub const LAWFUL_ACCESS_LABEL: &[u8] = b"custodia lawful access v1";
/// Domain label of a key-destruction approval's signed bytes.
pub const KEY_DESTRUCTION_LABEL: &[u8] = b"custodia key destruction v1";
/// Domain label of a revocation's signed bytes.
pub const REVOCATION_LABEL: &[u8] = b"custodia approval revocation v1";

/// Longest request id, in bytes.
pub const MAX_REQUEST_ID: usize = 128;
/// Longest purpose, in bytes.
pub const MAX_PURPOSE: usize = 1024;
/// Most mailboxes in one lawful-access approval.
pub const MAX_MAILBOXES: usize = 256;
/// Longest mailbox id, in bytes (the envelope context's value limit).
pub const MAX_MAILBOX: usize = 512;
/// Most signatures a document may carry (configured approvers or not).
pub const MAX_SIGNATURES: usize = 64;
/// Longest (informational) approver name in a signature, in bytes.
pub const MAX_APPROVER_NAME: usize = 128;
/// Most approvers in an [`ApproverSet`].
pub const MAX_APPROVERS: usize = MAX_SIGNATURES;

/// What an approval allows.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum Action {
    /// Release the shares of these mailboxes' objects to the named caller.
    LawfulAccess {
        /// The mailbox ids covered, in the order signed; no duplicates.
        mailboxes: Vec<String>,
        /// How many unwrap batches per mailbox the approval allows (counted from the audit log).
        max_uses_per_mailbox: u32,
    },
    /// Destroy (crypto-shred) one version of this custodian's key.
    DestroyKey {
        /// The key version to destroy.
        key_version: u32,
    },
}

/// The approved request, as the approvers sign it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The custodian's region.
    pub region: String,
    /// The custodian's name within the region.
    pub custodian: String,
    /// Lowercase hex SHA-256 of the requesting caller's certificate SubjectPublicKeyInfo
    /// (see [`caller_key_hash`]).
    pub caller_key_hash: String,
    /// The requester's reference (e.g. the treaty request number), 1..=128 bytes.
    pub request_id: String,
    /// Why, for the record, 1..=1024 bytes.
    pub purpose: String,
    /// Valid from (seconds since the Unix epoch, inclusive).
    pub not_before: u64,
    /// Valid until (seconds since the Unix epoch, exclusive).
    pub not_after: u64,
    /// What is approved.
    pub action: Action,
}

/// An approval's id: the first 16 bytes of SHA-256 of its signed bytes. Displayed and parsed
/// as 32 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApprovalId(pub [u8; 16]);

impl ApprovalId {
    fn of_signed_bytes(bytes: &[u8]) -> Self {
        let d = digest(&SHA256, bytes);
        let mut id = [0; 16];
        id.copy_from_slice(&d.as_ref()[..16]);
        Self(id)
    }
}

impl fmt::Display for ApprovalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ApprovalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApprovalId({self})")
    }
}

impl FromStr for ApprovalId {
    type Err = Error;

    /// Parses 32 lowercase hex characters.
    fn from_str(s: &str) -> Result<Self> {
        decode_hex::<16>(s)
            .map(Self)
            .ok_or(Error::Approval(Denial::ApprovalInvalid))
    }
}

/// The SHA-256 of a caller certificate's DER SubjectPublicKeyInfo: what
/// [`Approval::caller_key_hash`] holds (hex) and [`Expected::caller_key_hash`] expects.
#[must_use]
pub fn caller_key_hash(spki_der: &[u8]) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(digest(&SHA256, spki_der).as_ref());
    out
}

/// Decodes exactly `N` bytes from `2 * N` lowercase hex characters.
fn decode_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Whether `text` is fit to be shown to an approver as it is signed: no control character
/// (line breaks, escape sequences, carriage returns), no invisible or format character
/// (bidirectional overrides, zero-width characters, line and paragraph separators), no
/// whitespace but the plain space, and none at either end. What an approver reads on screen
/// is then what the signed bytes say, character for character.
#[must_use]
pub fn is_shown_text(text: &str) -> bool {
    !text.starts_with(' ')
        && !text.ends_with(' ')
        && text
            .chars()
            .all(|c| c == ' ' || !custodia_envelope::is_invisible(c))
}

fn put_u8_str(out: &mut Vec<u8>, s: &str) -> Result<(), &'static str> {
    let len = u8::try_from(s.len()).map_err(|_| "name too long")?;
    out.push(len);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_u16_str(out: &mut Vec<u8>, s: &str) -> Result<(), &'static str> {
    let len = u16::try_from(s.len()).map_err(|_| "string too long")?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

impl Approval {
    /// Checks every limit of the format and names the first one broken. For tools
    /// (`custodia approve`) that want to tell the operator what is wrong; [`Self::signed_bytes`]
    /// applies the same checks.
    ///
    /// # Errors
    /// A short description of the broken rule.
    pub fn validate(&self) -> Result<(), &'static str> {
        self.encode().map(drop)
    }

    /// The exact bytes the approvers sign (layout in the module documentation), after checking
    /// every limit.
    ///
    /// # Errors
    /// [`Error::Approval`]`(`[`Denial::ApprovalInvalid`]`)` if a field breaks the format's limits
    /// (see [`Self::validate`] for which).
    pub fn signed_bytes(&self) -> Result<Vec<u8>> {
        self.encode()
            .map_err(|_| Error::Approval(Denial::ApprovalInvalid))
    }

    /// The approval's id: the first 16 bytes of SHA-256([`Self::signed_bytes`]).
    ///
    /// # Errors
    /// As [`Self::signed_bytes`].
    pub fn id(&self) -> Result<ApprovalId> {
        Ok(ApprovalId::of_signed_bytes(&self.signed_bytes()?))
    }

    fn encode(&self) -> Result<Vec<u8>, &'static str> {
        Region::new(&self.region).map_err(|_| "region is not a valid region name")?;
        CustodianName::new(&self.custodian)
            .map_err(|_| "custodian is not a valid custodian name")?;
        let caller = decode_hex::<32>(&self.caller_key_hash)
            .ok_or("caller_key_hash must be 64 lowercase hex characters")?;
        if !(1..=MAX_REQUEST_ID).contains(&self.request_id.len()) {
            return Err("request_id must be 1..=128 bytes");
        }
        if !is_shown_text(&self.request_id)
            || !self.request_id.bytes().all(|b| (0x20..0x7f).contains(&b))
        {
            return Err(
                "request_id must be printable ASCII (no look-alike letters from other scripts), \
                 no spaces at either end",
            );
        }
        if !(1..=MAX_PURPOSE).contains(&self.purpose.len()) {
            return Err("purpose must be 1..=1024 bytes");
        }
        if !is_shown_text(&self.purpose) {
            return Err(
                "purpose must be printable text: no control, invisible or format characters, \
                 no line breaks, no spaces at either end",
            );
        }
        if self.not_before >= self.not_after {
            return Err("not_before must be earlier than not_after");
        }

        let (label, tail_len) = match &self.action {
            Action::LawfulAccess {
                mailboxes,
                max_uses_per_mailbox,
            } => {
                if !(1..=MAX_MAILBOXES).contains(&mailboxes.len()) {
                    return Err("an approval names 1..=256 mailboxes");
                }
                if mailboxes
                    .iter()
                    .any(|m| !(1..=MAX_MAILBOX).contains(&m.len()))
                {
                    return Err("each mailbox id must be 1..=512 bytes");
                }
                if mailboxes.iter().any(|m| {
                    custodia_envelope::canonical_mailbox(m).ok().as_deref() != Some(m.as_str())
                }) {
                    return Err(
                        "each mailbox id must be a valid mailbox in canonical form (lowercase \
                         ASCII local part, lowercase IDNA A-label domain; docs/FORMAT.md §2.2)",
                    );
                }
                let mut seen = std::collections::HashSet::with_capacity(mailboxes.len());
                if !mailboxes.iter().all(|m| seen.insert(m.as_str())) {
                    return Err("mailboxes must not repeat");
                }
                if *max_uses_per_mailbox == 0 {
                    return Err("max_uses_per_mailbox must be at least 1");
                }
                let names: usize = mailboxes.iter().map(|m| 2 + m.len()).sum();
                (LAWFUL_ACCESS_LABEL, 2 + names + 8 + 8 + 4)
            }
            Action::DestroyKey { .. } => (KEY_DESTRUCTION_LABEL, 8 + 8 + 4),
        };

        let mut out = Vec::with_capacity(
            label.len()
                + 1
                + self.region.len()
                + 1
                + self.custodian.len()
                + 32
                + 2
                + self.request_id.len()
                + 2
                + self.purpose.len()
                + tail_len,
        );
        out.extend_from_slice(label);
        put_u8_str(&mut out, &self.region)?;
        put_u8_str(&mut out, &self.custodian)?;
        out.extend_from_slice(&caller);
        put_u16_str(&mut out, &self.request_id)?;
        put_u16_str(&mut out, &self.purpose)?;
        match &self.action {
            Action::LawfulAccess {
                mailboxes,
                max_uses_per_mailbox,
            } => {
                let count = u16::try_from(mailboxes.len()).map_err(|_| "too many mailboxes")?;
                out.extend_from_slice(&count.to_be_bytes());
                for m in mailboxes {
                    put_u16_str(&mut out, m)?;
                }
                out.extend_from_slice(&self.not_before.to_be_bytes());
                out.extend_from_slice(&self.not_after.to_be_bytes());
                out.extend_from_slice(&max_uses_per_mailbox.to_be_bytes());
            }
            Action::DestroyKey { key_version } => {
                out.extend_from_slice(&self.not_before.to_be_bytes());
                out.extend_from_slice(&self.not_after.to_be_bytes());
                out.extend_from_slice(&key_version.to_be_bytes());
            }
        }
        Ok(out)
    }
}

/// One approver's signature over an approval's signed bytes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSignature {
    /// The approver's name: informational only (not signed, not checked against the
    /// configuration), at most [`MAX_APPROVER_NAME`] bytes.
    pub approver: String,
    /// The approver's Ed25519 public key (lowercase hex, 32 bytes).
    pub public_key: String,
    /// The Ed25519 signature over the approval's signed bytes (lowercase hex, 64 bytes).
    pub signature: String,
}

/// An approval with its approvers' signatures: what a caller attaches to a request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignedApproval {
    /// The approval.
    pub approval: Approval,
    /// The signatures collected so far (at most [`MAX_SIGNATURES`]).
    pub signatures: Vec<ApprovalSignature>,
}

impl SignedApproval {
    /// A document with no signatures yet.
    #[must_use]
    pub fn new(approval: Approval) -> Self {
        Self {
            approval,
            signatures: Vec::new(),
        }
    }

    /// Appends one approver's signature.
    pub fn add_signature(&mut self, signature: ApprovalSignature) {
        self.signatures.push(signature);
    }
}

/// An approver's Ed25519 signing key (a 32-byte seed). Zeroized on drop; `Debug` shows only
/// the public key.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ApproverKey {
    seed: [u8; 32],
    #[zeroize(skip)]
    public: [u8; 32],
}

impl fmt::Debug for ApproverKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApproverKey")
            .field("public_key", &hex::encode(self.public))
            .field("seed", &"<redacted>")
            .finish()
    }
}

fn keypair(seed: &[u8; 32]) -> Result<Ed25519KeyPair> {
    Ed25519KeyPair::from_seed_unchecked(seed)
        .map_err(|_| Error::config("approver key", "not a usable Ed25519 seed"))
}

impl ApproverKey {
    fn from_seed(seed: [u8; 32]) -> Result<Self> {
        let mut key = Self {
            seed,
            public: [0; 32],
        };
        key.public
            .copy_from_slice(keypair(&key.seed)?.public_key().as_ref());
        Ok(key)
    }

    /// A fresh key from `rng`.
    ///
    /// # Errors
    /// [`Error::Envelope`] if no randomness could be had.
    pub fn generate(rng: &mut dyn Randomness) -> Result<Self> {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill(seed.as_mut())?;
        Self::from_seed(*seed)
    }

    /// A key from its seed as 64 hex characters (surrounding whitespace ignored, so a key
    /// file may end in a newline).
    ///
    /// # Errors
    /// [`Error::Config`] if `s` is not 64 hex characters.
    pub fn from_seed_hex(s: &str) -> Result<Self> {
        let s = s.trim();
        let mut seed = Zeroizing::new([0u8; 32]);
        if s.len() != 64 || hex::decode_to_slice(s, seed.as_mut()).is_err() {
            return Err(Error::config(
                "approver key",
                "must be 64 hex characters (an Ed25519 seed)",
            ));
        }
        Self::from_seed(*seed)
    }

    /// The seed as 64 lowercase hex characters (zeroized when dropped), for saving the key.
    #[must_use]
    pub fn seed_hex(&self) -> Zeroizing<String> {
        let mut buf = Zeroizing::new([0u8; 64]);
        // 32 bytes always fit 64 hex characters.
        let _ = hex::encode_to_slice(self.seed, buf.as_mut());
        let mut out = Zeroizing::new(String::with_capacity(64));
        out.extend(buf.iter().map(|&b| char::from(b)));
        out
    }

    /// The Ed25519 public key.
    #[must_use]
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// Signs `approval` as the approver `name` (informational, at most [`MAX_APPROVER_NAME`]
    /// bytes).
    ///
    /// # Errors
    /// [`Error::Approval`]`(`[`Denial::ApprovalInvalid`]`)` if the approval breaks the format's
    /// limits ([`Approval::validate`] says which); [`Error::Config`] if `name` is too long or
    /// not shown text ([`is_shown_text`]).
    pub fn sign(&self, name: &str, approval: &Approval) -> Result<ApprovalSignature> {
        if name.is_empty() || name.len() > MAX_APPROVER_NAME {
            return Err(Error::config("approver", "name must be 1..=128 bytes"));
        }
        if !is_shown_text(name) {
            return Err(Error::config(
                "approver",
                "name must be printable text: no control, invisible or format characters",
            ));
        }
        let bytes = approval.signed_bytes()?;
        let signature = keypair(&self.seed)?.sign(&bytes);
        Ok(ApprovalSignature {
            approver: name.to_owned(),
            public_key: hex::encode(self.public),
            signature: hex::encode(signature.as_ref()),
        })
    }

    /// Revokes the approval `id` (any one configured approver may).
    #[must_use]
    pub fn revoke(&self, id: &ApprovalId) -> Revocation {
        // A 32-byte seed always makes a key pair (checked when this key was built).
        let signature = keypair(&self.seed)
            .map(|kp| hex::encode(kp.sign(&revocation_bytes(id)).as_ref()))
            .unwrap_or_default();
        Revocation {
            approval_id: id.to_string(),
            public_key: hex::encode(self.public),
            signature,
        }
    }
}

fn revocation_bytes(id: &ApprovalId) -> Vec<u8> {
    let mut out = Vec::with_capacity(REVOCATION_LABEL.len() + 16);
    out.extend_from_slice(REVOCATION_LABEL);
    out.extend_from_slice(&id.0);
    out
}

/// One approver's revocation of an approval, signed over
/// `"custodia approval revocation v1" || approval_id` (16 raw bytes).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// The revoked approval's id (32 lowercase hex characters).
    pub approval_id: String,
    /// The revoking approver's Ed25519 public key (lowercase hex, 32 bytes).
    pub public_key: String,
    /// The Ed25519 signature (lowercase hex, 64 bytes).
    pub signature: String,
}

/// One configured approver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approver {
    /// The approver's name (for logs and configuration).
    pub name: String,
    /// The approver's Ed25519 public key.
    pub public_key: [u8; 32],
}

/// A custodian's N configured approvers and the threshold M of them that must sign.
#[derive(Clone, Debug)]
pub struct ApproverSet {
    approvers: Vec<Approver>,
    threshold: usize,
}

/// What an approval must name to be valid here.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// This custodian's region.
    pub region: &'a Region,
    /// This custodian's name.
    pub custodian: &'a CustodianName,
    /// The requesting caller's certificate key hash ([`caller_key_hash`]).
    pub caller_key_hash: &'a [u8; 32],
}

/// An approval that passed [`ApproverSet::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedApproval {
    /// The approval's id (as recorded in the audit log).
    pub id: ApprovalId,
    /// What it approves.
    pub action: Action,
    /// The approval's request id.
    pub request_id: String,
    /// How many distinct configured approvers signed it (at least the threshold).
    pub signers: usize,
}

impl VerifiedApproval {
    /// Whether this is a lawful-access approval naming `mailbox`.
    #[must_use]
    pub fn covers(&self, mailbox: &str) -> bool {
        match &self.action {
            Action::LawfulAccess { mailboxes, .. } => mailboxes.iter().any(|m| m == mailbox),
            Action::DestroyKey { .. } => false,
        }
    }

    /// The uses allowed per mailbox, for a lawful-access approval.
    #[must_use]
    pub fn max_uses(&self) -> Option<u32> {
        match &self.action {
            Action::LawfulAccess {
                max_uses_per_mailbox,
                ..
            } => Some(*max_uses_per_mailbox),
            Action::DestroyKey { .. } => None,
        }
    }
}

impl ApproverSet {
    /// N approvers (distinct public keys, at most [`MAX_APPROVERS`]) of whom `threshold` (M,
    /// `1 <= M <= N`) must sign.
    ///
    /// # Errors
    /// [`Error::Config`] for field `approvers` otherwise.
    pub fn new(approvers: Vec<Approver>, threshold: usize) -> Result<Self> {
        if approvers.is_empty() || approvers.len() > MAX_APPROVERS {
            return Err(Error::config(
                "approvers",
                format!("between 1 and {MAX_APPROVERS} approvers are needed"),
            ));
        }
        if threshold == 0 || threshold > approvers.len() {
            return Err(Error::config(
                "approvers",
                format!(
                    "threshold {threshold} must be between 1 and the number of approvers ({})",
                    approvers.len()
                ),
            ));
        }
        for (i, a) in approvers.iter().enumerate() {
            if let Some(b) = approvers[..i].iter().find(|b| b.public_key == a.public_key) {
                return Err(Error::config(
                    "approvers",
                    format!(
                        "approvers {:?} and {:?} have the same public key",
                        b.name, a.name
                    ),
                ));
            }
        }
        Ok(Self {
            approvers,
            threshold,
        })
    }

    /// The configured approvers.
    #[must_use]
    pub fn approvers(&self) -> &[Approver] {
        &self.approvers
    }

    /// The threshold M.
    #[must_use]
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    fn index_of(&self, public_key: &[u8; 32]) -> Option<usize> {
        self.approvers
            .iter()
            .position(|a| &a.public_key == public_key)
    }

    /// Verifies a signed approval for this custodian and caller at time `now` (seconds since
    /// the Unix epoch). The rules and their order are in the module documentation. Mailbox
    /// coverage, uses and revocation are left to the caller (they are checked against
    /// the audit log (uses and revocations are counted from its entries, see `service`)).
    ///
    /// # Errors
    /// The [`Denial`] of the first rule broken.
    pub fn verify(
        &self,
        doc: &SignedApproval,
        expected: &Expected<'_>,
        now: u64,
    ) -> Result<VerifiedApproval, Denial> {
        let approval = &doc.approval;
        let bytes = approval.encode().map_err(|_| Denial::ApprovalInvalid)?;
        if doc.signatures.len() > MAX_SIGNATURES {
            return Err(Denial::ApprovalInvalid);
        }
        let mut signed = vec![false; self.approvers.len()];
        for s in &doc.signatures {
            if s.approver.len() > MAX_APPROVER_NAME || !is_shown_text(&s.approver) {
                return Err(Denial::ApprovalInvalid);
            }
            let public_key = decode_hex::<32>(&s.public_key).ok_or(Denial::ApprovalInvalid)?;
            let signature = decode_hex::<64>(&s.signature).ok_or(Denial::ApprovalInvalid)?;
            let Some(index) = self.index_of(&public_key) else {
                continue; // not a configured approver: neither verified nor counted
            };
            UnparsedPublicKey::new(&ED25519, public_key)
                .verify(&bytes, &signature)
                .map_err(|_| Denial::ApprovalInvalid)?;
            signed[index] = true;
        }

        if approval.region != expected.region.as_str()
            || approval.custodian != expected.custodian.as_str()
        {
            return Err(Denial::ApprovalWrongCustodian);
        }
        // Checked by `encode` above.
        let caller = decode_hex::<32>(&approval.caller_key_hash).ok_or(Denial::ApprovalInvalid)?;
        if !bool::from(caller.ct_eq(expected.caller_key_hash)) {
            return Err(Denial::ApprovalWrongCaller);
        }
        let signers = signed.iter().filter(|&&s| s).count();
        if signers < self.threshold {
            return Err(Denial::ApprovalInsufficientSignatures);
        }
        if now < approval.not_before {
            return Err(Denial::ApprovalNotYetValid);
        }
        if now >= approval.not_after {
            return Err(Denial::ApprovalExpired);
        }
        Ok(VerifiedApproval {
            id: ApprovalId::of_signed_bytes(&bytes),
            action: approval.action.clone(),
            request_id: approval.request_id.clone(),
            signers,
        })
    }

    /// Verifies a revocation: it must be signed by any one configured approver.
    ///
    /// # Errors
    /// [`Denial::ApprovalInvalid`] for bad hex or a signature that does not verify;
    /// [`Denial::ApprovalInsufficientSignatures`] if the key is not a configured approver's.
    pub fn verify_revocation(&self, rev: &Revocation) -> Result<ApprovalId, Denial> {
        let id = decode_hex::<16>(&rev.approval_id)
            .map(ApprovalId)
            .ok_or(Denial::ApprovalInvalid)?;
        let public_key = decode_hex::<32>(&rev.public_key).ok_or(Denial::ApprovalInvalid)?;
        let signature = decode_hex::<64>(&rev.signature).ok_or(Denial::ApprovalInvalid)?;
        if self.index_of(&public_key).is_none() {
            return Err(Denial::ApprovalInsufficientSignatures);
        }
        UnparsedPublicKey::new(&ED25519, public_key)
            .verify(&revocation_bytes(&id), &signature)
            .map_err(|_| Denial::ApprovalInvalid)?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change made to an approval.
    type Edit = fn(&mut Approval);

    const NOW: u64 = 1_750_000_000;
    const CALLER: [u8; 32] = [0xc1; 32];

    fn key(i: u8) -> ApproverKey {
        ApproverKey::from_seed_hex(&hex::encode([i; 32])).unwrap()
    }

    fn set(m: usize) -> ApproverSet {
        let approvers = (1..=3)
            .map(|i| Approver {
                name: format!("approver-{i}"),
                public_key: key(i).public_key(),
            })
            .collect();
        ApproverSet::new(approvers, m).unwrap()
    }

    fn approval() -> Approval {
        Approval {
            region: "ie".into(),
            custodian: "ie-dpc".into(),
            caller_key_hash: hex::encode(CALLER),
            request_id: "MLAT-2025-0042".into(),
            purpose: "Court order 17/2025, treaty channel".into(),
            not_before: NOW - 100,
            not_after: NOW + 3600,
            action: Action::LawfulAccess {
                mailboxes: vec!["alice@example.ie".into(), "bob@example.ie".into()],
                max_uses_per_mailbox: 3,
            },
        }
    }

    fn signed_by(a: &Approval, keys: &[u8]) -> SignedApproval {
        let mut doc = SignedApproval::new(a.clone());
        for &i in keys {
            doc.add_signature(key(i).sign(&format!("approver-{i}"), a).unwrap());
        }
        doc
    }

    fn check(
        set: &ApproverSet,
        doc: &SignedApproval,
        now: u64,
    ) -> Result<VerifiedApproval, Denial> {
        let region = Region::new("ie").unwrap();
        let custodian = CustodianName::new("ie-dpc").unwrap();
        set.verify(
            doc,
            &Expected {
                region: &region,
                custodian: &custodian,
                caller_key_hash: &CALLER,
            },
            now,
        )
    }

    #[test]
    fn two_of_three_verifies() {
        let a = approval();
        let v = check(&set(2), &signed_by(&a, &[1, 3]), NOW).unwrap();
        assert_eq!(v.id, a.id().unwrap());
        assert_eq!(v.signers, 2);
        assert_eq!(v.request_id, "MLAT-2025-0042");
        assert!(v.covers("alice@example.ie"));
        assert!(v.covers("bob@example.ie"));
        assert!(!v.covers("carol@example.ie"));
        assert_eq!(v.max_uses(), Some(3));
        let all = check(&set(2), &signed_by(&a, &[1, 2, 3]), NOW).unwrap();
        assert_eq!(all.signers, 3);
    }

    #[test]
    fn one_of_three_is_insufficient() {
        assert_eq!(
            check(&set(2), &signed_by(&approval(), &[2]), NOW),
            Err(Denial::ApprovalInsufficientSignatures)
        );
        assert_eq!(
            check(&set(1), &signed_by(&approval(), &[]), NOW),
            Err(Denial::ApprovalInsufficientSignatures)
        );
    }

    #[test]
    fn same_approver_twice_counts_once() {
        assert_eq!(
            check(&set(2), &signed_by(&approval(), &[1, 1]), NOW),
            Err(Denial::ApprovalInsufficientSignatures)
        );
        // Even under another informational name.
        let a = approval();
        let mut doc = signed_by(&a, &[1]);
        doc.add_signature(key(1).sign("someone-else", &a).unwrap());
        assert_eq!(
            check(&set(2), &doc, NOW),
            Err(Denial::ApprovalInsufficientSignatures)
        );
    }

    #[test]
    fn non_approver_signature_is_ignored() {
        let a = approval();
        // Key 9 is not configured: not counted, not fatal.
        assert_eq!(
            check(&set(2), &signed_by(&a, &[1, 9]), NOW),
            Err(Denial::ApprovalInsufficientSignatures)
        );
        let v = check(&set(2), &signed_by(&a, &[9, 1, 2]), NOW).unwrap();
        assert_eq!(v.signers, 2);
        // A garbage (but well-formed) signature from a non-approver is not even verified.
        let mut doc = signed_by(&a, &[1, 2]);
        let mut junk = key(9).sign("outsider", &a).unwrap();
        junk.signature = "00".repeat(64);
        doc.add_signature(junk);
        assert!(check(&set(2), &doc, NOW).is_ok());
    }

    #[test]
    fn tampered_fields_are_invalid() {
        let tampers: Vec<(&str, Edit)> = vec![
            ("region", |a| a.region = "fr".into()),
            ("custodian", |a| a.custodian = "ie-other".into()),
            ("caller", |a| a.caller_key_hash = hex::encode([0xc2; 32])),
            ("request_id", |a| a.request_id.push('x')),
            ("purpose", |a| a.purpose.push('.')),
            ("not_before", |a| a.not_before -= 1),
            ("not_after", |a| a.not_after += 86_400),
            ("mailbox added", |a| {
                if let Action::LawfulAccess { mailboxes, .. } = &mut a.action {
                    mailboxes.push("carol@example.ie".into());
                }
            }),
            ("mailbox removed", |a| {
                if let Action::LawfulAccess { mailboxes, .. } = &mut a.action {
                    mailboxes.pop();
                }
            }),
            ("mailbox changed", |a| {
                if let Action::LawfulAccess { mailboxes, .. } = &mut a.action {
                    mailboxes[0] = "carol@example.ie".into();
                }
            }),
            ("mailboxes reordered", |a| {
                if let Action::LawfulAccess { mailboxes, .. } = &mut a.action {
                    mailboxes.swap(0, 1);
                }
            }),
            ("max uses", |a| {
                if let Action::LawfulAccess {
                    max_uses_per_mailbox,
                    ..
                } = &mut a.action
                {
                    *max_uses_per_mailbox = 1000;
                }
            }),
            ("action", |a| {
                a.action = Action::DestroyKey { key_version: 1 }
            }),
        ];
        for (what, tamper) in tampers {
            let mut doc = signed_by(&approval(), &[1, 2]);
            tamper(&mut doc.approval);
            assert_eq!(
                check(&set(2), &doc, NOW),
                Err(Denial::ApprovalInvalid),
                "{what}"
            );
        }
    }

    #[test]
    fn one_bad_configured_signature_invalidates() {
        let a = approval();
        // Approver 3 signed a different (earlier) version of the document.
        let mut other = a.clone();
        other.purpose = "draft".into();
        let mut doc = signed_by(&a, &[1, 2]);
        doc.add_signature(key(3).sign("approver-3", &other).unwrap());
        assert_eq!(check(&set(2), &doc, NOW), Err(Denial::ApprovalInvalid));
        // A flipped bit in a signature.
        let mut doc = signed_by(&a, &[1, 2]);
        doc.signatures[1].signature.replace_range(0..2, "ff");
        assert_eq!(check(&set(1), &doc, NOW), Err(Denial::ApprovalInvalid));
    }

    #[test]
    fn malformed_signatures_are_invalid() {
        let a = approval();
        let cases: Vec<fn(&mut ApprovalSignature)> = vec![
            |s| s.public_key.truncate(62),
            |s| s.public_key = s.public_key.to_uppercase(),
            |s| s.signature.push('0'),
            |s| s.signature.replace_range(0..1, "g"),
            |s| s.approver = "x".repeat(MAX_APPROVER_NAME + 1),
        ];
        for (i, f) in cases.into_iter().enumerate() {
            let mut doc = signed_by(&a, &[1, 2, 3]);
            f(&mut doc.signatures[0]);
            assert_eq!(
                check(&set(2), &doc, NOW),
                Err(Denial::ApprovalInvalid),
                "{i}"
            );
        }
        let mut doc = signed_by(&a, &[1, 2]);
        for _ in 0..MAX_SIGNATURES {
            doc.add_signature(doc.signatures[0].clone());
        }
        assert_eq!(check(&set(2), &doc, NOW), Err(Denial::ApprovalInvalid));
    }

    #[test]
    fn wrong_custodian_or_region() {
        let region = Region::new("ie").unwrap();
        let custodian = CustodianName::new("ie-dpc").unwrap();
        let other_region = Region::new("fr").unwrap();
        let other_custodian = CustodianName::new("ie-other").unwrap();
        let doc = signed_by(&approval(), &[1, 2]);
        for (r, c) in [(&other_region, &custodian), (&region, &other_custodian)] {
            let e = Expected {
                region: r,
                custodian: c,
                caller_key_hash: &CALLER,
            };
            assert_eq!(
                set(2).verify(&doc, &e, NOW),
                Err(Denial::ApprovalWrongCustodian)
            );
        }
    }

    #[test]
    fn wrong_caller() {
        let region = Region::new("ie").unwrap();
        let custodian = CustodianName::new("ie-dpc").unwrap();
        let doc = signed_by(&approval(), &[1, 2]);
        let mut other = CALLER;
        other[31] ^= 1;
        let e = Expected {
            region: &region,
            custodian: &custodian,
            caller_key_hash: &other,
        };
        assert_eq!(
            set(2).verify(&doc, &e, NOW),
            Err(Denial::ApprovalWrongCaller)
        );
    }

    #[test]
    fn validity_window() {
        let a = approval();
        let doc = signed_by(&a, &[1, 2]);
        assert_eq!(
            check(&set(2), &doc, a.not_before - 1),
            Err(Denial::ApprovalNotYetValid)
        );
        assert!(check(&set(2), &doc, a.not_before).is_ok());
        assert!(check(&set(2), &doc, a.not_after - 1).is_ok());
        assert_eq!(
            check(&set(2), &doc, a.not_after),
            Err(Denial::ApprovalExpired)
        );
        // Insufficient signatures are reported before the time window.
        assert_eq!(
            check(&set(3), &doc, a.not_after),
            Err(Denial::ApprovalInsufficientSignatures)
        );
    }

    #[test]
    fn signed_bytes_layout() {
        let a = approval();
        let mut want = Vec::new();
        want.extend_from_slice(b"custodia lawful access v1");
        want.extend_from_slice(&[2, b'i', b'e']);
        want.push(6);
        want.extend_from_slice(b"ie-dpc");
        want.extend_from_slice(&CALLER);
        want.extend_from_slice(&[0, 14]);
        want.extend_from_slice(b"MLAT-2025-0042");
        want.extend_from_slice(&[0, 35]);
        want.extend_from_slice(b"Court order 17/2025, treaty channel");
        want.extend_from_slice(&[0, 2, 0, 16]);
        want.extend_from_slice(b"alice@example.ie");
        want.extend_from_slice(&[0, 14]);
        want.extend_from_slice(b"bob@example.ie");
        want.extend_from_slice(&(NOW - 100).to_be_bytes());
        want.extend_from_slice(&(NOW + 3600).to_be_bytes());
        want.extend_from_slice(&[0, 0, 0, 3]);
        assert_eq!(a.signed_bytes().unwrap(), want);

        let mut d = a.clone();
        d.action = Action::DestroyKey { key_version: 7 };
        let mut want = Vec::new();
        want.extend_from_slice(b"custodia key destruction v1");
        want.extend_from_slice(&[2, b'i', b'e', 6]);
        want.extend_from_slice(b"ie-dpc");
        want.extend_from_slice(&CALLER);
        want.extend_from_slice(&[0, 14]);
        want.extend_from_slice(b"MLAT-2025-0042");
        want.extend_from_slice(&[0, 35]);
        want.extend_from_slice(b"Court order 17/2025, treaty channel");
        want.extend_from_slice(&(NOW - 100).to_be_bytes());
        want.extend_from_slice(&(NOW + 3600).to_be_bytes());
        want.extend_from_slice(&[0, 0, 0, 7]);
        assert_eq!(d.signed_bytes().unwrap(), want);
    }

    /// Worked example for docs/API.md, computed independently (Python `cryptography`).
    #[test]
    fn cross_implementation_vector() {
        let k = key(1);
        assert_eq!(
            hex::encode(k.public_key()),
            "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
        );
        let a = approval();
        assert_eq!(
            a.id().unwrap().to_string(),
            "123b760721ab406620f37dbdf4642ffc"
        );
        assert_eq!(
            k.sign("approver-1", &a).unwrap().signature,
            "6c03346fefc7beb73fa2875d496a00d5421c8dd09be40c851daf5f9cf9262fc7\
             7b116a6a2b858a91bd88b4877de09a8aa081b65f1e45b7bbe49aaf0ab2e8ed06"
        );
        assert_eq!(
            k.revoke(&a.id().unwrap()).signature,
            "7d15411c98769083f65a2db77f9b760854244dacc0c92055839011a6b3e96c86\
             499d0524e3ab85ad71953942fce97e3c2837052e070a726aa7e4d8b1f626b601"
        );
        let mut d = a;
        d.action = Action::DestroyKey { key_version: 7 };
        assert_eq!(
            d.id().unwrap().to_string(),
            "1e617da3c3382efd3387415b210c6d10"
        );
        assert_eq!(
            k.sign("approver-1", &d).unwrap().signature,
            "027fc6e54567782321f1c8e1981ea10415d49c8b0d30dca83e13070e9f9b40be\
             ad158d2c72b04b4f6e84f14f9f2888f8a0bb3f26457f4d43acab01adeb348404"
        );
    }

    #[test]
    fn destroy_key_approval_verifies() {
        let mut a = approval();
        a.action = Action::DestroyKey { key_version: 4 };
        let v = check(&set(2), &signed_by(&a, &[2, 3]), NOW).unwrap();
        assert_eq!(v.action, Action::DestroyKey { key_version: 4 });
        assert!(!v.covers("alice@example.ie"));
        assert_eq!(v.max_uses(), None);
    }

    #[test]
    fn id_is_stable_and_changes_with_every_field() {
        let a = approval();
        let id = a.id().unwrap();
        assert_eq!(id, approval().id().unwrap());
        assert_eq!(
            id.0.as_slice(),
            &digest(&SHA256, &a.signed_bytes().unwrap()).as_ref()[..16]
        );
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(text.parse::<ApprovalId>().unwrap(), id);
        assert!(text.to_uppercase().parse::<ApprovalId>().is_err());
        assert!(text[..30].parse::<ApprovalId>().is_err());

        let variants: Vec<Edit> = vec![
            |a| a.region = "fr".into(),
            |a| a.custodian = "ie-dpd".into(),
            |a| a.caller_key_hash = hex::encode([0xc2; 32]),
            |a| a.request_id = "MLAT-2025-0043".into(),
            |a| a.purpose = "x".into(),
            |a| a.not_before += 1,
            |a| a.not_after += 1,
            |a| {
                a.action = Action::LawfulAccess {
                    mailboxes: vec!["alice@example.ie".into()],
                    max_uses_per_mailbox: 3,
                }
            },
            |a| {
                a.action = Action::LawfulAccess {
                    mailboxes: vec!["alice@example.ie".into(), "bob@example.ie".into()],
                    max_uses_per_mailbox: 4,
                }
            },
            |a| a.action = Action::DestroyKey { key_version: 3 },
        ];
        let mut seen = std::collections::HashSet::from([id]);
        for (i, f) in variants.into_iter().enumerate() {
            let mut b = approval();
            f(&mut b);
            assert!(
                seen.insert(b.id().unwrap()),
                "variant {i} did not change the id"
            );
        }
    }

    #[test]
    fn json_round_trip() {
        let doc = signed_by(&approval(), &[1, 2]);
        let json = serde_json::to_string_pretty(&doc).unwrap();
        assert!(json.contains("\"kind\": \"lawful_access\""), "{json}");
        let back: SignedApproval = serde_json::from_str(&json).unwrap();
        assert_eq!(back, doc);
        assert!(check(&set(2), &back, NOW).is_ok());

        let mut d = approval();
        d.action = Action::DestroyKey { key_version: 2 };
        let json = serde_json::to_string(&d).unwrap();
        assert!(
            json.contains(r#""action":{"kind":"destroy_key","key_version":2}"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Approval>(&json).unwrap(), d);

        // Unknown fields are refused, at every level.
        let extra_top = json.replacen('{', r#"{"extra":1,"#, 1);
        assert!(serde_json::from_str::<Approval>(&extra_top).is_err());
        let extra_action = json.replace(r#""key_version":2"#, r#""key_version":2,"mailboxes":[]"#);
        assert!(serde_json::from_str::<Approval>(&extra_action).is_err());

        let rev = key(1).revoke(&d.id().unwrap());
        let back: Revocation = serde_json::from_str(&serde_json::to_string(&rev).unwrap()).unwrap();
        assert_eq!(back, rev);
    }

    #[test]
    fn limits_are_refused() {
        let cases: Vec<(&str, Edit)> = vec![
            ("bad region", |a| a.region = "IE".into()),
            ("bad custodian", |a| a.custodian = "-x".into()),
            ("short caller hash", |a| a.caller_key_hash.truncate(62)),
            ("uppercase caller hash", |a| {
                a.caller_key_hash = a.caller_key_hash.to_uppercase();
            }),
            ("empty request id", |a| a.request_id.clear()),
            ("long request id", |a| a.request_id = "r".repeat(129)),
            ("empty purpose", |a| a.purpose.clear()),
            ("long purpose", |a| a.purpose = "p".repeat(1025)),
            ("empty window", |a| a.not_after = a.not_before),
            ("inverted window", |a| a.not_after = a.not_before - 1),
            ("no mailboxes", |a| {
                a.action = Action::LawfulAccess {
                    mailboxes: vec![],
                    max_uses_per_mailbox: 1,
                }
            }),
            ("too many mailboxes", |a| {
                a.action = Action::LawfulAccess {
                    mailboxes: (0..257).map(|i| format!("m{i}")).collect(),
                    max_uses_per_mailbox: 1,
                }
            }),
            ("empty mailbox", |a| {
                a.action = Action::LawfulAccess {
                    mailboxes: vec![String::new()],
                    max_uses_per_mailbox: 1,
                }
            }),
            ("long mailbox", |a| {
                a.action = Action::LawfulAccess {
                    mailboxes: vec!["m".repeat(513)],
                    max_uses_per_mailbox: 1,
                }
            }),
            ("duplicate mailbox", |a| {
                a.action = Action::LawfulAccess {
                    mailboxes: vec![
                        "a@example.ie".into(),
                        "b@example.ie".into(),
                        "a@example.ie".into(),
                    ],
                    max_uses_per_mailbox: 1,
                }
            }),
            ("zero uses", |a| {
                a.action = Action::LawfulAccess {
                    mailboxes: vec!["a@example.ie".into()],
                    max_uses_per_mailbox: 0,
                }
            }),
            // What a reviewer sees must be what is signed: a mailbox id that repaints the
            // screen (the review's attack), or any non-canonical spelling, is refused.
            ("mailbox with escapes", |a| {
                a.action = Action::LawfulAccess {
                    mailboxes: vec![
                        "aoife@example.ie".into(),
                        "\r\u{1b}[2K  mailboxes         aoife@example.ie".into(),
                    ],
                    max_uses_per_mailbox: 1,
                }
            }),
            ("mailbox not canonical", |a| {
                a.action = Action::LawfulAccess {
                    mailboxes: vec!["Aoife@example.ie".into()],
                    max_uses_per_mailbox: 1,
                }
            }),
            ("mailbox with a Unicode domain", |a| {
                a.action = Action::LawfulAccess {
                    mailboxes: vec!["aoife@éire.ie".into()],
                    max_uses_per_mailbox: 1,
                }
            }),
            ("request id with a line break", |a| {
                a.request_id = "M-43\nM-44".into();
            }),
            ("request id with a Cyrillic look-alike", |a| {
                a.request_id = "ML\u{0410}T-1".into();
            }),
            ("request id with an escape", |a| {
                a.request_id = "M-43\u{1b}[2K".into();
            }),
            ("purpose with a bidi override", |a| {
                a.purpose = "court order \u{202e}71/2026".into();
            }),
            ("purpose with a zero-width space", |a| {
                a.purpose = "court\u{200b}order".into();
            }),
            ("purpose with a paragraph separator", |a| {
                a.purpose = "court order\u{2029}and more".into();
            }),
            ("purpose with a tab", |a| a.purpose = "court\torder".into()),
            ("purpose with a leading space", |a| {
                a.purpose = " court order".into();
            }),
        ];
        for (what, f) in cases {
            let mut a = approval();
            f(&mut a);
            assert!(a.validate().is_err(), "{what}");
            assert!(
                matches!(
                    a.signed_bytes(),
                    Err(Error::Approval(Denial::ApprovalInvalid))
                ),
                "{what}"
            );
            assert!(key(1).sign("approver-1", &a).is_err(), "{what}");
            // A document carrying such an approval (signed bytes forged) is invalid.
            let mut doc = signed_by(&approval(), &[1, 2]);
            doc.approval = a;
            assert_eq!(
                check(&set(2), &doc, NOW),
                Err(Denial::ApprovalInvalid),
                "{what}"
            );
        }
        // The limits themselves are allowed.
        let mut a = approval();
        a.request_id = "r".repeat(128);
        a.purpose = "p".repeat(1024);
        // 256 canonical mailbox ids of the longest length (254 bytes).
        let domain = format!(
            "{}.{}.{}.ie",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(58)
        );
        a.action = Action::LawfulAccess {
            mailboxes: (0..256).map(|i| format!("{i:0>64}@{domain}")).collect(),
            max_uses_per_mailbox: u32::MAX,
        };
        assert!(check(&set(2), &signed_by(&a, &[1, 2]), NOW).is_ok());
        assert!(key(1).sign(&"n".repeat(129), &approval()).is_err());
        assert!(key(1).sign("Judge\u{202e} Byrne", &approval()).is_err());
        assert!(key(1).sign("", &approval()).is_err());
        assert!(key(1).sign("Judge A. Byrne", &approval()).is_ok());
        // A signature whose (unsigned) name would repaint a screen invalidates the document.
        let mut doc = signed_by(&approval(), &[1, 2]);
        doc.signatures[0].approver = "ok\r\u{1b}[1A".into();
        assert_eq!(check(&set(2), &doc, NOW), Err(Denial::ApprovalInvalid));
    }

    #[test]
    fn approver_set_rules() {
        let ap = |i: u8| Approver {
            name: format!("a{i}"),
            public_key: key(i).public_key(),
        };
        assert!(ApproverSet::new(vec![ap(1), ap(2)], 0).is_err());
        assert!(ApproverSet::new(vec![ap(1), ap(2)], 3).is_err());
        assert!(ApproverSet::new(vec![], 1).is_err());
        let dup = Approver {
            name: "other".into(),
            public_key: key(1).public_key(),
        };
        let err = ApproverSet::new(vec![ap(1), ap(2), dup], 2).unwrap_err();
        assert!(
            matches!(err, Error::Config { ref field, .. } if field == "approvers"),
            "{err}"
        );
        let s = ApproverSet::new(vec![ap(1), ap(2)], 2).unwrap();
        assert_eq!(s.threshold(), 2);
        assert_eq!(s.approvers().len(), 2);
    }

    #[test]
    fn revocations() {
        let id = approval().id().unwrap();
        let rev = key(3).revoke(&id);
        assert_eq!(set(2).verify_revocation(&rev), Ok(id));
        // Not a configured approver.
        assert_eq!(
            set(2).verify_revocation(&key(9).revoke(&id)),
            Err(Denial::ApprovalInsufficientSignatures)
        );
        // Moved to another approval id.
        let mut moved = rev.clone();
        moved.approval_id = ApprovalId([7; 16]).to_string();
        assert_eq!(
            set(2).verify_revocation(&moved),
            Err(Denial::ApprovalInvalid)
        );
        // An approval signature is not a revocation signature.
        let mut forged = rev.clone();
        forged.signature = key(3).sign("x", &approval()).unwrap().signature;
        assert_eq!(
            set(2).verify_revocation(&forged),
            Err(Denial::ApprovalInvalid)
        );
        let mut bad_hex = rev;
        bad_hex.public_key.pop();
        assert_eq!(
            set(2).verify_revocation(&bad_hex),
            Err(Denial::ApprovalInvalid)
        );
    }

    #[test]
    fn approver_keys() {
        let mut rng = custodia_envelope::SystemRandomness::new();
        let k = ApproverKey::generate(&mut rng).unwrap();
        let again = ApproverKey::from_seed_hex(&format!("{}\n", k.seed_hex().as_str())).unwrap();
        assert_eq!(again.public_key(), k.public_key());
        assert_ne!(
            ApproverKey::generate(&mut rng).unwrap().public_key(),
            k.public_key()
        );
        let debug = format!("{k:?}");
        assert!(!debug.contains(k.seed_hex().as_str()), "{debug}");
        assert!(debug.contains("redacted"));
        assert!(ApproverKey::from_seed_hex("00").is_err());
        assert!(ApproverKey::from_seed_hex(&"zz".repeat(32)).is_err());
        // Ed25519 signatures are deterministic: a fixed seed gives a fixed signature.
        let a = approval();
        assert_eq!(key(1).sign("x", &a).unwrap(), key(1).sign("x", &a).unwrap());
    }
}

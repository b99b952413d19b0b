//! The custodian's verifiable audit log: the pure core (no file I/O).
//!
//! Every decision becomes one **public entry** ([`entry::PublicEntry`]) and one restricted
//! **detail** ([`entry::DetailEntry`]). The public entries are the leaves of an RFC 6962
//! Merkle tree ([`tree::MerkleTree`], on the C2SP tlog code of the `tlog_tiles` crate), whose
//! heads are published as Ed25519-signed **checkpoints** in the C2SP tlog-checkpoint and
//! signed-note formats ([`checkpoint`]). Anyone holding the custodian's manifest public key
//! can check a copy of the log against a checkpoint, an entry's inclusion, and that a later
//! checkpoint extends an earlier one ([`verify`]); the custodian's own auditors can also check
//! the details against the public entries. [`report`] builds the periodic transparency report.
//!
//! ## Formats
//!
//! **Record** (leaf `i`): the compact JSON of public entry `i` exactly as
//! [`entry::PublicEntry::record`] writes it (serde_json, fields in declaration order, optional
//! fields omitted when empty); its leaf hash is `SHA-256(0x00 || record)`, interior nodes
//! `SHA-256(0x01 || left || right)` (RFC 6962 §2.1). The empty tree's root is
//! `SHA-256("")` = `e3b0c442…b855`. A record that does not re-encode to the same bytes is
//! refused.
//!
//! ```text
//! {"seq":7,"batch":6,"time":1790000000,"operation":"unwrap","caller_region":"eu",
//!  "caller_name":"gw-1","outcome":"allow","reason":"in_region","key_version":1,
//!  "mailbox_commitment":"<64 hex>"}                        (one line, no spaces)
//! ```
//!
//! **Checkpoint** (a signed note whose key name is the origin):
//!
//! ```text
//! custodia/<region>/<custodian>          origin
//! <size>                                 decimal, number of records
//! <base64 root>                          standard base64 of the 32-byte root
//!                                        blank line
//! — custodia/<region>/<custodian> <base64(key id[4] || Ed25519 signature[64])>
//! ```
//!
//! `key id = SHA-256(origin || "\n" || 0x01 || public key)[..4]` (big-endian), and the
//! signature covers the three body lines including the final newline. The verifier key is
//! `origin+<key id, 8 hex>+base64(0x01 || public key)` ([`checkpoint::verifier_key`]).
//!
//! **Mailbox commitment**: `hex(HMAC-SHA256(k, "custodia mailbox v1" || mailbox))`, with `k`
//! from [`crate::keystore::Keystore::audit_commitment_key`].

pub mod checkpoint;
pub mod entry;
pub mod policy;
pub mod records;
pub mod report;
pub mod tree;
pub mod verify;

#[cfg(test)]
pub(crate) mod testlog;

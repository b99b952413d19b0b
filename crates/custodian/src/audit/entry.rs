//! The two halves of one audit-log entry: the public entry (a leaf of the Merkle tree) and
//! its restricted details, linked by the keyed, salted mailbox commitment; and the keyed tags
//! published with them (approval use tags).

use ring::hmac;
use serde::{Deserialize, Serialize};

use super::policy::PolicyDoc;
use crate::decision_log::Outcome;
use crate::{Error, Result};

/// Prefix of the HMAC input of an unsalted (version 1) mailbox commitment.
const LABEL_MAILBOX: &[u8] = b"custodia mailbox v1";
/// Prefix of the HMAC input of a salted (version 2) mailbox commitment.
const LABEL_MAILBOX_SALTED: &[u8] = b"custodia mailbox v2";
/// Prefix of the HMAC input of an approval use tag.
const LABEL_USE: &[u8] = b"custodia approval use v1";
/// Bytes of the per-entry salt of a version 2 commitment.
pub const SALT_LEN: usize = 16;

/// One decision as published: a leaf of the log. Holds no mailbox id, only a keyed
/// commitment to it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PublicEntry {
    /// Position in the log (leaf index), from 0.
    pub seq: u64,
    /// `seq` of the first entry of the batch it was committed in (group commit).
    pub batch: u64,
    /// Unix time, seconds.
    pub time: u64,
    /// `unwrap`, `rewrap`, `rotate`, `retire`, `destroy`, `revoke`, ...
    pub operation: String,
    /// The caller's region.
    pub caller_region: String,
    /// The caller's certificate identity.
    pub caller_name: String,
    /// Allow or deny.
    pub outcome: Outcome,
    /// Why (`in_region`, `approval`, or the denial's name).
    pub reason: String,
    /// Approval used, if any (hex id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// Key version concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    /// Commitment to the mailbox concerned, if any (64 lowercase hex):
    /// [`salted_mailbox_commitment`] under the salt kept in the entry's detail, or, in
    /// entries written before salting, [`mailbox_commitment`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox_commitment: Option<String>,
    /// On an allowed decision under an approval: [`use_tag`] of (approval, mailbox), equal
    /// across the entries of one mailbox under one approval so that uses can be recounted,
    /// unlinkable to anything else without the commitment key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_tag: Option<String>,
    /// On a `policy` entry: [`PolicyDoc::hash`] of the policy then in force (64 lowercase
    /// hex); the policy itself is in the restricted detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_hash: Option<String>,
    /// Flags raised, e.g. `bulk`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
}

/// The restricted half of an entry, for the custodian's own auditors only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DetailEntry {
    /// The public entry's `seq`.
    pub seq: u64,
    /// The mailbox concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<String>,
    /// The object concerned, hex, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// Hash of the caller's certificate key (hex).
    pub caller_key_hash: String,
    /// The salt of the public entry's mailbox commitment (32 lowercase hex); absent in
    /// entries written before salting (their commitment is unsalted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// On a `policy` entry: the policy whose hash the public entry carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyDoc>,
}

fn hmac_hex(key: &[u8; 32], parts: &[&[u8]]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(p);
    }
    hex::encode(ctx.sign().as_ref())
}

/// The unsalted (version 1) commitment of entries written before salting:
/// `hex(HMAC-SHA256(key, "custodia mailbox v1" || mailbox))`. Equal for every entry of one
/// mailbox, so anyone could link them (and, by asking for denials of candidate ids, name
/// them): no longer written, still verified.
#[must_use]
pub fn mailbox_commitment(key: &[u8; 32], mailbox: &str) -> String {
    hmac_hex(key, &[LABEL_MAILBOX, mailbox.as_bytes()])
}

/// The commitment published instead of a mailbox id:
/// `hex(HMAC-SHA256(key, "custodia mailbox v2" || salt || mailbox))`, 64 lowercase hex, with a
/// fresh random `salt` per entry kept in the restricted detail. Without `key` and the salt it
/// neither names the mailbox nor links two entries of the same mailbox; with both, an
/// auditor checks that the detail is the one the public entry committed to.
#[must_use]
pub fn salted_mailbox_commitment(key: &[u8; 32], salt: &[u8; SALT_LEN], mailbox: &str) -> String {
    hmac_hex(key, &[LABEL_MAILBOX_SALTED, salt, mailbox.as_bytes()])
}

/// The approval use tag of `mailbox` under approval `approval_id`:
/// `hex(HMAC-SHA256(key, "custodia approval use v1" || approval_id || 0x00 || mailbox))`.
/// Keyed because approval ids are public: an unkeyed tag would let anyone test candidate
/// mailboxes against it.
#[must_use]
pub fn use_tag(key: &[u8; 32], approval_id: &str, mailbox: &str) -> String {
    hmac_hex(
        key,
        &[LABEL_USE, approval_id.as_bytes(), &[0], mailbox.as_bytes()],
    )
}

impl PublicEntry {
    /// The record: the exact bytes hashed into the tree (leaf hash = `SHA-256(0x00 ||
    /// record)`). Compact JSON, fields in declaration order, empty optional fields omitted.
    #[must_use]
    pub fn record(&self) -> Vec<u8> {
        match serde_json::to_vec(self) {
            Ok(bytes) => bytes,
            // Strings, integers and a unit enum: serde_json cannot fail on them.
            Err(_) => unreachable!("a PublicEntry always serializes"),
        }
    }

    /// Parses a record. Only the canonical encoding is accepted (what [`Self::record`]
    /// writes), so one entry has exactly one leaf hash.
    ///
    /// # Errors
    /// [`Error::Protocol`] if `bytes` is not a public entry in canonical form.
    pub fn from_record(bytes: &[u8]) -> Result<Self> {
        let entry: Self = serde_json::from_slice(bytes)
            .map_err(|e| Error::Protocol(format!("audit: not a public entry: {e}")))?;
        if entry.record() != bytes {
            return Err(Error::Protocol(format!(
                "audit: entry {} is not in canonical form",
                entry.seq
            )));
        }
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> PublicEntry {
        PublicEntry {
            seq: 7,
            batch: 6,
            time: 1_790_000_000,
            operation: "unwrap".into(),
            caller_region: "eu".into(),
            caller_name: "gw-1".into(),
            outcome: Outcome::Allow,
            reason: "in_region".into(),
            approval_id: None,
            key_version: Some(1),
            mailbox_commitment: Some(mailbox_commitment(&[1; 32], "alice")),
            use_tag: None,
            policy_hash: None,
            flags: vec![],
        }
    }

    #[test]
    fn record_format_is_stable() {
        let e = entry();
        let want = format!(
            r#"{{"seq":7,"batch":6,"time":1790000000,"operation":"unwrap","caller_region":"eu","caller_name":"gw-1","outcome":"allow","reason":"in_region","key_version":1,"mailbox_commitment":"{}"}}"#,
            e.mailbox_commitment.as_deref().unwrap()
        );
        assert_eq!(String::from_utf8(e.record()).unwrap(), want);
        assert_eq!(PublicEntry::from_record(want.as_bytes()).unwrap(), e);
    }

    #[test]
    fn non_canonical_and_unknown_records_are_refused() {
        let r = String::from_utf8(entry().record()).unwrap();
        let bad = [
            r.replace(",\"batch\"", ", \"batch\""),
            format!("{r}\n"),
            r.replace("{\"seq\":7,\"batch\":6,", "{\"batch\":6,\"seq\":7,"),
            r.replace("\"in_region\"", "\"in_\\u0072egion\""),
            r.replace("\"key_version\":1", "\"key_version\":1,\"x\":1"),
            r.replace("\"key_version\":1", "\"flags\":[]"),
            r.replace("\"allow\"", "\"maybe\""),
            r.replace("\"seq\":7,", ""),
        ];
        for b in bad {
            assert!(PublicEntry::from_record(b.as_bytes()).is_err(), "{b}");
        }
    }

    #[test]
    fn commitment_is_keyed_hmac() {
        let key = [9u8; 32];
        let c = mailbox_commitment(&key, "alice");
        assert_eq!(c.len(), 64);
        assert_eq!(c, c.to_lowercase());
        // Independent recomputation.
        let k = hmac::Key::new(hmac::HMAC_SHA256, &key);
        let tag = hmac::sign(&k, b"custodia mailbox v1alice");
        assert_eq!(c, hex::encode(tag.as_ref()));
        assert_ne!(c, mailbox_commitment(&key, "alicf"));
        assert_ne!(c, mailbox_commitment(&[8; 32], "alice"));
    }

    #[test]
    fn the_api_md_example_values_hold() {
        // docs/API.md §6.3: the commitment key of the example keystore (seed 2a × 32).
        let key: [u8; 32] =
            hex::decode("f32ead34cd9f0e3fadcf4cb9e07ac49dda568413b2a1ba293f8abc970ed665d0")
                .unwrap()
                .try_into()
                .unwrap();
        let salt: [u8; SALT_LEN] = core::array::from_fn(|i| u8::try_from(i).unwrap());
        let salt2: [u8; SALT_LEN] = core::array::from_fn(|i| u8::try_from(i + 16).unwrap());
        let alice = "alice@example.ie";
        assert_eq!(
            salted_mailbox_commitment(&key, &salt, alice),
            "57112c14164dcdc396c6072ecebe527d08700f401eaa0f2f8fb26024555149d9"
        );
        assert_eq!(
            salted_mailbox_commitment(&key, &salt2, alice),
            "c6d5503567d3ce8e5ac11d973ce3290a6812621d137b5175d872e77de4ca8618"
        );
        assert_eq!(
            use_tag(&key, "123b760721ab406620f37dbdf4642ffc", alice),
            "f9501d74c01dac60e1bac5c08fdb2dba91076bce7a783e4696a0efbc821db485"
        );
        assert_eq!(
            mailbox_commitment(&key, alice),
            "d432ba8ad206c10dcd510bd9b3984ce5756217dfe4abfd32c4b033fb51e4612c"
        );
    }

    #[test]
    fn salted_commitments_and_use_tags_are_keyed_hmacs() {
        let key = [9u8; 32];
        let k = hmac::Key::new(hmac::HMAC_SHA256, &key);
        let salt = [7u8; SALT_LEN];
        let mut input = b"custodia mailbox v2".to_vec();
        input.extend_from_slice(&salt);
        input.extend_from_slice(b"alice");
        let c = salted_mailbox_commitment(&key, &salt, "alice");
        assert_eq!(c, hex::encode(hmac::sign(&k, &input).as_ref()));
        assert_ne!(c, salted_mailbox_commitment(&key, &[6; SALT_LEN], "alice"));
        assert_ne!(c, mailbox_commitment(&key, "alice"));
        let t = use_tag(&key, "ab12", "alice");
        assert_eq!(
            t,
            hex::encode(hmac::sign(&k, b"custodia approval use v1ab12\0alice").as_ref())
        );
        assert_ne!(t, use_tag(&key, "ab12", "alicf"));
        assert_ne!(t, use_tag(&key, "ab13", "alice"));
        assert_ne!(t, use_tag(&[8; 32], "ab12", "alice"));
    }

    #[test]
    fn detail_round_trips_and_refuses_unknown_fields() {
        let d = DetailEntry {
            seq: 3,
            mailbox: Some("alice".into()),
            object_id: None,
            caller_key_hash: "ab".into(),
            salt: None,
            policy: None,
        };
        let j = serde_json::to_string(&d).unwrap();
        assert_eq!(j, r#"{"seq":3,"mailbox":"alice","caller_key_hash":"ab"}"#);
        assert_eq!(serde_json::from_str::<DetailEntry>(&j).unwrap(), d);
        assert!(
            serde_json::from_str::<DetailEntry>(&j.replace("\"seq\"", "\"x\":1,\"seq\"")).is_err()
        );
    }
}

//! The two halves of one audit-log entry: the public entry (a leaf of the Merkle tree) and
//! its restricted details, linked by the keyed mailbox commitment.

use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::decision_log::Outcome;
use crate::{Error, Result};

/// Prefix of the HMAC input of a mailbox commitment.
const LABEL_MAILBOX: &[u8] = b"custodia mailbox v1";

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
    /// [`mailbox_commitment`] of the mailbox concerned, if any (64 lowercase hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox_commitment: Option<String>,
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
}

/// The keyed commitment to a mailbox id published instead of the id:
/// `hex(HMAC-SHA256(key, "custodia mailbox v1" || mailbox))`, 64 lowercase hex characters.
/// Without `key`, equal commitments show only that two entries concern the same mailbox.
#[must_use]
pub fn mailbox_commitment(key: &[u8; 32], mailbox: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(LABEL_MAILBOX);
    ctx.update(mailbox.as_bytes());
    hex::encode(ctx.sign().as_ref())
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
    fn detail_round_trips_and_refuses_unknown_fields() {
        let d = DetailEntry {
            seq: 3,
            mailbox: Some("alice".into()),
            object_id: None,
            caller_key_hash: "ab".into(),
        };
        let j = serde_json::to_string(&d).unwrap();
        assert_eq!(j, r#"{"seq":3,"mailbox":"alice","caller_key_hash":"ab"}"#);
        assert_eq!(serde_json::from_str::<DetailEntry>(&j).unwrap(), d);
        assert!(
            serde_json::from_str::<DetailEntry>(&j.replace("\"seq\"", "\"x\":1,\"seq\"")).is_err()
        );
    }
}

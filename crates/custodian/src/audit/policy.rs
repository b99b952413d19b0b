//! The policy document a `policy` entry commits to: who may ask for what, and who approves
//! lawful access (approver keys and M, client CAs and their CRLs per region, callers' roles).
//! Pure data: [`crate::policy`] builds it from the configuration.

use ring::digest;
use serde::{Deserialize, Serialize};

/// Prefix of the hashed encoding of a policy.
const LABEL_POLICY: &[u8] = b"custodia policy v1\n";

/// The effective policy, as written to a `policy` entry's restricted detail. Lists are sorted
/// (approvers by key, CAs by region, roots and CRLs by fingerprint, callers by region and
/// identity), so that reordering a configuration changes nothing; certificates and CRLs are
/// named by the SHA-256 of their DER.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    /// The custodian's region.
    pub region: String,
    /// The custodian's name.
    pub custodian: String,
    /// M: approver signatures a lawful-access approval needs (0 when no approvers are set).
    pub approval_threshold: u64,
    /// The approvers (N).
    pub approvers: Vec<PolicyApprover>,
    /// Client CAs: a caller's region is the region of the CA that issued its certificate.
    pub client_cas: Vec<PolicyCa>,
    /// Callers named in the policy and their roles.
    pub callers: Vec<PolicyCaller>,
}

/// One approver.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PolicyApprover {
    /// The approver's name.
    pub name: String,
    /// Ed25519 public key, 64 lowercase hex.
    pub public_key: String,
}

/// One region's client CA.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PolicyCa {
    /// The region its callers belong to.
    pub region: String,
    /// SHA-256 of each root certificate's DER, lowercase hex.
    pub roots: Vec<String>,
    /// SHA-256 of each CRL's DER, lowercase hex.
    pub crls: Vec<String>,
}

/// One caller entry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PolicyCaller {
    /// The caller's region.
    pub region: String,
    /// The certificate identity it matches.
    pub identity: String,
    /// The name decisions are logged under.
    pub name: String,
    /// Its roles (`unwrap`, `rewrap`, `admin`, `auditor`), sorted.
    pub roles: Vec<String>,
}

impl PolicyDoc {
    /// The document's encoding: compact JSON, fields in declaration order.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        match serde_json::to_vec(self) {
            Ok(b) => b,
            // Strings, integers and lists of them: serde_json cannot fail on them.
            Err(_) => unreachable!("a PolicyDoc always serializes"),
        }
    }

    /// `hex(SHA-256("custodia policy v1\n" || encode()))`, 64 lowercase hex: what the public
    /// `policy` entry carries.
    #[must_use]
    pub fn hash(&self) -> String {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(LABEL_POLICY);
        ctx.update(&self.encode());
        hex::encode(ctx.finish().as_ref())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn doc() -> PolicyDoc {
        PolicyDoc {
            region: "ie".into(),
            custodian: "c1".into(),
            approval_threshold: 2,
            approvers: vec![PolicyApprover {
                name: "judge".into(),
                public_key: "00".repeat(32),
            }],
            client_cas: vec![PolicyCa {
                region: "ie".into(),
                roots: vec!["11".repeat(32)],
                crls: vec![],
            }],
            callers: vec![PolicyCaller {
                region: "ie".into(),
                identity: "gw".into(),
                name: "gw".into(),
                roles: vec!["unwrap".into()],
            }],
        }
    }

    #[test]
    fn hash_is_labelled_sha256_of_the_compact_json() {
        let d = doc();
        let mut input = b"custodia policy v1\n".to_vec();
        input.extend_from_slice(&serde_json::to_vec(&d).unwrap());
        assert_eq!(
            d.hash(),
            hex::encode(digest::digest(&digest::SHA256, &input).as_ref())
        );
        let round: PolicyDoc = serde_json::from_slice(&d.encode()).unwrap();
        assert_eq!(round.hash(), d.hash());
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = doc().hash();
        let edits: [fn(&mut PolicyDoc); 6] = [
            |d| d.approval_threshold = 1,
            |d| d.approvers[0].public_key = "01".repeat(32),
            |d| d.client_cas[0].region = "us".into(),
            |d| d.client_cas[0].crls.push("22".repeat(32)),
            |d| d.callers[0].roles.push("admin".into()),
            |d| d.callers.clear(),
        ];
        for edit in edits {
            let mut d = doc();
            edit(&mut d);
            assert_ne!(d.hash(), base);
        }
    }
}

//! Test helper: a deterministic log of public entries and details, its tree and checkpoint.

use super::checkpoint::sign_checkpoint;
use super::entry::{
    DetailEntry, PublicEntry, SALT_LEN, mailbox_commitment, salted_mailbox_commitment, use_tag,
};
use super::policy::PolicyDoc;
use super::tree::MerkleTree;
use crate::decision_log::Outcome;
use crate::keystore::ManifestSigner;

/// The test log's origin.
pub(crate) const ORIGIN: &str = "custodia/eu/custodian-a";
/// The mailbox commitment key of the test log.
pub(crate) const COMMITMENT_KEY: [u8; 32] = [0x5a; 32];
/// 2026-10-20T00:00:00Z.
pub(crate) const T0: u64 = 1_792_454_400;

/// The custodian's signer (fixed seed).
pub(crate) fn signer() -> ManifestSigner {
    ManifestSigner::from_seed([0x42; 32])
}

/// A log, honest and signed.
pub(crate) struct TestLog {
    pub(crate) entries: Vec<PublicEntry>,
    pub(crate) details: Vec<DetailEntry>,
    pub(crate) records: Vec<Vec<u8>>,
    pub(crate) tree: MerkleTree,
    pub(crate) checkpoint: String,
}

/// The mailbox of entry `i`, if it has one.
pub(crate) fn mailbox_of(i: u64) -> Option<String> {
    (i % 7 != 3).then(|| format!("mbx-{}@example.org", i % 11))
}

/// Entries before this one are written as before salting (unsalted commitments, no use
/// tags); the later ones as now.
pub(crate) const FIRST_SALTED: u64 = 20;

/// The policy of the test log's `policy` entries (entry `i` with `i % 13 == 6`).
pub(crate) fn policy(i: u64) -> PolicyDoc {
    PolicyDoc {
        region: "eu".into(),
        custodian: "custodian-a".into(),
        approval_threshold: 1 + i / 26,
        approvers: vec![],
        client_cas: vec![],
        callers: vec![],
    }
}

/// `n` entries in batches of 1 to 4, every field kind exercised, twelve hours apart from
/// [`T0`].
pub(crate) fn entries(n: u64) -> (Vec<PublicEntry>, Vec<DetailEntry>) {
    const OPS: [&str; 4] = ["unwrap", "rewrap", "unwrap", "rotate"];
    let (mut publics, mut details) = (Vec::new(), Vec::new());
    let (mut batch, mut batches) = (0, 0);
    for i in 0..n {
        if i == batch + 1 + batches % 4 {
            batch = i;
            batches += 1;
        }
        let is_policy = i % 13 == 6;
        let mailbox = mailbox_of(i).filter(|_| !is_policy);
        let approval = i % 5 == 2 && !is_policy;
        let allow = i % 6 != 5;
        let salted = i >= FIRST_SALTED;
        let salt = [u8::try_from(i % 256).unwrap(); SALT_LEN];
        let approval_id = approval.then(|| format!("{i:032x}"));
        publics.push(PublicEntry {
            seq: i,
            batch,
            time: T0 + i * 43_200,
            operation: if is_policy {
                "policy"
            } else {
                OPS[usize::try_from(i % 4).unwrap()]
            }
            .into(),
            caller_region: if i % 3 == 0 { "us" } else { "eu" }.into(),
            caller_name: format!("gw-{}", i % 2),
            outcome: if allow { Outcome::Allow } else { Outcome::Deny },
            reason: if approval { "approval" } else { "in_region" }.into(),
            approval_id: approval_id.clone(),
            key_version: (i % 4 != 3).then_some(1 + u32::try_from(i % 2).unwrap()),
            mailbox_commitment: mailbox.as_deref().map(|m| {
                if salted {
                    salted_mailbox_commitment(&COMMITMENT_KEY, &salt, m)
                } else {
                    mailbox_commitment(&COMMITMENT_KEY, m)
                }
            }),
            use_tag: match (&approval_id, &mailbox) {
                (Some(id), Some(m)) if salted && allow => Some(use_tag(&COMMITMENT_KEY, id, m)),
                _ => None,
            },
            policy_hash: is_policy.then(|| policy(i).hash()),
            flags: if i % 9 == 4 {
                vec!["bulk".into()]
            } else {
                vec![]
            },
        });
        details.push(DetailEntry {
            seq: i,
            mailbox: mailbox.clone(),
            object_id: (i % 2 == 0).then(|| format!("{:064x}", i * 977)),
            caller_key_hash: format!("{:064x}", i % 2),
            salt: (salted && mailbox.is_some()).then(|| hex::encode(salt)),
            policy: is_policy.then(|| policy(i)),
        });
    }
    (publics, details)
}

/// The records of `entries`.
pub(crate) fn records_of(entries: &[PublicEntry]) -> Vec<Vec<u8>> {
    entries.iter().map(PublicEntry::record).collect()
}

/// The tree of `records`.
pub(crate) fn tree_of(records: &[Vec<u8>]) -> MerkleTree {
    let mut tree = MerkleTree::new();
    for r in records {
        tree.append(r).unwrap();
    }
    tree
}

/// A checkpoint over all of `records`, signed by `signer`.
pub(crate) fn checkpoint_of(records: &[Vec<u8>], signer: &ManifestSigner) -> String {
    let tree = tree_of(records);
    sign_checkpoint(ORIGIN, tree.size(), &tree.root(), signer).unwrap()
}

/// An honest log of `n` entries.
pub(crate) fn build(n: u64) -> TestLog {
    let (entries, details) = entries(n);
    let records = records_of(&entries);
    let tree = tree_of(&records);
    let checkpoint = sign_checkpoint(ORIGIN, tree.size(), &tree.root(), &signer()).unwrap();
    TestLog {
        entries,
        details,
        records,
        tree,
        checkpoint,
    }
}

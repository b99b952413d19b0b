//! What an outside auditor runs: checks of a copy of the log, of one entry, and of two
//! checkpoints, against the custodian's manifest public key alone; and, for the custodian's
//! own auditors, of the restricted details against the public entries.

use subtle::ConstantTimeEq as _;

use super::checkpoint::verify_checkpoint;
use super::entry::{
    DetailEntry, PublicEntry, SALT_LEN, mailbox_commitment, salted_mailbox_commitment, use_tag,
};
use super::tree::{Hash, MerkleTree, verify_consistency, verify_inclusion};
use crate::{Error, Result};

fn bad(reason: impl core::fmt::Display) -> Error {
    Error::Protocol(format!("audit: {reason}"))
}

/// Checks the sequencing of entry `index`: `seq == index`, and `batch` is either `seq` (it
/// opens a batch) or the previous entry's `batch` (it continues one); so `batch <= seq`.
fn check_sequence(entry: &PublicEntry, index: u64, previous_batch: Option<u64>) -> Result<()> {
    if entry.seq != index {
        return Err(bad(format!("entry {index} has seq {}", entry.seq)));
    }
    let continues = previous_batch.is_some_and(|b| b == entry.batch);
    if entry.batch != entry.seq && !continues {
        return Err(bad(format!(
            "entry {index} claims batch {}, which is neither itself nor its predecessor's",
            entry.batch
        )));
    }
    Ok(())
}

/// Verifies a whole copy of the log against a checkpoint: the checkpoint is signed by
/// `public_key` for `origin`; every record is a canonical [`PublicEntry`] with `seq` equal to
/// its index and a consistent `batch` (its own `seq`, or its predecessor's `batch`); and the
/// tree of **all** records has exactly the checkpoint's size and root. Any edit, deletion,
/// insertion, reordering, truncation or unsigned append fails.
///
/// # Errors
/// [`Error::Protocol`] naming the first problem found.
pub fn verify_log(
    records: &[Vec<u8>],
    checkpoint_note: &str,
    origin: &str,
    public_key: &[u8; 32],
) -> Result<()> {
    let checkpoint = verify_checkpoint(checkpoint_note, origin, public_key)?;
    if records.len() as u64 != checkpoint.size {
        return Err(bad(format!(
            "the log has {} entries, the checkpoint {}",
            records.len(),
            checkpoint.size
        )));
    }
    let mut tree = MerkleTree::new();
    let mut previous_batch = None;
    for (index, record) in (0u64..).zip(records) {
        let entry = PublicEntry::from_record(record)?;
        check_sequence(&entry, index, previous_batch)?;
        previous_batch = Some(entry.batch);
        tree.append(record)?;
    }
    if tree.root() != checkpoint.root {
        return Err(bad(
            "the log's root differs from the checkpoint's: entries were changed",
        ));
    }
    Ok(())
}

/// Verifies that `record` is entry `index` of the log signed by `checkpoint_note`
/// (inclusion `proof` at the checkpoint's size), and returns it. Checks `seq == index` and
/// `batch <= seq`.
///
/// # Errors
/// [`Error::Protocol`] if the checkpoint, the proof or the record does not verify.
pub fn verify_entry(
    record: &[u8],
    index: u64,
    proof: &[Hash],
    checkpoint_note: &str,
    origin: &str,
    public_key: &[u8; 32],
) -> Result<PublicEntry> {
    let checkpoint = verify_checkpoint(checkpoint_note, origin, public_key)?;
    verify_inclusion(proof, index, checkpoint.size, &checkpoint.root, record)?;
    let entry = PublicEntry::from_record(record)?;
    if entry.seq != index || entry.batch > entry.seq {
        return Err(bad(format!(
            "entry {index} has seq {} and batch {}",
            entry.seq, entry.batch
        )));
    }
    Ok(entry)
}

/// Verifies that the log of `new_note` extends the log of `old_note` (both signed by
/// `public_key` for `origin`) with the consistency `proof`: nothing signed before was
/// changed or removed.
///
/// # Errors
/// [`Error::Protocol`] if either checkpoint or the proof does not verify, or the log shrank.
pub fn verify_checkpoints_consistent(
    old_note: &str,
    new_note: &str,
    proof: &[Hash],
    origin: &str,
    public_key: &[u8; 32],
) -> Result<()> {
    let old = verify_checkpoint(old_note, origin, public_key)?;
    let new = verify_checkpoint(new_note, origin, public_key)?;
    verify_consistency(proof, old.size, &old.root, new.size, &new.root)
}

/// Verifies the restricted details against the public entries (the custodian's own
/// auditors, who hold the commitment key): one detail per entry, in the same order with the
/// same `seq`; an entry's mailbox commitment recomputes from its detail's mailbox and salt
/// (unsalted for entries written before salting); its use tag, if any, from the detail's
/// mailbox and the entry's approval; its policy hash from the detail's policy. Comparisons
/// are constant-time. Errors name the `seq`, never a mailbox.
///
/// # Errors
/// [`Error::Protocol`] at the first mismatch.
pub fn verify_details(
    public: &[PublicEntry],
    details: &[DetailEntry],
    commitment_key: &[u8; 32],
) -> Result<()> {
    if public.len() != details.len() {
        return Err(bad(format!(
            "{} public entries but {} details",
            public.len(),
            details.len()
        )));
    }
    for (p, d) in public.iter().zip(details) {
        if p.seq != d.seq {
            return Err(bad(format!(
                "public entry {} is matched with detail {}",
                p.seq, d.seq
            )));
        }
        verify_commitment(p, d, commitment_key)?;
        verify_use_tag(p, d, commitment_key)?;
        let expected = d.policy.as_ref().map(super::policy::PolicyDoc::hash);
        if !same(p.policy_hash.as_deref(), expected.as_deref()) {
            return Err(bad(format!(
                "entry {}: the policy hash does not match the detail's policy",
                p.seq
            )));
        }
    }
    Ok(())
}

/// Whether two optional strings are equal (constant-time when both are present).
fn same(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => bool::from(a.as_bytes().ct_eq(b.as_bytes())),
        _ => false,
    }
}

fn verify_commitment(p: &PublicEntry, d: &DetailEntry, key: &[u8; 32]) -> Result<()> {
    let expected = match (&d.mailbox, &d.salt) {
        (None, None) => None,
        (Some(mailbox), None) => Some(mailbox_commitment(key, mailbox)),
        (Some(mailbox), Some(salt)) => {
            let salt: [u8; SALT_LEN] = hex::decode(salt)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad(format!("entry {}: the detail's salt is malformed", p.seq)))?;
            Some(salted_mailbox_commitment(key, &salt, mailbox))
        }
        (None, Some(_)) => {
            return Err(bad(format!("entry {}: a salt but no mailbox", p.seq)));
        }
    };
    match (&p.mailbox_commitment, expected) {
        (None, None) => Ok(()),
        (Some(published), Some(expected)) => {
            if bool::from(published.as_bytes().ct_eq(expected.as_bytes())) {
                Ok(())
            } else {
                Err(bad(format!(
                    "entry {}: the mailbox commitment does not match the detail",
                    p.seq
                )))
            }
        }
        (Some(_), None) => Err(bad(format!(
            "entry {}: a mailbox commitment but no mailbox in the detail",
            p.seq
        ))),
        (None, Some(_)) => Err(bad(format!(
            "entry {}: a mailbox in the detail but no commitment",
            p.seq
        ))),
    }
}

fn verify_use_tag(p: &PublicEntry, d: &DetailEntry, key: &[u8; 32]) -> Result<()> {
    let Some(published) = &p.use_tag else {
        // Written since use tags exist (a salted entry), an allowed use must carry its tag:
        // else the public recount of uses would miss it.
        let untagged_use = p.outcome == super::super::decision_log::Outcome::Allow
            && p.approval_id.is_some()
            && d.mailbox.is_some()
            && d.salt.is_some();
        if untagged_use {
            return Err(bad(format!(
                "entry {}: an allowed use of an approval without its use tag",
                p.seq
            )));
        }
        return Ok(());
    };
    let expected = match (p.outcome, &p.approval_id, &d.mailbox) {
        (super::super::decision_log::Outcome::Allow, Some(id), Some(m)) => use_tag(key, id, m),
        _ => {
            return Err(bad(format!(
                "entry {}: a use tag on an entry that is not an allowed use of an approval",
                p.seq
            )));
        }
    };
    if bool::from(published.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(bad(format!(
            "entry {}: the use tag does not match the detail",
            p.seq
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::checkpoint::sign_checkpoint;
    use crate::audit::testlog::{
        COMMITMENT_KEY, ORIGIN, build, checkpoint_of, records_of, signer, tree_of,
    };
    use crate::audit::tree::leaf_hash;
    use crate::decision_log::Outcome;
    use crate::keystore::ManifestSigner;

    const N: u64 = 50;

    fn ix(i: u64) -> usize {
        usize::try_from(i).unwrap()
    }

    fn pk() -> [u8; 32] {
        signer().public_key()
    }

    fn check(records: &[Vec<u8>], note: &str) -> Result<()> {
        verify_log(records, note, ORIGIN, &pk())
    }

    /// A named edit of a public entry.
    type Edit = (&'static str, fn(&mut PublicEntry));

    /// One edit of every field kind.
    fn edits() -> Vec<Edit> {
        vec![
            ("seq", |e| e.seq += 1),
            ("batch", |e| {
                e.batch = if e.batch == 0 { 1 } else { e.batch - 1 }
            }),
            ("time", |e| e.time += 1),
            ("operation", |e| e.operation.push('x')),
            ("caller_region", |e| e.caller_region = "xx".into()),
            ("caller_name", |e| e.caller_name.push('x')),
            ("outcome", |e| {
                e.outcome = match e.outcome {
                    Outcome::Allow => Outcome::Deny,
                    Outcome::Deny => Outcome::Allow,
                };
            }),
            ("reason", |e| e.reason.push('x')),
            ("approval_id", |e| {
                e.approval_id = match e.approval_id.take() {
                    Some(_) => None,
                    None => Some("ab".into()),
                };
            }),
            ("key_version", |e| {
                e.key_version = Some(e.key_version.map_or(9, |v| v + 1));
            }),
            ("mailbox_commitment", |e| {
                e.mailbox_commitment = match e.mailbox_commitment.take() {
                    Some(_) => None,
                    None => Some(hex::encode([1u8; 32])),
                };
            }),
            ("use_tag", |e| {
                e.use_tag = match e.use_tag.take() {
                    Some(_) => None,
                    None => Some(hex::encode([2u8; 32])),
                };
            }),
            ("policy_hash", |e| {
                e.policy_hash = match e.policy_hash.take() {
                    Some(_) => None,
                    None => Some(hex::encode([4u8; 32])),
                };
            }),
            ("flags", |e| e.flags.push("quiet".into())),
        ]
    }

    #[test]
    fn accepts_the_honest_log_and_rejects_every_single_entry_edit() {
        let log = build(N);
        check(&log.records, &log.checkpoint).unwrap();
        for index in [0usize, 1, 3, 17, 48, 49] {
            for (field, edit) in edits() {
                let mut entries = log.entries.clone();
                edit(&mut entries[index]);
                assert_ne!(entries[index], log.entries[index]);
                let records = records_of(&entries);
                assert!(
                    check(&records, &log.checkpoint).is_err(),
                    "edit of {field} at {index} went unnoticed"
                );
            }
            // A raw byte flip anywhere in the record.
            for at in [
                0,
                log.records[index].len() / 2,
                log.records[index].len() - 2,
            ] {
                let mut records = log.records.clone();
                records[index][at] ^= 0x01;
                assert!(check(&records, &log.checkpoint).is_err());
            }
        }
    }

    #[test]
    fn rejects_deletion_reordering_insertion_truncation_and_unsigned_appends() {
        let log = build(N);
        let note = &log.checkpoint;
        // Delete one (raw, and with the rest renumbered).
        for k in [0usize, 10, 49] {
            let mut records = log.records.clone();
            records.remove(k);
            assert!(check(&records, note).is_err());
            let mut entries = log.entries.clone();
            entries.remove(k);
            for (i, e) in entries.iter_mut().enumerate() {
                e.seq = i as u64;
                e.batch = e.batch.min(e.seq);
            }
            assert!(check(&records_of(&entries), note).is_err());
        }
        // Reorder two (raw, and with seq and batch fixed up).
        let mut records = log.records.clone();
        records.swap(5, 20);
        assert!(check(&records, note).is_err());
        let mut entries = log.entries.clone();
        entries.swap(5, 20);
        for (i, e) in entries.iter_mut().enumerate() {
            e.seq = i as u64;
            e.batch = e.seq;
        }
        assert!(check(&records_of(&entries), note).is_err());
        let mut entries = log.entries.clone();
        let (a, b) = (entries[5].clone(), entries[20].clone());
        entries[5] = PublicEntry {
            seq: 5,
            batch: a.batch,
            ..b
        };
        entries[20] = PublicEntry {
            seq: 20,
            batch: b.batch,
            ..a
        };
        assert!(check(&records_of(&entries), note).is_err());
        // Insert one.
        let mut records = log.records.clone();
        records.insert(7, log.records[7].clone());
        assert!(check(&records, note).is_err());
        // Truncate the last k.
        for k in 1..=5 {
            let records = &log.records[..log.records.len() - k];
            assert!(check(records, note).is_err());
        }
        // Append without re-signing.
        let longer = build(N + 1);
        assert!(check(&longer.records, note).is_err());
        check(&longer.records, &longer.checkpoint).unwrap();
        // An empty copy against the checkpoint; an empty log is fine with its own.
        assert!(check(&[], note).is_err());
        check(&[], &checkpoint_of(&[], &signer())).unwrap();
    }

    #[test]
    fn rejects_forged_checkpoints_and_wrong_origin() {
        let log = build(N);
        let other = ManifestSigner::from_seed([0x43; 32]);
        let forged = checkpoint_of(&log.records, &other);
        assert!(check(&log.records, &forged).is_err());
        assert!(verify_log(&log.records, &forged, ORIGIN, &other.public_key()).is_ok());
        assert!(verify_log(&log.records, &log.checkpoint, "custodia/eu/other", &pk()).is_err());
        let elsewhere = sign_checkpoint(
            "custodia/us/custodian-a",
            log.tree.size(),
            &log.tree.root(),
            &signer(),
        )
        .unwrap();
        assert!(check(&log.records, &elsewhere).is_err());
        assert!(verify_log(&log.records, &elsewhere, "custodia/us/custodian-a", &pk()).is_ok());
    }

    #[test]
    fn a_resigned_rewritten_history_is_caught_by_consistency() {
        let honest = build(N);
        let (k, s) = (pk(), signer());
        // The custodian rewrites entry 3, rebuilds the tree and signs with its real key.
        let mut entries = honest.entries.clone();
        entries[3].outcome = Outcome::Deny;
        entries[3].reason = "rate_limited".into();
        let mut records = records_of(&entries);
        let rewritten = tree_of(&records);
        let same_size = sign_checkpoint(ORIGIN, N, &rewritten.root(), &s).unwrap();
        // On its own, the rewritten log verifies.
        verify_log(&records, &same_size, ORIGIN, &k).unwrap();
        // Against an earlier honest checkpoint, no proof the custodian can make holds.
        let proof = rewritten.consistency_proof(N, N).unwrap();
        assert!(
            verify_checkpoints_consistent(&honest.checkpoint, &same_size, &proof, ORIGIN, &k)
                .is_err()
        );
        records.push(build(N + 1).records[ix(N)].clone());
        let grown = tree_of(&records);
        let grown_note = sign_checkpoint(ORIGIN, N + 1, &grown.root(), &s).unwrap();
        verify_log(&records, &grown_note, ORIGIN, &k).unwrap();
        for old in [4u64, 10, 32, N] {
            let old_note =
                sign_checkpoint(ORIGIN, old, &honest.tree.root_at(old).unwrap(), &s).unwrap();
            let proof = grown.consistency_proof(old, N + 1).unwrap();
            assert!(
                verify_checkpoints_consistent(&old_note, &grown_note, &proof, ORIGIN, &k).is_err(),
                "rewrite hidden from the checkpoint at {old}"
            );
            // The honest tree's proof does not help either.
            let honest_proof = honest.tree.consistency_proof(old, N).unwrap();
            assert!(
                verify_checkpoints_consistent(&old_note, &grown_note, &honest_proof, ORIGIN, &k)
                    .is_err()
            );
        }
        // Checkpoints from before entry 3 are (rightly) consistent with the rewrite.
        let early = sign_checkpoint(ORIGIN, 3, &honest.tree.root_at(3).unwrap(), &s).unwrap();
        let proof = grown.consistency_proof(3, N + 1).unwrap();
        verify_checkpoints_consistent(&early, &grown_note, &proof, ORIGIN, &k).unwrap();
    }

    #[test]
    fn consistency_between_honest_checkpoints() {
        let log = build(N);
        let s = signer();
        let note = |n: u64| sign_checkpoint(ORIGIN, n, &log.tree.root_at(n).unwrap(), &s).unwrap();
        let notes: Vec<String> = (0..=N).map(note).collect();
        let mut pairs: Vec<(u64, u64)> = Vec::new();
        for new in 0..=12 {
            pairs.extend((0..=new).map(|old| (old, new)));
        }
        pairs.extend([(1, N), (13, 31), (16, 32), (17, 49), (31, N), (N, N)]);
        for (old, new) in pairs {
            let proof = log.tree.consistency_proof(old, new).unwrap();
            let (o, n) = (&notes[ix(old)], &notes[ix(new)]);
            verify_checkpoints_consistent(o, n, &proof, ORIGIN, &pk()).unwrap();
            if old < new {
                // Swapped (a shrinking log) fails.
                assert!(verify_checkpoints_consistent(n, o, &proof, ORIGIN, &pk()).is_err());
            }
        }
        // A forged newer checkpoint fails even with a correct proof.
        let forged = checkpoint_of(&log.records, &ManifestSigner::from_seed([1; 32]));
        let proof = log.tree.consistency_proof(10, N).unwrap();
        assert!(verify_checkpoints_consistent(&notes[10], &forged, &proof, ORIGIN, &pk()).is_err());
    }

    #[test]
    fn entries_verify_by_inclusion() {
        let log = build(N);
        for i in 0..N {
            let proof = log.tree.inclusion_proof(i, N).unwrap();
            let r = &log.records[ix(i)];
            let e = verify_entry(r, i, &proof, &log.checkpoint, ORIGIN, &pk()).unwrap();
            assert_eq!(e, log.entries[ix(i)]);
            let other = &log.records[ix((i + 1) % N)];
            assert!(verify_entry(other, i, &proof, &log.checkpoint, ORIGIN, &pk()).is_err());
            assert!(verify_entry(r, (i + 1) % N, &proof, &log.checkpoint, ORIGIN, &pk()).is_err());
        }
        let proof = log.tree.inclusion_proof(0, N).unwrap();
        let forged = checkpoint_of(&log.records, &ManifestSigner::from_seed([2; 32]));
        assert!(verify_entry(&log.records[0], 0, &proof, &forged, ORIGIN, &pk()).is_err());
        assert!(verify_entry(&log.records[0], N, &proof, &log.checkpoint, ORIGIN, &pk()).is_err());
        // A signed log whose entry 1 claims seq 2: the proof holds but the entry is refused.
        let mut entries = log.entries[..2].to_vec();
        entries[1].seq = 2;
        let records = records_of(&entries);
        let tree = tree_of(&records);
        let note = sign_checkpoint(ORIGIN, 2, &tree.root(), &signer()).unwrap();
        let proof = tree.inclusion_proof(1, 2).unwrap();
        verify_inclusion(&proof, 1, 2, &tree.root(), &records[1]).unwrap();
        assert!(verify_entry(&records[1], 1, &proof, &note, ORIGIN, &pk()).is_err());
        assert!(verify_log(&records, &note, ORIGIN, &pk()).is_err());
        assert_eq!(leaf_hash(&records[0]), leaf_hash(&log.records[0]));
    }

    #[test]
    fn details_verify_against_public_entries() {
        let log = build(N);
        let key = COMMITMENT_KEY;
        verify_details(&log.entries, &log.details, &key).unwrap();
        verify_details(&[], &[], &key).unwrap();
        assert!(verify_details(&log.entries, &log.details, &[0; 32]).is_err());
        // A detail whose mailbox differs (never echoed in the error).
        let i = (0..ix(N))
            .find(|&i| log.details[i].mailbox.is_some())
            .unwrap();
        let mut details = log.details.clone();
        let secret = "someone-else@example.org";
        details[i].mailbox = Some(secret.into());
        let e = verify_details(&log.entries, &details, &key).unwrap_err();
        assert!(!e.to_string().contains(secret), "{e}");
        // Missing, extra, out of order, mismatched seq.
        let mut missing = log.details.clone();
        missing.remove(7);
        assert!(verify_details(&log.entries, &missing, &key).is_err());
        let mut extra = log.details.clone();
        extra.push(log.details[0].clone());
        assert!(verify_details(&log.entries, &extra, &key).is_err());
        let mut swapped = log.details.clone();
        swapped.swap(1, 2);
        assert!(verify_details(&log.entries, &swapped, &key).is_err());
        // A mailbox on either side only.
        let j = (0..ix(N))
            .find(|&j| log.details[j].mailbox.is_none())
            .unwrap();
        let mut added = log.details.clone();
        added[j].mailbox = Some("mbx-1@example.org".into());
        assert!(verify_details(&log.entries, &added, &key).is_err());
        let mut dropped = log.details.clone();
        dropped[i].mailbox = None;
        assert!(verify_details(&log.entries, &dropped, &key).is_err());
    }

    #[test]
    fn salts_use_tags_and_policies_are_checked() {
        use crate::audit::testlog::FIRST_SALTED;
        let log = build(N);
        let key = COMMITMENT_KEY;
        let salted = (ix(FIRST_SALTED)..ix(N))
            .find(|&i| log.details[i].salt.is_some())
            .unwrap();
        // A salt changed, dropped (read as an unsalted commitment), added to an old entry.
        for edit in [
            |d: &mut DetailEntry| d.salt = Some(hex::encode([0xee; SALT_LEN])),
            |d: &mut DetailEntry| d.salt = None,
            |d: &mut DetailEntry| d.salt = Some("zz".into()),
        ] {
            let mut details = log.details.clone();
            edit(&mut details[salted]);
            assert!(verify_details(&log.entries, &details, &key).is_err());
        }
        let old = (0..ix(FIRST_SALTED))
            .find(|&i| log.details[i].mailbox.is_some())
            .unwrap();
        let mut details = log.details.clone();
        details[old].salt = Some(hex::encode([0; SALT_LEN]));
        assert!(verify_details(&log.entries, &details, &key).is_err());
        // Salted commitments of one mailbox differ; unsalted ones repeat.
        let m = log.details[salted].mailbox.clone();
        let again = (salted + 1..ix(N))
            .find(|&j| log.details[j].mailbox == m)
            .unwrap();
        assert_ne!(
            log.entries[salted].mailbox_commitment,
            log.entries[again].mailbox_commitment
        );
        // A use tag edited, dropped from a use (allowed), added where no use happened.
        let tagged = (0..ix(N))
            .find(|&i| log.entries[i].use_tag.is_some())
            .unwrap();
        let mut entries = log.entries.clone();
        entries[tagged].use_tag = Some(hex::encode([3u8; 32]));
        assert!(verify_details(&entries, &log.details, &key).is_err());
        entries[tagged].use_tag = None;
        assert!(verify_details(&entries, &log.details, &key).is_err());
        let untagged = (0..ix(N))
            .find(|&i| log.entries[i].use_tag.is_none() && log.entries[i].approval_id.is_none())
            .unwrap();
        let mut entries = log.entries.clone();
        entries[untagged].use_tag = Some(hex::encode([3u8; 32]));
        assert!(verify_details(&entries, &log.details, &key).is_err());
        // A policy swapped in the detail, or a hash on another entry.
        let p = (0..ix(N))
            .find(|&i| log.details[i].policy.is_some())
            .unwrap();
        let mut details = log.details.clone();
        if let Some(doc) = details[p].policy.as_mut() {
            doc.approval_threshold = 9;
        }
        assert!(verify_details(&log.entries, &details, &key).is_err());
        let mut details = log.details.clone();
        details[p].policy = None;
        assert!(verify_details(&log.entries, &details, &key).is_err());
        let mut entries = log.entries.clone();
        entries[p + 1].policy_hash = log.entries[p].policy_hash.clone();
        assert!(verify_details(&entries, &log.details, &key).is_err());
    }
}

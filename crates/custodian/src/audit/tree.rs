//! The RFC 6962 Merkle tree of the log, in memory, on the C2SP tlog code of `tlog_tiles` (a
//! port of Go's `golang.org/x/mod/sumdb/tlog`): the tree is kept as its *stored hashes* (every
//! complete subtree's hash, about two per record), from which the root of any earlier size and
//! every inclusion and consistency proof are computed.
//!
//! Leaf hash `SHA-256(0x00 || record)`, node hash `SHA-256(0x01 || left || right)`. The root
//! of the empty tree is `SHA-256("")` (RFC 6962 §2.1; `tlog_tiles::tlog::EMPTY_HASH`).

use tlog_tiles::tlog::{self, HashReader};

use crate::{Error, Result};

/// A SHA-256 hash: a leaf, an interior node or a root.
pub type Hash = [u8; 32];

/// Longest inclusion proof of a tree with at most 2^64 leaves.
const MAX_INCLUSION_PROOF: usize = 64;
/// Longest consistency proof of trees with at most 2^64 leaves (generous).
const MAX_CONSISTENCY_PROOF: usize = 2 * 64;

fn proof_error(what: &str, e: impl core::fmt::Display) -> Error {
    Error::Protocol(format!("audit: {what}: {e}"))
}

/// An append-only Merkle tree, in memory. Cloning copies every stored hash.
#[derive(Default, Clone)]
pub struct MerkleTree {
    /// The stored hashes, in `tlog::stored_hash_index` order.
    stored: Vec<tlog::Hash>,
    size: u64,
}

impl core::fmt::Debug for MerkleTree {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MerkleTree")
            .field("size", &self.size)
            .field("root", &hex::encode(self.root()))
            .finish()
    }
}

impl HashReader for MerkleTree {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog::Hash>, tlog::Error> {
        indexes
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| self.stored.get(i).copied())
                    .ok_or(tlog::Error::IndexesNotInTree)
            })
            .collect()
    }
}

impl MerkleTree {
    /// An empty tree.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of records (leaves).
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a record (its leaf hash is `SHA-256(0x00 || record)`); returns its index.
    ///
    /// # Errors
    /// Only on an internal inconsistency of the stored hashes (never in practice).
    pub fn append(&mut self, record: &[u8]) -> Result<u64> {
        let index = self.size;
        let hashes = tlog::stored_hashes(index, record, self)
            .map_err(|e| proof_error("cannot append", e))?;
        if self.stored.len() as u64 != tlog::stored_hash_index(0, index) {
            return Err(Error::Protocol("audit: stored hashes out of step".into()));
        }
        self.stored.extend(hashes);
        self.size += 1;
        Ok(index)
    }

    /// The root of the whole tree (`SHA-256("")` when empty).
    #[must_use]
    pub fn root(&self) -> Hash {
        // The current size is always within the tree.
        self.root_at(self.size).unwrap_or_default()
    }

    /// The root the tree had when it held `size` records.
    ///
    /// # Errors
    /// [`Error::Protocol`] if `size` is larger than the tree.
    pub fn root_at(&self, size: u64) -> Result<Hash> {
        if size > self.size {
            return Err(Error::Protocol(format!(
                "audit: size {size} is beyond the log ({})",
                self.size
            )));
        }
        tlog::tree_hash(size, self)
            .map(|h| h.0)
            .map_err(|e| proof_error("root", e))
    }

    /// The proof that record `index` is in the tree of size `size` (RFC 6962 audit path,
    /// leaf to root; empty for a tree of one record).
    ///
    /// # Errors
    /// [`Error::Protocol`] unless `index < size <= self.size()`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>> {
        if index >= size || size > self.size {
            return Err(Error::Protocol(format!(
                "audit: no inclusion proof of {index} in {size} (log size {})",
                self.size
            )));
        }
        let proof =
            tlog::prove_record(size, index, self).map_err(|e| proof_error("inclusion", e))?;
        Ok(proof.into_iter().map(|h| h.0).collect())
    }

    /// The proof that the tree of size `new` extends the tree of size `old` (RFC 6962
    /// consistency proof). Empty when `old` is 0 or `old == new`.
    ///
    /// # Errors
    /// [`Error::Protocol`] unless `old <= new <= self.size()`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>> {
        if old > new || new > self.size {
            return Err(Error::Protocol(format!(
                "audit: no consistency proof from {old} to {new} (log size {})",
                self.size
            )));
        }
        if old == 0 {
            return Ok(Vec::new());
        }
        let proof = tlog::prove_tree(new, old, self).map_err(|e| proof_error("consistency", e))?;
        Ok(proof.into_iter().map(|h| h.0).collect())
    }
}

/// The leaf hash of a record: `SHA-256(0x00 || record)`.
#[must_use]
pub fn leaf_hash(record: &[u8]) -> Hash {
    tlog::record_hash(record).0
}

fn to_tlog(proof: &[Hash]) -> Vec<tlog::Hash> {
    proof.iter().copied().map(tlog::Hash).collect()
}

/// Checks that `proof` shows `record` at `index` in the tree of `size` records with `root`.
///
/// # Errors
/// [`Error::Protocol`] if it does not.
pub fn verify_inclusion(
    proof: &[Hash],
    index: u64,
    size: u64,
    root: &Hash,
    record: &[u8],
) -> Result<()> {
    if index >= size {
        return Err(Error::Protocol(format!(
            "audit: index {index} is not in a log of size {size}"
        )));
    }
    if proof.len() > MAX_INCLUSION_PROOF {
        return Err(Error::Protocol("audit: inclusion proof too long".into()));
    }
    tlog::check_record(
        &to_tlog(proof),
        size,
        tlog::Hash(*root),
        index,
        tlog::record_hash(record),
    )
    .map_err(|e| proof_error("inclusion proof does not verify", e))
}

/// Checks that `proof` shows the tree (`new_size`, `new_root`) extends the tree
/// (`old_size`, `old_root`). Every tree extends the empty one (`old_size` 0, whose root must
/// be `SHA-256("")`, with an empty proof); equal sizes need equal roots and an empty proof.
///
/// # Errors
/// [`Error::Protocol`] if it does not.
pub fn verify_consistency(
    proof: &[Hash],
    old_size: u64,
    old_root: &Hash,
    new_size: u64,
    new_root: &Hash,
) -> Result<()> {
    if old_size > new_size {
        return Err(Error::Protocol(format!(
            "audit: the log shrank from {old_size} to {new_size}"
        )));
    }
    if proof.len() > MAX_CONSISTENCY_PROOF {
        return Err(Error::Protocol("audit: consistency proof too long".into()));
    }
    if old_size == 0 {
        if !proof.is_empty() || *old_root != tlog::EMPTY_HASH.0 {
            return Err(Error::Protocol(
                "audit: bad consistency proof from the empty log".into(),
            ));
        }
        return Ok(());
    }
    tlog::check_tree(
        &to_tlog(proof),
        new_size,
        tlog::Hash(*new_root),
        old_size,
        tlog::Hash(*old_root),
    )
    .map_err(|e| proof_error("consistency proof does not verify", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::digest::{SHA256, digest};

    fn tree(n: u64) -> MerkleTree {
        let mut t = MerkleTree::new();
        for i in 0..n {
            assert_eq!(t.append(format!("record {i}").as_bytes()).unwrap(), i);
        }
        t
    }

    /// RFC 6962 §2.1 MTH, written out independently.
    fn mth(leaves: &[Vec<u8>]) -> Hash {
        let h = |parts: &[&[u8]]| -> Hash {
            let mut all = Vec::new();
            for p in parts {
                all.extend_from_slice(p);
            }
            digest(&SHA256, &all).as_ref().try_into().unwrap()
        };
        match leaves.len() {
            0 => h(&[]),
            1 => h(&[&[0], &leaves[0]]),
            n => {
                // The largest power of two smaller than n.
                let k = 1 << (n - 1).ilog2();
                h(&[&[1], &mth(&leaves[..k]), &mth(&leaves[k..])])
            }
        }
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        let t = MerkleTree::new();
        assert_eq!(t.size(), 0);
        assert_eq!(
            hex::encode(t.root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(t.root_at(0).unwrap(), t.root());
        assert!(t.root_at(1).is_err());
        assert!(t.inclusion_proof(0, 0).is_err());
        assert_eq!(t.consistency_proof(0, 0).unwrap(), Vec::<Hash>::new());
    }

    #[test]
    fn roots_match_rfc6962_at_every_size() {
        let t = tree(70);
        let leaves: Vec<Vec<u8>> = (0..70)
            .map(|i| format!("record {i}").into_bytes())
            .collect();
        for n in 0..=70u64 {
            assert_eq!(
                t.root_at(n).unwrap(),
                mth(&leaves[..usize::try_from(n).unwrap()]),
                "size {n}"
            );
        }
        assert_eq!(t.root(), t.root_at(70).unwrap());
        assert_eq!(leaf_hash(b"x"), mth(&[b"x".to_vec()]));
        assert!(t.root_at(71).is_err());
    }

    #[test]
    fn inclusion_proofs_verify_at_every_index_and_several_sizes() {
        let t = tree(40);
        for size in [1u64, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 32, 33, 40] {
            let root = t.root_at(size).unwrap();
            for i in 0..size {
                let record = format!("record {i}");
                let p = t.inclusion_proof(i, size).unwrap();
                verify_inclusion(&p, i, size, &root, record.as_bytes()).unwrap();
                // Wrong record, wrong index, wrong size, wrong root, tampered proof.
                assert!(verify_inclusion(&p, i, size, &root, b"other").is_err());
                if size > 1 {
                    let j = (i + 1) % size;
                    assert!(verify_inclusion(&p, j, size, &root, record.as_bytes()).is_err());
                    let mut bad = p.clone();
                    bad[0][0] ^= 1;
                    assert!(verify_inclusion(&bad, i, size, &root, record.as_bytes()).is_err());
                    let mut longer = p.clone();
                    longer.push([0; 32]);
                    assert!(verify_inclusion(&longer, i, size, &root, record.as_bytes()).is_err());
                }
                assert!(verify_inclusion(&p, i, size, &[0; 32], record.as_bytes()).is_err());
            }
            assert!(t.inclusion_proof(size, size).is_err());
            assert!(verify_inclusion(&[], size, size, &root, b"record").is_err());
        }
        assert!(t.inclusion_proof(0, 41).is_err());
        assert!(verify_inclusion(&[[0; 32]; 65], 0, 2, &[0; 32], b"r").is_err());
    }

    #[test]
    fn consistency_proofs_verify_for_all_pairs() {
        let t = tree(20);
        for new in 0..=20u64 {
            let new_root = t.root_at(new).unwrap();
            for old in 0..=new {
                let old_root = t.root_at(old).unwrap();
                let p = t.consistency_proof(old, new).unwrap();
                verify_consistency(&p, old, &old_root, new, &new_root).unwrap();
                // A different old root (a rewritten history) does not verify.
                let mut forged = old_root;
                forged[31] ^= 1;
                assert!(verify_consistency(&p, old, &forged, new, &new_root).is_err());
                // Every tree extends the empty one; otherwise the new root is bound.
                let mut forged = new_root;
                forged[0] ^= 1;
                let forged_new = verify_consistency(&p, old, &old_root, new, &forged);
                assert_eq!(forged_new.is_ok(), old == 0);
                if !p.is_empty() {
                    let mut bad = p.clone();
                    bad.pop();
                    assert!(verify_consistency(&bad, old, &old_root, new, &new_root).is_err());
                }
            }
            assert!(t.consistency_proof(new + 1, new).is_err());
        }
        assert!(t.consistency_proof(0, 21).is_err());
        let (r5, r9) = (t.root_at(5).unwrap(), t.root_at(9).unwrap());
        assert!(verify_consistency(&[], 9, &r9, 5, &r5).is_err());
        assert!(verify_consistency(&[[0; 32]; 129], 5, &r5, 9, &r9).is_err());
    }

    #[test]
    fn clone_keeps_history() {
        let a = tree(10);
        let mut b = a.clone();
        b.append(b"more").unwrap();
        assert_eq!(b.root_at(10).unwrap(), a.root());
        assert_ne!(b.root(), a.root());
        assert!(format!("{b:?}").contains("size: 11"));
    }
}

//! Signed checkpoints: the log's size and root in the C2SP tlog-checkpoint format, signed as a
//! C2SP signed note by the custodian's manifest key (Ed25519), with the origin as key name.
//!
//! ```text
//! custodia/eu/custodian-a
//! 50
//! x8DBczCgRcLfohPj8Nf9pAHZFLn+FLB6CW7IEmJuZRE=
//!
//! — custodia/eu/custodian-a Sb5FQon5Aw3mlNW1YrwnyGbwG2DDzu2BGH79ED6EFczUf+gxdy67i0XqVG2jOgmwqB7uk492PGTh/uRxXpwopW1KdQs=
//! ```
//!
//! (the unit tests' 50-entry log, Ed25519 seed `42` × 32, verifier key
//! `custodia/eu/custodian-a+49be4542+ASFS+NGbeR0kRTJC4V8uq2y3z/p7al7TAJeWDgaYgdsS`; the
//! signature line is `base64(key id[4] || signature[64])`).
//!
//! The key id is `SHA-256(origin || "\n" || 0x01 || public key)[..4]` (signed-note's
//! recommended derivation for Ed25519), and the verifier key `origin+<id hex>+<base64(0x01 ||
//! public key)>`. The signature covers the body (three lines, final newline included).
//! Notes are built and parsed by `signed_note` and bodies by `tlog_tiles`; signing is ring's
//! Ed25519 through [`ManifestSigner`], verification `signed_note`'s standard verifier.
//! Further signatures by other keys (witness cosignatures, later) are allowed next to the
//! custodian's and ignored.

use signed_note::{Note, Signature, StandardVerifier, VerifierList};
use tlog_tiles::checkpoint::Checkpoint;
use tlog_tiles::tlog;

use super::tree::Hash;
pub use crate::keystore::ManifestSigner;
use crate::{Error, Result};

/// signed-note's algorithm byte for Ed25519.
const ALG_ED25519: u8 = 0x01;

fn bad(reason: impl core::fmt::Display) -> Error {
    Error::Protocol(format!("audit: checkpoint: {reason}"))
}

/// The checkpoint origin (and note key name) of a custodian: `custodia/<region>/<custodian>`.
#[must_use]
pub fn origin(region: &str, custodian: &str) -> String {
    format!("custodia/{region}/{custodian}")
}

/// `0x01 || public key`: the signed-note encoding of an Ed25519 public key.
fn encoded_key(public_key: &[u8; 32]) -> [u8; 33] {
    let mut key = [0u8; 33];
    key[0] = ALG_ED25519;
    key[1..].copy_from_slice(public_key);
    key
}

/// The signed-note key id of `public_key` under `name`.
fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    signed_note::key_id(name, &encoded_key(public_key))
}

/// Standard base64 (RFC 4648 §4) with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The checkpoint body: `origin\nsize\nbase64(root)\n`.
fn body(origin: &str, size: u64, root: &Hash) -> Result<Vec<u8>> {
    Ok(Checkpoint::new(origin, size, tlog::Hash(*root), "")
        .map_err(bad)?
        .to_bytes())
}

/// Signs `text` as a note by `signer` under key name `name`.
fn sign_note(text: &[u8], name: &str, signer: &ManifestSigner) -> Result<String> {
    if !signed_note::is_key_name_valid(name) {
        return Err(bad(format!(
            "{name:?} is not a valid key name (empty, spaces or '+')"
        )));
    }
    let signature = Signature::new(
        name.to_owned(),
        key_id(name, &signer.public_key()),
        signer.sign(text).to_vec(),
    )
    .map_err(bad)?;
    let note = Note::new(text, &[signature]).map_err(bad)?;
    String::from_utf8(note.to_bytes()).map_err(bad)
}

/// A checkpoint of the tree of `size` records with `root`, signed by `signer` with key name
/// `origin`: the note text (body, blank line, one signature line).
///
/// # Errors
/// [`Error::Protocol`] if `origin` is not a valid key name (empty, or holding spaces, '+' or
/// control characters).
pub fn sign_checkpoint(
    origin: &str,
    size: u64,
    root: &Hash,
    signer: &ManifestSigner,
) -> Result<String> {
    sign_note(&body(origin, size, root)?, origin, signer)
}

/// The signed-note verifier key of `public_key` under `origin`:
/// `origin+<key id, 8 lowercase hex>+<base64(0x01 || public key)>`.
#[must_use]
pub fn verifier_key(origin: &str, public_key: &[u8; 32]) -> String {
    format!(
        "{origin}+{:08x}+{}",
        key_id(origin, public_key),
        base64(&encoded_key(public_key))
    )
}

/// A checkpoint whose signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    /// The origin (as expected).
    pub origin: String,
    /// The number of records.
    pub size: u64,
    /// The tree root.
    pub root: Hash,
}

/// Verifies a checkpoint note against the expected `origin` and the custodian's manifest
/// `public_key`. Refuses a malformed note or body (including extension lines, which this log
/// never writes, and non-canonical encodings), a body for another origin, a note without a
/// valid signature by this key under this origin (missing, forged, or only by unknown keys),
/// and any invalid signature by this key. Signatures by other keys next to a valid one are
/// ignored.
///
/// # Errors
/// [`Error::Protocol`] naming the reason.
pub fn verify_checkpoint(
    note: &str,
    origin: &str,
    public_key: &[u8; 32],
) -> Result<VerifiedCheckpoint> {
    let verifier = StandardVerifier::new(&verifier_key(origin, public_key))
        .map_err(|e| bad(format!("unusable origin or public key: {e}")))?;
    let note = Note::from_bytes(note.as_bytes()).map_err(bad)?;
    note.verify(&VerifierList::new(vec![Box::new(verifier)]))
        .map_err(|e| {
            bad(format!(
                "not signed by the custodian's key for {origin}: {e}"
            ))
        })?;
    let text = note.text();
    let checkpoint = Checkpoint::from_bytes(text).map_err(bad)?;
    if checkpoint.origin() != origin {
        return Err(bad(format!(
            "origin {:?}, expected {origin:?}",
            checkpoint.origin()
        )));
    }
    if !checkpoint.extension().is_empty() || checkpoint.to_bytes() != text {
        return Err(bad("unexpected extension lines or non-canonical body"));
    }
    Ok(VerifiedCheckpoint {
        origin: origin.to_owned(),
        size: checkpoint.size(),
        root: checkpoint.hash().0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tree::leaf_hash;
    use signed_note::StandardSigner;

    const ORIGIN: &str = "custodia/eu/custodian-a";

    fn signer() -> ManifestSigner {
        ManifestSigner::from_seed([7; 32])
    }

    /// The signed-note crate's own example key (golang.org/x/mod/sumdb/note).
    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_SEED: &str = "810a1402d5146c8d84f2443330f54080ebf98ee17d9c74f6252fc5d5c7283173";

    fn peter() -> ManifestSigner {
        let mut seed = [0u8; 32];
        hex::decode_to_slice(PETER_SEED, &mut seed).unwrap();
        ManifestSigner::from_seed(seed)
    }

    #[test]
    fn known_answers_match_signed_note() {
        let p = peter();
        assert_eq!(verifier_key("PeterNeumann", &p.public_key()), PETER_VKEY);
        // Our note is byte for byte what signed_note's own signer writes.
        let root = leaf_hash(b"hello");
        let ours = sign_checkpoint("PeterNeumann", 5, &root, &p).unwrap();
        let mut theirs = Note::new(&body("PeterNeumann", 5, &root).unwrap(), &[]).unwrap();
        theirs
            .add_sigs(&[&StandardSigner::new(PETER_SKEY).unwrap()])
            .unwrap();
        assert_eq!(ours.as_bytes(), theirs.to_bytes());
        let v = verify_checkpoint(&ours, "PeterNeumann", &p.public_key()).unwrap();
        assert_eq!((v.size, v.root), (5, root));
    }

    #[test]
    fn the_test_log_checkpoint_is_pinned() {
        // Pins the record encoding, the tree, the body and the note format together.
        let log = crate::audit::testlog::build(50);
        let s = crate::audit::testlog::signer();
        assert_eq!(
            verifier_key(ORIGIN, &s.public_key()),
            "custodia/eu/custodian-a+49be4542+ASFS+NGbeR0kRTJC4V8uq2y3z/p7al7TAJeWDgaYgdsS"
        );
        assert_eq!(
            log.checkpoint,
            "custodia/eu/custodian-a\n50\niNagwZiRyIkABhk2xcqWwDNCKX3pocipxcBK38bKvgw=\n\n\
             — custodia/eu/custodian-a Sb5FQkps9TKhS0jqpkWZUIq054P9J1qx7SJXkN0FzEitOHF0fdkies8L\
             8oZzksVF/x3L3OnB+qKkVY5IxsndwJETVAc=\n"
        );
    }

    #[test]
    fn format_and_round_trip() {
        let s = signer();
        let root = leaf_hash(b"x");
        let note = sign_checkpoint(ORIGIN, 50, &root, &s).unwrap();
        let lines: Vec<&str> = note.split('\n').collect();
        assert_eq!(lines[0], ORIGIN);
        assert_eq!(lines[1], "50");
        assert_eq!(lines[2], tlog::Hash(root).to_string());
        assert_eq!(lines[3], "");
        assert!(lines[4].starts_with(&format!("— {ORIGIN} ")));
        assert_eq!(lines[5], "");
        assert_eq!(lines.len(), 6);
        let v = verify_checkpoint(&note, ORIGIN, &s.public_key()).unwrap();
        assert_eq!(
            v,
            VerifiedCheckpoint {
                origin: ORIGIN.into(),
                size: 50,
                root
            }
        );
        // The empty log.
        let empty = sign_checkpoint(ORIGIN, 0, &tlog::EMPTY_HASH.0, &s).unwrap();
        assert!(empty.starts_with(&format!(
            "{ORIGIN}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n"
        )));
        assert_eq!(
            verify_checkpoint(&empty, ORIGIN, &s.public_key())
                .unwrap()
                .size,
            0
        );
        assert_eq!(origin("eu", "custodian-a"), ORIGIN);
        assert!(sign_checkpoint("bad origin", 1, &root, &s).is_err());
        assert!(sign_checkpoint("a+b", 1, &root, &s).is_err());
        assert!(sign_checkpoint("", 1, &root, &s).is_err());
    }

    #[test]
    fn base64_matches_rfc4648_and_tlog() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
        // tlog's Hash Display is standard base64 (all 64 symbols appear over these).
        for seed in 0u8..8 {
            let h = leaf_hash(&[seed]);
            assert_eq!(base64(&h), tlog::Hash(h).to_string());
        }
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn refuses_wrong_origin_key_and_signatures() {
        let s = signer();
        let pk = s.public_key();
        let root = leaf_hash(b"x");
        let good = sign_checkpoint(ORIGIN, 3, &root, &s).unwrap();
        // Wrong expected origin (the key name no longer matches).
        assert!(verify_checkpoint(&good, "custodia/eu/custodian-b", &pk).is_err());
        // Another key.
        let other = ManifestSigner::from_seed([8; 32]);
        assert!(verify_checkpoint(&good, ORIGIN, &other.public_key()).is_err());
        let forged = sign_checkpoint(ORIGIN, 3, &root, &other).unwrap();
        assert!(verify_checkpoint(&forged, ORIGIN, &pk).is_err());
        // Right key and name, but a body for another origin.
        let text = body("custodia/us/custodian-a", 3, &root).unwrap();
        let misbodied = sign_note(&text, ORIGIN, &s).unwrap();
        assert!(verify_checkpoint(&misbodied, ORIGIN, &pk).is_err());
        // Tampered body or signature.
        let tampered = good.replacen("\n3\n", "\n4\n", 1);
        assert!(verify_checkpoint(&tampered, ORIGIN, &pk).is_err());
        let sig_at = good.rfind(' ').unwrap() + 10;
        let mut bad_sig = good.clone().into_bytes();
        bad_sig[sig_at] = if bad_sig[sig_at] == b'A' { b'B' } else { b'A' };
        let bad_sig = String::from_utf8(bad_sig).unwrap();
        assert!(verify_checkpoint(&bad_sig, ORIGIN, &pk).is_err());
        // Missing signature.
        let (body_only, _) = good.split_once("\n\n").unwrap();
        assert!(verify_checkpoint(&format!("{body_only}\n"), ORIGIN, &pk).is_err());
        assert!(verify_checkpoint(&format!("{body_only}\n\n"), ORIGIN, &pk).is_err());
        // Only an unknown key's signature (same name, other key; other name).
        let text = body(ORIGIN, 3, &root).unwrap();
        assert!(
            verify_checkpoint(&sign_note(&text, ORIGIN, &other).unwrap(), ORIGIN, &pk).is_err()
        );
        let witness_only = sign_note(&text, "witness/us", &other).unwrap();
        assert!(verify_checkpoint(&witness_only, ORIGIN, &pk).is_err());
        // A witness cosignature next to a valid one is fine.
        let witness_line = witness_only.split_once("\n\n").unwrap().1;
        let cosigned = format!("{good}{witness_line}");
        assert_eq!(verify_checkpoint(&cosigned, ORIGIN, &pk).unwrap().size, 3);
        // ... but a bad signature by the custodian's key next to a valid witness is not.
        let bad_line = bad_sig.split_once("\n\n").unwrap().1;
        let mixed = format!("{body_only}\n\n{witness_line}{bad_line}");
        assert!(verify_checkpoint(&mixed, ORIGIN, &pk).is_err());
    }

    #[test]
    fn refuses_malformed_bodies() {
        let s = signer();
        let pk = s.public_key();
        let root = tlog::Hash(leaf_hash(b"x")).to_string();
        let bodies = [
            format!("{ORIGIN}\n3\n{root}\next\n"),
            format!("{ORIGIN}\n03\n{root}\n"),
            format!("{ORIGIN}\n+3\n{root}\n"),
            format!("{ORIGIN}\n-1\n{root}\n"),
            format!("{ORIGIN}\n18446744073709551616\n{root}\n"),
            format!("{ORIGIN}\n3\n{}\n", &root[..root.len() - 1]),
            format!("{ORIGIN}\n3\nAAAA\n"),
            format!("{ORIGIN}\n3\n"),
            format!("{ORIGIN}\n"),
            format!("{ORIGIN}\n3\n{root} \n"),
        ];
        for text in bodies {
            let note = sign_note(text.as_bytes(), ORIGIN, &s).unwrap();
            assert!(verify_checkpoint(&note, ORIGIN, &pk).is_err(), "{text:?}");
        }
        assert!(verify_checkpoint("", ORIGIN, &pk).is_err());
        assert!(verify_checkpoint("garbage", ORIGIN, &pk).is_err());
        // An unusable public key (not a curve point) is an error, not a panic.
        let good = sign_checkpoint(ORIGIN, 3, &leaf_hash(b"x"), &s).unwrap();
        let mut not_point = [0xffu8; 32];
        not_point[31] = 0x7f;
        assert!(verify_checkpoint(&good, ORIGIN, &not_point).is_err());
    }

    #[test]
    fn signer_debug_is_redacted() {
        let s = signer();
        let dbg = format!("{s:?}");
        assert!(dbg.contains("redacted"));
        assert!(!dbg.contains(&hex::encode([7u8; 32])));
        assert!(!dbg.contains("7, 7, 7"));
    }
}

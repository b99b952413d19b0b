//! Negative vectors for single-part objects (`tests/vectors/negative/*.json`, listed in
//! docs/FORMAT.md §11): each is a worked example's object (Example 4, one chunk and one byte,
//! from `tests/vectors/format/chunk-plus-one.json`) damaged one way, with the binding it is
//! read under and the error every reader must stop with — before releasing any plaintext of
//! the damaged chunk. Regenerated and compared byte for byte; run with
//! `CUSTODIA_UPDATE_VECTORS=1` to rewrite the files after a deliberate change.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod vector_files;

use custodia_envelope::*;
use serde_json::{Value, json};
use vector_files::{check_file, repo_path, variant};

/// (file name, what, stored bytes, bucket, key, expected error).
type Negative = (
    &'static str,
    &'static str,
    Vec<u8>,
    &'static str,
    &'static str,
    &'static str,
);

/// Example 4's object with its sealed metadata replaced by `padded` sealed under the
/// example's own metadata key, and the header MAC recomputed with its MAC key: what only a
/// holder of the data key can write, so the MAC passes and the metadata check must refuse.
fn with_metadata_resealed(
    example: &Value,
    stored: &[u8],
    padded: &[u8],
    flip_tag: bool,
) -> Vec<u8> {
    use ring::{aead, hmac};
    let field = |k: &str| hex::decode(example[k].as_str().unwrap()).unwrap();
    let old_sealed = field("sealed_metadata");
    let key = aead::LessSafeKey::new(
        aead::UnboundKey::new(&aead::AES_256_GCM, &field("metadata_key")).unwrap(),
    );
    let mut sealed = padded.to_vec();
    key.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key([0; 12]),
        aead::Aad::from(b"custodia v1 metadata"),
        &mut sealed,
    )
    .unwrap();
    if flip_tag {
        *sealed.last_mut().unwrap() ^= 1;
    }
    assert_eq!(sealed.len(), old_sealed.len());
    let replace = |bytes: &[u8]| {
        let at = bytes
            .windows(old_sealed.len())
            .position(|w| w == old_sealed.as_slice())
            .expect("the sealed metadata");
        [&bytes[..at], &sealed, &bytes[at + sealed.len()..]].concat()
    };
    let mac_input = replace(&field("mac_input"));
    let mac = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &field("mac_key")),
        &mac_input,
    );
    let mut out = replace(stored);
    let header_size = Header::parse(stored).unwrap().profile().header_size();
    out[header_size - 32..header_size].copy_from_slice(mac.as_ref());
    out
}

/// Example 4's object with its stanza replaced by one that opens with the recipient's own key
/// (the right `info` and AAD) but wraps another share: only the key commitment can refuse it.
fn with_other_share(example: &Value, stored: &[u8], secret: &RecipientSecretKey) -> Vec<u8> {
    let header = Header::parse(stored).unwrap();
    let old = header.stanzas()[0].clone();
    let recipient = RecipientPublicKey {
        id: old.recipient.clone(),
        public_key: secret.public_key().unwrap(),
    };
    let context = hex::decode(example["context"].as_str().unwrap()).unwrap();
    let stanza = wrap_share(
        &Share::from_bytes([7; KEY_LEN]),
        &recipient,
        header.object_id(),
        &context,
        &mut DeterministicRandomness::new(b"custodia negative vector other share"),
    )
    .unwrap();
    let (old, new) = (old.to_bytes(), stanza.to_bytes());
    let at = stored
        .windows(old.len())
        .position(|w| w == old.as_slice())
        .expect("the stanza");
    [&stored[..at], &new, &stored[at + new.len()..]].concat()
}

fn negatives(
    example: &Value,
    stored: &[u8],
    header_size: usize,
    secret: &RecipientSecretKey,
) -> Vec<Negative> {
    let flip = |at: usize| {
        let mut b = stored.to_vec();
        b[at] ^= 1;
        b
    };
    let (bucket, key) = ("mail-ie", "alice/INBOX/1.eml");
    let first_chunk_end = header_size + 4096 + 16;
    vec![
        (
            "bad-magic",
            "the first byte changed",
            flip(0),
            bucket,
            key,
            "NotSealed",
        ),
        (
            "version-2",
            "format version 2",
            {
                let mut b = stored.to_vec();
                b[9] = 2;
                b
            },
            bucket,
            key,
            "UnsupportedVersion",
        ),
        (
            "header-size-out-of-range",
            "header_size 256, under the format's 512",
            {
                let mut b = stored.to_vec();
                b[10..14].copy_from_slice(&256u32.to_be_bytes());
                b
            },
            bucket,
            key,
            "OutOfRange",
        ),
        (
            "truncated-in-header",
            "cut to its first 300 bytes, inside the header",
            stored[..300].to_vec(),
            bucket,
            key,
            "Truncated",
        ),
        (
            "body-shorter-than-a-tag",
            "the body cut to 10 bytes, shorter than any chunk's tag",
            stored[..header_size + 10].to_vec(),
            bucket,
            key,
            "InvalidStoredLength",
        ),
        (
            "stanza-wraps-another-share",
            "the stanza replaced by one wrapping another share to the same key, for this object and context",
            with_other_share(example, stored, secret),
            bucket,
            key,
            "CommitmentMismatch",
        ),
        (
            "context-without-region",
            "the context's `region` key renamed `regioo` (still sorted, same length)",
            {
                let mut b = stored.to_vec();
                let at = b
                    .windows(7)
                    .position(|w| w == b"\x06region")
                    .expect("the context's region key");
                b[at + 6] = b'o';
                b
            },
            bucket,
            key,
            "MissingContextKey",
        ),
        (
            "stanza-other-region",
            "the stanza's region `ie` changed to `us` (the context still says `ie`)",
            {
                let mut b = stored.to_vec();
                let at = b
                    .windows(10)
                    .position(|w| w == b"\x02ie\x06dublin")
                    .expect("the stanza's recipient id");
                b[at + 1..at + 3].copy_from_slice(b"us");
                b
            },
            bucket,
            key,
            "RegionMismatch",
        ),
        (
            "metadata-padding-not-zero",
            "the sealed metadata's last padding byte 1, sealed and MACed with the object's own keys",
            {
                let mut padded =
                    hex::decode(example["metadata_plaintext"].as_str().unwrap()).unwrap();
                let len =
                    usize::try_from(example["metadata_padded_len"].as_u64().unwrap()).unwrap();
                padded.resize(len, 0);
                *padded.last_mut().unwrap() = 1;
                with_metadata_resealed(example, stored, &padded, false)
            },
            bucket,
            key,
            "NonCanonical",
        ),
        (
            "metadata-tag-changed",
            "one bit of the sealed metadata's tag, with the header MAC recomputed over it",
            {
                let mut padded =
                    hex::decode(example["metadata_plaintext"].as_str().unwrap()).unwrap();
                let len =
                    usize::try_from(example["metadata_padded_len"].as_u64().unwrap()).unwrap();
                padded.resize(len, 0);
                with_metadata_resealed(example, stored, &padded, true)
            },
            bucket,
            key,
            "MetadataAuthentication",
        ),
        (
            "object-id-changed",
            "one bit of the object id (covered by the MAC and the HPKE info)",
            flip(18),
            bucket,
            key,
            "StanzaAuthentication",
        ),
        (
            "mac-changed",
            "one bit of the header MAC",
            flip(header_size - 1),
            bucket,
            key,
            "HeaderAuthentication",
        ),
        (
            "other-name",
            "read under another key than it was sealed for (moved or swapped)",
            stored.to_vec(),
            bucket,
            "alice/INBOX/2.eml",
            "HeaderAuthentication",
        ),
        (
            "chunk-0-changed",
            "one bit of the first chunk's ciphertext",
            flip(header_size + 10),
            bucket,
            key,
            "ChunkAuthentication",
        ),
        (
            "truncated-at-chunk",
            "cut after the first (non-final) chunk",
            stored[..first_chunk_end].to_vec(),
            bucket,
            key,
            "Truncation",
        ),
        (
            "trailing-byte",
            "one byte appended after the final chunk (it is read as part of that chunk)",
            [stored, &[0u8][..]].concat(),
            bucket,
            key,
            "ChunkAuthentication",
        ),
        (
            "chunks-swapped",
            "the final chunk moved in front of the first",
            [
                &stored[..header_size],
                &stored[first_chunk_end..],
                &stored[header_size..first_chunk_end],
            ]
            .concat(),
            bucket,
            key,
            "ChunkAuthentication",
        ),
    ]
}

/// Reads `stored` by docs/FORMAT.md §9 with the recipient keys: the whole plaintext, or the
/// error's variant name.
fn read(
    stored: &[u8],
    secrets: &[RecipientSecretKey],
    binding: &Binding,
) -> Result<Vec<u8>, String> {
    open_with_keys(stored, secrets, binding)
        .map(|(plain, _)| plain)
        .map_err(|e| variant(&e))
}

#[test]
fn single_part_negative_vectors_match_their_files_and_fail_as_named() {
    let example: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("tests/vectors/format/chunk-plus-one.json")).unwrap(),
    )
    .unwrap();
    let stored = hex::decode(example["stored"].as_str().unwrap()).unwrap();
    let secrets: Vec<RecipientSecretKey> = example["recipient_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            RecipientSecretKey::from_bytes(
                hex::decode(k["private_key"].as_str().unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap(),
            )
        })
        .collect();
    let header_size = Header::parse(&stored).unwrap().profile().header_size();
    let spec = std::fs::read_to_string(repo_path("../../docs/FORMAT.md")).unwrap();
    for (name, what, bytes, bucket, key, want) in
        negatives(&example, &stored, header_size, &secrets[0])
    {
        let v = json!({
            "what": what,
            "example": "chunk-plus-one",
            "bucket": bucket,
            "key": key,
            "stored": hex::encode(&bytes),
            "expected_error": want,
        });
        check_file(&format!("tests/vectors/negative/{name}.json"), &v);
        assert!(
            spec.contains(&format!("`{name}.json`")),
            "FORMAT.md lacks {name}"
        );
        let binding = Binding::new(bucket, key).unwrap();
        assert_eq!(
            read(&bytes, &secrets, &binding).err().as_deref(),
            Some(want),
            "{name}: {what}"
        );
    }
    // The undamaged object opens.
    let binding = Binding::new("mail-ie", "alice/INBOX/1.eml").unwrap();
    assert_eq!(
        hex::encode(read(&stored, &secrets, &binding).unwrap()),
        example["plaintext"].as_str().unwrap()
    );
}

//! Worked examples of the format (docs/FORMAT.md, "Worked examples") and their vector files
//! (`tests/vectors/format/*.json`), regenerated from fixed keys and deterministic randomness
//! and compared byte for byte.
//!
//! Besides checking the files, this test re-derives every intermediate value the way
//! docs/FORMAT.md describes it — HKDF and HMAC straight from ring, chunks opened with the
//! independent `aes-gcm` crate — so the spec and the implementation cannot drift apart.
//! Run with `CUSTODIA_UPDATE_VECTORS=1` to rewrite the files after a deliberate change.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "tests"
)]

use std::fmt::Write as _;
use std::path::PathBuf;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use custodia_envelope::*;
use ring::{digest, hkdf, hmac};
use serde_json::{Value, json};

const SEED_PREFIX: &str = "custodia format vector ";

struct Case {
    name: &'static str,
    title: &'static str,
    plaintext: Vec<u8>,
    custodians: &'static [&'static str],
    metadata: &'static [(&'static str, &'static str)],
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect()
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "empty",
            title: "empty body",
            plaintext: Vec::new(),
            custodians: &["dublin"],
            metadata: &[],
        },
        Case {
            name: "one-byte",
            title: "one byte",
            plaintext: b"A".to_vec(),
            custodians: &["dublin"],
            metadata: &[],
        },
        Case {
            name: "one-chunk",
            title: "exactly one chunk (4096 bytes)",
            plaintext: pattern(4096),
            custodians: &["dublin"],
            metadata: &[],
        },
        Case {
            name: "chunk-plus-one",
            title: "one chunk and one byte (4097 bytes)",
            plaintext: pattern(4097),
            custodians: &["dublin"],
            metadata: &[],
        },
        Case {
            name: "two-recipients",
            title: "two custodians of one region",
            plaintext: b"Subject: two key holders\r\n\r\nBoth must take part.\r\n".to_vec(),
            custodians: &["cork", "dublin"],
            metadata: &[],
        },
        Case {
            name: "metadata",
            title: "with sealed metadata",
            plaintext: b"Subject: hi\r\n\r\nhello\r\n".to_vec(),
            custodians: &["dublin"],
            metadata: &[
                ("content-type", "message/rfc822"),
                ("x-amz-meta-folder", "INBOX"),
            ],
        },
    ]
}

fn profile() -> Profile {
    Profile::new(512, 4096).unwrap()
}

fn region() -> Region {
    Region::new("ie").unwrap()
}

fn secret_for(custodian: &str) -> (Vec<u8>, RecipientSecretKey) {
    let seed = format!("custodia vector key {custodian}");
    let mut ikm = [0u8; 32];
    DeterministicRandomness::new(seed.as_bytes())
        .fill(&mut ikm)
        .unwrap();
    let key =
        RecipientSecretKey::generate(&mut DeterministicRandomness::new(seed.as_bytes())).unwrap();
    (ikm.to_vec(), key)
}

fn recipient(custodian: &str, secret: &RecipientSecretKey) -> RecipientPublicKey {
    RecipientPublicKey {
        id: RecipientId {
            region: region(),
            custodian: CustodianName::new(custodian).unwrap(),
            key_id: secret.key_id().unwrap(),
            key_version: KeyVersion(1),
        },
        public_key: secret.public_key().unwrap(),
    }
}

fn h(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, bytes).as_ref().to_vec()
}

struct L;
impl hkdf::KeyType for L {
    fn len(&self) -> usize {
        32
    }
}

/// HKDF-Expand straight from ring, as docs/FORMAT.md writes it.
fn expand(prk: &hkdf::Prk, info: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![0; 32];
    prk.expand(info, L).unwrap().fill(&mut out).unwrap();
    out
}

/// Generates one case: the JSON vector and the Markdown worked example.
fn generate(index: usize, case: &Case) -> (Value, String) {
    let seed = format!("{SEED_PREFIX}{}", case.name);
    let context = Context::new("alice@example.ie", &region()).unwrap();
    let binding = Binding::new("mail-ie", "alice/INBOX/1.eml").unwrap();
    let mut metadata = Metadata::new();
    for (k, v) in case.metadata {
        metadata.insert(k, v).unwrap();
    }
    let keys: Vec<_> = case.custodians.iter().map(|c| (c, secret_for(c))).collect();
    let recipients: Vec<_> = keys.iter().map(|(c, (_, s))| recipient(c, s)).collect();
    let opts = SealOptions {
        profile: profile(),
        context: &context,
        binding: &binding,
        recipients: &recipients,
        metadata: &metadata,
    };
    let stored = seal(
        &opts,
        &case.plaintext,
        &mut DeterministicRandomness::new(seed.as_bytes()),
    )
    .unwrap();

    // Replay the randomness in the documented draw order.
    let mut draws = DeterministicRandomness::new(seed.as_bytes());
    let mut take = || {
        let mut b = [0u8; 32];
        draws.fill(&mut b).unwrap();
        b
    };
    let dek = take();
    let object_id = take();
    let n = recipients.len();
    let mut shares: Vec<[u8; 32]> = (1..n).map(|_| take()).collect();
    let mut last = dek;
    for s in &shares {
        for (a, b) in last.iter_mut().zip(s) {
            *a ^= b;
        }
    }
    shares.push(last);
    let ephemeral_ikms: Vec<[u8; 32]> = (0..n).map(|_| take()).collect();

    // Key schedule, straight from ring.
    let ctx_bytes = context.to_bytes();
    let bind_bytes = binding.to_bytes();
    let mut salt = b"custodia object v1".to_vec();
    salt.extend_from_slice(&object_id);
    let prk_bytes = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &salt), &dek);
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(&dek);
    let (ch, bh) = (sha256(&ctx_bytes), sha256(&bind_bytes));
    let commitment = expand(&prk, &[b"custodia v1 key commitment"]);
    let mac_key = expand(&prk, &[b"custodia v1 header mac"]);
    let chunk_key = expand(&prk, &[b"custodia v1 chunk key", &ch, &bh]);
    let metadata_key = expand(&prk, &[b"custodia v1 metadata key", &ch, &bh]);
    let lib_keys = ObjectKeys::derive(
        &DataKey::from_bytes(dek),
        &ObjectId(object_id),
        &ctx_bytes,
        &bind_bytes,
    )
    .unwrap();
    assert_eq!(lib_keys.commitment().as_slice(), commitment.as_slice());
    assert_eq!(lib_keys.mac_key().expose().as_slice(), mac_key.as_slice());
    assert_eq!(
        lib_keys.chunk_key().expose().as_slice(),
        chunk_key.as_slice()
    );
    assert_eq!(
        lib_keys.metadata_key().expose().as_slice(),
        metadata_key.as_slice()
    );

    // The header, field by field.
    let header = Header::parse(&stored).unwrap();
    let header_bytes = &stored[..profile().header_size()];
    assert_eq!(header.to_bytes(), header_bytes);
    assert_eq!(header.commitment().as_slice(), commitment.as_slice());
    assert_eq!(header.object_id().0, object_id);
    let mut stanzas = Vec::new();
    for (i, st) in header.stanzas().iter().enumerate() {
        let (_, secret) = &keys[i].1;
        let share = unwrap_share(secret, st, &ObjectId(object_id), &ctx_bytes).unwrap();
        assert_eq!(share.expose(), &shares[i], "share {i} in documented order");
        let mut info = b"custodia v1 share".to_vec();
        info.extend_from_slice(&1u16.to_be_bytes());
        info.extend_from_slice(&object_id);
        let mut aad = ctx_bytes.clone();
        aad.extend_from_slice(&st.recipient.to_bytes());
        stanzas.push(json!({
            "custodian": st.recipient.custodian.as_str(),
            "recipient_id": h(&st.recipient.to_bytes()),
            "share": h(&shares[i]),
            "hpke_info": h(&info),
            "hpke_aad": h(&aad),
            "ephemeral_ikm": h(&ephemeral_ikms[i]),
            "enc": h(&st.enc),
            "wrapped_share": h(&st.wrapped),
            "stanza": h(&st.to_bytes()),
        }));
    }
    let meta_len = {
        let fixed: usize = 18
            + 32
            + ctx_bytes.len()
            + 32
            + 1
            + header
                .stanzas()
                .iter()
                .map(|s| s.to_bytes().len())
                .sum::<usize>();
        profile().header_size() - 32 - fixed
    };
    let meta_start = profile().header_size() - 32 - meta_len;
    let sealed_metadata = &header_bytes[meta_start..meta_start + meta_len];
    let prefix_end = 18 + 32 + ctx_bytes.len() + 32;
    let mut mac_input = b"custodia v1 header".to_vec();
    mac_input.extend_from_slice(&header_bytes[..prefix_end]);
    mac_input.extend_from_slice(&u32::try_from(meta_len).unwrap().to_be_bytes());
    mac_input.extend_from_slice(sealed_metadata);
    mac_input.extend_from_slice(&bind_bytes);
    let mac = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &mac_key), &mac_input);
    assert_eq!(mac.as_ref(), &header_bytes[header_bytes.len() - 32..]);

    // Metadata and chunks, opened with the independent aes-gcm crate.
    let aes = |key: &[u8]| Aes256Gcm::new_from_slice(key).unwrap();
    let mut meta_plain = sealed_metadata.to_vec();
    let (ct, tag) = meta_plain.split_at_mut(meta_len - 16);
    aes(&metadata_key)
        .decrypt_inout_detached(
            &Nonce::from([0u8; 12]),
            b"custodia v1 metadata",
            ct.into(),
            (&*tag).try_into().unwrap(),
        )
        .unwrap();
    meta_plain.truncate(meta_len - 16);
    let meta_used = meta_plain
        .iter()
        .rposition(|&b| b != 0)
        .map_or(1, |p| p + 1);

    let p = profile();
    let mut chunks = Vec::new();
    let mut recovered = Vec::new();
    let total = usize::try_from(p.chunk_count(case.plaintext.len() as u64)).unwrap();
    for i in 0..total {
        let start = p.header_size() + i * (p.chunk_size() + 16);
        let len = p
            .chunk_size()
            .min(case.plaintext.len() - i * p.chunk_size());
        let mut body = stored[start..start + len].to_vec();
        let tag: [u8; 16] = stored[start + len..start + len + 16].try_into().unwrap();
        let nonce = StreamNonce::new(i as u64, i + 1 == total).bytes();
        aes(&chunk_key)
            .decrypt_inout_detached(
                &Nonce::from(nonce),
                b"",
                body.as_mut_slice().into(),
                (&tag).into(),
            )
            .unwrap();
        recovered.extend_from_slice(&body);
        chunks
            .push(json!({"index": i, "nonce": h(&nonce), "stored_len": len + 16, "tag": h(&tag)}));
    }
    assert_eq!(recovered, case.plaintext);
    assert_eq!(
        stored.len() as u64,
        p.sealed_len(case.plaintext.len() as u64).unwrap()
    );

    let vector = json!({
        "name": case.name,
        "profile": {"header_size": p.header_size(), "chunk_size": p.chunk_size()},
        "seed": seed,
        "recipient_keys": keys.iter().map(|(c, (ikm, s))| json!({
            "custodian": c,
            "ikm": h(ikm),
            "private_key": h(s.expose()),
            "public_key": h(&s.public_key().unwrap()),
            "key_id": h(&s.key_id().unwrap().0),
            "key_version": 1,
        })).collect::<Vec<_>>(),
        "context": h(&ctx_bytes),
        "binding": h(&bind_bytes),
        "metadata": case.metadata.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "plaintext": h(&case.plaintext),
        "dek": h(&dek),
        "object_id": h(&object_id),
        "stanzas": stanzas,
        "hkdf_salt": h(&salt),
        "prk": h(prk_bytes.as_ref()),
        "commitment": h(&commitment),
        "mac_key": h(&mac_key),
        "chunk_key": h(&chunk_key),
        "metadata_key": h(&metadata_key),
        "metadata_plaintext": h(&meta_plain[..meta_used]),
        "metadata_padded_len": meta_plain.len(),
        "sealed_metadata": h(sealed_metadata),
        "mac_input": h(&mac_input),
        "mac": h(mac.as_ref()),
        "header": h(header_bytes),
        "chunks": chunks,
        "stored_len": stored.len(),
        "stored_sha256": h(&sha256(&stored)),
        "stored": h(&stored),
    });
    (vector.clone(), markdown(index, case, &vector))
}

fn wrap_hex(out: &mut String, label: &str, hex: &str) {
    if hex.len() <= 64 {
        writeln!(out, "{label:<18} {hex}").unwrap();
        return;
    }
    writeln!(out, "{label}:").unwrap();
    for line in hex.as_bytes().chunks(64) {
        writeln!(out, "    {}", std::str::from_utf8(line).unwrap()).unwrap();
    }
}

fn markdown(index: usize, case: &Case, v: &Value) -> String {
    let s = |k: &str| v[k].as_str().unwrap().to_owned();
    let mut out = String::new();
    writeln!(out, "### Example {}: {}\n", index + 1, case.title).unwrap();
    writeln!(
        out,
        "File `crates/envelope/tests/vectors/format/{}.json`. Profile: 512-byte header, 4096-byte \
         chunks. Randomness: `DeterministicRandomness(\"{}\")`. Plaintext: {} bytes{}.\n",
        case.name,
        s("seed"),
        case.plaintext.len(),
        if case.plaintext.len() > 64 && case.plaintext.is_ascii() {
            ""
        } else if case.plaintext.len() > 64 {
            " (`i mod 251` for byte i)"
        } else {
            ""
        }
    )
    .unwrap();
    writeln!(out, "```text").unwrap();
    for k in v["recipient_keys"].as_array().unwrap() {
        let c = k["custodian"].as_str().unwrap();
        wrap_hex(
            &mut out,
            &format!("sk[{c}]"),
            k["private_key"].as_str().unwrap(),
        );
        wrap_hex(
            &mut out,
            &format!("pk[{c}]"),
            k["public_key"].as_str().unwrap(),
        );
        wrap_hex(
            &mut out,
            &format!("key_id[{c}]"),
            k["key_id"].as_str().unwrap(),
        );
    }
    if case.plaintext.is_empty() {
        writeln!(out, "{:<18} (empty)", "plaintext").unwrap();
    } else if case.plaintext.len() <= 64 {
        wrap_hex(&mut out, "plaintext", &s("plaintext"));
    }
    for k in ["context", "binding", "dek", "object_id"] {
        wrap_hex(&mut out, k, &s(k));
    }
    for (i, st) in v["stanzas"].as_array().unwrap().iter().enumerate() {
        for k in [
            "share",
            "ephemeral_ikm",
            "hpke_info",
            "hpke_aad",
            "enc",
            "wrapped_share",
        ] {
            wrap_hex(
                &mut out,
                &format!("stanza[{i}].{k}"),
                st[k].as_str().unwrap(),
            );
        }
    }
    for k in [
        "hkdf_salt",
        "prk",
        "commitment",
        "mac_key",
        "chunk_key",
        "metadata_key",
        "metadata_plaintext",
    ] {
        wrap_hex(&mut out, k, &s(k));
    }
    writeln!(
        out,
        "{:<18} {} bytes (+ zero padding to {}), sealed to {} bytes",
        "metadata_len",
        s("metadata_plaintext").len() / 2,
        v["metadata_padded_len"],
        s("sealed_metadata").len() / 2
    )
    .unwrap();
    wrap_hex(&mut out, "mac", &s("mac"));
    wrap_hex(&mut out, "header", &s("header"));
    for c in v["chunks"].as_array().unwrap() {
        writeln!(
            out,
            "chunk[{}]           nonce {} stored {} bytes, tag {}",
            c["index"],
            c["nonce"].as_str().unwrap(),
            c["stored_len"],
            c["tag"].as_str().unwrap()
        )
        .unwrap();
    }
    writeln!(out, "{:<18} {}", "stored_len", v["stored_len"]).unwrap();
    wrap_hex(&mut out, "sha256(stored)", &s("stored_sha256"));
    writeln!(out, "```\n").unwrap();
    out
}

fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

const BEGIN: &str =
    "<!-- worked-examples:begin (generated by crates/envelope/tests/format_vectors.rs) -->\n";
const END: &str = "<!-- worked-examples:end -->";

#[test]
fn format_vectors_match_files_and_spec() {
    let update = std::env::var_os("CUSTODIA_UPDATE_VECTORS").is_some();
    let mut section = String::new();
    for (i, case) in cases().iter().enumerate() {
        let (vector, md) = generate(i, case);
        section.push_str(&md);
        let path = repo_path(&format!("tests/vectors/format/{}.json", case.name));
        let text = serde_json::to_string_pretty(&vector).unwrap() + "\n";
        if update {
            std::fs::write(&path, &text).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run with CUSTODIA_UPDATE_VECTORS=1",
                path.display()
            )
        });
        assert_eq!(
            on_disk,
            text,
            "{} differs from what the code produces",
            path.display()
        );
    }
    let doc_path = repo_path("../../docs/FORMAT.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    let start = doc
        .find(BEGIN)
        .expect("FORMAT.md lacks the worked-examples marker")
        + BEGIN.len();
    let end = doc.find(END).expect("FORMAT.md lacks the end marker");
    if update && doc[start..end] != section {
        let new = format!("{}{}{}", &doc[..start], section, &doc[end..]);
        std::fs::write(&doc_path, new).unwrap();
        return;
    }
    assert!(
        doc[start..end] == section,
        "docs/FORMAT.md worked examples are stale; run with CUSTODIA_UPDATE_VECTORS=1"
    );
}

/// Every vector file through every reader API: one-shot, in place, streaming with odd feed
/// sizes, and range reads.
#[test]
fn every_vector_opens_through_every_reader_api() {
    for case in cases() {
        let path = repo_path(&format!("tests/vectors/format/{}.json", case.name));
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let stored = hex::decode(v["stored"].as_str().unwrap()).unwrap();
        let plaintext = hex::decode(v["plaintext"].as_str().unwrap()).unwrap();
        let secrets: Vec<_> = v["recipient_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                let b: [u8; 32] = hex::decode(k["private_key"].as_str().unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap();
                RecipientSecretKey::from_bytes(b)
            })
            .collect();
        let binding = Binding::new("mail-ie", "alice/INBOX/1.eml").unwrap();

        let (plain, meta) = open_with_keys(&stored, &secrets, &binding).unwrap();
        assert_eq!(plain, plaintext, "{}", case.name);
        assert_eq!(meta.len(), case.metadata.len());

        let header = Header::parse(&stored).unwrap();
        let unlocked = header
            .unlock(&header.unwrap_with(&secrets).unwrap(), &binding)
            .unwrap();
        let mut in_place = stored.clone();
        unlocked.open_in_place(&mut in_place).unwrap();
        assert_eq!(in_place, plaintext);

        for feed in [1, 7, 4096, 4112, 5000] {
            let mut opener = unlocked.opener().unwrap();
            let mut out = Vec::new();
            for piece in stored[header.profile().header_size()..].chunks(feed) {
                opener.update(piece, &mut out).unwrap();
            }
            opener.finish(&mut out).unwrap();
            assert_eq!(out, plaintext, "{} feed {feed}", case.name);
        }

        let len = plaintext.len() as u64;
        for (a, b) in [
            (0, len),
            (len / 2, len),
            (0, len.min(1)),
            (len.saturating_sub(2), len),
        ] {
            if a >= b {
                continue;
            }
            let r = header.profile().chunk_range(len, a, b).unwrap();
            let got = unlocked
                .open_range(&r, &stored[r.stored_start as usize..r.stored_end as usize])
                .unwrap();
            assert_eq!(got, plaintext[a as usize..b as usize]);
        }
    }
}

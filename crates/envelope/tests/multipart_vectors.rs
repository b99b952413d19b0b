//! The multipart worked example of docs/FORMAT.md (§10a, "Example 7") and its negative
//! vectors (`tests/vectors/multipart/`): a two-part object with its metadata and layout
//! records, regenerated from fixed keys and deterministic randomness and compared byte for
//! byte, then read by a reader written from §10a alone — which must open the example and
//! refuse every negative vector with the error the vector names.
//! Run with `CUSTODIA_UPDATE_VECTORS=1` to rewrite the files after a deliberate change.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "tests"
)]

mod vector_files;

use custodia_envelope::multipart::Layout;
use custodia_envelope::*;
use serde_json::{Value, json};
use vector_files::{check_file, repo_path, variant};

const BUCKET: &str = "mail-ie";
const KEY: &str = "alice/INBOX/2.eml";
const UPLOAD: &str = "2~vector-upload";
const MAILBOX: &str = "alice@example.ie";

fn profile() -> Profile {
    Profile::new(512, 4096).unwrap()
}

fn secret() -> RecipientSecretKey {
    RecipientSecretKey::generate(&mut DeterministicRandomness::new(
        b"custodia vector key dublin",
    ))
    .unwrap()
}

fn recipient(secret: &RecipientSecretKey) -> RecipientPublicKey {
    RecipientPublicKey {
        id: RecipientId {
            region: Region::new("ie").unwrap(),
            custodian: CustodianName::new("dublin").unwrap(),
            key_id: secret.key_id().unwrap(),
            key_version: KeyVersion(1),
        },
        public_key: secret.public_key().unwrap(),
    }
}

fn layout_name(parts: u64) -> String {
    format!(".custodia/layout/{KEY}/{parts}")
}

/// Seals one record of the upload: `part` is `1`, `2`, `metadata` or `layout`.
fn seal_record(seed: &str, part: &str, name: &str, body: &[u8], metadata: &Metadata) -> Vec<u8> {
    let mut context = Context::new(MAILBOX, &Region::new("ie").unwrap())
        .unwrap()
        .with("upload", UPLOAD)
        .unwrap()
        .with("part", part)
        .unwrap();
    // Parts (not the metadata and layout records) carry the layout version they are for.
    if part.parse::<u32>().is_ok() {
        context = context.with("layout", "3").unwrap();
    }
    seal(
        &SealOptions {
            profile: profile(),
            context: &context,
            binding: &Binding::new(BUCKET, name).unwrap(),
            recipients: &[recipient(&secret())],
            metadata,
        },
        body,
        &mut DeterministicRandomness::new(format!("custodia multipart vector {seed}").as_bytes()),
    )
    .unwrap()
}

/// Randomness that hands out `id` as the object id (the second draw) and a fresh stream
/// otherwise: what anyone sealing with public keys can do.
struct ChosenId {
    inner: DeterministicRandomness,
    id: [u8; 32],
    draws: usize,
}

impl Randomness for ChosenId {
    fn fill(&mut self, dest: &mut [u8]) -> Result<()> {
        self.draws += 1;
        if self.draws == 2 && dest.len() == 32 {
            dest.copy_from_slice(&self.id);
            return Ok(());
        }
        self.inner.fill(dest)
    }
}

/// Part 2's position re-sealed with other bytes under the genuine part's object id.
fn resealed_under(id: &ObjectId, body: &[u8]) -> Vec<u8> {
    let context = Context::new(MAILBOX, &Region::new("ie").unwrap())
        .unwrap()
        .with("upload", UPLOAD)
        .unwrap()
        .with("part", "2")
        .unwrap()
        .with("layout", "3")
        .unwrap();
    let sealed = seal(
        &SealOptions {
            profile: profile(),
            context: &context,
            binding: &Binding::new(BUCKET, KEY).unwrap(),
            recipients: &[recipient(&secret())],
            metadata: &Metadata::new(),
        },
        body,
        &mut ChosenId {
            inner: DeterministicRandomness::new(b"custodia multipart vector attacker"),
            id: id.0,
            draws: 0,
        },
    )
    .unwrap();
    assert_eq!(id_of(&sealed), *id);
    sealed
}

fn part1() -> Vec<u8> {
    (0..4096).map(|i| u8::try_from(i % 251).unwrap()).collect()
}

const PART2: &[u8] = b"Bye.\r\n";

fn id_of(record: &[u8]) -> ObjectId {
    *Header::parse(record).unwrap().object_id()
}

/// Part 1's layout key, from the part opened with the recipient key (as a reader gets it).
fn layout_key_of(part1: &[u8]) -> DerivedKey {
    let h = Header::parse(part1).unwrap();
    let secrets = [RecipientSecretKey::from_bytes(*secret().expose())];
    h.unlock(
        &h.unwrap_with(&secrets).unwrap(),
        &Binding::new(BUCKET, KEY).unwrap(),
    )
    .unwrap()
    .layout_key()
    .clone()
}

/// The layout record over `ids`, with `edit` applied to its metadata and body first.
fn layout_record(
    metadata_record: &[u8],
    ids: Vec<ObjectId>,
    keys: &[DerivedKey],
    seed: &str,
    edit: impl FnOnce(&mut Metadata, &mut Vec<u8>),
) -> Vec<u8> {
    let last = if ids.len() == 2 {
        PART2.len() as u64
    } else {
        4096
    };
    let layout = Layout::new(UPLOAD, 4096, last, ids.clone()).unwrap();
    let mut m = layout.metadata().unwrap();
    let mut body = layout.body(metadata_record, keys).unwrap();
    edit(&mut m, &mut body);
    seal_record(seed, "layout", &layout_name(ids.len() as u64), &body, &m)
}

fn metadata_without(m: &Metadata, drop: &str) -> Metadata {
    let mut out = Metadata::new();
    for (k, v) in m.iter().filter(|(k, _)| *k != drop) {
        out.insert(k, v).unwrap();
    }
    out
}

fn metadata_with(m: &Metadata, key: &str, value: &str) -> Metadata {
    let mut out = Metadata::new();
    for (k, v) in m.iter() {
        out.insert(k, if k == key { value } else { v }).unwrap();
    }
    out
}

/// The example (as JSON) and the negative vectors (name, what, JSON).
fn generate() -> (Value, Vec<(&'static str, &'static str, Value)>) {
    let mut user = Metadata::new();
    user.insert("content-type", "message/rfc822").unwrap();
    let metadata_record = seal_record("metadata", "metadata", KEY, b"", &user);
    let p1 = seal_record("part 1", "1", KEY, &part1(), &Metadata::new());
    let p2 = seal_record("part 2", "2", KEY, PART2, &Metadata::new());
    // Part 2 as first sent, with other bytes, before the client sent it again.
    let p2_first = seal_record("part 2 first send", "2", KEY, b"Hi!!\r\n", &Metadata::new());
    let ids = vec![id_of(&p1), id_of(&p2)];
    let lk = [layout_key_of(&p1), layout_key_of(&p2)];
    let layout = layout_record(&metadata_record, ids.clone(), &lk, "layout", |_, _| {});
    let object = [p1.clone(), p2.clone()].concat();
    let mut plaintext = part1();
    plaintext.extend_from_slice(PART2);
    let l = Layout::new(UPLOAD, 4096, PART2.len() as u64, ids.clone()).unwrap();
    let example = json!({
        "profile": {"header_size": 512, "chunk_size": 4096},
        "recipient_private_key": hex::encode(secret().expose()),
        "bucket": BUCKET,
        "key": KEY,
        "upload": UPLOAD,
        "layout_name": layout_name(2),
        "part_object_ids": ids.iter().map(|i| hex::encode(i.0)).collect::<Vec<_>>(),
        "layout_metadata": l.metadata().unwrap().iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "layout_keys": lk.iter().map(|k| hex::encode(k.expose())).collect::<Vec<_>>(),
        "layout_body": hex::encode(l.body(&metadata_record, &lk).unwrap()),
        "metadata_record": hex::encode(&metadata_record),
        "layout_record": hex::encode(&layout),
        "object": hex::encode(&object),
        "plaintext": hex::encode(&plaintext),
        "metadata": [["content-type", "message/rfc822"]],
    });
    let with = |object: Vec<u8>, layout: Vec<u8>, name: String, error: &str| {
        json!({
            "object": hex::encode(object),
            "layout_record": hex::encode(layout),
            "layout_name": name,
            "expected_error": error,
        })
    };
    let m = l.metadata().unwrap();
    let negatives = vec![
        (
            "part-resent",
            "part 2 as first sent (same upload, number and name, other bytes) put back",
            with(
                [p1.clone(), p2_first.clone()].concat(),
                layout.clone(),
                layout_name(2),
                "LayoutMismatch",
            ),
        ),
        (
            "parts-swapped",
            "parts 1 and 2 in the other order",
            with(
                [p2.clone(), p1.clone()].concat(),
                layout.clone(),
                layout_name(2),
                "LayoutMismatch",
            ),
        ),
        (
            "last-part-dropped",
            "the object cut after part 1",
            with(p1.clone(), layout.clone(), layout_name(2), "StoredLength"),
        ),
        (
            "layout-renamed",
            "the layout record read under the name of a 3-part layout",
            with(
                object.clone(),
                layout.clone(),
                layout_name(3),
                "HeaderAuthentication",
            ),
        ),
        (
            "layout-one-id-short",
            "a layout body holding one object id fewer than its parts (part 2's dropped)",
            with(
                object.clone(),
                layout_record(&metadata_record, ids.clone(), &lk, "short", |_, body| {
                    // Part 2's id, the 32 bytes before the two tags.
                    let at = body.len() - 64 - 32;
                    body.drain(at..at + 32);
                }),
                layout_name(2),
                "NonCanonical",
            ),
        ),
        (
            "layout-version-4",
            "a layout version this document does not define",
            with(
                object.clone(),
                layout_record(&metadata_record, ids.clone(), &lk, "v4", |meta, _| {
                    *meta = metadata_with(&m, "layout-version", "4");
                }),
                layout_name(2),
                "NonCanonical",
            ),
        ),
        (
            "layout-version-1",
            "a version 1 layout (no layout-version, body = the metadata record alone)",
            with(
                object.clone(),
                layout_record(&metadata_record, ids.clone(), &lk, "v1", |meta, body| {
                    *meta = metadata_without(&m, "layout-version");
                    *body = metadata_record.clone();
                }),
                layout_name(2),
                "LegacyLayout",
            ),
        ),
        (
            "parts-count-leading-zero",
            "`parts` written `02`",
            with(
                object.clone(),
                layout_record(&metadata_record, ids.clone(), &lk, "zero", |meta, _| {
                    *meta = metadata_with(&m, "parts", "02");
                }),
                layout_name(2),
                "NonCanonical",
            ),
        ),
        (
            "layout-version-2",
            "a version 2 layout (the ids without a tag)",
            with(
                object.clone(),
                layout_record(&metadata_record, ids.clone(), &lk, "v2", |meta, body| {
                    *meta = metadata_with(&m, "layout-version", "2");
                    body.truncate(body.len() - 64);
                }),
                layout_name(2),
                "LegacyLayout",
            ),
        ),
        (
            "layout-tag-changed",
            "one bit of part 2's tag in the layout",
            with(
                object.clone(),
                layout_record(&metadata_record, ids.clone(), &lk, "tag", |_, body| {
                    *body.last_mut().unwrap() ^= 1;
                }),
                layout_name(2),
                "LayoutAuthentication",
            ),
        ),
        (
            "part-resealed-same-id",
            "part 2 replaced by an envelope of other bytes sealed with the public key alone under \
             part 2's genuine object id and context (the layout untouched)",
            with(
                [p1.clone(), resealed_under(&id_of(&p2), b"Evil\r\n")].concat(),
                layout.clone(),
                layout_name(2),
                "LayoutAuthentication",
            ),
        ),
        (
            "layout-forged-shorter",
            "the object cut to part 1, with a one-part layout naming part 1's genuine id, \
             sealed with the public key alone (its tag under a key not derived from part 1)",
            with(
                p1.clone(),
                layout_record(
                    &metadata_record,
                    vec![id_of(&p1)],
                    &[DerivedKey::from_bytes([0x42; 32])],
                    "forged",
                    |_, _| {},
                ),
                layout_name(1),
                "LayoutAuthentication",
            ),
        ),
    ];
    (example, negatives)
}

/// Reads a multipart object by docs/FORMAT.md §10a: the layout record under its own name,
/// then every part checked against it. Errors are variant names.
fn read(v: &Value, key: &RecipientSecretKey) -> Result<(Vec<u8>, Metadata), String> {
    let err = |e: Error| variant(&e);
    let object = hex::decode(v["object"].as_str().unwrap()).unwrap();
    let record = hex::decode(v["layout_record"].as_str().unwrap()).unwrap();
    let name = v["layout_name"].as_str().unwrap();
    let secrets = [RecipientSecretKey::from_bytes(*key.expose())];
    let first = Header::parse(&object).map_err(err)?;
    let upload = first.context().get("upload").ok_or("NotMultipart")?;
    // The layout record, under its own name.
    let lh = Header::parse(&record).map_err(err)?;
    if lh.context().get("upload") != Some(upload) || lh.context().get("part") != Some("layout") {
        return Err("LayoutMismatch".into());
    }
    let lb = Binding::new(BUCKET, name).unwrap();
    let unlocked = lh
        .unlock(&lh.unwrap_with(&secrets).map_err(err)?, &lb)
        .map_err(err)?;
    let body = unlocked.open(&record).map_err(err)?;
    let (layout, metadata_record) = Layout::parse(unlocked.metadata(), &body).map_err(err)?;
    if layout.is_legacy() {
        return Err("LegacyLayout".into());
    }
    let n: u64 = name.rsplit('/').next().unwrap().parse().unwrap();
    if layout.upload() != upload || layout.parts() != n {
        return Err("LayoutMismatch".into());
    }
    // Part 1 against the layout, then the layout's tag under part 1's layout key (part 1
    // opened with the recipient key).
    layout.check_part(0, &first).map_err(err)?;
    let binding = Binding::new(BUCKET, KEY).unwrap();
    let part1 = first
        .unlock(&first.unwrap_with(&secrets).map_err(err)?, &binding)
        .map_err(err)?;
    layout
        .check_tag(0, metadata_record, part1.layout_key())
        .map_err(err)?;
    let profile = first.profile();
    if layout.stored_total(profile).map_err(err)? != object.len() as u64 {
        return Err("StoredLength".into());
    }
    // The object's metadata, from the metadata record.
    let (_, metadata) = open_with_keys(metadata_record, &secrets, &binding).map_err(err)?;
    // Every part at its offset, checked against the layout, opened under the object's name.
    let mut plaintext = Vec::new();
    let mut offset = 0usize;
    for k in 0..layout.parts() {
        let len = layout.stored_len(profile, k).map_err(err)? as usize;
        let part = &object[offset..offset + len];
        let header = Header::parse(part).map_err(err)?;
        layout.check_part(k, &header).map_err(err)?;
        // The part's own tag, under its layout key, before any of its plaintext is used.
        let unlocked = header
            .unlock(&header.unwrap_with(&secrets).map_err(err)?, &binding)
            .map_err(err)?;
        layout
            .check_tag(k, metadata_record, unlocked.layout_key())
            .map_err(err)?;
        plaintext.extend(unlocked.open(part).map_err(err)?);
        offset += len;
    }
    Ok((plaintext, metadata))
}

#[test]
fn the_multipart_example_and_negative_vectors_match_their_files_and_read_by_the_spec() {
    let (example, negatives) = generate();
    check_file("tests/vectors/multipart/object.json", &example);
    let key = secret();
    let (plaintext, metadata) = read(&example, &key).unwrap();
    assert_eq!(
        hex::encode(plaintext),
        example["plaintext"].as_str().unwrap()
    );
    assert_eq!(metadata.get("content-type"), Some("message/rfc822"));
    // docs/FORMAT.md's Example 7 shows these very values.
    let spec = std::fs::read_to_string(repo_path("../../docs/FORMAT.md")).unwrap();
    let sha = |k: &str| {
        hex::encode(
            ring::digest::digest(
                &ring::digest::SHA256,
                &hex::decode(example[k].as_str().unwrap()).unwrap(),
            )
            .as_ref(),
        )
    };
    for value in [sha("object"), sha("layout_record")].into_iter().chain(
        example["part_object_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned()),
    ) {
        assert!(spec.contains(&value), "FORMAT.md Example 7 lacks {value}");
    }
    for (name, what, mut v) in negatives {
        assert!(
            spec.contains(&format!("`{name}.json`")),
            "FORMAT.md lacks {name}"
        );
        v["what"] = json!(what);
        check_file(&format!("tests/vectors/multipart/negative/{name}.json"), &v);
        let want = v["expected_error"].as_str().unwrap();
        assert_eq!(
            read(&v, &key).err().as_deref(),
            Some(want),
            "{name}: {what}"
        );
    }
}

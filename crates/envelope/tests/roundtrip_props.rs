//! Property tests of sealing and opening.
//!
//! * **Round trip**: for random plaintext sizes from 0 to 4 chunks (boundaries favoured),
//!   chunk sizes 4 KiB, 8 KiB and 64 KiB (and 16 MiB with small bodies), and random slice
//!   sizes fed to [`Sealer::update`] and [`Opener::update`]: the streamed, whole and in-place
//!   sealers give byte-identical objects of `profile.sealed_len(len)` bytes, and the object
//!   opens to the plaintext whole, streamed and through `open_with_keys`.
//! * **Range reads**: `Profile::chunk_range` + `Unlocked::open_range`, and the same range
//!   through `chunk_opener` + `open_chunk`, return exactly `plaintext[start..end]`.
//! * **Length arithmetic**: `sealed_len`, `plaintext_len` and `chunk_count` agree with what
//!   the sealer emits and with each other, for any profile.
//! * **Parser robustness**: random bytes, and valid objects (or their context and stanza
//!   encodings) with flipped, inserted or deleted bytes, random length prefixes and
//!   truncations, never panic `Header::parse`, `Profile::from_prefix`, `Context::from_bytes`,
//!   `Stanza::from_bytes` or `open_with_keys`; whatever parses re-encodes to the same bytes
//!   (one canonical encoding), and no changed object opens.
//! * **Differential**: STREAM chunks sealed by [`ChunkSealer`] (ring) equal, byte for byte,
//!   AES-256-GCM by the independent `aes-gcm` crate with the documented nonce (11-byte
//!   big-endian counter, last-chunk flag, empty AAD), and chunks sealed by `aes-gcm` open with
//!   [`ChunkOpener`] from any starting index.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    reason = "tests"
)]

use std::sync::LazyLock;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Nonce, Payload};
use custodia_envelope::{
    Binding, ChunkOpener, ChunkSealer, Context, CustodianName, DataKey, DeterministicRandomness,
    Error, Header, KeyVersion, Metadata, ObjectId, ObjectKeys, Opener, PREFIX_LEN, Profile,
    RecipientId, RecipientPublicKey, RecipientSecretKey, Region, SealOptions, Sealer, Stanza,
    StreamNonce, TAG_LEN, Unlocked, looks_sealed, open_with_keys, seal, seal_in_place,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------------------

struct Fixture {
    secrets: [RecipientSecretKey; 1],
    recipients: [RecipientPublicKey; 1],
    context: Context,
    binding: Binding,
    metadata: Metadata,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let mut rng = DeterministicRandomness::new(b"roundtrip keys");
    let ie = Region::new("ie").unwrap();
    let secret = RecipientSecretKey::generate(&mut rng).unwrap();
    let public = RecipientPublicKey {
        id: RecipientId {
            region: ie.clone(),
            custodian: CustodianName::new("dublin-1").unwrap(),
            key_id: secret.key_id().unwrap(),
            key_version: KeyVersion(1),
        },
        public_key: secret.public_key().unwrap(),
    };
    let mut metadata = Metadata::new();
    metadata.insert("content-type", "message/rfc822").unwrap();
    Fixture {
        secrets: [secret],
        recipients: [public],
        context: Context::new("mailbox-42", &ie).unwrap(),
        binding: Binding::new("mail", "mailbox-42/inbox/1.eml").unwrap(),
        metadata,
    }
});

fn options(profile: Profile) -> SealOptions<'static> {
    let f = &*FIXTURE;
    SealOptions {
        profile,
        context: &f.context,
        binding: &f.binding,
        recipients: &f.recipients,
        metadata: &f.metadata,
    }
}

fn profile(chunk_size: u32) -> Profile {
    Profile::new(1024, chunk_size).unwrap()
}

fn rng(seed: u64) -> DeterministicRandomness {
    DeterministicRandomness::new(&seed.to_be_bytes())
}

/// Incompressible test bytes (xorshift64).
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_be_bytes()[0]
        })
        .collect()
}

/// `input` cut into consecutive slices whose sizes cycle through `sizes` (all non-zero).
fn slices<'a>(input: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = input;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        out.push(piece);
        rest = tail;
    }
    out
}

fn unlock(stored: &[u8]) -> Unlocked {
    let header = Header::parse(stored).unwrap();
    let shares = header.unwrap_with(&FIXTURE.secrets).unwrap();
    header.unlock(&shares, &FIXTURE.binding).unwrap()
}

// ---------------------------------------------------------------------------------------
// Sealing and opening in every way
// ---------------------------------------------------------------------------------------

/// Seals through [`Sealer`], feeding `plaintext` in slices of `feeds` sizes.
fn seal_streamed(profile: Profile, plaintext: &[u8], feeds: &[usize], seed: u64) -> Vec<u8> {
    let (mut stored, mut sealer) = Sealer::begin(&options(profile), &mut rng(seed)).unwrap();
    assert_eq!(stored.len(), profile.header_size());
    sealer.update(&[], &mut stored).unwrap();
    for piece in slices(plaintext, feeds) {
        sealer.update(piece, &mut stored).unwrap();
        let body = stored.len() - profile.header_size();
        assert_eq!(
            body % (profile.chunk_size() + TAG_LEN),
            0,
            "only whole chunks come out"
        );
    }
    sealer.finish(&mut stored).unwrap();
    stored
}

/// Opens a body through [`Opener`], fed in slices of `feeds` sizes.
fn open_streamed(unlocked: &Unlocked, body: &[u8], feeds: &[usize]) -> Result<Vec<u8>, Error> {
    let mut opener: Opener = unlocked.opener()?;
    let mut plain = Vec::new();
    for piece in slices(body, feeds) {
        opener.update(piece, &mut plain)?;
    }
    opener.finish(&mut plain)?;
    Ok(plain)
}

/// Every length function agrees with an object of `len` plaintext bytes stored as `stored`.
fn check_lengths(profile: Profile, len: usize, stored: &[u8]) {
    let (len64, stored64) = (len as u64, stored.len() as u64);
    assert_eq!(profile.sealed_len(len64), Some(stored64));
    assert_eq!(profile.plaintext_len(stored64), Ok(len64));
    let stored_chunk = profile.chunk_size() + TAG_LEN;
    let body = stored.len() - profile.header_size();
    assert_eq!(
        profile.chunk_count(len64),
        body.div_ceil(stored_chunk) as u64
    );
    for other in stored64.saturating_sub(TAG_LEN as u64 + 1)..=stored64 + TAG_LEN as u64 + 1 {
        if let Ok(p) = profile.plaintext_len(other) {
            assert_eq!(profile.sealed_len(p), Some(other), "stored length {other}");
        }
    }
}

fn check_round_trip(chunk_size: u32, len: usize, feeds: &[usize], seed: u64) {
    let profile = profile(chunk_size);
    let plaintext = pseudo_random(len, seed);
    let streamed = seal_streamed(profile, &plaintext, feeds, seed);
    check_lengths(profile, len, &streamed);

    // Same randomness, same object: the three sealers agree byte for byte.
    let whole = seal(&options(profile), &plaintext, &mut rng(seed)).unwrap();
    let mut in_place = plaintext.clone();
    seal_in_place(&options(profile), &mut in_place, &mut rng(seed)).unwrap();
    assert!(whole == streamed, "seal() differs from Sealer");
    assert!(in_place == streamed, "seal_in_place() differs from Sealer");

    let unlocked = unlock(&streamed);
    assert_eq!(unlocked.metadata(), &FIXTURE.metadata);
    assert!(unlocked.open(&streamed).unwrap() == plaintext);
    let body = &streamed[profile.header_size()..];
    let mut reversed = feeds.to_vec();
    reversed.reverse();
    assert!(open_streamed(&unlocked, body, &reversed).unwrap() == plaintext);
    let (opened, metadata) = open_with_keys(&streamed, &FIXTURE.secrets, &FIXTURE.binding).unwrap();
    assert!(opened == plaintext);
    assert_eq!(metadata, FIXTURE.metadata);
}

/// `plaintext[start..end]` must come back from `open_range`, and from `chunk_opener` +
/// `open_chunk` over the same stored bytes.
fn check_range(unlocked: &Unlocked, stored: &[u8], plaintext: &[u8], (start, end): (u64, u64)) {
    let profile = unlocked.header().profile();
    let expected = &plaintext[at(start)..at(end)];
    let range = profile
        .chunk_range(plaintext.len() as u64, start, end)
        .unwrap();
    let stored = &stored[at(range.stored_start)..at(range.stored_end)];
    let whole = unlocked.open_range(&range, stored).unwrap();
    assert!(whole == expected, "open_range {start}..{end}");

    let mut opener = unlocked.chunk_opener(range.first_chunk).unwrap();
    let pieces: Vec<&[u8]> = stored.chunks(profile.chunk_size() + TAG_LEN).collect();
    assert_eq!(pieces.len() as u64, range.chunk_count);
    let mut plain = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let last = range.includes_final && i + 1 == pieces.len();
        plain.extend_from_slice(opener.open_chunk(&mut piece.to_vec(), last).unwrap());
    }
    assert_eq!(opener.is_finished(), range.includes_final);
    let by_chunks = &plain[at(range.skip)..][..expected.len()];
    assert!(by_chunks == expected, "chunk_opener {start}..{end}");
}

fn at(offset: u64) -> usize {
    usize::try_from(offset).unwrap()
}

/// Random ranges from `picks`, plus the whole object, its last byte and a chunk boundary.
fn check_ranges(chunk: u32, len: usize, picks: &[(u64, u64)], seed: u64) {
    let profile = profile(chunk);
    let plaintext = pseudo_random(len, seed);
    let stored = seal(&options(profile), &plaintext, &mut rng(seed)).unwrap();
    let unlocked = unlock(&stored);
    let (n, c) = (len as u64, u64::from(chunk));
    let random = picks.iter().map(|&(a, b)| (a % n, b % n));
    let mut ranges: Vec<_> = random.map(|(a, b)| (a.min(b), a.max(b) + 1)).collect();
    ranges.extend([(0, n), (n - 1, n), (c.min(n) - 1, (c + 1).min(n))]);
    for range in ranges {
        check_range(&unlocked, &stored, &plaintext, range);
    }
}

fn chunk_size() -> impl Strategy<Value = u32> {
    prop_oneof![Just(4096u32), Just(8192), Just(65536)]
}

/// A plaintext length in `0 ..= 4 chunks`, half of the time within 2 bytes of a boundary.
fn length(chunk: usize) -> impl Strategy<Value = usize> {
    let near_boundary = (0..=4usize, 0..=4usize).prop_map(move |(k, d)| k * chunk + d);
    prop_oneof![
        0..=4 * chunk,
        near_boundary.prop_map(|n| n.saturating_sub(2))
    ]
}

/// Slice sizes for `update`: tiny, around a chunk, or large.
fn feeds(chunk: usize) -> impl Strategy<Value = Vec<usize>> {
    let size = prop_oneof![1..=64usize, chunk - 17..=chunk + 17, 1..=3 * chunk];
    prop::collection::vec(size, 1..6)
}

/// Chunk size, plaintext length, slice sizes for sealing and for opening, seed.
fn case() -> impl Strategy<Value = (u32, usize, Vec<usize>, Vec<usize>, u64)> {
    chunk_size().prop_flat_map(|c| {
        let chunk = c as usize;
        (
            Just(c),
            length(chunk),
            feeds(chunk),
            feeds(chunk),
            any::<u64>(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn seal_then_open_round_trips((chunk, len, seal_feeds, _, seed) in case()) {
        check_round_trip(chunk, len, &seal_feeds, seed);
    }

    #[test]
    fn streamed_opening_accepts_any_slicing((chunk, len, seal, open, seed) in case()) {
        let profile = profile(chunk);
        let plaintext = pseudo_random(len, seed);
        let stored = seal_streamed(profile, &plaintext, &seal, seed);
        let body = &stored[profile.header_size()..];
        prop_assert!(open_streamed(&unlock(&stored), body, &open).unwrap() == plaintext);
    }

    #[test]
    fn range_reads_return_exactly_the_range(
        (chunk, len, _, _, seed) in case(),
        picks in prop::collection::vec((any::<u64>(), any::<u64>()), 1..8),
    ) {
        check_ranges(chunk, len.max(1), &picks, seed);
    }
}

#[test]
fn sixteen_mib_chunks_round_trip_small_bodies() {
    let max = Profile::MAX_CHUNK;
    for len in [0, 1, 4096, 70_000] {
        check_round_trip(max, len, &[1000, 7, 65_536], 16);
        if len > 0 {
            let n = len as u64;
            check_ranges(max, len, &[(n / 3, n), (0, n / 2)], 16);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Length arithmetic for any profile
// ---------------------------------------------------------------------------------------

fn any_profile() -> impl Strategy<Value = Profile> {
    (32u32..=4096, 12u32..=24).prop_map(|(h, log)| Profile::new(h * 16, 1 << log).unwrap())
}

/// `sealed_len`, `plaintext_len`, `chunk_count` and `chunk_range` agree with the formulas of
/// range.rs and with each other.
fn check_length_arithmetic(profile: Profile, len: u64, stored: u64) {
    let (h, c, t) = (
        profile.header_size() as u64,
        profile.chunk_size() as u64,
        TAG_LEN as u64,
    );
    let s = profile.sealed_len(len).unwrap();
    assert_eq!(profile.chunk_count(len), len.div_ceil(c).max(1));
    assert_eq!(s, h + len + t * profile.chunk_count(len));
    assert_eq!(profile.plaintext_len(s), Ok(len));
    match profile.plaintext_len(stored) {
        Ok(p) => assert_eq!(profile.sealed_len(p), Some(stored)),
        Err(e) => assert_eq!(e, Error::InvalidStoredLength(stored)),
    }
    if len > 0 {
        let (start, end) = (len / 3, len - len / 5);
        let r = profile.chunk_range(len, start, end).unwrap();
        assert!(r.stored_start >= h && r.stored_end <= s);
        assert_eq!(r.includes_final, r.stored_end == s);
        assert!(r.skip < c && r.len == end - start);
        assert_eq!(r.stored_start, h + r.first_chunk * (c + t));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn length_arithmetic_is_consistent(
        profile in any_profile(),
        len in 0u64..1 << 40,
        stored in 0u64..1 << 40,
    ) {
        check_length_arithmetic(profile, len, stored);
    }
}

// ---------------------------------------------------------------------------------------
// Parser robustness
// ---------------------------------------------------------------------------------------

/// A small valid object and the offsets and widths of its length and size fields.
struct Sample {
    stored: Vec<u8>,
    length_fields: Vec<(usize, usize)>,
}

static SAMPLE: LazyLock<Sample> = LazyLock::new(|| {
    let profile = Profile::new(512, 4096).unwrap();
    let stored = seal(&options(profile), b"Subject: hi\r\n\r\nhello", &mut rng(7)).unwrap();
    let header = Header::parse(&stored).unwrap();
    let mut fields = vec![(10, 4), (14, 4)];
    let context = header.context().to_bytes();
    let mut at = PREFIX_LEN + 32;
    fields.push((at, 1));
    at += 1;
    for (key, value) in header.context().iter() {
        fields.extend([(at, 1), (at + 1 + key.len(), 2)]);
        at += 1 + key.len() + 2 + value.len();
    }
    assert_eq!(at, PREFIX_LEN + 32 + context.len());
    at += 32;
    fields.push((at, 1));
    at += 1;
    for s in header.stanzas() {
        let region = s.recipient.region.as_str().len();
        fields.extend([(at, 1), (at + 1 + region, 1)]);
        at += s.to_bytes().len();
    }
    Sample {
        stored,
        length_fields: fields,
    }
});

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize, len: usize },
    SetLength { field: usize, value: u32 },
    Truncate { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..40))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1..40usize).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), any::<u32>())
            .prop_map(|(field, value)| Mutation::SetLength { field, value }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len().max(1);
    match m {
        Mutation::Flip { at, mask } => {
            if let Some(b) = bytes.get_mut(at % n) {
                *b ^= mask;
            }
        }
        Mutation::Insert { at, bytes: new } => {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, new.iter().copied());
        }
        Mutation::Delete { at, len } => {
            let at = at % n;
            let end = (at + len).min(bytes.len());
            bytes.drain(at.min(end)..end);
        }
        Mutation::SetLength { field, value } => {
            let fields = &SAMPLE.length_fields;
            let (at, width) = fields[field % fields.len()];
            if let Some(slot) = bytes.get_mut(at..at + width) {
                slot.copy_from_slice(&value.to_be_bytes()[4 - width..]);
            }
        }
        Mutation::Truncate { at } => bytes.truncate(at % n),
    }
}

/// Runs every parser and the full open path on `bytes`: they may fail but never panic, and
/// whatever parses is in its one canonical encoding (re-encoding gives back the same bytes).
fn parse_everything(bytes: &[u8]) -> Result<(Vec<u8>, Metadata), Error> {
    let _ = looks_sealed(bytes);
    let _ = Profile::from_prefix(bytes);
    if let Ok(context) = Context::from_bytes(bytes) {
        assert_eq!(context.to_bytes(), bytes, "canonical context");
    }
    if let Ok(stanza) = Stanza::from_bytes(bytes) {
        assert_eq!(stanza.to_bytes(), bytes, "canonical stanza");
    }
    if let Ok(header) = Header::parse(bytes) {
        let size = header.profile().header_size();
        assert_eq!(header.to_bytes(), bytes[..size], "canonical header");
    }
    open_with_keys(bytes, &FIXTURE.secrets, &FIXTURE.binding)
}

/// The sample object after `mutations`: it must not panic anything, nor open unless the
/// mutations cancelled out.
fn check_mutated_object(mutations: &[Mutation]) {
    let mut bytes = SAMPLE.stored.clone();
    mutations.iter().for_each(|m| apply(&mut bytes, m));
    let opened = parse_everything(&bytes);
    assert!(
        opened.is_err() || bytes == SAMPLE.stored,
        "a changed object opened"
    );
}

/// The sample's context or first stanza after `mutations`, through their own parsers.
fn check_mutated_field(stanza: bool, mutations: &[Mutation]) {
    let header = Header::parse(&SAMPLE.stored).unwrap();
    let mut bytes = match stanza {
        true => header.stanzas()[0].to_bytes(),
        false => header.context().to_bytes(),
    };
    mutations.iter().for_each(|m| apply(&mut bytes, m));
    let _ = parse_everything(&bytes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(
        valid_prefix in any::<bool>(),
        tail in prop::collection::vec(any::<u8>(), 0..700),
    ) {
        let prefix = &SAMPLE.stored[..if valid_prefix { PREFIX_LEN } else { 0 }];
        prop_assert!(parse_everything(&[prefix, &tail].concat()).is_err());
    }

    #[test]
    fn mutated_objects_never_panic_and_never_open(
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        check_mutated_object(&mutations);
    }

    #[test]
    fn mutated_fields_never_panic_their_parsers(
        stanza in any::<bool>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        check_mutated_field(stanza, &mutations);
    }
}

// ---------------------------------------------------------------------------------------
// ring vs aes-gcm
// ---------------------------------------------------------------------------------------

/// The chunk key of an object, through the real key schedule, and an `aes-gcm` cipher on it.
fn chunk_keys(dek: [u8; 32], object_id: [u8; 32]) -> (ObjectKeys, Aes256Gcm) {
    let (ctx, binding) = (FIXTURE.context.to_bytes(), FIXTURE.binding.to_bytes());
    let (dek, id) = (DataKey::from_bytes(dek), ObjectId(object_id));
    let keys = ObjectKeys::derive(&dek, &id, &ctx, &binding).unwrap();
    let cipher = Aes256Gcm::new_from_slice(keys.chunk_key().expose()).unwrap();
    (keys, cipher)
}

/// The nonce of chunk `counter`, checked against the layout stream.rs documents.
fn nonce(counter: u64, last: bool) -> Nonce<Aes256Gcm> {
    let bytes = StreamNonce::new(counter, last).bytes();
    let mut expected = [0u8; 12];
    expected[3..11].copy_from_slice(&counter.to_be_bytes());
    expected[11] = u8::from(last);
    assert_eq!(bytes, expected, "STREAM nonce layout");
    Nonce::<Aes256Gcm>::from(bytes)
}

/// The plaintexts of a stream of `count` 4 KiB chunks, the final one of `final_len` bytes
/// (reduced to 1 ..= 4096, or 0 ..= 4096 when it is the only chunk).
fn stream_plaintexts(count: usize, final_len: usize, seed: u64) -> Vec<Vec<u8>> {
    let last = match count {
        1 => final_len % 4097,
        _ => 1 + final_len % 4096,
    };
    let len = |i| if i + 1 == count { last } else { 4096 };
    (0..count)
        .map(|i| pseudo_random(len(i), seed ^ i as u64))
        .collect()
}

/// Chunks sealed by [`ChunkSealer`] equal `aes-gcm`'s encryption byte for byte, and open
/// with `aes-gcm` only under their own nonce.
fn check_ring_seals_like_aes_gcm(keys: [[u8; 32]; 2], plaintexts: &[Vec<u8>]) {
    let (keys, cipher) = chunk_keys(keys[0], keys[1]);
    let mut sealer = ChunkSealer::new(keys.chunk_key(), profile(4096)).unwrap();
    for (i, plain) in plaintexts.iter().enumerate() {
        let (index, last) = (i as u64, i + 1 == plaintexts.len());
        let mut stored = plain.clone();
        let tag = sealer.seal_chunk(&mut stored, last).unwrap();
        stored.extend_from_slice(&tag);
        let payload = Payload {
            msg: plain,
            aad: b"",
        };
        let reference = cipher.encrypt(&nonce(index, last), payload).unwrap();
        assert!(stored == reference, "chunk {i}: ring and aes-gcm differ");
        let opened = cipher.decrypt(&nonce(index, last), stored.as_slice());
        assert!(opened.unwrap() == *plain);
        assert!(
            cipher
                .decrypt(&nonce(index, !last), stored.as_slice())
                .is_err()
        );
        assert!(
            cipher
                .decrypt(&nonce(index + 1, last), stored.as_slice())
                .is_err()
        );
    }
    assert!(sealer.is_finished());
}

/// Chunks sealed by `aes-gcm` at indices `first ..` open with a [`ChunkOpener`] started at
/// `first`, and with no opener at another index.
fn check_chunk_opener_opens_aes_gcm(keys: [[u8; 32]; 2], plaintexts: &[Vec<u8>], first: u64) {
    let (keys, cipher) = chunk_keys(keys[0], keys[1]);
    let (key, profile) = (keys.chunk_key(), profile(4096));
    let mut opener = ChunkOpener::new(key, profile, first).unwrap();
    for (i, plain) in plaintexts.iter().enumerate() {
        let (index, last) = (first + i as u64, i + 1 == plaintexts.len());
        let mut stored = cipher
            .encrypt(&nonce(index, last), plain.as_slice())
            .unwrap();
        let mut elsewhere = ChunkOpener::new(key, profile, index + 1).unwrap();
        let moved = elsewhere
            .open_chunk(&mut stored.clone(), last)
            .map(|p| p.to_vec());
        assert_eq!(moved, Err(Error::ChunkAuthentication { index: index + 1 }));
        let opened = match last {
            true => opener.open_final(&mut stored),
            false => opener.open_chunk(&mut stored, false),
        };
        assert!(opened.unwrap() == plain.as_slice(), "chunk {index}");
    }
    assert!(opener.is_finished());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn ring_chunks_equal_aes_gcm_chunks(
        keys in any::<[[u8; 32]; 2]>(),
        (count, final_len, seed) in (1..=4usize, any::<usize>(), any::<u64>()),
    ) {
        check_ring_seals_like_aes_gcm(keys, &stream_plaintexts(count, final_len, seed));
    }

    #[test]
    fn aes_gcm_chunks_open_with_chunk_opener(
        keys in any::<[[u8; 32]; 2]>(),
        (count, final_len, seed) in (1..=4usize, any::<usize>(), any::<u64>()),
        first in prop_oneof![Just(0u64), 0..1u64 << 40, Just(u64::MAX - 8)],
    ) {
        let plaintexts = stream_plaintexts(count, final_len, seed);
        check_chunk_opener_opens_aes_gcm(keys, &plaintexts, first);
    }
}

//! Tamper resistance of sealed objects: every way of changing, cutting, extending, reordering,
//! relabelling or mixing stored objects must be refused with its precise typed [`Error`], and
//! no plaintext of a damaged chunk may ever be released.
//!
//! Checked on a two-chunk object (4096 + 1000 bytes, 4 KiB chunks) sealed to two custodians
//! (`a`, `b`) of region `ie`, with sealed metadata. The header is 512 bytes, not 256: the
//! smallest profile cannot hold two stanzas (it cannot even hold one).
//! * every single-bit flip of every stored byte, through the whole open path
//!   (`Header::parse` → `unwrap_with` → `unlock` → `open`), with the exact stage and error
//!   variants each header field may yield (the observed map is printed with `--nocapture`),
//!   and, for the body, `ChunkAuthentication` of the damaged chunk both whole and through the
//!   streaming [`Opener`], which must release only the chunks before the damaged one;
//! * truncation at every offset, appended bytes, reordered / dropped / duplicated chunks, a
//!   header over another object's body;
//! * relabelled context (mailbox, extra entry, region), another binding, changed sealed
//!   metadata, removed / reordered / foreign stanzas, shares from another object;
//! * the legitimate changes still work: a stanza rewrapped to a new key version and a
//!   re-header to a new recipient set open, with the body (and for a rewrap the MAC) unchanged.
//!
//! `unwrap_with` (HPKE) is memoized on the bytes it reads (object id, context, stanzas): it is
//! a pure function of them and the keys, so cases that leave them alone share one unwrap.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    reason = "tests"
)]

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use custodia_envelope::{
    Binding, Context, CustodianName, DeterministicRandomness, Error, Header, KeyVersion, MAC_LEN,
    Metadata, ObjectId, ObjectKeys, PREFIX_LEN, Profile, RecipientId, RecipientPublicKey,
    RecipientSecretKey, Region, SealOptions, Share, Stanza, TAG_LEN, Unlocked, rewrap_stanza, seal,
    unwrap_share,
};

// ---- Fixture: two custodians of `ie`, a context, a binding, sealed metadata -------------

const H: usize = 512;
const CHUNK: usize = 4096;
const STORED_CHUNK: usize = CHUNK + TAG_LEN;

/// A custodian's key pair for one key version.
struct Custodian {
    secret: RecipientSecretKey,
    public: RecipientPublicKey,
}

fn custodian(name: &str, version: u32, rng: &mut DeterministicRandomness) -> Custodian {
    let secret = RecipientSecretKey::generate(rng).unwrap();
    let id = RecipientId {
        region: Region::new("ie").unwrap(),
        custodian: CustodianName::new(name).unwrap(),
        key_id: secret.key_id().unwrap(),
        key_version: KeyVersion(version),
    };
    let public_key = secret.public_key().unwrap();
    let public = RecipientPublicKey { id, public_key };
    Custodian { secret, public }
}

struct World {
    context: Context,
    binding: Binding,
    metadata: Metadata,
    a: Custodian,
    b: Custodian,
    /// The two-chunk object most cases tamper with, and its plaintext.
    plaintext: Vec<u8>,
    stored: Vec<u8>,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let mut rng = DeterministicRandomness::new(b"tamper keys");
    let mut metadata = Metadata::new();
    metadata.insert("content-type", "message/rfc822").unwrap();
    metadata.insert("client-crc32c", "a1b2c3d4").unwrap();
    let mut world = World {
        context: Context::new("mbx-1", &Region::new("ie").unwrap()).unwrap(),
        binding: Binding::new("mail", "mbx-1/1.eml").unwrap(),
        metadata,
        a: custodian("a", 1, &mut rng),
        b: custodian("b", 1, &mut rng),
        plaintext: pseudo_random(CHUNK + 1000, 1),
        stored: Vec::new(),
    };
    world.stored = world.seal(&world.plaintext, b"object A");
    world
});

impl World {
    fn secrets(&self) -> [RecipientSecretKey; 2] {
        [self.a.secret.clone(), self.b.secret.clone()]
    }

    fn seal(&self, plaintext: &[u8], seed: &[u8]) -> Vec<u8> {
        let recipients = [self.a.public.clone(), self.b.public.clone()];
        let opts = SealOptions {
            profile: Profile::new(512, 4096).unwrap(),
            context: &self.context,
            binding: &self.binding,
            recipients: &recipients,
            metadata: &self.metadata,
        };
        seal(&opts, plaintext, &mut DeterministicRandomness::new(seed)).unwrap()
    }

    /// Shares of an untampered object, by honest unwrapping.
    fn shares(&self, stored: &[u8]) -> Vec<Share> {
        let header = Header::parse(stored).unwrap();
        header.unwrap_with(&self.secrets()).unwrap()
    }

    fn unlocked(&self, stored: &[u8]) -> Unlocked {
        unlock_with(stored, &self.secrets())
    }
}

fn unlock_with(stored: &[u8], secrets: &[RecipientSecretKey]) -> Unlocked {
    let header = Header::parse(stored).unwrap();
    let shares = header.unwrap_with(secrets).unwrap();
    header.unlock(&shares, &WORLD.binding).unwrap()
}

/// Incompressible test bytes (xorshift64), so no window of one chunk occurs in another.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x.to_be_bytes()[0]
    };
    (0..len).map(|_| next()).collect()
}

fn with_body_of(header: &[u8], stored: &[u8]) -> Vec<u8> {
    assert_eq!(header.len(), H, "a forged header keeps its size");
    [header, &stored[H..]].concat()
}

// ---- Opening, stage by stage, whole and streamed ----------------------------------------

/// Where the open path refused an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Parse,
    Unwrap,
    Unlock,
    Open,
}

/// Everything `unwrap_with` reads: object id, context and stanzas (not metadata or MAC).
fn unwrap_inputs(header: &Header) -> Vec<u8> {
    let mut bytes = header.object_id().0.to_vec();
    bytes.extend(header.context().to_bytes());
    bytes.extend(header.stanzas().iter().flat_map(Stanza::to_bytes));
    bytes
}

/// The full open path, with `unwrap_with` memoized on the bytes it reads.
struct OpenPath {
    secrets: Vec<RecipientSecretKey>,
    memo: HashMap<Vec<u8>, Result<Vec<Share>, Error>>,
}

impl OpenPath {
    fn new(secrets: &[RecipientSecretKey]) -> Self {
        let secrets = secrets.to_vec();
        Self {
            secrets,
            memo: HashMap::new(),
        }
    }

    fn open(&mut self, stored: &[u8], binding: &Binding) -> Result<Vec<u8>, (Stage, Error)> {
        let at = |stage| move |error| (stage, error);
        let header = Header::parse(stored).map_err(at(Stage::Parse))?;
        let secrets = &self.secrets;
        let memo = self.memo.entry(unwrap_inputs(&header));
        let shares = memo.or_insert_with(|| header.unwrap_with(secrets)).clone();
        let shares = shares.map_err(at(Stage::Unwrap))?;
        let unlocked = header.unlock(&shares, binding).map_err(at(Stage::Unlock))?;
        unlocked.open(stored).map_err(at(Stage::Open))
    }

    /// Opens `stored`, which must be refused: `Stage/Variant`, e.g. `Unlock/CommitmentMismatch`.
    fn refuse(&mut self, stored: &[u8], binding: &Binding) -> String {
        let opened = self.open(stored, binding);
        let (stage, error) = opened.expect_err("a tampered object opened");
        let debug = format!("{error:?}");
        let variant = &debug[..debug.find(['(', ' ']).unwrap_or(debug.len())];
        format!("{stage:?}/{variant}")
    }
}

/// The `Stage/Variant` the full open path of the world's keys and binding refuses `stored` with.
fn refuse(stored: &[u8]) -> String {
    OpenPath::new(&WORLD.secrets()).refuse(stored, &WORLD.binding)
}

#[track_caller]
fn assert_refused(stored: &[u8], expected: &str) {
    assert_eq!(refuse(stored), expected);
}

/// An unlocked object and its plaintext, to stream tampered bodies through an [`Opener`].
struct Streaming<'a> {
    unlocked: Unlocked,
    plaintext: &'a [u8],
}

impl<'a> Streaming<'a> {
    fn new(stored: &[u8], plaintext: &'a [u8]) -> Self {
        Self {
            unlocked: WORLD.unlocked(stored),
            plaintext,
        }
    }

    /// Feeds `body` in `piece`-byte slices, then finishes: what it released, how it ended.
    fn open(&self, body: &[u8], piece: usize) -> (Vec<u8>, Result<(), Error>) {
        let mut opener = self.unlocked.opener().unwrap();
        let mut released = Vec::new();
        for slice in body.chunks(piece) {
            if let Err(e) = opener.update(slice, &mut released) {
                return (released, Err(e));
            }
        }
        let end = opener.finish(&mut released);
        (released, end)
    }

    /// Streams `body`: it must end with `error`, having released exactly `good` chunks.
    #[track_caller]
    fn refuses(&self, body: &[u8], piece: usize, error: &Error, good: usize) {
        let (released, end) = self.open(body, piece);
        assert_eq!(end.as_ref(), Err(error), "piece {piece}");
        assert_eq!(released.len(), good * CHUNK, "piece {piece}");
        assert!(released == self.plaintext[..released.len()]);
    }
}

// ---- Raw header editing -----------------------------------------------------------------

/// A stored header split into its fields, as raw bytes, so that tests can forge variants.
#[derive(Clone)]
struct RawHeader {
    prefix: Vec<u8>,
    object_id: Vec<u8>,
    context: Vec<u8>,
    commitment: Vec<u8>,
    stanzas: Vec<Vec<u8>>,
    sealed_metadata: Vec<u8>,
    mac: Vec<u8>,
}

impl RawHeader {
    fn split(stored: &[u8]) -> Self {
        let header = Header::parse(stored).unwrap();
        let stanzas: Vec<_> = header.stanzas().iter().map(Stanza::to_bytes).collect();
        let context = header.context().to_bytes();
        let (prefix, rest) = stored[..H].split_at(PREFIX_LEN);
        let (object_id, rest) = rest.split_at(32);
        let rest = rest.strip_prefix(context.as_slice()).unwrap();
        let (commitment, rest) = rest.split_at(32);
        let rest = &rest[1 + stanzas.concat().len()..];
        let (sealed_metadata, mac) = rest.split_at(rest.len() - MAC_LEN);
        Self {
            prefix: prefix.to_vec(),
            object_id: object_id.to_vec(),
            context,
            commitment: commitment.to_vec(),
            stanzas,
            sealed_metadata: sealed_metadata.to_vec(),
            mac: mac.to_vec(),
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.prefix.clone();
        for field in [&self.object_id, &self.context, &self.commitment] {
            out.extend_from_slice(field);
        }
        out.push(u8::try_from(self.stanzas.len()).unwrap());
        out.extend(self.stanzas.concat());
        [out, self.sealed_metadata.clone(), self.mac.clone()].concat()
    }

    /// Resizes the sealed metadata so that the header has the profile's size again, and puts
    /// it in front of `stored`'s body.
    fn refilled_over(mut self, stored: &[u8]) -> Vec<u8> {
        let fixed = self.to_bytes().len() - self.sealed_metadata.len();
        self.sealed_metadata.resize(H - fixed, 0);
        self.over(stored)
    }

    fn over(&self, stored: &[u8]) -> Vec<u8> {
        with_body_of(&self.to_bytes(), stored)
    }

    /// Every field's name and length, front to back; stanza fields are named
    /// `stanza <custodian>: <field>`, context fields after their key.
    fn fields(&self) -> Vec<(String, usize)> {
        let mut fields = named("", "magic version header_size chunk_size", &[8, 2, 4, 4]);
        fields.push(("object_id".into(), 32));
        fields.extend(context_fields(&self.context));
        fields.push(("commitment".into(), 32));
        fields.push(("stanza_count".into(), 1));
        for raw in &self.stanzas {
            let id = Stanza::from_bytes(raw).unwrap().recipient;
            let (region, who) = (id.region.as_str().len(), id.custodian.as_str());
            let lens = [1 + region, 1 + who.len(), 16, 4, 32, 48];
            let names = "region custodian key_id key_version enc wrapped";
            fields.extend(named(&format!("stanza {who}: "), names, &lens));
        }
        fields.push(("sealed_metadata".into(), self.sealed_metadata.len()));
        fields.push(("mac".into(), MAC_LEN));
        fields
    }
}

/// `prefix` + each of the space-separated `names`, with its length.
fn named(prefix: &str, names: &str, lens: &[usize]) -> Vec<(String, usize)> {
    let names = names.split(' ').map(|name| format!("{prefix}{name}"));
    names.zip(lens.iter().copied()).collect()
}

/// The context's fields: the count, then each key (with its u8 length) and value (with its
/// u16 length), named `context <key> key` and `context <key> value`.
fn context_fields(context: &[u8]) -> Vec<(String, usize)> {
    let mut fields = vec![("context count".to_owned(), 1)];
    let mut at = 1;
    for _ in 0..context[0] {
        let key_len = usize::from(context[at]);
        let key = String::from_utf8(context[at + 1..][..key_len].to_vec()).unwrap();
        at += 1 + key_len;
        let value_len = usize::from(u16::from_be_bytes([context[at], context[at + 1]]));
        at += 2 + value_len;
        fields.push((format!("context {key} key"), 1 + key_len));
        fields.push((format!("context {key} value"), 2 + value_len));
    }
    assert_eq!(at, context.len());
    fields
}

/// Encoded stanzas relabelled to `region`.
fn in_region(stanzas: &[Vec<u8>], region: &str) -> Vec<Vec<u8>> {
    let relabel = |raw: &Vec<u8>| {
        let mut s = Stanza::from_bytes(raw).unwrap();
        s.recipient.region = Region::new(region).unwrap();
        s.to_bytes()
    };
    stanzas.iter().map(relabel).collect()
}

// ---- Bit flips --------------------------------------------------------------------------

/// Every error the parser can be led into by a damaged length, key or count.
const PARSE_ERRORS: &str = "Parse/NonCanonical Parse/OutOfRange Parse/Truncated \
                            Parse/MissingContextKey Parse/RegionMismatch";

/// The `Stage/Variant` labels (space-separated) a single-bit flip in `field` may yield.
fn expected_for(field: &str) -> &'static str {
    // Stanza fields are named `stanza <custodian>: <field>`.
    match field.rsplit(": ").next().unwrap() {
        "magic" => "Parse/NotSealed",
        "version" => "Parse/UnsupportedVersion",
        // 512 → another valid size (the MAC is read elsewhere), or one past the object's end.
        "header_size" => "Parse/OutOfRange Parse/Truncated Unlock/HeaderAuthentication",
        "chunk_size" => "Parse/OutOfRange",
        // The object id is in every stanza's HPKE info.
        "object_id" => "Unwrap/StanzaAuthentication",
        "context count" | "context mailbox key" | "context region key" => PARSE_ERRORS,
        // A mailbox that is still UTF-8 parses, then fails every stanza's HPKE AAD.
        "context mailbox value" => {
            "Parse/NonCanonical Parse/OutOfRange Parse/Truncated Parse/MissingContextKey \
             Unwrap/StanzaAuthentication"
        }
        // An invalid region name, or a valid one the stanzas do not name.
        "context region value" => {
            "Parse/NonCanonical Parse/OutOfRange Parse/Truncated Parse/RegionMismatch"
        }
        "commitment" => "Unlock/CommitmentMismatch",
        // 2 → 0, 3 or > 16; no single flip gives 1 (see the stanza-removal test).
        "stanza_count" => PARSE_ERRORS,
        "region" => "Parse/NonCanonical Parse/OutOfRange Parse/RegionMismatch",
        // Invalid, out of order, or another valid name (bound by the HPKE AAD).
        "custodian" => "Parse/NonCanonical Parse/OutOfRange Unwrap/StanzaAuthentication",
        // No private key has the flipped key id.
        "key_id" => "Unwrap/InvalidArgument",
        "key_version" | "enc" | "wrapped" => "Unwrap/StanzaAuthentication",
        "sealed_metadata" | "mac" => "Unlock/HeaderAuthentication",
        _ => panic!("no expectation for {field}"),
    }
}

fn flip(stored: &[u8], offset: usize, bit: u8) -> Vec<u8> {
    let mut tampered = stored.to_vec();
    tampered[offset] ^= 1 << bit;
    tampered
}

#[test]
fn every_bit_flip_in_the_header_is_refused_with_the_field_s_errors() {
    let w = &*WORLD;
    let mut path = OpenPath::new(&w.secrets());
    let mut offset = 0;
    for (field, len) in RawHeader::split(&w.stored).fields() {
        let mut seen = BTreeMap::new();
        for at in offset..offset + len {
            for bit in 0..8 {
                let got = path.refuse(&flip(&w.stored, at, bit), &w.binding);
                let allowed = expected_for(&field).split_whitespace().any(|e| e == got);
                assert!(allowed, "{field}: bit {bit} of byte {at} gave {got}");
                *seen.entry(got).or_insert(0) += 1;
            }
        }
        eprintln!("{field:<24} {seen:?}");
        offset += len;
    }
    assert_eq!(offset, H);
}

#[test]
fn every_bit_flip_in_the_body_fails_its_chunk_and_releases_nothing_of_it() {
    let w = &*WORLD;
    let mut path = OpenPath::new(&w.secrets());
    let stream = Streaming::new(&w.stored, &w.plaintext);
    for offset in H..w.stored.len() {
        let index = (offset - H) / STORED_CHUNK;
        let error: Error = ChunkAuth(index as u64).into();
        for bit in 0..8 {
            let tampered = flip(&w.stored, offset, bit);
            let want = Err((Stage::Open, error.clone()));
            assert_eq!(
                path.open(&tampered, &w.binding),
                want,
                "bit {bit} of {offset}"
            );
            let piece = [977, 4112, 5000, 4113, 64][usize::from(bit) % 5];
            stream.refuses(&tampered[H..], piece, &error, index);
        }
        // Opening in place must not leave the damaged chunk's plaintext in the buffer either.
        if offset % 101 == 0 {
            let mut buf = flip(&w.stored, offset, 0);
            assert_eq!(stream.unlocked.open_in_place(&mut buf), Err(error));
            let damaged = w.plaintext.chunks(CHUNK).nth(index).unwrap();
            for needle in [&damaged[..16], &damaged[damaged.len() - 16..]] {
                let leaked = buf.windows(16).any(|window| window == needle);
                assert!(!leaked, "damaged plaintext left in the buffer ({offset})");
            }
        }
    }
}

// ---- Length changes and chunk shuffles --------------------------------------------------

#[test]
fn truncation_at_every_offset_is_refused() {
    let w = &*WORLD;
    let boundary = H + STORED_CHUNK;
    let mut path = OpenPath::new(&w.secrets());
    let stream = Streaming::new(&w.stored, &w.plaintext);
    let (at_0, at_1): (Error, Error) = (ChunkAuth(0).into(), ChunkAuth(1).into());
    for cut in 0..w.stored.len() {
        let expected = match cut {
            _ if cut < H => "Parse/Truncated",
            _ if cut < H + TAG_LEN => "Open/InvalidStoredLength",
            _ if cut < boundary => "Open/ChunkAuthentication",
            _ if cut == boundary => "Open/Truncation",
            _ if cut <= boundary + TAG_LEN => "Open/InvalidStoredLength",
            _ => "Open/ChunkAuthentication",
        };
        let got = path.refuse(&w.stored[..cut], &w.binding);
        assert_eq!(got, expected, "cut at {cut}");
        let body = &w.stored[H.min(cut)..cut];
        let (error, good) = match body.len() {
            _ if cut < H => continue,
            n if n < TAG_LEN => (&Error::Truncation, 0),
            n if n < STORED_CHUNK => (&at_0, 0),
            n if n == STORED_CHUNK => (&Error::Truncation, 0),
            n if n < STORED_CHUNK + TAG_LEN => (&Error::Truncation, 1),
            // A full chunk and an empty "final" chunk after it: damage at chunk 1.
            n if n == STORED_CHUNK + TAG_LEN => (&at_1, 1),
            _ => (&at_1, 1),
        };
        stream.refuses(body, 1000, error, good);
        stream.refuses(body, 4113, error, good);
    }
    // Cut exactly after a full chunk: the streaming opener knows it was not the final one.
    stream.refuses(&w.stored[H..boundary], STORED_CHUNK, &Error::Truncation, 0);
    stream.refuses(&[], 1, &Error::Truncation, 0);
}

/// `ChunkAuthentication { index }`, short.
struct ChunkAuth(u64);

impl From<ChunkAuth> for Error {
    fn from(ChunkAuth(index): ChunkAuth) -> Self {
        Self::ChunkAuthentication { index }
    }
}

#[test]
fn appended_bytes_are_refused() {
    let w = &*WORLD;
    let stream = Streaming::new(&w.stored, &w.plaintext);
    let whole_chunk = w.stored[H..H + STORED_CHUNK].to_vec();
    for extra in [vec![0u8], vec![0xA5; 16], whole_chunk] {
        let extended = [w.stored.as_slice(), &extra].concat();
        assert_refused(&extended, "Open/ChunkAuthentication");
        for piece in [1, 977, 4112, 5000, extended.len()] {
            stream.refuses(&extended[H..], piece, &ChunkAuth(1).into(), 1);
        }
    }

    // A body of two full chunks: one byte or one tag more cannot be a valid length.
    let full = pseudo_random(2 * CHUNK, 4);
    let stored = w.seal(&full, b"two full chunks");
    let stream = Streaming::new(&stored, &full);
    for extra in [1, 16] {
        let extended = [stored.as_slice(), &vec![0; extra]].concat();
        assert_refused(&extended, "Open/InvalidStoredLength");
        stream.refuses(&extended[H..], 4113, &ChunkAuth(1).into(), 1);
    }
}

/// `stored`'s header followed by the chunks `order` picks from its body.
fn rearranged(stored: &[u8], order: &[usize]) -> Vec<u8> {
    let chunks: Vec<&[u8]> = stored[H..].chunks(STORED_CHUNK).collect();
    let picked: Vec<&[u8]> = order.iter().map(|&i| chunks[i]).collect();
    [&stored[..H], &picked.concat()].concat()
}

/// `stored` with its chunks in `order` must be refused with `error`, whole and streamed (the
/// stream releasing exactly the first `good` chunks).
#[track_caller]
fn assert_rearranged_refused(
    stream: &Streaming<'_>,
    stored: &[u8],
    order: &[usize],
    error: Error,
    good: usize,
) {
    let tampered = rearranged(stored, order);
    let opened = stream.unlocked.open(&tampered);
    assert_eq!(opened, Err(error.clone()), "{order:?}");
    stream.refuses(&tampered[H..], 1000, &error, good);
}

#[test]
fn reordered_dropped_and_duplicated_chunks_are_refused() {
    let w = &*WORLD;
    let (s, two) = (Streaming::new(&w.stored, &w.plaintext), &w.stored);
    assert_rearranged_refused(&s, two, &[1, 0], ChunkAuth(0).into(), 0);
    assert_rearranged_refused(&s, two, &[1], ChunkAuth(0).into(), 0);
    assert_rearranged_refused(&s, two, &[0], Error::Truncation, 0);
    assert_rearranged_refused(&s, two, &[0, 0, 1], ChunkAuth(1).into(), 1);
    assert_rearranged_refused(&s, two, &[0, 1, 1], ChunkAuth(1).into(), 1);
    // Three chunks, so that two full chunks can swap places.
    let plaintext = pseudo_random(2 * CHUNK + 1000, 3);
    let three = &w.seal(&plaintext, b"three chunks");
    let s = Streaming::new(three, &plaintext);
    assert_rearranged_refused(&s, three, &[1, 0, 2], ChunkAuth(0).into(), 0);
    assert_rearranged_refused(&s, three, &[0, 2], ChunkAuth(1).into(), 1);
    assert_rearranged_refused(&s, three, &[0, 2, 1], ChunkAuth(1).into(), 1);
    assert_rearranged_refused(&s, three, &[0, 1], Error::Truncation, 1);
    assert_rearranged_refused(&s, three, &[0, 0, 1, 2], ChunkAuth(1).into(), 1);
}

#[test]
fn a_header_over_another_object_s_body_is_refused() {
    let w = &*WORLD;
    let other = w.seal(&w.plaintext, b"object B, same plaintext");
    for (header_of, body_of) in [(&w.stored, &other), (&other, &w.stored)] {
        let mixed = with_body_of(&header_of[..H], body_of);
        assert_refused(&mixed, "Open/ChunkAuthentication");
        let stream = Streaming::new(header_of, &w.plaintext);
        stream.refuses(&mixed[H..], 4113, &ChunkAuth(0).into(), 0);
    }
}

// ---- Relabelling: context, binding, metadata --------------------------------------------

/// Unlocking a forged header with the genuine object's shares (as if the custodians had
/// released them) must fail with `expected`: what commitment and MAC alone must catch.
#[track_caller]
fn assert_genuine_shares_refused(forged: &[u8], expected: Error) {
    let (header, shares) = (Header::parse(forged).unwrap(), WORLD.shares(&WORLD.stored));
    assert_eq!(header.unlock(&shares, &WORLD.binding).err(), Some(expected));
}

#[test]
fn a_relabelled_context_is_refused() {
    let w = &*WORLD;
    let ie = Region::new("ie").unwrap();
    let raw = RawHeader::split(&w.stored);
    let context = |mailbox| Context::new(mailbox, &ie).unwrap();
    let tenant = context("mbx-1").with("tenant", "acme").unwrap();
    for context in [context("mbx-2"), context("another-mailbox"), tenant] {
        let mut forged = raw.clone();
        forged.context = context.to_bytes();
        let forged = forged.refilled_over(&w.stored);
        assert_refused(&forged, "Unwrap/StanzaAuthentication");
        assert_genuine_shares_refused(&forged, Error::HeaderAuthentication);
    }

    // Region relabelled in the context alone, then in the stanzas too (as the parser wants).
    let uk = Region::new("uk").unwrap();
    let mut relabelled = raw.clone();
    relabelled.context = Context::new("mbx-1", &uk).unwrap().to_bytes();
    assert_refused(&relabelled.over(&w.stored), "Parse/RegionMismatch");
    relabelled.stanzas = in_region(&raw.stanzas, "uk");
    let relabelled = relabelled.over(&w.stored);
    assert_eq!(Header::parse(&relabelled).unwrap().context().region(), &uk);
    assert_refused(&relabelled, "Unwrap/StanzaAuthentication");
    assert_genuine_shares_refused(&relabelled, Error::HeaderAuthentication);
}

#[test]
fn another_binding_is_refused() {
    let w = &*WORLD;
    let header = Header::parse(&w.stored).unwrap();
    let shares = w.shares(&w.stored);
    for (bucket, key) in [("mail", "mbx-1/2.eml"), ("mail2", "mbx-1/1.eml"), ("", "")] {
        let moved = Binding::new(bucket, key).unwrap();
        let got = header.unlock(&shares, &moved).err();
        assert_eq!(got, Some(Error::HeaderAuthentication), "{bucket}/{key}");
        let label = OpenPath::new(&w.secrets()).refuse(&w.stored, &moved);
        assert_eq!(label, "Unlock/HeaderAuthentication");
    }
}

/// The header MAC as protect.rs documents it, computed independently with ring.
fn header_mac(raw: &RawHeader, keys: &ObjectKeys) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, keys.mac_key().expose());
    let len = u32::try_from(raw.sealed_metadata.len()).unwrap();
    let mut input = b"custodia v1 header".to_vec();
    for field in [&raw.prefix, &raw.object_id, &raw.context, &raw.commitment] {
        input.extend_from_slice(field);
    }
    input.extend(len.to_be_bytes());
    input.extend_from_slice(&raw.sealed_metadata);
    input.extend(WORLD.binding.to_bytes());
    ring::hmac::sign(&key, &input).as_ref().to_vec()
}

#[test]
fn changed_sealed_metadata_is_refused() {
    let w = &*WORLD;
    let raw = RawHeader::split(&w.stored);
    let mut forged = raw.clone();
    forged.sealed_metadata[0] ^= 0x01;
    assert_refused(&forged.over(&w.stored), "Unlock/HeaderAuthentication");

    // Even a data-key holder who re-MACs the header cannot get changed metadata in: the
    // metadata AEAD refuses it on its own.
    let unlocked = w.unlocked(&w.stored);
    assert_eq!(unlocked.metadata(), &w.metadata);
    let (id, ctx) = (raw.object_id.clone(), raw.context.clone());
    let id = ObjectId(id.try_into().unwrap());
    let keys = ObjectKeys::derive(unlocked.data_key(), &id, &ctx, &w.binding.to_bytes());
    let keys = keys.unwrap();
    assert_eq!(header_mac(&raw, &keys), raw.mac, "protect.rs's formula");
    forged.mac = header_mac(&forged, &keys);
    let remaced = forged.over(&w.stored);
    assert_genuine_shares_refused(&remaced, Error::MetadataAuthentication);
}

// ---- Stanzas and shares -----------------------------------------------------------------

#[test]
fn removed_reordered_or_foreign_stanzas_and_shares_are_refused() {
    let w = &*WORLD;
    let raw = RawHeader::split(&w.stored);
    for keep in [0, 1] {
        let mut forged = raw.clone();
        forged.stanzas = vec![raw.stanzas[keep].clone()];
        let forged = forged.refilled_over(&w.stored);
        assert_refused(&forged, "Unlock/CommitmentMismatch");
    }

    let mut swapped = raw.clone();
    swapped.stanzas.swap(0, 1);
    let got = Header::parse(&swapped.over(&w.stored)).unwrap_err();
    assert!(matches!(
        got,
        Error::NonCanonical {
            field: "stanzas",
            ..
        }
    ));

    // Stanza `a` of another object sealed to the same keys.
    let other = w.seal(b"another object", b"object C");
    let mut forged = raw.clone();
    forged.stanzas[0] = RawHeader::split(&other).stanzas[0].clone();
    let forged = forged.over(&w.stored);
    assert_refused(&forged, "Unwrap/StanzaAuthentication");
    // Forcing its share in (unwrapped where it is valid) fails the key commitment.
    let (theirs, ours) = (w.shares(&other), w.shares(&w.stored));
    let shares = [theirs[0].clone(), ours[1].clone()];
    let got = Header::parse(&forged).unwrap().unlock(&shares, &w.binding);
    assert!(matches!(got, Err(Error::CommitmentMismatch)));

    // `unlock` given the shares of another object, or one of them, fails the commitment.
    let header = Header::parse(&w.stored).unwrap();
    let got = header.unlock(&theirs, &w.binding);
    assert!(matches!(got, Err(Error::CommitmentMismatch)));
    let got = header.unlock(&[ours[0].clone(), theirs[1].clone()], &w.binding);
    assert!(matches!(got, Err(Error::CommitmentMismatch)));
}

#[test]
fn a_rewrapped_stanza_opens_with_the_new_key_only() {
    let w = &*WORLD;
    let mut rng = DeterministicRandomness::new(b"rotation");
    let a2 = custodian("a", 2, &mut rng);
    let mut header = Header::parse(&w.stored).unwrap();
    let (ctx, id) = (header.context().to_bytes(), *header.object_id());
    let old = header.stanzas()[0].clone();
    let new = rewrap_stanza(&w.a.secret, &old, &id, &ctx, &a2.public, &mut rng).unwrap();
    assert_eq!(new.recipient.key_version, KeyVersion(2));
    header.replace_stanza(new.clone()).unwrap();
    let rotated = with_body_of(&header.to_bytes(), &w.stored);

    let (before, after) = (RawHeader::split(&w.stored), RawHeader::split(&rotated));
    assert_eq!(after.mac, before.mac, "a rewrap leaves the MAC as it is");
    assert_eq!(after.sealed_metadata, before.sealed_metadata);
    assert_eq!(after.stanzas[1], before.stanzas[1]);
    assert_ne!(after.stanzas[0], before.stanzas[0]);

    let mut path = OpenPath::new(&[a2.secret.clone(), w.b.secret.clone()]);
    assert_eq!(path.open(&rotated, &w.binding), Ok(w.plaintext.clone()));
    let old_key = unwrap_share(&w.a.secret, &new, &id, &ctx);
    assert!(matches!(old_key, Err(Error::StanzaAuthentication)));
    // The old key set has no key for the v2 stanza at all.
    assert_refused(&rotated, "Unwrap/InvalidArgument");
}

#[test]
fn a_reheader_opens_with_the_new_recipients_and_leaves_the_body() {
    let w = &*WORLD;
    let mut rng = DeterministicRandomness::new(b"new recipient set");
    let (a2, c) = (custodian("a", 2, &mut rng), custodian("c", 1, &mut rng));
    let unlocked = w.unlocked(&w.stored);
    let recipients = [c.public.clone(), a2.public.clone()];
    let header = unlocked.reheader(&recipients, None, &mut rng).unwrap();
    let moved = with_body_of(&header.to_bytes(), &w.stored);

    assert_eq!(header.object_id(), unlocked.header().object_id());
    assert_eq!(header.commitment(), unlocked.header().commitment());
    let ids: Vec<_> = header.stanzas().iter().map(|s| &s.recipient).collect();
    assert_eq!(ids, [&a2.public.id, &c.public.id]);
    let secrets = [a2.secret.clone(), c.secret.clone()];
    let mut path = OpenPath::new(&secrets);
    assert_eq!(path.open(&moved, &w.binding), Ok(w.plaintext.clone()));
    assert_refused(&moved, "Unwrap/InvalidArgument");
    let unlocked = unlock_with(&moved, &secrets);
    assert_eq!(unlocked.metadata(), &w.metadata);
    let stream = Streaming {
        unlocked,
        plaintext: &w.plaintext,
    };
    let (released, end) = stream.open(&moved[H..], 3000);
    assert!(released == w.plaintext && end.is_ok());
}

#[test]
fn the_untampered_object_opens_every_way() {
    let w = &*WORLD;
    let mut path = OpenPath::new(&w.secrets());
    assert_eq!(path.open(&w.stored, &w.binding), Ok(w.plaintext.clone()));
    assert_eq!(RawHeader::split(&w.stored).to_bytes(), w.stored[..H]);
    let stream = Streaming::new(&w.stored, &w.plaintext);
    for piece in [1, 977, 4112, 4113, 9999] {
        let (released, end) = stream.open(&w.stored[H..], piece);
        assert!(released == w.plaintext && end.is_ok(), "piece {piece}");
    }
}

//! Custodia envelope benchmarks (criterion), single-threaded.
//!
//! Groups (see `bench/report.py` for how they are compared):
//! * `raw_ring_aes256gcm/{seal,open}/SIZE` – the baseline: ring's AES-256-GCM over the same
//!   bytes in 64 KiB pieces (`seal_in_place_separate_tag` over contiguous plaintext;
//!   `open_in_place` over the stored `ct || tag` layout, which ring requires).
//! * `chunk_codec_seal/SIZE`, `chunk_codec_open/SIZE` – `ChunkSealer` / `ChunkOpener` in place
//!   over a buffer laid out as the stored body (64 KiB chunk, 16-byte tag, ...).
//! * `object_seal/SIZE` – `seal_in_place` incl. `new_header` with one recipient (one HPKE wrap).
//! * `object_open/SIZE` – `Header::parse` + `unwrap_with` + `unlock` + `open_in_place`.
//! * `per_object/*` – one `wrap_share`, one `unwrap_share`, `new_header` with 1 and 2 recipients.
//! * `message_seal/75KiB` – `seal()` of a 75 KiB message (allocating API, latency).
//! * `aes_gcm_crate/{seal,open}/SIZE` – a peer: the RustCrypto `aes-gcm` crate over the same
//!   bytes in the same 64 KiB pieces (`encrypt_inout_detached` / `decrypt_inout_detached`).
//! * `recipients/{seal,open}/N` – a 1 MiB object sealed to N = 1, 2, 3 custodians of one
//!   region (one HPKE wrap per recipient; opening needs every share, so N unwraps).
//! * `scaling_cores/PATH/Nthreads` – only with `CUSTODIA_BENCH_CORES=1` (bench/run runs it
//!   unpinned): N = 1 or 2 threads each sealing its own 16 MiB buffer at once; throughput is
//!   all threads' bytes, so 2 threads on 2 cores ideally doubles it.
//!
//! Sizes are 4 KiB, 75 KiB, 1 MiB, 16 MiB and 256 MiB; `CUSTODIA_BENCH_QUICK=1` (bench/run
//! --quick) leaves out 256 MiB.
//!
//! In-place benchmarks restore their input in `iter_batched` setup (`BatchSize::LargeInput`),
//! so the restore copy is never timed. Key / codec-state construction is in the setup for the
//! raw and codec groups (pure per-byte cost); the object groups time everything.
//!
//! `CUSTODIA_BENCH_DIAG=1` adds a `diag` group that decomposes the object paths (used for the
//! analysis in RESULTS.md; off by default to keep the run short).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group,
    criterion_main,
};
use custodia_envelope::{
    Binding, ChunkOpener, ChunkSealer, Context, CustodianName, DerivedKey, Header, KeyVersion,
    Metadata, ObjectId, Profile, RecipientId, RecipientPublicKey, RecipientSecretKey, Region,
    SealOptions, Share, SystemRandomness, TAG_LEN, new_header, seal, seal_in_place, unwrap_share,
    wrap_share,
};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::agreement;

const CHUNK: usize = 64 * 1024;
const STORED_CHUNK: usize = CHUNK + TAG_LEN;
const SIZES: [(&str, usize); 4] = [
    ("4KiB", 4 * 1024),
    ("75KiB", 75 * 1024),
    ("1MiB", 1 << 20),
    ("16MiB", 16 << 20),
];
const HUGE: (&str, usize) = ("256MiB", 256 << 20);

/// The measured sizes: `SIZES` and, unless `CUSTODIA_BENCH_QUICK` is set, 256 MiB.
fn sizes() -> Vec<(&'static str, usize)> {
    let mut v = SIZES.to_vec();
    if std::env::var_os("CUSTODIA_BENCH_QUICK").is_none() {
        v.push(HUGE);
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

struct Fixture {
    secret: RecipientSecretKey,
    one: Vec<RecipientPublicKey>,
    two: Vec<RecipientPublicKey>,
    context: Context,
    binding: Binding,
    metadata: Metadata,
}

impl Fixture {
    fn new(rng: &mut SystemRandomness) -> Self {
        let region = Region::new("ie").unwrap();
        let recipient = |name: &str, rng: &mut SystemRandomness| {
            let secret = RecipientSecretKey::generate(rng).unwrap();
            let public = RecipientPublicKey {
                id: RecipientId {
                    region: region.clone(),
                    custodian: CustodianName::new(name).unwrap(),
                    key_id: secret.key_id().unwrap(),
                    key_version: KeyVersion(1),
                },
                public_key: secret.public_key().unwrap(),
            };
            (secret, public)
        };
        let (secret, dublin) = recipient("dublin-1", rng);
        let (_, cork) = recipient("cork-1", rng);
        let mut metadata = Metadata::new();
        metadata.insert("content-type", "message/rfc822").unwrap();
        Self {
            secret,
            one: vec![dublin.clone()],
            two: vec![dublin, cork],
            context: Context::new("mailbox-42", &region).unwrap(),
            binding: Binding::new("mail", "mailbox-42/inbox/1.eml").unwrap(),
            metadata,
        }
    }

    fn opts<'a>(&'a self, recipients: &'a [RecipientPublicKey]) -> SealOptions<'a> {
        SealOptions {
            profile: Profile::DEFAULT,
            context: &self.context,
            binding: &self.binding,
            recipients,
            metadata: &self.metadata,
        }
    }
}

fn plaintext(len: usize) -> Vec<u8> {
    // Content does not matter to AES-GCM; a cheap non-constant pattern.
    (0..len).map(|i| (i.wrapping_mul(131) >> 3) as u8).collect()
}

fn stream_nonce(counter: u64, last: bool) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

fn chunk_count(len: usize) -> usize {
    len.div_ceil(CHUNK).max(1)
}

/// The plaintext laid out as the stored body: each 64 KiB chunk followed by 16 tag bytes.
fn body_layout(plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plain.len() + TAG_LEN * chunk_count(plain.len()));
    for chunk in plain.chunks(CHUNK) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(&[0; TAG_LEN]);
    }
    out
}

/// (offset, plaintext length) of every chunk of a stored body of `plain_len` bytes.
fn body_chunks(plain_len: usize) -> impl Iterator<Item = (usize, usize, bool)> {
    let n = chunk_count(plain_len);
    (0..n).map(move |i| {
        let len = CHUNK.min(plain_len - i * CHUNK);
        (i * STORED_CHUNK, len, i + 1 == n)
    })
}

fn codec_seal(sealer: &mut ChunkSealer, body: &mut [u8], plain_len: usize) {
    for (off, len, last) in body_chunks(plain_len) {
        let tag = sealer.seal_chunk(&mut body[off..off + len], last).unwrap();
        body[off + len..off + len + TAG_LEN].copy_from_slice(&tag);
    }
}

fn codec_open(opener: &mut ChunkOpener, body: &mut [u8], plain_len: usize) {
    for (off, len, last) in body_chunks(plain_len) {
        let pt = opener
            .open_chunk(&mut body[off..off + len + TAG_LEN], last)
            .unwrap();
        black_box(pt);
    }
}

fn ring_key(bytes: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).unwrap())
}

const CHUNK_KEY: [u8; 32] = [0x42; 32];

// ---------------------------------------------------------------------------------------------
// 1. Raw ring baseline
// ---------------------------------------------------------------------------------------------

fn raw_ring(c: &mut Criterion) {
    let key = ring_key(&CHUNK_KEY);
    let mut g = c.benchmark_group("raw_ring_aes256gcm");
    for (name, size) in sizes() {
        size_config(&mut g, size);
        let plain = plaintext(size);
        g.bench_function(BenchmarkId::new("seal", name), |b| {
            b.iter_batched(
                || plain.clone(),
                |mut buf| {
                    let n = chunk_count(buf.len());
                    for (i, piece) in buf.chunks_mut(CHUNK).enumerate() {
                        let tag = key
                            .seal_in_place_separate_tag(
                                stream_nonce(i as u64, i + 1 == n),
                                Aad::empty(),
                                piece,
                            )
                            .unwrap();
                        black_box(tag.as_ref());
                    }
                    buf
                },
                BatchSize::LargeInput,
            );
        });
        // ring's open needs ct || tag contiguous: the stored layout.
        let mut sealed = body_layout(&plain);
        codec_seal(
            &mut ChunkSealer::new(&DerivedKey::from_bytes(CHUNK_KEY), Profile::DEFAULT).unwrap(),
            &mut sealed,
            size,
        );
        g.bench_function(BenchmarkId::new("open", name), |b| {
            b.iter_batched(
                || sealed.clone(),
                |mut buf| {
                    for (i, (off, len, last)) in body_chunks(size).enumerate() {
                        let pt = key
                            .open_in_place(
                                stream_nonce(i as u64, last),
                                Aad::empty(),
                                &mut buf[off..off + len + TAG_LEN],
                            )
                            .unwrap();
                        black_box(pt);
                    }
                    buf
                },
                BatchSize::LargeInput,
            );
        });
    }
    g.finish();
}

/// Per-size sampling: 10 flat samples at 256 MiB, 20 for the other large (multi-millisecond)
/// inputs, 50 below.
fn size_config(g: &mut BenchmarkGroup<'_, WallTime>, size: usize) {
    if size >= 256 << 20 {
        g.sample_size(10).sampling_mode(SamplingMode::Flat);
    } else if size >= 1 << 20 {
        g.sample_size(20).sampling_mode(SamplingMode::Flat);
    } else {
        g.sample_size(50).sampling_mode(SamplingMode::Auto);
    }
    g.throughput(Throughput::Bytes(size as u64));
}

// ---------------------------------------------------------------------------------------------
// 2. Chunk codec
// ---------------------------------------------------------------------------------------------

fn chunk_codec(c: &mut Criterion) {
    let key = DerivedKey::from_bytes(CHUNK_KEY);
    let profile = Profile::DEFAULT;
    let mut g = c.benchmark_group("chunk_codec_seal");
    for (name, size) in sizes() {
        size_config(&mut g, size);
        let body = body_layout(&plaintext(size));
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_batched(
                || (body.clone(), ChunkSealer::new(&key, profile).unwrap()),
                |(mut buf, mut sealer)| {
                    codec_seal(&mut sealer, &mut buf, size);
                    buf
                },
                BatchSize::LargeInput,
            );
        });
    }
    g.finish();

    let mut g = c.benchmark_group("chunk_codec_open");
    for (name, size) in sizes() {
        size_config(&mut g, size);
        let mut sealed = body_layout(&plaintext(size));
        codec_seal(
            &mut ChunkSealer::new(&key, profile).unwrap(),
            &mut sealed,
            size,
        );
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_batched(
                || (sealed.clone(), ChunkOpener::new(&key, profile, 0).unwrap()),
                |(mut buf, mut opener)| {
                    codec_open(&mut opener, &mut buf, size);
                    buf
                },
                BatchSize::LargeInput,
            );
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// 3. Whole objects
// ---------------------------------------------------------------------------------------------

/// The input of `seal_in_place`: the plaintext in a Vec that already has room for the sealed
/// object (as `seal()` arranges itself), so no reallocation is timed.
fn seal_input(plain: &[u8]) -> Vec<u8> {
    let total = Profile::DEFAULT.sealed_len(plain.len() as u64).unwrap() as usize;
    let mut v = Vec::with_capacity(total);
    v.extend_from_slice(plain);
    v
}

fn objects(c: &mut Criterion) {
    let mut rng = SystemRandomness::new();
    let fx = Fixture::new(&mut rng);
    let opts = fx.opts(&fx.one);
    let secrets = std::slice::from_ref(&fx.secret);

    let mut g = c.benchmark_group("object_seal");
    for (name, size) in sizes() {
        size_config(&mut g, size);
        let plain = plaintext(size);
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_batched(
                || seal_input(&plain),
                |mut buf| {
                    seal_in_place(&opts, &mut buf, &mut rng).unwrap();
                    buf
                },
                BatchSize::LargeInput,
            );
        });
    }
    g.finish();

    let mut g = c.benchmark_group("object_open");
    for (name, size) in sizes() {
        size_config(&mut g, size);
        let plain = plaintext(size);
        let stored = seal(&opts, &plain, &mut rng).unwrap();
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_batched(
                || stored.clone(),
                |mut buf| {
                    let header = Header::parse(&buf).unwrap();
                    let shares = header.unwrap_with(secrets).unwrap();
                    let unlocked = header.unlock(&shares, &fx.binding).unwrap();
                    unlocked.open_in_place(&mut buf).unwrap();
                    buf
                },
                BatchSize::LargeInput,
            );
        });
        // Correctness guard: the benchmarked path really round-trips.
        let header = Header::parse(&stored).unwrap();
        let unlocked = header
            .unlock(&header.unwrap_with(secrets).unwrap(), &fx.binding)
            .unwrap();
        assert_eq!(unlocked.open(&stored).unwrap(), plain);
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// 4. Per-object costs, 5. message latency
// ---------------------------------------------------------------------------------------------

fn per_object(c: &mut Criterion) {
    let mut rng = SystemRandomness::new();
    let fx = Fixture::new(&mut rng);
    let share = Share::from_bytes([7; 32]);
    let object_id = ObjectId([1; 32]);
    let ctx = fx.context.to_bytes();
    let stanza = wrap_share(&share, &fx.one[0], &object_id, &ctx, &mut rng).unwrap();

    let mut g = c.benchmark_group("per_object");
    g.sample_size(50);
    g.throughput(Throughput::Elements(1));
    g.bench_function("hpke_wrap_share", |b| {
        b.iter(|| wrap_share(&share, &fx.one[0], &object_id, black_box(&ctx), &mut rng).unwrap());
    });
    g.bench_function("hpke_unwrap_share", |b| {
        b.iter(|| unwrap_share(&fx.secret, black_box(&stanza), &object_id, &ctx).unwrap());
    });
    let one = fx.opts(&fx.one);
    g.bench_function("new_header_1_recipient", |b| {
        b.iter(|| new_header(black_box(&one), &mut rng).unwrap());
    });
    let two = fx.opts(&fx.two);
    g.bench_function("new_header_2_recipients", |b| {
        b.iter(|| new_header(black_box(&two), &mut rng).unwrap());
    });
    g.finish();

    let mut g = c.benchmark_group("message_seal");
    g.sample_size(50);
    let size = 75 * 1024;
    g.throughput(Throughput::Bytes(size as u64));
    let msg = plaintext(size);
    g.bench_function("75KiB", |b| {
        b.iter(|| seal(&one, black_box(&msg), &mut rng).unwrap());
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// 6. Peer: the RustCrypto aes-gcm crate over the same bytes and pieces as raw ring
// ---------------------------------------------------------------------------------------------

fn aes_gcm_crate(c: &mut Criterion) {
    use aes_gcm::aead::{AeadInOut, KeyInit};
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&CHUNK_KEY).unwrap();
    let nonce = |counter: u64, last: bool| {
        let mut n = [0u8; NONCE_LEN];
        n[3..11].copy_from_slice(&counter.to_be_bytes());
        n[11] = u8::from(last);
        aes_gcm::Nonce::from(n)
    };
    let mut g = c.benchmark_group("aes_gcm_crate");
    for (name, size) in sizes() {
        size_config(&mut g, size);
        let plain = plaintext(size);
        g.bench_function(BenchmarkId::new("seal", name), |b| {
            b.iter_batched(
                || plain.clone(),
                |mut buf| {
                    let n = chunk_count(buf.len());
                    for (i, piece) in buf.chunks_mut(CHUNK).enumerate() {
                        let tag = cipher
                            .encrypt_inout_detached(&nonce(i as u64, i + 1 == n), &[], piece.into())
                            .unwrap();
                        black_box(&tag);
                    }
                    buf
                },
                BatchSize::LargeInput,
            );
        });
        // The same stored layout as raw ring's open (ct || tag per chunk), sealed by the codec,
        // so this also checks that the aes-gcm crate opens what Custodia seals.
        let mut sealed = body_layout(&plain);
        codec_seal(
            &mut ChunkSealer::new(&DerivedKey::from_bytes(CHUNK_KEY), Profile::DEFAULT).unwrap(),
            &mut sealed,
            size,
        );
        g.bench_function(BenchmarkId::new("open", name), |b| {
            b.iter_batched(
                || sealed.clone(),
                |mut buf| {
                    for (i, (off, len, last)) in body_chunks(size).enumerate() {
                        let (ct, tag) = buf[off..off + len + TAG_LEN].split_at_mut(len);
                        cipher
                            .decrypt_inout_detached(
                                &nonce(i as u64, last),
                                &[],
                                ct.into(),
                                (&*tag).try_into().unwrap(),
                            )
                            .unwrap();
                    }
                    buf
                },
                BatchSize::LargeInput,
            );
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// 7. Scaling with the number of recipients (custodians of one region)
// ---------------------------------------------------------------------------------------------

fn recipients(c: &mut Criterion) {
    let mut rng = SystemRandomness::new();
    let fx = Fixture::new(&mut rng);
    let region = Region::new("ie").unwrap();
    let (secrets, publics): (Vec<_>, Vec<_>) = ["dublin-1", "cork-1", "galway-1"]
        .iter()
        .map(|name| {
            let secret = RecipientSecretKey::generate(&mut rng).unwrap();
            let public = RecipientPublicKey {
                id: RecipientId {
                    region: region.clone(),
                    custodian: CustodianName::new(name).unwrap(),
                    key_id: secret.key_id().unwrap(),
                    key_version: KeyVersion(1),
                },
                public_key: secret.public_key().unwrap(),
            };
            (secret, public)
        })
        .unzip();
    let size = 1 << 20;
    let plain = plaintext(size);
    let mut g = c.benchmark_group("recipients");
    size_config(&mut g, size);
    for n in 1..=3usize {
        let opts = fx.opts(&publics[..n]);
        g.bench_function(BenchmarkId::new("seal", n), |b| {
            b.iter_batched(
                || seal_input(&plain),
                |mut buf| {
                    seal_in_place(&opts, &mut buf, &mut rng).unwrap();
                    buf
                },
                BatchSize::LargeInput,
            );
        });
        let stored = seal(&opts, &plain, &mut rng).unwrap();
        let held = &secrets[..n];
        g.bench_function(BenchmarkId::new("open", n), |b| {
            b.iter_batched(
                || stored.clone(),
                |mut buf| {
                    let header = Header::parse(&buf).unwrap();
                    let shares = header.unwrap_with(held).unwrap();
                    let unlocked = header.unlock(&shares, &fx.binding).unwrap();
                    unlocked.open_in_place(&mut buf).unwrap();
                    buf
                },
                BatchSize::LargeInput,
            );
        });
        let header = Header::parse(&stored).unwrap();
        assert_eq!(header.stanzas().len(), n);
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// 8. Scaling with cores (CUSTODIA_BENCH_CORES=1, run unpinned): 1 vs 2 threads at once
// ---------------------------------------------------------------------------------------------

fn scaling_cores(c: &mut Criterion) {
    if std::env::var_os("CUSTODIA_BENCH_CORES").is_none() {
        return;
    }
    let size = 16 << 20;
    let plain = plaintext(size);
    let key = ring_key(&CHUNK_KEY);
    let dkey = DerivedKey::from_bytes(CHUNK_KEY);
    let mut rng = SystemRandomness::new();
    let fx = Fixture::new(&mut rng);
    let opts = fx.opts(&fx.one);
    let mut g = c.benchmark_group("scaling_cores");
    g.sample_size(20).sampling_mode(SamplingMode::Flat);
    for threads in [1usize, 2] {
        g.throughput(Throughput::Bytes((size * threads) as u64));
        let id = format!("{threads}threads");
        // Every variant spawns its threads per iteration (~tens of µs against ms of work).
        g.bench_function(BenchmarkId::new("raw_ring_seal", &id), |b| {
            b.iter_batched(
                || vec![plain.clone(); threads],
                |mut bufs| {
                    std::thread::scope(|s| {
                        for buf in &mut bufs {
                            let key = &key;
                            s.spawn(move || {
                                let n = chunk_count(buf.len());
                                for (i, piece) in buf.chunks_mut(CHUNK).enumerate() {
                                    let tag = key
                                        .seal_in_place_separate_tag(
                                            stream_nonce(i as u64, i + 1 == n),
                                            Aad::empty(),
                                            piece,
                                        )
                                        .unwrap();
                                    black_box(tag.as_ref());
                                }
                            });
                        }
                    });
                    bufs
                },
                BatchSize::LargeInput,
            );
        });
        let body = body_layout(&plain);
        g.bench_function(BenchmarkId::new("chunk_codec_seal", &id), |b| {
            b.iter_batched(
                || vec![body.clone(); threads],
                |mut bufs| {
                    std::thread::scope(|s| {
                        for buf in &mut bufs {
                            let dkey = &dkey;
                            s.spawn(move || {
                                let mut sealer = ChunkSealer::new(dkey, Profile::DEFAULT).unwrap();
                                codec_seal(&mut sealer, buf, size);
                            });
                        }
                    });
                    bufs
                },
                BatchSize::LargeInput,
            );
        });
        g.bench_function(BenchmarkId::new("object_seal", &id), |b| {
            b.iter_batched(
                || (0..threads).map(|_| seal_input(&plain)).collect::<Vec<_>>(),
                |mut bufs| {
                    std::thread::scope(|s| {
                        for buf in &mut bufs {
                            let opts = &opts;
                            s.spawn(move || {
                                let mut rng = SystemRandomness::new();
                                seal_in_place(opts, buf, &mut rng).unwrap();
                            });
                        }
                    });
                    bufs
                },
                BatchSize::LargeInput,
            );
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// Diagnostics (CUSTODIA_BENCH_DIAG=1): decomposition of the object paths.
// ---------------------------------------------------------------------------------------------

fn diag(c: &mut Criterion) {
    if std::env::var_os("CUSTODIA_BENCH_DIAG").is_none() {
        return;
    }
    let mut rng = SystemRandomness::new();
    let fx = Fixture::new(&mut rng);
    let opts = fx.opts(&fx.one);
    let secrets = std::slice::from_ref(&fx.secret);
    let key = ring_key(&CHUNK_KEY);
    let h = Profile::DEFAULT.header_size();

    let mut g = c.benchmark_group("diag");
    g.sample_size(30);
    g.throughput(Throughput::Elements(1));
    g.bench_function("x25519_public_key", |b| {
        b.iter(|| black_box(&fx.secret).public_key().unwrap());
    });
    g.bench_function("key_id", |b| {
        b.iter(|| black_box(&fx.secret).key_id().unwrap());
    });
    // What a DHKEM Encap built on ring's X25519 would pay for its two curve operations
    // (ephemeral key generation + DH with the recipient's key), for comparison with
    // `per_object/hpke_wrap_share` (hpke + curve25519-dalek).
    let ring_rng = ring::rand::SystemRandom::new();
    let peer = fx.one[0].public_key;
    g.bench_function("ring_x25519_ephemeral_keygen_and_dh", |b| {
        b.iter(|| {
            let sk =
                agreement::EphemeralPrivateKey::generate(&agreement::X25519, &ring_rng).unwrap();
            let pk = sk.compute_public_key().unwrap();
            let shared = agreement::agree_ephemeral(
                sk,
                &agreement::UnparsedPublicKey::new(&agreement::X25519, black_box(&peer)),
                |k| {
                    let mut out = [0u8; 32];
                    out.copy_from_slice(k);
                    out
                },
            )
            .unwrap();
            (pk, shared)
        });
    });
    let stored_small = seal(&opts, &plaintext(4096), &mut rng).unwrap();
    let header = Header::parse(&stored_small).unwrap();
    let shares = header.unwrap_with(secrets).unwrap();
    g.bench_function("header_parse", |b| {
        b.iter(|| Header::parse(black_box(&stored_small)).unwrap());
    });
    g.bench_function("unwrap_with_1", |b| {
        b.iter(|| black_box(&header).unwrap_with(secrets).unwrap());
    });
    g.bench_function("unlock", |b| {
        b.iter(|| black_box(&header).unlock(&shares, &fx.binding).unwrap());
    });
    g.bench_function("header_to_bytes", |b| {
        b.iter(|| black_box(&header).to_bytes());
    });

    for (name, size) in SIZES.into_iter().filter(|(_, s)| *s >= 1 << 20) {
        size_config(&mut g, size);
        let plain = plaintext(size);
        let total = Profile::DEFAULT.sealed_len(size as u64).unwrap() as usize;
        let n = chunk_count(size);

        // seal_in_place given a Vec with capacity == len (as from `plaintext.to_vec()`).
        g.bench_function(BenchmarkId::new("seal_in_place_cap_eq_len", name), |b| {
            b.iter_batched(
                || plain.clone(),
                |mut buf| {
                    seal_in_place(&opts, &mut buf, &mut rng).unwrap();
                    buf
                },
                BatchSize::LargeInput,
            );
        });
        // The body phase of seal_in_place, replicated with raw ring: back-to-front
        // copy_within of every chunk into its stored slot, then seal it there.
        let mut staged = plain.clone();
        staged.resize(total, 0);
        g.bench_function(BenchmarkId::new("body_move_then_seal", name), |b| {
            b.iter_batched(
                || staged.clone(),
                |mut buf| {
                    for i in (0..n).rev() {
                        let src = i * CHUNK;
                        let len = CHUNK.min(size - src);
                        let dst = h + i * STORED_CHUNK;
                        buf.copy_within(src..src + len, dst);
                        let tag = key
                            .seal_in_place_separate_tag(
                                stream_nonce(i as u64, i + 1 == n),
                                Aad::empty(),
                                &mut buf[dst..dst + len],
                            )
                            .unwrap();
                        buf[dst + len..dst + len + TAG_LEN].copy_from_slice(tag.as_ref());
                    }
                    buf
                },
                BatchSize::LargeInput,
            );
        });
        // The same moves without the sealing: the cost of the relayout alone.
        g.bench_function(BenchmarkId::new("body_move_only", name), |b| {
            b.iter_batched(
                || staged.clone(),
                |mut buf| {
                    for i in (0..n).rev() {
                        let src = i * CHUNK;
                        let len = CHUNK.min(size - src);
                        let dst = h + i * STORED_CHUNK;
                        buf.copy_within(src..src + len, dst);
                    }
                    buf
                },
                BatchSize::LargeInput,
            );
        });
        // open_in_place alone (header already unlocked).
        let stored = seal(&opts, &plain, &mut rng).unwrap();
        let hdr = Header::parse(&stored).unwrap();
        let unlocked = hdr
            .unlock(&hdr.unwrap_with(secrets).unwrap(), &fx.binding)
            .unwrap();
        g.bench_function(BenchmarkId::new("open_in_place_only", name), |b| {
            b.iter_batched(
                || stored.clone(),
                |mut buf| {
                    unlocked.open_in_place(&mut buf).unwrap();
                    buf
                },
                BatchSize::LargeInput,
            );
        });
        // The zero-copy alternative to seal_in_place: the plaintext already sits in its
        // stored slots (e.g. read there by the caller), so only header + in-place chunk sealing.
        let mut prelaid = vec![0u8; h];
        prelaid.extend_from_slice(&body_layout(&plain));
        g.bench_function(BenchmarkId::new("object_seal_prelaid", name), |b| {
            b.iter_batched(
                || prelaid.clone(),
                |mut buf| {
                    let (header, keys) = new_header(&opts, &mut rng).unwrap();
                    let mut sealer = ChunkSealer::new(keys.chunk_key(), Profile::DEFAULT).unwrap();
                    codec_seal(&mut sealer, &mut buf[h..], size);
                    buf[..h].copy_from_slice(&header.to_bytes());
                    buf
                },
                BatchSize::LargeInput,
            );
        });
        // Raw ring open over the stored object with the same move-down as open_in_place.
        let sealed_body = {
            let mut s = body_layout(&plain);
            codec_seal(
                &mut ChunkSealer::new(&DerivedKey::from_bytes(CHUNK_KEY), Profile::DEFAULT)
                    .unwrap(),
                &mut s,
                size,
            );
            let mut v = vec![0u8; h];
            v.extend_from_slice(&s);
            v
        };
        g.bench_function(BenchmarkId::new("ring_open_then_move", name), |b| {
            b.iter_batched(
                || sealed_body.clone(),
                |mut buf| {
                    for (i, (off, len, last)) in body_chunks(size).enumerate() {
                        let src = h + off;
                        key.open_in_place(
                            stream_nonce(i as u64, last),
                            Aad::empty(),
                            &mut buf[src..src + len + TAG_LEN],
                        )
                        .unwrap();
                        buf.copy_within(src..src + len, i * CHUNK);
                    }
                    buf.truncate(size);
                    buf
                },
                BatchSize::LargeInput,
            );
        });
        // Suggested open_in_place body: ring's open_within decrypts and shifts down in one
        // pass (the VAES path takes separate input/output pointers), so no copy_within.
        let open_within_shift = |mut buf: Vec<u8>| {
            for (i, (off, len, last)) in body_chunks(size).enumerate() {
                let src = h + off;
                let dst = i * CHUNK;
                key.open_within(
                    stream_nonce(i as u64, last),
                    Aad::empty(),
                    &mut buf[dst..src + len + TAG_LEN],
                    (src - dst)..,
                )
                .unwrap();
            }
            buf.truncate(size);
            buf
        };
        assert_eq!(open_within_shift(sealed_body.clone()), plain);
        g.bench_function(BenchmarkId::new("ring_open_within_shift", name), |b| {
            b.iter_batched(
                || sealed_body.clone(),
                open_within_shift,
                BatchSize::LargeInput,
            );
        });
    }
    g.finish();
}

fn config() -> Criterion {
    // Group code never overrides these, so `-- --warm-up-time X --measurement-time Y` work.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .nresamples(20_000)
}

criterion_group! {
    name = benches;
    config = config();
    targets = raw_ring, aes_gcm_crate, chunk_codec, objects, per_object, recipients, scaling_cores, diag
}
criterion_main!(benches);

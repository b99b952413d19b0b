//! Custodian throughput benchmark (plain `harness = false` main; prints a summary and writes
//! JSON for `bench/report.py`).
//!
//! Measures, in one run:
//! * the baselines, on the custodian's core: raw x25519-dalek `StaticSecret::diffie_hellman`
//!   (ops/s), ring's X25519 agreement (`EphemeralPrivateKey::generate` + `agree_ephemeral`,
//!   and `generate` alone, so the DH alone is their difference), and the shipped
//!   `custodia_envelope::unwrap_share` in process (the crypto floor of one unwrap);
//! * unwraps per second through a REAL custodian process (the release `custodia` binary,
//!   `$CUSTODIA_BIN` or `target/release/custodia`) over ONE mTLS connection (one
//!   `CustodianClient`), in-region caller, rate limits raised out of the way, for batches of
//!   1, 16 and 256 items, each for a bounded time and a bounded count;
//! * per batch size: client-observed batch latency (p50/p90/p99), the server's own mean
//!   request time, the audit log's fsync mean (`custodia_audit_fsync_seconds` sum/count
//!   deltas from `/metrics`), and the CPU time the custodian process used (from
//!   `/proc/<pid>/stat`), hence unwraps per server CPU-second.
//!
//! Pinning: the custodian inherits CPU `--server-cpu` (default 1; the benchmark pins itself
//! there with `taskset` before starting it, and measures the baselines there), then the
//! benchmark moves itself (the client) to `--client-cpu` (default 0). So "per core" is the
//! custodian's core. `--no-pin` (or no `taskset`, or one CPU) runs unpinned.
//!
//! Options (after `cargo bench -p custodia-bench --bench custodian --`):
//! `--quick` (one pass, 1.5 s per batch size, short baselines), `--passes N` (default 2: every
//! batch size runs N times, each next to its own DH baseline on the custodian's core, and the
//! faster pass is reported), `--seconds S`, `--max-unwraps N`,
//! `--batches 1,16,256`, `--server-cpu N`, `--client-cpu N`, `--no-pin`,
//! `--hold S` (after setup, print the custodian's pid and wait S seconds, e.g. to attach
//! `perf record -p`), `--out FILE` (default `target/custodian-bench/results.json`).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use custodia_custodian::client::{CustodianClient, Item};
use custodia_custodian::manifest::ManifestPin;
use custodia_custodian::service::unix_now;
use custodia_envelope::{
    Binding, Context, CustodianName, Header, KeyVersion, Metadata, ObjectId, Profile, RecipientId,
    RecipientPublicKey, RecipientSecretKey, Region, SealOptions, Share, SystemRandomness, seal,
    unwrap_share, wrap_share,
};
use custodia_tests::{CallerEntry, CustodianProc, CustodianSpec, TestCa, custodia_bin};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Value, json};

/// Distinct sealed objects the batches draw from (the largest batch).
const OBJECTS: usize = 256;
/// Distinct mailboxes those objects belong to.
const MAILBOXES: usize = 64;

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

struct Args {
    quick: bool,
    passes: usize,
    seconds: f64,
    max_unwraps: u64,
    batches: Vec<usize>,
    server_cpu: usize,
    client_cpu: usize,
    pin: bool,
    hold: f64,
    out: PathBuf,
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    )
}

fn parse_args() -> Args {
    let mut a = Args {
        quick: false,
        passes: 0,
        seconds: 5.0,
        max_unwraps: 2_000_000,
        batches: vec![1, 16, 256],
        server_cpu: 1,
        client_cpu: 0,
        pin: true,
        hold: 0.0,
        out: target_dir().join("custodian-bench").join("results.json"),
    };
    let mut seconds = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = |name: &str| it.next().unwrap_or_else(|| panic!("{name} needs a value"));
        match arg.as_str() {
            "--bench" => {} // passed by `cargo bench`
            "--quick" => a.quick = true,
            "--no-pin" => a.pin = false,
            "--seconds" => seconds = Some(val("--seconds").parse().expect("--seconds S")),
            "--max-unwraps" => a.max_unwraps = val("--max-unwraps").parse().expect("a count"),
            "--batches" => {
                a.batches = val("--batches")
                    .split(',')
                    .map(|b| b.trim().parse().expect("--batches 1,16,256"))
                    .collect();
            }
            "--server-cpu" => a.server_cpu = val("--server-cpu").parse().expect("a CPU"),
            "--client-cpu" => a.client_cpu = val("--client-cpu").parse().expect("a CPU"),
            "--hold" => a.hold = val("--hold").parse().expect("--hold S"),
            "--passes" => a.passes = val("--passes").parse().expect("--passes N"),
            "--out" => a.out = PathBuf::from(val("--out")),
            other => panic!("custodian bench: unknown argument {other}"),
        }
    }
    a.seconds = seconds.unwrap_or(if a.quick { 1.5 } else { 5.0 });
    if a.passes == 0 {
        a.passes = if a.quick { 1 } else { 2 };
    }
    for &b in &a.batches {
        assert!((1..=OBJECTS).contains(&b), "batch sizes are 1..={OBJECTS}");
    }
    a
}

// ---------------------------------------------------------------------------------------------
// Process plumbing: affinity, CPU time, metrics
// ---------------------------------------------------------------------------------------------

fn sh(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Pins every thread of `pid` to `cpu` (new threads inherit it). `taskset -a` fails when a
/// thread exits while it walks them (a runtime's idle blocking threads do, after a client is
/// dropped): tried up to five times, 50 ms apart, then the process must run pinned or the
/// benchmark stops.
fn pin(pid: u32, cpu: usize) {
    for attempt in 0..5 {
        let ok = sh(
            "taskset",
            &["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()],
        );
        if ok.is_some() {
            return;
        }
        if attempt < 4 {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    panic!("taskset -a -p -c {cpu} {pid} failed five times");
}

fn status_field(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_owned()))
        })
        .unwrap_or_else(|| "?".into())
}

/// Fields after the `(comm)` of `/proc/<pid>/stat`, and the comm.
fn stat_fields(pid: &str) -> Option<(String, Vec<String>)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (open, close) = (s.find('(')?, s.rfind(')')?);
    let comm = s[open + 1..close].to_owned();
    let rest = s[close + 1..]
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    Some((comm, rest))
}

/// User + system CPU seconds of the whole process `pid` (exited threads included).
fn cpu_seconds(pid: u32, clk_tck: f64) -> f64 {
    let (_, f) = stat_fields(&pid.to_string()).expect("/proc/<pid>/stat");
    // After the comm: state(0) ppid(1) ... utime(11) stime(12).
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / clk_tck
}

/// Jiffies of `cpuN` in /proc/stat: user nice system idle iowait irq softirq steal.
fn cpu_jiffies(cpu: Option<usize>) -> Vec<f64> {
    let name = cpu.map_or_else(|| "cpu".to_owned(), |c| format!("cpu{c}"));
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some(name.as_str()))
                    .then(|| f.take(8).filter_map(|v| v.parse().ok()).collect())
            })
        })
        .unwrap_or_default()
}

/// Shares of a core's time between two /proc/stat readings: busy, idle, iowait, steal.
fn core_shares(before: &[f64], after: &[f64]) -> Value {
    if before.len() < 8 || after.len() < 8 {
        return Value::Null;
    }
    let d: Vec<f64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    let total: f64 = d.iter().sum();
    if total <= 0.0 {
        return Value::Null;
    }
    json!({
        "busy": (d[0] + d[1] + d[2] + d[5] + d[6]) / total,
        "idle": d[3] / total,
        "iowait": d[4] / total,
        "steal": d[7] / total,
    })
}

/// The pid of our child process called `comm`.
fn child_pid(comm: &str) -> Option<u32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let name = e.file_name().into_string().ok()?;
        let (c, f) = stat_fields(&name)?;
        (c == comm && f.get(1) == Some(&me)).then(|| name.parse().ok())?
    })
}

/// Prometheus text → sample name (with labels) → value.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------------
// Rates
// ---------------------------------------------------------------------------------------------

/// `rounds` timed rounds of `each` (after one untimed warm-up round), in ops/s.
fn rates(rounds: usize, each: Duration, mut op: impl FnMut()) -> Vec<f64> {
    let mut one = || {
        let start = Instant::now();
        let mut n = 0u64;
        loop {
            for _ in 0..16 {
                op();
            }
            n += 16;
            let el = start.elapsed();
            if el >= each {
                return n as f64 / el.as_secs_f64();
            }
        }
    };
    one();
    (0..rounds).map(|_| one()).collect()
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        f64::midpoint(s[n / 2 - 1], s[n / 2])
    }
}

fn summary(v: &[f64]) -> Value {
    json!({
        "median": median(v),
        "best": v.iter().copied().fold(0.0, f64::max),
        "worst": v.iter().copied().fold(f64::INFINITY, f64::min),
        "rounds": v,
    })
}

struct Baselines {
    dalek: Vec<f64>,
    ring_agree: Vec<f64>,
    ring_generate: Vec<f64>,
    unwrap_share: Vec<f64>,
    proto_open: Vec<f64>,
}

impl Baselines {
    fn new() -> Self {
        Self {
            dalek: Vec::new(),
            ring_agree: Vec::new(),
            ring_generate: Vec::new(),
            unwrap_share: Vec::new(),
            proto_open: Vec::new(),
        }
    }

    fn extend(&mut self, other: Self) {
        self.dalek.extend(other.dalek);
        self.ring_agree.extend(other.ring_agree);
        self.ring_generate.extend(other.ring_generate);
        self.unwrap_share.extend(other.unwrap_share);
        self.proto_open.extend(other.proto_open);
    }
}

// ---------------------------------------------------------------------------------------------
// Diagnostic prototype: an HPKE base-mode single-shot open (RFC 9180: DHKEM(X25519,
// HKDF-SHA256), HKDF-SHA256, AES-256-GCM) that takes the recipient's public key from the
// caller instead of recomputing it. hpke 0.15's Decap recomputes pkR = sk_to_pk(skR) for the
// kem_context on every call: a basepoint multiplication per unwrap. Checked against the
// envelope's own HPKE (`seal_replies`) before it is timed. Not production code.
// ---------------------------------------------------------------------------------------------

const KEM_SUITE: &[u8] = b"KEM\x00\x20";
const HPKE_SUITE: &[u8] = b"HPKE\x00\x20\x00\x01\x00\x02";

struct Len(usize);

impl ring::hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn labeled_extract(salt: &[u8], suite: &[u8], label: &[u8], ikm: &[u8]) -> ring::hkdf::Prk {
    let mut labeled = Vec::with_capacity(7 + suite.len() + label.len() + ikm.len());
    for part in [b"HPKE-v1".as_slice(), suite, label, ikm] {
        labeled.extend_from_slice(part);
    }
    ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, salt).extract(&labeled)
}

fn labeled_expand<const L: usize>(
    prk: &ring::hkdf::Prk,
    suite: &[u8],
    label: &[u8],
    info: &[u8],
) -> [u8; L] {
    let len = (L as u16).to_be_bytes();
    let parts = [len.as_slice(), b"HPKE-v1", suite, label, info];
    let mut out = [0u8; L];
    prk.expand(&parts, Len(L))
        .and_then(|okm| okm.fill(&mut out))
        .unwrap();
    out
}

/// `LabeledExtract("", "psk_id_hash", "")`, the same for every base-mode context.
fn psk_id_hash() -> [u8; 32] {
    labeled_extract_bytes(&[], HPKE_SUITE, b"psk_id_hash", &[])
}

/// `LabeledExtract` output as bytes (HMAC-SHA256 keyed by the salt), for hashes used as input.
fn labeled_extract_bytes(salt: &[u8], suite: &[u8], label: &[u8], ikm: &[u8]) -> [u8; 32] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, salt);
    let mut ctx = ring::hmac::Context::with_key(&key);
    for part in [b"HPKE-v1".as_slice(), suite, label, ikm] {
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// Single-shot open with a cached `pk_r`: one X25519 DH, no basepoint multiplication.
fn proto_open(
    sk_r: &x25519_dalek::StaticSecret,
    pk_r: &[u8; 32],
    psk_id_hash: &[u8; 32],
    enc: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    ct: &[u8],
) -> Option<[u8; 32]> {
    let dh = sk_r.diffie_hellman(&x25519_dalek::PublicKey::from(*enc));
    if !dh.was_contributory() {
        return None;
    }
    // DHKEM ExtractAndExpand(dh, enc || pkRm).
    let eae_prk = labeled_extract(&[], KEM_SUITE, b"eae_prk", dh.as_bytes());
    let mut kem_context = [0u8; 64];
    kem_context[..32].copy_from_slice(enc);
    kem_context[32..].copy_from_slice(pk_r);
    let shared: [u8; 32] = labeled_expand(&eae_prk, KEM_SUITE, b"shared_secret", &kem_context);
    // Key schedule, mode_base.
    let info_hash = labeled_extract_bytes(&[], HPKE_SUITE, b"info_hash", info);
    let mut ksc = [0u8; 65];
    ksc[1..33].copy_from_slice(psk_id_hash);
    ksc[33..].copy_from_slice(&info_hash);
    let secret = labeled_extract(&shared, HPKE_SUITE, b"secret", &[]);
    let key: [u8; 32] = labeled_expand(&secret, HPKE_SUITE, b"key", &ksc);
    let nonce: [u8; 12] = labeled_expand(&secret, HPKE_SUITE, b"base_nonce", &ksc);
    let key = ring::aead::LessSafeKey::new(
        ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &key).ok()?,
    );
    let mut buf = ct.to_vec();
    let pt = key
        .open_in_place(
            ring::aead::Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::from(aad),
            &mut buf,
        )
        .ok()?;
    pt.try_into().ok()
}

fn random32(rng: &SystemRandom) -> [u8; 32] {
    let mut b = [0u8; 32];
    rng.fill(&mut b).unwrap();
    b
}

fn measure_baselines(quick: bool, into: &mut Baselines) {
    let (rounds, each) = if quick {
        (3, Duration::from_millis(200))
    } else {
        (5, Duration::from_millis(400))
    };
    let rng = SystemRandom::new();

    // x25519-dalek: one variable-base scalar multiplication (Montgomery ladder) per op.
    let secret = x25519_dalek::StaticSecret::from(random32(&rng));
    let peer = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(random32(&rng)));
    into.dalek.extend(rates(rounds, each, || {
        black_box(black_box(&secret).diffie_hellman(black_box(&peer)));
    }));

    // ring: its X25519 private keys are ephemeral, so one agreement = generate (random
    // bytes only; the public key is computed lazily) + agree_ephemeral (the DH + KDF closure).
    let peer_ring = *peer.as_bytes();
    into.ring_agree.extend(rates(rounds, each, || {
        let k = EphemeralPrivateKey::generate(&X25519, &rng).unwrap();
        let peer = UnparsedPublicKey::new(&X25519, black_box(&peer_ring));
        black_box(agreement::agree_ephemeral(k, &peer, |s| s[0]).unwrap());
    }));
    into.ring_generate.extend(rates(rounds, each, || {
        black_box(EphemeralPrivateKey::generate(&X25519, &rng).unwrap());
    }));

    // The shipped unwrap: one HPKE single-shot open (Decap + key schedule + AES-GCM).
    let mut srng = SystemRandomness::new();
    let region = Region::new("ie").unwrap();
    let sk = RecipientSecretKey::generate(&mut srng).unwrap();
    let recipient = RecipientPublicKey {
        id: RecipientId {
            region: region.clone(),
            custodian: CustodianName::new("dublin").unwrap(),
            key_id: sk.key_id().unwrap(),
            key_version: KeyVersion(1),
        },
        public_key: sk.public_key().unwrap(),
    };
    let object_id = ObjectId(random32(&rng));
    let context = Context::new("bench@example.ie", &region)
        .unwrap()
        .to_bytes();
    let share = Share::from_bytes(random32(&rng));
    let stanza = wrap_share(&share, &recipient, &object_id, &context, &mut srng).unwrap();
    into.unwrap_share.extend(rates(rounds, each, || {
        black_box(unwrap_share(&sk, black_box(&stanza), &object_id, &context).unwrap());
    }));

    // The prototype, checked against the envelope's HPKE (a reply context: same suite, the
    // first message of a base-mode context is a single-shot seal), then timed the same way.
    let info = [b"custodia bench info".as_slice(), &object_id.0].concat();
    let aad = b"custodia bench aad".to_vec();
    let (enc, cts) = custodia_envelope::seal_replies(
        &sk.public_key().unwrap(),
        &info,
        &[(aad.clone(), &share)],
        &mut srng,
    )
    .unwrap();
    let sk_r = x25519_dalek::StaticSecret::from(*sk.expose());
    let pk_r = sk.public_key().unwrap();
    let psk = psk_id_hash();
    let opened = proto_open(&sk_r, &pk_r, &psk, &enc, &info, &aad, &cts[0]);
    assert_eq!(
        opened.as_ref(),
        Some(share.expose()),
        "prototype HPKE open disagrees with the envelope's HPKE"
    );
    into.proto_open.extend(rates(rounds, each, || {
        black_box(proto_open(
            &sk_r,
            &pk_r,
            &psk,
            black_box(&enc),
            &info,
            &aad,
            &cts[0],
        ));
    }));
}

/// The raw DH rate on the custodian's core right now (the custodian idle): the baseline next
/// to one measurement, so a slow stretch of the shared host hits both sides of the ratio.
fn adjacent_dh(pinned: bool, me: u32, server_cpu: usize, client_cpu: usize) -> f64 {
    if pinned {
        pin(me, server_cpu);
    }
    let rng = SystemRandom::new();
    let secret = x25519_dalek::StaticSecret::from(random32(&rng));
    let peer = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(random32(&rng)));
    let r = median(&rates(3, Duration::from_millis(250), || {
        black_box(black_box(&secret).diffie_hellman(black_box(&peer)));
    }));
    if pinned {
        pin(me, client_cpu);
    }
    r
}

// ---------------------------------------------------------------------------------------------
// The custodian side
// ---------------------------------------------------------------------------------------------

struct Object {
    stored: Vec<u8>,
    header: Header,
    binding: Binding,
}

fn item(o: &Object) -> Item<'_> {
    Item {
        object_id: o.header.object_id(),
        context: o.header.context(),
        stanza: &o.header.stanzas()[0],
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

struct RunCtx<'a> {
    rt: &'a tokio::runtime::Runtime,
    client: &'a CustodianClient,
    items: &'a [Item<'a>],
    server_pid: u32,
    clk_tck: f64,
    server_cpu: Option<usize>,
    client_cpu: Option<usize>,
}

fn metrics(ctx: &RunCtx<'_>) -> HashMap<String, f64> {
    parse_metrics(&ctx.rt.block_on(ctx.client.metrics()).expect("GET /metrics"))
}

/// Batches of `batch` items back to back for `seconds` (after a short warm-up), at most
/// `max_unwraps` unwraps.
fn run_batch_size(ctx: &RunCtx<'_>, batch: usize, seconds: f64, max_unwraps: u64) -> Value {
    let slice = |k: usize| {
        let start = (k * batch) % OBJECTS;
        let start = if start + batch > OBJECTS { 0 } else { start };
        &ctx.items[start..start + batch]
    };
    let one = |k: usize| {
        let r = ctx
            .rt
            .block_on(ctx.client.unwrap(slice(k), None))
            .expect("unwrap batch");
        let denied: Vec<_> = r.results.iter().filter_map(|x| x.as_ref().err()).collect();
        assert!(
            denied.is_empty(),
            "batch of {batch}: {} denied ({:?}): raise the limits",
            denied.len(),
            denied[0]
        );
    };
    // Warm-up: 10 % of the run, at least a few batches.
    let warm = Instant::now();
    let mut k = 0usize;
    while k < 3 || warm.elapsed().as_secs_f64() < seconds * 0.1 {
        one(k);
        k += 1;
    }

    let m0 = metrics(ctx);
    let (s0, c0) = (
        cpu_seconds(ctx.server_pid, ctx.clk_tck),
        cpu_seconds(std::process::id(), ctx.clk_tck),
    );
    let (j0s, j0c) = (cpu_jiffies(ctx.server_cpu), cpu_jiffies(ctx.client_cpu));
    let start = Instant::now();
    let mut lat = Vec::new();
    let mut ends = Vec::new();
    let mut unwraps = 0u64;
    while start.elapsed().as_secs_f64() < seconds && unwraps + batch as u64 <= max_unwraps {
        let t = Instant::now();
        one(k);
        lat.push(t.elapsed());
        ends.push(start.elapsed().as_secs_f64());
        unwraps += batch as u64;
        k += 1;
    }
    let wall = start.elapsed().as_secs_f64();
    let (j1s, j1c) = (cpu_jiffies(ctx.server_cpu), cpu_jiffies(ctx.client_cpu));
    let (s1, c1) = (
        cpu_seconds(ctx.server_pid, ctx.clk_tck),
        cpu_seconds(std::process::id(), ctx.clk_tck),
    );
    let m1 = metrics(ctx);

    let batches = lat.len();
    let rate = unwraps as f64 / wall;
    // 1 s windows (full ones only): the best and worst stretch of the run.
    let mut windows: BTreeMap<usize, u64> = BTreeMap::new();
    for &e in &ends {
        *windows.entry(e as usize).or_default() += batch as u64;
    }
    let full: Vec<f64> = windows
        .iter()
        .filter(|(w, _)| ((**w + 1) as f64) <= wall)
        .map(|(_, n)| *n as f64)
        .collect();
    // Raw latencies (ms, in order) where there are few of them: shows stalls.
    let raw: Vec<f64> = if batches <= 2000 {
        lat.iter().map(|d| d.as_secs_f64() * 1e3).collect()
    } else {
        Vec::new()
    };
    lat.sort();
    let mean_lat = lat.iter().map(Duration::as_secs_f64).sum::<f64>() / batches as f64 * 1e3;

    let fsync_n = delta(&m0, &m1, "custodia_audit_fsync_seconds_count");
    let fsync_s = delta(&m0, &m1, "custodia_audit_fsync_seconds_sum");
    // The "before" /metrics request is observed after it answers, so it lands in the delta.
    let req_n = delta(&m0, &m1, "custodia_request_seconds_count") - 1.0;
    let req_s = delta(&m0, &m1, "custodia_request_seconds_sum");
    let allowed = delta(
        &m0,
        &m1,
        "custodia_decisions_total{operation=\"unwrap\",outcome=\"allow\",reason=\"in_region\"}",
    );
    let server_cpu = s1 - s0;
    let client_cpu = c1 - c0;
    json!({
        "batch": batch,
        "batches": batches,
        "unwraps": unwraps,
        "seconds": wall,
        "unwraps_per_s": rate,
        "window_best_per_s": full.iter().copied().fold(f64::NAN, f64::max),
        "window_worst_per_s": full.iter().copied().fold(f64::NAN, f64::min),
        "windows": full.len(),
        "latency_ms": {
            "p50": percentile(&lat, 0.50),
            "p90": percentile(&lat, 0.90),
            "p99": percentile(&lat, 0.99),
            "max": percentile(&lat, 1.0),
            "mean": mean_lat,
        },
        "server_request_ms_mean": if req_n > 0.0 { req_s / req_n * 1e3 } else { f64::NAN },
        "server_cpu_seconds": server_cpu,
        "server_cpu_util": server_cpu / wall,
        "server_cpu_us_per_unwrap": server_cpu / unwraps as f64 * 1e6,
        "server_unwraps_per_cpu_second": if server_cpu > 0.0 { unwraps as f64 / server_cpu } else { f64::NAN },
        "client_cpu_util": client_cpu / wall,
        "fsync": {
            "count": fsync_n,
            "sum_s": fsync_s,
            "mean_ms": if fsync_n > 0.0 { fsync_s / fsync_n * 1e3 } else { f64::NAN },
            "per_batch": if batches > 0 { fsync_n / batches as f64 } else { f64::NAN },
        },
        "logged_allows": allowed,
        "server_core": core_shares(&j0s, &j1s),
        "client_core": core_shares(&j0c, &j1c),
        "latencies_ms": raw,
    })
}

fn main() {
    let args = parse_args();
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let me = std::process::id();
    let ncpu = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let taskset = sh("taskset", &["--version"]).is_some();
    let pinned = args.pin && taskset && ncpu >= 2 && args.server_cpu != args.client_cpu;
    if args.pin && !pinned {
        println!(
            "custodian bench: NOT pinned (taskset {}, {ncpu} CPUs available)",
            if taskset { "present" } else { "missing" }
        );
    }
    let clk_tck: f64 = sh("getconf", &["CLK_TCK"])
        .and_then(|s| s.parse().ok())
        .unwrap_or(100.0);
    let bin = custodia_bin();
    println!("custodian bench: binary {}", bin.display());
    if !bin.components().any(|c| c.as_os_str() == "release") {
        println!(
            "custodian bench: WARNING: {} is not a release build",
            bin.display()
        );
    }

    // Baselines on the custodian's core, before it exists.
    if pinned {
        pin(me, args.server_cpu);
    }
    let mut base = Baselines::new();
    measure_baselines(args.quick, &mut base);
    println!(
        "baseline (CPU {}): x25519-dalek DH {:.0}/s, ring X25519 agreement {:.0}/s, \
         unwrap_share {:.0}/s",
        if pinned {
            args.server_cpu.to_string()
        } else {
            "any".into()
        },
        median(&base.dalek),
        median(&base.ring_agree),
        median(&base.unwrap_share)
    );

    // The custodian: started while we are on its CPU, so it inherits the pinning.
    let work = target_dir()
        .join("custodian-bench")
        .join(format!("work-{me}"));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let fs_type = sh("stat", &["-f", "-c", "%T", work.to_str().unwrap()]).unwrap_or_default();
    let server_ca = TestCa::new("custodian server CA");
    let mut cas = BTreeMap::new();
    cas.insert("ie".to_owned(), TestCa::new("ie operator CA"));
    let gateway = cas["ie"].leaf("gateway-ie", &["gateway-ie"]);
    let spec = CustodianSpec {
        region: "ie".into(),
        custodian: "dublin".into(),
        callers: vec![CallerEntry {
            region: "ie".into(),
            identity: "gateway-ie".into(),
            roles: vec!["unwrap".into()],
        }],
        approvers: Vec::new(),
        threshold: 0,
        limits: vec![
            "per_mailbox_per_minute = 4000000000".into(),
            "per_mailbox_burst = 4000000000".into(),
            "bulk_mailboxes_per_minute = 4000000000".into(),
        ],
        revoked: BTreeMap::new(),
    };
    let custodian = CustodianProc::start(&work.join("ie-dublin"), &server_ca, &cas, &spec);
    let server_pid = child_pid("custodia").expect("the custodian's pid");
    if pinned {
        pin(me, args.client_cpu);
    }
    let server_affinity = status_field(server_pid, "Cpus_allowed_list:");
    let client_affinity = status_field(me, "Cpus_allowed_list:");
    println!(
        "custodian pid {server_pid} on CPUs {server_affinity}, client on CPUs {client_affinity}; \
         data dir {} ({fs_type})",
        work.display()
    );
    if pinned {
        assert_eq!(server_affinity, args.server_cpu.to_string());
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = custodian.client(&server_ca, &gateway);

    // Objects sealed to the custodian's key from its verified manifest.
    let manifest = rt.block_on(client.manifest()).expect("manifest");
    let recipient = ManifestPin::new(custodian.manifest_key)
        .accept(&manifest, unix_now())
        .expect("manifest verifies")
        .remove(0);
    let ie = Region::new("ie").unwrap();
    let mut srng = SystemRandomness::new();
    let body = b"benchmark message body".to_vec();
    let objects: Vec<Object> = (0..OBJECTS)
        .map(|i| {
            let context = Context::new(&format!("mbox-{}@example.ie", i % MAILBOXES), &ie).unwrap();
            let binding = Binding::new("mail-ie", &format!("inbox/{i}.eml")).unwrap();
            let stored = seal(
                &SealOptions {
                    profile: Profile::DEFAULT,
                    context: &context,
                    binding: &binding,
                    recipients: std::slice::from_ref(&recipient),
                    metadata: &Metadata::new(),
                },
                &body,
                &mut srng,
            )
            .unwrap();
            Object {
                header: Header::parse(&stored).unwrap(),
                stored,
                binding,
            }
        })
        .collect();
    let items: Vec<Item<'_>> = objects.iter().map(item).collect();

    // Sanity: a released share opens its object.
    let check = rt
        .block_on(client.unwrap(&items[..2], None))
        .expect("unwrap");
    for (o, r) in objects.iter().zip(check.results) {
        let share = r.expect("in-region unwrap is allowed");
        let unlocked = o.header.unlock(&[share], &o.binding).unwrap();
        assert_eq!(unlocked.open(&o.stored).unwrap(), body);
    }

    if args.hold > 0.0 {
        println!(
            "custodian bench: holding {:.0} s (custodian pid {server_pid})",
            args.hold
        );
        std::thread::sleep(Duration::from_secs_f64(args.hold));
    }

    let ctx = RunCtx {
        rt: &rt,
        client: &client,
        items: &items,
        server_pid,
        clk_tck,
        server_cpu: pinned.then_some(args.server_cpu),
        client_cpu: pinned.then_some(args.client_cpu),
    };
    // Passes over all batch sizes; each measurement gets its own DH baseline next to it. Per
    // batch size the faster pass is reported (a co-tenant only ever slows a pass down).
    let mut all: Vec<Value> = Vec::new();
    for pass in 1..=args.passes {
        for &b in &args.batches {
            let dh_adj = adjacent_dh(pinned, me, args.server_cpu, args.client_cpu);
            let mut r = run_batch_size(&ctx, b, args.seconds, args.max_unwraps);
            let rate = r["unwraps_per_s"].as_f64().unwrap();
            r["pass"] = json!(pass);
            r["dh_adjacent_per_s"] = json!(dh_adj);
            r["ratio_to_dalek_dh"] = json!(rate / dh_adj);
            r["capacity_ratio_to_dalek_dh"] = json!(
                r["server_unwraps_per_cpu_second"]
                    .as_f64()
                    .unwrap_or(f64::NAN)
                    / dh_adj
            );
            println!(
                "pass {pass} batch {b:>4}: {rate:>8.0} unwraps/s ({:.1} % of the DH rate \
                 {dh_adj:.0}/s next to it) | server core {:>3.0} % busy, {:.1} µs CPU/unwrap \
                 | batch p50 {:.3} ms p99 {:.3} ms | fsync mean {:.3} ms",
                rate / dh_adj * 100.0,
                r["server_cpu_util"].as_f64().unwrap() * 100.0,
                r["server_cpu_us_per_unwrap"].as_f64().unwrap(),
                r["latency_ms"]["p50"].as_f64().unwrap(),
                r["latency_ms"]["p99"].as_f64().unwrap(),
                r["fsync"]["mean_ms"].as_f64().unwrap_or(f64::NAN),
            );
            all.push(r);
        }
    }
    let mut runs: Vec<Value> = Vec::new();
    for &b in &args.batches {
        let mine: Vec<&Value> = all.iter().filter(|r| r["batch"] == json!(b)).collect();
        let best = mine
            .iter()
            .max_by(|x, y| {
                x["unwraps_per_s"]
                    .as_f64()
                    .unwrap()
                    .total_cmp(&y["unwraps_per_s"].as_f64().unwrap())
            })
            .unwrap();
        let mut r = (*best).clone();
        r["passes"] = json!(
            mine.iter()
                .map(|p| json!({
                    "pass": p["pass"],
                    "unwraps_per_s": p["unwraps_per_s"],
                    "dh_adjacent_per_s": p["dh_adjacent_per_s"],
                    "ratio_to_dalek_dh": p["ratio_to_dalek_dh"],
                }))
                .collect::<Vec<_>>()
        );
        runs.push(r);
    }
    let log_entries = metrics(&ctx)
        .get("custodia_audit_log_entries")
        .copied()
        .unwrap_or(f64::NAN);
    drop(client);
    drop(custodian);

    // Baselines again, on the same core, so drift during the run shows.
    if pinned {
        pin(me, args.server_cpu);
    }
    let mut after = Baselines::new();
    measure_baselines(args.quick, &mut after);
    let dh_before = median(&base.dalek);
    let dh_after = median(&after.dalek);
    base.extend(after);
    let dh = median(&base.dalek);
    let ring_dh = 1.0 / (1.0 / median(&base.ring_agree) - 1.0 / median(&base.ring_generate));
    println!(
        "baseline x25519-dalek DH: {dh:.0}/s (before {dh_before:.0}, after {dh_after:.0}); \
         ring DH ≈ {ring_dh:.0}/s; unwrap_share {:.0}/s ({:.1} % of DH); prototype open with \
         cached pkR {:.0}/s ({:.1} % of DH)",
        median(&base.unwrap_share),
        median(&base.unwrap_share) / dh * 100.0,
        median(&base.proto_open),
        median(&base.proto_open) / dh * 100.0
    );
    for r in &mut runs {
        r["ratio_to_run_median_dh"] = json!(r["unwraps_per_s"].as_f64().unwrap() / dh);
    }

    let finished = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let out = json!({
        "bench": "custodian",
        "format": 1,
        "started_unix": started,
        "finished_unix": finished,
        "mode": if args.quick { "quick" } else { "full" },
        "seconds_per_batch_size": args.seconds,
        "passes": args.passes,
        "max_unwraps": args.max_unwraps,
        "binary": bin.display().to_string(),
        "binary_mtime_unix": std::fs::metadata(&bin)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64()),
        "pinned": pinned,
        "server_cpu": if pinned { json!(args.server_cpu) } else { Value::Null },
        "client_cpu": if pinned { json!(args.client_cpu) } else { Value::Null },
        "server_affinity": server_affinity,
        "client_affinity": client_affinity,
        "data_dir_fs": fs_type,
        "objects": OBJECTS,
        "mailboxes": MAILBOXES,
        "audit_log_entries_at_end": log_entries,
        "baseline": {
            "dalek_dh_per_s": summary(&base.dalek),
            "dalek_dh_before_per_s": dh_before,
            "dalek_dh_after_per_s": dh_after,
            "ring_agreement_per_s": summary(&base.ring_agree),
            "ring_generate_per_s": summary(&base.ring_generate),
            "ring_dh_est_per_s": ring_dh,
            "unwrap_share_per_s": summary(&base.unwrap_share),
            "proto_open_cached_pk_per_s": summary(&base.proto_open),
        },
        "runs": runs,
    });
    std::fs::create_dir_all(args.out.parent().unwrap()).unwrap();
    std::fs::write(&args.out, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&work);
    println!("custodian bench: wrote {}", args.out.display());
}

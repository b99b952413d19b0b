//! SDK benchmark (issue 6): the `custodia` SDK's seal and open paths against raw ring
//! AES-256-GCM over the same bytes, with the `age` crate as a peer, all in ONE run (one
//! process), so every ratio compares figures measured side by side.
//!
//! Groups (see `bench/report.py`, section "SDK"):
//! * `sdk_raw_ring/{seal,open}/SIZE` – the baseline, exactly as in `benches/envelope.rs`:
//!   ring's AES-256-GCM over the same bytes in 64 KiB pieces, in place (seal over contiguous
//!   plaintext, open over the stored `ct || tag` layout), at every size below.
//! * `sdk_stream/{seal,open_warm}/{1MiB,100MiB}` – `Client::seal_stream` / `open_stream`
//!   from an in-memory reader (`&[u8]`) into an in-memory writer (a `Vec` reused across
//!   iterations, so no allocation is timed). Seal includes the header: one HPKE wrap per
//!   object. Open uses a **warm DEK cache** (no custodian call; checked through the
//!   custodian's own unwrap counter).
//! * `sdk_object/{seal,open_warm}/{1MiB,16MiB,256MiB}` – `Client::seal` / `Client::open` of a whole
//!   object (allocating APIs: they return a new `Vec`), open with a warm cache.
//! * `sdk_message/{seal,open_warm,open_cold,open_cold_new_conn}/{4KiB,75KiB}` – µs per
//!   message: `Client::seal`, `Client::open` with a warm cache, with the cache disabled (one
//!   real unwrap round trip to the custodian over the client's kept-alive mTLS connection on
//!   loopback), and as a fresh client (new `Directory` + `Client`, new TCP + full mTLS 1.3
//!   handshake, TLS session resumption disabled, then the unwrap).
//! * `sdk_fixed/{seal_stream_empty,open_stream_empty_warm}` – the per-object fixed cost of the
//!   stream paths (0-byte body).
//! * `age/{encrypt,decrypt}/SIZE` – the `age` crate (age-encryption.org/v1: X25519 recipient
//!   stanza + ChaCha20-Poly1305 STREAM, 64 KiB chunks), `age::encrypt` / `age::decrypt` of the
//!   same bytes in memory, at every size.
//!
//! The custodian is a REAL release `custodia custodian serve --dev` process (`$CUSTODIA_BIN`,
//! default `target/release/custodia`; `bench/run` builds it), started through the end-to-end
//! test harness (`custodia-tests`: rcgen PKI, config, mTLS on 127.0.0.1), in-region caller,
//! rate limits raised out of the way. If this process is pinned to one CPU (`bench/run` pins
//! it with `taskset`), the custodian is moved to another CPU, so the measured core runs only
//! the client. Besides criterion's output it writes `target/sdk-bench/run-<baseline>.json`
//! (pinning, and the custodian's unwrap count across the warm benchmarks, which must be 0).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss
)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use custodia::{CacheConfig, Client, CustodianEndpoint, Directory, Policy};
use custodia_custodian::client::CustodianClient;
use custodia_envelope::{Binding, CustodianName, Metadata, Region, TAG_LEN};
use custodia_tests::{CallerEntry, CustodianProc, CustodianSpec, Leaf, TestCa, custodia_bin};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde_json::json;

const CHUNK: usize = 64 * 1024;
const STORED_CHUNK: usize = CHUNK + TAG_LEN;
const KIB: usize = 1024;
const MIB: usize = 1 << 20;
/// Every size measured: raw ring and age run at all of them.
/// (100 and 256 MiB only without `CUSTODIA_BENCH_QUICK`, see `sizes()`.)
const SIZES: [(&str, usize); 6] = [
    ("4KiB", 4 * KIB),
    ("75KiB", 75 * KIB),
    ("1MiB", MIB),
    ("16MiB", 16 * MIB),
    ("100MiB", 100 * MIB),
    ("256MiB", 256 * MIB),
];
const STREAM_SIZES: [&str; 2] = ["1MiB", "100MiB"];
/// Whole objects: 1 MiB, 16 MiB and (full runs) 256 MiB.
const OBJECT_SIZES: [&str; 3] = ["1MiB", "16MiB", "256MiB"];

fn quick() -> bool {
    std::env::var_os("CUSTODIA_BENCH_QUICK").is_some()
}

/// Sizes left out of quick runs (`CUSTODIA_BENCH_QUICK`, set by bench/run --quick).
fn skipped(name: &str) -> bool {
    quick() && (name == "256MiB" || name == "100MiB")
}

/// `SIZES` without 100 and 256 MiB in quick runs.
fn sizes() -> impl Iterator<Item = (&'static str, usize)> {
    SIZES.into_iter().filter(|(n, _)| !skipped(n))
}
const MESSAGE_SIZES: [&str; 2] = ["4KiB", "75KiB"];
const MAILBOX: &str = "aoife@example.ie";

fn size_of(name: &str) -> usize {
    SIZES.iter().find(|(n, _)| *n == name).unwrap().1
}

fn plaintext(len: usize) -> Vec<u8> {
    // Content does not matter to AES-GCM or ChaCha20-Poly1305; a cheap non-constant pattern.
    (0..len).map(|i| (i.wrapping_mul(131) >> 3) as u8).collect()
}

/// Per-size sampling, as in `benches/envelope.rs`: 20 flat samples for multi-millisecond
/// inputs, 10 for 100 MiB (tens of ms per iteration: keeps the run short), 50 below 1 MiB.
fn size_config(g: &mut BenchmarkGroup<'_, WallTime>, size: usize) {
    if size >= 64 * MIB {
        g.sample_size(10).sampling_mode(SamplingMode::Flat);
    } else if size >= MIB {
        g.sample_size(20).sampling_mode(SamplingMode::Flat);
    } else {
        g.sample_size(50).sampling_mode(SamplingMode::Auto);
    }
    g.throughput(Throughput::Bytes(size as u64));
}

// ---------------------------------------------------------------------------------------------
// The world: a real custodian, SDK clients
// ---------------------------------------------------------------------------------------------

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    )
}

fn sh(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
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

/// The pid of our child process called `comm`.
fn child_pid(comm: &str) -> Option<u32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let name = e.file_name().into_string().ok()?;
        let s = std::fs::read_to_string(format!("/proc/{name}/stat")).ok()?;
        let (open, close) = (s.find('(')?, s.rfind(')')?);
        let ppid = s[close + 1..].split_whitespace().nth(1)?;
        (&s[open + 1..close] == comm && ppid == me).then(|| name.parse().ok())?
    })
}

/// Sum of the custodian's unwrap decisions so far (`/metrics`), whatever their outcome.
fn unwrap_decisions(rt: &tokio::runtime::Runtime, client: &CustodianClient) -> f64 {
    let text = rt.block_on(client.metrics()).expect("GET /metrics");
    text.lines()
        .filter(|l| l.starts_with("custodia_decisions_total{operation=\"unwrap\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

struct World {
    rt: tokio::runtime::Runtime,
    /// Default-sized cache with a TTL longer than any run: every open after the first is warm.
    warm: Client,
    /// Cache disabled: every open is an unwrap round trip (kept-alive mTLS connection).
    cold: Client,
    /// For fresh clients: the endpoint with TLS session resumption off (full handshakes).
    fresh_endpoint: CustodianEndpoint,
    /// A direct custodian client, to read its `/metrics`.
    admin: CustodianClient,
    pinning: serde_json::Value,
    // Dropped last: the custodian process and its working directory.
    custodian: CustodianProc,
    work: PathBuf,
}

fn ie() -> Region {
    Region::new("ie").unwrap()
}

fn policy() -> Policy {
    Policy::builder().domain("example.ie", &ie()).build()
}

fn directory(endpoint: CustodianEndpoint) -> Arc<Directory> {
    Arc::new(
        Directory::builder()
            .custodian(&ie(), &CustodianName::new("dublin").unwrap(), endpoint)
            .unwrap()
            .build(),
    )
}

impl World {
    fn start() -> Self {
        let bin = custodia_bin();
        println!("sdk bench: custodian binary {}", bin.display());
        if !bin.components().any(|c| c.as_os_str() == "release") {
            println!(
                "sdk bench: WARNING: {} is not a release build",
                bin.display()
            );
        }
        let me = std::process::id();
        let work = target_dir().join("sdk-bench").join(format!("work-{me}"));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).unwrap();
        let server_ca = TestCa::new("custodian server CA");
        let mut cas = BTreeMap::new();
        cas.insert("ie".to_owned(), TestCa::new("ie operator CA"));
        let gateway: Leaf = cas["ie"].leaf("gateway-ie", &["gateway-ie"]);
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

        // Keep the measured core for the client: if we are pinned to one CPU, move the
        // custodian (all its threads) to another one.
        let mine = status_field(me, "Cpus_allowed_list:");
        let ncpu = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let server_pid = child_pid("custodia");
        let mut server_cpus = server_pid.map(|p| status_field(p, "Cpus_allowed_list:"));
        if let (Ok(cpu), Some(pid)) = (mine.parse::<usize>(), server_pid) {
            let total = sh("nproc", &["--all"])
                .and_then(|s| s.parse::<usize>().ok())
                .unwrap_or(ncpu);
            if total >= 2 {
                let other = if cpu == 0 { 1 } else { 0 };
                let ok = sh(
                    "taskset",
                    &["-a", "-p", "-c", &other.to_string(), &pid.to_string()],
                );
                assert!(ok.is_some(), "taskset -a -p -c {other} {pid} failed");
                server_cpus = Some(status_field(pid, "Cpus_allowed_list:"));
            }
        }
        println!(
            "sdk bench: client (this process) on CPUs {mine}, custodian pid {} on CPUs {}",
            server_pid.map_or_else(|| "?".into(), |p| p.to_string()),
            server_cpus.as_deref().unwrap_or("?")
        );
        let pinning = json!({
            "client_cpus": mine,
            "custodian_pid": server_pid,
            "custodian_cpus": server_cpus,
        });

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let endpoint = custodian.sdk_endpoint(&server_ca, &gateway);
        let dir = directory(endpoint.clone());
        rt.block_on(dir.refresh())
            .expect("manifest fetch and verify");
        let warm = Client::builder(Arc::clone(&dir), policy())
            .cache(CacheConfig {
                capacity: 1024,
                ttl: Duration::from_secs(24 * 3600),
            })
            .build();
        let cold = Client::builder(dir, policy())
            .cache(CacheConfig::DISABLED)
            .build();
        let mut tls = (*endpoint.tls).clone();
        tls.resumption = rustls::client::Resumption::disabled();
        let fresh_endpoint = CustodianEndpoint {
            tls: Arc::new(tls),
            ..endpoint
        };
        let admin = custodian.client(&server_ca, &gateway);
        Self {
            rt,
            warm,
            cold,
            fresh_endpoint,
            admin,
            pinning,
            custodian,
            work,
        }
    }

    fn unwraps(&self) -> f64 {
        unwrap_decisions(&self.rt, &self.admin)
    }

    /// A client as a new process would have it: new directory and connection, cache off.
    /// (No manifest refresh: opening needs only the directory's endpoints.)
    fn fresh_client(&self) -> Client {
        Client::builder(directory(self.fresh_endpoint.clone()), policy())
            .cache(CacheConfig::DISABLED)
            .build()
    }

    fn seal_stream(&self, binding: &Binding, plain: &[u8], out: &mut Vec<u8>) -> u64 {
        out.clear();
        self.rt
            .block_on(
                self.warm
                    .seal_stream(MAILBOX, binding, &Metadata::new(), plain, &mut *out),
            )
            .unwrap()
    }

    fn open_stream(&self, client: &Client, binding: &Binding, stored: &[u8], out: &mut Vec<u8>) {
        out.clear();
        self.rt
            .block_on(client.open_stream(binding, stored, &mut *out))
            .unwrap();
    }

    fn open(&self, client: &Client, binding: &Binding, stored: &[u8]) -> Vec<u8> {
        self.rt
            .block_on(client.open(binding, stored))
            .unwrap()
            .plaintext
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.custodian.stop();
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

fn binding(name: &str) -> Binding {
    Binding::new("mail-ie", &format!("aoife/bench/{name}")).unwrap()
}

// ---------------------------------------------------------------------------------------------
// 1. Raw ring baseline (same code as benches/envelope.rs)
// ---------------------------------------------------------------------------------------------

fn stream_nonce(counter: u64, last: bool) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

fn chunk_count(len: usize) -> usize {
    len.div_ceil(CHUNK).max(1)
}

/// (offset, plaintext length, last) of every chunk of a stored body of `plain_len` bytes.
fn body_chunks(plain_len: usize) -> impl Iterator<Item = (usize, usize, bool)> {
    let n = chunk_count(plain_len);
    (0..n).map(move |i| {
        let len = CHUNK.min(plain_len - i * CHUNK);
        (i * STORED_CHUNK, len, i + 1 == n)
    })
}

fn raw_ring(c: &mut Criterion) {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[0x42; 32]).unwrap());
    let mut g = c.benchmark_group("sdk_raw_ring");
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
        let mut sealed = Vec::with_capacity(size + TAG_LEN * chunk_count(size));
        for (i, (off, len, last)) in body_chunks(size).enumerate() {
            let mut piece = plain[i * CHUNK..i * CHUNK + len].to_vec();
            let tag = key
                .seal_in_place_separate_tag(stream_nonce(i as u64, last), Aad::empty(), &mut piece)
                .unwrap();
            debug_assert_eq!(sealed.len(), off);
            sealed.extend_from_slice(&piece);
            sealed.extend_from_slice(tag.as_ref());
        }
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

// ---------------------------------------------------------------------------------------------
// 2. SDK
// ---------------------------------------------------------------------------------------------

/// Streams, whole objects and the fixed per-object cost: everything that opens with a warm
/// cache. Returns the custodian's unwrap decisions counted across the warm measurements.
fn sdk_warm(c: &mut Criterion, w: &World) -> f64 {
    // Sealed inputs, each checked to open to its plaintext, and each key put in the warm
    // cache by that check (the only custodian calls of this function).
    let mut streams = Vec::new();
    for name in STREAM_SIZES.into_iter().filter(|n| !skipped(n)) {
        let plain = plaintext(size_of(name));
        let b = binding(&format!("stream-{name}"));
        let mut stored = Vec::new();
        w.seal_stream(&b, &plain, &mut stored);
        let mut out = Vec::with_capacity(plain.len());
        w.open_stream(&w.warm, &b, &stored, &mut out);
        assert!(out == plain, "open_stream({name}) round trip");
        streams.push((name, plain, b, stored));
    }
    let mut objects = Vec::new();
    for name in OBJECT_SIZES.into_iter().filter(|n| !skipped(n)) {
        let plain = plaintext(size_of(name));
        let b = binding(&format!("object-{name}"));
        let stored = w.warm.seal(MAILBOX, &b, &plain, &Metadata::new()).unwrap();
        assert!(w.open(&w.warm, &b, &stored) == plain, "open({name})");
        objects.push((name, plain, b, stored));
    }
    let empty_b = binding("empty");
    let mut empty = Vec::new();
    w.seal_stream(&empty_b, &[], &mut empty);
    let mut sink = Vec::new();
    w.open_stream(&w.warm, &empty_b, &empty, &mut sink);
    assert!(sink.is_empty());

    let before = w.unwraps();

    let mut g = c.benchmark_group("sdk_stream");
    for (name, plain, b, stored) in &streams {
        size_config(&mut g, plain.len());
        let mut out = Vec::with_capacity(stored.len());
        g.bench_function(BenchmarkId::new("seal", name), |bch| {
            bch.iter(|| black_box(w.seal_stream(b, plain, &mut out)));
        });
        let mut out = Vec::with_capacity(plain.len());
        g.bench_function(BenchmarkId::new("open_warm", name), |bch| {
            bch.iter(|| w.open_stream(&w.warm, b, stored, &mut out));
        });
    }
    g.finish();

    let mut g = c.benchmark_group("sdk_object");
    for (name, plain, b, stored) in &objects {
        size_config(&mut g, plain.len());
        g.bench_function(BenchmarkId::new("seal", name), |bch| {
            bch.iter(|| w.warm.seal(MAILBOX, b, plain, &Metadata::new()).unwrap());
        });
        g.bench_function(BenchmarkId::new("open_warm", name), |bch| {
            bch.iter(|| w.open(&w.warm, b, stored));
        });
    }
    g.finish();

    let mut g = c.benchmark_group("sdk_fixed");
    g.sample_size(50);
    let mut out = Vec::with_capacity(4 * KIB);
    g.bench_function("seal_stream_empty", |bch| {
        bch.iter(|| black_box(w.seal_stream(&empty_b, &[], &mut out)));
    });
    g.bench_function("open_stream_empty_warm", |bch| {
        bch.iter(|| w.open_stream(&w.warm, &empty_b, &empty, &mut out));
    });
    g.finish();

    w.unwraps() - before
}

/// µs per message: seal, open warm / cold / as a fresh client. Returns the unwrap decisions
/// counted across the warm-cache opens (must be 0).
fn sdk_messages(c: &mut Criterion, w: &World) -> f64 {
    let mut g = c.benchmark_group("sdk_message");
    let mut warm_unwraps = 0.0;
    for name in MESSAGE_SIZES {
        let size = size_of(name);
        size_config(&mut g, size);
        let plain = plaintext(size);
        let b = binding(&format!("message-{name}"));
        let stored = w.warm.seal(MAILBOX, &b, &plain, &Metadata::new()).unwrap();
        assert!(w.open(&w.warm, &b, &stored) == plain, "open({name})");
        assert!(w.open(&w.cold, &b, &stored) == plain, "cold open({name})");
        assert!(
            w.open(&w.fresh_client(), &b, &stored) == plain,
            "fresh client open({name})"
        );

        g.bench_function(BenchmarkId::new("seal", name), |bch| {
            bch.iter(|| w.warm.seal(MAILBOX, &b, &plain, &Metadata::new()).unwrap());
        });
        let before = w.unwraps();
        g.bench_function(BenchmarkId::new("open_warm", name), |bch| {
            bch.iter(|| w.open(&w.warm, &b, &stored));
        });
        warm_unwraps += w.unwraps() - before;
        g.bench_function(BenchmarkId::new("open_cold", name), |bch| {
            bch.iter(|| w.open(&w.cold, &b, &stored));
        });
        g.bench_function(BenchmarkId::new("open_cold_new_conn", name), |bch| {
            bch.iter(|| {
                let client = w.fresh_client();
                w.open(&client, &b, &stored)
            });
        });
    }
    g.finish();
    warm_unwraps
}

// ---------------------------------------------------------------------------------------------
// 3. age, the peer
// ---------------------------------------------------------------------------------------------

fn age_peer(c: &mut Criterion) {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public();
    let mut g = c.benchmark_group("age");
    for (name, size) in sizes() {
        size_config(&mut g, size);
        let plain = plaintext(size);
        let sealed = age::encrypt(&recipient, &plain).unwrap();
        assert!(age::decrypt(&identity, &sealed).unwrap() == plain);
        g.bench_function(BenchmarkId::new("encrypt", name), |b| {
            b.iter(|| age::encrypt(&recipient, black_box(&plain)).unwrap());
        });
        g.bench_function(BenchmarkId::new("decrypt", name), |b| {
            b.iter(|| age::decrypt(&identity, black_box(&sealed)).unwrap());
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------

fn config() -> Criterion {
    // Group code never overrides these, so `-- --warm-up-time X --measurement-time Y` work.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .nresamples(20_000)
}

fn main() {
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let args: Vec<String> = std::env::args().collect();
    let baseline = args
        .iter()
        .position(|a| a == "--save-baseline")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "new".into());
    let mut c = config().configure_from_args();
    let world = World::start();

    raw_ring(&mut c);
    let warm_stream_unwraps = sdk_warm(&mut c, &world);
    let warm_message_unwraps = sdk_messages(&mut c, &world);
    age_peer(&mut c);
    c.final_summary();

    println!(
        "sdk bench: custodian unwrap decisions during the warm-cache benchmarks: {} (streams, \
         objects) + {} (messages); must be 0",
        warm_stream_unwraps, warm_message_unwraps
    );
    let out = json!({
        "bench": "sdk",
        "format": 1,
        "baseline": baseline,
        "started_unix": started,
        "binary": custodia_bin().display().to_string(),
        "pinning": world.pinning,
        "warm_unwraps": warm_stream_unwraps + warm_message_unwraps,
    });
    let dir = target_dir().join("sdk-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("run-{baseline}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    println!("sdk bench: wrote {}", path.display());
    assert!(
        warm_stream_unwraps + warm_message_unwraps == 0.0,
        "a warm-cache benchmark called the custodian: its figures are not warm"
    );
}

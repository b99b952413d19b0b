//! Bulk-operation benchmark (issue 11): objects per second for `migrate` and `rewrap` of
//! 75 KiB objects against the store directly (s3s-fs on 127.0.0.1, a real custodian
//! process), through the library the `custodia` command runs (`custodia_gateway::ops`).
//!
//! * migrate: N plaintext objects sealed in place (read, seal, write a temporary copy, read
//!   it back and open it, conditional replace, delete the copy), `jobs` = 8. Baseline in the
//!   same run: a plain copy-in-place of the same objects (GET + PUT of each, no crypto, same
//!   concurrency), i.e. the store I/O floor of any in-place rewrite (migrate does 3 GETs,
//!   2 PUTs and a DELETE per object, so about 40 % of the copy rate is the I/O bound).
//! * rewrap: after a key rotation, the same N objects rewrapped with 1 and with 64 objects
//!   per custodian call (`--batch`), 8 batches in flight: the batching effect on the whole
//!   job (which also reads and rewrites every object: 2 store requests each); and the
//!   custodian side alone (`Client::rewrap_many` over the N headers, 1 or 64 per call,
//!   8 calls in flight), where batching shows undiluted by store I/O.
//!
//! Each measurement is repeated (`OPS_BENCH_RUNS`, default 3; `CUSTODIA_BENCH_QUICK=1`: 1
//! run of 200 objects) and reported as min / median / max; results go to
//! `target/ops-bench/ops.json` and stdout. Bounded: N objects per run, a fixed number of
//! runs.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::cast_precision_loss
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use custodia_envelope::{CustodianName, Region};
use custodia_gateway::ops::rewrap::{RewrapTarget, rewrap};
use custodia_gateway::ops::{Kind, Options, Scope, Silent, migrate::migrate};
use custodia_gateway::store::s3::S3Store;
use custodia_gateway::store::{BodyStream, Store};
use custodia_tests::s3::{S3sFs, STORE_AK, STORE_SK, s3_gateway_config};
use custodia_tests::world::world;
use futures_util::StreamExt;

const KIB: usize = 1024;
const BUCKET: &str = "mail";

fn body(i: usize) -> Bytes {
    let line = format!("Subject: bench message {i}\n");
    Bytes::from(
        line.as_bytes()
            .iter()
            .copied()
            .cycle()
            .take(75 * KIB)
            .collect::<Vec<u8>>(),
    )
}

fn key(i: usize) -> String {
    format!("m{}@example.ie/INBOX/{i:06}.eml", i % 16)
}

fn one(b: Bytes) -> BodyStream {
    futures_util::stream::once(async move { Ok(b) }).boxed()
}

fn s3(store: &Store) -> &S3Store {
    match store {
        Store::S3(s) => s,
        Store::Webdav(_) => unreachable!(),
    }
}

/// Writes every object as plaintext, 32 at a time.
async fn seed(store: &Arc<Store>, n: usize) {
    futures_util::stream::iter((0..n).map(|i| {
        let store = store.clone();
        async move {
            let b = body(i);
            let len = b.len() as u64;
            store.put(BUCKET, &key(i), Some(len), one(b)).await.unwrap();
        }
    }))
    .buffer_unordered(32)
    .collect::<Vec<()>>()
    .await;
}

/// The baseline: GET and PUT back every object unchanged, `jobs` at a time.
async fn copy_in_place(store: &Arc<Store>, n: usize, jobs: usize) -> f64 {
    let t = Instant::now();
    futures_util::stream::iter((0..n).map(|i| {
        let store = store.clone();
        async move {
            let s = s3(&store);
            let got = s.get(BUCKET, &key(i), None).await.unwrap();
            let len = got.total_len;
            let mut buf = Vec::with_capacity(usize::try_from(len).unwrap());
            let mut b = got.body;
            while let Some(c) = b.next().await {
                buf.extend_from_slice(&c.unwrap());
            }
            store
                .put(BUCKET, &key(i), Some(len), one(Bytes::from(buf)))
                .await
                .unwrap();
        }
    }))
    .buffer_unordered(jobs)
    .collect::<Vec<()>>()
    .await;
    n as f64 / t.elapsed().as_secs_f64()
}

fn stats(v: &[f64]) -> serde_json::Value {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    serde_json::json!({
        "min": s[0],
        "median": s[s.len() / 2],
        "max": s[s.len() - 1],
        "runs": v,
    })
}

/// `$CARGO_TARGET_DIR` (bench/run sets it), else `target/` next to this crate as cargo runs
/// it (the run-time `CARGO_MANIFEST_DIR`: a build shared between checkouts may carry another
/// checkout's compile-time path).
fn target_dir() -> PathBuf {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t);
    }
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest.join("../target")
}

fn main() {
    // criterion-style arguments (`--bench`, filters) are accepted and ignored.
    let quick = std::env::var_os("CUSTODIA_BENCH_QUICK").is_some_and(|v| v == "1");
    let runs: usize = if quick {
        1
    } else {
        std::env::var("OPS_BENCH_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3)
    };
    let n = if quick { 200 } else { 1000 };
    let jobs = 8;
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let store_proc = S3sFs::start(&tmp.path().join("s3"));
    let dir = tmp.path().join("gw");
    let cfg_text = s3_gateway_config(&w, &w.gw_ie, store_proc.addr, &dir);
    std::fs::write(dir.join("gateway.toml"), &cfg_text).unwrap();
    let config = custodia_gateway::Config::load(&dir.join("gateway.toml")).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let raw = Arc::new(Store::S3(S3Store::new(
        &format!("http://{}", store_proc.addr),
        "us-east-1",
        STORE_AK,
        STORE_SK,
    )));
    rt.block_on(s3(&raw).bucket(&http::Method::PUT, BUCKET))
        .unwrap();
    let objects = Arc::new(custodia_gateway::objects::Objects::new(
        custodia_gateway::gateway::sdk_client(&config).unwrap(),
        custodia_gateway::gateway::store(&config).unwrap(),
        custodia_gateway::routes::Routes::new(&config.routes).unwrap(),
        config.limits.max_object_bytes,
        Arc::new(custodia_gateway::metrics::Metrics::default()),
    ));
    let scope = Scope {
        objects,
        bucket: BUCKET.into(),
        prefix: None,
    };
    let admin = w.client(&w.admin_ie);
    let mut copy_rates = Vec::new();
    let mut migrate_rates = Vec::new();
    let mut rewrap_rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut header_rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut version = 1u32;
    rt.block_on(async {
        for run in 0..runs {
            seed(&raw, n).await;
            let copy = copy_in_place(&raw, n, jobs).await;
            let opts = Options {
                jobs,
                ..Options::default()
            };
            let t = Instant::now();
            let s = migrate(&scope, &opts, &Silent).await.unwrap();
            let rate = n as f64 / t.elapsed().as_secs_f64();
            assert_eq!(s.count(Kind::Migrated), n as u64, "{s:?}");
            println!(
                "ops run {run}: copy-in-place {copy:.0} objects/s, migrate {rate:.0} objects/s"
            );
            copy_rates.push(copy);
            migrate_rates.push(rate);
            // The custodian side alone: every object's header rewrapped through
            // `Client::rewrap_many`, 1 or 64 headers per call, 8 calls in flight.
            let headers: Vec<custodia_envelope::Header> =
                futures_util::stream::iter((0..n).map(|i| {
                    let raw = raw.clone();
                    async move {
                        let f = s3(&raw).get(BUCKET, &key(i), Some(0..4096)).await.unwrap();
                        let mut b = Vec::new();
                        let mut body = f.body;
                        while let Some(c) = body.next().await {
                            b.extend_from_slice(&c.unwrap());
                        }
                        custodia_envelope::Header::parse(&b).unwrap()
                    }
                }))
                .buffered(32)
                .collect()
                .await;
            for (slot, batch) in [(0usize, 1usize), (1, 64)] {
                admin.rotate().await.unwrap();
                version += 1;
                scope.objects.client().directory().refresh().await.unwrap();
                let all = |_: &custodia_envelope::RecipientId| true;
                let t = Instant::now();
                let client = scope.objects.client();
                futures_util::stream::iter(headers.chunks(batch).map(|c| async move {
                    for r in client.rewrap_many(c, &all).await.unwrap() {
                        assert!(matches!(r, Ok(custodia::Rewrapped::New(_))));
                    }
                }))
                .buffer_unordered(jobs)
                .collect::<Vec<()>>()
                .await;
                let rate = n as f64 / t.elapsed().as_secs_f64();
                println!(
                    "ops run {run}: custodian rewrap only, batch {batch}: {rate:.0} headers/s"
                );
                header_rates[slot].push(rate);
            }
            for (slot, batch) in [(0usize, 1usize), (1, 64)] {
                admin.rotate().await.unwrap();
                version += 1;
                let target = RewrapTarget {
                    region: Region::new("ie").unwrap(),
                    custodian: CustodianName::new("dublin").unwrap(),
                    to_version: version,
                };
                let opts = Options {
                    jobs,
                    batch,
                    ..Options::default()
                };
                let t = Instant::now();
                let s = rewrap(&scope, &opts, &target, &Silent).await.unwrap();
                let rate = n as f64 / t.elapsed().as_secs_f64();
                assert_eq!(s.count(Kind::Rewrapped), n as u64, "{s:?}");
                println!("ops run {run}: rewrap batch {batch}: {rate:.0} objects/s");
                rewrap_rates[slot].push(rate);
            }
        }
    });
    let doc = serde_json::json!({
        "bench": "ops",
        "quick": quick,
        "objects": n,
        "object_bytes": 75 * KIB,
        "jobs": jobs,
        "copy_in_place_objects_per_s": stats(&copy_rates),
        "migrate_objects_per_s": stats(&migrate_rates),
        "rewrap_batch1_objects_per_s": stats(&rewrap_rates[0]),
        "rewrap_batch64_objects_per_s": stats(&rewrap_rates[1]),
        "custodian_rewrap_batch1_headers_per_s": stats(&header_rates[0]),
        "custodian_rewrap_batch64_headers_per_s": stats(&header_rates[1]),
    });
    let out = target_dir().join("ops-bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("ops.json"),
        serde_json::to_string_pretty(&doc).unwrap(),
    )
    .unwrap();
    println!("{}", serde_json::to_string_pretty(&doc).unwrap());
}

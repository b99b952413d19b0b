//! Gateway benchmark (issues 7 and 8): the encrypting gateway against a plain pass-through
//! proxy to the SAME store, measured in ONE run so the ratio compares figures taken side by
//! side, plus the gateway's peak RSS while a 1 GiB object streams through it.
//!
//! Groups (see `bench/report.py`, section "Gateway"):
//! * `gw_http/{put,get}/{passthrough,gateway}/{75KiB,1MiB}/c{1,8}` — HTTP PUT and GET
//!   against nginx WebDAV (its files on tmpfs), through a pass-through proxy (hyper,
//!   streaming, no crypto: the cost of one extra hop) or through the gateway's HTTP front
//!   (seal/open, bearer token). `c8` runs 8 requests concurrently per iteration. GETs re-read
//!   the objects the PUTs wrote: the gateway's DEK cache is warm (a hot object), so this is
//!   the codec and proxy path, not the custodian (whose cost the SDK and custodian
//!   benchmarks measure).
//! * `gw_s3/{put_multipart,get_range}/{direct,passthrough,gateway}` — S3 against s3s-fs:
//!   a 32 MiB object uploaded awscli-style (CreateMultipartUpload, four 8 MiB UploadParts
//!   in parallel, CompleteMultipartUpload), and 1 MiB ranged GETs at part-crossing offsets;
//!   to the store directly, through the pass-through proxy, and through the gateway's S3
//!   front (SigV4 verified, re-signed upstream, each part sealed).
//! * `target/gateway-bench/rss.json` — the gateway's `VmHWM` after a 1 GiB PUT and GET.
//! * `target/gateway-bench/load.json` — closed-loop load (not criterion): PUT and GET of
//!   75 KiB and 1 MiB objects with 1, 8 and 64 concurrent clients, each client sending its
//!   next request when the last one is answered, to the store directly (nginx), through the
//!   pass-through proxy and through the gateway. Per cell: throughput and p50 / p99 request
//!   latency. Every cell is bounded in time and request count (`GATEWAY_LOAD_SECS`,
//!   `GATEWAY_LOAD_MAX`) and repeated in `GATEWAY_LOAD_ROUNDS` rounds; each round visits the
//!   three targets one after another, so the ratio compares figures taken seconds apart.
//!   `GATEWAY_LOAD_FILTER=put/1MiB/c8/gateway` (a substring) runs only matching cells.
//!   `CUSTODIA_BENCH_QUICK=1` shortens every bound.
//!
//! Every server is a real process on 127.0.0.1 (release `custodia` from `$CUSTODIA_BIN`,
//! nginx, s3s-fs), except the pass-through proxy, which runs in this process on its own
//! runtime thread. Loops are bounded by criterion's sample counts.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use custodia_gateway::store::s3::S3Store;
use custodia_gateway::store::{BodyStream, Store};
use custodia_tests::gateway::{GatewayProc, Nginx, TOKEN, gateway_config};
use custodia_tests::s3::{CLIENT_AK, CLIENT_SK, S3sFs, STORE_AK, STORE_SK, s3_gateway_config};
use custodia_tests::world::{World, world};
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

type Http = HyperClient<HttpConnector, Full<Bytes>>;

fn body(len: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>(),
    )
}

fn client() -> Http {
    let mut c = HttpConnector::new();
    c.set_nodelay(true);
    HyperClient::builder(TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build(c)
}

/// A pass-through proxy: every request forwarded to `upstream` as it streams in (method,
/// path, query and headers kept), the response streamed back. No crypto, no buffering.
fn start_proxy(upstream: SocketAddr) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let mut c = HttpConnector::new();
            c.set_nodelay(true);
            let up: HyperClient<HttpConnector, Incoming> =
                HyperClient::builder(TokioExecutor::new()).build(c);
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let _ = stream.set_nodelay(true);
                let up = up.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                        let up = up.clone();
                        async move {
                            let (mut parts, body) = req.into_parts();
                            let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                            parts.uri = format!("http://{upstream}{pq}").parse().unwrap();
                            let resp =
                                match up.request(hyper::Request::from_parts(parts, body)).await {
                                    Ok(r) => r.map(BodyExt::boxed),
                                    Err(e) => hyper::Response::builder()
                                        .status(502)
                                        .body(
                                            Full::new(Bytes::from(e.to_string()))
                                                .map_err(|never| match never {})
                                                .boxed(),
                                        )
                                        .unwrap(),
                                };
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    rx.recv().unwrap()
}

/// Where big stores keep their files: tmpfs when there is one, so the disk does not decide.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

struct Setup {
    _w: World,
    _tmp: tempfile::TempDir,
    nginx: Nginx,
    s3: S3sFs,
    gw: GatewayProc,
    gw_s3: GatewayProc,
    http_proxy: SocketAddr,
    s3_proxy: SocketAddr,
    rt: tokio::runtime::Runtime,
    http: Http,
}

impl Setup {
    fn start() -> Self {
        let w = world();
        let tmp = scratch();
        let nginx = Nginx::start(&tmp.path().join("nginx"));
        let s3 = S3sFs::start(&tmp.path().join("s3"));
        // A gateway has one upstream: one over s3s-fs (S3 front), one over nginx (HTTP).
        let gwdir = tmp.path().join("gw");
        let cfg = s3_gateway_config(&w, &w.gw_ie, s3.addr, &gwdir);
        let gw_s3 = GatewayProc::start(&gwdir, &cfg);
        let httpdir = tmp.path().join("gw-http");
        let upstream = format!("kind = \"webdav\"\nendpoint = \"http://{}\"", nginx.addr);
        let cfg = gateway_config(&w, &w.gw_ie, &upstream, "", &httpdir);
        let gw_http = GatewayProc::start(&httpdir, &cfg);
        let http_proxy = start_proxy(nginx.addr);
        let s3_proxy = start_proxy(s3.addr);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        Self {
            _w: w,
            _tmp: tmp,
            nginx,
            s3,
            gw: gw_http,
            gw_s3,
            http_proxy,
            s3_proxy,
            rt,
            http: client(),
        }
    }
}

async fn put(http: &Http, url: &str, data: Bytes, auth: bool) {
    let mut b = hyper::Request::put(url).header("content-length", data.len());
    if auth {
        b = b.header("authorization", format!("Bearer {TOKEN}"));
    }
    let resp = http
        .request(b.body(Full::new(data)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    assert!(status.is_success(), "PUT {url}: {status}");
}

async fn get(http: &Http, url: &str, auth: bool) -> usize {
    let mut b = hyper::Request::get(url);
    if auth {
        b = b.header("authorization", format!("Bearer {TOKEN}"));
    }
    let resp = http
        .request(b.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let n = resp.into_body().collect().await.unwrap().to_bytes().len();
    assert!(status.is_success(), "GET {url}: {status}");
    n
}

fn http_group(c: &mut Criterion, s: &Setup) {
    let mut g = c.benchmark_group("gw_http");
    g.sampling_mode(SamplingMode::Flat);
    for (size, name) in [(75 * KIB, "75KiB"), (MIB, "1MiB")] {
        let data = body(size, 7);
        for clients in [1usize, 8] {
            g.throughput(Throughput::Bytes((size * clients) as u64));
            g.sample_size(if size > 100 * KIB { 20 } else { 40 });
            for (target, base, auth) in [
                ("passthrough", format!("http://{}", s.http_proxy), false),
                ("gateway", format!("http://{}", s.gw.http.unwrap()), true),
            ] {
                let urls: Vec<String> = (0..clients)
                    .map(|i| format!("{base}/mail/bench@example.ie/{name}-{i}"))
                    .collect();
                g.bench_function(
                    BenchmarkId::new(format!("put/{target}/{name}"), format!("c{clients}")),
                    |b| {
                        b.iter(|| {
                            s.rt.block_on(futures_util::future::join_all(
                                urls.iter().map(|u| put(&s.http, u, data.clone(), auth)),
                            ))
                        });
                    },
                );
                g.bench_function(
                    BenchmarkId::new(format!("get/{target}/{name}"), format!("c{clients}")),
                    |b| {
                        b.iter(|| {
                            let n: usize =
                                s.rt.block_on(futures_util::future::join_all(
                                    urls.iter().map(|u| get(&s.http, u, auth)),
                                ))
                                .iter()
                                .sum();
                            assert_eq!(n, size * clients);
                        });
                    },
                );
            }
        }
    }
    g.finish();
}

fn one(b: Bytes) -> BodyStream {
    futures_util::stream::iter([Ok(b)]).boxed()
}

/// awscli-style: create, four 8 MiB parts in parallel, complete.
async fn put_multipart(s3: &S3Store, key: &str, parts: &[Bytes]) {
    let id = s3.create_multipart("mail", key).await.unwrap();
    let etags = futures_util::future::join_all(parts.iter().enumerate().map(|(i, p)| {
        let id = id.clone();
        async move {
            let n = u32::try_from(i + 1).unwrap();
            let e = s3
                .upload_part("mail", key, &id, n, p.len() as u64, one(p.clone()))
                .await
                .unwrap()
                .unwrap();
            (n, e)
        }
    }))
    .await;
    s3.complete_multipart("mail", key, &id, &etags)
        .await
        .unwrap();
}

fn s3_group(c: &mut Criterion, s: &Setup) {
    let parts: Vec<Bytes> = (0..4).map(|i| body(8 * MIB, i)).collect();
    let gw = s.gw_s3.s3.unwrap();
    let targets = [
        (
            "direct",
            S3Store::new(
                &format!("http://{}", s.s3.addr),
                "us-east-1",
                STORE_AK,
                STORE_SK,
            ),
        ),
        (
            "passthrough",
            S3Store::new(
                &format!("http://{}", s.s3_proxy),
                "us-east-1",
                STORE_AK,
                STORE_SK,
            ),
        ),
        (
            "gateway",
            S3Store::new(&format!("http://{gw}"), "us-east-1", CLIENT_AK, CLIENT_SK),
        ),
    ];
    s.rt.block_on(targets[0].1.bucket(&http::Method::PUT, "mail"))
        .unwrap();
    let key = "bench@example.ie/multipart.bin";
    let mut g = c.benchmark_group("gw_s3");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    let quick = std::env::var_os("CUSTODIA_BENCH_QUICK").is_some();
    g.measurement_time(Duration::from_secs(if quick { 2 } else { 8 }));
    g.throughput(Throughput::Bytes(32 * MIB as u64));
    for (name, s3) in &targets {
        g.bench_function(BenchmarkId::new("put_multipart", name), |b| {
            b.iter(|| s.rt.block_on(put_multipart(s3, key, &parts)));
        });
    }
    g.throughput(Throughput::Bytes(MIB as u64));
    g.sample_size(if quick { 10 } else { 30 });
    for (name, s3) in &targets {
        let store = Store::S3(S3Store::new(
            &match *name {
                "direct" => format!("http://{}", s.s3.addr),
                "passthrough" => format!("http://{}", s.s3_proxy),
                _ => format!("http://{gw}"),
            },
            "us-east-1",
            if *name == "gateway" {
                CLIENT_AK
            } else {
                STORE_AK
            },
            if *name == "gateway" {
                CLIENT_SK
            } else {
                STORE_SK
            },
        ));
        // The object of this target's own last upload (the store's bytes for direct and
        // pass-through are ciphertext-free plaintext parts; the gateway's are sealed).
        s.rt.block_on(put_multipart(s3, key, &parts));
        let mut k = 0u64;
        g.bench_function(BenchmarkId::new("get_range", name), |b| {
            b.iter(|| {
                // 1 MiB ranges that cross the 8 MiB part boundaries in turn.
                let start = (k % 3 + 1) * 8 * MIB as u64 - 512 * KIB as u64;
                k += 1;
                let f =
                    s.rt.block_on(store.get("mail", key, Some(start..start + MIB as u64)))
                        .unwrap();
                let n: usize = s.rt.block_on(
                    f.body
                        .map(|b| b.unwrap().len())
                        .fold(0, |a, n| async move { a + n }),
                );
                assert_eq!(n, MIB);
            });
        });
    }
    g.finish();
}

/// One cell of the closed-loop load: `clients` tasks, each PUTting (or GETting) its own
/// object in a loop until `secs` pass or `max` requests were sent in all.
#[allow(clippy::too_many_arguments)]
fn load_cell(
    s: &Setup,
    op: &str,
    urls: &[String],
    data: &Bytes,
    auth: bool,
    secs: f64,
    max: usize,
) -> serde_json::Value {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let size = data.len();
    // Untimed warm-up: one request per client (connections open, objects exist for GETs).
    s.rt.block_on(futures_util::future::join_all(
        urls.iter().map(|u| put(&s.http, u, data.clone(), auth)),
    ));
    let sent = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let per_client: Vec<Vec<f64>> =
        s.rt.block_on(futures_util::future::join_all(urls.iter().map(|u| {
            let (http, sent, data, u) = (s.http.clone(), sent.clone(), data.clone(), u.clone());
            let get_op = op == "get";
            s.rt.spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < deadline && sent.fetch_add(1, Ordering::Relaxed) < max {
                    let t = Instant::now();
                    if get_op {
                        assert_eq!(get(&http, &u, auth).await, size);
                    } else {
                        put(&http, &u, data.clone(), auth).await;
                    }
                    lat.push(t.elapsed().as_secs_f64());
                }
                lat
            })
        })))
        .into_iter()
        .map(|r| r.expect("load client task"))
        .collect();
    let wall = start.elapsed().as_secs_f64();
    let mut lat: Vec<f64> = per_client.into_iter().flatten().collect();
    lat.sort_by(f64::total_cmp);
    let n = lat.len();
    let pct = |percent: usize| lat[(n * percent).div_ceil(100).clamp(1, n) - 1] * 1e3;
    serde_json::json!({
        "requests": n,
        "seconds": wall,
        "bytes": n * size,
        "mb_per_s": (n * size) as f64 / wall / 1e6,
        "requests_per_s": n as f64 / wall,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "max_ms": lat[n - 1] * 1e3,
    })
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Closed-loop PUT/GET load at 1, 8 and 64 clients: store direct, pass-through, gateway.
fn load(s: &Setup) {
    let quick = std::env::var_os("CUSTODIA_BENCH_QUICK").is_some();
    let secs: f64 = env_or("GATEWAY_LOAD_SECS", if quick { 0.25 } else { 1.5 });
    let max: usize = env_or("GATEWAY_LOAD_MAX", if quick { 2_000 } else { 20_000 });
    let rounds: usize = env_or("GATEWAY_LOAD_ROUNDS", if quick { 2 } else { 3 });
    // For profiling one cell, e.g. GATEWAY_LOAD_FILTER=put/1MiB/c8/gateway (a substring).
    let filter = std::env::var("GATEWAY_LOAD_FILTER").unwrap_or_default();
    let targets = [
        ("direct", format!("http://{}", s.nginx.addr), false),
        ("passthrough", format!("http://{}", s.http_proxy), false),
        ("gateway", format!("http://{}", s.gw.http.unwrap()), true),
    ];
    let mut cells: Vec<serde_json::Value> = Vec::new();
    let t0 = Instant::now();
    for round in 0..rounds {
        for (size, name) in [(75 * KIB, "75KiB"), (MIB, "1MiB")] {
            let data = body(size, 11);
            for clients in [1usize, 8, 64] {
                for op in ["put", "get"] {
                    for (target, base, auth) in &targets {
                        let id = format!("{op}/{name}/c{clients}/{target}");
                        if !filter.is_empty() && !id.contains(&filter) {
                            continue;
                        }
                        let urls: Vec<String> = (0..clients)
                            .map(|i| format!("{base}/mail/bench@example.ie/load-{target}-{name}-c{clients}-{i}"))
                            .collect();
                        let r = load_cell(s, op, &urls, &data, *auth, secs, max);
                        println!(
                            "gateway load round {round}: {op} {name} c{clients} {target}: {:.0} MB/s, p50 {:.2} ms, p99 {:.2} ms ({} requests)",
                            r["mb_per_s"].as_f64().unwrap(),
                            r["p50_ms"].as_f64().unwrap(),
                            r["p99_ms"].as_f64().unwrap(),
                            r["requests"]
                        );
                        cells.push(serde_json::json!({
                            "round": round, "op": op, "size": name, "bytes_per_object": size,
                            "clients": clients, "target": target, "result": r,
                        }));
                    }
                }
            }
        }
    }
    let out = target_dir().join("gateway-bench");
    std::fs::create_dir_all(&out).unwrap();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - t0.elapsed().as_secs_f64();
    let doc = serde_json::json!({
        "bench": "gateway-load",
        "started_unix": started,
        "quick": quick,
        "seconds_per_cell": secs,
        "max_requests_per_cell": max,
        "rounds": rounds,
        "load_client_threads": 2,
        "cells": cells,
    });
    // A filtered (profiling) run must not replace a full run's results.
    let file = if filter.is_empty() {
        "load.json"
    } else {
        "load-filtered.json"
    };
    std::fs::write(out.join(file), serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap()
}

/// Streams 1 GiB through the HTTP front (PUT then GET) and records the gateway's peak RSS.
fn rss_1gib(s: &Setup) {
    // Runs first, on the fresh gateway: the load runs (64 concurrent 1 MiB requests) raise
    // the high-water mark for reasons that have nothing to do with object size; their peak
    // is recorded separately (`gateway_vm_hwm_kib_after_load`).
    let before = vm_hwm_kib(s.gw.pid());
    let url = format!(
        "http://{}/mail/bench@example.ie/one-gib",
        s.gw.http.unwrap()
    );
    let gib = 1024 * MIB as u64;
    let t = Instant::now();
    s.rt.block_on(async {
        let mut left = gib;
        let piece = Bytes::from(vec![0x5au8; MIB]);
        let stream = futures_util::stream::poll_fn(move |_| {
            if left == 0 {
                return std::task::Poll::Ready(None);
            }
            left -= MIB as u64;
            std::task::Poll::Ready(Some(Ok::<_, std::io::Error>(hyper::body::Frame::data(
                piece.clone(),
            ))))
        });
        let body = http_body_util::StreamBody::new(stream);
        let mut c = HttpConnector::new();
        c.set_nodelay(true);
        let cl: HyperClient<HttpConnector, http_body_util::StreamBody<_>> =
            HyperClient::builder(TokioExecutor::new()).build(c);
        let req = hyper::Request::put(&url)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-length", gib)
            .body(body)
            .unwrap();
        let resp = cl.request(req).await.unwrap();
        assert!(resp.status().is_success(), "1 GiB PUT: {}", resp.status());
    });
    let put_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let n = s.rt.block_on(async {
        let req = hyper::Request::get(&url)
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = s.http.request(req).await.unwrap();
        let mut body = resp.into_body();
        let mut n = 0u64;
        while let Some(f) = body.frame().await {
            if let Ok(d) = f.unwrap().into_data() {
                n += d.len() as u64;
            }
        }
        n
    });
    let get_s = t.elapsed().as_secs_f64();
    assert_eq!(n, gib);
    let after = vm_hwm_kib(s.gw.pid());
    let s3_pid = s.gw_s3.pid();
    let out = target_dir().join("gateway-bench");
    std::fs::create_dir_all(&out).unwrap();
    let doc = serde_json::json!({
        "object_bytes": gib,
        "gateway_vm_hwm_kib_before": before,
        "gateway_vm_hwm_kib_after": after,
        "s3_gateway_vm_hwm_kib": vm_hwm_kib(s3_pid),
        "put_seconds": put_s,
        "get_seconds": get_s,
        "store_file_bytes": std::fs::metadata(s.nginx.file("mail", "bench@example.ie/one-gib")).map(|m| m.len()).unwrap_or(0),
    });
    std::fs::write(
        out.join("rss.json"),
        serde_json::to_string_pretty(&doc).unwrap(),
    )
    .unwrap();
    println!(
        "gateway peak RSS with a 1 GiB object: {after} KiB (before: {before} KiB); PUT {put_s:.1} s, GET {get_s:.1} s"
    );
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn main() {
    let s = Setup::start();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let rss_measured = std::env::var_os("GATEWAY_BENCH_NO_RSS").is_none();
    if rss_measured {
        rss_1gib(&s);
    }
    if std::env::var_os("GATEWAY_BENCH_NO_LOAD").is_none() {
        load(&s);
    }
    http_group(&mut c, &s);
    s3_group(&mut c, &s);
    c.final_summary();
    // The HTTP gateway's peak over everything above (1 GiB, then up to 64 concurrent
    // requests), next to the 1 GiB figure.
    let rss = target_dir().join("gateway-bench").join("rss.json");
    if let (true, Ok(text)) = (rss_measured, std::fs::read_to_string(&rss)) {
        let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        doc["gateway_vm_hwm_kib_after_load"] = vm_hwm_kib(s.gw.pid()).into();
        doc["s3_gateway_vm_hwm_kib"] = vm_hwm_kib(s.gw_s3.pid()).into();
        std::fs::write(&rss, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    }
}

//! The custodian and its clients under hostile load and faults, with real processes: a
//! custodian stopped (SIGSTOP, not dead) behind a gateway with four request slots, a
//! connection flood from one certificate and from one region's CA, an unauthenticated TCP
//! flood, idle connections, and transparency reports running against a large log while
//! unwraps go on. (A file-size limit is in `custodian.rs`.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests"
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use custodia_custodian::Error;
use custodia_custodian::api::Denial;
use custodia_custodian::audit::entry::{DetailEntry, PublicEntry};
use custodia_custodian::decision_log::Outcome;
use custodia_tests::gateway::{GatewayProc, Nginx, curl, gateway_config, metric, require};
use custodia_tests::world::{MAILBOX_A, item, rt, unwrap_one, world_with};
use custodia_tests::{Leaf, TestCa, tls_client};
use rustls_pki_types::ServerName;

/// One mTLS connection as `leaf`: handshake, then `GET /healthz` on it. Returns the stream
/// (kept open by the caller) and the response's status, or `None` if the server closed the
/// connection without an answer.
fn healthz_on_new_connection(
    addr: SocketAddr,
    server_ca: &TestCa,
    leaf: &Leaf,
) -> (
    Option<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>,
    Option<u16>,
) {
    let config = tls_client(server_ca, leaf);
    let conn =
        rustls::ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    if tls
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .is_err()
    {
        return (None, None);
    }
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tls.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return (None, None),
        }
    }
    let status = String::from_utf8_lossy(&head)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok());
    // Read the body (its length is in the head) so the connection is idle afterwards.
    let len: usize = String::from_utf8_lossy(&head)
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    let _ = tls.read_exact(&mut body);
    (Some(tls), status)
}

/// Whether the server closes `s` (EOF, with or without TLS close_notify, or a reset)
/// within `within`.
fn closed_by_server(
    s: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    within: Duration,
) -> bool {
    s.sock.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn a_connection_flood_from_one_identity_or_one_region_does_not_lock_out_another() {
    let w = world_with(
        &[
            "max_connections = 96",
            "max_connections_per_region = 24",
            "max_connections_per_caller = 16",
            "handshake_timeout_secs = 2",
            "idle_timeout_secs = 10",
        ],
        &[],
    );
    let addr = w.custodian.addr;

    // 60 connections from the US gateway's certificate: 16 are served, the rest are answered
    // 503 too_many_connections right after the handshake and closed (the client may see the
    // answer, or only the close if its request crossed it). The served ones are kept open.
    let mut held = Vec::new();
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..60 {
        let (s, status) = healthz_on_new_connection(addr, &w.server_ca, &w.gw_us);
        match status {
            Some(200) => ok += 1,
            Some(503) | None => refused += 1,
            other => panic!("unexpected answer {other:?}"),
        }
        held.extend(s);
    }
    assert_eq!((ok, refused), (16, 44));

    // Other certificates of the same (provider's) CA: only the region's remaining 8 places.
    let flooders: Vec<Leaf> = (0..3)
        .map(|i| w.cas["us"].leaf(&format!("flood-{i}"), &[&format!("flood-{i}")]))
        .collect();
    let mut region_ok = 0;
    for leaf in &flooders {
        for _ in 0..10 {
            let (s, status) = healthz_on_new_connection(addr, &w.server_ca, leaf);
            region_ok += usize::from(status == Some(200));
            held.extend(s);
        }
    }
    assert_eq!(region_ok, 8, "the US region holds 24 connections at most");

    // 100 TCP connections that never start TLS, from another loopback address: at most 32
    // handshakes per address are held, each for 2 s at most.
    let silent: Vec<TcpStream> = (0..100)
        .filter_map(|_| connect_from("127.0.0.2", addr))
        .collect();
    assert!(!silent.is_empty());

    // The Irish gateway is served all the while.
    let client = w.client(&w.gw_ie);
    let runtime = rt();
    let o = w.seal(MAILBOX_A, "aoife/flood.eml", b"still served");
    let started = Instant::now();
    let r = runtime.block_on(client.unwrap(&[item(&o)], None)).unwrap();
    assert!(r.results[0].is_ok());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "served in {:?}",
        started.elapsed()
    );

    // Idle connections are closed by the server (idle_timeout_secs = 10), and so are the
    // silent TCP connections (handshake_timeout_secs = 2).
    let mut closed = 0;
    let total = held.len();
    for s in &mut held {
        closed += usize::from(closed_by_server(s, Duration::from_secs(20)));
    }
    assert_eq!(
        closed, total,
        "every idle connection is closed by the server"
    );
    for mut s in silent {
        s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        let mut buf = [0u8; 8];
        assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    }

    // Once closed, the US gateway is served again, and the refusals are counted.
    let (_, status) = healthz_on_new_connection(addr, &w.server_ca, &w.gw_us);
    assert_eq!(status, Some(200));
    let metrics = runtime.block_on(client.metrics()).unwrap();
    for reason in ["caller", "region"] {
        let n = metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "custodia_connections_refused_total{{reason=\"{reason}\"}} "
                ))
            })
            .map_or(0.0, |v| v.parse::<f64>().unwrap());
        assert!(n >= 1.0, "{reason}: {metrics}");
    }
}

/// A TCP connection to `to` from the loopback address `from` (bound before connecting).
fn connect_from(from: &str, to: SocketAddr) -> Option<TcpStream> {
    rt().block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().ok()?;
        socket.bind(format!("{from}:0").parse().ok()?).ok()?;
        let stream = socket.connect(to).await.ok()?.into_std().ok()?;
        stream.set_nonblocking(false).ok()?;
        Some(stream)
    })
}

#[test]
fn a_stopped_custodian_gets_503_in_bounded_time_and_writes_keep_their_slots() {
    require("nginx", "apt-get install nginx-light");
    let w = world_with(&[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start(&dir.path().join("nginx"));
    let gw_dir = dir.path().join("gateway");
    let config = gateway_config(
        &w,
        &w.gw_ie,
        &nginx.upstream(),
        "[limits]\nmax_concurrent_requests = 4\ncustodian_timeout_secs = 5\n\
         custodian_connect_timeout_secs = 2\n",
        &gw_dir,
    );
    let gw = GatewayProc::start(&gw_dir, &config);
    let url = |key: &str| gw.url(&format!("/mail/{MAILBOX_A}/{key}"));
    let body_file = dir.path().join("body");
    std::fs::write(&body_file, b"a message for the hung custodian").unwrap();
    let put = |key: &str| {
        curl(&[
            "--max-time",
            "60",
            "-T",
            body_file.to_str().unwrap(),
            &url(key),
        ])
    };
    for i in 0..8 {
        assert_eq!(put(&format!("m{i}.eml")).status, 201);
    }
    // The gateway has used its connection to the custodian (manifest), so one is pooled.
    w.custodian.signal("STOP");
    let started = Instant::now();
    std::thread::scope(|scope| {
        let reads: Vec<_> = (0..8)
            .map(|i| {
                let u = url(&format!("m{i}.eml"));
                scope.spawn(move || {
                    let t = Instant::now();
                    let r = curl(&["--max-time", "90", &u]);
                    (r, t.elapsed())
                })
            })
            .collect();
        // Writes need no custodian: they get their own slots while the reads wait.
        std::thread::sleep(Duration::from_millis(300));
        let writes: Vec<_> = (0..4)
            .map(|i| {
                let put = &put;
                scope.spawn(move || {
                    let t = Instant::now();
                    (put(&format!("during-{i}.eml")), t.elapsed())
                })
            })
            .collect();
        let mut slowest = (Duration::ZERO, Duration::ZERO);
        for h in writes {
            let (r, took) = h.join().unwrap();
            slowest.0 = slowest.0.max(took);
            assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
            assert!(took < Duration::from_secs(5), "a write took {took:?}");
        }
        for h in reads {
            let (r, took) = h.join().unwrap();
            slowest.1 = slowest.1.max(took);
            assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
            assert!(r.header("retry-after").is_some());
            assert!(took < Duration::from_secs(20), "a read took {took:?}");
        }
        eprintln!(
            "custodian stopped: slowest write {:?}, slowest read (503) {:?}",
            slowest.0, slowest.1
        );
    });
    assert!(started.elapsed() < Duration::from_secs(40));
    w.custodian.signal("CONT");
    // Back: reads open again (after the short down window).
    let mut status = 0;
    for _ in 0..40 {
        status = curl(&["--max-time", "30", &url("m0.eml")]).status;
        if status == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(status, 200);
    let m = String::from_utf8_lossy(&curl(&[&gw.url("/metrics")]).body).into_owned();
    let reads_503 = metric(
        &m,
        "custodia_gateway_requests_total{front=\"http\",op=\"get\",status=\"503\"}",
    );
    // The 8 reads during the stop, and any made in the short down window after it.
    assert!(reads_503.is_some_and(|n| n >= 8.0), "{m}");
}

/// Appends `n` synthetic public entries (and details) to a stopped custodian's log, as if it
/// had decided that many unwraps in November 2026.
fn grow_log(audit_dir: &std::path::Path, n: u64) {
    let entries = std::fs::read(audit_dir.join("entries.jsonl")).unwrap();
    let first = entries.iter().filter(|b| **b == b'\n').count() as u64;
    let mut e = std::io::BufWriter::new(
        std::fs::OpenOptions::new()
            .append(true)
            .open(audit_dir.join("entries.jsonl"))
            .unwrap(),
    );
    let mut d = std::io::BufWriter::new(
        std::fs::OpenOptions::new()
            .append(true)
            .open(audit_dir.join("details.jsonl"))
            .unwrap(),
    );
    for seq in first..first + n {
        let entry = PublicEntry {
            seq,
            batch: seq,
            time: 1_793_491_200 + seq,
            operation: "unwrap".into(),
            caller_region: if seq % 3 == 0 { "us" } else { "ie" }.into(),
            caller_name: "gateway".into(),
            outcome: if seq % 3 == 0 {
                Outcome::Deny
            } else {
                Outcome::Allow
            },
            reason: if seq % 3 == 1 {
                "approval"
            } else {
                "in_region"
            }
            .into(),
            approval_id: (seq % 3 == 1).then(|| "aa".repeat(32)),
            key_version: Some(1),
            mailbox_commitment: Some(format!("{seq:064x}")),
            use_tag: (seq % 3 == 1).then(|| format!("{:064x}", seq % 5000)),
            policy_hash: None,
            flags: vec![],
        };
        e.write_all(&entry.record()).unwrap();
        e.write_all(b"\n").unwrap();
        let detail = DetailEntry {
            seq,
            mailbox: Some(format!("user{}@example.ie", seq % 5000)),
            object_id: None,
            caller_key_hash: "00".repeat(32),
            salt: None,
            policy: None,
        };
        serde_json::to_writer(&mut d, &detail).unwrap();
        d.write_all(b"\n").unwrap();
    }
}

/// The 90th percentile.
fn p90(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() * 9 / 10]
}

#[test]
fn transparency_reports_on_a_large_log_do_not_hold_up_unwraps() {
    let mut w = world_with(&[], &[]);
    let o = w.seal(MAILBOX_A, "aoife/report.eml", b"x");
    w.custodian.stop();
    grow_log(&w.custodian.audit_dir(), 100_000);
    w.custodian.spawn();
    let client = Arc::new(w.client(&w.gw_ie));
    let auditor = Arc::new(w.client(&w.auditor_ie));
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    );
    let unwrap_times = |n: usize| -> Vec<Duration> {
        (0..n)
            .map(|_| {
                let t = Instant::now();
                let r = runtime.block_on(client.unwrap(&[item(&o)], None)).unwrap();
                assert!(r.results[0].is_ok());
                t.elapsed()
            })
            .collect()
    };
    let before = p90(unwrap_times(20));

    // Two report loops, bounded in count and time, while unwraps go on until each loop has
    // finished three reports (the first counts the whole log; the next ones only what was
    // appended since).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let loops: Vec<_> = (0..2)
        .map(|i| {
            let (auditor, runtime) = (auditor.clone(), runtime.clone());
            let (stop, done) = (stop.clone(), done.clone());
            std::thread::spawn(move || {
                let period = if i == 0 { "2026-11" } else { "2026-Q4" };
                let deadline = Instant::now() + Duration::from_secs(120);
                let mut reports = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && reports.len() < 500
                    && Instant::now() < deadline
                {
                    match runtime.block_on(auditor.transparency(period)) {
                        Ok(r) => reports.push(r),
                        // One report is computed at a time; the other is told to retry.
                        Err(custodia_custodian::Error::Http {
                            status: 503, code, ..
                        }) if code == "busy" => {
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                        Err(e) => panic!("report: {e}"),
                    }
                    if reports.len() == 3 {
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                reports
            })
        })
        .collect();
    let mut during = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(150);
    while (during.len() < 40 || done.load(std::sync::atomic::Ordering::Relaxed) < 2)
        && Instant::now() < deadline
    {
        during.extend(unwrap_times(1));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reports: Vec<_> = loops.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert!(reports.len() >= 6, "the reports ran");
    let (n, during) = (during.len(), p90(during));
    eprintln!(
        "unwrap p90 {before:?} before, {during:?} over {n} unwraps during {} reports",
        reports.len()
    );
    // Unwraps were not queued behind the reports (before the fix, a report re-read the
    // whole log holding the append lock: unwraps waited out each report).
    assert!(
        during <= before * 4 + Duration::from_millis(300),
        "unwrap p90 {during:?} during reports vs {before:?} before"
    );
    // The reports are right: the last November report counts every synthetic entry (those
    // at times in November) and says how big the log it counted was.
    let last = runtime.block_on(auditor.transparency("2026-11")).unwrap();
    let size: u64 = runtime
        .block_on(client.checkpoint())
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(last.log_size, size);
    let counted: u64 = last
        .rows
        .iter()
        .filter(|r| r.operation == "unwrap")
        .map(|r| r.count.0.parse::<u64>().unwrap_or(0))
        .sum();
    assert_eq!(counted, 100_000);
    // Every third entry is a release under one approval, of 5000 mailboxes in turn.
    assert_eq!(last.approval_mailbox_pairs.0, "5000");
}

/// Public entries on the custodian's log now.
fn log_len(w: &custodia_tests::world::World) -> usize {
    custodia_custodian::audit_store::AuditStore::read_joined(&w.custodian.audit_dir())
        .unwrap()
        .len()
}

#[test]
fn callers_without_a_right_to_a_route_cannot_grow_the_log_and_do_not_throttle_others() {
    // A denial budget of 6 per caller (24 for its region), refilled at 1 a minute.
    let w = world_with(
        &[
            "out_of_region_denial_burst = 6",
            "out_of_region_denials_per_minute = 1",
        ],
        &[],
    );
    let o = w.seal(MAILBOX_A, "aoife/flood.eml", b"A's mail");
    let objects: Vec<_> = (0..16)
        .map(|i| w.seal(MAILBOX_A, &format!("aoife/{i}.eml"), b"x"))
        .collect();
    let items: Vec<_> = objects.iter().map(item).collect();
    let before = log_len(&w);
    // The US gateway and 20 fresh certificates from the US CA flood every route they may
    // not use: rewraps of 16 and of 1 item, key rotations and retirements, and revocations
    // no approver signed.
    let mut identities = vec![w.gw_us.clone()];
    identities.extend((0..20).map(|i| w.cas["us"].leaf(&format!("flood-{i}"), &[])));
    let bogus = {
        let approval = w.approval(&[MAILBOX_A], &w.gw_us);
        let id = approval.id().unwrap();
        let mut rev = w.approvers[0].revoke(&id);
        rev.approval_id = "00".repeat(16);
        rev
    };
    // One runtime for every call: pooled connections live on the runtime that opened them.
    let runtime = rt();
    let (mut refused, mut denied) = (0, 0);
    for leaf in &identities {
        let c = w.client(leaf);
        for _ in 0..3 {
            let calls = [
                runtime.block_on(c.rewrap(&items)).map(|_| ()),
                runtime.block_on(c.rewrap(&items[..1])).map(|_| ()),
                runtime.block_on(c.rotate()).map(|_| ()),
                runtime.block_on(c.retire(1)).map(|_| ()),
                runtime.block_on(c.revoke(&bogus)),
            ];
            for r in calls {
                match r {
                    Err(Error::Denied(Denial::RateLimited)) => refused += 1,
                    Err(Error::Denied(_)) | Ok(()) => denied += 1,
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
    let grown = log_len(&w) - before;
    eprintln!("{denied} requests denied, {refused} refused as throttled; log grew by {grown}");
    // 315 requests asking for 1,300 denials: the log holds at most the region's budget
    // (24, and what refilled meanwhile) plus one throttled refusal a minute.
    assert!(refused > 250, "{refused}");
    assert!(grown <= 24 + 2 + 1, "the log grew by {grown}");
    // The Irish gateway still unwraps, and the Irish admin still rotates keys.
    assert!(unwrap_one(&w.client(&w.gw_ie), &o, None).is_ok());
    runtime.block_on(w.client(&w.admin_ie).rotate()).unwrap();
}

#[test]
fn concurrent_requests_cannot_spend_one_denial_budget_twice() {
    // A region budget of 400 denials (100 per caller), refilled at 1 a minute.
    let w = world_with(
        &[
            "out_of_region_denial_burst = 100",
            "out_of_region_denials_per_minute = 1",
        ],
        &[],
    );
    let objects: Vec<_> = (0..64)
        .map(|i| w.seal(MAILBOX_A, &format!("aoife/c{i}.eml"), b"x"))
        .collect();
    let items: Vec<_> = objects.iter().map(item).collect();
    let clients: Vec<_> = (0..16)
        .map(|i| w.client(&w.cas["us"].leaf(&format!("concurrent-{i}"), &[])))
        .collect();
    let before = log_len(&w);
    // Sixteen fresh US certificates send 64 probes each at once: each alone fits its own
    // budget, but the region's holds six such requests.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let results = runtime.block_on(futures_util::future::join_all(
        clients.iter().map(|c| c.unwrap(&items, None)),
    ));
    let decided = results.iter().filter(|r| r.is_ok()).count();
    let grown = log_len(&w) - before;
    eprintln!("{decided} of 16 concurrent requests decided; log grew by {grown}");
    assert!(decided <= 6, "{decided} requests spent one budget");
    assert!(grown <= 6 * 64 + 1, "the log grew by {grown}");
}

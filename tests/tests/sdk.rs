//! The SDK (`custodia` crate) against a real custodian process on 127.0.0.1 with real mTLS:
//! round trips, the manifest cache during an outage, cross-region denial and approvals, the
//! DEK cache, range reads, streaming, residency, and rewrap after a rotation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "tests"
)]

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use custodia::{
    CacheConfig, Client, CustodianEndpoint, Denial, Directory, Error, Policy, RangeSource,
};
use custodia_custodian::decision_log::Outcome;
use custodia_envelope::{Binding, CustodianName, Header, Metadata, Region};
use custodia_tests::world::{MAILBOX_A, MAILBOX_B, World, rt, world};
use custodia_tests::{Leaf, tls_client};

fn ie() -> Region {
    Region::new("ie").unwrap()
}

/// A directory listing the world's custodian (`ie/dublin`), connecting as `leaf`.
fn directory(w: &World, leaf: &Leaf) -> Arc<Directory> {
    let endpoint = CustodianEndpoint {
        addr: w.custodian.addr.to_string(),
        server_name: "localhost".into(),
        tls: tls_client(&w.server_ca, leaf),
        manifest_key: w.custodian.manifest_key,
    };
    Arc::new(
        Directory::builder()
            .custodian(&ie(), &CustodianName::new("dublin").unwrap(), endpoint)
            .unwrap()
            .build(),
    )
}

fn policy() -> Policy {
    Policy::builder().domain("example.ie", &ie()).build()
}

/// A refreshed client for the world, connecting as `leaf`.
async fn client_with(w: &World, leaf: &Leaf, cache: CacheConfig) -> Client {
    let dir = directory(w, leaf);
    dir.refresh().await.unwrap();
    Client::builder(dir, policy()).cache(cache).build()
}

fn unwraps(w: &World) -> usize {
    w.custodian
        .log()
        .iter()
        .filter(|r| r.operation == "unwrap")
        .count()
}

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn round_trips_small_and_large_objects_with_metadata() {
    let w = world();
    rt().block_on(async {
        let c = client_with(&w, &w.gw_ie, CacheConfig::DISABLED).await;
        let mut meta = Metadata::new();
        meta.insert("content-md5", "abc").unwrap();
        for (i, len) in [0usize, 17, 300 * 1024].into_iter().enumerate() {
            let b = Binding::new("mail-ie", &format!("aoife/{i}.eml")).unwrap();
            let plain = body(len);
            let stored = c.seal(MAILBOX_A, &b, &plain, &meta).unwrap();
            let header = Header::parse(&stored).unwrap();
            assert_eq!(header.context().mailbox(), MAILBOX_A);
            assert_eq!(header.context().region(), &ie());
            let opened = c.open(&b, &stored).await.unwrap();
            assert_eq!(opened.plaintext, plain);
            assert_eq!(opened.metadata.get("content-md5"), Some("abc"));
            // Moved to another name: refused.
            let moved = Binding::new("mail-ie", "elsewhere").unwrap();
            assert!(matches!(
                c.open(&moved, &stored).await,
                Err(Error::Envelope(_))
            ));
        }
    });
}

#[test]
fn a_mailbox_without_a_residency_rule_is_refused() {
    let w = world();
    rt().block_on(async {
        let c = client_with(&w, &w.gw_ie, CacheConfig::default()).await;
        let b = Binding::new("mail", "x").unwrap();
        let e = c
            .seal("someone@example.com", &b, b"x", &Metadata::new())
            .unwrap_err();
        assert!(
            matches!(&e, Error::NoResidencyRule { mailbox } if mailbox == "someone@example.com")
        );
        assert!(!e.is_retryable());
        // And an unrefreshed directory refuses to seal rather than guess.
        let cold = Client::builder(directory(&w, &w.gw_ie), policy()).build();
        assert!(matches!(
            cold.seal(MAILBOX_A, &b, b"x", &Metadata::new()),
            Err(Error::ManifestUnavailable { .. })
        ));
    });
}

#[test]
fn custodian_down_seal_works_from_the_cache_and_open_fails_retryably() {
    let mut w = world();
    let runtime = rt();
    let c = runtime.block_on(client_with(&w, &w.gw_ie, CacheConfig::DISABLED));
    let b = Binding::new("mail-ie", "aoife/1.eml").unwrap();
    let before = c.seal(MAILBOX_A, &b, b"before", &Metadata::new()).unwrap();
    assert_eq!(
        runtime.block_on(c.open(&b, &before)).unwrap().plaintext,
        b"before"
    );

    w.custodian.kill9();
    let during = c.seal(MAILBOX_A, &b, b"during", &Metadata::new()).unwrap();
    let e = runtime.block_on(c.open(&b, &during)).unwrap_err();
    assert!(
        matches!(&e, Error::Unavailable { region, .. } if *region == ie()),
        "{e:?}"
    );
    assert!(e.is_retryable(), "{e:?}");
    // A refresh fails but keeps the cached manifest.
    assert!(runtime.block_on(c.directory().refresh()).is_err());
    c.seal(MAILBOX_A, &b, b"still", &Metadata::new()).unwrap();

    w.custodian.spawn();
    let c = runtime.block_on(client_with(&w, &w.gw_ie, CacheConfig::DISABLED));
    assert_eq!(
        runtime.block_on(c.open(&b, &during)).unwrap().plaintext,
        b"during"
    );
}

#[test]
fn out_of_region_caller_is_denied_and_an_approval_opens_without_caching() {
    let w = world();
    rt().block_on(async {
        let gw = client_with(&w, &w.gw_ie, CacheConfig::default()).await;
        let a = Binding::new("mail-ie", "aoife/1.eml").unwrap();
        let stored_a = gw
            .seal(MAILBOX_A, &a, b"A's mail", &Metadata::new())
            .unwrap();
        let bb = Binding::new("mail-ie", "brian/1.eml").unwrap();
        let stored_b = gw
            .seal(MAILBOX_B, &bb, b"B's mail", &Metadata::new())
            .unwrap();

        let us = client_with(&w, &w.gw_us, CacheConfig::default()).await;
        let e = us.open(&a, &stored_a).await.unwrap_err();
        assert!(
            matches!(
                &e,
                Error::Denied { region, denial: Denial::ApprovalRequired, .. } if *region == ie()
            ),
            "{e:?}"
        );
        assert!(!e.is_retryable());

        let doc = w.sign(&w.approval(&[MAILBOX_A], &w.gw_us), &[0, 2]);
        let opened = us.open_with_approval(&a, &stored_a, &doc).await.unwrap();
        assert_eq!(opened.plaintext, b"A's mail");
        assert_eq!(
            us.cached_keys(),
            0,
            "a key obtained with an approval is never cached"
        );
        // Not served from a cache afterwards: without the approval it is denied again.
        assert!(matches!(
            us.open(&a, &stored_a).await,
            Err(Error::Denied {
                denial: Denial::ApprovalRequired,
                ..
            })
        ));
        // The approval names only mailbox A.
        assert!(matches!(
            us.open_with_approval(&bb, &stored_b, &doc).await,
            Err(Error::Denied {
                denial: Denial::ApprovalWrongMailbox,
                ..
            })
        ));
    });
    let log = w.custodian.log();
    let us_allowed: Vec<_> = log
        .iter()
        .filter(|r| r.caller_region == "us" && r.outcome == Outcome::Allow)
        .collect();
    assert_eq!(us_allowed.len(), 1);
    assert!(us_allowed[0].approval_id.is_some());
    assert_eq!(us_allowed[0].mailbox.as_deref(), Some(MAILBOX_A));
}

#[test]
fn the_dek_cache_serves_a_second_open_without_a_custodian_call() {
    let w = world();
    rt().block_on(async {
        let c = client_with(&w, &w.gw_ie, CacheConfig::default()).await;
        let b = Binding::new("mail-ie", "aoife/hot.eml").unwrap();
        let stored = c.seal(MAILBOX_A, &b, b"hot", &Metadata::new()).unwrap();
        assert_eq!(c.open(&b, &stored).await.unwrap().plaintext, b"hot");
        let after_first = unwraps(&w);
        assert_eq!(after_first, 1);
        assert_eq!(c.cached_keys(), 1);
        assert_eq!(c.open(&b, &stored).await.unwrap().plaintext, b"hot");
        assert_eq!(
            unwraps(&w),
            after_first,
            "no new audit entry: served from the cache"
        );
        // A cached key does not open the object under another name.
        let moved = Binding::new("mail-ie", "moved").unwrap();
        assert!(c.open(&moved, &stored).await.is_err());
        c.clear_cache();
        assert_eq!(c.open(&b, &stored).await.unwrap().plaintext, b"hot");
        assert_eq!(unwraps(&w), after_first + 1);
    });
}

#[test]
fn unwrap_many_makes_one_custodian_call_for_all_objects() {
    let w = world();
    rt().block_on(async {
        let c = client_with(&w, &w.gw_ie, CacheConfig::DISABLED).await;
        let objs: Vec<(Binding, Vec<u8>)> = (0..5)
            .map(|i| {
                let b = Binding::new("mail-ie", &format!("aoife/{i}.eml")).unwrap();
                let s = c
                    .seal(
                        MAILBOX_A,
                        &b,
                        format!("msg {i}").as_bytes(),
                        &Metadata::new(),
                    )
                    .unwrap();
                (b, s)
            })
            .collect();
        let headers: Vec<Header> = objs
            .iter()
            .map(|(_, s)| Header::parse(s).unwrap())
            .collect();
        let pairs: Vec<(&Header, &Binding)> =
            headers.iter().zip(objs.iter().map(|(b, _)| b)).collect();
        let results = c.unwrap_many(&pairs).await.unwrap();
        assert_eq!(results.len(), 5);
        for (i, (r, (_, stored))) in results.into_iter().zip(&objs).enumerate() {
            assert_eq!(
                r.unwrap().open(stored).unwrap(),
                format!("msg {i}").as_bytes()
            );
        }
        let metrics = w.client(&w.gw_ie).metrics().await.unwrap();
        let unwrap_requests: u64 = metrics
            .lines()
            .filter(|l| l.starts_with("custodia_requests_total{route=\"unwrap\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        assert_eq!(
            unwrap_requests, 1,
            "one request for five objects:\n{metrics}"
        );
    });
    // One batch: five audit entries.
    assert_eq!(unwraps(&w), 5);
}

/// Serves stored bytes by range and counts what it served.
struct Counting {
    stored: Vec<u8>,
    served: AtomicU64,
    calls: AtomicU64,
}

impl RangeSource for Counting {
    async fn read(&self, range: Range<u64>) -> std::io::Result<Vec<u8>> {
        self.served
            .fetch_add(range.end - range.start, Ordering::SeqCst);
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(self.stored[range.start as usize..range.end as usize].to_vec())
    }
}

#[test]
fn open_range_reads_only_the_chunks_it_needs() {
    let w = world();
    rt().block_on(async {
        let c = client_with(&w, &w.gw_ie, CacheConfig::default()).await;
        let b = Binding::new("mail-ie", "aoife/big.bin").unwrap();
        let plain = body(5 * 65536 + 1000);
        let stored = c.seal(MAILBOX_A, &b, &plain, &Metadata::new()).unwrap();
        let header = Header::parse(&stored).unwrap();
        let src = Counting {
            stored: stored.clone(),
            served: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        };
        let c64 = 65536u64;
        let stored_chunk = c64 + 16;
        for (range, chunks) in [
            (0..1, 1),
            (c64 - 1..c64 + 1, 2),
            (c64..2 * c64, 1),
            (70_000..140_000, 2),
            (5 * c64..5 * c64 + 1000, 1),
            (5 * c64 + 999..5 * c64 + 1000, 1),
            (0..plain.len() as u64, 6),
        ] {
            src.served.store(0, Ordering::SeqCst);
            let got = c
                .open_range(&b, &header, stored.len() as u64, range.clone(), &src)
                .await
                .unwrap();
            assert_eq!(
                got,
                &plain[range.start as usize..range.end as usize],
                "{range:?}"
            );
            let served = src.served.load(Ordering::SeqCst);
            assert!(
                served <= chunks * stored_chunk && served > (chunks - 1) * stored_chunk,
                "{range:?}: served {served}"
            );
        }
        assert!(
            c.open_range(
                &b,
                &header,
                stored.len() as u64,
                0..plain.len() as u64 + 1,
                &src
            )
            .await
            .is_err()
        );
    });
}

#[test]
fn streaming_seal_and_open_of_a_mebibyte() {
    let w = world();
    rt().block_on(async {
        let c = client_with(&w, &w.gw_ie, CacheConfig::DISABLED).await;
        let b = Binding::new("mail-ie", "aoife/stream.bin").unwrap();
        let plain = body(1024 * 1024 + 123);
        // Seal through a small duplex pipe (the pipe, not the SDK, holds at most 8 KiB).
        let (tx, mut rx) = tokio::io::duplex(8 * 1024);
        let mut stored = Vec::new();
        let (n, read) = tokio::join!(
            async {
                c.seal_stream(MAILBOX_A, &b, &Metadata::new(), &plain[..], tx)
                    .await
                    .unwrap()
            },
            tokio::io::AsyncReadExt::read_to_end(&mut rx, &mut stored)
        );
        read.unwrap();
        assert_eq!(n, stored.len() as u64);
        // Interoperates with the whole-object API.
        assert_eq!(c.open(&b, &stored).await.unwrap().plaintext, plain);

        let (tx, mut rx) = tokio::io::duplex(8 * 1024);
        let mut out = Vec::new();
        let (n, read) = tokio::join!(
            async { c.open_stream(&b, &stored[..], tx).await.unwrap() },
            tokio::io::AsyncReadExt::read_to_end(&mut rx, &mut out)
        );
        read.unwrap();
        assert_eq!(n, plain.len() as u64);
        assert_eq!(out, plain);

        // Truncated: an error, never a short success.
        let cut = &stored[..stored.len() - 100];
        let mut sink = Vec::new();
        assert!(c.open_stream(&b, cut, &mut sink).await.is_err());
        // Tampered in the middle.
        let mut bad = stored.clone();
        bad[1024 + 3 * 65552 + 7] ^= 1;
        let mut sink = Vec::new();
        assert!(matches!(
            c.open_stream(&b, &bad[..], &mut sink).await,
            Err(Error::Envelope(_))
        ));
    });
}

#[test]
fn rewrap_after_rotation_keeps_the_body_and_opens() {
    let w = world();
    rt().block_on(async {
        let c = client_with(&w, &w.gw_ie, CacheConfig::DISABLED).await;
        let b = Binding::new("mail-ie", "aoife/old.eml").unwrap();
        let plain = body(100_000);
        let stored = c.seal(MAILBOX_A, &b, &plain, &Metadata::new()).unwrap();
        let header = Header::parse(&stored).unwrap();
        assert_eq!(header.stanzas()[0].recipient.key_version.0, 1);
        let hlen = header.profile().header_size();

        // Nothing newer yet: the header comes back unchanged.
        assert_eq!(c.rewrap(&stored).await.unwrap(), &stored[..hlen]);

        w.client(&w.admin_ie).rotate().await.unwrap();
        c.directory().refresh().await.unwrap();
        let unwraps_before = unwraps(&w);
        let new_header = c.rewrap(&stored[..hlen]).await.unwrap();
        assert_eq!(new_header.len(), hlen);
        assert_eq!(unwraps(&w), unwraps_before, "rewrap releases nothing");
        let parsed = Header::parse(&new_header).unwrap();
        assert_eq!(parsed.stanzas()[0].recipient.key_version.0, 2);

        let mut rewrapped = new_header.clone();
        rewrapped.extend_from_slice(&stored[hlen..]);
        assert_eq!(c.open(&b, &rewrapped).await.unwrap().plaintext, plain);
        // New objects are sealed to version 2.
        let fresh = c.seal(MAILBOX_A, &b, b"new", &Metadata::new()).unwrap();
        assert_eq!(
            Header::parse(&fresh).unwrap().stanzas()[0]
                .recipient
                .key_version
                .0,
            2
        );

        // Rewrap is for in-region callers only.
        let us = client_with(&w, &w.gw_us, CacheConfig::DISABLED).await;
        assert!(matches!(
            us.rewrap(&stored).await,
            Err(Error::Denied { .. })
        ));
    });
}

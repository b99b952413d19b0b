//! 256 MiB sealed and opened by the SDK's streaming API with bounded memory, against a real
//! custodian process. Alone in its own test binary: tests of one binary share the process,
//! and this one measures the process's peak resident set size.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "tests"
)]

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use custodia::{CacheConfig, Client, Policy};
use custodia_envelope::{Binding, Metadata, Region};
use custodia_tests::memory_kib;
use custodia_tests::world::{MAILBOX_A, rt, world};
use ring::digest::{Context as Digest, SHA256};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

const LEN: u64 = 256 * 1024 * 1024;

/// Yields `len` bytes of a deterministic pattern (a counter mixed into each 8-byte word),
/// generated on the fly, hashing what it yields.
struct Pattern {
    pos: u64,
    len: u64,
    hash: Digest,
}

impl AsyncRead for Pattern {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        // Odd-sized reads, so chunk boundaries do not line up with the pattern's words.
        let n = (self.len - self.pos)
            .min(buf.remaining() as u64)
            .min(40_000) as usize;
        let start = buf.filled().len();
        for i in 0..n as u64 {
            let at = self.pos + i;
            let word = (at / 8).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            buf.put_slice(&[word.to_le_bytes()[(at % 8) as usize]]);
        }
        let this = &mut *self;
        this.hash.update(&buf.filled()[start..]);
        this.pos += n as u64;
        Poll::Ready(Ok(()))
    }
}

/// Reads `reader` to its end, hashing it; returns the byte count and the SHA-256.
async fn hash_all(mut reader: impl AsyncRead + Unpin) -> (u64, Vec<u8>) {
    let mut hash = Digest::new(&SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        total += n as u64;
    }
    (total, hash.finish().as_ref().to_vec())
}

#[test]
fn streams_256_mib_through_seal_and_open_with_bounded_memory() {
    let w = world();
    let ie = Region::new("ie").unwrap();
    let dir = w.sdk_directory(&w.gw_ie);
    rt().block_on(async {
        dir.refresh().await.unwrap();
        let c = Client::builder(dir, Policy::builder().domain("example.ie", &ie).build())
            .cache(CacheConfig::DISABLED)
            .build();
        let b = Binding::new("mail-ie", "aoife/huge.bin").unwrap();
        // Warm up (TLS, allocator) on a small object so the measurement is of the stream.
        let mut sink = Vec::new();
        let small = c
            .seal(MAILBOX_A, &b, &[7u8; 100_000], &Metadata::new())
            .unwrap();
        c.open_stream(&b, &small[..], &mut sink).await.unwrap();
        drop((small, sink));

        let (hwm_before, rss_before) = memory_kib().expect("/proc/self/status");
        let started = Instant::now();
        let mut pattern = Pattern {
            pos: 0,
            len: LEN,
            hash: Digest::new(&SHA256),
        };
        // pattern → seal_stream → pipe → open_stream → pipe → hash: nothing holds the object.
        let (sealed_tx, sealed_rx) = tokio::io::duplex(64 * 1024);
        let (plain_tx, plain_rx) = tokio::io::duplex(64 * 1024);
        let (stored, opened, (hashed, got)) = tokio::join!(
            async {
                c.seal_stream(MAILBOX_A, &b, &Metadata::new(), &mut pattern, sealed_tx)
                    .await
                    .unwrap()
            },
            async { c.open_stream(&b, sealed_rx, plain_tx).await.unwrap() },
            hash_all(plain_rx),
        );
        let elapsed = started.elapsed();
        let (hwm_after, rss_after) = memory_kib().unwrap();

        assert_eq!(pattern.pos, LEN);
        assert_eq!(opened, LEN);
        assert_eq!(hashed, LEN);
        assert!(stored > LEN, "{stored}");
        assert_eq!(
            got,
            pattern.hash.finish().as_ref(),
            "the opened stream is the pattern"
        );
        let growth_kib = hwm_after.saturating_sub(hwm_before);
        println!(
            "256 MiB streamed (seal + open, {stored} stored bytes) in {:.1} s; peak RSS \
             {hwm_before} KiB -> {hwm_after} KiB (growth {growth_kib} KiB), RSS {rss_before} \
             KiB -> {rss_after} KiB",
            elapsed.as_secs_f64()
        );
        assert!(
            growth_kib < 64 * 1024,
            "peak RSS grew by {growth_kib} KiB streaming 256 MiB"
        );
    });
}

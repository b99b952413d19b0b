//! Open a byte range of a sealed object, fetching only the stored chunks the range touches.
//!
//! Run with the `CUSTODIA_*` variables of `seal_open` (see `examples/common/mod.rs`):
//! ```text
//! cargo run -p custodia --example open_range -- [START END]
//! ```
//! It seals a 1 MiB body, then opens plaintext bytes `START .. END` (default
//! `300000 .. 300100`) through a [`RangeSource`] that serves the sealed buffer and counts
//! the bytes it hands out. Without the variables it says what it needs and exits
//! successfully (so CI can run it).
#![allow(clippy::print_stdout, reason = "an example prints what it does")]

mod common;

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use custodia::RangeSource;
use custodia_envelope::{Binding, Header, Metadata};

const BODY_LEN: usize = 1 << 20;

/// An in-memory "object store" that counts the stored bytes it serves.
struct CountingSource {
    stored: Vec<u8>,
    served: AtomicU64,
}

impl RangeSource for CountingSource {
    async fn read(&self, range: Range<u64>) -> std::io::Result<Vec<u8>> {
        let out_of_range = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "range");
        let start = usize::try_from(range.start).map_err(|_| out_of_range())?;
        let end = usize::try_from(range.end).map_err(|_| out_of_range())?;
        let bytes = self
            .stored
            .get(start..end)
            .ok_or_else(out_of_range)?
            .to_vec();
        self.served.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), common::BoxError> {
    let Some(config) = common::config("open_range", &[])? else {
        return Ok(());
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (start, end): (u64, u64) = match args.as_slice() {
        [] => (300_000, 300_100),
        [a, b] => (a.parse()?, b.parse()?),
        _ => return Err("usage: open_range [START END]".into()),
    };
    let client = config.client().await?;
    let mailbox = config.mailbox();

    let body: Vec<u8> = (0..BODY_LEN)
        .map(|i| u8::try_from(i % 251).unwrap_or(0))
        .collect();
    let binding = Binding::new("files", "demo/range.bin")?;
    let stored = client.seal(&mailbox, &binding, &body, &Metadata::new())?;
    let stored_len = stored.len() as u64;
    println!("sealed {} bytes into {stored_len} stored bytes", body.len());

    // A reader first fetches the header (here: parsed from the front of the object).
    let header = Header::parse(&stored)?;
    let source = CountingSource {
        stored,
        served: AtomicU64::new(0),
    };
    let plain = client
        .open_range(&binding, &header, stored_len, start..end, &source)
        .await?;
    let want = usize::try_from(start)
        .ok()
        .zip(usize::try_from(end).ok())
        .and_then(|(s, e)| body.get(s..e));
    if want != Some(plain.as_slice()) {
        return Err("the opened range differs from the body".into());
    }
    let served = source.served.load(Ordering::Relaxed);
    println!(
        "opened range {start}..{end}: {} bytes, matching the body",
        plain.len()
    );
    println!(
        "read {served} of {stored_len} stored bytes (plus the {}-byte header)",
        header.profile().header_size()
    );
    Ok(())
}

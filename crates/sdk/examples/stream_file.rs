//! Stream a large file through the SDK: seal it chunk by chunk to a sealed file, open that
//! back chunk by chunk, and check the SHA-256 of what came out against what went in.
//!
//! Run with the `CUSTODIA_*` variables of `seal_open` (see `examples/common/mod.rs`):
//! ```text
//! cargo run -p custodia --example stream_file -- [FILE]
//! ```
//! Without `FILE` it streams a generated 8 MiB body. Without the variables it says what it
//! needs and exits successfully (so CI can run it).
#![allow(clippy::print_stdout, reason = "an example prints what it does")]

mod common;

use std::path::PathBuf;
use std::time::Instant;

use custodia_envelope::{Binding, Metadata};
use ring::digest::{Context, SHA256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};

const GENERATED_LEN: usize = 8 << 20;

/// SHA-256 (hex) and length of everything `reader` yields.
async fn sha256<R: AsyncRead + Unpin>(mut reader: R) -> std::io::Result<(String, u64)> {
    let mut ctx = Context::new(&SHA256);
    let mut buf = vec![0u8; 64 << 10];
    let mut len = 0u64;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        len += n as u64;
    }
    let hex = ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((hex, len))
}

fn mb_per_s(bytes: u64, started: Instant) -> f64 {
    #[allow(
        clippy::cast_precision_loss,
        reason = "a throughput figure for display"
    )]
    let mb = bytes as f64 / f64::from(1u32 << 20);
    mb / started.elapsed().as_secs_f64().max(1e-9)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), common::BoxError> {
    let Some(config) = common::config("stream_file", &[])? else {
        return Ok(());
    };
    let client = config.client().await?;
    let mailbox = config.mailbox();
    let work = tempdir()?;

    let input = if let Some(path) = std::env::args_os().nth(1) {
        PathBuf::from(path)
    } else {
        let path = work.join("generated.bin");
        let body: Vec<u8> = (0..GENERATED_LEN)
            .map(|i| u8::try_from(i.wrapping_mul(31) % 251).unwrap_or(0))
            .collect();
        tokio::fs::write(&path, &body).await?;
        println!("generated {} bytes at {}", body.len(), path.display());
        path
    };
    let sealed = work.join("sealed.bin");
    let output = work.join("opened.bin");
    let binding = Binding::new("files", "demo/large.bin")?;
    let mut metadata = Metadata::new();
    metadata.insert("content-type", "application/octet-stream")?;

    let started = Instant::now();
    let reader = BufReader::new(tokio::fs::File::open(&input).await?);
    let mut writer = BufWriter::new(tokio::fs::File::create(&sealed).await?);
    let stored = client
        .seal_stream(&mailbox, &binding, &metadata, reader, &mut writer)
        .await?;
    writer.flush().await?;
    println!(
        "sealed {} into {stored} stored bytes ({:.1} MB/s)",
        input.display(),
        mb_per_s(stored, started)
    );

    let started = Instant::now();
    let reader = BufReader::new(tokio::fs::File::open(&sealed).await?);
    let mut writer = BufWriter::new(tokio::fs::File::create(&output).await?);
    let opened = client.open_stream(&binding, reader, &mut writer).await?;
    writer.flush().await?;
    println!(
        "opened {opened} plaintext bytes ({:.1} MB/s)",
        mb_per_s(opened, started)
    );

    let (want, want_len) = sha256(tokio::fs::File::open(&input).await?).await?;
    let (got, got_len) = sha256(tokio::fs::File::open(&output).await?).await?;
    println!("sha256 in  {want} ({want_len} bytes)");
    println!("sha256 out {got} ({got_len} bytes)");
    std::fs::remove_dir_all(&work)?;
    if want != got || want_len != got_len {
        return Err("the opened stream differs from the input".into());
    }
    println!("sha256 match: {opened} bytes round-tripped");
    Ok(())
}

/// A fresh scratch directory under the system temp dir.
fn tempdir() -> std::io::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!(
        "custodia-stream-file-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

//! Regenerates the committed seed corpora under `fuzz/seeds/<target>/`:
//! `cargo run --release --example make_seeds` (from `fuzz/`). Deterministic: rerunning it
//! rewrites the same bytes.

#![allow(clippy::unwrap_used, reason = "seed generator")]

use std::path::Path;

use custodia_envelope::{Context, Header, Profile, Region, StreamNonce};
use custodia_fuzz::{FIXTURE_CHUNK, FIXTURE_HEADER, fixture, pattern, seal_sample};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn main() {
    // header_parse: headers of several shapes, alone and followed by a body; a context; a stanza.
    let p = |h, c| Profile::new(h, c).unwrap();
    let one = seal_sample(
        b"seed one",
        p(FIXTURE_HEADER, FIXTURE_CHUNK),
        &["a"],
        &[],
        &[],
        b"hi",
    )
    .unwrap();
    let three = seal_sample(
        b"seed three",
        p(768, 4096),
        &["cork-2", "dublin-1", "galway-3"],
        &[("tenant", "acme")],
        &[("content-type", "message/rfc822")],
        &pattern(100),
    )
    .unwrap();
    let default = seal_sample(
        b"seed default",
        Profile::DEFAULT,
        &["a", "b"],
        &[],
        &[],
        b"",
    )
    .unwrap();
    write(
        "header_parse",
        "one-recipient-min",
        &one.stored[..FIXTURE_HEADER as usize],
    );
    write("header_parse", "one-recipient-min-with-body", &one.stored);
    write("header_parse", "three-recipients-768", &three.stored[..768]);
    write(
        "header_parse",
        "two-recipients-default",
        &default.stored[..1024],
    );
    let header = Header::parse(&three.stored).unwrap();
    write("header_parse", "context", &header.context().to_bytes());
    write("header_parse", "stanza", &header.stanzas()[0].to_bytes());
    let ctx = Context::new("m", &Region::new("eu-west-1").unwrap()).unwrap();
    write("header_parse", "context-minimal", &ctx.to_bytes());

    // opener: the fixture's body whole and in pieces, cut short, and the whole object.
    let f = fixture();
    let body = f.body();
    write("opener", "body-whole", &cat(&[&[0], body]));
    write("opener", "body-in-pieces", &cat(&[&[3, 0, 7, 200], body]));
    write(
        "opener",
        "body-chunk-sized-pieces",
        &cat(&[&[1, 111], body]),
    );
    write(
        "opener",
        "body-cut-at-chunk-boundary",
        &cat(&[&[0], &body[..4112]]),
    );
    write("opener", "body-cut-mid-chunk", &cat(&[&[0], &body[..4500]]));
    write("opener", "whole-object", &f.sample.stored);

    // aead_differential: key || counter || last || flip || plaintext.
    let aead = |key: u8, counter: u64, last: bool, flip: u16, len: usize| {
        let nonce_fields = cat(&[
            &counter.to_be_bytes(),
            &[u8::from(last)],
            &flip.to_be_bytes(),
        ]);
        cat(&[&[key; 32], &nonce_fields, &pattern(len)])
    };
    write("aead_differential", "empty", &aead(0, 0, true, 0, 0));
    write("aead_differential", "one-block", &aead(1, 1, false, 77, 16));
    write(
        "aead_differential",
        "partial-blocks",
        &aead(2, 7, true, 900, 100),
    );
    write(
        "aead_differential",
        "max-counter",
        &aead(3, u64::MAX, false, 5, 33),
    );
    // The nonce layout the targets rely on: 3 zero bytes, u64 counter, last flag.
    assert_eq!(
        StreamNonce::new(1, true).bytes(),
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]
    );
}

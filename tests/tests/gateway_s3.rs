//! The S3 front with unchanged awscli against real S3 stores (s3s-fs, and Garage): bucket
//! and object operations with plaintext semantics, exact sizes in listings, ranges, metadata,
//! copy, presigned URLs, auth failures and refusals; the store only ever holds ciphertext.
//! Each test body runs once per store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use custodia_tests::gateway::curl;
use custodia_tests::s3::{S3Setup, StoreKind, aws, make_bucket, ok};

fn marker_body(len: usize, seed: u8) -> Vec<u8> {
    let marker = format!("SECRET-MAIL-{seed:03}-");
    marker
        .as_bytes()
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

#[test]
fn awscli_round_trips_lists_ranges_copies_and_stores_only_ciphertext_s3s_fs() {
    awscli_round_trips(StoreKind::S3sFs);
}

#[test]
fn awscli_round_trips_lists_ranges_copies_and_stores_only_ciphertext_garage() {
    awscli_round_trips(StoreKind::Garage);
}

fn awscli_round_trips(kind: StoreKind) {
    let s = S3Setup::start(kind);
    let ep = s.ep();
    make_bucket(ep, &s.store, "mail");
    let sizes = [0usize, 1, 65_535, 65_536, 65_537, 300_000];
    for (i, &n) in sizes.iter().enumerate() {
        let f = s.files.join(format!("m{i}"));
        std::fs::write(&f, marker_body(n, 7)).unwrap();
        let dest = format!("s3://mail/aoife@example.ie/INBOX/{i}.eml");
        ok(
            &aws(ep, &["s3", "cp", f.to_str().unwrap(), &dest], None),
            "cp up",
        );
        let back = s.files.join(format!("back{i}"));
        ok(
            &aws(ep, &["s3", "cp", &dest, back.to_str().unwrap()], None),
            "cp down",
        );
        assert_eq!(std::fs::read(&back).unwrap(), marker_body(n, 7), "size {n}");
    }
    let ls = ok(
        &aws(ep, &["s3", "ls", "--recursive", "s3://mail/"], None),
        "ls",
    );
    for (i, &n) in sizes.iter().enumerate() {
        let line = ls
            .lines()
            .find(|l| l.ends_with(&format!("INBOX/{i}.eml")))
            .unwrap_or_else(|| panic!("{i}.eml not listed: {ls}"));
        let size: usize = line.split_whitespace().nth(2).unwrap().parse().unwrap();
        assert_eq!(size, n, "listed size of {i}.eml");
    }
    // Range, head with metadata, copy with metadata directives.
    let key = "aoife@example.ie/INBOX/5.eml";
    let out = s.files.join("range");
    ok(
        &aws(
            ep,
            &[
                "s3api",
                "get-object",
                "--bucket",
                "mail",
                "--key",
                key,
                "--range",
                "bytes=65530-65545",
                out.to_str().unwrap(),
            ],
            None,
        ),
        "get-object --range",
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        marker_body(300_000, 7)[65_530..=65_545]
    );
    let f = s.files.join("meta");
    std::fs::write(&f, b"hello with metadata").unwrap();
    ok(
        &aws(
            ep,
            &[
                "s3api",
                "put-object",
                "--bucket",
                "mail",
                "--key",
                "aoife@example.ie/m",
                "--body",
                f.to_str().unwrap(),
                "--content-type",
                "message/rfc822",
                "--metadata",
                "folder=INBOX",
            ],
            None,
        ),
        "put-object",
    );
    let head = ok(
        &aws(
            ep,
            &[
                "s3api",
                "head-object",
                "--bucket",
                "mail",
                "--key",
                "aoife@example.ie/m",
            ],
            None,
        ),
        "head-object",
    );
    let v: serde_json::Value = serde_json::from_str(&head).unwrap();
    assert_eq!(v["ContentLength"], 19);
    assert_eq!(v["ContentType"], "message/rfc822");
    assert_eq!(v["Metadata"]["folder"], "INBOX");
    let etag = v["ETag"].as_str().unwrap().trim_matches('"').to_owned();
    assert!(etag.starts_with("cx-"), "opaque etag {etag}");
    ok(
        &aws(
            ep,
            &[
                "s3api",
                "copy-object",
                "--bucket",
                "mail",
                "--key",
                "aoife@example.ie/copy",
                "--copy-source",
                "mail/aoife@example.ie/m",
            ],
            None,
        ),
        "copy-object",
    );
    let head = ok(
        &aws(
            ep,
            &[
                "s3api",
                "head-object",
                "--bucket",
                "mail",
                "--key",
                "aoife@example.ie/copy",
            ],
            None,
        ),
        "head copy",
    );
    let v: serde_json::Value = serde_json::from_str(&head).unwrap();
    assert_eq!(v["Metadata"]["folder"], "INBOX");
    let back = s.files.join("copyback");
    ok(
        &aws(
            ep,
            &[
                "s3",
                "cp",
                "s3://mail/aoife@example.ie/copy",
                back.to_str().unwrap(),
            ],
            None,
        ),
        "cp copy",
    );
    assert_eq!(std::fs::read(&back).unwrap(), b"hello with metadata");
    // Presigned GET through curl.
    let url = ok(
        &aws(
            ep,
            &[
                "s3",
                "presign",
                "s3://mail/aoife@example.ie/m",
                "--expires-in",
                "60",
            ],
            None,
        ),
        "presign",
    );
    let got = curl(&["-H", "Authorization-Unused: x", url.trim()]);
    assert_eq!(got.status, 200, "{:?}", String::from_utf8_lossy(&got.body));
    assert_eq!(got.body, b"hello with metadata");
    // Only ciphertext reached the store, and what is there opens with the SDK directly.
    let mut uploaded: Vec<_> = (0..sizes.len())
        .map(|i| s.files.join(format!("m{i}")))
        .collect();
    uploaded.retain(|f| std::fs::metadata(f).unwrap().len() > 0);
    uploaded.push(f.clone());
    s.assert_no_plaintext(
        &[
            "SECRET-MAIL-007",
            "hello with metadata",
            "message/rfc822",
            "INBOX\"",
        ],
        &uploaded,
    );
    s.assert_opens_from_store("mail", key, &marker_body(300_000, 7));
    s.assert_opens_from_store("mail", "aoife@example.ie/copy", b"hello with metadata");
    // rm, then the object is gone.
    ok(
        &aws(ep, &["s3", "rm", "s3://mail/aoife@example.ie/m"], None),
        "rm",
    );
    let gone = aws(
        ep,
        &[
            "s3api",
            "head-object",
            "--bucket",
            "mail",
            "--key",
            "aoife@example.ie/m",
        ],
        None,
    );
    assert!(!gone.status.success());
}

#[test]
fn bad_credentials_and_unrouted_keys_are_refused_and_nothing_is_written_s3s_fs() {
    refusals(StoreKind::S3sFs);
}

#[test]
fn bad_credentials_and_unrouted_keys_are_refused_and_nothing_is_written_garage() {
    refusals(StoreKind::Garage);
}

fn refusals(kind: StoreKind) {
    let s = S3Setup::start(kind);
    let ep = s.ep();
    make_bucket(ep, &s.store, "mail");
    let f = s.files.join("x");
    std::fs::write(&f, b"SECRET-NOT-WRITTEN").unwrap();
    let wrong = aws(
        ep,
        &[
            "s3",
            "cp",
            f.to_str().unwrap(),
            "s3://mail/aoife@example.ie/x",
        ],
        Some(("AKIACUSTODIATEST0001", "wrong-secret")),
    );
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("SignatureDoesNotMatch"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    let unknown = aws(
        ep,
        &[
            "s3",
            "cp",
            f.to_str().unwrap(),
            "s3://mail/aoife@example.ie/x",
        ],
        Some(("AKIAUNKNOWN", "whatever")),
    );
    assert!(!unknown.status.success());
    let unrouted = aws(
        ep,
        &["s3", "cp", f.to_str().unwrap(), "s3://mail/no-mailbox-here"],
        None,
    );
    assert!(!unrouted.status.success());
    assert!(
        String::from_utf8_lossy(&unrouted.stderr).contains("AccessDenied"),
        "{}",
        String::from_utf8_lossy(&unrouted.stderr)
    );
    let other_bucket = aws(ep, &["s3", "mb", "s3://unrouted"], None);
    assert!(!other_bucket.status.success());
    // A browser form upload (POST Object), unsigned: refused before any of its body is read
    // (s3s would read the form before checking a signature), and nothing is written.
    let form = std::process::Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "20",
        ])
        .args(["-F", "key=aoife@example.ie/form", "-F"])
        .arg(format!("file=@{}", f.display()))
        .arg(format!("http://{ep}/mail"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&form.stdout), "501");
    s.assert_no_plaintext(&["SECRET-NOT-WRITTEN"], std::slice::from_ref(&f));
    let ls = ok(
        &aws(ep, &["s3", "ls", "--recursive", "s3://mail/"], None),
        "ls",
    );
    assert!(ls.trim().is_empty(), "{ls}");
}

//! Unchanged S3 clients through the gateway's S3 front, each run against s3s-fs and against
//! Garage: boto3 (round trips, conditional and ranged GETs, download_fileobj, a paginated
//! listing of 2,500 keys, DeleteObjects), rclone (copy, check, cat with offsets, sync twice,
//! lsl) and awscli (sync twice, `rm --recursive`), all with objects under 8 MiB (single
//! PUTs); then multipart uploads: awscli with 8, 5 and 16 MiB parts, boto3 upload_fileobj
//! of 200 MiB on 10 threads, rclone with 5 MiB chunks. After each, the store's disk holds
//! none of the plaintext markers nor the MD5 of any test file, and (single-PUT objects) an
//! object read straight from the store opens with the SDK.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};

use custodia_tests::s3::{
    S3Setup, StoreKind, aws, aws_configured, make_bucket, ok, python, rclone, rclone_config,
};

fn marker_body(marker: &str, len: usize) -> Vec<u8> {
    marker
        .as_bytes()
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

/// Writes `n` small mail-like files (`SECRET-<tag>-<i>-` repeated, 0..~40 KiB) under `dir`,
/// some in a subfolder; their paths.
fn mail_dir(dir: &Path, tag: &str, n: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir.join("Sent")).unwrap();
    (0..n)
        .map(|i| {
            let sub = if i % 3 == 0 { "Sent/" } else { "" };
            let f = dir.join(format!("{sub}{i:03}.eml"));
            std::fs::write(
                &f,
                marker_body(&format!("SECRET-{tag}-{i:03}-"), i * 1_777 % 40_000),
            )
            .unwrap();
            f
        })
        .collect()
}

fn non_empty(files: &[PathBuf]) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|f| std::fs::metadata(f).unwrap().len() > 0)
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------- boto3

#[test]
fn boto3_round_trips_conditionals_and_lists_2500_keys_s3s_fs() {
    boto3_suite(StoreKind::S3sFs);
}

#[test]
fn boto3_round_trips_conditionals_and_lists_2500_keys_garage() {
    boto3_suite(StoreKind::Garage);
}

fn boto3_suite(kind: StoreKind) {
    let s = S3Setup::start(kind);
    let ep = s.ep();
    make_bucket(ep, &s.store, "mail");
    let small = marker_body("SECRET-BOTO-SMALL-", 5_000);
    let medium = marker_body("SECRET-BOTO-MEDIUM-", (3 << 20) + 12_345);
    std::fs::write(s.files.join("small.eml"), &small).unwrap();
    std::fs::write(s.files.join("medium.eml"), &medium).unwrap();
    let files = s.files.to_str().unwrap();
    let list_etags = match kind {
        StoreKind::S3sFs => "0",
        StoreKind::Garage => "1",
    };
    let env = [
        ("BUCKET", "mail"),
        ("PREFIX", "aoife@example.ie/boto3/"),
        ("FILES", files),
        ("LIST_ETAGS", list_etags),
    ];
    let out = ok(
        &python(
            "boto3_client.py",
            ep,
            &[&env[..], &[("MODE", "main")]].concat(),
        ),
        "boto3 client",
    );
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(summary["listed"], 2500, "{summary}");
    s.assert_no_plaintext(
        &["SECRET-BOTO-", "message/rfc822", "INBOX"],
        &[s.files.join("small.eml"), s.files.join("medium.eml")],
    );
    s.assert_opens_from_store("mail", summary["medium_key"].as_str().unwrap(), &medium);
    let list_key = summary["list_key"].as_str().unwrap();
    let stored = s.store.fetch_raw("mail", list_key);
    let opened = custodia_tests::s3::open_with_sdk(&s.world, "mail", list_key, &stored);
    assert_eq!(
        opened.len() as u64,
        summary["list_body_len"].as_u64().unwrap()
    );
    let out = ok(
        &python(
            "boto3_client.py",
            ep,
            &[&env[..], &[("MODE", "delete")]].concat(),
        ),
        "boto3 DeleteObjects",
    );
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(summary["deleted"], 2501, "{summary}");
}

/// An empty upload_fileobj and then another upload on the same connection, each within
/// seconds. The empty PUT (`Expect: 100-continue`, `Content-Length: 0`) is answered without
/// a `100 Continue` (hyper never reads the empty body); had the gateway kept that
/// connection open, botocore would parse the next 100-continue PUT's response with the stale
/// status and read it until the idle connection closed (about 60 s). The gateway closes
/// such connections.
#[test]
fn boto3_empty_put_then_another_put_on_one_connection_s3s_fs() {
    let s = S3Setup::start(StoreKind::S3sFs);
    let ep = s.ep();
    make_bucket(ep, &s.store, "mail");
    let out = ok(
        &python(
            "boto3_client.py",
            ep,
            &[
                ("BUCKET", "mail"),
                ("PREFIX", "aoife@example.ie/expect/"),
                ("MODE", "expect100"),
            ],
        ),
        "boto3 empty PUT, then PUT",
    );
    let times: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(times["after_empty"].as_f64().unwrap() < 10.0, "{times}");
}

// --------------------------------------------------------------------------------- rclone

#[test]
fn rclone_copy_check_cat_sync_and_lsl_s3s_fs() {
    rclone_suite(StoreKind::S3sFs);
}

#[test]
fn rclone_copy_check_cat_sync_and_lsl_garage() {
    rclone_suite(StoreKind::Garage);
}

/// Lines of rclone's `-v` log saying it transferred a file.
fn copied(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(": Copied ("))
        .map(str::to_owned)
        .collect()
}

fn rclone_suite(kind: StoreKind) {
    let s = S3Setup::start(kind);
    let ep = s.ep();
    make_bucket(ep, &s.store, "mail");
    let conf = rclone_config(&s.files.join("rclone"), ep);
    let local = s.files.join("maildir");
    let files = mail_dir(&local, "RCLONE", 24);
    let local_s = local.to_str().unwrap();
    // rclone first HEADs a remote path without a trailing slash, to see whether it names a
    // file. s3s-fs keeps keys as files, so that path is a directory there and it answers
    // 500 (real S3 and Garage: 404), which the gateway rightly passes on as 503: name it as
    // a directory on s3s-fs; keep the plain form on Garage.
    let remote = match kind {
        StoreKind::S3sFs => "gw:mail/aoife@example.ie/rclone/",
        StoreKind::Garage => "gw:mail/aoife@example.ie/rclone",
    };
    let file = |name: &str| format!("{}/{name}", remote.trim_end_matches('/'));
    let up = rclone(&conf, &["copy", "-v", local_s, remote]);
    ok(&up, "rclone copy");
    assert_eq!(
        copied(&up).len(),
        files.len(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    ok(&rclone(&conf, &["check", local_s, remote]), "rclone check");
    ok(
        &rclone(&conf, &["check", "--download", local_s, remote]),
        "rclone check --download",
    );
    // cat with offsets (Range reads through the gateway).
    let body = std::fs::read(&files[10]).unwrap();
    assert!(body.len() > 5_000);
    let cat = ok(
        &rclone(
            &conf,
            &[
                "cat",
                "--offset",
                "1000",
                "--count",
                "3000",
                &file("010.eml"),
            ],
        ),
        "rclone cat --offset --count",
    );
    assert_eq!(cat.as_bytes(), &body[1000..4000]);
    let tail = ok(
        &rclone(&conf, &["cat", "--offset", "-100", &file("010.eml")]),
        "rclone cat --offset -100",
    );
    assert_eq!(tail.as_bytes(), &body[body.len() - 100..]);
    // sync: a changed and a new file go up, a removed one is deleted; the second run is a
    // no-op.
    std::fs::write(&files[1], marker_body("SECRET-RCLONE-CHANGED-", 9_999)).unwrap();
    std::fs::write(
        local.join("new.eml"),
        marker_body("SECRET-RCLONE-NEW-", 777),
    )
    .unwrap();
    std::fs::remove_file(&files[2]).unwrap();
    let first = rclone(&conf, &["sync", "-v", local_s, remote]);
    ok(&first, "rclone sync");
    assert_eq!(
        copied(&first).len(),
        2,
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = rclone(&conf, &["sync", "-v", local_s, remote]);
    ok(&second, "rclone sync again");
    assert!(
        copied(&second).is_empty(),
        "the second sync transferred: {:?}",
        copied(&second)
    );
    assert!(
        !String::from_utf8_lossy(&second.stderr).contains("Deleted"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    ok(
        &rclone(&conf, &["check", "--download", local_s, remote]),
        "rclone check after sync",
    );
    // lsl (recursive): every local file with its exact size, nothing else.
    let lsl = ok(&rclone(&conf, &["lsl", remote]), "rclone lsl");
    let mut listed: Vec<(String, u64)> = lsl
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            let size = w.next().unwrap().parse().unwrap();
            (w.last().unwrap().to_owned(), size)
        })
        .collect();
    listed.sort();
    let mut want: Vec<(String, u64)> = custodia_tests::gateway::files_under(&local)
        .iter()
        .map(|f| {
            (
                f.strip_prefix(&local).unwrap().to_str().unwrap().to_owned(),
                std::fs::metadata(f).unwrap().len(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(listed, want, "{lsl}");
    let mut uploaded = non_empty(&files[3..]);
    uploaded.push(files[1].clone());
    uploaded.push(local.join("new.eml"));
    s.assert_no_plaintext(&["SECRET-RCLONE-"], &uploaded);
    s.assert_opens_from_store(
        "mail",
        "aoife@example.ie/rclone/Sent/003.eml",
        &std::fs::read(local.join("Sent/003.eml")).unwrap(),
    );
}

// --------------------------------------------------------------------------------- awscli

#[test]
fn awscli_sync_twice_and_rm_recursive_s3s_fs() {
    awscli_sync_suite(StoreKind::S3sFs);
}

#[test]
fn awscli_sync_twice_and_rm_recursive_garage() {
    awscli_sync_suite(StoreKind::Garage);
}

fn awscli_sync_suite(kind: StoreKind) {
    let s = S3Setup::start(kind);
    let ep = s.ep();
    make_bucket(ep, &s.store, "mail");
    let local = s.files.join("maildir");
    let files = mail_dir(&local, "AWSSYNC", 30);
    let local_s = local.to_str().unwrap();
    let dest = "s3://mail/aoife@example.ie/sync/";
    let uploads = |out: &str| out.lines().filter(|l| l.starts_with("upload:")).count();
    let sync = |from: &str, to: &str| aws(ep, &["s3", "sync", "--no-progress", from, to], None);
    // The empty file goes up on its own first. botocore sends `Expect: 100-continue` on
    // every PUT; for an empty body, hyper (the gateway's server, like s3s-fs's and Garage's)
    // answers 200 without a 100, and botocore then keeps that status for the next
    // 100-continue request on the same connection and reads its response until the server
    // closes the idle connection: a 60 s stall per empty file in a sync (see
    // `boto3_empty_put_then_another_put_on_one_connection_s3s_fs`).
    assert_eq!(std::fs::metadata(&files[0]).unwrap().len(), 0);
    let empty = format!("{dest}Sent/000.eml");
    ok(
        &aws(ep, &["s3", "cp", files[0].to_str().unwrap(), &empty], None),
        "cp empty",
    );
    let first = ok(&sync(local_s, dest), "sync");
    assert_eq!(uploads(&first), files.len() - 1, "{first}");
    let second = ok(&sync(local_s, dest), "sync again");
    assert_eq!(uploads(&second), 0, "the second sync uploaded: {second}");
    // Sizes as listed, and a sync down reproduces every file.
    let ls = ok(&aws(ep, &["s3", "ls", "--recursive", dest], None), "ls");
    assert_eq!(ls.lines().count(), files.len(), "{ls}");
    for f in &files {
        let rel = f.strip_prefix(&local).unwrap().to_str().unwrap();
        let line = ls
            .lines()
            .find(|l| l.ends_with(&format!("sync/{rel}")))
            .unwrap_or_else(|| panic!("{rel} not listed: {ls}"));
        let size: u64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
        assert_eq!(size, std::fs::metadata(f).unwrap().len(), "{rel}");
    }
    let down = s.files.join("down");
    ok(&sync(dest, down.to_str().unwrap()), "sync down");
    for f in &files {
        let rel = f.strip_prefix(&local).unwrap();
        assert_eq!(
            std::fs::read(down.join(rel)).unwrap(),
            std::fs::read(f).unwrap(),
            "{}",
            rel.display()
        );
    }
    s.assert_no_plaintext(&["SECRET-AWSSYNC-"], &non_empty(&files));
    s.assert_opens_from_store(
        "mail",
        "aoife@example.ie/sync/007.eml",
        &std::fs::read(&files[7]).unwrap(),
    );
    // DeleteObjects.
    let rm = ok(
        &aws(ep, &["s3", "rm", "--recursive", dest], None),
        "rm --recursive",
    );
    assert_eq!(rm.matches("delete: s3://").count(), files.len(), "{rm}");
    let left = ok(
        &aws(
            ep,
            &[
                "s3api",
                "list-objects-v2",
                "--bucket",
                "mail",
                "--prefix",
                "aoife@example.ie/sync/",
            ],
            None,
        ),
        "list after rm",
    );
    let left: serde_json::Value = serde_json::from_str(&left).unwrap();
    assert!(left.get("Contents").is_none(), "left after rm: {left}");
}

// ------------------------------------------------------------------------------ multipart

/// Writes `len` bytes to `path`: 4 KiB blocks, each opening with `SECRET-MP-<tag>-<block>-`
/// (so a stored plaintext block, or blocks out of order, would show) and filled with a
/// pattern.
fn write_big(path: &Path, tag: &str, len: usize) {
    use std::io::Write as _;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut written = 0;
    let mut block = 0usize;
    while written < len {
        let mut b = format!("SECRET-MP-{tag}-{block:06}-").into_bytes();
        b.extend((b.len()..4096).map(|i| u8::try_from((i * 31 + block) % 251).unwrap()));
        let n = b.len().min(len - written);
        w.write_all(&b[..n]).unwrap();
        written += n;
        block += 1;
    }
    w.flush().unwrap();
}

/// The store's own ETag of `bucket`/`key` (HEAD with the store's keys), if it gives one.
fn store_etag(s: &S3Setup, key: &str) -> Option<String> {
    let out = aws(
        s.store.addr(),
        &["s3api", "head-object", "--bucket", "mail", "--key", key],
        Some(s.store.keys()),
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&out, "head from the store")).unwrap();
    v["ETag"].as_str().map(|e| e.trim_matches('"').to_owned())
}

#[test]
fn awscli_multipart_default_5mib_and_16mib_parts_s3s_fs() {
    awscli_multipart(StoreKind::S3sFs);
}

#[test]
fn awscli_multipart_default_5mib_and_16mib_parts_garage() {
    awscli_multipart(StoreKind::Garage);
}

fn awscli_multipart(kind: StoreKind) {
    let s = S3Setup::start(kind);
    let ep = s.ep();
    make_bucket(ep, &s.store, "mail");
    let len = (20 << 20) + 12_345;
    let big = s.files.join("big.bin");
    write_big(&big, "AWSCLI", len);
    let data = std::fs::read(&big).unwrap();
    // (name, awscli config, part size, parts)
    let cases = [
        ("default", None, 8 << 20, 3),
        ("5mib", Some("5MB"), 5 << 20, 5),
        ("16mib", Some("16MB"), 16 << 20, 2),
    ];
    for (name, chunk, part, parts) in cases {
        let config = chunk.map(|c| {
            let p = s.files.join(format!("aws-{name}.conf"));
            std::fs::write(
                &p,
                format!("[default]\ns3 =\n  multipart_chunksize = {c}\n"),
            )
            .unwrap();
            p
        });
        let key = format!("aoife@example.ie/mp/{name}.bin");
        let url = format!("s3://mail/{key}");
        ok(
            &aws_configured(
                ep,
                &["s3", "cp", "--no-progress", big.to_str().unwrap(), &url],
                None,
                config.as_deref(),
            ),
            &format!("cp up, {name} parts"),
        );
        if let Some(etag) = store_etag(&s, &key) {
            assert!(
                etag.ends_with(&format!("-{parts}")),
                "{name}: the store's ETag {etag} should say {parts} parts"
            );
        }
        let head: serde_json::Value = serde_json::from_str(&ok(
            &aws(
                ep,
                &["s3api", "head-object", "--bucket", "mail", "--key", &key],
                None,
            ),
            "head",
        ))
        .unwrap();
        assert_eq!(head["ContentLength"], len, "{name}");
        let back = s.files.join(format!("back-{name}"));
        ok(
            &aws_configured(
                ep,
                &["s3", "cp", "--no-progress", &url, back.to_str().unwrap()],
                None,
                config.as_deref(),
            ),
            &format!("cp down, {name}"),
        );
        assert!(std::fs::read(&back).unwrap() == data, "{name}: round trip");
        // A range across the first part boundary.
        let range = s.files.join(format!("range-{name}"));
        ok(
            &aws(
                ep,
                &[
                    "s3api",
                    "get-object",
                    "--bucket",
                    "mail",
                    "--key",
                    &key,
                    "--range",
                    &format!("bytes={}-{}", part - 100, part + 99),
                    range.to_str().unwrap(),
                ],
                None,
            ),
            "ranged get",
        );
        assert!(
            std::fs::read(&range).unwrap() == data[part - 100..part + 100],
            "{name}: range across the part boundary"
        );
    }
    let ls = ok(
        &aws(
            ep,
            &["s3", "ls", "--recursive", "s3://mail/aoife@example.ie/mp/"],
            None,
        ),
        "ls",
    );
    assert_eq!(ls.lines().count(), cases.len(), "{ls}");
    for l in ls.lines() {
        let size: usize = l.split_whitespace().nth(2).unwrap().parse().unwrap();
        assert_eq!(size, len, "{l}");
    }
    s.assert_no_plaintext(&["SECRET-MP-"], &[big]);
}

#[test]
fn boto3_upload_fileobj_200mib_with_10_threads_s3s_fs() {
    boto3_multipart(StoreKind::S3sFs);
}

#[test]
fn boto3_upload_fileobj_200mib_with_10_threads_garage() {
    boto3_multipart(StoreKind::Garage);
}

fn boto3_multipart(kind: StoreKind) {
    let s = S3Setup::start(kind);
    let ep = s.ep();
    make_bucket(ep, &s.store, "mail");
    let big = s.files.join("big.bin");
    write_big(&big, "BOTO", 200 << 20);
    let out = ok(
        &python(
            "boto3_client.py",
            ep,
            &[
                ("BUCKET", "mail"),
                ("PREFIX", "aoife@example.ie/boto3-mp/"),
                ("BIG", big.to_str().unwrap()),
                ("MODE", "multipart"),
            ],
        ),
        "boto3 multipart",
    );
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(summary["size"], 200 << 20, "{summary}");
    if let Some(etag) = store_etag(&s, summary["key"].as_str().unwrap()) {
        assert!(
            etag.ends_with("-25"),
            "25 parts of 8 MiB, store ETag {etag}"
        );
    }
    s.assert_no_plaintext(&["SECRET-MP-"], &[big]);
}

#[test]
fn rclone_multipart_5mib_chunks_s3s_fs() {
    rclone_multipart(StoreKind::S3sFs);
}

#[test]
fn rclone_multipart_5mib_chunks_garage() {
    rclone_multipart(StoreKind::Garage);
}

fn rclone_multipart(kind: StoreKind) {
    let s = S3Setup::start(kind);
    let ep = s.ep();
    make_bucket(ep, &s.store, "mail");
    let conf = rclone_config(&s.files.join("rclone"), ep);
    let local = s.files.join("big");
    std::fs::create_dir_all(&local).unwrap();
    let big = local.join("big.bin");
    let len = (20 << 20) + 777;
    write_big(&big, "RCLONE", len);
    // A directory remote with a trailing slash: see rclone_suite.
    let remote = "gw:mail/aoife@example.ie/rclone-mp/";
    let up = rclone(
        &conf,
        &[
            "copy",
            "-v",
            "--s3-upload-cutoff",
            "5M",
            "--s3-chunk-size",
            "5M",
            local.to_str().unwrap(),
            remote,
        ],
    );
    ok(&up, "rclone copy (multipart)");
    let key = "aoife@example.ie/rclone-mp/big.bin";
    if let Some(etag) = store_etag(&s, key) {
        assert!(etag.ends_with("-5"), "5 parts of 5 MiB, store ETag {etag}");
    }
    ok(
        &rclone(
            &conf,
            &["check", "--download", local.to_str().unwrap(), remote],
        ),
        "rclone check --download",
    );
    let data = std::fs::read(&big).unwrap();
    let at = (5 << 20) - 1000;
    let cat = rclone(
        &conf,
        &[
            "cat",
            "--offset",
            &at.to_string(),
            "--count",
            "3000",
            &format!("{remote}big.bin"),
        ],
    );
    ok(&cat, "rclone cat across a part boundary");
    assert!(cat.stdout == data[at..at + 3000], "range across parts");
    let lsl = ok(&rclone(&conf, &["lsl", remote]), "rclone lsl");
    let size: usize = lsl.split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(size, len, "{lsl}");
    // rclone puts the file's MD5 into the object's metadata on multipart uploads: sealed.
    s.assert_no_plaintext(&["SECRET-MP-", "md5chksum"], &[big]);
}

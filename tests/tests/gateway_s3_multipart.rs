//! Multipart uploads through the S3 front with unchanged awscli: default 8 MiB parts and
//! other part sizes, exact sizes in listings and HEAD, ranges across part boundaries, and
//! the store-side attacks on parts (drop, reorder, duplicate, foreign layout) all failing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use custodia_tests::gateway::{GatewayProc, files_under, store_contains};
use custodia_tests::s3::{S3sFs, aws, ok, s3_gateway_config, try_open_with_sdk};
use custodia_tests::world::world;

fn body(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let block = i / 4096;
            if i % 4096 < 16 {
                b"MULTIPART-SECRET"[i % 16]
            } else {
                u8::try_from((block * 31 + i) % 251).unwrap()
            }
        })
        .collect()
}

#[test]
fn awscli_multipart_round_trips_with_exact_sizes_and_ranges() {
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let store = S3sFs::start(&tmp.path().join("s3"));
    let gwdir = tmp.path().join("gw");
    let gw = GatewayProc::start(&gwdir, &s3_gateway_config(&w, &w.gw_ie, store.addr, &gwdir));
    let ep = gw.s3.unwrap();
    ok(&aws(ep, &["s3", "mb", "s3://mail"], None), "mb");
    let n = 20 * 1024 * 1024 + 12_345;
    let data = body(n);
    let f = tmp.path().join("big.eml");
    std::fs::write(&f, &data).unwrap();
    ok(
        &aws(
            ep,
            &[
                "s3",
                "cp",
                f.to_str().unwrap(),
                "s3://mail/aoife@example.ie/big.eml",
                "--metadata",
                "folder=archive",
            ],
            None,
        ),
        "cp up (multipart)",
    );
    // The stored object opened as one envelope would be its first part alone (8 MiB of a
    // 20 MiB object, "successfully"): the SDK's whole-object opens refuse a multipart record.
    let stored = std::fs::read(store.root.join("mail/aoife@example.ie/big.eml")).unwrap();
    let alone = try_open_with_sdk(&w, "mail", "aoife@example.ie/big.eml", &stored);
    assert!(
        matches!(alone, Err(custodia::Error::MultipartRecord { .. })),
        "{:?}",
        alone.map(|p| p.len())
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
                "aoife@example.ie/big.eml",
            ],
            None,
        ),
        "head",
    );
    let v: serde_json::Value = serde_json::from_str(&head).unwrap();
    assert_eq!(v["ContentLength"].as_u64().unwrap(), n as u64);
    assert_eq!(v["Metadata"]["folder"], "archive");
    let ls = ok(
        &aws(ep, &["s3", "ls", "s3://mail/aoife@example.ie/"], None),
        "ls",
    );
    assert!(ls.contains(&format!(" {n} big.eml")), "{ls}");
    let back = tmp.path().join("back");
    ok(
        &aws(
            ep,
            &[
                "s3",
                "cp",
                "s3://mail/aoife@example.ie/big.eml",
                back.to_str().unwrap(),
            ],
            None,
        ),
        "cp down",
    );
    assert!(std::fs::read(&back).unwrap() == data, "round trip");
    // A range across the first part boundary (8 MiB).
    let out = tmp.path().join("range");
    let a = 8 * 1024 * 1024 - 100;
    let b = 8 * 1024 * 1024 + 100;
    ok(
        &aws(
            ep,
            &[
                "s3api",
                "get-object",
                "--bucket",
                "mail",
                "--key",
                "aoife@example.ie/big.eml",
                "--range",
                &format!("bytes={a}-{b}"),
                out.to_str().unwrap(),
            ],
            None,
        ),
        "ranged get",
    );
    assert!(std::fs::read(&out).unwrap() == data[a..=b]);
    assert!(!store_contains(&store.root, b"MULTIPART-SECRET"));
    assert!(!store_contains(&store.root, b"archive"));
    // The layout record is hidden from listings and refused to clients.
    let all = ok(
        &aws(ep, &["s3", "ls", "--recursive", "s3://mail/"], None),
        "ls all",
    );
    assert!(!all.contains(".custodia"), "{all}");
    let files = files_under(&store.root);
    assert!(
        files
            .iter()
            .any(|p| p.to_string_lossy().contains(".custodia")),
        "{files:?}"
    );
    // Other part sizes.
    let cfg = tmp.path().join("awsconfig");
    std::fs::write(
        &cfg,
        "[default]\ns3 =\n  multipart_chunksize = 5MB\n  multipart_threshold = 5MB\n",
    )
    .unwrap();
    let out5 = std::process::Command::new("aws")
        .args([
            "--endpoint-url",
            &format!("http://{ep}"),
            "s3",
            "cp",
            f.to_str().unwrap(),
            "s3://mail/aoife@example.ie/big5.eml",
        ])
        .env("AWS_ACCESS_KEY_ID", custodia_tests::s3::CLIENT_AK)
        .env("AWS_SECRET_ACCESS_KEY", custodia_tests::s3::CLIENT_SK)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", &cfg)
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .unwrap();
    ok(&out5, "cp with 5 MiB parts");
    let back5 = tmp.path().join("back5");
    ok(
        &aws(
            ep,
            &[
                "s3",
                "cp",
                "s3://mail/aoife@example.ie/big5.eml",
                back5.to_str().unwrap(),
            ],
            None,
        ),
        "cp down 5",
    );
    assert!(std::fs::read(&back5).unwrap() == data);

    // Overwritten by a single PUT: the multipart object's layout record goes (off the PUT's
    // path, so polled), and listings give the new object's size.
    let small = tmp.path().join("small.eml");
    std::fs::write(&small, b"Subject: now small\n\nreplaced").unwrap();
    ok(
        &aws(
            ep,
            &[
                "s3",
                "cp",
                small.to_str().unwrap(),
                "s3://mail/aoife@example.ie/big5.eml",
            ],
            None,
        ),
        "overwrite with a single PUT",
    );
    let layout_of_big5 = || {
        files_under(&store.root.join("mail/.custodia/layout"))
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("big5.eml"))
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while layout_of_big5() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        layout_of_big5(),
        0,
        "the replaced object's layout record stayed"
    );
    let listed = ok(
        &aws(
            ep,
            &[
                "s3api",
                "list-objects-v2",
                "--bucket",
                "mail",
                "--prefix",
                "aoife@example.ie/big5",
            ],
            None,
        ),
        "list",
    );
    let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(v["Contents"][0]["Size"], 28, "{v}");
    // The other multipart object kept its layout and still reads whole.
    ok(
        &aws(
            ep,
            &[
                "s3",
                "cp",
                "s3://mail/aoife@example.ie/big.eml",
                back.to_str().unwrap(),
            ],
            None,
        ),
        "cp down after",
    );
    assert!(std::fs::read(&back).unwrap() == data);
}

/// Keys of every object in the store's `mail` bucket, as the store lists them.
fn store_keys(store: &custodia_tests::s3::Store) -> Vec<String> {
    let out = aws(
        store.addr(),
        &["s3api", "list-objects-v2", "--bucket", "mail"],
        Some(store.keys()),
    );
    let text = ok(&out, "list at the store");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["Contents"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| o["Key"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// On Garage, which refuses to delete a bucket that holds objects (s3s-fs deletes it whole).
#[test]
fn a_bucket_holding_only_the_gateways_records_can_be_deleted() {
    let s = custodia_tests::s3::S3Setup::start(custodia_tests::s3::StoreKind::Garage);
    let ep = s.ep();
    let key = "aoife@example.ie/x.eml";
    let created = ok(
        &aws(
            ep,
            &[
                "s3api",
                "create-multipart-upload",
                "--bucket",
                "mail",
                "--key",
                key,
            ],
            None,
        ),
        "create",
    );
    let id = serde_json::from_str::<serde_json::Value>(&created).unwrap()["UploadId"]
        .as_str()
        .unwrap()
        .to_owned();
    // Aborted at the store (a gateway that crashed): the gateway's metadata record stays.
    ok(
        &aws(
            s.store.addr(),
            &[
                "s3api",
                "abort-multipart-upload",
                "--bucket",
                "mail",
                "--key",
                key,
                "--upload-id",
                &id,
            ],
            Some(s.store.keys()),
        ),
        "abort at the store",
    );
    assert!(
        store_keys(&s.store)
            .iter()
            .any(|k| k.starts_with(".custodia/"))
    );
    let listed = ok(&aws(ep, &["s3", "ls", "s3://mail/"], None), "ls");
    assert!(listed.trim().is_empty(), "{listed}");
    // A bucket with a client's object is not emptied: the store refuses, nothing is removed.
    let f = s.files.join("m.eml");
    std::fs::write(&f, b"hello").unwrap();
    ok(
        &aws(
            ep,
            &[
                "s3",
                "cp",
                f.to_str().unwrap(),
                "s3://mail/aoife@example.ie/m.eml",
            ],
            None,
        ),
        "cp",
    );
    assert!(!aws(ep, &["s3", "rb", "s3://mail"], None).status.success());
    assert!(
        store_keys(&s.store)
            .iter()
            .any(|k| k.starts_with(".custodia/"))
    );
    ok(
        &aws(ep, &["s3", "rm", "s3://mail/aoife@example.ie/m.eml"], None),
        "rm",
    );
    // Empty as clients see it: the bucket goes, with the gateway's records.
    ok(&aws(ep, &["s3", "rb", "s3://mail"], None), "rb");
    let gone = aws(
        s.store.addr(),
        &["s3api", "head-bucket", "--bucket", "mail"],
        Some(s.store.keys()),
    );
    assert!(!gone.status.success(), "the bucket is still there");
}

const MIB: usize = 1024 * 1024;
/// Stores refuse non-final parts under 5 MiB (S3's minimum).
const PART: usize = 5 * MIB;

struct Mp {
    _w: custodia_tests::world::World,
    tmp: tempfile::TempDir,
    store: S3sFs,
    _gw: GatewayProc,
    ep: std::net::SocketAddr,
}

fn mp_setup() -> Mp {
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let store = S3sFs::start(&tmp.path().join("s3"));
    let gwdir = tmp.path().join("gw");
    let gw = GatewayProc::start(&gwdir, &s3_gateway_config(&w, &w.gw_ie, store.addr, &gwdir));
    let ep = gw.s3.unwrap();
    ok(&aws(ep, &["s3", "mb", "s3://mail"], None), "mb");
    Mp {
        _w: w,
        tmp,
        store,
        _gw: gw,
        ep,
    }
}

impl Mp {
    fn api(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["s3api"];
        all.extend_from_slice(args);
        aws(self.ep, &all, None)
    }

    fn json(&self, args: &[&str], what: &str) -> serde_json::Value {
        let out = ok(&self.api(args), what);
        if out.trim().is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_str(&out).unwrap()
    }

    fn file(&self, name: &str, data: &[u8]) -> String {
        let p = self.tmp.path().join(name);
        std::fs::write(&p, data).unwrap();
        p.to_str().unwrap().to_owned()
    }

    fn create(&self, key: &str) -> String {
        let v = self.json(
            &["create-multipart-upload", "--bucket", "mail", "--key", key],
            "create",
        );
        v["UploadId"].as_str().unwrap().to_owned()
    }

    fn part(&self, key: &str, id: &str, n: u32, data: &[u8]) -> String {
        let f = self.file(&format!("part-{n}"), data);
        let v = self.json(
            &[
                "upload-part",
                "--bucket",
                "mail",
                "--key",
                key,
                "--upload-id",
                id,
                "--part-number",
                &n.to_string(),
                "--body",
                &f,
            ],
            "upload-part",
        );
        v["ETag"].as_str().unwrap().to_owned()
    }

    fn complete(&self, key: &str, id: &str, parts: &[(u32, &str)]) -> std::process::Output {
        let list: Vec<serde_json::Value> = parts
            .iter()
            .map(|(n, e)| serde_json::json!({"PartNumber": n, "ETag": e}))
            .collect();
        let doc = serde_json::json!({ "Parts": list }).to_string();
        let f = self.file("complete.json", doc.as_bytes());
        self.api(&[
            "complete-multipart-upload",
            "--bucket",
            "mail",
            "--key",
            key,
            "--upload-id",
            id,
            "--multipart-upload",
            &format!("file://{f}"),
        ])
    }

    fn download(&self, key: &str) -> Option<Vec<u8>> {
        let out = self.tmp.path().join("download");
        let _ = std::fs::remove_file(&out);
        let r = aws(
            self.ep,
            &[
                "s3",
                "cp",
                &format!("s3://mail/{key}"),
                out.to_str().unwrap(),
            ],
            None,
        );
        r.status.success().then(|| std::fs::read(&out).unwrap())
    }

    /// `get-object --range spec` of `key` into the file `name`: the output and the file.
    fn range(
        &self,
        key: &str,
        spec: &str,
        name: &str,
    ) -> (std::process::Output, std::path::PathBuf) {
        let out = self.tmp.path().join(name);
        let r = self.api(&[
            "get-object",
            "--bucket",
            "mail",
            "--key",
            key,
            "--range",
            spec,
            out.to_str().unwrap(),
        ]);
        (r, out)
    }

    fn stored(&self, key: &str) -> std::path::PathBuf {
        self.store.root.join("mail").join(key)
    }
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn parts_resent_resumed_aborted_and_bad_completions() {
    let m = mp_setup();
    let key = "aoife@example.ie/mp.eml";
    let p1 = body(PART);
    let p2 = vec![b'B'; PART];
    let p3 = b"the last part".to_vec();
    let id = m.create(key);
    let e1 = m.part(key, &id, 1, &p1);
    // Part 2 sent twice with the same bytes: sealed afresh each time (no key or nonce reuse).
    let _ = m.part(key, &id, 2, &p2);
    let first: Vec<Vec<u8>> = files_under(&m.store.root)
        .iter()
        .filter(|p| std::fs::metadata(p).unwrap().len() > PART as u64)
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let e2 = m.part(key, &id, 2, &p2);
    let second: Vec<Vec<u8>> = files_under(&m.store.root)
        .iter()
        .filter(|p| std::fs::metadata(p).unwrap().len() > PART as u64)
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    // Same plaintext, sent again: had a key and nonce been reused, the stored part would be
    // byte-for-byte the same. Exactly one stored part (the re-sent one) changed.
    assert_eq!(first.len(), second.len());
    let changed = second.iter().filter(|b| !first.contains(b)).count();
    assert_eq!(changed, 1, "a re-sent part must be sealed with fresh keys");
    assert!(!store_contains(&m.store.root, b"BBBBBBBBBBBBBBBB"));
    // Resume: list the parts uploaded so far (plaintext sizes), then finish.
    let parts = m.json(
        &[
            "list-parts",
            "--bucket",
            "mail",
            "--key",
            key,
            "--upload-id",
            &id,
        ],
        "list-parts",
    );
    let sizes: Vec<u64> = parts["Parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, vec![PART as u64, PART as u64]);
    let e3 = m.part(key, &id, 3, &p3);
    // A gap, a wrong order, a wrong ETag: clear errors, nothing completed.
    let gap = m.complete(key, &id, &[(1, &e1), (3, &e3)]);
    assert!(!gap.status.success());
    assert!(
        stderr(&gap).contains("InvalidPartOrder") || stderr(&gap).contains("without gaps"),
        "{}",
        stderr(&gap)
    );
    let order = m.complete(key, &id, &[(2, &e2), (1, &e1), (3, &e3)]);
    assert!(!order.status.success());
    let wrong = m.complete(key, &id, &[(1, &e2), (2, &e2), (3, &e3)]);
    assert!(!wrong.status.success(), "a part's ETag must match");
    assert!(m.download(key).is_none());
    ok(
        &m.complete(key, &id, &[(1, &e1), (2, &e2), (3, &e3)]),
        "complete",
    );
    let mut want = p1.clone();
    want.extend_from_slice(&p2);
    want.extend_from_slice(&p3);
    assert!(m.download(key) == Some(want.clone()), "completed object");
    // A completion the store refuses (parts under its 5 MiB minimum, which the gateway's own
    // checks let through) over the same key, with the same part count: the layout record it
    // wrote is taken back, so the object the key holds still reads whole; on a fresh key it
    // leaves no record behind.
    let small = body(128 * 1024);
    for k in [key, "aoife@example.ie/refused.eml"] {
        let id = m.create(k);
        let g1 = m.part(k, &id, 1, &small);
        let g2 = m.part(k, &id, 2, &small);
        let g3 = m.part(k, &id, 3, b"end");
        let refused = m.complete(k, &id, &[(1, &g1), (2, &g2), (3, &g3)]);
        assert!(
            !refused.status.success(),
            "the store accepted 128 KiB parts"
        );
    }
    assert!(m.download(key) == Some(want), "the object lost its layout");
    assert!(
        files_under(&m.store.root.join("mail/.custodia/layout"))
            .iter()
            .all(|p| !p.to_string_lossy().contains("refused.eml")),
        "a refused completion left its layout record"
    );
    // Non-uniform part sizes are refused with a clear error.
    let key2 = "aoife@example.ie/uneven.eml";
    let id2 = m.create(key2);
    let f1 = m.part(key2, &id2, 1, &body(PART + 65_536));
    let f2 = m.part(key2, &id2, 2, &body(PART));
    let f3 = m.part(key2, &id2, 3, b"x");
    let uneven = m.complete(key2, &id2, &[(1, &f1), (2, &f2), (3, &f3)]);
    assert!(!uneven.status.success());
    assert!(stderr(&uneven).contains("one size"), "{}", stderr(&uneven));
    // Abort: the upload is gone, its parts can no longer be sent.
    ok(
        &m.api(&[
            "abort-multipart-upload",
            "--bucket",
            "mail",
            "--key",
            key2,
            "--upload-id",
            &id2,
        ]),
        "abort",
    );
    // s3s-fs does not implement ListMultipartUploads: the gateway says so (501), it does not
    // pretend; on stores that do, the aborted upload is gone.
    let listed = m.api(&["list-multipart-uploads", "--bucket", "mail"]);
    if listed.status.success() {
        let uploads: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap_or_default();
        assert!(
            uploads["Uploads"]
                .as_array()
                .is_none_or(|u| u.iter().all(|x| x["UploadId"] != id2.as_str())),
            "{uploads}"
        );
    } else {
        assert!(
            stderr(&listed).contains("NotImplemented"),
            "{}",
            stderr(&listed)
        );
    }
    let f = m.file("late", b"late");
    let late = m.api(&[
        "upload-part",
        "--bucket",
        "mail",
        "--key",
        key2,
        "--upload-id",
        &id2,
        "--part-number",
        "4",
        "--body",
        &f,
    ]);
    assert!(!late.status.success());
}

#[test]
fn store_side_part_attacks_fail() {
    let m = mp_setup();
    let profile = custodia_envelope::Profile::DEFAULT;
    let full = usize::try_from(profile.sealed_len(PART as u64).unwrap()).unwrap();
    let parts = [
        body(PART),
        vec![b'C'; PART],
        b"tail of the message".to_vec(),
    ];
    let upload = |key: &str| {
        let id = m.create(key);
        let etags: Vec<String> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| m.part(key, &id, u32::try_from(i + 1).unwrap(), p))
            .collect();
        let list: Vec<(u32, &str)> = etags
            .iter()
            .enumerate()
            .map(|(i, e)| (u32::try_from(i + 1).unwrap(), e.as_str()))
            .collect();
        ok(&m.complete(key, &id, &list), "complete");
    };
    let key = "aoife@example.ie/victim.eml";
    upload(key);
    upload("aoife@example.ie/other.eml");
    let original = std::fs::read(m.stored(key)).unwrap();
    assert_eq!(
        original.len(),
        2 * full + usize::try_from(profile.sealed_len(19).unwrap()).unwrap()
    );
    let mut whole = parts[0].clone();
    whole.extend_from_slice(&parts[1]);
    whole.extend_from_slice(&parts[2]);
    assert!(m.download(key) == Some(whole.clone()));
    let attacks: Vec<(&str, Vec<u8>)> = vec![
        (
            "drop part 2",
            [&original[..full], &original[2 * full..]].concat(),
        ),
        (
            "swap parts 1 and 2",
            [
                &original[full..2 * full],
                &original[..full],
                &original[2 * full..],
            ]
            .concat(),
        ),
        (
            "duplicate part 1",
            [&original[..full], &original[..full], &original[2 * full..]].concat(),
        ),
        ("drop the last part", original[..2 * full].to_vec()),
        (
            "truncate the last part",
            original[..original.len() - 5].to_vec(),
        ),
        ("flip a bit in part 3", {
            let mut b = original.clone();
            let i = b.len() - 3;
            b[i] ^= 1;
            b
        }),
        ("append bytes", [&original[..], b"extra"].concat()),
    ];
    for (what, bytes) in attacks {
        std::fs::write(m.stored(key), &bytes).unwrap();
        let got = m.download(key);
        assert!(
            got.is_none(),
            "{what}: served {:?} bytes",
            got.map(|g| g.len())
        );
        // A range inside part 2 is still served when only part 3 was damaged; every change
        // of layout or of part 2 fails it.
        let (range, out) = m.range(key, &format!("bytes={}-{}", PART, PART + 10), "r");
        if what == "flip a bit in part 3" {
            ok(&range, "range in an intact part");
            assert_eq!(std::fs::read(&out).unwrap(), parts[1][..=10]);
        } else {
            assert!(!range.status.success(), "{what}: a range was served");
        }
    }
    // A part swapped in from another multipart object (same key name binding, other upload).
    let other = std::fs::read(m.stored("aoife@example.ie/other.eml")).unwrap();
    std::fs::write(
        m.stored(key),
        [
            &original[..full],
            &other[full..2 * full],
            &original[2 * full..],
        ]
        .concat(),
    )
    .unwrap();
    assert!(
        m.download(key).is_none(),
        "a part of another upload was served"
    );
    // The layout record of another object put in place of this one's.
    std::fs::write(m.stored(key), &original).unwrap();
    assert!(m.download(key).is_some());
    // Part 2 re-sealed by whoever holds the store, with the public key alone, under part 2's
    // genuine object id and context (an object id is whatever the sealer draws), the
    // genuine layout untouched: its own layout key fails part 2's tag.
    let upload_id = part_header(&original, 0)
        .context()
        .get("upload")
        .unwrap()
        .to_owned();
    let resealed = reseal_under(
        &m,
        key,
        &upload_id,
        2,
        *part_header(&original, full).object_id(),
        &vec![b'X'; PART],
    )
    .0;
    std::fs::write(
        m.stored(key),
        [&original[..full], &resealed[..], &original[2 * full..]].concat(),
    )
    .unwrap();
    assert!(
        m.download(key).is_none(),
        "a part re-sealed under its id was served"
    );
    let (range, _) = m.range(key, &format!("bytes={}-{}", PART, PART + 10), "resealed");
    assert!(
        !range.status.success(),
        "a range of a re-sealed part was served"
    );
    std::fs::write(m.stored(key), &original).unwrap();
    assert!(m.download(key).is_some());
    let layouts: Vec<std::path::PathBuf> =
        files_under(&m.store.root.join("mail").join(".custodia"))
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("layout"))
            .collect();
    let mine = layouts
        .iter()
        .find(|p| p.to_string_lossy().contains("victim.eml"))
        .unwrap();
    let theirs = layouts
        .iter()
        .find(|p| p.to_string_lossy().contains("other.eml"))
        .unwrap();
    std::fs::copy(theirs, mine).unwrap();
    assert!(
        m.download(key).is_none(),
        "another object's layout was accepted"
    );

    // The red team's truncation: whoever holds the store seals, with the region's public keys
    // alone, a 2-part layout naming the genuine parts 1 and 2 (their ids are in clear in
    // their headers) and a metadata record of its own (here: `text/html`), and cuts the object
    // to those two parts. Sealing needs no custodian; only part 1's layout key is missing.
    std::fs::write(m.stored(key), &original).unwrap();
    std::fs::remove_file(mine).unwrap();
    let cut = original[..2 * full].to_vec();
    let ids = vec![
        *part_header(&original, 0).object_id(),
        *part_header(&original, full).object_id(),
    ];
    let lkey = format!(".custodia/layout/{key}/2");
    let forged = custodia_tests::world::rt().block_on(async {
        use custodia_envelope::multipart::Layout;
        use custodia_envelope::{Binding, DerivedKey, Metadata};
        let client = custodia_tests::s3::sdk_client(&m._w).await;
        let mut meta = Metadata::new();
        meta.insert("content-type", "text/html").unwrap();
        let record = client
            .seal_in(
                "aoife@example.ie",
                &[("upload", &upload_id), ("part", "metadata")],
                &Binding::new("mail", key).unwrap(),
                b"",
                &meta,
            )
            .unwrap();
        let layout = Layout::new(&upload_id, PART as u64, PART as u64, ids).unwrap();
        client
            .seal_in(
                "aoife@example.ie",
                &[("upload", &upload_id), ("part", "layout")],
                &Binding::new("mail", &lkey).unwrap(),
                &layout
                    .body(
                        &record,
                        &[
                            DerivedKey::from_bytes([0x42; 32]),
                            DerivedKey::from_bytes([0x42; 32]),
                        ],
                    )
                    .unwrap(),
                &layout.metadata().unwrap(),
            )
            .unwrap()
    });
    std::fs::write(m.store.root.join("mail").join(&lkey), &forged).unwrap();
    std::fs::write(m.stored(key), &cut).unwrap();
    assert!(
        m.download(key).is_none(),
        "the object cut short under a forged layout was served"
    );
    let head = m.api(&["head-object", "--bucket", "mail", "--key", key]);
    assert!(!head.status.success(), "HEAD served a forged layout");
    let (range, _) = m.range(
        key,
        &format!("bytes={}-{}", PART, PART + 10),
        "forged-range",
    );
    assert!(
        !range.status.success(),
        "a range of part 2 was served under a forged layout"
    );

    // Part 1 of its own (so its layout key is known), the genuine part 2, and a layout of its
    // own over both: part 2's tag needs part 2's key, which only its sealer had.
    let (own_part1, own_key) = reseal_under(
        &m,
        key,
        &upload_id,
        1,
        custodia_envelope::ObjectId([0x11; 32]),
        &vec![b'Y'; PART],
    );
    let spliced = [&own_part1[..], &original[full..2 * full]].concat();
    let own_layout = custodia_tests::world::rt().block_on(async {
        use custodia_envelope::multipart::Layout;
        use custodia_envelope::{Binding, DerivedKey, Metadata};
        let client = custodia_tests::s3::sdk_client(&m._w).await;
        let record = client
            .seal_in(
                "aoife@example.ie",
                &[("upload", &upload_id), ("part", "metadata")],
                &Binding::new("mail", key).unwrap(),
                b"",
                &Metadata::new(),
            )
            .unwrap();
        let ids = vec![
            custodia_envelope::ObjectId([0x11; 32]),
            *part_header(&original, full).object_id(),
        ];
        let layout = Layout::new(&upload_id, PART as u64, PART as u64, ids).unwrap();
        client
            .seal_in(
                "aoife@example.ie",
                &[("upload", &upload_id), ("part", "layout")],
                &Binding::new("mail", &lkey).unwrap(),
                &layout
                    .body(&record, &[own_key, DerivedKey::from_bytes([0x42; 32])])
                    .unwrap(),
                &layout.metadata().unwrap(),
            )
            .unwrap()
    });
    std::fs::write(m.store.root.join("mail").join(&lkey), &own_layout).unwrap();
    std::fs::write(m.stored(key), &spliced).unwrap();
    assert!(
        m.download(key).is_none(),
        "a genuine part was served under a layout of someone else's"
    );
    let (range, _) = m.range(key, &format!("bytes={}-{}", PART, PART + 10), "spliced");
    assert!(
        !range.status.success(),
        "a genuine part was served in a range under a layout of someone else's"
    );
}

/// The header of the part at `at` of a stored multipart object.
fn part_header(stored: &[u8], at: usize) -> custodia_envelope::Header {
    let h = custodia_envelope::Profile::DEFAULT.header_size();
    custodia_envelope::Header::parse(&stored[at..at + h]).unwrap()
}

/// Randomness that hands out a chosen object id (the second draw) and system randomness
/// otherwise: what anyone sealing with a region's public keys can do.
struct ChosenId {
    id: [u8; 32],
    draws: usize,
}

impl custodia_envelope::Randomness for ChosenId {
    fn fill(&mut self, dest: &mut [u8]) -> custodia_envelope::Result<()> {
        self.draws += 1;
        if self.draws == 2 && dest.len() == 32 {
            dest.copy_from_slice(&self.id);
            return Ok(());
        }
        custodia_envelope::SystemRandomness::new().fill(dest)
    }
}

/// Part `n` of upload `upload` of `key` sealed by whoever holds the store, with the custodian's
/// public key alone, under object id `id`: the sealed part and its layout key.
fn reseal_under(
    m: &Mp,
    key: &str,
    upload: &str,
    n: u32,
    id: custodia_envelope::ObjectId,
    body: &[u8],
) -> (Vec<u8>, custodia_envelope::DerivedKey) {
    use custodia_envelope::{Binding, Context, Metadata, Region, SealOptions, Sealer};
    let context = Context::new("aoife@example.ie", &Region::new("ie").unwrap())
        .unwrap()
        .with("upload", upload)
        .unwrap()
        .with("part", &n.to_string())
        .unwrap()
        .with("layout", "3")
        .unwrap();
    let recipient = m._w.recipient();
    let (mut out, mut sealer) = Sealer::begin(
        &SealOptions {
            profile: custodia_envelope::Profile::DEFAULT,
            context: &context,
            binding: &Binding::new("mail", key).unwrap(),
            recipients: std::slice::from_ref(&recipient),
            metadata: &Metadata::new(),
        },
        &mut ChosenId { id: id.0, draws: 0 },
    )
    .unwrap();
    let layout_key = sealer.layout_key().clone();
    sealer.update(body, &mut out).unwrap();
    sealer.finish(&mut out).unwrap();
    assert_eq!(*part_header(&out, 0).object_id(), id);
    (out, layout_key)
}

#[test]
fn a_part_resent_and_put_back_is_refused_and_legacy_layouts_need_their_route_flag() {
    use custodia_envelope::multipart::Layout;
    use custodia_envelope::{Binding, Header, Metadata};

    let m = mp_setup();
    let profile = custodia_envelope::Profile::DEFAULT;
    let full = usize::try_from(profile.sealed_len(PART as u64).unwrap()).unwrap();
    let key = "aoife@example.ie/spliced.eml";
    let id = m.create(key);
    let p1 = body(PART);
    let e1 = m.part(key, &id, 1, &p1);
    // Part 2 sent with A, its sealed bytes kept (as whoever holds the store can), then sent
    // again with B; the upload completes with B.
    let before: Vec<std::path::PathBuf> = files_under(&m.store.root);
    let _ea = m.part(key, &id, 2, &vec![b'A'; PART]);
    let sealed_a: Vec<u8> = files_under(&m.store.root)
        .into_iter()
        .filter(|p| !before.contains(p) && std::fs::metadata(p).unwrap().len() == full as u64)
        .map(|p| std::fs::read(p).unwrap())
        .next()
        .expect("the store keeps the sealed part");
    let e2 = m.part(key, &id, 2, &vec![b'B'; PART]);
    let e3 = m.part(key, &id, 3, b"the end");
    ok(
        &m.complete(key, &id, &[(1, &e1), (2, &e2), (3, &e3)]),
        "complete",
    );
    let mut want = p1.clone();
    want.extend_from_slice(&vec![b'B'; PART]);
    want.extend_from_slice(b"the end");
    assert!(m.download(key) == Some(want.clone()));
    // A completion naming ListParts' ETags (which cannot name the sealed parts) is refused
    // with a clear error, not completed with unbound parts.
    let other = "aoife@example.ie/listed.eml";
    let oid = m.create(other);
    let _ = m.part(other, &oid, 1, b"only part");
    let listed = m.json(
        &[
            "list-parts",
            "--bucket",
            "mail",
            "--key",
            other,
            "--upload-id",
            &oid,
        ],
        "list-parts",
    );
    let etag = listed["Parts"][0]["ETag"].as_str().unwrap().to_owned();
    let refused = m.complete(other, &oid, &[(1, &etag)]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("InvalidPart"),
        "{}",
        stderr(&refused)
    );

    // Put A back in place of B: two valid envelopes for one upload, part and name.
    let original = std::fs::read(m.stored(key)).unwrap();
    let spliced = [&original[..full], &sealed_a[..], &original[2 * full..]].concat();
    assert_eq!(spliced.len(), original.len());
    std::fs::write(m.stored(key), &spliced).unwrap();
    assert!(
        m.download(key).is_none(),
        "a re-sent part put back was served"
    );
    let (range, _) = m.range(key, &format!("bytes={}-{}", PART + 5, PART + 9), "r");
    assert!(
        !range.status.success(),
        "a range of the put-back part was served"
    );
    std::fs::write(m.stored(key), &original).unwrap();
    assert!(m.download(key) == Some(want.clone()));

    // The object as a gateway wrote it before part binding: parts without the layout
    // version mark and a version 1 layout record. Refused, listed by verify, readable where
    // the route sets legacy_layouts.
    let lkey = format!(".custodia/layout/{key}/3");
    let lpath = m.store.root.join("mail").join(&lkey);
    let record = std::fs::read(&lpath).unwrap();
    let plain_parts = [
        want[..PART].to_vec(),
        want[PART..2 * PART].to_vec(),
        want[2 * PART..].to_vec(),
    ];
    let (v1, legacy_object) = custodia_tests::world::rt().block_on(async {
        let client = custodia_tests::s3::sdk_client(&m._w).await;
        let binding = Binding::new("mail", &lkey).unwrap();
        let header = Header::parse(&record[..profile.header_size()]).unwrap();
        let unlocked = client.unlock(&header, &binding, None).await.unwrap();
        let body = unlocked.open(&record).unwrap();
        let (layout, meta_env) = Layout::parse(unlocked.metadata(), &body).unwrap();
        assert!(!layout.is_legacy());
        let mut v1 = Metadata::new();
        for k in ["upload", "parts", "part-size", "last-size"] {
            v1.insert(k, unlocked.metadata().get(k).unwrap()).unwrap();
        }
        let layout_v1 = client
            .seal_in(
                "aoife@example.ie",
                &[("upload", &id), ("part", "layout")],
                &binding,
                meta_env,
                &v1,
            )
            .unwrap();
        let object_binding = Binding::new("mail", key).unwrap();
        let mut object = Vec::new();
        for (i, p) in plain_parts.iter().enumerate() {
            let n = (i + 1).to_string();
            object.extend(
                client
                    .seal_in(
                        "aoife@example.ie",
                        &[("upload", &id), ("part", &n)],
                        &object_binding,
                        p,
                        &Metadata::new(),
                    )
                    .unwrap(),
            );
        }
        (layout_v1, object)
    });
    // First the new parts (marked for version 2) under the old record: what a store that
    // hands out an old upload id again could arrange. Refused, even where legacy layouts
    // are read (below).
    std::fs::write(&lpath, &v1).unwrap();
    assert!(m.download(key).is_none(), "a version 1 layout was read");
    std::fs::write(m.stored(key), &legacy_object).unwrap();
    assert!(m.download(key).is_none(), "a version 1 layout was read");
    let config = m.tmp.path().join("gw").join("gateway.toml");
    let verify = std::process::Command::new(custodia_tests::custodia_bin())
        .args([
            "verify",
            "--config",
            config.to_str().unwrap(),
            "--bucket",
            "mail",
        ])
        .args(["--json", "--quiet"])
        .output()
        .unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&verify.stdout).unwrap_or_else(|_| panic!("{}", stderr(&verify)));
    assert_eq!(report["counts"]["legacy_layout"], 1, "{report}");
    let text = std::fs::read_to_string(&config).unwrap();
    let lenient = text.replacen(
        "[[route]]\nbucket = \"mail\"\nkey = '^(?P<mailbox>[^/]+@[^/]+)/'\n",
        "[[route]]\nbucket = \"mail\"\nkey = '^(?P<mailbox>[^/]+@[^/]+)/'\nlegacy_layouts = true\n",
        1,
    );
    assert_ne!(lenient, text);
    let legacy_dir = m.tmp.path().join("gw-legacy");
    std::fs::create_dir_all(&legacy_dir).unwrap();
    for f in std::fs::read_dir(m.tmp.path().join("gw")).unwrap() {
        let f = f.unwrap();
        if f.file_type().unwrap().is_file() {
            std::fs::copy(f.path(), legacy_dir.join(f.file_name())).unwrap();
        }
    }
    let gw = GatewayProc::start(&legacy_dir, &lenient);
    let out = m.tmp.path().join("legacy-download");
    std::fs::write(m.stored(key), &original).unwrap();
    let mixed = aws(
        gw.s3.unwrap(),
        &[
            "s3",
            "cp",
            &format!("s3://mail/{key}"),
            out.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        !mixed.status.success(),
        "version 2 parts read under a version 1 layout"
    );
    std::fs::write(m.stored(key), &legacy_object).unwrap();
    ok(
        &aws(
            gw.s3.unwrap(),
            &[
                "s3",
                "cp",
                &format!("s3://mail/{key}"),
                out.to_str().unwrap(),
            ],
            None,
        ),
        "download with legacy_layouts",
    );
    assert!(std::fs::read(&out).unwrap() == want);
    // Re-sealed as GATEWAY.md says (read it there, write it again): a version 2 layout, read
    // by the strict gateway.
    ok(
        &aws(
            gw.s3.unwrap(),
            &[
                "s3",
                "cp",
                out.to_str().unwrap(),
                &format!("s3://mail/{key}"),
            ],
            None,
        ),
        "re-seal",
    );
    assert!(m.download(key) == Some(want), "the re-sealed object");
}

#[test]
fn an_empty_last_part_is_sized_right_in_listings() {
    let m = mp_setup();
    let key = "aoife@example.ie/empty-last.eml";
    let id = m.create(key);
    let e1 = m.part(key, &id, 1, &body(PART));
    let e2 = m.part(key, &id, 2, b"");
    ok(&m.complete(key, &id, &[(1, &e1), (2, &e2)]), "complete");
    let head = m.json(
        &["head-object", "--bucket", "mail", "--key", key],
        "head-object",
    );
    assert_eq!(head["ContentLength"].as_u64(), Some(PART as u64), "{head}");
    let listed = m.json(
        &[
            "list-objects-v2",
            "--bucket",
            "mail",
            "--prefix",
            "aoife@example.ie/",
        ],
        "list",
    );
    let sizes: Vec<(String, u64)> = listed["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["Key"].as_str().unwrap().to_owned(),
                o["Size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(sizes, [(key.to_owned(), PART as u64)]);
    assert!(m.download(key) == Some(body(PART)));
}

#[test]
fn clean_removes_what_abandoned_uploads_and_overwrites_left_and_nothing_young() {
    let m = mp_setup();
    // An upload abandoned after one part (a client or gateway crash): its metadata record
    // stays under .custodia/uploads/.
    let abandoned = "aoife@example.ie/abandoned.eml";
    let id = m.create(abandoned);
    let _ = m.part(abandoned, &id, 1, &body(PART));
    // A multipart object, then a stray layout record for a key that holds nothing (as a
    // crash between writing a layout and completing, or an overwrite, leaves).
    let key = "aoife@example.ie/kept.eml";
    let kid = m.create(key);
    let k1 = m.part(key, &kid, 1, &body(PART));
    let k2 = m.part(key, &kid, 2, b"end");
    ok(&m.complete(key, &kid, &[(1, &k1), (2, &k2)]), "complete");
    let layouts = m.store.root.join("mail/.custodia/layout");
    let stray = layouts.join("aoife@example.ie/gone.eml/2");
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::copy(layouts.join("aoife@example.ie/kept.eml/2"), &stray).unwrap();
    let uploads = m.store.root.join("mail/.custodia/uploads");
    let records = |dir: &std::path::Path| files_under(dir).len();
    assert_eq!(records(&uploads), 1);
    assert_eq!(records(&layouts), 2);

    let config = m.tmp.path().join("gw").join("gateway.toml");
    let clean = |extra: &[&str]| {
        let out = std::process::Command::new(custodia_tests::custodia_bin())
            .args([
                "clean",
                "--config",
                config.to_str().unwrap(),
                "--bucket",
                "mail",
            ])
            .args(["--json"])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    // Everything here is minutes old: the default limit (7 days) keeps it all.
    let young = clean(&[]);
    assert_eq!(young["records_young"], 2, "{young}");
    assert_eq!(young["layout_records"], 0, "{young}");
    // A dry run with no age limit counts and removes nothing.
    let dry = clean(&["--older-than", "0", "--dry-run"]);
    assert_eq!(
        (
            dry["layout_records"].as_u64(),
            dry["upload_records"].as_u64()
        ),
        (Some(1), Some(1)),
        "{dry}"
    );
    assert_eq!(records(&uploads), 1);
    assert_eq!(records(&layouts), 2);
    // Without a limit: the stray layout and the abandoned upload's record go (s3s-fs lists no
    // uploads: said in a note); the live object and its layout stay.
    let done = clean(&["--older-than", "0"]);
    assert_eq!(done["layout_records"], 1, "{done}");
    assert_eq!(done["upload_records"], 1, "{done}");
    assert!(
        done["notes"][0]
            .as_str()
            .unwrap()
            .contains("does not list multipart uploads")
    );
    assert_eq!(records(&uploads), 0);
    assert!(!stray.exists());
    assert!(layouts.join("aoife@example.ie/kept.eml/2").exists());
    let mut want = body(PART);
    want.extend_from_slice(b"end");
    assert!(m.download(key) == Some(want));
    // Nothing left: a second run finds nothing.
    let again = clean(&["--older-than", "0"]);
    assert_eq!(
        (
            again["layout_records"].as_u64(),
            again["upload_records"].as_u64()
        ),
        (Some(0), Some(0))
    );
}

#[test]
fn a_delete_spares_a_completing_uploads_record_and_a_completion_retried_with_fewer_parts_breaks_nothing()
 {
    let m = mp_setup();
    let layout_dir = |key: &str| m.store.root.join("mail").join(".custodia/layout").join(key);

    // A completion retried with another part count (the review's case): completed with 3
    // parts, then the client completes the same upload again naming 2. The store refuses
    // (the upload is gone), but the key holds that upload, so the retry's record of 2 parts
    // stays beside the real one and lists first: the object must still open, from the
    // record whose length matches.
    let key = "aoife@example.ie/retried.eml";
    let id = m.create(key);
    let parts = [body(PART), vec![b'R'; PART], b"end".to_vec()];
    let etags: Vec<String> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| m.part(key, &id, u32::try_from(i + 1).unwrap(), p))
        .collect();
    ok(
        &m.complete(key, &id, &[(1, &etags[0]), (2, &etags[1]), (3, &etags[2])]),
        "complete",
    );
    let retry = m.complete(key, &id, &[(1, &etags[0]), (2, &etags[1])]);
    assert!(
        !retry.status.success(),
        "the store completed an upload twice"
    );
    let want = parts.concat();
    assert!(
        m.download(key) == Some(want.clone()),
        "the retried completion broke the object"
    );
    // On a store that lets the retry get as far as writing its record (s3s-fs refuses it
    // earlier), the record of 2 parts is genuine: this upload's, under part 1's layout key
    // (from part 1's ETag). Put there as that gateway would have, it lists first.
    let layout_key = |etag: &str| {
        let text = String::from_utf8(
            hex::decode(etag.trim_matches('"').strip_prefix("pk-").unwrap()).unwrap(),
        )
        .unwrap();
        let fields: Vec<&str> = text.splitn(4, ':').collect();
        custodia_envelope::DerivedKey::from_bytes(
            hex::decode(fields[2]).unwrap().try_into().unwrap(),
        )
    };
    let stored = std::fs::read(m.stored(key)).unwrap();
    let profile = custodia_envelope::Profile::DEFAULT;
    let full = usize::try_from(profile.sealed_len(PART as u64).unwrap()).unwrap();
    let h = profile.header_size();
    let id_at = |at: usize| {
        *custodia_envelope::Header::parse(&stored[at..at + h])
            .unwrap()
            .object_id()
    };
    let two = format!(".custodia/layout/{key}/2");
    let genuine_two = custodia_tests::world::rt().block_on(async {
        use custodia_envelope::multipart::Layout;
        use custodia_envelope::{Binding, Metadata};
        let client = custodia_tests::s3::sdk_client(&m._w).await;
        let record = client
            .seal_in(
                "aoife@example.ie",
                &[("upload", &id), ("part", "metadata")],
                &Binding::new("mail", key).unwrap(),
                b"",
                &Metadata::new(),
            )
            .unwrap();
        let layout =
            Layout::new(&id, PART as u64, PART as u64, vec![id_at(0), id_at(full)]).unwrap();
        client
            .seal_in(
                "aoife@example.ie",
                &[("upload", &id), ("part", "layout")],
                &Binding::new("mail", &two).unwrap(),
                &layout
                    .body(&record, &[layout_key(&etags[0]), layout_key(&etags[1])])
                    .unwrap(),
                &layout.metadata().unwrap(),
            )
            .unwrap()
    });
    std::fs::write(m.store.root.join("mail").join(&two), &genuine_two).unwrap();
    assert!(
        m.download(key) == Some(want.clone()),
        "a same-upload record of another part count hid the object's own"
    );
    let head = m.json(&["head-object", "--bucket", "mail", "--key", key], "head");
    assert_eq!(head["ContentLength"], want.len());

    // A DeleteObject while another upload of the key is completing (its layout record
    // written, its metadata record still there, the store not done yet) spares that record:
    // the object may land after the delete and needs it. A stand-in for the record the
    // completion writes first: an envelope naming the upload, under the name it would have.
    let id2 = m.create(key);
    let _ = m.part(key, &id2, 1, b"in flight");
    let pending = format!(".custodia/layout/{key}/1");
    let record = custodia_tests::world::rt().block_on(async {
        let client = custodia_tests::s3::sdk_client(&m._w).await;
        client
            .seal_in(
                "aoife@example.ie",
                &[("upload", &id2), ("part", "layout")],
                &custodia_envelope::Binding::new("mail", &pending).unwrap(),
                b"",
                &custodia_envelope::Metadata::new(),
            )
            .unwrap()
    });
    std::fs::write(m.store.root.join("mail").join(&pending), &record).unwrap();
    ok(
        &m.api(&["delete-object", "--bucket", "mail", "--key", key]),
        "delete",
    );
    let left: Vec<String> = std::fs::read_dir(layout_dir(key))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        left,
        ["1"],
        "the delete took the completing upload's record"
    );
    // Once that upload is aborted, the next delete removes its record too.
    ok(
        &m.api(&[
            "abort-multipart-upload",
            "--bucket",
            "mail",
            "--key",
            key,
            "--upload-id",
            &id2,
        ]),
        "abort",
    );
    ok(
        &m.api(&["delete-object", "--bucket", "mail", "--key", key]),
        "delete again",
    );
    assert!(
        std::fs::read_dir(layout_dir(key)).map_or(true, |mut d| d.next().is_none()),
        "a record outlived the delete"
    );
}

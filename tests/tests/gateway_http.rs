//! The gateway's HTTP front end to end: `custodia gateway serve` as a real process between
//! curl and an nginx WebDAV store, opening objects through a real custodian process, all on
//! 127.0.0.1. Round trips and sizes around the chunk edges, ranges, fail-closed routes and
//! legacy plaintext, tampering in the store, checksums and tokens, custodian and store
//! outages, aborted uploads, concurrency, a 100 MiB object in bounded memory, metrics and
//! graceful shutdown.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation,
    clippy::print_stdout,
    reason = "tests"
)]

use std::io::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use custodia::{Client, Policy};
use custodia_custodian::decision_log::Outcome;
use custodia_envelope::{Binding, Region};
use custodia_tests::gateway::{
    Curl, GatewayProc, Nginx, TOKEN, curl, files_under, gateway_config, metric, store_contains,
};
use custodia_tests::wait_until;
use custodia_tests::world::{MAILBOX_A, MAILBOX_B, World, rt, world, world_with};

const CHUNK: usize = 65536;
/// The default profile's header size: stored chunks start here.
const HEADER: usize = 1024;
/// A stored chunk: plaintext chunk and its tag.
const STORED_CHUNK: usize = CHUNK + 16;

/// A custodian, an nginx store and a gateway in front of it (dropped gateway first).
struct Stack {
    front: Front,
    gw: GatewayProc,
    nginx: Nginx,
    w: World,
    dir: tempfile::TempDir,
}

fn stack_with(extra: &str) -> Stack {
    stack_in(world(), extra)
}

fn stack_in(w: World, extra: &str) -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start(&dir.path().join("nginx"));
    let gw_dir = dir.path().join("gateway");
    let config = gateway_config(&w, &w.gw_ie, &nginx.upstream(), extra, &gw_dir);
    let gw = GatewayProc::start(&gw_dir, &config);
    let uploads = dir.path().join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    let front = Front {
        base: gw.url(""),
        uploads,
    };
    Stack {
        front,
        gw,
        nginx,
        w,
        dir,
    }
}

fn stack() -> Stack {
    stack_with("")
}

/// `len` bytes of a deterministic pseudo-random pattern (`seed` picks which).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256(b: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .to_vec()
}

/// The gateway's HTTP front as curl reaches it (shared by client threads).
struct Front {
    base: String,
    uploads: PathBuf,
}

impl std::ops::Deref for Stack {
    type Target = Front;
    fn deref(&self) -> &Front {
        &self.front
    }
}

impl Front {
    fn url(&self, bucket: &str, key: &str) -> String {
        format!("{}/{bucket}/{key}", self.base)
    }

    /// Writes `body` to a file named after its digest and returns its path (curl uploads
    /// files).
    fn file_of(&self, body: &[u8]) -> PathBuf {
        let p = self
            .uploads
            .join(format!("upload-{}", hex::encode(&sha256(body)[..8])));
        std::fs::write(&p, body).unwrap();
        p
    }

    fn put_in(&self, bucket: &str, key: &str, body: &[u8], args: &[&str]) -> Curl {
        let file = self.file_of(body);
        let url = self.url(bucket, key);
        let mut all: Vec<&str> = vec!["-T", file.to_str().unwrap()];
        all.extend_from_slice(args);
        all.push(&url);
        curl(&all)
    }

    fn put(&self, key: &str, body: &[u8]) -> Curl {
        self.put_in("mail", key, body, &[])
    }

    fn get_in(&self, bucket: &str, key: &str, args: &[&str]) -> Curl {
        let url = self.url(bucket, key);
        let mut all: Vec<&str> = args.to_vec();
        all.push(&url);
        curl(&all)
    }

    fn get(&self, key: &str) -> Curl {
        self.get_in("mail", key, &[])
    }

    fn head(&self, key: &str) -> Curl {
        self.get_in("mail", key, &["-I"])
    }

    fn delete(&self, key: &str) -> Curl {
        self.get_in("mail", key, &["-X", "DELETE"])
    }
}

impl Stack {
    /// The stored (sealed) file of `mail`/`key`.
    fn stored(&self, key: &str) -> PathBuf {
        self.nginx.file("mail", key)
    }

    fn metrics(&self) -> String {
        let r = curl(&[&self.gw.url("/metrics")]);
        assert_eq!(r.status, 200);
        String::from_utf8(r.body).unwrap()
    }

    /// An SDK client of the Irish gateway's identity (what an application or migration job
    /// linking the SDK would use).
    fn sdk(&self) -> Client {
        let dir = self.w.sdk_directory(&self.w.gw_ie);
        rt().block_on(dir.refresh()).unwrap();
        let policy = Policy::builder()
            .domain("example.ie", &Region::new("ie").unwrap())
            .build();
        Client::builder(dir, policy).build()
    }
}

fn content_length(r: &Curl) -> usize {
    r.header("content-length")
        .unwrap_or_else(|| panic!("no Content-Length: {:?}", r.headers))
        .parse()
        .unwrap()
}

/// A read that must not succeed: refused up front (an error status), or a response whose
/// body broke off (curl failed, or fewer bytes than announced). Whatever bytes did arrive
/// are verified plaintext: a prefix of `expected`.
fn assert_fails(r: &Curl, expected: &[u8], what: &str) {
    if (200..300).contains(&r.status) {
        let announced = content_length(r);
        assert!(
            r.exit != 0 || r.body.len() < announced,
            "{what}: served in full (status {}, {} of {announced} bytes, curl exit {})",
            r.status,
            r.body.len(),
            r.exit
        );
        assert!(
            expected.starts_with(&r.body),
            "{what}: bytes that are not the object's plaintext were served"
        );
    } else if r.status == 0 {
        // No response at all: the connection was closed before any byte.
        assert!(
            r.exit != 0 && r.body.is_empty(),
            "{what}: curl exit {}",
            r.exit
        );
    } else {
        assert!(
            r.status >= 400,
            "{what}: status {} (curl exit {})",
            r.status,
            r.exit
        );
        assert!(
            !r.body
                .windows(16)
                .any(|w| expected.windows(16).any(|e| e == w))
                || expected.len() < 16,
            "{what}: an error body carries plaintext"
        );
    }
}

const SIZES: [usize; 7] = [
    0,
    1,
    CHUNK - 1,
    CHUNK,
    CHUNK + 1,
    3 * CHUNK + 5,
    1024 * 1024,
];

#[test]
fn objects_round_trip_at_every_size_with_metadata_and_only_ciphertext_stored() {
    let s = stack();
    let sdk = s.sdk();
    for (i, &len) in SIZES.iter().enumerate() {
        let key = format!("{MAILBOX_A}/INBOX/{i} size {len}.eml");
        let enc = key.replace(' ', "%20");
        let body = pattern(len, i as u64 + 1);
        let put = s.put_in(
            "mail",
            &enc,
            &body,
            &[
                "-H",
                "Content-Type: message/rfc822",
                "-H",
                "x-amz-meta-folder: INBOX",
                "-H",
                "X-Amz-Meta-Flags: seen",
            ],
        );
        assert_eq!(put.status, 201, "PUT {len}: {:?}", put);
        assert_eq!(put.exit, 0);

        let head = s.head(&enc);
        assert_eq!(head.status, 200, "HEAD {len}");
        assert_eq!(
            content_length(&head),
            len,
            "HEAD reports the plaintext length"
        );
        assert_eq!(head.header("content-type"), Some("message/rfc822"));
        assert_eq!(head.header("x-amz-meta-folder"), Some("INBOX"));
        assert_eq!(head.header("x-amz-meta-flags"), Some("seen"));
        assert_eq!(head.header("accept-ranges"), Some("bytes"));
        let etag = head.header("etag").unwrap().to_owned();

        let got = s.get(&enc);
        assert_eq!(got.status, 200, "GET {len}");
        assert_eq!(got.exit, 0);
        assert_eq!(content_length(&got), len);
        assert!(got.body == body, "GET {len}: wrong bytes");
        assert_eq!(got.header("content-type"), Some("message/rfc822"));
        assert_eq!(got.header("x-amz-meta-folder"), Some("INBOX"));
        assert_eq!(
            got.header("etag"),
            Some(etag.as_str()),
            "ETag stable across reads"
        );
        assert_eq!(s.get(&enc).header("etag"), Some(etag.as_str()));
        // Opaque: quoted, not 32 hex digits like an MD5 the client could compare.
        let inner = etag.trim_matches('"');
        assert!(
            !(inner.len() == 32 && inner.bytes().all(|b| b.is_ascii_hexdigit())),
            "MD5-shaped ETag {etag}"
        );
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

        // The store holds ciphertext that opens with the SDK under the object's binding.
        let stored = std::fs::read(s.stored(&key)).unwrap();
        assert!(stored.len() > len, "stored {len}: no envelope?");
        if len >= 32 {
            for at in [0, len / 2, len - 32] {
                assert!(
                    !store_contains(&s.nginx.root, &body[at..at + 32]),
                    "plaintext of {len} B found in the store"
                );
            }
        }
        assert!(!store_contains(&s.nginx.root, b"message/rfc822"));
        assert!(!store_contains(&s.nginx.root, b"INBOX"));
        let opened = rt()
            .block_on(sdk.open(&Binding::new("mail", &key).unwrap(), &stored))
            .unwrap();
        assert!(opened.plaintext == body, "SDK open {len}");
        assert_eq!(opened.metadata.get("content-type"), Some("message/rfc822"));
        // Under any other name it does not open.
        assert!(
            rt().block_on(sdk.open(&Binding::new("mail", &format!("{key}x")).unwrap(), &stored))
                .is_err()
        );

        let del = s.delete(&enc);
        assert_eq!(del.status, 204, "DELETE {len}");
        assert!(!s.stored(&key).exists());
        let gone = s.get(&enc);
        assert_eq!(gone.status, 404);
        assert_eq!(gone.header("x-custodia-error"), Some("NoSuchKey"));
        assert_eq!(s.head(&enc).status, 404);
        assert_eq!(s.delete(&enc).status, 404);
    }
    assert!(!store_contains(&s.nginx.root, b"seen"));
}

#[test]
fn an_object_overwritten_gets_a_new_etag_and_conditional_requests_use_it() {
    let s = stack();
    let key = format!("{MAILBOX_A}/INBOX/cond.eml");
    assert_eq!(s.put(&key, b"first version").status, 201);
    let e1 = s.head(&key).header("etag").unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(1100)); // nginx's ETag has 1 s resolution
    assert_eq!(s.put(&key, b"second version, longer").status, 201);
    let got = s.get(&key);
    assert_eq!(got.body, b"second version, longer");
    let e2 = got.header("etag").unwrap().to_owned();
    assert_ne!(e1, e2);

    let inm = format!("If-None-Match: {e2}");
    let r = s.get_in("mail", &key, &["-H", &inm]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = s.get_in("mail", &key, &["-H", &format!("If-None-Match: {e1}")]);
    assert_eq!(r.status, 200);
    let r = s.get_in("mail", &key, &["-H", &format!("If-Match: {e1}")]);
    assert_eq!(r.status, 412);
    assert_eq!(r.header("x-custodia-error"), Some("PreconditionFailed"));
    let r = s.get_in("mail", &key, &["-H", &format!("If-Match: {e2}")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"second version, longer");
    let r = s.get_in("mail", &key, &["-I", "-H", &format!("If-None-Match: {e2}")]);
    assert_eq!(r.status, 304);
    let r = s.get_in("mail", &key, &["-I", "-H", "If-Match: \"cx-other\""]);
    assert_eq!(r.status, 412);

    // Conditional writes are refused, not silently made unconditional.
    for h in ["If-None-Match: *", &format!("If-Match: {e2}")] {
        let r = s.put_in("mail", &key, b"overwrite?", &["-H", h]);
        assert_eq!(r.status, 501, "PUT with {h}");
        assert_eq!(r.header("x-custodia-error"), Some("NotImplemented"));
        let r = s.get_in("mail", &key, &["-X", "DELETE", "-H", h]);
        assert_eq!(r.status, 501, "DELETE with {h}");
    }
    assert_eq!(s.get(&key).body, b"second version, longer");
    // Other methods are not allowed.
    let r = s.get_in("mail", &key, &["-X", "POST"]);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, PUT, DELETE"));
}

#[test]
fn ranges_across_chunk_edges_and_chunked_uploads() {
    let s = stack();
    let len = 4 * CHUNK + 123;
    let body = pattern(len, 7);
    let key = format!("{MAILBOX_A}/big.bin");
    assert_eq!(s.put(&key, &body).status, 201);

    let c = CHUNK;
    let cases: Vec<(String, std::ops::Range<usize>)> = vec![
        ("bytes=0-0".into(), 0..1),
        ("bytes=0-99".into(), 0..100),
        (format!("bytes={}-{}", c - 1, c), c - 1..c + 1),
        (format!("bytes={}-{}", c, c), c..c + 1),
        (
            format!("bytes={}-{}", c - 10, 2 * c + 9),
            c - 10..2 * c + 10,
        ),
        (format!("bytes={}-{}", 2 * c, 3 * c - 1), 2 * c..3 * c),
        (format!("bytes={}-", 3 * c + 1), 3 * c + 1..len),
        (format!("bytes={}-", len - 1), len - 1..len),
        ("bytes=-1".into(), len - 1..len),
        ("bytes=-200".into(), len - 200..len),
        (format!("bytes=-{}", len + 1000), 0..len),
        (format!("bytes=100-{}", len + 1000), 100..len),
        ("bytes=0-".into(), 0..len),
    ];
    for (spec, want) in cases {
        let r = s.get_in("mail", &key, &["-H", &format!("Range: {spec}")]);
        assert_eq!(r.status, 206, "{spec}");
        assert_eq!(r.exit, 0, "{spec}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {}-{}/{len}", want.start, want.end - 1).as_str()),
            "{spec}"
        );
        assert_eq!(content_length(&r), want.len(), "{spec}");
        assert!(r.body == body[want.clone()], "{spec}: wrong bytes");
    }
    for spec in [
        format!("bytes={len}-"),
        format!("bytes={}-{}", len + 5, len + 10),
        "bytes=-0".into(),
    ] {
        let r = s.get_in("mail", &key, &["-H", &format!("Range: {spec}")]);
        assert_eq!(r.status, 416, "{spec}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{len}").as_str()),
            "{spec}"
        );
        assert_eq!(r.header("x-custodia-error"), Some("InvalidRange"));
    }
    // A syntactically bad range is the client's error.
    let r = s.get_in("mail", &key, &["-H", "Range: bytes=9-1"]);
    assert_eq!(r.status, 400);

    // An empty object has no satisfiable range.
    let empty = format!("{MAILBOX_A}/empty");
    assert_eq!(s.put(&empty, b"").status, 201);
    let r = s.get_in("mail", &empty, &["-H", "Range: bytes=0-"]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */0"));

    // Chunked uploads (no Content-Length) stream through too. (curl 7.88 never ends an
    // empty chunked upload, so the empty one is sent by hand.)
    let raw = raw_request(
        &s.gw,
        &format!(
            "PUT /mail/{MAILBOX_A}/chunked-0 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {TOKEN}\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n"
        ),
    );
    assert!(raw.starts_with("HTTP/1.1 201"), "{raw}");
    let got = s.get(&format!("{MAILBOX_A}/chunked-0"));
    assert_eq!((got.status, content_length(&got)), (200, 0));
    for (i, n) in [1usize, 5, CHUNK, 2 * CHUNK + 7].into_iter().enumerate() {
        let b = pattern(n, 100 + i as u64);
        let k = format!("{MAILBOX_A}/chunked-{n}");
        let put = s.put_in("mail", &k, &b, &["-H", "Transfer-Encoding: chunked"]);
        assert_eq!(put.status, 201, "chunked {n}");
        let got = s.get(&k);
        assert_eq!(got.status, 200);
        assert_eq!(content_length(&got), n);
        assert!(got.body == b, "chunked {n}");
        let r = s.get_in("mail", &k, &["-H", "Range: bytes=-3"]);
        if n > 0 {
            assert_eq!(r.status, 206);
            assert_eq!(r.body, b[n.saturating_sub(3)..]);
        }
    }
}

#[test]
fn keys_without_a_route_are_refused_and_plaintext_is_never_served() {
    let s = stack();
    for (bucket, key) in [
        ("mail", "no-mailbox-key"),
        ("other", "aoife@example.ie/1.eml"),
    ] {
        let put = s.put_in(bucket, key, b"secret words", &[]);
        assert_eq!(put.status, 403, "PUT {bucket}/{key}");
        assert_eq!(put.header("x-custodia-error"), Some("AccessDenied"));
        let r = s.get_in(bucket, key, &[]);
        assert_eq!(r.status, 403, "GET {bucket}/{key}");
        assert!(String::from_utf8_lossy(&r.body).contains("no residency rule"));
        assert_eq!(s.get_in(bucket, key, &["-I"]).status, 403);
        assert_eq!(s.get_in(bucket, key, &["-X", "DELETE"]).status, 403);
    }
    // The route matches but the mailbox's domain has no residency rule: nothing is sealed
    // to a guessed region. (Reads need only the route: a stored object's sealed context
    // names its region, and its custodians decide.)
    let r = s.put("joe@example.com/1.eml", b"secret words");
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("joe@example.com"));
    assert_eq!(s.get("joe@example.com/1.eml").status, 404);
    assert!(
        files_under(&s.nginx.root).is_empty(),
        "something was stored"
    );
    assert!(files_under(&s.nginx.temp_dir()).is_empty());

    // Malformed paths.
    assert_eq!(curl(&[&s.gw.url("/mail")]).status, 400);
    assert_eq!(curl(&[&s.gw.url("/")]).status, 400);

    // A plaintext file placed in the store directly is refused, never served.
    let plain = b"From: someone\r\n\r\nplaintext that slipped past the gateway".to_vec();
    for name in ["plain.eml", "tiny"] {
        let body: &[u8] = if name == "tiny" { b"hi" } else { &plain };
        let key = format!("{MAILBOX_A}/{name}");
        let f = s.stored(&key);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, body).unwrap();
        let r = s.get(&key);
        assert_eq!(r.status, 502, "{name}");
        assert_eq!(r.header("x-custodia-error"), Some("NotSealed"));
        assert!(!r.body.windows(body.len()).any(|w| w == body));
        let r = s.head(&key);
        assert_eq!(r.status, 502);
        let r = s.get_in("mail", &key, &["-H", "Range: bytes=0-1"]);
        assert_eq!(r.status, 502);
    }
    // An empty plaintext file too.
    let key = format!("{MAILBOX_A}/empty-plain");
    std::fs::write(s.stored(&key), b"").unwrap();
    assert_eq!(s.get(&key).status, 502);
    assert_eq!(s.head(&key).status, 502);

    // On the route that allows legacy plaintext (a migration), it is served, marked.
    let key = format!("{MAILBOX_A}/old.eml");
    let f = s.nginx.file("legacy", &key);
    std::fs::create_dir_all(f.parent().unwrap()).unwrap();
    std::fs::write(&f, &plain).unwrap();
    let r = s.get_in("legacy", &key, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, plain);
    assert_eq!(r.header("x-custodia-legacy-plaintext"), Some("true"));
    let r = s.get_in("legacy", &key, &["-I"]);
    assert_eq!(r.status, 200);
    assert_eq!(content_length(&r), plain.len());
    assert_eq!(r.header("x-custodia-legacy-plaintext"), Some("true"));
    let r = s.get_in("legacy", &key, &["-H", "Range: bytes=6-12"]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, plain[6..13]);
    assert_eq!(r.header("x-custodia-legacy-plaintext"), Some("true"));
    // Empty legacy objects, too.
    let key = format!("{MAILBOX_A}/empty-old");
    std::fs::write(s.nginx.file("legacy", &key), b"").unwrap();
    let r = s.get_in("legacy", &key, &[]);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(content_length(&r), 0);
    // New writes on that route are sealed all the same.
    let key = format!("{MAILBOX_A}/new.eml");
    assert_eq!(s.put_in("legacy", &key, &plain, &[]).status, 201);
    let stored = std::fs::read(s.nginx.file("legacy", &key)).unwrap();
    assert!(!stored.windows(14).any(|w| w == b"plaintext that"));
    let r = s.get_in("legacy", &key, &[]);
    assert_eq!(r.body, plain);
    assert_eq!(r.header("x-custodia-legacy-plaintext"), None);
}

/// Sends `request` as is on a fresh connection and returns everything the gateway answers
/// until it closes the connection.
fn raw_request(gw: &GatewayProc, request: &str) -> String {
    use std::io::Read as _;
    let mut c = TcpStream::connect(gw.http.unwrap()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Flips one bit of `path` at `at`.
fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x04;
    std::fs::write(path, b).unwrap();
}

#[test]
fn tampering_in_the_store_never_yields_unverified_plaintext() {
    let s = stack();
    let len = 3 * CHUNK + 500;
    let a_body = pattern(len, 11);
    let b_body = pattern(len, 12);
    let key = |n: &str| format!("{MAILBOX_A}/t/{n}");
    let put = |n: &str, b: &[u8]| assert_eq!(s.put(&key(n), b).status, 201, "PUT {n}");

    // A bit flip in each chunk (and in the header, and in the stanza).
    for (n, at) in [
        ("flip-c0", HEADER + 10),
        ("flip-c1", HEADER + STORED_CHUNK + 100),
        ("flip-last", HEADER + 3 * STORED_CHUNK + 10),
        ("flip-tag", HEADER + STORED_CHUNK - 1),
        ("flip-header-prefix", 9),
        ("flip-header-40", 40),
        ("flip-header-100", 100),
        ("flip-header-200", 200),
        ("flip-header-300", 300),
        ("flip-header-600", 600),
        ("flip-header-end", HEADER - 1),
    ] {
        put(n, &a_body);
        flip(&s.stored(&key(n)), at);
        let r = s.get(&key(n));
        assert_fails(&r, &a_body, n);
        if n.starts_with("flip-c1") {
            // Chunk 0 verified and was served; then the response broke off.
            assert_eq!(r.status, 200);
            assert!(r.body.len() <= CHUNK, "{n}: {} bytes", r.body.len());
        } else if n != "flip-last" {
            // Damage found before the first byte is answered with an error status.
            assert_eq!(r.status, 502, "{n}");
            assert_eq!(
                r.header("x-custodia-error"),
                Some("ObjectVerificationFailed"),
                "{n}"
            );
        }
        // Ranges touching the damaged chunk fail; ranges elsewhere are fine.
        let chunk = at.saturating_sub(HEADER) / STORED_CHUNK;
        if at >= HEADER {
            let lo = chunk * CHUNK;
            let r = s.get_in(
                "mail",
                &key(n),
                &["-H", &format!("Range: bytes={lo}-{}", lo + 10)],
            );
            assert_fails(&r, &a_body[lo..], &format!("{n} range"));
            assert_eq!(r.status, 502, "{n} range");
            let other = if chunk == 0 { CHUNK } else { 0 };
            let r = s.get_in(
                "mail",
                &key(n),
                &["-H", &format!("Range: bytes={other}-{}", other + 99)],
            );
            assert_eq!(r.status, 206, "{n}: undamaged range");
            assert_eq!(r.body, a_body[other..other + 100]);
        } else {
            assert_eq!(r.status, 502, "{n}");
            assert_eq!(s.head(&key(n)).status, 502, "{n} HEAD");
        }
    }

    // Truncation: mid-chunk, at a chunk edge (the final chunk dropped), inside the header.
    for (n, keep) in [
        ("trunc-mid", HEADER + STORED_CHUNK + 1000),
        ("trunc-edge", HEADER + 3 * STORED_CHUNK),
        ("trunc-one-byte", HEADER + 3 * STORED_CHUNK + 500 + 16 - 1),
        ("trunc-header", 500),
        ("trunc-all-body", HEADER),
    ] {
        put(n, &a_body);
        let f = s.stored(&key(n));
        let b = std::fs::read(&f).unwrap();
        assert_eq!(b.len(), HEADER + 3 * STORED_CHUNK + 500 + 16);
        std::fs::write(&f, &b[..keep]).unwrap();
        assert_fails(&s.get(&key(n)), &a_body, n);
        let r = s.get_in("mail", &key(n), &["-H", "Range: bytes=-10"]);
        assert_fails(&r, &a_body[len - 10..], &format!("{n} range"));
    }

    // Appended bytes: a few, or a whole chunk's worth.
    for (n, extra) in [
        ("append-1", 1usize),
        ("append-17", 17),
        ("append-chunk", STORED_CHUNK),
    ] {
        put(n, &a_body);
        let f = s.stored(&key(n));
        let mut b = std::fs::read(&f).unwrap();
        b.extend(pattern(extra, 99));
        std::fs::write(&f, &b).unwrap();
        assert_fails(&s.get(&key(n)), &a_body, n);
    }

    // Two objects swapped between keys: each fails under the other's name.
    put("swap-a", &a_body);
    put("swap-b", &b_body);
    let (fa, fb) = (s.stored(&key("swap-a")), s.stored(&key("swap-b")));
    let (ba, bb) = (std::fs::read(&fa).unwrap(), std::fs::read(&fb).unwrap());
    std::fs::write(&fa, &bb).unwrap();
    std::fs::write(&fb, &ba).unwrap();
    assert_fails(&s.get(&key("swap-a")), &a_body, "swap-a");
    assert_fails(&s.get(&key("swap-b")), &b_body, "swap-b");
    assert_fails(&s.get(&key("swap-a")), &b_body, "swap-a (as b)");

    // The header replaced by another object's: another key's, and an older version of the
    // same key's (whose binding matches, but whose data key opens none of these chunks).
    put("hdr-a", &a_body);
    put("hdr-b", &b_body);
    let (fa, fb) = (s.stored(&key("hdr-a")), s.stored(&key("hdr-b")));
    let mut ba = std::fs::read(&fa).unwrap();
    let bb = std::fs::read(&fb).unwrap();
    ba[..HEADER].copy_from_slice(&bb[..HEADER]);
    std::fs::write(&fa, &ba).unwrap();
    assert_fails(&s.get(&key("hdr-a")), &a_body, "hdr-a");
    assert_fails(&s.get(&key("hdr-a")), &b_body, "hdr-a (as b)");

    put("hdr-old", &a_body);
    let old = std::fs::read(s.stored(&key("hdr-old"))).unwrap();
    put("hdr-old", &b_body);
    let f = s.stored(&key("hdr-old"));
    let mut new = std::fs::read(&f).unwrap();
    new[..HEADER].copy_from_slice(&old[..HEADER]);
    std::fs::write(&f, &new).unwrap();
    for expected in [&a_body, &b_body] {
        let r = s.get(&key("hdr-old"));
        assert_fails(&r, expected, "hdr-old");
        // The old header verifies; its data key fails on the new chunks at once.
        assert_eq!(r.status, 502, "hdr-old");
        assert_eq!(
            r.header("x-custodia-error"),
            Some("ObjectVerificationFailed")
        );
        let r = s.get_in("mail", &key("hdr-old"), &["-H", "Range: bytes=70000-70010"]);
        assert_fails(&r, &expected[70000..], "hdr-old range");
    }

    // The gateway is still healthy and serves undamaged objects.
    put("fine", &b_body);
    assert!(s.get(&key("fine")).body == b_body);
}

#[test]
fn checksums_and_tokens() {
    let s = stack();
    let key = format!("{MAILBOX_A}/md5.eml");
    let fox = b"The quick brown fox jumps over the lazy dog";
    // MD5 of the empty string: a well-formed checksum of other bytes.
    let r = s.put_in(
        "mail",
        &key,
        fox,
        &["-H", "Content-MD5: 1B2M2Y8AsgTpgAmY7PhCfg=="],
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-custodia-error"), Some("BadDigest"));
    assert!(
        !s.stored(&key).exists(),
        "a body failing its checksum was stored"
    );
    // A large body with a wrong checksum: the upload upstream is aborted, nothing stored.
    let big = pattern(3 * CHUNK + 1, 5);
    let r = s.put_in(
        "mail",
        &key,
        &big,
        &["-H", "Content-MD5: 1B2M2Y8AsgTpgAmY7PhCfg=="],
    );
    assert_eq!(r.status, 400);
    assert!(!s.stored(&key).exists());
    let r = s.put_in(
        "mail",
        &key,
        &big,
        &[
            "-H",
            "Content-MD5: 1B2M2Y8AsgTpgAmY7PhCfg==",
            "-H",
            "Transfer-Encoding: chunked",
        ],
    );
    assert_eq!(r.status, 400);
    assert!(!s.stored(&key).exists());
    assert!(wait_until(Duration::from_secs(5), || files_under(
        &s.nginx.temp_dir()
    )
    .is_empty()));
    assert!(files_under(&s.nginx.root).is_empty());
    // Not base64 MD5 at all.
    let r = s.put_in("mail", &key, fox, &["-H", "Content-MD5: nope"]);
    assert_eq!(r.status, 400);
    // The right one is accepted, sealed (never stored in clear) and returned.
    let good = "nhB9nTcrtoJr2B01QqQZ1g==";
    let r = s.put_in("mail", &key, fox, &["-H", &format!("Content-MD5: {good}")]);
    assert_eq!(r.status, 201);
    let got = s.get(&key);
    assert_eq!(got.body, fox);
    assert_eq!(got.header("content-md5"), Some(good));
    assert!(!store_contains(&s.nginx.root, good.as_bytes()));
    assert!(!store_contains(
        &s.nginx.root,
        &hex::decode("9e107d9d372bb6826bd81d3542a419d6").unwrap()
    ));

    // Tokens: missing, wrong, wrong scheme → 401 for every method; nothing served or stored.
    let url = s.url("mail", &key);
    for auth in [
        "Authorization:",
        "Authorization: Bearer wrong-token",
        "Authorization: Bearer ",
        "Authorization: Basic dGVzdDp0ZXN0",
        &format!("Authorization: bearer{TOKEN}"),
    ] {
        for method in ["GET", "HEAD", "PUT", "DELETE"] {
            let mut args = vec!["-H", auth, "-X", method];
            let file = s.file_of(b"intruder");
            if method == "PUT" {
                args.extend(["-T", file.to_str().unwrap()]);
            }
            if method == "HEAD" {
                args = vec!["-H", auth, "-I"];
            }
            args.push(&url);
            let r = curl(&args);
            assert_eq!(r.status, 401, "{method} with {auth:?}");
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
            assert!(!r.body.windows(fox.len()).any(|w| w == fox));
        }
    }
    assert_eq!(s.get(&key).body, fox, "still intact");
    // The right token with extra whitespace works.
    let r = curl(&["-H", &format!("Authorization: Bearer  {TOKEN} "), &url]);
    assert_eq!(r.status, 200);
}

#[test]
fn custodian_down_reads_answer_503_and_writes_keep_working() {
    let mut s = stack();
    let key = format!("{MAILBOX_A}/before.eml");
    let body = pattern(100_000, 3);
    assert_eq!(s.put(&key, &body).status, 201);
    let read_before = format!("{MAILBOX_A}/read-before.eml");
    assert_eq!(s.put(&read_before, b"read once").status, 201);
    assert_eq!(s.get(&read_before).body, b"read once");

    s.w.custodian.stop();
    let r = s.get(&key);
    assert_eq!(r.status, 503, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("x-custodia-error"), Some("ServiceUnavailable"));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 0);
    assert!(!r.body.windows(32).any(|w| body.windows(32).any(|b| b == w)));
    let r = s.head(&key);
    assert_eq!(r.status, 503);
    assert!(r.header("retry-after").is_some());
    let r = s.get_in("mail", &key, &["-H", "Range: bytes=0-9"]);
    assert_eq!(r.status, 503);

    // Writes seal from the cached manifest: no custodian needed.
    let during = format!("{MAILBOX_A}/during.eml");
    let r = s.put(&during, b"written while the custodian is down");
    assert_eq!(r.status, 201);
    let r = s.put_in(
        "mail",
        &format!("{MAILBOX_A}/during-chunked"),
        &pattern(200_000, 4),
        &["-H", "Transfer-Encoding: chunked"],
    );
    assert_eq!(r.status, 201);
    // An object whose data key is cached still reads (the cache's purpose).
    assert_eq!(s.get(&read_before).body, b"read once");

    // The custodian back (on a new port): what was written meanwhile opens with the SDK.
    s.w.custodian.spawn();
    let stored = std::fs::read(s.stored(&during)).unwrap();
    let opened = rt()
        .block_on(
            s.sdk()
                .open(&Binding::new("mail", &during).unwrap(), &stored),
        )
        .unwrap();
    assert_eq!(opened.plaintext, b"written while the custodian is down");
}

#[test]
fn an_out_of_region_gateway_is_denied_by_the_custodian_and_the_denial_is_audited() {
    let s = stack();
    let key = format!("{MAILBOX_A}/INBOX/private.eml");
    let body = pattern(5000, 77);
    assert_eq!(s.put(&key, &body).status, 201);

    // A gateway in the US, same store, with the US provider's certificate.
    let us_dir = s.dir.path().join("gateway-us");
    let config = gateway_config(&s.w, &s.w.gw_us, &s.nginx.upstream(), "", &us_dir).replacen(
        "region = \"ie\"",
        "region = \"us\"",
        1,
    );
    let us = GatewayProc::start(&us_dir, &config);
    let url = us.url(&format!("/mail/{key}"));
    let r = curl(&[&url]);
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-custodia-error"), Some("AccessDenied"));
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(text.contains("ie/dublin"), "{text}");
    assert!(text.contains("approval_required"), "{text}");
    assert!(!r.body.windows(10).any(|w| body.windows(10).any(|b| b == w)));
    let r = curl(&["-I", &url]);
    assert_eq!(r.status, 403);
    let r = curl(&["-H", "Range: bytes=0-3", &url]);
    assert_eq!(r.status, 403);

    // The US gateway still seals for Irish mailboxes (public keys only) ...
    let us_key = format!("{MAILBOX_A}/INBOX/delivered-in-us.eml");
    let file = s.file_of(b"delivered through the US");
    let r = curl(&[
        "-T",
        file.to_str().unwrap(),
        &us.url(&format!("/mail/{us_key}")),
    ]);
    assert_eq!(r.status, 201);
    // ... which it then cannot read back, while the Irish gateway can.
    assert_eq!(curl(&[&us.url(&format!("/mail/{us_key}"))]).status, 403);
    assert_eq!(s.get(&us_key).body, b"delivered through the US");

    // Every refusal is in the custodian's audit log, with the caller's region.
    let denied: Vec<_> =
        s.w.custodian
            .log()
            .into_iter()
            .filter(|r| r.operation == "unwrap" && r.outcome == Outcome::Deny)
            .collect();
    assert!(denied.len() >= 4, "{denied:?}");
    assert!(
        denied
            .iter()
            .all(|r| r.caller_region == "us" && r.reason == "approval_required")
    );
    assert!(
        denied
            .iter()
            .all(|r| r.mailbox.as_deref() == Some(MAILBOX_A))
    );
    // The metrics count the failed custodian calls.
    let m = curl(&[&us.url("/metrics")]);
    let m = String::from_utf8(m.body).unwrap();
    assert!(
        metric(&m, "custodia_gateway_custodian_failures_total").unwrap() >= 4.0,
        "{m}"
    );
}

#[test]
fn store_down_answers_503_for_reads_and_writes() {
    let mut s = stack();
    let key = format!("{MAILBOX_A}/x.eml");
    assert_eq!(s.put(&key, b"stored").status, 201);
    s.nginx.kill();
    for r in [
        s.get(&key),
        s.head(&key),
        s.put(&key, b"new"),
        s.put(&key, &pattern(300_000, 1)),
        s.put_in(
            "mail",
            &key,
            &pattern(300_000, 1),
            &["-H", "Transfer-Encoding: chunked"],
        ),
        s.get_in("mail", &key, &["-H", "Range: bytes=0-2"]),
    ] {
        assert_eq!(r.status, 503, "{:?}", String::from_utf8_lossy(&r.body));
        assert!(r.header("retry-after").is_some());
    }
    assert_eq!(s.delete(&key).status, 503);
    // The gateway itself is fine.
    assert_eq!(curl(&[&s.gw.url("/healthz")]).status, 200);
}

/// Whether `mail`/`key` exists in the store, or any request body is still in nginx's temp
/// directory, once things settle.
fn settled_absent(s: &Stack, key: &str) {
    assert!(
        wait_until(Duration::from_secs(10), || files_under(&s.nginx.temp_dir())
            .is_empty()),
        "nginx still holds a partial body"
    );
    assert!(
        !s.stored(key).exists(),
        "a partial upload of {key} was stored"
    );
}

#[test]
fn an_upload_cut_off_by_the_client_leaves_nothing_in_the_store() {
    let s = stack();
    let big = pattern(16 * 1024 * 1024, 21);

    // curl gives up after a second at 1 MB/s.
    let key = format!("{MAILBOX_A}/slow.bin");
    let r = s.put_in(
        "mail",
        &key,
        &big,
        &["--limit-rate", "1M", "--max-time", "1"],
    );
    assert_ne!(r.exit, 0, "curl should have timed out");
    settled_absent(&s, &key);
    let key2 = format!("{MAILBOX_A}/slow-chunked.bin");
    let r = s.put_in(
        "mail",
        &key2,
        &big,
        &[
            "--limit-rate",
            "1M",
            "--max-time",
            "1",
            "-H",
            "Transfer-Encoding: chunked",
        ],
    );
    assert_ne!(r.exit, 0);
    settled_absent(&s, &key2);

    // A raw client that announces 8 MiB, sends 3 and closes; and one sending chunks.
    let addr = s.gw.http.unwrap();
    let key3 = format!("{MAILBOX_A}/half.bin");
    let mut c = TcpStream::connect(addr).unwrap();
    write!(
        c,
        "PUT /mail/{key3} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n",
        8 << 20
    )
    .unwrap();
    c.write_all(&big[..3 << 20]).unwrap();
    c.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(c);
    settled_absent(&s, &key3);

    let key4 = format!("{MAILBOX_A}/half-chunked.bin");
    let mut c = TcpStream::connect(addr).unwrap();
    write!(
        c,
        "PUT /mail/{key4} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    for piece in big[..(3 << 20)].chunks(100_000) {
        write!(c, "{:x}\r\n", piece.len()).unwrap();
        c.write_all(piece).unwrap();
        c.write_all(b"\r\n").unwrap();
    }
    c.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(c);
    settled_absent(&s, &key4);

    // An upload replacing an object and cut off leaves the old object intact.
    let key5 = format!("{MAILBOX_A}/replace.bin");
    assert_eq!(s.put(&key5, b"the old version").status, 201);
    let mut c = TcpStream::connect(addr).unwrap();
    write!(
        c,
        "PUT /mail/{key5} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n",
        4 << 20
    )
    .unwrap();
    c.write_all(&big[..1 << 20]).unwrap();
    drop(c);
    assert!(wait_until(Duration::from_secs(10), || files_under(
        &s.nginx.temp_dir()
    )
    .is_empty()));
    assert_eq!(s.get(&key5).body, b"the old version");

    assert!(
        files_under(&s.nginx.root).len() == 1,
        "{:?}",
        files_under(&s.nginx.root)
    );
    assert_eq!(curl(&[&s.gw.url("/healthz")]).status, 200);
}

#[test]
fn sixteen_concurrent_clients() {
    let s = stack();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16usize)
            .map(|i| {
                let s: &Front = &s;
                scope.spawn(move || {
                    for round in 0..3usize {
                        let len = 1000 + i * 37_011 + round * 70_001;
                        let body = pattern(len, (i * 10 + round) as u64 + 1000);
                        let key = format!("{MAILBOX_A}/c/{i}/{round}");
                        let put = s.put(&key, &body);
                        assert_eq!(put.status, 201, "client {i} round {round}");
                        let got = s.get(&key);
                        assert_eq!(got.status, 200, "client {i} round {round}");
                        assert!(got.body == body, "client {i} round {round}: wrong bytes");
                        let r = s.get_in("mail", &key, &["-H", "Range: bytes=500-999"]);
                        assert_eq!(r.body, body[500..1000]);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    let m = s.metrics();
    assert_eq!(
        metric(
            &m,
            "custodia_gateway_requests_total{front=\"http\",op=\"put\",status=\"201\"}"
        ),
        Some(48.0)
    );
    assert_eq!(metric(&m, "custodia_gateway_in_flight"), Some(0.0));
}

#[test]
fn a_100_mib_object_streams_through_in_bounded_memory() {
    let s = stack();
    const LEN: usize = 100 * 1024 * 1024;
    let body = pattern(LEN, 42);
    let file = s.file_of(&body);
    let want = sha256(&body);
    drop(body);
    let key = format!("{MAILBOX_A}/large.bin");
    let url = s.url("mail", &key);
    let started = std::time::Instant::now();
    let r = curl(&["-T", file.to_str().unwrap(), &url]);
    assert_eq!(r.status, 201);
    let put_secs = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let r = curl(&[&url]);
    let get_secs = started.elapsed().as_secs_f64();
    assert_eq!(r.status, 200);
    assert_eq!(r.exit, 0);
    assert_eq!(r.body.len(), LEN);
    assert!(sha256(&r.body) == want, "100 MiB came back different");
    drop(r);
    let r = s.get_in("mail", &key, &["-H", "Range: bytes=52428790-52428809"]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body.len(), 20);
    // Streamed, chunked, as well.
    let key2 = format!("{MAILBOX_A}/large-chunked.bin");
    let url2 = s.url("mail", &key2);
    let r = curl(&[
        "-T",
        file.to_str().unwrap(),
        "-H",
        "Transfer-Encoding: chunked",
        &url2,
    ]);
    assert_eq!(r.status, 201);
    let r = curl(&[&url2]);
    assert!(sha256(&r.body) == want);
    let peak = s.gw.peak_rss_kib();
    println!(
        "100 MiB through the gateway (debug build): PUT {put_secs:.2} s, GET {get_secs:.2} s, \
         gateway peak RSS {peak} KiB ({:.1} MiB)",
        peak as f64 / 1024.0
    );
    assert!(peak < 64 * 1024, "gateway peak RSS {peak} KiB");
}

#[test]
fn healthz_metrics_and_the_dek_cache() {
    let s = stack();
    let r = curl(&["-H", "Authorization:", &s.gw.url("/healthz")]);
    assert_eq!(r.status, 200);
    // Metrics need no token, and name no key or mailbox.
    let r = curl(&["-H", "Authorization:", &s.gw.url("/metrics")]);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));

    let key = format!("{MAILBOX_A}/m.eml");
    assert_eq!(s.put(&key, &pattern(10_000, 8)).status, 201);
    let m0 = s.metrics();
    let calls = |m: &str| metric(m, "custodia_gateway_custodian_calls_total").unwrap();
    let hits = |m: &str| metric(m, "custodia_gateway_dek_cache_hits_total").unwrap();
    assert!(
        m0.contains("custodia_gateway_requests_total{front=\"http\",op=\"put\",status=\"201\"} 1")
    );
    assert_eq!(calls(&m0), 0.0, "writes never call custodians");
    assert!(metric(&m0, "custodia_gateway_bytes_in_total").unwrap() >= 10_000.0);

    assert_eq!(s.get(&key).status, 200);
    let m1 = s.metrics();
    assert_eq!(calls(&m1), calls(&m0) + 1.0);
    // Re-reads (GET, HEAD, ranges) hit the DEK cache: no further custodian calls.
    assert_eq!(s.get(&key).status, 200);
    assert_eq!(s.head(&key).status, 200);
    assert_eq!(
        s.get_in("mail", &key, &["-H", "Range: bytes=1-2"]).status,
        206
    );
    let m2 = s.metrics();
    assert_eq!(calls(&m2), calls(&m1));
    assert_eq!(hits(&m2), hits(&m1) + 3.0);
    assert!(metric(&m2, "custodia_gateway_bytes_out_total").unwrap() >= 20_000.0);
    assert_eq!(
        metric(
            &m2,
            "custodia_gateway_requests_total{front=\"http\",op=\"get\",status=\"200\"}"
        ),
        Some(2.0)
    );
    assert!(m2.contains(
        "custodia_gateway_request_seconds_bucket{front=\"http\",op=\"get\",le=\"+Inf\"}"
    ));
    assert!(!m2.contains(MAILBOX_A) && !m2.contains("m.eml"));
    // Refusals are counted by status.
    assert_eq!(
        curl(&["-H", "Authorization: Bearer no", &s.url("mail", &key)]).status,
        401
    );
    assert_eq!(
        metric(
            &s.metrics(),
            "custodia_gateway_requests_total{front=\"http\",op=\"get\",status=\"401\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn the_gateway_exits_cleanly_on_sigterm() {
    let mut s = stack();
    let key = format!("{MAILBOX_A}/bye.eml");
    assert_eq!(s.put(&key, b"bye").status, 201);
    assert_eq!(s.get(&key).body, b"bye");
    // A slow download in flight is allowed to finish.
    let big = pattern(4 * 1024 * 1024, 9);
    let slow = format!("{MAILBOX_A}/slow-read.bin");
    assert_eq!(s.put(&slow, &big).status, 201);
    let url = s.url("mail", &slow);
    let reader = std::thread::spawn(move || curl(&["--limit-rate", "2M", &url]));
    std::thread::sleep(Duration::from_millis(500));
    assert!(s.gw.terminate(), "the gateway did not exit 0 on SIGTERM");
    let r = reader.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.exit, 0, "the in-flight download was cut off");
    assert!(r.body == big);
}

#[test]
fn objects_over_the_size_limit_are_refused_and_never_stored() {
    let s = stack_with("[limits]\nmax_object_bytes = 100000\n[cache]\ncapacity = 0\n");
    let key = format!("{MAILBOX_A}/too-big.bin");
    let big = pattern(100_001, 1);
    // Declared too large: refused before anything is sent upstream.
    let r = s.put(&key, &big);
    assert_eq!(r.status, 413);
    assert_eq!(r.header("x-custodia-error"), Some("EntityTooLarge"));
    // Streamed without a length: the upload upstream is aborted when the limit is passed.
    let r = s.put_in("mail", &key, &big, &["-H", "Transfer-Encoding: chunked"]);
    assert_eq!(r.status, 413);
    settled_absent(&s, &key);
    assert!(files_under(&s.nginx.root).is_empty());
    // At the limit: fine.
    assert_eq!(s.put(&key, &big[..100_000]).status, 201);
    assert!(s.get(&key).body == big[..100_000]);
    // With the DEK cache off, every read asks the custodian.
    let m0 = s.metrics();
    assert_eq!(s.get(&key).status, 200);
    let m1 = s.metrics();
    let calls = |m: &str| metric(m, "custodia_gateway_custodian_calls_total").unwrap();
    assert_eq!(calls(&m1), calls(&m0) + 1.0);
    assert_eq!(
        metric(&m1, "custodia_gateway_dek_cache_hits_total"),
        Some(0.0)
    );
}

#[test]
fn a_custodian_rate_limit_is_retryable_not_a_refusal() {
    let s = stack_in(
        world_with(
            &["per_mailbox_burst = 2", "per_mailbox_per_minute = 1"],
            &[],
        ),
        "[cache]\ncapacity = 0\n",
    );
    let key = format!("{MAILBOX_A}/often.eml");
    assert_eq!(s.put(&key, b"read me often").status, 201);
    assert_eq!(s.get(&key).status, 200);
    assert_eq!(s.head(&key).status, 200);
    let r = s.get(&key);
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("x-custodia-error"), Some("ServiceUnavailable"));
    assert!(r.header("retry-after").is_some());
    assert!(String::from_utf8_lossy(&r.body).contains("rate_limited"));
    // Other mailboxes have their own budget.
    let other = format!("{MAILBOX_B}/fine.eml");
    assert_eq!(s.put(&other, b"fine").status, 201);
    assert_eq!(s.get(&other).body, b"fine");
}

//! The operators' bulk jobs as processes against a real S3 store (s3s-fs) and a real
//! custodian: `custodia migrate` of thousands of plaintext objects, killed with SIGKILL
//! mid-run and resumed; `custodian rotate`, `rewrap`, `retire` and `verify`; `shred` with
//! an M-of-N approval; and bad input (unknown bucket, unrouted bucket, store and custodian
//! unreachable).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use custodia_gateway::store::s3::S3Store;
use custodia_gateway::store::{BodyStream, Store};
use custodia_tests::custodia_bin;
use custodia_tests::gateway::GatewayProc;
use custodia_tests::s3::{S3sFs, STORE_AK, STORE_SK, aws, open_with_sdk, s3_gateway_config};
use custodia_tests::world::{World, rt, world};
use futures_util::StreamExt as _;
use serde_json::Value;

const BUCKET: &str = "mail";

struct Ops {
    world: World,
    store: S3sFs,
    s3: Arc<Store>,
    config: PathBuf,
    tmp: tempfile::TempDir,
}

fn body(i: usize) -> Vec<u8> {
    let mut b =
        format!("From: sender{i}@example.com\nSubject: PLAINTEXT-MARKER-{i:05}\n\n").into_bytes();
    let filler = b"Dear reader, this message is private. ";
    b.extend(filler.iter().cycle().take((i * 37) % 3000));
    b
}

fn key(i: usize) -> String {
    format!("m{}@example.ie/INBOX/{i:05}.eml", i % 10)
}

fn big(len: usize, seed: u8) -> Vec<u8> {
    let marker = format!("PLAINTEXT-MARKER-BIG-{seed}-");
    marker
        .as_bytes()
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

impl Ops {
    fn start() -> Self {
        let world = world();
        let tmp = tempfile::tempdir().unwrap();
        let store = S3sFs::start(&tmp.path().join("s3"));
        let dir = tmp.path().join("gw");
        let cfg = s3_gateway_config(&world, &world.gw_ie, store.addr, &dir);
        let config = dir.join("gateway.toml");
        std::fs::write(&config, cfg).unwrap();
        let s3 = S3Store::new(
            &format!("http://{}", store.addr),
            "us-east-1",
            STORE_AK,
            STORE_SK,
        );
        rt().block_on(s3.bucket(&http::Method::PUT, BUCKET))
            .unwrap();
        Self {
            world,
            store,
            s3: Arc::new(Store::S3(s3)),
            config,
            tmp,
        }
    }

    fn s3(&self) -> &S3Store {
        match &*self.s3 {
            Store::S3(s) => s,
            Store::Webdav(_) => unreachable!(),
        }
    }

    /// Puts `objects` straight into the store (legacy plaintext, as before Custodia).
    fn seed(&self, objects: Vec<(String, Vec<u8>)>) {
        self.seed_in(BUCKET, objects);
    }

    fn seed_in(&self, bucket: &'static str, objects: Vec<(String, Vec<u8>)>) {
        rt().block_on(async {
            let limit = Arc::new(tokio::sync::Semaphore::new(32));
            let mut set = tokio::task::JoinSet::new();
            for (k, v) in objects {
                let s3 = self.s3.clone();
                let permit = limit.clone().acquire_owned().await.unwrap();
                set.spawn(async move {
                    let len = v.len() as u64;
                    let one: BodyStream =
                        futures_util::stream::once(async move { Ok(bytes::Bytes::from(v)) })
                            .boxed();
                    s3.put(bucket, &k, Some(len), one).await.unwrap();
                    drop(permit);
                });
            }
            while let Some(r) = set.join_next().await {
                r.unwrap();
            }
        });
    }

    fn raw(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.store.root.join(BUCKET).join(key)).ok()
    }

    fn custodia(&self, args: &[&str]) -> Output {
        Command::new(custodia_bin())
            .args(args)
            .env("CUSTODIA_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `custodia <job> --config … --bucket mail <args>`.
    fn job(&self, job: &str, args: &[&str]) -> Output {
        let mut all = vec![
            job,
            "--config",
            self.config.to_str().unwrap(),
            "--bucket",
            BUCKET,
        ];
        all.extend_from_slice(args);
        self.custodia(&all)
    }

    /// The admin's custodian flags (no keys index in the test world: explicit files).
    fn admin_flags(&self) -> Vec<String> {
        let dir = self.tmp.path().join("admin");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), &self.world.server_ca.cert_pem).unwrap();
        std::fs::write(dir.join("admin.pem"), &self.world.admin_ie.cert_pem).unwrap();
        std::fs::write(dir.join("admin.key"), &self.world.admin_ie.key_pem).unwrap();
        [
            "--region",
            "ie",
            "--custodian",
            "dublin",
            "--server",
            &self.world.custodian.addr.to_string(),
            "--server-name",
            "localhost",
            "--ca",
            dir.join("ca.pem").to_str().unwrap(),
            "--cert",
            dir.join("admin.pem").to_str().unwrap(),
            "--cert-key",
            dir.join("admin.key").to_str().unwrap(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    fn admin(&self, verb: &[&str]) -> Output {
        let flags = self.admin_flags();
        let mut args: Vec<&str> = vec!["custodian"];
        args.extend_from_slice(verb);
        args.extend(flags.iter().map(String::as_str));
        self.custodia(&args)
    }
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &Output, what: &str) -> Value {
    serde_json::from_str(&ok(out, what)).unwrap_or_else(|e| panic!("{what}: bad JSON: {e}"))
}

fn count(v: &Value, kind: &str) -> u64 {
    v["counts"][kind].as_u64().unwrap_or(0)
}

fn status(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Reads the checkpoint file, if it is there and complete.
fn checkpoint(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

#[test]
fn migrate_thousands_killed_and_resumed_seals_everything_once() {
    const N: usize = 5000;
    let o = Ops::start();
    let mut objects: Vec<(String, Vec<u8>)> = (0..N).map(|i| (key(i), body(i))).collect();
    objects.push(("aoife@example.ie/big/6mib.eml".into(), big(6 << 20, 1)));
    objects.push(("aoife@example.ie/big/1.5mib.eml".into(), big(1536 << 10, 2)));
    objects.push(("aoife@example.ie/big/empty.eml".into(), Vec::new()));
    let total = objects.len() as u64;
    o.seed(objects.clone());
    assert!(
        o.store.root.join(BUCKET).join(key(0)).exists(),
        "seeded objects are on the store's disk"
    );

    // A dry run changes nothing and counts what a run would do.
    let dry = json(
        &o.job("migrate", &["--dry-run", "--json"]),
        "migrate --dry-run",
    );
    assert_eq!(count(&dry, "would_migrate"), total);
    assert_eq!(
        o.raw(&key(7)).unwrap(),
        body(7),
        "--dry-run changed nothing"
    );

    // A run with a checkpoint, killed with SIGKILL once it is well under way.
    let ck = o.tmp.path().join("migrate-checkpoint.json");
    let mut child = Command::new(custodia_bin())
        .args([
            "migrate",
            "--config",
            o.config.to_str().unwrap(),
            "--bucket",
            BUCKET,
        ])
        .args([
            "--jobs",
            "8",
            "--quiet",
            "--checkpoint",
            ck.to_str().unwrap(),
        ])
        .env("CUSTODIA_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let migrated = checkpoint(&ck).map_or(0, |c| count(&c, "migrated"));
        if migrated >= 300 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "migrate ended before it was killed"
        );
        assert!(Instant::now() < deadline, "migrate made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = checkpoint(&ck).unwrap();
    assert_eq!(
        at_kill["finished"],
        Value::Bool(false),
        "killed mid-run: {at_kill}"
    );

    // Mail deleted while the job was stopped is not brought back: one object certainly
    // done, one certainly not.
    let done_key = key(0);
    let late_key = key(N - 1);
    rt().block_on(o.s3().delete(BUCKET, &done_key)).unwrap();
    rt().block_on(o.s3().delete(BUCKET, &late_key)).unwrap();

    let resumed = json(
        &o.job(
            "migrate",
            &[
                "--jobs",
                "8",
                "--checkpoint",
                ck.to_str().unwrap(),
                "--json",
            ],
        ),
        "migrate (resumed)",
    );
    assert_eq!(resumed["complete"], Value::Bool(true), "{resumed}");
    assert_eq!(count(&resumed, "failed"), 0, "{resumed}");
    assert_eq!(
        count(&resumed, "migrated") + count(&resumed, "already_sealed") + count(&resumed, "gone"),
        total - 1,
        "every object handled once per run, the one deleted before its batch was listed \
         again is not listed: {resumed}"
    );
    assert!(
        o.raw(&done_key).is_none() && o.raw(&late_key).is_none(),
        "deleted mail came back"
    );
    let notes = resumed["notes"].to_string();
    assert!(
        notes.contains("every object under mail/ is sealed"),
        "{notes}"
    );

    // Every object is sealed on disk, no plaintext is left anywhere in the store (temporary
    // copies included), and objects open to their original bytes.
    let mut needles: Vec<String> = vec!["PLAINTEXT-MARKER".into(), "private".into()];
    needles.push("Dear reader".into());
    let leaks = custodia_tests::s3::leaks(&o.store.root, &needles);
    assert!(
        leaks.is_empty(),
        "plaintext left in the store: {:?}",
        &leaks[..leaks.len().min(5)]
    );
    let temp = o.store.root.join(BUCKET).join(".custodia/migrate");
    let left: Vec<_> = custodia_tests::gateway::files_under(&temp);
    assert!(left.is_empty(), "temporary copies left: {left:?}");
    for (k, v) in &objects {
        if *k == done_key || *k == late_key {
            continue;
        }
        let stored = o.raw(k).unwrap_or_else(|| panic!("{k} missing"));
        assert!(
            custodia_envelope::looks_sealed(&stored),
            "{k} is not sealed"
        );
        assert_ne!(&stored, v);
    }
    for (k, v) in objects
        .iter()
        .step_by(250)
        .chain(objects.iter().rev().take(3))
    {
        if *k == done_key || *k == late_key {
            continue;
        }
        let opened = open_with_sdk(&o.world, BUCKET, k, &o.raw(k).unwrap());
        assert!(opened == *v, "{k} does not open to its original bytes");
    }

    // A second run does nothing.
    let again = json(&o.job("migrate", &["--json"]), "migrate again");
    assert_eq!(count(&again, "migrated"), 0, "{again}");
    assert_eq!(count(&again, "already_sealed"), total - 2, "{again}");

    // verify agrees, and the gateway serves a migrated message to an unchanged client.
    let v = json(&o.job("verify", &["--json"]), "verify");
    assert_eq!(count(&v, "sealed"), total - 2, "{v}");
    assert_eq!(count(&v, "plaintext"), 0, "{v}");
    assert_eq!(
        v["key_versions"]["ie/dublin v1"].as_u64(),
        Some(total - 2),
        "{v}"
    );
    let gw = GatewayProc::start(
        &o.tmp.path().join("gw"),
        &std::fs::read_to_string(&o.config).unwrap(),
    );
    let out = o.tmp.path().join("got.eml");
    ok(
        &aws(
            gw.s3.unwrap(),
            &[
                "s3",
                "cp",
                &format!("s3://{BUCKET}/{}", key(42)),
                out.to_str().unwrap(),
            ],
            None,
        ),
        "aws s3 cp of a migrated message",
    );
    assert_eq!(std::fs::read(&out).unwrap(), body(42));
}

/// Seeds `n` plaintext objects from index `from` and migrates them (sealed to the
/// custodian's active key version).
fn sealed_objects(o: &Ops, from: usize, n: usize) -> Vec<(String, Vec<u8>)> {
    let objects: Vec<(String, Vec<u8>)> = (from..from + n).map(|i| (key(i), body(i))).collect();
    o.seed(objects.clone());
    let m = json(&o.job("migrate", &["--json", "--quiet"]), "migrate");
    assert_eq!(count(&m, "failed"), 0, "{m}");
    objects
}

#[test]
fn rotate_rewrap_retire_then_verify_finds_nothing_on_the_old_version() {
    let o = Ops::start();
    let objects = sealed_objects(&o, 0, 300);
    let before = json(&o.job("verify", &["--json"]), "verify");
    assert_eq!(
        before["key_versions"]["ie/dublin v1"].as_u64(),
        Some(300),
        "{before}"
    );
    let stored_before = o.raw(&key(5)).unwrap();

    // Rewrap to a version that is not active yet is refused before anything is written.
    let early = o.job("rewrap", &["--to-version", "2"]);
    assert_eq!(status(&early), 2, "{}", stderr(&early));
    assert!(
        stderr(&early).contains("active key version is 1"),
        "{}",
        stderr(&early)
    );

    ok(&o.admin(&["rotate"]), "custodian rotate");
    let dry = json(
        &o.job("rewrap", &["--to-version", "2", "--dry-run", "--json"]),
        "rewrap --dry-run",
    );
    assert_eq!(count(&dry, "would_rewrap"), 300, "{dry}");

    // Batches of 64 objects per custodian call, with a checkpoint.
    let ck = o.tmp.path().join("rewrap.json");
    let r = json(
        &o.job(
            "rewrap",
            &[
                "--to-version",
                "2",
                "--batch",
                "64",
                "--checkpoint",
                ck.to_str().unwrap(),
                "--json",
            ],
        ),
        "rewrap",
    );
    assert_eq!(count(&r, "rewrapped"), 300, "{r}");
    assert_eq!(count(&r, "failed"), 0, "{r}");
    // Only the header changed, and it kept its length: the body bytes are the same.
    let stored_after = o.raw(&key(5)).unwrap();
    let hlen = custodia_envelope::Header::parse(&stored_after)
        .unwrap()
        .profile()
        .header_size();
    assert_eq!(stored_after.len(), stored_before.len());
    assert_ne!(stored_after[..hlen], stored_before[..hlen]);
    assert_eq!(
        stored_after[hlen..],
        stored_before[hlen..],
        "body chunks rewritten"
    );
    // The custodian's audit log has the rewraps, batched: far fewer entries' calls than
    // objects is not observable here, but every object's stanza went through it.
    let rewraps = o
        .world
        .custodian
        .log()
        .iter()
        .filter(|r| r.operation == "rewrap")
        .count();
    assert!(rewraps >= 300, "{rewraps} rewrap decisions logged");

    // Again: nothing left to do.
    let again = json(
        &o.job("rewrap", &["--to-version", "2", "--json"]),
        "rewrap again",
    );
    assert_eq!(count(&again, "current"), 300, "{again}");

    ok(&o.admin(&["retire", "1"]), "custodian retire 1");
    let after = json(&o.job("verify", &["--deep", "--json"]), "verify --deep");
    assert_eq!(count(&after, "sealed"), 300, "{after}");
    assert!(
        after["key_versions"].get("ie/dublin v1").is_none(),
        "{after}"
    );
    assert_eq!(
        after["key_versions"]["ie/dublin v2"].as_u64(),
        Some(300),
        "{after}"
    );
    for (k, v) in objects.iter().step_by(50) {
        assert!(
            open_with_sdk(&o.world, BUCKET, k, &o.raw(k).unwrap()) == *v,
            "{k}"
        );
    }
}

#[test]
fn shred_lists_asks_destroys_and_only_those_objects_stop_opening() {
    let o = Ops::start();
    let old = sealed_objects(&o, 0, 40);
    // Objects sealed to v1 in the other routed bucket too: a key version is global.
    ok(
        &aws(
            o.store.addr,
            &["s3api", "create-bucket", "--bucket", "legacy"],
            Some((STORE_AK, STORE_SK)),
        ),
        "create-bucket legacy",
    );
    let legacy: Vec<(String, Vec<u8>)> = (2000..2007).map(|i| (key(i), body(i))).collect();
    o.seed_in("legacy", legacy.clone());
    let cfg = o.config.to_str().unwrap();
    let m = o.custodia(&[
        "migrate", "--config", cfg, "--bucket", "legacy", "--json", "--quiet",
    ]);
    assert_eq!(status(&m), 0, "{}", stderr(&m));
    ok(&o.admin(&["rotate"]), "custodian rotate");
    let new = sealed_objects(&o, 1000, 15);

    let now = custodia_custodian::service::unix_now();
    let approval = custodia_custodian::approval::Approval {
        region: "ie".into(),
        custodian: "dublin".into(),
        caller_key_hash: hex::encode(o.world.admin_ie.key_hash),
        request_id: "kd-7".into(),
        purpose: "retire the 2025 key".into(),
        not_before: now - 60,
        not_after: now + 3600,
        action: custodia_custodian::approval::Action::DestroyKey { key_version: 1 },
    };
    let doc = o.world.sign(&approval, &[0, 2]);
    let approval_file = o.tmp.path().join("kd-7.json");
    std::fs::write(&approval_file, serde_json::to_vec(&doc).unwrap()).unwrap();

    let mut args: Vec<String> = ["--key-version", "1", "--approval"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    args.push(approval_file.to_str().unwrap().to_owned());
    args.extend(o.admin_flags());
    let mut shred = vec!["shred", "--config", cfg];
    shred.extend(args.iter().map(String::as_str));
    let argv = shred.clone();

    // Naming one bucket of two is refused: the scan would miss the other's v1 objects.
    let mut one_bucket = argv.clone();
    one_bucket.extend(["--bucket", BUCKET, "--yes"]);
    let partial = o.custodia(&one_bucket);
    assert_eq!(status(&partial), 2, "{}", stderr(&partial));
    assert!(
        stderr(&partial).contains("--bucket legacy"),
        "{}",
        stderr(&partial)
    );

    // --dry-run lists both buckets' objects and destroys nothing.
    let mut dry = argv.clone();
    dry.extend(["--dry-run", "--json"]);
    let listed = json(&o.custodia(&dry), "shred --dry-run");
    assert_eq!(listed["affected"].as_u64(), Some(47), "{listed}");
    assert_eq!(listed["destroyed"], Value::Bool(false), "{listed}");

    // Without a terminal and without --yes it lists, then refuses: nothing destroyed.
    let refused = o.custodia(&argv);
    assert_eq!(status(&refused), 2, "{}", stderr(&refused));
    assert!(String::from_utf8_lossy(&refused.stdout).contains("47 object(s)"));
    assert!(stderr(&refused).contains("--yes"), "{}", stderr(&refused));
    let (k0, v0) = &old[0];
    assert!(open_with_sdk(&o.world, BUCKET, k0, &o.raw(k0).unwrap()) == *v0);

    let mut yes = argv.clone();
    yes.extend(["--yes", "--json"]);
    let done = json(&o.custodia(&yes), "shred --yes");
    assert_eq!(done["affected"].as_u64(), Some(47), "{done}");
    assert_eq!(done["check"]["unreadable"].as_u64(), Some(47), "{done}");
    assert_eq!(done["check"]["still_open"], Value::Array(vec![]), "{done}");

    // verify --deep: the old objects are unreadable (exit status 3), the new ones open.
    let v = o.job("verify", &["--deep", "--json"]);
    assert_eq!(status(&v), 3, "{}", stderr(&v));
    let v: Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(count(&v, "unreadable"), 40, "{v}");
    let named = v["failures"].as_array().unwrap();
    assert_eq!(named.len(), 40, "every unreadable object is named: {v}");
    assert!(named.iter().all(|f| f["kind"] == "unreadable"), "{v}");
    assert_eq!(count(&v, "sealed"), 15, "{v}");
    for (k, body) in &new {
        assert!(
            open_with_sdk(&o.world, BUCKET, k, &o.raw(k).unwrap()) == *body,
            "{k}"
        );
    }
}

#[test]
fn bad_input_is_refused_clearly_and_nothing_is_lost() {
    let mut o = Ops::start();
    let objects = vec![
        (key(1), body(1)),
        (key(2), body(2)),
        (
            "no-mailbox.txt".to_owned(),
            b"PLAINTEXT-MARKER-NOROUTE".to_vec(),
        ),
    ];
    o.seed(objects);

    // The store's conditional writes, which the migration relies on.
    let s3 = o.s3();
    let etag = rt()
        .block_on(s3.get(BUCKET, &key(1), None))
        .unwrap()
        .etag
        .unwrap();
    let put = |k: String, etag: String| {
        let v = b"replacement".to_vec();
        let body: BodyStream =
            futures_util::stream::once(async move { Ok(bytes::Bytes::from(v)) }).boxed();
        rt().block_on(s3.put_if_match(BUCKET, &k, 11, body, &etag))
    };
    assert!(matches!(
        put(key(1), "\"0123456789abcdef0123456789abcdef\"".into()),
        Err(custodia_gateway::Error::PreconditionFailed)
    ));
    assert!(matches!(
        put("m0@example.ie/INBOX/none.eml".into(), etag.clone()),
        Err(custodia_gateway::Error::PreconditionFailed | custodia_gateway::Error::NotFound)
    ));
    assert_eq!(
        o.raw(&key(1)).unwrap(),
        body(1),
        "a failed conditional write changed nothing"
    );

    // Unknown bucket; a bucket no route names.
    let out = o.custodia(&[
        "migrate",
        "--config",
        o.config.to_str().unwrap(),
        "--bucket",
        "legacy",
    ]);
    assert_ne!(status(&out), 0);
    assert!(
        stderr(&out).contains("no bucket \"legacy\"") || stderr(&out).contains("NoSuchBucket"),
        "{}",
        stderr(&out)
    );
    let out = o.custodia(&[
        "verify",
        "--config",
        o.config.to_str().unwrap(),
        "--bucket",
        "other",
    ]);
    assert_eq!(status(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("no [[route]]"), "{}", stderr(&out));

    // A legacy object with a content type and user metadata (written to the store by
    // awscli): both are sealed with it and served back by the gateway.
    let typed = "m3@example.ie/INBOX/typed.eml";
    let src = o.tmp.path().join("typed.eml");
    std::fs::write(&src, b"PLAINTEXT-MARKER-TYPED").unwrap();
    ok(
        &aws(
            o.store.addr,
            &[
                "s3api",
                "put-object",
                "--bucket",
                BUCKET,
                "--key",
                typed,
                "--body",
                src.to_str().unwrap(),
                "--content-type",
                "message/rfc822",
                "--metadata",
                "folder=inbox",
            ],
            Some((STORE_AK, STORE_SK)),
        ),
        "put-object to the store",
    );

    // An object no residency rule covers fails alone; the others are migrated; exit 1.
    let out = o.job("migrate", &["--json"]);
    assert_eq!(status(&out), 1, "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(count(&v, "migrated"), 3, "{v}");
    let gw = GatewayProc::start(
        &o.tmp.path().join("gw"),
        &std::fs::read_to_string(&o.config).unwrap(),
    );
    let head = ok(
        &aws(
            gw.s3.unwrap(),
            &["s3api", "head-object", "--bucket", BUCKET, "--key", typed],
            None,
        ),
        "head-object through the gateway",
    );
    let head: Value = serde_json::from_str(&head).unwrap();
    assert_eq!(head["ContentType"], "message/rfc822", "{head}");
    assert_eq!(head["Metadata"]["folder"], "inbox", "{head}");
    drop(gw);
    assert_eq!(count(&v, "failed"), 1, "{v}");
    assert!(
        v["failures"][0]["error"]
            .as_str()
            .unwrap()
            .contains("no residency rule"),
        "{v}"
    );
    assert_eq!(
        o.raw("no-mailbox.txt").unwrap(),
        b"PLAINTEXT-MARKER-NOROUTE",
        "left alone"
    );

    // The custodian down: rewrap stops before writing anything, with status 5; once the
    // custodian is back the same command finishes, and nothing was lost.
    ok(&o.admin(&["rotate"]), "custodian rotate");
    o.world.custodian.stop();
    let ck = o.tmp.path().join("rewrap.json");
    let args = [
        "--to-version",
        "2",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--json",
    ];
    let down = o.job("rewrap", &args);
    assert_eq!(status(&down), 5, "{}", stderr(&down));
    assert!(stderr(&down).contains("unavailable"), "{}", stderr(&down));
    let before = o.world.custodian.addr.to_string();
    o.world.custodian.spawn();
    // The restarted custodian listens on a new port: point the config at it.
    let text = std::fs::read_to_string(&o.config)
        .unwrap()
        .replace(&before, &o.world.custodian.addr.to_string());
    std::fs::write(&o.config, text).unwrap();
    let resumed = json(
        &o.job("rewrap", &args),
        "rewrap resumed after the custodian is back",
    );
    assert_eq!(count(&resumed, "rewrapped"), 3, "{resumed}");
    assert_eq!(
        count(&resumed, "skipped"),
        1,
        "the unrouted plaintext object: {resumed}"
    );
    let up = json(
        &o.job("rewrap", &["--to-version", "2", "--prefix", "m", "--json"]),
        "rewrap",
    );
    assert_eq!(count(&up, "current"), 3, "{up}");
    for i in [1, 2] {
        assert!(open_with_sdk(&o.world, BUCKET, &key(i), &o.raw(&key(i)).unwrap()) == body(i));
    }

    // The store down (nothing listening at its address): status 5.
    let text = std::fs::read_to_string(&o.config).unwrap().replace(
        &format!("http://{}", o.store.addr),
        &format!("http://127.0.0.1:{}", custodia_tests::gateway::free_port()),
    );
    let down_cfg = o.config.with_file_name("store-down.toml");
    std::fs::write(&down_cfg, text).unwrap();
    let out = o.custodia(&[
        "verify",
        "--config",
        down_cfg.to_str().unwrap(),
        "--bucket",
        BUCKET,
    ]);
    assert_eq!(status(&out), 5, "{}", stderr(&out));
}

#[test]
fn custodian_lost_mid_rewrap_stops_checkpointed_and_resumes_and_verify_names_damage() {
    const N: usize = 400;
    let mut o = Ops::start();
    let objects = sealed_objects(&o, 0, N);
    ok(&o.admin(&["rotate"]), "custodian rotate");

    // One object at a time, so the custodian is certainly lost mid-run.
    let ck = o.tmp.path().join("rewrap-mid.json");
    let mut child = Command::new(custodia_bin())
        .args([
            "rewrap",
            "--config",
            o.config.to_str().unwrap(),
            "--bucket",
            BUCKET,
        ])
        .args(["--to-version", "2", "--batch", "1", "--jobs", "1", "--json"])
        .args(["--checkpoint", ck.to_str().unwrap()])
        .env("CUSTODIA_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while checkpoint(&ck).map_or(0, |c| count(&c, "rewrapped")) < 20 {
        assert!(child.try_wait().unwrap().is_none(), "rewrap ended early");
        assert!(Instant::now() < deadline, "rewrap made no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = o.world.custodian.addr.to_string();
    o.world.custodian.stop();
    let out = child.wait_with_output().unwrap();
    assert_eq!(status(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("rewrap stopped"), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["complete"], Value::Bool(false), "{v}");
    let done_before = count(&v, "rewrapped");
    assert!(done_before >= 20 && done_before < N as u64, "{v}");

    o.world.custodian.spawn();
    let text = std::fs::read_to_string(&o.config)
        .unwrap()
        .replace(&before, &o.world.custodian.addr.to_string());
    std::fs::write(&o.config, text).unwrap();
    let resumed = json(
        &o.job(
            "rewrap",
            &[
                "--to-version",
                "2",
                "--checkpoint",
                ck.to_str().unwrap(),
                "--json",
            ],
        ),
        "rewrap resumed",
    );
    assert_eq!(resumed["resumed"], Value::Bool(true), "{resumed}");
    assert_eq!(resumed["complete"], Value::Bool(true), "{resumed}");
    assert_eq!(
        count(&resumed, "rewrapped") + count(&resumed, "current"),
        N as u64,
        "every object once: {resumed}"
    );
    let v = json(&o.job("verify", &["--deep", "--json"]), "verify --deep");
    assert_eq!(
        v["key_versions"]["ie/dublin v2"].as_u64(),
        Some(N as u64),
        "{v}"
    );
    assert!(v["key_versions"].get("ie/dublin v1").is_none(), "{v}");

    // Damage in the store: a header that no longer parses, and (found only by --deep) a
    // flipped body byte. verify names both and exits 3.
    let (bad_header, _) = &objects[3];
    let (bad_body, _) = &objects[4];
    let path = |k: &str| o.store.root.join(BUCKET).join(k);
    let mut b = std::fs::read(path(bad_header)).unwrap();
    b[12] ^= 0xff;
    std::fs::write(path(bad_header), b).unwrap();
    let mut b = std::fs::read(path(bad_body)).unwrap();
    let last = b.len() - 5;
    b[last] ^= 0x01;
    std::fs::write(path(bad_body), b).unwrap();
    let shallow = o.job("verify", &["--json"]);
    assert_eq!(status(&shallow), 3, "{}", stderr(&shallow));
    let shallow: Value = serde_json::from_slice(&shallow.stdout).unwrap();
    assert_eq!(count(&shallow, "damaged"), 1, "{shallow}");
    assert_eq!(
        shallow["failures"][0]["key"],
        bad_header.as_str(),
        "{shallow}"
    );
    let deep = o.job("verify", &["--deep", "--json"]);
    assert_eq!(status(&deep), 3, "{}", stderr(&deep));
    let deep: Value = serde_json::from_slice(&deep.stdout).unwrap();
    assert_eq!(count(&deep, "damaged"), 2, "{deep}");
    let named: Vec<&str> = deep["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert!(
        named.contains(&bad_header.as_str()) && named.contains(&bad_body.as_str()),
        "{deep}"
    );
}

#[test]
fn verify_residency_names_mail_sealed_to_another_region_or_mailbox() {
    let o = Ops::start();
    // As a gateway before mailbox ids were canonical sealed them: `CEO@example.ie` missed the
    // exact rule below (then compared case-sensitively) and went by the domain rule to `ie`.
    let stray = o.world.seal("CEO@example.ie", "x", b"board minutes");
    let stray_lower = o.world.seal("ceo@example.ie", "x", b"more minutes");
    let fine = o.world.seal("aoife@example.ie", "x", b"hello");
    let moved = o
        .world
        .seal("aoife@example.ie", "x", b"aoife's, under brian's key");
    o.seed(vec![
        ("CEO@example.ie/INBOX/1.eml".into(), stray.stored),
        ("ceo@example.ie/INBOX/2.eml".into(), stray_lower.stored),
        ("aoife@example.ie/INBOX/3.eml".into(), fine.stored),
        ("brian@example.ie/INBOX/4.eml".into(), moved.stored),
    ]);
    // The config now: ceo@example.ie lives in `us` (a US custodian is listed; verify
    // --residency reads headers only and asks no custodian).
    let cfg = std::fs::read_to_string(&o.config).unwrap().replacen(
        "[residency]\n",
        &format!(
            "[[custodian]]\nregion = \"us\"\nname = \"nyc\"\naddr = \"127.0.0.1:9\"\n\
             server_name = \"localhost\"\nca = \"custodian-ca.pem\"\nmanifest_key = \"{}\"\n\
             [residency]\nmailboxes = {{ \"ceo@example.ie\" = \"us\" }}\n",
            "11".repeat(32)
        ),
        1,
    );
    let config = o.config.with_file_name("gateway-residency.toml");
    std::fs::write(&config, cfg).unwrap();
    let out = o.custodia(&[
        "verify",
        "--config",
        config.to_str().unwrap(),
        "--bucket",
        BUCKET,
        "--residency",
        "--json",
        "--quiet",
    ]);
    assert_eq!(status(&out), 3, "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(count(&v, "wrong_region"), 3, "{v}");
    assert_eq!(count(&v, "sealed"), 1, "{v}");
    let named: Vec<String> = v["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["key"].as_str().unwrap(),
                f["error"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(named.len(), 3, "{named:?}");
    assert!(
        named
            .iter()
            .any(|n| n.starts_with("CEO@example.ie/INBOX/1.eml")
                && n.contains("sealed to region ie, mailbox ceo@example.ie lives in us")),
        "{named:?}"
    );
    assert!(
        named
            .iter()
            .any(|n| n.starts_with("brian@example.ie/INBOX/4.eml")
                && n.contains("its key names brian@example.ie")),
        "{named:?}"
    );
    // Without --residency the same bucket verifies clean.
    let plain = o.custodia(&[
        "verify",
        "--config",
        config.to_str().unwrap(),
        "--bucket",
        BUCKET,
        "--quiet",
    ]);
    assert_eq!(status(&plain), 0, "{}", stderr(&plain));
}

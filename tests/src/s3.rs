//! S3 parts for end-to-end tests: the S3 stores (an s3s-fs process, a one-node Garage
//! cluster) behind one [`Store`] type so each suite runs against both, gateway configs with
//! the S3 front over them, the real clients (awscli, boto3, rclone) pointed at a gateway, and
//! scans of what a store keeps on disk.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "test support"
)]

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::Leaf;
use crate::gateway::{GatewayProc, free_port, gateway_config, require};
use crate::wait_until;
use crate::world::World;

/// The store's own credentials (the gateway's upstream identity).
pub const STORE_AK: &str = "storeaccesskey";
pub const STORE_SK: &str = "storesecretkey0123456789";
/// Garage's equivalents (it wants `GK` + 24 hex key ids and 64-hex secrets).
pub const GARAGE_AK: &str = "GK0123456789abcdef01234567";
pub const GARAGE_SK: &str = "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e7c0de";
/// A client's credentials issued by the gateway.
pub const CLIENT_AK: &str = "AKIACUSTODIATEST0001";
pub const CLIENT_SK: &str = "clientsecretkey/0123456789abcdefghijklm";

/// `s3s-fs` serving a directory; killed when dropped.
pub struct S3sFs {
    child: Child,
    pub addr: SocketAddr,
    /// Where it keeps objects (one directory per bucket).
    pub root: PathBuf,
}

impl S3sFs {
    #[must_use]
    pub fn start(dir: &Path) -> Self {
        require(
            "s3s-fs",
            "cargo install s3s-fs@0.14.1 --locked --features binary",
        );
        let root = dir.join("store");
        std::fs::create_dir_all(&root).unwrap();
        let port = free_port();
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", STORE_AK, "--secret-key", STORE_SK])
            .args(["--domain", &format!("s3.test:{port}")])
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        assert!(
            wait_until(Duration::from_secs(15), || TcpStream::connect(addr).is_ok()),
            "s3s-fs did not start"
        );
        Self { child, addr, root }
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A gateway config with both fronts, the S3 upstream at `store`, `leaf` as identity.
#[must_use]
pub fn s3_gateway_config(world: &World, leaf: &Leaf, store: SocketAddr, dir: &Path) -> String {
    s3_gateway_config_with(world, leaf, store, (STORE_AK, STORE_SK), dir)
}

/// A gateway config with both fronts over `store` (s3s-fs or Garage), `leaf` as identity.
#[must_use]
pub fn store_gateway_config(world: &World, leaf: &Leaf, store: &Store, dir: &Path) -> String {
    s3_gateway_config_with(world, leaf, store.addr(), store.keys(), dir)
}

fn s3_gateway_config_with(
    world: &World,
    leaf: &Leaf,
    store: SocketAddr,
    (ak, sk): (&str, &str),
    dir: &Path,
) -> String {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("store-credentials"), format!("{ak} {sk}\n")).unwrap();
    std::fs::write(
        dir.join("access-keys"),
        format!("{CLIENT_AK} {CLIENT_SK}\n"),
    )
    .unwrap();
    let upstream = format!(
        "kind = \"s3\"\nendpoint = \"http://{store}\"\ncredentials_file = \"store-credentials\""
    );
    let s3 = "[s3]\nlisten = \"127.0.0.1:0\"\naccess_keys_file = \"access-keys\"\n";
    gateway_config(world, leaf, &upstream, s3, dir)
}

/// Runs `aws` (awscli) against `endpoint` with the gateway-issued keys (or `keys`).
#[must_use]
pub fn aws(endpoint: SocketAddr, args: &[&str], keys: Option<(&str, &str)>) -> Output {
    aws_configured(endpoint, args, keys, None)
}

/// As [`aws`], reading `config` as its config file (e.g. an `s3 =` section with
/// `multipart_chunksize`) instead of none.
#[must_use]
pub fn aws_configured(
    endpoint: SocketAddr,
    args: &[&str],
    keys: Option<(&str, &str)>,
    config: Option<&Path>,
) -> Output {
    require("aws", "python3 -m pip install awscli boto3");
    let (ak, sk) = keys.unwrap_or((CLIENT_AK, CLIENT_SK));
    Command::new("aws")
        .arg("--endpoint-url")
        .arg(format!("http://{endpoint}"))
        .args(args)
        .env("AWS_ACCESS_KEY_ID", ak)
        .env("AWS_SECRET_ACCESS_KEY", sk)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env(
            "AWS_CONFIG_FILE",
            config.map_or_else(|| Path::new("/dev/null").as_os_str(), Path::as_os_str),
        )
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap()
}

/// Panics with stdout/stderr unless `out` succeeded; returns stdout.
pub fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A one-node Garage cluster (on-disk, strict SigV4) with the test key and a `mail`
/// bucket; killed when dropped.
pub struct GarageProc {
    child: Child,
    pub addr: SocketAddr,
    /// Everything it keeps on disk (`meta/` and `data/`).
    pub root: PathBuf,
    config: PathBuf,
}

impl GarageProc {
    /// Writes a config on free ports under `dir`, starts `garage server`, assigns and applies
    /// a one-node layout, imports the test key and creates `buckets`, each allowed to it.
    #[must_use]
    pub fn start(dir: &Path, buckets: &[&str]) -> Self {
        require("garage", "cargo install garage --locked");
        let root = dir.join("garage");
        std::fs::create_dir_all(root.join("meta")).unwrap();
        std::fs::create_dir_all(root.join("data")).unwrap();
        let (api, rpc, admin) = (free_port(), free_port(), free_port());
        let secret = random_hex(32);
        let token = random_hex(16);
        // No compression: stored blocks are the bytes the gateway sent, so scanning them for
        // plaintext means something.
        let toml = format!(
            "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"lmdb\"\n\
             replication_factor = 1\ncompression_level = \"none\"\n\
             rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_secret = \"{secret}\"\n\
             [s3_api]\ns3_region = \"us-east-1\"\napi_bind_addr = \"127.0.0.1:{api}\"\n\
             root_domain = \".s3.test\"\n\
             [admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\nadmin_token = \"{token}\"\n",
            meta = root.join("meta").display(),
            data = root.join("data").display(),
        );
        let config = dir.join("garage.toml");
        std::fs::write(&config, toml).unwrap();
        let log = std::fs::File::create(dir.join("garage.log")).unwrap();
        let child = Command::new("garage")
            .arg("-c")
            .arg(&config)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{api}").parse().unwrap();
        let mut g = Self {
            child,
            addr,
            root,
            config,
        };
        let log = dir.join("garage.log");
        let up = wait_until(Duration::from_secs(30), || {
            TcpStream::connect(addr).is_ok() && TcpStream::connect(("127.0.0.1", rpc)).is_ok()
        });
        assert!(
            up,
            "garage did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let id = g.retry("node id", &["node", "id", "-q"]);
        let id = id.trim().split('@').next().unwrap().to_owned();
        g.retry(
            "layout assign",
            &["layout", "assign", "-z", "dc1", "-c", "1G", &id],
        );
        g.retry("layout apply", &["layout", "apply", "--version", "1"]);
        g.retry(
            "key import",
            &["key", "import", "-n", "ci", "--yes", GARAGE_AK, GARAGE_SK],
        );
        for b in buckets {
            g.retry("bucket create", &["bucket", "create", b]);
            g.retry(
                "bucket allow",
                &[
                    "bucket", "allow", "--read", "--write", "--owner", b, "--key", "ci",
                ],
            );
        }
        g
    }

    /// Runs `garage -c CONFIG args…`.
    #[must_use]
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new("garage")
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env("RUST_LOG", "garage=warn")
            .output()
            .unwrap()
    }

    /// Runs a CLI command until it succeeds (the cluster takes a moment to settle after
    /// start and after a layout change); its stdout.
    fn retry(&mut self, what: &str, args: &[&str]) -> String {
        let mut last = None;
        for _ in 0..100 {
            let out = self.cli(args);
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "garage exited during `{what}`"
            );
            last = Some(out);
            std::thread::sleep(Duration::from_millis(200));
        }
        ok(&last.unwrap(), &format!("garage {what}"))
    }
}

impl Drop for GarageProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `n` random bytes as hex.
fn random_hex(n: usize) -> String {
    use std::io::Read as _;
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    hex::encode(b)
}

/// Which S3 store a suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// `s3s-fs` over a directory (always available in CI).
    S3sFs,
    /// A one-node Garage cluster.
    Garage,
}

/// A running S3 store of either kind.
pub enum Store {
    S3sFs(S3sFs),
    Garage(GarageProc),
}

impl Store {
    /// Starts a store of `kind` under `dir`. Garage gets the `mail` bucket from its own CLI
    /// (`garage bucket create`); on s3s-fs, buckets are made through the gateway.
    #[must_use]
    pub fn start(kind: StoreKind, dir: &Path) -> Self {
        match kind {
            StoreKind::S3sFs => Self::S3sFs(S3sFs::start(dir)),
            StoreKind::Garage => Self::Garage(GarageProc::start(dir, &["mail"])),
        }
    }

    #[must_use]
    pub fn kind(&self) -> StoreKind {
        match self {
            Self::S3sFs(_) => StoreKind::S3sFs,
            Self::Garage(_) => StoreKind::Garage,
        }
    }

    /// Its S3 endpoint.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        match self {
            Self::S3sFs(s) => s.addr,
            Self::Garage(g) => g.addr,
        }
    }

    /// Its own credentials (the gateway's upstream identity).
    #[must_use]
    pub fn keys(&self) -> (&'static str, &'static str) {
        match self {
            Self::S3sFs(_) => (STORE_AK, STORE_SK),
            Self::Garage(_) => (GARAGE_AK, GARAGE_SK),
        }
    }

    /// The directory holding everything it keeps on disk (objects and metadata).
    #[must_use]
    pub fn disk(&self) -> &Path {
        match self {
            Self::S3sFs(s) => &s.root,
            Self::Garage(g) => &g.root,
        }
    }

    /// The stored bytes of `bucket`/`key`, fetched with the store's own credentials
    /// (bypassing the gateway).
    #[must_use]
    pub fn fetch_raw(&self, bucket: &str, key: &str) -> Vec<u8> {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("raw");
        ok(
            &aws(
                self.addr(),
                &[
                    "s3api",
                    "get-object",
                    "--bucket",
                    bucket,
                    "--key",
                    key,
                    out.to_str().unwrap(),
                ],
                Some(self.keys()),
            ),
            "get-object from the store",
        );
        std::fs::read(out).unwrap()
    }

    /// Plaintext strings found on its disk: each needle present in any file, with the file.
    /// Empty when the store holds none of them.
    #[must_use]
    pub fn leaks(&self, needles: &[String]) -> Vec<String> {
        leaks(self.disk(), needles)
    }
}

/// `aws s3 mb s3://bucket` through the gateway at `ep`. On Garage the harness has already
/// made the bucket (with `garage bucket create`), so there an error saying it exists is
/// accepted too.
pub fn make_bucket(ep: SocketAddr, store: &Store, bucket: &str) {
    let out = aws(ep, &["s3", "mb", &format!("s3://{bucket}")], None);
    if out.status.success() {
        return;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        store.kind() == StoreKind::Garage && err.contains("BucketAlready"),
        "mb {bucket} failed on {:?}: {err}",
        store.kind()
    );
}

/// Which of `needles` occur in any file under `dir` (`grep -F`, bytes as they are); each
/// as `needle in file`.
#[must_use]
pub fn leaks(dir: &Path, needles: &[String]) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let patterns = tmp.path().join("patterns");
    let needles: Vec<&String> = needles.iter().filter(|n| !n.is_empty()).collect();
    if needles.is_empty() {
        return Vec::new();
    }
    let mut text = String::new();
    for n in &needles {
        assert!(!n.contains('\n'), "needle with a newline: {n:?}");
        writeln!(text, "{n}").unwrap();
    }
    std::fs::write(&patterns, text).unwrap();
    let out = Command::new("grep")
        .args(["-r", "-a", "-o", "-F", "-f"])
        .arg(&patterns)
        .arg(dir)
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    match out.status.code() {
        Some(1) => Vec::new(),
        Some(0) => {
            let mut found: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| match l.rsplit_once(':') {
                    Some((file, needle)) => format!("{needle:?} in {file}"),
                    None => l.to_owned(),
                })
                .collect();
            found.sort();
            found.dedup();
            found
        }
        _ => panic!(
            "grep failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

/// The MD5 of each file, as lowercase hex and as base64 (how `ETag` and `Content-MD5`
/// carry it): the strings a store must never see for a plaintext.
#[must_use]
pub fn md5_forms(files: &[PathBuf]) -> Vec<String> {
    if files.is_empty() {
        return Vec::new();
    }
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import base64, hashlib, sys\n\
             for f in sys.argv[1:]:\n\
             \x20   d = hashlib.md5(open(f, 'rb').read()).digest()\n\
             \x20   print(d.hex())\n\
             \x20   print(base64.b64encode(d).decode())\n",
        )
        .args(files)
        .output()
        .unwrap();
    ok(&out, "md5 of test files")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Opens `stored` (an object read straight from the store) with the SDK, as the Irish
/// gateway identity would: proves gateway objects are ordinary Custodia objects.
#[must_use]
pub fn open_with_sdk(world: &World, bucket: &str, key: &str, stored: &[u8]) -> Vec<u8> {
    try_open_with_sdk(world, bucket, key, stored).unwrap()
}

/// As [`open_with_sdk`], returning the SDK's error.
pub fn try_open_with_sdk(
    world: &World,
    bucket: &str,
    key: &str,
    stored: &[u8],
) -> Result<Vec<u8>, custodia::Error> {
    crate::world::rt().block_on(async {
        let client = sdk_client(world).await;
        let binding = custodia_envelope::Binding::new(bucket, key).unwrap();
        client.open(&binding, stored).await.map(|o| o.plaintext)
    })
}

/// An SDK client as the Irish gateway identity, its directory refreshed, `example.ie` living
/// in `ie`.
pub async fn sdk_client(world: &World) -> custodia::Client {
    let ie = custodia_envelope::Region::new("ie").unwrap();
    let dir = world.sdk_directory(&world.gw_ie);
    dir.refresh().await.unwrap();
    custodia::Client::builder(
        dir,
        custodia::Policy::builder()
            .domain("example.ie", &ie)
            .build(),
    )
    .build()
}

/// Fails unless `python3` can import boto3, saying how to install it.
pub fn require_boto3() {
    require("python3", "apt-get install -y python3");
    let ok = Command::new("python3")
        .args(["-c", "import boto3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "boto3 is missing: python3 -m pip install awscli boto3 (tests/run installs it)"
    );
}

/// Runs `tests/py/<script>` with python3, the gateway endpoint and client keys in the
/// environment (`S3_ENDPOINT`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`) plus `env`.
#[must_use]
pub fn python(script: &str, endpoint: SocketAddr, env: &[(&str, &str)]) -> Output {
    require_boto3();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("py")
        .join(script);
    let mut cmd = Command::new("python3");
    cmd.arg(&path)
        .env("S3_ENDPOINT", format!("http://{endpoint}"))
        .env("AWS_ACCESS_KEY_ID", CLIENT_AK)
        .env("AWS_SECRET_ACCESS_KEY", CLIENT_SK)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("AWS_PROFILE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// An rclone config in `dir` with a remote `gw` for the gateway at `endpoint` (client
/// keys); its path.
#[must_use]
pub fn rclone_config(dir: &Path, endpoint: SocketAddr) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("rclone.conf");
    std::fs::write(
        &path,
        format!(
            "[gw]\ntype = s3\nprovider = Other\nendpoint = http://{endpoint}\n\
             region = us-east-1\nforce_path_style = true\n\
             access_key_id = {CLIENT_AK}\nsecret_access_key = {CLIENT_SK}\n"
        ),
    )
    .unwrap();
    path
}

/// Runs `rclone --config CONFIG args…` without `AWS_CA_BUNDLE` (which breaks rclone even
/// over plain http), with few retries so a failing gateway fails the test quickly instead
/// of being retried with back-off for minutes.
#[must_use]
pub fn rclone(config: &Path, args: &[&str]) -> Output {
    require("rclone", "apt-get install -y rclone");
    Command::new("rclone")
        .arg("--config")
        .arg(config)
        .args(["--retries", "1", "--low-level-retries", "2"])
        .args(args)
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .unwrap()
}

/// A world, an S3 store of some kind and a gateway with both fronts over it, plus a scratch
/// directory for client files. Dropped in order: gateway, store, custodian, files.
pub struct S3Setup {
    pub gw: GatewayProc,
    pub store: Store,
    pub world: World,
    /// A scratch directory for the clients' local files.
    pub files: PathBuf,
    pub tmp: tempfile::TempDir,
}

impl S3Setup {
    #[must_use]
    pub fn start(kind: StoreKind) -> Self {
        let world = crate::world::world();
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::start(kind, &tmp.path().join("s3"));
        let cfg = store_gateway_config(&world, &world.gw_ie, &store, &tmp.path().join("gw"));
        let gw = GatewayProc::start(&tmp.path().join("gw"), &cfg);
        let files = tmp.path().join("files");
        std::fs::create_dir_all(&files).unwrap();
        Self {
            gw,
            store,
            world,
            files,
            tmp,
        }
    }

    /// The gateway's S3 front.
    #[must_use]
    pub fn ep(&self) -> SocketAddr {
        self.gw.s3.unwrap()
    }

    /// Fails if the store's disk holds any of `markers` or the MD5 (hex or base64) of any of
    /// `files`.
    pub fn assert_no_plaintext(&self, markers: &[&str], files: &[PathBuf]) {
        let mut needles: Vec<String> = markers.iter().map(|m| (*m).to_owned()).collect();
        needles.extend(md5_forms(files));
        let found = self.store.leaks(&needles);
        assert!(
            found.is_empty(),
            "{:?} holds plaintext: {found:#?}",
            self.store.kind()
        );
    }

    /// Reads `bucket`/`key` straight from the store and opens it with the SDK; fails unless
    /// that yields `plaintext`.
    pub fn assert_opens_from_store(&self, bucket: &str, key: &str, plaintext: &[u8]) {
        let stored = self.store.fetch_raw(bucket, key);
        assert_ne!(stored, plaintext, "{key} is stored in the clear");
        let opened = open_with_sdk(&self.world, bucket, key, &stored);
        assert!(
            opened == plaintext,
            "{key}: the SDK opened {} bytes from the store, expected {}",
            opened.len(),
            plaintext.len()
        );
    }
}

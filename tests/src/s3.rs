//! S3 parts for end-to-end tests: an s3s-fs store process, gateway configs with the S3
//! front over it, and the real clients (awscli, boto3, rclone) pointed at a gateway.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "test support"
)]

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::Leaf;
use crate::gateway::{free_port, gateway_config, require};
use crate::wait_until;
use crate::world::World;

/// The store's own credentials (the gateway's upstream identity).
pub const STORE_AK: &str = "storeaccesskey";
pub const STORE_SK: &str = "storesecretkey0123456789";
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
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("store-credentials"),
        format!("{STORE_AK} {STORE_SK}\n"),
    )
    .unwrap();
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
    require("aws", "pip install awscli boto3");
    let (ak, sk) = keys.unwrap_or((CLIENT_AK, CLIENT_SK));
    Command::new("aws")
        .arg("--endpoint-url")
        .arg(format!("http://{endpoint}"))
        .args(args)
        .env("AWS_ACCESS_KEY_ID", ak)
        .env("AWS_SECRET_ACCESS_KEY", sk)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
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

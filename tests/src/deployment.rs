//! A deployment as an operator makes one, for tests that need both regions: `custodia keys
//! init` for `ie` and `us`, each region's custodian as `custodia custodian serve --dev` on a
//! free port, and each region's gateway config (S3 front, both custodians, an S3 store).
#![allow(missing_docs, reason = "test harness")]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::custodia_bin;
use crate::s3::{CLIENT_AK, CLIENT_SK, STORE_AK, STORE_SK};

/// A server process, killed when dropped.
pub struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `custodia ARGS…` in `dir`.
pub fn custodia(dir: &Path, args: &[&str]) -> Output {
    Command::new(custodia_bin())
        .args(args)
        .current_dir(dir)
        .env("CUSTODIA_LOG", "warn")
        .output()
        .unwrap()
}

/// Asserts the exit status of `out`; returns stdout and stderr together.
#[track_caller]
pub fn status(out: &Output, code: i32, what: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(code), "{what}:\n{text}");
    text
}

/// Replaces the `nth` line of `path` that starts with `prefix` by `new`.
pub fn set_line(path: &Path, prefix: &str, new: &str, nth: usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut seen = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(prefix) {
                seen += 1;
                if seen == nth + 1 {
                    return new.to_owned();
                }
            }
            l.to_owned()
        })
        .collect();
    assert!(seen > nth, "{}: no line {prefix}", path.display());
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// `custodian serve --dev` for the `nth` region of the keys directory, on a free port; the
/// index is updated to it.
pub fn serve_custodian(keys: &Path, region: &str, nth: usize) -> (Served, SocketAddr) {
    let config = keys.join(region).join("custodian.toml");
    set_line(&config, "listen = ", "listen = \"127.0.0.1:0\"", 0);
    let mut child = Command::new(custodia_bin())
        .args(["custodian", "serve", "--dev", "--config"])
        .arg(&config)
        .env("CUSTODIA_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let served = Served(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    let addr: SocketAddr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("custodian did not start")
        .parse()
        .unwrap();
    set_line(
        &keys.join("regions.toml"),
        "address = ",
        &format!("address = \"{addr}\""),
        nth,
    );
    (served, addr)
}

/// The manifest key of the `nth` region in the index.
pub fn manifest_key(keys: &Path, nth: usize) -> String {
    let index = std::fs::read_to_string(keys.join("regions.toml")).unwrap();
    index
        .lines()
        .filter_map(|l| l.strip_prefix("manifest_key = "))
        .nth(nth)
        .unwrap()
        .trim_matches('"')
        .to_owned()
}

/// The config of `region`'s gateway (S3 front, both custodians, the s3s-fs store), with its
/// secrets files written into `dir`.
pub fn gateway_config(
    keys: &Path,
    region: &str,
    custodians: &[(&str, SocketAddr)],
    store: SocketAddr,
    dir: &Path,
) -> String {
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
    let k = keys.display();
    let mut text = format!(
        "region = \"{region}\"\n\
         [s3]\nlisten = \"127.0.0.1:0\"\naccess_keys_file = \"access-keys\"\n\
         [upstream]\nkind = \"s3\"\nendpoint = \"http://{store}\"\ncredentials_file = \"store-credentials\"\n\
         [identity]\ncert = \"{k}/{region}/clients/gateway-{region}.pem\"\n\
         key = \"{k}/{region}/clients/gateway-{region}.key\"\n\
         [residency]\ndomains = {{ \"example.ie\" = \"ie\", \"example.com\" = \"us\" }}\n\
         [[route]]\nbucket = \"mail\"\nkey = '^(?P<mailbox>[^/]+@[^/]+)/'\n\
         [cache]\ncapacity = 0\n"
    );
    for (nth, (r, addr)) in custodians.iter().enumerate() {
        text.push_str(&format!(
            "[[custodian]]\nregion = \"{r}\"\nname = \"{r}-custodian\"\naddr = \"{addr}\"\n\
             server_name = \"localhost\"\nca = \"{k}/{r}/ca.pem\"\nmanifest_key = \"{}\"\n",
            manifest_key(keys, nth)
        ));
    }
    text
}

/// `keys init` for `ie` and `us` in `dir/keys`, each region's custodian served, and an s3s-fs
/// store with a `mail` bucket: what a two-region test deploys before its gateways.
pub struct TwoRegions {
    pub keys: std::path::PathBuf,
    pub ie: Served,
    pub us: Served,
    /// `[("ie", addr), ("us", addr)]`, as [`gateway_config`] takes them.
    pub custodians: [(&'static str, SocketAddr); 2],
    pub store: crate::s3::S3sFs,
}

impl TwoRegions {
    #[must_use]
    pub fn start(dir: &Path) -> Self {
        status(
            &custodia(
                dir,
                &["keys", "init", "--regions", "ie,us", "--out", "keys"],
            ),
            0,
            "keys init",
        );
        let keys = dir.join("keys");
        let (ie, ie_addr) = serve_custodian(&keys, "ie", 0);
        let (us, us_addr) = serve_custodian(&keys, "us", 1);
        let store = crate::s3::S3sFs::start(&dir.join("s3"));
        crate::s3::ok(
            &crate::s3::aws(
                store.addr,
                &["s3", "mb", "s3://mail"],
                Some((STORE_AK, STORE_SK)),
            ),
            "mb s3://mail on the store",
        );
        Self {
            keys,
            ie,
            us,
            custodians: [("ie", ie_addr), ("us", us_addr)],
            store,
        }
    }
}

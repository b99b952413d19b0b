//! Gateways and stores for end-to-end tests: an nginx WebDAV store and `custodia gateway
//! serve` processes on 127.0.0.1, each killed when dropped, and `curl` as the client.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "test support"
)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::world::World;
use crate::{Leaf, custodia_bin, wait_until};

/// The bearer token test gateways accept.
pub const TOKEN: &str = "test-token-0123456789";

/// A free TCP port on 127.0.0.1 (bound and released: a small race other tests can lose).
#[must_use]
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Fails with how CI installs `tool` when it is missing.
pub fn require(tool: &str, how: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "{tool} is missing: {how} (tests/run installs it)");
}

/// nginx serving a directory with WebDAV PUT/DELETE; killed when dropped.
pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    /// The directory it stores files in.
    pub root: PathBuf,
}

impl Nginx {
    #[must_use]
    pub fn start(dir: &Path) -> Self {
        require("nginx", "apt-get install -y nginx-light");
        let root = dir.join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let port = free_port();
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n\
             fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n\
             client_max_body_size 0;\n\
             server {{\n    listen 127.0.0.1:{port};\n    root {root};\n\
             location / {{ dav_methods PUT DELETE; create_full_put_path on; }}\n  }}\n}}\n",
            root = root.display()
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || TcpStream::connect(addr).is_ok()),
            "nginx did not start"
        );
        Self { child, addr, root }
    }

    /// The stored file of `bucket`/`key`.
    #[must_use]
    pub fn file(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }

    /// The directory nginx keeps request bodies in while they arrive (renamed into the
    /// root only when complete).
    #[must_use]
    pub fn temp_dir(&self) -> PathBuf {
        self.root.parent().unwrap().join("tmp")
    }

    /// The `[upstream]` table body for a gateway storing in this nginx.
    #[must_use]
    pub fn upstream(&self) -> String {
        format!("kind = \"webdav\"\nendpoint = \"http://{}\"", self.addr)
    }

    /// Stops nginx (SIGKILL) and waits for it: the store is down.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every regular file under `dir`.
#[must_use]
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Whether `needle` occurs in any file under `dir`.
#[must_use]
pub fn store_contains(dir: &Path, needle: &[u8]) -> bool {
    files_under(dir)
        .iter()
        .any(|f| std::fs::read(f).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)))
}

/// The gateway config for `world`'s Irish custodian, with `leaf` as the gateway's identity
/// and `upstream` as the `[upstream]` table body; files written into `dir`.
#[must_use]
pub fn gateway_config(
    world: &World,
    leaf: &Leaf,
    upstream: &str,
    extra: &str,
    dir: &Path,
) -> String {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("identity.pem"), &leaf.cert_pem).unwrap();
    std::fs::write(dir.join("identity.key"), &leaf.key_pem).unwrap();
    std::fs::write(dir.join("custodian-ca.pem"), &world.server_ca.cert_pem).unwrap();
    std::fs::write(dir.join("tokens"), format!("{TOKEN}\n")).unwrap();
    format!(
        "region = \"ie\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\ntoken_files = [\"tokens\"]\n\
         [upstream]\n{upstream}\n\
         [identity]\ncert = \"identity.pem\"\nkey = \"identity.key\"\n\
         [[custodian]]\nregion = \"ie\"\nname = \"dublin\"\naddr = \"{addr}\"\nserver_name = \"localhost\"\n\
         ca = \"custodian-ca.pem\"\nmanifest_key = \"{key}\"\n\
         [residency]\ndomains = {{ \"example.ie\" = \"ie\" }}\n\
         [[route]]\nbucket = \"mail\"\nkey = '^(?P<mailbox>[^/]+@[^/]+)/'\n\
         [[route]]\nbucket = \"legacy\"\nkey = '^(?P<mailbox>[^/]+@[^/]+)/'\nlegacy_plaintext = true\n\
         {extra}\n",
        addr = world.custodian.addr,
        key = hex::encode(world.custodian.manifest_key),
    )
}

/// A running `custodia gateway serve`; killed when dropped.
pub struct GatewayProc {
    child: Option<Child>,
    pub http: Option<SocketAddr>,
    pub s3: Option<SocketAddr>,
    pub config: PathBuf,
}

impl GatewayProc {
    /// Writes `config` to `dir/gateway.toml` and starts the gateway.
    #[must_use]
    pub fn start(dir: &Path, config: &str) -> Self {
        Self::start_logging(dir, config, "warn", None)
    }

    /// As [`Self::start`], with `CUSTODIA_LOG=filter` and stderr written to `log` (else
    /// inherited).
    #[must_use]
    pub fn start_logging(dir: &Path, config: &str, filter: &str, log: Option<&Path>) -> Self {
        let path = dir.join("gateway.toml");
        std::fs::write(&path, config).unwrap();
        let stderr = log.map_or_else(Stdio::inherit, |p| {
            Stdio::from(std::fs::File::create(p).unwrap())
        });
        let mut child = Command::new(custodia_bin())
            .args(["gateway", "serve", "--config"])
            .arg(&path)
            .env("CUSTODIA_LOG", filter)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut http = None;
        let mut s3 = None;
        let want_http = config.contains("[http]");
        let want_s3 = config.contains("[s3]");
        while (want_http && http.is_none()) || (want_s3 && s3.is_none()) {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("gateway did not start (see its stderr above)"));
            if let Some(a) = line.strip_prefix("http listening on ") {
                http = Some(a.trim().parse().unwrap());
            }
            if let Some(a) = line.strip_prefix("s3 listening on ") {
                s3 = Some(a.trim().parse().unwrap());
            }
        }
        Self {
            child: Some(child),
            http,
            s3,
            config: path,
        }
    }

    /// The process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Peak resident set size of the gateway process so far, KiB (`VmHWM`).
    #[must_use]
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .unwrap()
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap()
    }

    /// `http://addr` of the HTTP front.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http.unwrap())
    }

    /// Sends SIGTERM and waits for a graceful exit; returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        c.wait().is_ok_and(|s| s.success())
    }
}

impl Drop for GatewayProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The value of the first sample of metric `name` (a full series name, labels included,
/// e.g. `custodia_gateway_requests_total{front="http",op="get",status="200"}`) in a
/// Prometheus text exposition.
#[must_use]
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// What `curl` got.
#[derive(Debug)]
pub struct Curl {
    /// HTTP status (0 if none).
    pub status: u16,
    /// Response headers, lowercased names.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// curl's exit code (non-zero for a broken transfer).
    pub exit: i32,
}

impl Curl {
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Runs `curl -sS` with `args` (plus the test bearer token unless `args` has
/// `-H Authorization…`), capturing status, headers and body.
#[must_use]
pub fn curl(args: &[&str]) -> Curl {
    require("curl", "apt-get install -y curl");
    let tmp = tempfile::tempdir().unwrap();
    let headers = tmp.path().join("h");
    let body = tmp.path().join("b");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "120", "-D"])
        .arg(&headers)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}"]);
    if !args
        .iter()
        .any(|a| a.to_ascii_lowercase().starts_with("authorization"))
    {
        cmd.args(["-H", &format!("Authorization: Bearer {TOKEN}")]);
    }
    let out = cmd.args(args).output().unwrap();
    let status = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let head = std::fs::read_to_string(&headers).unwrap_or_default();
    let headers = head
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        })
        .collect();
    Curl {
        status,
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
        exit: out.status.code().unwrap_or(-1),
    }
}

//! Test harness for Custodia's end-to-end tests: a throwaway PKI (rcgen), custodian processes
//! started from the real `custodia` binary on 127.0.0.1 with free ports, stopped by PID when
//! their guard drops (also when a test panics).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test harness: failing loudly is the point"
)]

pub mod deployment;
pub mod gateway;
pub mod s3;
pub mod world;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use custodia_custodian::client::CustodianClient;
use custodia_custodian::tls::{client_config, key_hash_of};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The `custodia` binary: `$CUSTODIA_BIN` if set (e.g. the release build,
/// `target/release/custodia`, for benchmarks), else the one built by `cargo build` /
/// `cargo test` next to the running executable (`target/debug` for tests).
#[must_use]
pub fn custodia_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("CUSTODIA_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        assert!(
            bin.exists(),
            "CUSTODIA_BIN={} does not exist (`cargo build --release -p custodia-cli` builds \
             target/release/custodia)",
            bin.display()
        );
        return bin;
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    let dir = if dir.ends_with("deps") {
        dir.parent().unwrap()
    } else {
        dir
    };
    let bin = dir.join("custodia");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build -p custodia-cli`; tests/run does)",
        bin.display()
    );
    bin
}

/// A certificate authority for tests.
pub struct TestCa {
    /// PEM of the CA certificate.
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
    next_serial: std::cell::Cell<u64>,
}

/// A leaf certificate and its key.
#[derive(Clone)]
pub struct Leaf {
    /// PEM certificate.
    pub cert_pem: String,
    /// PEM private key.
    pub key_pem: String,
    /// Its serial number (for CRLs).
    pub serial: u64,
    /// SHA-256 of its SubjectPublicKeyInfo (what approvals name).
    pub key_hash: [u8; 32],
}

fn validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(30);
}

impl TestCa {
    /// A fresh self-signed CA called `name`.
    #[must_use]
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
            next_serial: std::cell::Cell::new(100),
        }
    }

    /// A leaf certificate with common name `cn` and DNS/IP subject alternative names `sans`.
    #[must_use]
    pub fn leaf(&self, cn: &str, sans: &[&str]) -> Leaf {
        let serial = self.next_serial.get();
        self.next_serial.set(serial + 1);
        let mut params =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serial_number = Some(SerialNumber::from(serial));
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        ];
        validity(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            key_hash: key_hash_of(cert.der()).unwrap(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial,
        }
    }

    /// A CRL revoking `serials`.
    #[must_use]
    pub fn crl(&self, serials: &[u64]) -> String {
        let now = time::OffsetDateTime::now_utc();
        CertificateRevocationListParams {
            this_update: now - time::Duration::hours(1),
            next_update: now + time::Duration::days(7),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: now - time::Duration::minutes(5),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)
        .unwrap()
        .pem()
        .unwrap()
    }
}

/// A TLS client configuration for `leaf`, trusting `server_ca`.
#[must_use]
pub fn tls_client(server_ca: &TestCa, leaf: &Leaf) -> Arc<rustls::ClientConfig> {
    let roots = CertificateDer::pem_slice_iter(server_ca.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let chain = CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
    client_config(roots, chain, key).unwrap()
}

/// A policy entry for the custodian config.
#[derive(Debug, Clone)]
pub struct CallerEntry {
    /// Region (its CA's).
    pub region: String,
    /// Certificate identity.
    pub identity: String,
    /// Roles, e.g. `["unwrap"]`.
    pub roles: Vec<String>,
}

/// What a test custodian looks like.
#[derive(Debug, Clone)]
pub struct CustodianSpec {
    /// Region.
    pub region: String,
    /// Name.
    pub custodian: String,
    /// Policy entries.
    pub callers: Vec<CallerEntry>,
    /// Approvers (name, hex Ed25519 public key).
    pub approvers: Vec<(String, String)>,
    /// M.
    pub threshold: usize,
    /// Extra `[limits]` lines.
    pub limits: Vec<String>,
    /// Serial numbers revoked in each region CA's CRL.
    pub revoked: BTreeMap<String, Vec<u64>>,
}

/// A running custodian process; killed when dropped.
pub struct CustodianProc {
    child: Option<Child>,
    /// Its address.
    pub addr: SocketAddr,
    /// Its working directory (config, keys, data).
    pub dir: PathBuf,
    /// Its config file.
    pub config: PathBuf,
    /// The manifest signing key printed by `custodian init` (what clients pin).
    pub manifest_key: [u8; 32],
    /// Extra environment.
    env: Vec<(String, String)>,
    /// Wrap the command in `bash -c 'ulimit -f N; exec …'` (file-size limit, KiB). SIGXFSZ
    /// keeps its default action (kill): the custodian must handle it itself.
    pub file_size_limit_kib: Option<u64>,
}

impl CustodianProc {
    /// Writes PKI files and config into `dir`, runs `custodia custodian init --dev`, then
    /// starts `custodia custodian serve --dev`.
    #[must_use]
    pub fn start(
        dir: &Path,
        server_ca: &TestCa,
        cas: &BTreeMap<String, TestCa>,
        spec: &CustodianSpec,
    ) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let server = server_ca.leaf("custodian", &["localhost", "127.0.0.1"]);
        std::fs::write(dir.join("server.pem"), &server.cert_pem).unwrap();
        std::fs::write(dir.join("server.key"), &server.key_pem).unwrap();
        let mut toml = format!(
            "region = \"{}\"\ncustodian = \"{}\"\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\
             [tls]\ncert = \"server.pem\"\nkey = \"server.key\"\n[kek]\nfile = \"kek.hex\"\n",
            spec.region, spec.custodian
        );
        for (region, ca) in cas {
            std::fs::write(dir.join(format!("ca-{region}.pem")), &ca.cert_pem).unwrap();
            toml.push_str(&format!(
                "[[client_ca]]\nregion = \"{region}\"\ncert = \"ca-{region}.pem\"\n"
            ));
            let revoked = spec.revoked.get(region).cloned().unwrap_or_default();
            std::fs::write(dir.join(format!("crl-{region}.pem")), ca.crl(&revoked)).unwrap();
            toml.push_str(&format!("crl = [\"crl-{region}.pem\"]\n"));
        }
        for c in &spec.callers {
            let roles: Vec<String> = c.roles.iter().map(|r| format!("\"{r}\"")).collect();
            toml.push_str(&format!(
                "[[caller]]\nregion = \"{}\"\nidentity = \"{}\"\nroles = [{}]\n",
                c.region,
                c.identity,
                roles.join(", ")
            ));
        }
        if !spec.approvers.is_empty() {
            toml.push_str(&format!("[approvers]\nthreshold = {}\n", spec.threshold));
            for (name, pk) in &spec.approvers {
                toml.push_str(&format!(
                    "[[approvers.key]]\nname = \"{name}\"\npublic_key = \"{pk}\"\n"
                ));
            }
        }
        if !spec.limits.is_empty() {
            toml.push_str("[limits]\n");
            for l in &spec.limits {
                toml.push_str(l);
                toml.push('\n');
            }
        }
        let config = dir.join("custodian.toml");
        std::fs::write(&config, toml).unwrap();
        let out = Command::new(custodia_bin())
            .args(["custodian", "init", "--dev", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "custodian init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let manifest_key: [u8; 32] = stdout
            .split("manifest signing key ")
            .nth(1)
            .and_then(|rest| hex::decode(rest.trim()).ok())
            .and_then(|b| b.try_into().ok())
            .unwrap_or_else(|| panic!("no manifest key in init output: {stdout}"));
        let mut proc = Self {
            child: None,
            manifest_key,
            addr: "127.0.0.1:0".parse().unwrap(),
            dir: dir.to_owned(),
            config,
            env: Vec::new(),
            file_size_limit_kib: None,
        };
        proc.spawn();
        proc
    }

    /// Starts (or restarts) the server process and waits for its `listening on` line.
    pub fn spawn(&mut self) {
        self.stop();
        let bin = custodia_bin();
        let mut cmd = if let Some(kib) = self.file_size_limit_kib {
            let mut c = Command::new("bash");
            c.arg("-c")
                .arg(format!("ulimit -f {kib}; exec \"$0\" \"$@\""))
                .arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        cmd.args(["custodian", "serve", "--dev", "--config"])
            .arg(&self.config)
            .env("CUSTODIA_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("custodian did not start (see its stderr above)"));
        self.addr = addr.parse().unwrap();
        self.child = Some(child);
    }

    /// Sends SIGKILL and waits.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the process (SIGKILL; the service's durability must not depend on a clean stop).
    pub fn stop(&mut self) {
        self.kill9();
    }

    /// Sends `signal` (a name kill(1) knows: `STOP`, `CONT`, …) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("custodian not running").id();
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal} {pid} failed");
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// A client authenticating as `leaf`.
    #[must_use]
    pub fn client(&self, server_ca: &TestCa, leaf: &Leaf) -> CustodianClient {
        CustodianClient::new(
            self.addr.to_string(),
            "localhost",
            tls_client(server_ca, leaf),
        )
        .unwrap()
        .with_timeout(Duration::from_secs(20))
    }

    /// How the SDK reaches and trusts this custodian, connecting as `leaf`.
    #[must_use]
    pub fn sdk_endpoint(&self, server_ca: &TestCa, leaf: &Leaf) -> custodia::CustodianEndpoint {
        custodia::CustodianEndpoint {
            addr: self.addr.to_string(),
            server_name: "localhost".into(),
            tls: tls_client(server_ca, leaf),
            manifest_key: self.manifest_key,
        }
    }

    /// The audit log directory.
    #[must_use]
    pub fn audit_dir(&self) -> PathBuf {
        self.dir.join("data").join("audit")
    }

    /// Every decision on a caller's request so far, public fields joined with the
    /// restricted details (the `policy` entries of starts and reloads are in
    /// [`Self::policies`]).
    #[must_use]
    pub fn log(&self) -> Vec<LogRow> {
        custodia_custodian::audit_store::AuditStore::read_joined(&self.audit_dir())
            .unwrap()
            .into_iter()
            .filter(|(p, _)| p.operation != "policy")
            .map(|(p, d)| LogRow {
                operation: p.operation,
                caller_region: p.caller_region,
                outcome: p.outcome,
                reason: p.reason,
                approval_id: p.approval_id,
                mailbox: d.mailbox,
                object_id: d.object_id,
            })
            .collect()
    }
}

impl CustodianProc {
    /// The `policy` entries so far: (seq, reason, public hash, the policy in the detail).
    #[must_use]
    pub fn policies(
        &self,
    ) -> Vec<(
        u64,
        String,
        String,
        custodia_custodian::audit::policy::PolicyDoc,
    )> {
        custodia_custodian::audit_store::AuditStore::read_joined(&self.audit_dir())
            .unwrap()
            .into_iter()
            .filter(|(p, _)| p.operation == "policy")
            .map(|(p, d)| (p.seq, p.reason, p.policy_hash.unwrap(), d.policy.unwrap()))
            .collect()
    }
}

impl Drop for CustodianProc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One audit entry as tests look at it.
#[derive(Debug, Clone)]
pub struct LogRow {
    /// Operation.
    pub operation: String,
    /// Caller region.
    pub caller_region: String,
    /// Outcome.
    pub outcome: custodia_custodian::decision_log::Outcome,
    /// Reason.
    pub reason: String,
    /// Approval id.
    pub approval_id: Option<String>,
    /// Mailbox (restricted detail).
    pub mailbox: Option<String>,
    /// Object id (restricted detail).
    pub object_id: Option<String>,
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Memory figures of this process from `/proc/self/status`, in KiB: `VmHWM` (peak resident
/// set size so far) and `VmRSS` (current). `None` where `/proc` is not available.
#[must_use]
pub fn memory_kib() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

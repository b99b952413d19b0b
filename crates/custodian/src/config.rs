//! The custodian's TOML configuration: parsed, then validated with errors that name the field.
//!
//! Relative paths are resolved against the config file's directory. A full example with every
//! field is in `docs/API.md` ("Configuration").

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use custodia_envelope::{CustodianName, Region};
use serde::Deserialize;

use crate::ratelimit::RateLimits;
use crate::{Error, Result};

/// A caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May ask for shares (in-region: by policy; elsewhere: with an approval).
    Unwrap,
    /// May rewrap stanzas to the active key version (in-region only).
    Rewrap,
    /// May rotate, retire and (with an approval) destroy key versions (in-region only).
    Admin,
    /// May read the restricted audit details.
    Auditor,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    region: String,
    custodian: String,
    listen: String,
    data_dir: PathBuf,
    tls: RawTls,
    kek: RawKek,
    #[serde(default)]
    manifest: RawManifest,
    #[serde(default)]
    client_ca: Vec<RawClientCa>,
    #[serde(default)]
    caller: Vec<RawCaller>,
    #[serde(default)]
    approvers: RawApprovers,
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKek {
    file: Option<PathBuf>,
    env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawManifest {
    validity_secs: u64,
}

impl Default for RawManifest {
    fn default() -> Self {
        Self {
            validity_secs: 86_400,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClientCa {
    region: String,
    cert: PathBuf,
    #[serde(default)]
    crl: Vec<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCaller {
    region: String,
    identity: String,
    #[serde(default)]
    name: Option<String>,
    roles: Vec<Role>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApprovers {
    #[serde(default)]
    threshold: usize,
    #[serde(default)]
    key: Vec<RawApprover>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApprover {
    name: String,
    public_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    max_body_bytes: usize,
    max_batch: usize,
    per_mailbox_per_minute: u32,
    per_mailbox_burst: u32,
    bulk_mailboxes_per_minute: u32,
    out_of_region_denials_per_minute: u32,
    out_of_region_denial_burst: u32,
    request_timeout_secs: u64,
    max_connections: usize,
    max_handshakes: usize,
    max_connections_per_region: usize,
    max_connections_per_caller: usize,
    handshake_timeout_secs: u64,
    idle_timeout_secs: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        let rl = RateLimits::default();
        let cl = ConnectionLimits::default();
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            max_batch: crate::api::MAX_BATCH,
            per_mailbox_per_minute: rl.per_mailbox_per_minute,
            per_mailbox_burst: rl.per_mailbox_burst,
            bulk_mailboxes_per_minute: rl.bulk_mailboxes_per_minute,
            out_of_region_denials_per_minute: rl.out_of_region_denials_per_minute,
            out_of_region_denial_burst: rl.out_of_region_denial_burst,
            request_timeout_secs: 30,
            max_connections: cl.max_connections,
            max_handshakes: cl.max_handshakes,
            max_connections_per_region: cl.max_connections_per_region,
            max_connections_per_caller: cl.max_connections_per_caller,
            handshake_timeout_secs: cl.handshake_timeout_secs,
            idle_timeout_secs: cl.idle_timeout_secs,
        }
    }
}

/// Where the key-encryption key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekSource {
    /// A file holding 64 hex characters (mode 0600). Required for key destruction, which
    /// replaces it.
    File(PathBuf),
    /// An environment variable holding 64 hex characters.
    Env(String),
}

/// A region's client CA.
#[derive(Debug, Clone)]
pub struct ClientCaConfig {
    /// The region whose callers it certifies.
    pub region: Region,
    /// PEM file with the CA certificate(s).
    pub cert: PathBuf,
    /// PEM files with CRLs.
    pub crls: Vec<PathBuf>,
}

/// A policy entry: (region, certificate identity) → name and roles.
#[derive(Debug, Clone)]
pub struct CallerConfig {
    /// The region, which must match the issuing CA's.
    pub region: Region,
    /// The certificate identity (first DNS SAN, else subject CN).
    pub identity: String,
    /// Display name for logs.
    pub name: String,
    /// Roles.
    pub roles: BTreeSet<Role>,
}

/// An approver's public key.
#[derive(Debug, Clone)]
pub struct ApproverConfig {
    /// Name.
    pub name: String,
    /// Ed25519 public key.
    pub public_key: [u8; 32],
}

/// Most connections any connection cap may allow.
const MAX_CAP: usize = 1_000_000;

/// Longest timeout accepted, seconds (larger values are treated as this).
const MAX_TIMEOUT_SECS: u64 = 3600;

/// Request and rate limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Most items per batch.
    pub max_batch: usize,
    /// Rate limits.
    pub rate: RateLimits,
    /// Per-request timeout, seconds.
    pub request_timeout_secs: u64,
    /// Connections and their timeouts.
    pub connections: ConnectionLimits,
}

/// How many connections the server holds and for how long (`docs/API.md` §1.1). A caller
/// that floods the server hits its own caps first: per certificate identity, then per
/// region, so one identity, or one region's CA, cannot lock another out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most open connections in all (handshaking or established).
    pub max_connections: usize,
    /// Most connections still in their TLS handshake.
    pub max_handshakes: usize,
    /// Most established connections of one region's callers.
    pub max_connections_per_region: usize,
    /// Most established connections of one caller (region and certificate identity).
    pub max_connections_per_caller: usize,
    /// Seconds a TLS handshake may take.
    pub handshake_timeout_secs: u64,
    /// Seconds a connection may sit with no request in flight (this bounds the time to send
    /// a request head as well) before the server closes it.
    pub idle_timeout_secs: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_handshakes: 128,
            max_connections_per_region: 512,
            max_connections_per_caller: 64,
            handshake_timeout_secs: 5,
            idle_timeout_secs: 30,
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// This custodian's region.
    pub region: Region,
    /// This custodian's name within the region.
    pub custodian: CustodianName,
    /// Listen address.
    pub listen: SocketAddr,
    /// Directory for `keystore.json`, the `audit/` log and the `lock` file.
    pub data_dir: PathBuf,
    /// Server certificate chain (PEM).
    pub tls_cert: PathBuf,
    /// Server private key (PEM).
    pub tls_key: PathBuf,
    /// Key-encryption key source.
    pub kek: KekSource,
    /// Manifest validity.
    pub manifest_validity_secs: u64,
    /// Client CAs, one per region.
    pub client_cas: Vec<ClientCaConfig>,
    /// Policy entries.
    pub callers: Vec<CallerConfig>,
    /// Approvers (N).
    pub approvers: Vec<ApproverConfig>,
    /// M of N.
    pub approval_threshold: usize,
    /// Limits.
    pub limits: Limits,
}

fn region(field: &str, v: &str) -> Result<Region> {
    Region::new(v).map_err(|e| Error::config(field, e.to_string()))
}

impl Config {
    /// Reads and validates `path`.
    ///
    /// # Errors
    /// [`Error::Io`], or [`Error::Config`] naming the field.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base)
    }

    /// Parses and validates TOML `text`, resolving relative paths against `base`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the field.
    pub fn parse(text: &str, base: &Path) -> Result<Self> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let field = e.message().to_owned();
            Error::config("(toml)", field)
        })?;
        let abs = |p: &Path| {
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };
        let own_region = region("region", &raw.region)?;
        let custodian = CustodianName::new(&raw.custodian)
            .map_err(|e| Error::config("custodian", e.to_string()))?;
        let listen = raw
            .listen
            .parse()
            .map_err(|_| Error::config("listen", "expected host:port, e.g. 127.0.0.1:8443"))?;
        let kek = match (raw.kek.file, raw.kek.env) {
            (Some(f), None) => KekSource::File(abs(&f)),
            (None, Some(v)) if !v.is_empty() => KekSource::Env(v),
            _ => return Err(Error::config("kek", "set exactly one of `file` or `env`")),
        };
        if raw.manifest.validity_secs < 60 {
            return Err(Error::config("manifest.validity_secs", "at least 60"));
        }
        let mut client_cas = Vec::new();
        let mut ca_regions = HashSet::new();
        for (i, ca) in raw.client_ca.iter().enumerate() {
            let r = region(&format!("client_ca[{i}].region"), &ca.region)?;
            if !ca_regions.insert(r.clone()) {
                return Err(Error::config(
                    format!("client_ca[{i}].region"),
                    "one client CA entry per region",
                ));
            }
            client_cas.push(ClientCaConfig {
                region: r,
                cert: abs(&ca.cert),
                crls: ca.crl.iter().map(|p| abs(p)).collect(),
            });
        }
        if client_cas.is_empty() {
            return Err(Error::config(
                "client_ca",
                "at least one client CA is required",
            ));
        }
        let mut callers = Vec::new();
        let mut seen = HashSet::new();
        for (i, c) in raw.caller.iter().enumerate() {
            let field = format!("caller[{i}]");
            let r = region(&format!("{field}.region"), &c.region)?;
            if !ca_regions.contains(&r) {
                return Err(Error::config(
                    format!("{field}.region"),
                    format!("no client_ca for region `{r}`: a caller's region is its CA's"),
                ));
            }
            if c.identity.is_empty() {
                return Err(Error::config(
                    format!("{field}.identity"),
                    "must not be empty",
                ));
            }
            if !seen.insert((r.clone(), c.identity.clone())) {
                return Err(Error::config(field, "duplicate (region, identity)"));
            }
            if c.roles.is_empty() {
                return Err(Error::config(format!("{field}.roles"), "at least one role"));
            }
            callers.push(CallerConfig {
                region: r,
                identity: c.identity.clone(),
                name: c.name.clone().unwrap_or_else(|| c.identity.clone()),
                roles: c.roles.iter().copied().collect(),
            });
        }
        let mut approvers = Vec::new();
        for (i, a) in raw.approvers.key.iter().enumerate() {
            let bytes = hex::decode(&a.public_key)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| {
                    Error::config(
                        format!("approvers.key[{i}].public_key"),
                        "64 hex characters (Ed25519 public key)",
                    )
                })?;
            if approvers
                .iter()
                .any(|x: &ApproverConfig| x.public_key == bytes)
            {
                return Err(Error::config(
                    format!("approvers.key[{i}].public_key"),
                    "the same key is configured twice: M of N must count distinct approvers",
                ));
            }
            approvers.push(ApproverConfig {
                name: a.name.clone(),
                public_key: bytes,
            });
        }
        let threshold = raw.approvers.threshold;
        if !approvers.is_empty() && !(1..=approvers.len()).contains(&threshold) {
            return Err(Error::config(
                "approvers.threshold",
                format!(
                    "must be between 1 and the number of approvers ({})",
                    approvers.len()
                ),
            ));
        }
        let l = raw.limits;
        if l.max_batch == 0 || l.max_batch > crate::api::MAX_BATCH {
            return Err(Error::config("limits.max_batch", "1..=1024"));
        }
        if l.out_of_region_denial_burst == 0 {
            return Err(Error::config(
                "limits.out_of_region_denial_burst",
                "at least 1 (a caller needs room for one denial)",
            ));
        }
        if l.out_of_region_denials_per_minute == 0 {
            return Err(Error::config(
                "limits.out_of_region_denials_per_minute",
                "at least 1 (a throttled caller must recover)",
            ));
        }
        if l.max_body_bytes < 1024 {
            return Err(Error::config("limits.max_body_bytes", "at least 1024"));
        }
        for (field, v) in [
            ("limits.max_connections", l.max_connections),
            ("limits.max_handshakes", l.max_handshakes),
            (
                "limits.max_connections_per_region",
                l.max_connections_per_region,
            ),
            (
                "limits.max_connections_per_caller",
                l.max_connections_per_caller,
            ),
        ] {
            if v == 0 || v > MAX_CAP {
                return Err(Error::config(field, "1..=1000000"));
            }
        }
        if l.max_connections_per_caller > l.max_connections_per_region
            || l.max_connections_per_region > l.max_connections
        {
            return Err(Error::config(
                "limits.max_connections_per_caller",
                "need per caller <= per region <= max_connections",
            ));
        }
        Ok(Self {
            region: own_region,
            custodian,
            listen,
            data_dir: abs(&raw.data_dir),
            tls_cert: abs(&raw.tls.cert),
            tls_key: abs(&raw.tls.key),
            kek,
            manifest_validity_secs: raw.manifest.validity_secs,
            client_cas,
            callers,
            approvers,
            approval_threshold: threshold,
            limits: Limits {
                max_body_bytes: l.max_body_bytes,
                max_batch: l.max_batch,
                rate: RateLimits {
                    per_mailbox_per_minute: l.per_mailbox_per_minute,
                    per_mailbox_burst: l.per_mailbox_burst,
                    bulk_mailboxes_per_minute: l.bulk_mailboxes_per_minute,
                    out_of_region_denials_per_minute: l.out_of_region_denials_per_minute,
                    out_of_region_denial_burst: l.out_of_region_denial_burst,
                },
                request_timeout_secs: l.request_timeout_secs.clamp(1, MAX_TIMEOUT_SECS),
                connections: ConnectionLimits {
                    max_connections: l.max_connections,
                    max_handshakes: l.max_handshakes,
                    max_connections_per_region: l.max_connections_per_region,
                    max_connections_per_caller: l.max_connections_per_caller,
                    handshake_timeout_secs: l.handshake_timeout_secs.clamp(1, MAX_TIMEOUT_SECS),
                    idle_timeout_secs: l.idle_timeout_secs.clamp(1, MAX_TIMEOUT_SECS),
                },
            },
        })
    }

    /// The policy entry for a caller, if any.
    #[must_use]
    pub fn caller(&self, region: &Region, identity: &str) -> Option<&CallerConfig> {
        self.callers
            .iter()
            .find(|c| &c.region == region && c.identity == identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
region = "ie"
custodian = "dublin"
listen = "127.0.0.1:8443"
data_dir = "data"
[tls]
cert = "server.pem"
key = "server.key"
[kek]
file = "kek.hex"
[[client_ca]]
region = "ie"
cert = "ca-ie.pem"
[[client_ca]]
region = "us"
cert = "ca-us.pem"
[[caller]]
region = "ie"
identity = "gateway-ie"
roles = ["unwrap", "rewrap"]
[approvers]
threshold = 1
[[approvers.key]]
name = "a"
public_key = "0000000000000000000000000000000000000000000000000000000000000000"
"#;

    #[test]
    fn good_config_parses_with_relative_paths_resolved() {
        let c = Config::parse(GOOD, Path::new("/etc/custodia")).unwrap();
        assert_eq!(c.region.as_str(), "ie");
        assert_eq!(c.data_dir, Path::new("/etc/custodia/data"));
        assert_eq!(c.kek, KekSource::File("/etc/custodia/kek.hex".into()));
        assert!(
            c.caller(&Region::new("ie").unwrap(), "gateway-ie")
                .is_some()
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                GOOD.replace("region = \"us\"", "region = \"ie\""),
                "client_ca[1].region",
            ),
            (
                GOOD.replace("region = \"ie\"\nidentity", "region = \"fr\"\nidentity"),
                "caller[0].region",
            ),
            (
                GOOD.replace("threshold = 1", "threshold = 2"),
                "approvers.threshold",
            ),
            (GOOD.replace("127.0.0.1:8443", "nowhere"), "listen"),
            (GOOD.replace("file = \"kek.hex\"", ""), "kek"),
            (
                GOOD.replace("custodian = \"dublin\"", "custodian = \"Dublin\""),
                "custodian",
            ),
        ];
        for (text, field) in cases {
            match Config::parse(&text, Path::new("/")) {
                Err(Error::Config { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let text = format!("{GOOD}\n[extra]\nx = 1\n");
        assert!(matches!(
            Config::parse(&text, Path::new("/")),
            Err(Error::Config { .. })
        ));
    }
}

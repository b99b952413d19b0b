//! The gateway's TOML configuration: fronts, upstream store, custodian directory, residency
//! rules, limits and the DEK cache. Loading validates everything and names the field at
//! fault; relative paths are resolved against the config file's directory.
//!
//! `docs/GATEWAY.md` documents every field with a full example.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This gateway's own region (its custodian client certificate must be from that
    /// region's CA); used in logs and metrics.
    pub region: String,
    /// The plain HTTP/WebDAV front (bearer tokens).
    pub http: Option<HttpFront>,
    /// The S3 front (SigV4 with gateway-issued access keys).
    pub s3: Option<S3Front>,
    /// TLS for the fronts (off: plain HTTP, for loopback or behind a TLS terminator).
    pub tls: Option<TlsFiles>,
    /// Where sealed objects are stored.
    pub upstream: Upstream,
    /// This gateway's identity towards the custodians (mTLS client certificate).
    pub identity: TlsFiles,
    /// The custodians, one entry per custodian (a region may have several: n-of-n).
    #[serde(default, rename = "custodian")]
    pub custodians: Vec<CustodianEntry>,
    /// Mailbox → home region.
    #[serde(default)]
    pub residency: Residency,
    /// Bucket + key pattern → mailbox. A key no route matches is refused.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteEntry>,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// The DEK cache for reads.
    #[serde(default)]
    pub cache: Cache,
}

/// The plain HTTP front.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFront {
    /// Listen address, e.g. `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Files holding the accepted bearer tokens, one per line (kept out of the config).
    #[serde(default)]
    pub token_files: Vec<PathBuf>,
}

/// The S3 front.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Front {
    /// Listen address.
    pub listen: SocketAddr,
    /// Base domain for virtual-hosted-style requests (`bucket.DOMAIN`), with the port if
    /// clients use one, e.g. `s3.test:9000`.
    pub domain: Option<String>,
    /// A file of gateway-issued access keys, one `ACCESS_KEY_ID SECRET` pair per line.
    pub access_keys_file: PathBuf,
}

/// A certificate chain and private key (PEM).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Certificate chain, end entity first.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// The upstream store.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Upstream {
    /// A plain HTTP/WebDAV server (PUT/GET/HEAD/DELETE): objects at `endpoint/bucket/key`.
    Webdav {
        /// Base URL, `http://host:port[/prefix]`.
        endpoint: String,
        /// Optional upstream authentication.
        auth: Option<UpstreamAuth>,
    },
    /// Any S3-compatible store, requests re-signed with the gateway's own credentials.
    S3 {
        /// Base URL, `http://host:port` (path-style requests).
        endpoint: String,
        /// Signing region (e.g. `us-east-1`).
        #[serde(default = "default_s3_region")]
        region: String,
        /// A file holding `ACCESS_KEY_ID SECRET` on one line.
        credentials_file: PathBuf,
    },
}

fn default_s3_region() -> String {
    "us-east-1".into()
}

/// Authentication towards a WebDAV store, secrets read from a file.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum UpstreamAuth {
    /// HTTP basic: the file holds `user:password`.
    Basic {
        /// The file.
        file: PathBuf,
    },
    /// Bearer: the file holds the token.
    Bearer {
        /// The file.
        file: PathBuf,
    },
}

/// One custodian of the directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodianEntry {
    /// Its region.
    pub region: String,
    /// Its name (custodian id) within the region.
    pub name: String,
    /// `host:port` of its HTTPS API.
    pub addr: String,
    /// The name its server certificate is valid for (default: the host of `addr`).
    pub server_name: Option<String>,
    /// The CA certificate(s) that issued its server certificate (PEM).
    pub ca: PathBuf,
    /// Its Ed25519 manifest signing public key, 64 hex characters (pinned).
    pub manifest_key: String,
}

/// Mailbox → home region rules (the SDK's residency policy).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Residency {
    /// Exact mailbox ids.
    #[serde(default)]
    pub mailboxes: BTreeMap<String, String>,
    /// Mail domains (the longest matching suffix wins).
    #[serde(default)]
    pub domains: BTreeMap<String, String>,
}

/// One route: which keys of a bucket hold whose mailbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    /// The bucket (the first path segment on the HTTP front).
    pub bucket: String,
    /// A regular expression over the key with a capture group named `mailbox`; anchor it
    /// (`^…`) so it means what it says.
    pub key: String,
    /// Serve objects without a Custodia header as plaintext (migration only; default off).
    #[serde(default)]
    pub legacy_plaintext: bool,
    /// Read multipart objects whose layout record predates part binding (layout version 1,
    /// written before December 2026): a part re-sent during such an upload could be put back
    /// in place of the one it completed with. Default off; `custodia verify` lists them.
    #[serde(default)]
    pub legacy_layouts: bool,
}

/// Limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request head (request line and headers), bytes.
    pub max_header_bytes: usize,
    /// Most requests served at once per front, counted separately for reads (GET, HEAD) and
    /// for writes (everything else), so reads waiting on a custodian never hold the slots
    /// writes need; more wait for a slot.
    pub max_concurrent_requests: usize,
    /// Seconds one call to a custodian may take, every attempt included; a read then
    /// answers 503 with `Retry-After`.
    pub custodian_timeout_secs: u64,
    /// Seconds opening one connection to a custodian may take (TCP, TLS and HTTP
    /// handshakes). A custodian not connected to in time is treated as down for 2 s: reads
    /// of its region answer 503 at once.
    pub custodian_connect_timeout_secs: u64,
    /// Most open client connections per front; more are closed at once.
    pub max_connections: usize,
    /// Seconds a connection may sit idle (or take to send its request head).
    pub idle_timeout_secs: u64,
    /// Largest object accepted, bytes.
    pub max_object_bytes: u64,
    /// Seconds in-flight requests get to finish on shutdown.
    pub shutdown_grace_secs: u64,
}

impl Limits {
    /// How long a read waits for a request slot before it is answered 503: twice the
    /// custodian call timeout (the longest a read that holds a slot keeps it waiting on a
    /// custodian).
    #[must_use]
    pub fn read_slot_wait(&self) -> Duration {
        Duration::from_secs(self.custodian_timeout_secs.clamp(1, 3600) * 2)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 64 * 1024,
            max_concurrent_requests: 256,
            custodian_timeout_secs: 10,
            custodian_connect_timeout_secs: 3,
            max_connections: 1024,
            idle_timeout_secs: 60,
            max_object_bytes: 5 * 1024 * 1024 * 1024 * 1024,
            shutdown_grace_secs: 30,
        }
    }
}

/// The DEK cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cache {
    /// Most data keys held (0 disables the cache).
    pub capacity: usize,
    /// Seconds a data key may be reused.
    pub ttl_secs: u64,
}

impl Default for Cache {
    fn default() -> Self {
        Self {
            capacity: 1024,
            ttl_secs: 300,
        }
    }
}

impl Config {
    /// Reads and validates `path`; relative paths inside are resolved against its directory.
    ///
    /// # Errors
    /// [`Error::File`] if it cannot be read, [`Error::Config`] naming the field at fault.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::File {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Self::parse(&text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        Ok(config)
    }

    /// Parses and validates TOML text (paths left as written).
    ///
    /// # Errors
    /// [`Error::Config`] naming the field at fault.
    pub fn parse(text: &str) -> Result<Self> {
        let config: Self = toml::from_str(text).map_err(|e| {
            let field = e.span().map_or_else(String::new, |s| {
                let line = text[..s.start.min(text.len())].lines().count().max(1);
                format!("line {line}")
            });
            Error::config(field, e.message().to_owned())
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.http.is_none() && self.s3.is_none() {
            return Err(Error::config("http / s3", "configure at least one front"));
        }
        custodia_envelope::Region::new(&self.region)
            .map_err(|e| Error::config("region", e.to_string()))?;
        if self.custodians.is_empty() {
            return Err(Error::config("custodian", "no custodians configured"));
        }
        for (i, c) in self.custodians.iter().enumerate() {
            custodia_envelope::Region::new(&c.region)
                .map_err(|e| Error::config(format!("custodian[{i}].region"), e.to_string()))?;
            custodia_envelope::CustodianName::new(&c.name)
                .map_err(|e| Error::config(format!("custodian[{i}].name"), e.to_string()))?;
            if parse_key(&c.manifest_key).is_none() {
                return Err(Error::config(
                    format!("custodian[{i}].manifest_key"),
                    "64 hex characters expected",
                ));
            }
        }
        let known = |r: &str| self.custodians.iter().any(|c| c.region == r);
        for (table, rules) in [
            ("residency.mailboxes", &self.residency.mailboxes),
            ("residency.domains", &self.residency.domains),
        ] {
            // Rules compare canonical ids: each must have one, and two spellings of one id
            // may not name two regions.
            let mut seen: BTreeMap<String, &String> = BTreeMap::new();
            for (k, r) in rules {
                if !known(r) {
                    return Err(Error::config(
                        format!("{table}.{k:?}"),
                        format!("region {r:?} has no custodian"),
                    ));
                }
                let canonical = if table == "residency.mailboxes" {
                    custodia_envelope::canonical_mailbox(k)
                } else {
                    custodia_envelope::canonical_domain(k.trim_start_matches(['@', '.']))
                }
                .map_err(|e| Error::config(format!("{table}.{k:?}"), e.to_string()))?;
                if let Some(other) = seen.insert(canonical.clone(), r)
                    && other != r
                {
                    return Err(Error::config(
                        format!("{table}.{k:?}"),
                        format!("{canonical} is already given another region ({other})"),
                    ));
                }
            }
        }
        if self.routes.is_empty() {
            return Err(Error::config(
                "route",
                "no routes: every key would be refused",
            ));
        }
        for (i, r) in self.routes.iter().enumerate() {
            crate::routes::Route::new(r)
                .map_err(|reason| Error::config(format!("route[{i}]"), reason))?;
        }
        if let Upstream::Webdav { endpoint, .. } | Upstream::S3 { endpoint, .. } = &self.upstream
            && !endpoint.starts_with("http://")
        {
            return Err(Error::config(
                "upstream.endpoint",
                "an http:// URL expected (reach TLS stores through a local TLS tunnel)",
            ));
        }
        if self.limits.max_concurrent_requests == 0 || self.limits.max_connections == 0 {
            return Err(Error::config("limits", "limits must be at least 1"));
        }
        Ok(())
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(h) = &mut self.http {
            h.token_files.iter_mut().for_each(fix);
        }
        if let Some(s) = &mut self.s3 {
            fix(&mut s.access_keys_file);
        }
        if let Some(t) = &mut self.tls {
            fix(&mut t.cert);
            fix(&mut t.key);
        }
        fix(&mut self.identity.cert);
        fix(&mut self.identity.key);
        for c in &mut self.custodians {
            fix(&mut c.ca);
        }
        match &mut self.upstream {
            Upstream::Webdav { auth, .. } => match auth {
                Some(UpstreamAuth::Basic { file } | UpstreamAuth::Bearer { file }) => fix(file),
                None => {}
            },
            Upstream::S3 {
                credentials_file, ..
            } => fix(credentials_file),
        }
    }
}

/// A 32-byte key from 64 hex characters.
#[must_use]
pub fn parse_key(hex_text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(hex_text.trim()).ok()?;
    bytes.try_into().ok()
}

/// Reads a secrets file (tokens, credentials): non-empty, non-comment lines.
///
/// # Errors
/// [`Error::File`].
pub fn read_secret_lines(path: &Path) -> Result<Vec<zeroize::Zeroizing<String>>> {
    let text =
        zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| Error::File {
            path: path.display().to_string(),
            source,
        })?);
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| zeroize::Zeroizing::new(l.to_owned()))
        .collect())
}

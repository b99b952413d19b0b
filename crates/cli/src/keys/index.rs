//! `regions.toml`, the machine-readable index `keys init` writes next to the keys: for each
//! region its custodian, address, config, CA, pinned manifest key, client certificates and
//! approvers, so that `seal`, `open`, `approve`, `audit`, `report` (and gateway configs) find
//! everything from one file. Paths in it are relative to its directory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::failure::{CliResult, Failure};
use crate::files::{hex32, read_text};

/// The index file's name inside a keys directory.
pub(crate) const INDEX_FILE: &str = "regions.toml";
/// The `format` value of this version of the index.
pub(crate) const FORMAT: &str = "custodia-keys-v1";

/// The whole index.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Index {
    /// Always [`FORMAT`].
    pub(crate) format: String,
    /// True: development keys (the keystores are marked insecure; serve them with `--dev`).
    pub(crate) insecure: bool,
    /// One entry per region.
    #[serde(rename = "region")]
    pub(crate) regions: Vec<RegionEntry>,
    /// The directory the paths are relative to (not serialized).
    #[serde(skip)]
    pub(crate) dir: PathBuf,
}

/// One region: its custodian and the files of its callers and approvers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegionEntry {
    /// Region name, e.g. `ie`.
    pub(crate) name: String,
    /// The custodian's name, e.g. `ie-custodian`.
    pub(crate) custodian: String,
    /// Where the custodian listens (`host:port`), as in its config.
    pub(crate) address: String,
    /// The name its server certificate is valid for.
    pub(crate) server_name: String,
    /// The custodian's TOML config.
    pub(crate) config: PathBuf,
    /// The region CA certificate: trust root for this custodian's server certificate, and the
    /// client CA of this region's callers at every custodian.
    pub(crate) ca_cert: PathBuf,
    /// The custodian's manifest signing key (64 hex): what clients pin.
    pub(crate) manifest_key: String,
    /// The in-region gateway's certificate identity.
    pub(crate) gateway_identity: String,
    /// The in-region gateway's client certificate.
    pub(crate) gateway_cert: PathBuf,
    /// Its private key.
    pub(crate) gateway_key: PathBuf,
    /// The region's admin client certificate.
    pub(crate) admin_cert: PathBuf,
    /// Its private key.
    pub(crate) admin_key: PathBuf,
    /// The region's auditor client certificate.
    pub(crate) auditor_cert: PathBuf,
    /// Its private key.
    pub(crate) auditor_key: PathBuf,
    /// M: how many of the approvers must sign.
    pub(crate) approver_threshold: usize,
    /// The N approvers.
    #[serde(rename = "approver")]
    pub(crate) approvers: Vec<ApproverEntry>,
}

/// One approver.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApproverEntry {
    /// Name (as in the custodian config).
    pub(crate) name: String,
    /// Ed25519 public key, 64 hex.
    pub(crate) public_key: String,
    /// The private key file (64 hex seed), for `custodia approve sign --key`.
    pub(crate) key: PathBuf,
}

impl Index {
    /// Reads the index at `path`: a keys directory (its `regions.toml`) or the file itself.
    pub(crate) fn load(path: &Path) -> CliResult<Self> {
        let file = if path.is_dir() {
            path.join(INDEX_FILE)
        } else {
            path.to_owned()
        };
        let text = read_text(&file)?;
        let mut index: Self = toml::from_str(&text)
            .map_err(|e| Failure::failed(format!("{}: {}", file.display(), e.message())))?;
        if index.format != FORMAT {
            return Err(Failure::failed(format!(
                "{}: format: expected {FORMAT:?}, found {:?}",
                file.display(),
                index.format
            )));
        }
        for r in &index.regions {
            hex32(
                &r.manifest_key,
                &format!("{}: region {}: manifest_key", file.display(), r.name),
            )?;
        }
        index.dir = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        Ok(index)
    }

    /// The TOML text, with a header comment.
    pub(crate) fn to_toml(&self) -> CliResult<String> {
        let body = toml::to_string_pretty(self)
            .map_err(|e| Failure::failed(format!("{INDEX_FILE}: {e}")))?;
        Ok(format!(
            "# Custodia keys index, written by `custodia keys init`. Paths are relative to this\n\
             # file's directory. DEVELOPMENT KEYS ONLY: every private key here is insecure.\n\n{body}"
        ))
    }

    /// The entry of `region`.
    pub(crate) fn region(&self, region: &str) -> CliResult<&RegionEntry> {
        self.regions
            .iter()
            .find(|r| r.name == region)
            .ok_or_else(|| {
                let known: Vec<&str> = self.regions.iter().map(|r| r.name.as_str()).collect();
                Failure::failed(format!(
                    "{}: no region {region:?} (regions: {})",
                    self.dir.join(INDEX_FILE).display(),
                    known.join(", ")
                ))
            })
    }

    /// `path` resolved against the index's directory.
    pub(crate) fn path(&self, path: &Path) -> PathBuf {
        self.dir.join(path)
    }
}

impl RegionEntry {
    /// The pinned manifest key (checked when the index was loaded).
    pub(crate) fn manifest_key(&self) -> CliResult<[u8; 32]> {
        hex32(
            &self.manifest_key,
            &format!("region {}: manifest_key", self.name),
        )
    }
}

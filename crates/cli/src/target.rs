//! Which custodian a command talks to and as whom: flags shared by `audit` and `report`,
//! resolved from a keys index (`--keys DIR --region R`) with explicit flags taking
//! precedence, then turned into an mTLS `CustodianClient`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use custodia_custodian::client::CustodianClient;
use custodia_custodian::tls::{client_config, load_certs, load_key};

use crate::failure::{CliResult, Context, Failure};
use crate::files::hex32;
use crate::keys::index::{Index, RegionEntry};

/// Flags naming a custodian and the client certificate to present.
#[derive(Debug, Args, Clone)]
pub(crate) struct Target {
    /// A keys directory made by `keys init` (or its regions.toml): supplies the defaults below.
    #[arg(long, value_name = "DIR")]
    pub(crate) keys: Option<PathBuf>,
    /// The custodian's region (its entry in --keys).
    #[arg(long, value_name = "REGION")]
    pub(crate) region: Option<String>,
    /// The custodian's name (default: from --keys).
    #[arg(long, value_name = "NAME")]
    pub(crate) custodian: Option<String>,
    /// The custodian's address, HOST:PORT (default: from --keys).
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) server: Option<String>,
    /// The name its server certificate is valid for (default: from --keys, else localhost).
    #[arg(long, value_name = "NAME")]
    pub(crate) server_name: Option<String>,
    /// CA certificate(s) that issued the custodian's server certificate (PEM).
    #[arg(long, value_name = "PEM")]
    pub(crate) ca: Option<PathBuf>,
    /// The client certificate to present (PEM; default from --keys: the region's auditor's,
    /// or its admin's for key rotation, retirement and shredding).
    #[arg(long, value_name = "PEM")]
    pub(crate) cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "PEM")]
    pub(crate) cert_key: Option<PathBuf>,
    /// The custodian's manifest signing key (64 hex), which signs its checkpoints.
    #[arg(long, value_name = "HEX")]
    pub(crate) manifest_key: Option<String>,
}

impl Target {
    /// The custodian of `region` in the keys index `keys`, as its auditor.
    pub(crate) fn from_keys(keys: PathBuf, region: &str) -> Self {
        Self {
            keys: Some(keys),
            region: Some(region.to_owned()),
            custodian: None,
            server: None,
            server_name: None,
            ca: None,
            cert: None,
            cert_key: None,
            manifest_key: None,
        }
    }
}

/// A resolved target.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// Region.
    pub(crate) region: String,
    /// Custodian name.
    pub(crate) custodian: String,
    /// Address, if known.
    pub(crate) server: Option<String>,
    /// Server certificate name.
    pub(crate) server_name: String,
    /// Server CA.
    pub(crate) ca: Option<PathBuf>,
    /// Client certificate and key.
    pub(crate) cert: Option<(PathBuf, PathBuf)>,
    /// Pinned manifest key, if known.
    pub(crate) manifest_key: Option<[u8; 32]>,
}

fn pick<T: Clone>(flag: Option<&T>, from_index: Option<T>) -> Option<T> {
    flag.cloned().or(from_index)
}

impl Target {
    /// The index entry of `--region`, if `--keys` is given.
    fn entry(&self) -> CliResult<Option<(Index, RegionEntry)>> {
        let Some(keys) = &self.keys else {
            return Ok(None);
        };
        let index = Index::load(keys)?;
        let region = self
            .region
            .as_deref()
            .ok_or_else(|| Failure::usage("--region: needed with --keys"))?;
        let entry = index.region(region)?.clone();
        Ok(Some((index, entry)))
    }

    /// Resolves the flags, with the region auditor's certificate from the index by default.
    pub(crate) fn resolve(&self) -> CliResult<Resolved> {
        self.resolve_as(
            |i, e| i.path(&e.auditor_cert),
            |i, e| i.path(&e.auditor_key),
        )
    }

    /// Resolves the flags, with the region admin's certificate from the index by default
    /// (key rotation, retirement and destruction).
    pub(crate) fn resolve_admin(&self) -> CliResult<Resolved> {
        self.resolve_as(|i, e| i.path(&e.admin_cert), |i, e| i.path(&e.admin_key))
    }

    fn resolve_as(
        &self,
        cert_of: fn(&Index, &RegionEntry) -> PathBuf,
        key_of: fn(&Index, &RegionEntry) -> PathBuf,
    ) -> CliResult<Resolved> {
        let entry = self.entry()?;
        let from =
            |f: fn(&Index, &RegionEntry) -> PathBuf| entry.as_ref().map(|(index, e)| f(index, e));
        let region = pick(self.region.as_ref(), None)
            .ok_or_else(|| Failure::usage("--region: which region's custodian?"))?;
        let custodian = pick(
            self.custodian.as_ref(),
            entry.as_ref().map(|(_, e)| e.custodian.clone()),
        )
        .ok_or_else(|| Failure::usage("--custodian: needed without --keys"))?;
        let cert = pick(self.cert.as_ref(), from(cert_of));
        let key = pick(self.cert_key.as_ref(), from(key_of));
        let cert = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => return Err(Failure::usage("--cert-key: needed with --cert")),
            (None, Some(_)) => return Err(Failure::usage("--cert: needed with --cert-key")),
        };
        let manifest_key = match &self.manifest_key {
            Some(hex) => Some(hex32(hex, "--manifest-key")?),
            None => entry.as_ref().map(|(_, e)| e.manifest_key()).transpose()?,
        };
        Ok(Resolved {
            region,
            custodian,
            server: pick(
                self.server.as_ref(),
                entry.as_ref().map(|(_, e)| e.address.clone()),
            ),
            server_name: pick(
                self.server_name.as_ref(),
                entry.as_ref().map(|(_, e)| e.server_name.clone()),
            )
            .unwrap_or_else(|| "localhost".into()),
            ca: pick(self.ca.as_ref(), from(|i, e| i.path(&e.ca_cert))),
            cert,
            manifest_key,
        })
    }
}

impl Resolved {
    /// `region/custodian at address`, for messages.
    pub(crate) fn describe(&self) -> String {
        format!(
            "custodian {}/{} at {}",
            self.region,
            self.custodian,
            self.server.as_deref().unwrap_or("(no address)")
        )
    }

    /// The checkpoint origin and the pinned key.
    pub(crate) fn origin_and_key(&self) -> CliResult<(String, [u8; 32])> {
        let key = self.manifest_key.ok_or_else(|| {
            Failure::usage("--manifest-key: needed (or --keys DIR --region R) to check signatures")
        })?;
        Ok((
            custodia_custodian::audit::checkpoint::origin(&self.region, &self.custodian),
            key,
        ))
    }

    /// An mTLS client for the custodian.
    pub(crate) fn client(&self) -> CliResult<CustodianClient> {
        let server = self
            .server
            .as_deref()
            .ok_or_else(|| Failure::usage("--server: needed (or --keys DIR --region R)"))?;
        let ca = self
            .ca
            .as_ref()
            .ok_or_else(|| Failure::usage("--ca: needed (or --keys DIR --region R)"))?;
        let (cert, key) = self.cert.as_ref().ok_or_else(|| {
            Failure::usage("--cert and --cert-key: needed (or --keys DIR --region R)")
        })?;
        let tls = client_tls(ca, cert, key)?;
        Ok(CustodianClient::new(server, &self.server_name, tls)
            .context(self.describe())?
            .with_timeout(Duration::from_secs(30)))
    }
}

/// A TLS client configuration trusting `ca` and presenting `cert`/`key`.
pub(crate) fn client_tls(
    ca: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> CliResult<Arc<rustls::ClientConfig>> {
    let roots = load_certs(ca)?;
    let chain = load_certs(cert)?;
    let key = load_key(key)?;
    client_config(roots, chain, key).context(cert.display())
}

/// A tokio runtime for one command.
pub(crate) fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(format!("tokio runtime: {e}")))
}

//! Bringing the demo's world up: a fresh two-region development PKI (`keys init`, in
//! process), both custodians and both gateways as child processes on free ports, and the
//! embedded object store with its `mail` bucket.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use custodia_envelope::{Randomness as _, SystemRandomness};
use custodia_gateway::store::s3::S3Store;

use super::procs::{Cleanup, spawn_server};
use super::store::EmbeddedStore;
use super::ui::Ui;
use crate::failure::{CliResult, Failure, io_error};
use crate::files::{replace, write_private, write_public};
use crate::keys::index::{INDEX_FILE, Index, RegionEntry};

/// The bucket mail is stored in.
pub(crate) const BUCKET: &str = "mail";
/// The S3 signing region everything uses.
pub(crate) const S3_REGION: &str = "us-east-1";
/// Routes: keys `MAILBOX/…` of the mail bucket belong to MAILBOX.
const ROUTE: &str = "^(?P<mailbox>[^/]+@[^/]+)/";

/// An S3 access key pair.
#[derive(Clone)]
pub(crate) struct Keys {
    /// Access key id.
    pub(crate) access: String,
    /// Secret.
    pub(crate) secret: String,
}

impl Keys {
    fn random(prefix: &str) -> CliResult<Self> {
        Ok(Self {
            access: format!("{prefix}{}", random_hex(6)?.to_uppercase()),
            secret: random_hex(20)?,
        })
    }
}

/// One running gateway.
pub(crate) struct Gateway {
    /// Its region.
    pub(crate) region: String,
    /// Its client certificate's identity towards the custodians.
    pub(crate) identity: String,
    /// The S3 front.
    pub(crate) s3: SocketAddr,
    /// The HTTP front.
    pub(crate) http: SocketAddr,
    /// The S3 keys it issues to its clients.
    pub(crate) keys: Keys,
    /// The bearer token of its HTTP front.
    pub(crate) token: String,
    /// Its config file.
    pub(crate) config: PathBuf,
}

/// Everything the scenario runs against.
pub(crate) struct World {
    /// The keys directory (`keys init`'s output, addresses updated).
    pub(crate) keys: PathBuf,
    /// Its index.
    pub(crate) index: Index,
    /// The embedded store.
    pub(crate) store: EmbeddedStore,
    /// The store's own credentials (the gateways' upstream identity; the provider's).
    pub(crate) store_keys: Keys,
    /// Both gateways, `ie` first.
    pub(crate) gateways: Vec<Gateway>,
}

impl World {
    /// The gateway of `region`.
    pub(crate) fn gateway(&self, region: &str) -> CliResult<&Gateway> {
        self.gateways
            .iter()
            .find(|g| g.region == region)
            .ok_or_else(|| Failure::failed(format!("no gateway for region {region}")))
    }

    /// The keys index entry of `region`.
    pub(crate) fn region(&self, region: &str) -> CliResult<&RegionEntry> {
        self.index.region(region)
    }

    /// An S3 client of the store itself, with the provider's credentials.
    pub(crate) fn raw_store(&self) -> S3Store {
        S3Store::new(
            &format!("http://{}", self.store.addr),
            S3_REGION,
            &self.store_keys.access,
            &self.store_keys.secret,
        )
    }
}

/// `n` random bytes as lowercase hex.
fn random_hex(n: usize) -> CliResult<String> {
    let mut bytes = vec![0u8; n];
    SystemRandomness::new()
        .fill(&mut bytes)
        .map_err(|e| Failure::failed(format!("randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

/// A TOML basic string holding `text`.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

fn path_string(p: &Path) -> String {
    toml_string(&p.display().to_string())
}

/// Brings everything up under `cleanup`'s directory, narrating each part.
pub(crate) fn build(ui: &Ui, cleanup: &Cleanup) -> CliResult<World> {
    let dir = cleanup.dir();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| io_error(&logs, &e))?;

    let keys = dir.join("keys");
    let mut index = crate::keys::generate("ie,us", &keys, &|_| "127.0.0.1:0".to_owned(), true)?;
    ui.ok(&format!(
        "development keys for regions ie and us in {} (`custodia keys init`): per region a CA, \
         the custodian's server certificate, gateway/admin/auditor client certificates, \
         3 approver keys of which 2 must sign",
        keys.display()
    ));

    for entry in &mut index.regions {
        let config = index.dir.join(&entry.config);
        let name = format!("custodian {}", entry.name);
        let args: Vec<OsString> = vec![
            "custodian".into(),
            "serve".into(),
            "--dev".into(),
            "--config".into(),
            config.into(),
        ];
        let addrs = spawn_server(
            cleanup,
            &name,
            &args,
            &logs.join(format!("custodian-{}.log", entry.name)),
            &["listening on "],
        )?;
        let addr = addrs
            .first()
            .ok_or_else(|| Failure::failed(format!("{name}: no address")))?;
        entry.address = addr.to_string();
        let who = if entry.name == "ie" {
            "the independent Irish key holder"
        } else {
            "the US key holder"
        };
        ui.ok(&format!(
            "custodian {}/{} ({who}) listening on {addr}",
            entry.name, entry.custodian
        ));
    }
    replace(&keys.join(INDEX_FILE), index.to_toml()?.as_bytes())?;

    let store_keys = Keys::random("STORE")?;
    let store = EmbeddedStore::start(&dir.join("store"), &store_keys.access, &store_keys.secret)?;
    let mut world = World {
        keys,
        index,
        store,
        store_keys,
        gateways: Vec::new(),
    };
    let raw = world.raw_store();
    crate::target::runtime()?
        .block_on(raw.bucket(&http::Method::PUT, BUCKET))
        .map_err(|e| Failure::failed(format!("creating bucket {BUCKET} in the store: {e}")))?;
    ui.ok(&format!(
        "object store: s3s-fs (embedded) on {}, bucket `{BUCKET}`, files under {}",
        world.store.addr,
        world.store.root.display()
    ));

    for region in ["ie", "us"] {
        let gateway = start_gateway(&world, cleanup, region, &logs)?;
        ui.ok(&format!(
            "gateway {region} (client certificate {} from the {region} CA): S3 on {}, HTTP on {}",
            gateway.identity, gateway.s3, gateway.http
        ));
        world.gateways.push(gateway);
    }
    ui.say(
        "residency: example.ie → ie, example.com → us; both gateways list both custodians and \
         store in the same bucket",
    );
    Ok(world)
}

/// Writes the config of `region`'s gateway (and its secrets files) and starts it.
fn start_gateway(
    world: &World,
    cleanup: &Cleanup,
    region: &str,
    logs: &Path,
) -> CliResult<Gateway> {
    let gdir = cleanup.dir().join(format!("gateway-{region}"));
    let entry = world.region(region)?;
    let keys = Keys::random(&format!("GW{}", region.to_uppercase()))?;
    let token = random_hex(16)?;
    write_private(
        &gdir.join("s3-access-keys"),
        format!("{} {}\n", keys.access, keys.secret).as_bytes(),
    )?;
    write_private(&gdir.join("http-tokens"), format!("{token}\n").as_bytes())?;
    write_private(
        &gdir.join("store-credentials"),
        format!("{} {}\n", world.store_keys.access, world.store_keys.secret).as_bytes(),
    )?;
    let mut text = format!(
        "# Gateway of region {region}, written by `custodia demo` (docs/GATEWAY.md).\n\
         region = \"{region}\"\n\n\
         [s3]\nlisten = \"127.0.0.1:0\"\naccess_keys_file = \"s3-access-keys\"\n\n\
         [http]\nlisten = \"127.0.0.1:0\"\ntoken_files = [\"http-tokens\"]\n\n\
         [upstream]                 # the embedded s3s-fs store, with the provider's credentials\n\
         kind = \"s3\"\nendpoint = \"http://{store}\"\nregion = \"{S3_REGION}\"\n\
         credentials_file = \"store-credentials\"\n\n\
         [identity]                 # this gateway's client certificate towards the custodians\n\
         cert = {cert}\nkey = {key}\n",
        store = world.store.addr,
        cert = path_string(&world.index.path(&entry.gateway_cert)),
        key = path_string(&world.index.path(&entry.gateway_key)),
    );
    for c in &world.index.regions {
        text.push_str(&format!(
            "\n[[custodian]]\nregion = \"{}\"\nname = \"{}\"\naddr = \"{}\"\n\
             server_name = \"{}\"\nca = {}\nmanifest_key = \"{}\"\n",
            c.name,
            c.custodian,
            c.address,
            c.server_name,
            path_string(&world.index.path(&c.ca_cert)),
            c.manifest_key
        ));
    }
    text.push_str(&format!(
        "\n[residency]\ndomains = {{ \"example.ie\" = \"ie\", \"example.com\" = \"us\" }}\n\n\
         [[route]]\nbucket = \"{BUCKET}\"\nkey = '{ROUTE}'\n\n\
         [cache]                    # every read asks the custodian, so each one is in its audit log\n\
         capacity = 0\n"
    ));
    let config = gdir.join("gateway.toml");
    write_public(&config, text.as_bytes())?;
    let args: Vec<OsString> = vec![
        "gateway".into(),
        "serve".into(),
        "--config".into(),
        config.clone().into(),
    ];
    let addrs = spawn_server(
        cleanup,
        &format!("gateway {region}"),
        &args,
        &logs.join(format!("gateway-{region}.log")),
        &["s3 listening on ", "http listening on "],
    )?;
    let (Some(s3), Some(http)) = (addrs.first(), addrs.get(1)) else {
        return Err(Failure::failed(format!("gateway {region}: no addresses")));
    };
    Ok(Gateway {
        region: region.to_owned(),
        identity: entry.gateway_identity.clone(),
        s3: *s3,
        http: *http,
        keys,
        token,
        config,
    })
}

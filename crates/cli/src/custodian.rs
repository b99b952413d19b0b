//! `custodia custodian init|serve`: thin wrappers over `custodia_custodian`.

use std::path::Path;
use std::sync::Arc;

use custodia_custodian::config::{Config, KekSource};
use custodia_custodian::kek::{KeyEncryptionKey, LocalKek};
use custodia_custodian::keystore::Keystore;
use custodia_custodian::policy_tls::PolicyTls;
use custodia_custodian::service::{Custodian, DataPaths, unix_now};
use custodia_custodian::tls::{load_certs, load_key};
use custodia_custodian::{Error, Result, server};
use custodia_envelope::SystemRandomness;

/// What [`create_keystore`] made.
pub(crate) struct Created {
    /// The keystore file.
    pub(crate) keystore: std::path::PathBuf,
    /// `region/custodian`.
    pub(crate) name: String,
    /// The KEK's id.
    pub(crate) kek_id: String,
    /// The active key version (1).
    pub(crate) version: u32,
    /// The manifest signing key clients pin.
    pub(crate) manifest_key: [u8; 32],
}

/// Creates the keystore (and a KEK file if the config names one that does not exist yet).
pub(crate) fn init(config_path: &Path, dev: bool) -> Result<()> {
    let c = create_keystore(config_path, dev, true)?;
    println!(
        "created keystore {} for {} (KEK {}), active key version {}, manifest signing key {}",
        c.keystore.display(),
        c.name,
        c.kek_id,
        c.version,
        hex_string(&c.manifest_key),
    );
    Ok(())
}

/// `custodian init` without the report: creates `data_dir`, the KEK file if the config names
/// one that does not exist yet (said on stderr if `announce`), and the keystore (`dev`:
/// marked insecure).
pub(crate) fn create_keystore(config_path: &Path, dev: bool, announce: bool) -> Result<Created> {
    let config = Config::load(config_path)?;
    std::fs::create_dir_all(&config.data_dir).map_err(|e| Error::io(&config.data_dir, e))?;
    let mut rng = SystemRandomness::new();
    let kek = match &config.kek {
        KekSource::File(p) if !p.exists() => {
            let k = LocalKek::generate(&mut rng)?;
            k.write_file(p)?;
            if announce {
                eprintln!("wrote a new key-encryption key to {}", p.display());
            }
            k
        }
        KekSource::File(p) => LocalKek::from_file(p)?,
        KekSource::Env(v) => LocalKek::from_env(v)?,
    };
    let paths = DataPaths::new(&config.data_dir);
    let ks = Keystore::create(
        &paths.keystore,
        &config.region,
        &config.custodian,
        dev,
        &kek,
        &mut rng,
        unix_now(),
    )?;
    Ok(Created {
        keystore: paths.keystore.clone(),
        name: format!("{}/{}", config.region, config.custodian),
        kek_id: kek.id(),
        version: ks.active().version.0,
        manifest_key: ks.manifest_public_key(),
    })
}

fn hex_string(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Serves until SIGINT/SIGTERM; on SIGHUP re-reads the config and reloads the policy
/// (approvers and M, client CAs and CRLs, callers), which goes on the audit log before it
/// takes effect. Prints `listening on ADDR` on stdout once ready.
pub(crate) fn serve(config_path: &Path, dev: bool) -> Result<()> {
    let config = Config::load(config_path)?;
    let chain = load_certs(&config.tls_cert)?;
    let key = load_key(&config.tls_key)?;
    let listen = config.listen;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("tokio runtime", e))?;
    runtime.block_on(async move {
        // Before the keystore or the log is written: a start at a file-size limit fails
        // with an error (as on a full disk) instead of being killed by SIGXFSZ.
        server::survive_file_size_limit();
        let custodian = Arc::new(Custodian::open(config, dev)?);
        let tls = Arc::new(PolicyTls::new(chain, key, &custodian)?);
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Error::io(listen.to_string(), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("listener", e))?;
        reload_on_hangup(custodian.clone(), config_path.to_owned());
        // The policy entry first: once `listening on` is printed, it is on the log.
        custodian.log_start()?;
        println!("listening on {addr}");
        tracing::info!(%addr, "custodian serving");
        server::serve(custodian, listener, tls, shutdown_signal()).await
    })
}

/// On every SIGHUP: re-reads `path` and reloads the policy ([`Custodian::reload`]). A config
/// that does not load, or a policy that cannot be logged, leaves the policy in force as it
/// was; either way the outcome is logged.
fn reload_on_hangup(custodian: Arc<Custodian>, path: std::path::PathBuf) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot handle SIGHUP: policy reload disabled");
                return;
            }
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let c = custodian.clone();
                let p = path.clone();
                let outcome = tokio::task::spawn_blocking(move || {
                    Config::load(&p).and_then(|config| c.reload(&config))
                })
                .await;
                match outcome {
                    Ok(Ok(r)) => {
                        tracing::warn!(
                            policy = %r.hash,
                            changed = r.changed,
                            "policy reloaded and logged"
                        );
                        if !r.needs_restart.is_empty() {
                            tracing::warn!(
                                settings = ?r.needs_restart,
                                "changed settings outside the policy take effect only on restart"
                            );
                        }
                    }
                    Ok(Err(e)) => tracing::error!(
                        error = %e,
                        "policy reload refused: the policy in force is unchanged"
                    ),
                    Err(e) => tracing::error!(error = %e, "policy reload failed"),
                }
            }
        });
    }
    #[cfg(not(unix))]
    {
        let _ = (custodian, path);
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// `custodian rotate` (`retire: None`) or `custodian retire VERSION`, as the region's admin;
/// prints the keys of the custodian's new signed manifest.
pub(crate) fn key_change(
    target: &crate::target::Target,
    retire: Option<u32>,
) -> crate::failure::CliResult {
    use crate::failure::Context as _;
    let resolved = target.resolve_admin()?;
    let client = resolved.client()?;
    let signed = crate::target::runtime()?.block_on(async {
        match retire {
            None => client.rotate().await,
            Some(v) => client.retire(v).await,
        }
        .context(resolved.describe())
    })?;
    let m = &signed.manifest;
    say!(
        "{}/{}: manifest serial {}, keys:",
        m.region,
        m.custodian,
        m.serial
    );
    for k in &m.keys {
        say!("  v{} {:?} {}", k.version, k.status, k.key_id);
    }
    Ok(())
}

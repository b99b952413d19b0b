//! Building and running a gateway from its [`Config`]: the custodian directory and SDK
//! client, the upstream store, the routes, and the fronts on their listeners.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use custodia::{CacheConfig, Client, CustodianEndpoint, Directory, Policy, Timeouts};
use custodia_envelope::{CustodianName, Region};
use tokio::net::TcpListener;

use crate::config::{Config, Upstream, UpstreamAuth, parse_key, read_secret_lines};
use crate::error::{Error, Result};
use crate::http_front::HttpFront;
use crate::metrics::Metrics;
use crate::objects::Objects;
use crate::routes::Routes;
use crate::store::{Store, s3::S3Store, webdav::WebdavStore};

/// A gateway ready to serve: its object operations and bound listeners.
pub struct Gateway {
    config: Config,
    objects: Arc<Objects>,
    metrics: Arc<Metrics>,
    http: Option<TcpListener>,
    s3: Option<TcpListener>,
}

fn file_err(path: &std::path::Path) -> impl FnOnce(custodia_custodian::Error) -> Error + '_ {
    move |e| Error::config(path.display().to_string(), e.to_string())
}

/// The SDK client a gateway (or a tool with the same config) uses.
///
/// # Errors
/// [`Error::Config`] naming the file or field at fault.
pub fn sdk_client(config: &Config) -> Result<Client> {
    let id = &config.identity;
    let chain = custodia_custodian::tls::load_certs(&id.cert).map_err(file_err(&id.cert))?;
    let mut builder = Directory::builder().timeouts(Timeouts {
        connect: Duration::from_secs(config.limits.custodian_connect_timeout_secs.clamp(1, 3600)),
        call: Duration::from_secs(config.limits.custodian_timeout_secs.clamp(1, 3600)),
    });
    for (i, c) in config.custodians.iter().enumerate() {
        let field = |f: &str| format!("custodian[{i}].{f}");
        let roots = custodia_custodian::tls::load_certs(&c.ca).map_err(file_err(&c.ca))?;
        let key = custodia_custodian::tls::load_key(&id.key).map_err(file_err(&id.key))?;
        let tls = custodia_custodian::tls::client_config(roots, chain.clone(), key)
            .map_err(|e| Error::config("identity", e.to_string()))?;
        let server_name = c.server_name.clone().unwrap_or_else(|| {
            c.addr
                .rsplit_once(':')
                .map_or(c.addr.as_str(), |(h, _)| h)
                .trim_matches(['[', ']'])
                .to_owned()
        });
        let endpoint = CustodianEndpoint {
            addr: c.addr.clone(),
            server_name,
            tls,
            manifest_key: parse_key(&c.manifest_key)
                .ok_or_else(|| Error::config(field("manifest_key"), "64 hex characters"))?,
        };
        let region =
            Region::new(&c.region).map_err(|e| Error::config(field("region"), e.to_string()))?;
        let name =
            CustodianName::new(&c.name).map_err(|e| Error::config(field("name"), e.to_string()))?;
        builder = builder
            .custodian(&region, &name, endpoint)
            .map_err(|e| Error::config(field("name"), e.to_string()))?;
    }
    let mut policy = Policy::builder();
    for (m, r) in &config.residency.mailboxes {
        let region = Region::new(r)
            .map_err(|e| Error::config(format!("residency.mailboxes.{m:?}"), e.to_string()))?;
        policy = policy.mailbox(m, &region);
    }
    for (d, r) in &config.residency.domains {
        let region = Region::new(r)
            .map_err(|e| Error::config(format!("residency.domains.{d:?}"), e.to_string()))?;
        policy = policy.domain(d, &region);
    }
    Ok(Client::builder(Arc::new(builder.build()), policy.build())
        .cache(CacheConfig {
            capacity: config.cache.capacity,
            ttl: Duration::from_secs(config.cache.ttl_secs),
        })
        .build())
}

/// The upstream store of `config`.
///
/// # Errors
/// [`Error::File`] / [`Error::Config`] for unreadable or malformed credentials.
pub fn store(config: &Config) -> Result<Store> {
    Ok(match &config.upstream {
        Upstream::Webdav { endpoint, auth } => {
            let authorization = match auth {
                None => None,
                Some(UpstreamAuth::Basic { file }) => {
                    use base64::Engine as _;
                    let line = first_line(file)?;
                    Some(zeroize::Zeroizing::new(format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(line.as_bytes())
                    )))
                }
                Some(UpstreamAuth::Bearer { file }) => {
                    let line = first_line(file)?;
                    Some(zeroize::Zeroizing::new(format!("Bearer {}", line.as_str())))
                }
            };
            Store::Webdav(WebdavStore::new(endpoint, authorization))
        }
        Upstream::S3 {
            endpoint,
            region,
            credentials_file,
        } => {
            let line = first_line(credentials_file)?;
            let (ak, sk) = line.split_once(char::is_whitespace).ok_or_else(|| {
                Error::config(
                    "upstream.credentials_file",
                    "expected `ACCESS_KEY_ID SECRET` on one line",
                )
            })?;
            Store::S3(S3Store::new(endpoint, region, ak, sk.trim()))
        }
    })
}

fn first_line(path: &std::path::Path) -> Result<zeroize::Zeroizing<String>> {
    read_secret_lines(path)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::config(path.display().to_string(), "the file is empty"))
}

fn tls_acceptor(config: &Config) -> Result<Option<tokio_rustls::TlsAcceptor>> {
    let Some(t) = &config.tls else {
        return Ok(None);
    };
    let certs = custodia_custodian::tls::load_certs(&t.cert).map_err(file_err(&t.cert))?;
    let key = custodia_custodian::tls::load_key(&t.key).map_err(file_err(&t.key))?;
    let sc = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::config("tls", e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| Error::config("tls", e.to_string()))?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(sc))))
}

impl Gateway {
    /// Builds the gateway of `config` and binds its listeners (so their addresses are known
    /// before serving: port 0 picks a free port).
    ///
    /// # Errors
    /// [`Error::Config`] / [`Error::File`] naming what is at fault.
    pub async fn bind(config: Config) -> Result<Self> {
        let client = sdk_client(&config)?;
        let store = store(&config)?;
        let routes = Routes::new(&config.routes)?;
        let metrics = Arc::new(Metrics::default());
        let objects = Arc::new(Objects::new(
            client,
            store,
            routes,
            config.limits.max_object_bytes,
            metrics.clone(),
        ));
        let bind = |addr: SocketAddr, field: &'static str| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|e| Error::config(field, format!("cannot listen on {addr}: {e}")))
        };
        let http = match &config.http {
            Some(h) => Some(bind(h.listen, "http.listen").await?),
            None => None,
        };
        let s3 = match &config.s3 {
            Some(s) => Some(bind(s.listen, "s3.listen").await?),
            None => None,
        };
        Ok(Self {
            config,
            objects,
            metrics,
            http,
            s3,
        })
    }

    /// The HTTP front's address.
    #[must_use]
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The S3 front's address.
    #[must_use]
    pub fn s3_addr(&self) -> Option<SocketAddr> {
        self.s3.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The object operations (for in-process use, e.g. the demo).
    #[must_use]
    pub fn objects(&self) -> &Arc<Objects> {
        &self.objects
    }

    /// Serves every front until `shutdown` completes, then drains in-flight requests. The
    /// directory's manifests are fetched first (a custodian that is down is logged: writes
    /// to its region fail until a refresh succeeds) and refreshed every minute.
    ///
    /// # Errors
    /// [`Error::Config`] / [`Error::File`] for unreadable tokens, keys or certificates.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let tls = tls_acceptor(&self.config)?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        let directory = self.objects.client().directory().clone();
        if let Err(e) = directory.refresh().await {
            tracing::warn!(error = %e, "initial manifest fetch incomplete");
        }
        let refresher = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = directory.refresh().await {
                    tracing::warn!(error = %e, "manifest refresh failed; using the cached manifests");
                }
            }
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let mut tasks = Vec::new();
        if let (Some(listener), Some(h)) = (self.http, &self.config.http) {
            let mut tokens = Vec::new();
            for f in &h.token_files {
                tokens.extend(read_secret_lines(f)?);
            }
            if tokens.is_empty() {
                return Err(Error::config(
                    "http.token_files",
                    "no bearer tokens configured",
                ));
            }
            let front = Arc::new(
                HttpFront::new(
                    self.objects.clone(),
                    &tokens,
                    self.metrics.clone(),
                    self.config.limits.max_concurrent_requests,
                    self.config.limits.read_slot_wait(),
                )
                .body_idle_timeout(Duration::from_secs(
                    self.config.limits.idle_timeout_secs.max(1),
                )),
            );
            let service = hyper::service::service_fn(move |req| front.clone().handle(req));
            tasks.push(tokio::spawn(crate::server::serve(
                listener,
                tls.clone(),
                self.config.limits.clone(),
                service,
                stopped(rx.clone()),
            )));
        }
        if let (Some(listener), Some(s)) = (self.s3, &self.config.s3) {
            let service = crate::s3_front::service(
                self.objects.clone(),
                s.clone(),
                self.metrics.clone(),
                self.config.limits.max_concurrent_requests,
                self.config.limits.read_slot_wait(),
                Duration::from_secs(self.config.limits.idle_timeout_secs.max(1)),
            )?;
            tasks.push(tokio::spawn(crate::server::serve(
                listener,
                tls.clone(),
                self.config.limits.clone(),
                service,
                stopped(rx.clone()),
            )));
        }
        shutdown.await;
        tracing::info!("shutting down: draining in-flight requests");
        let _ = tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        refresher.abort();
        Ok(())
    }
}

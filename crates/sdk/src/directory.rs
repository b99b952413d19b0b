//! The directory of custodians: regions → custodians, each with its mTLS client and pinned
//! manifest key; verified manifests are cached so sealing needs no custodian round trip and
//! keeps working while a custodian is down (until the cached manifest's `not_after`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use custodia_custodian::client::CustodianClient;
use custodia_custodian::manifest::ManifestPin;
use custodia_envelope::{CustodianName, RecipientId, RecipientPublicKey, Region};

use crate::error::{Error, Result};

/// How to reach and trust one custodian.
#[derive(Debug, Clone)]
pub struct CustodianEndpoint {
    /// `host:port` of its HTTPS API.
    pub addr: String,
    /// The name its server certificate must be valid for.
    pub server_name: String,
    /// TLS client configuration: the roots that issued the custodian's server certificate,
    /// and this application's client certificate (its region is fixed by its CA).
    pub tls: Arc<rustls::ClientConfig>,
    /// The custodian's Ed25519 manifest signing key (pinned; also verifies audit receipts).
    pub manifest_key: [u8; 32],
}

#[derive(Debug, Default)]
struct Cached {
    recipients: Vec<RecipientPublicKey>,
    not_after: u64,
}

#[derive(Debug)]
struct State {
    pin: ManifestPin,
    cached: Option<Cached>,
}

/// One custodian in the directory.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) region: Region,
    pub(crate) name: CustodianName,
    pub(crate) client: CustodianClient,
    state: Mutex<State>,
}

impl Entry {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn unavailable(&self, reason: impl Into<String>) -> Error {
        Error::ManifestUnavailable {
            region: self.region.clone(),
            custodian: self.name.clone(),
            reason: reason.into(),
        }
    }

    /// The cached active recipients, if the cached manifest is still valid at `now`.
    fn recipients(&self, now: u64) -> Result<Vec<RecipientPublicKey>> {
        let state = self.state();
        let cached = state
            .cached
            .as_ref()
            .ok_or_else(|| self.unavailable("no verified manifest yet (refresh the directory)"))?;
        if now > cached.not_after {
            return Err(self.unavailable(format!(
                "cached manifest expired at {} (now {now})",
                cached.not_after
            )));
        }
        Ok(cached.recipients.clone())
    }

    async fn refresh(&self, now: u64) -> Result<()> {
        let signed = self
            .client
            .manifest()
            .await
            .map_err(|e| self.unavailable(format!("fetching the manifest: {e}")))?;
        if signed.manifest.region != self.region.as_str()
            || signed.manifest.custodian != self.name.as_str()
        {
            return Err(self.unavailable(format!(
                "the endpoint serves the manifest of {}/{}",
                signed.manifest.region, signed.manifest.custodian
            )));
        }
        let mut state = self.state();
        let recipients = state
            .pin
            .accept(&signed, now)
            .map_err(|e| self.unavailable(e.to_string()))?;
        state.cached = Some(Cached {
            recipients,
            not_after: signed.manifest.not_after,
        });
        Ok(())
    }
}

/// Regions → their custodians (independent key holders). Build with [`Directory::builder`],
/// then [`Directory::refresh`] to fetch and verify every manifest (and again periodically).
///
/// Sealing reads only the cache ([`Directory::recipients`]): no network, so a custodian
/// outage does not block writes until its cached manifest expires.
#[derive(Debug)]
pub struct Directory {
    regions: BTreeMap<Region, Vec<Entry>>,
}

/// Builds a [`Directory`].
#[derive(Debug, Default)]
pub struct DirectoryBuilder {
    regions: BTreeMap<Region, Vec<Entry>>,
    timeouts: Option<Timeouts>,
}

/// How long a call to a custodian may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening one connection (TCP, TLS and HTTP handshakes). A custodian that cannot be
    /// connected to within it is treated as down for a short while: calls fail at once.
    pub connect: Duration,
    /// One whole call, every attempt and wait included.
    pub call: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: custodia_custodian::client::CONNECT_TIMEOUT,
            call: custodia_custodian::client::CALL_TIMEOUT,
        }
    }
}

impl DirectoryBuilder {
    /// Adds custodian `custodian` of `region`, reached and trusted through `endpoint`.
    ///
    /// # Errors
    /// [`Error::Unavailable`] for an invalid server name; [`Error::Envelope`] if the
    /// custodian is listed twice or the region would exceed the format's 16 recipients.
    pub fn custodian(
        mut self,
        region: &Region,
        custodian: &CustodianName,
        endpoint: CustodianEndpoint,
    ) -> Result<Self> {
        let client = CustodianClient::new(endpoint.addr, &endpoint.server_name, endpoint.tls)
            .map_err(|e| Error::from_custodian(region, custodian, e))?
            .with_audit_key(endpoint.manifest_key);
        let list = self.regions.entry(region.clone()).or_default();
        if list.iter().any(|e| e.name == *custodian) {
            return Err(
                custodia_envelope::Error::InvalidArgument("a custodian is listed twice").into(),
            );
        }
        if list.len() >= custodia_envelope::MAX_STANZAS {
            return Err(custodia_envelope::Error::InvalidArgument(
                "more than 16 custodians in a region",
            )
            .into());
        }
        list.push(Entry {
            region: region.clone(),
            name: custodian.clone(),
            client,
            state: Mutex::new(State {
                pin: ManifestPin::new(endpoint.manifest_key),
                cached: None,
            }),
        });
        Ok(self)
    }

    /// Bounds every call to every custodian of the directory (default [`Timeouts::default`]).
    #[must_use]
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = Some(timeouts);
        self
    }

    /// The directory (no manifest fetched yet: call [`Directory::refresh`]).
    #[must_use]
    pub fn build(mut self) -> Directory {
        if let Some(t) = self.timeouts {
            for entry in self.regions.values_mut().flatten() {
                entry.client.set_timeout(t.call);
                entry.client.set_connect_timeout(t.connect);
            }
        }
        Directory {
            regions: self.regions,
        }
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Directory {
    /// An empty builder.
    #[must_use]
    pub fn builder() -> DirectoryBuilder {
        DirectoryBuilder::default()
    }

    /// The configured regions.
    pub fn regions(&self) -> impl Iterator<Item = &Region> {
        self.regions.keys()
    }

    /// Fetches and verifies every custodian's manifest (pinned signing key, not expired, no
    /// rollback to an older serial, only active keys become recipients) and caches it. Every
    /// custodian is tried, concurrently; a failed one keeps its previous cache.
    ///
    /// # Errors
    /// The first [`Error::ManifestUnavailable`] met (the others are still refreshed).
    pub async fn refresh(&self) -> Result<()> {
        let now = unix_now();
        // All at once: a custodian that hangs costs one call timeout, not one per custodian.
        let results = futures_util::future::join_all(
            self.regions
                .values()
                .flatten()
                .map(|entry| entry.refresh(now)),
        )
        .await;
        results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
    }

    /// The recipients to seal an object of `region` to: the active key of every custodian
    /// of the region, from the cache (no network).
    ///
    /// # Errors
    /// [`Error::NoCustodians`] for an unknown region; [`Error::ManifestUnavailable`] if a
    /// custodian has no verified manifest yet or its cached manifest has expired (an object
    /// is never sealed to fewer than all of its region's custodians).
    pub fn recipients(&self, region: &Region) -> Result<Vec<RecipientPublicKey>> {
        let now = unix_now();
        let entries = self
            .regions
            .get(region)
            .filter(|l| !l.is_empty())
            .ok_or_else(|| Error::NoCustodians {
                region: region.clone(),
            })?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            out.extend(e.recipients(now)?);
        }
        Ok(out)
    }

    /// The custodians of `region`, in the order configured.
    #[must_use]
    pub fn custodians(&self, region: &Region) -> Vec<&CustodianName> {
        self.regions
            .get(region)
            .map(|l| l.iter().map(|e| &e.name).collect())
            .unwrap_or_default()
    }

    /// The active key version of custodian `region`/`name` per its cached signed manifest
    /// ([`Self::refresh`] first for a current answer); `None` if unknown or not fetched.
    #[must_use]
    pub fn active_key_version(&self, region: &Region, name: &CustodianName) -> Option<u32> {
        let entry = self
            .regions
            .get(region)
            .and_then(|l| l.iter().find(|e| &e.name == name))?;
        self.active_version(entry)
    }

    /// The custodian a stanza is addressed to.
    pub(crate) fn entry(&self, id: &RecipientId) -> Result<&Entry> {
        self.regions
            .get(&id.region)
            .and_then(|l| l.iter().find(|e| e.name == id.custodian))
            .ok_or_else(|| Error::UnknownCustodian {
                region: id.region.clone(),
                custodian: id.custodian.clone(),
            })
    }

    /// The active key version of a custodian according to its cached manifest, if any.
    pub(crate) fn active_version(&self, entry: &Entry) -> Option<u32> {
        entry
            .recipients(unix_now())
            .ok()?
            .iter()
            .map(|r| r.id.key_version.0)
            .max()
    }
}

//! The custodian's decisions, independent of HTTP: unwrap, rewrap, key administration and
//! approval revocation. Every decision is written to the decision log before anything leaves.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use custodia_envelope::{
    Context, KeyVersion, ObjectId, ReplySealer, Share, Stanza, SystemRandomness, rewrap_stanza,
    unwrap_share,
};

use crate::api::{
    Denial, RewrapRequest, RewrapResponse, RewrapResult, StanzaItem, UnwrapRequest, UnwrapResponse,
    UnwrapResult, reply_aad, reply_info,
};
use crate::approval::{Action, Expected, Revocation, SignedApproval, VerifiedApproval};
use crate::audit::checkpoint::origin;
use crate::audit::entry::PublicEntry;
use crate::audit_store::AuditStore;
use crate::config::{CallerConfig, Config, KekSource, Role};
use crate::decision_log::{Decision, Outcome};
use crate::kek::LocalKek;
use crate::keystore::{KeyStatus, Keystore};
use crate::manifest::SignedManifest;
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::ratelimit::RateLimiter;
use crate::tls::CallerIdentity;
use crate::{Error, Result};

mod policy_state;
pub use policy_state::Reloaded;

/// An authenticated caller: identity from its certificate, policy entry from the config.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Fixed by the certificate's issuing CA and subject.
    pub identity: CallerIdentity,
    /// Its policy entry, if it has one.
    pub entry: Option<CallerConfig>,
    /// The policy generation both were resolved under: its decisions are logged only while
    /// that policy is in force.
    pub generation: u64,
}

impl Caller {
    fn has(&self, role: Role) -> bool {
        self.entry.as_ref().is_some_and(|e| e.roles.contains(&role))
    }

    fn name(&self) -> String {
        self.entry
            .as_ref()
            .map_or_else(|| self.identity.name.clone(), |e| e.name.clone())
    }
}

/// Paths of the custodian's state files inside its data directory.
#[derive(Debug, Clone)]
pub struct DataPaths {
    /// The sealed keystore.
    pub keystore: PathBuf,
    /// The audit log directory.
    pub audit: PathBuf,
}

impl DataPaths {
    /// The standard file names under `dir`.
    #[must_use]
    pub fn new(dir: &Path) -> Self {
        Self {
            keystore: dir.join("keystore.json"),
            audit: dir.join("audit"),
        }
    }
}

/// Loads the key-encryption key from its configured source. (`open_keystore` also tries a
/// `<file>.next` left by an interrupted key destruction, see [`Custodian::destroy`].)
fn load_kek(source: &KekSource) -> Result<LocalKek> {
    match source {
        KekSource::File(p) => LocalKek::from_file(p),
        KekSource::Env(v) => LocalKek::from_env(v),
    }
}

fn next_kek_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".next");
    PathBuf::from(s)
}

/// Unix time now, in seconds.
#[must_use]
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The custody service state.
pub struct Custodian {
    config: Config,
    keystore: RwLock<Keystore>,
    kek: Mutex<LocalKek>,
    manifest: RwLock<SignedManifest>,
    /// The policy in force and its generation (bumped by every reload that took effect).
    policy: RwLock<(u64, Arc<Policy>)>,
    /// Whether the start's policy entry is written ([`Custodian::log_start`]).
    started: std::sync::atomic::AtomicBool,
    approvals_used: Mutex<ApprovalUses>,
    /// Held for the life of the service: the data directory's exclusive lock.
    _lock: std::fs::File,
    audit: AuditStore,
    limiter: RateLimiter,
    /// Metrics, rendered at `/metrics`.
    pub metrics: Metrics,
}

impl core::fmt::Debug for Custodian {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Custodian({}/{})",
            self.config.region, self.config.custodian
        )
    }
}

struct ItemDecision {
    mailbox: Option<String>,
    object_id: Option<[u8; 32]>,
    key_version: Option<u32>,
    result: core::result::Result<Share, Denial>,
    via_approval: bool,
    bulk: bool,
}

impl Custodian {
    /// Opens the service state: config, keystore (refusing insecure keys unless `dev`),
    /// and audit log (from which approval uses and revocations are counted).
    ///
    /// # Errors
    /// Any configuration, keystore or file error, naming what to fix.
    pub fn open(config: Config, dev: bool) -> Result<Self> {
        let paths = DataPaths::new(&config.data_dir);
        // One process per data directory: a second one would append to the same audit log.
        let lock_path = config.data_dir.join("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        lock.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => Error::config(
                "data_dir",
                format!(
                    "{} is in use by another custodian process",
                    config.data_dir.display()
                ),
            ),
            std::fs::TryLockError::Error(e) => Error::io(&lock_path, e),
        })?;
        let (kek, keystore) = Self::open_keystore(&config, &paths.keystore, dev)?;
        if keystore.region() != &config.region || keystore.custodian() != &config.custodian {
            return Err(Error::config(
                "region",
                format!(
                    "keystore belongs to {}/{}, config says {}/{}",
                    keystore.region(),
                    keystore.custodian(),
                    config.region,
                    config.custodian
                ),
            ));
        }
        let mut keystore = keystore;
        let manifest = keystore.sign_manifest(&kek, unix_now(), config.manifest_validity_secs)?;
        let policy = Arc::new(Policy::load(&config)?);
        let limiter = RateLimiter::new(config.limits.rate);
        let audit = AuditStore::open(
            &paths.audit,
            origin(config.region.as_str(), config.custodian.as_str()),
            keystore.manifest_signer(),
            keystore.audit_commitment_key(),
        )?;
        let custodian = Self {
            approvals_used: Mutex::new(ApprovalUses::from_log(&audit.entries_with_use_tags()?)),
            _lock: lock,
            audit,
            keystore: RwLock::new(keystore),
            kek: Mutex::new(kek),
            manifest: RwLock::new(manifest),
            policy: RwLock::new((0, policy.clone())),
            started: std::sync::atomic::AtomicBool::new(false),
            limiter,
            metrics: Metrics::default(),
            config,
        };
        Ok(custodian)
    }

    fn open_keystore(config: &Config, path: &Path, dev: bool) -> Result<(LocalKek, Keystore)> {
        let kek = load_kek(&config.kek)?;
        match Keystore::open(path, &kek, dev) {
            Ok(ks) => Ok((kek, ks)),
            Err(first) => {
                // A destruction interrupted between re-sealing the keystore and replacing the
                // KEK file leaves the new KEK in `<file>.next`: finish the swap.
                if let KekSource::File(p) = &config.kek {
                    let next = next_kek_path(p);
                    if next.exists() {
                        let new = LocalKek::from_file(&next)?;
                        let ks = Keystore::open(path, &new, dev)?;
                        std::fs::rename(&next, p).map_err(|e| Error::io(p, e))?;
                        return Ok((new, ks));
                    }
                }
                Err(first)
            }
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The current signed manifest, re-signed once half its validity has passed.
    ///
    /// # Errors
    /// Keystore persistence errors.
    pub fn manifest(&self, now: u64) -> Result<SignedManifest> {
        let current = {
            let m = self.manifest.read().map_err(|_| poisoned())?;
            if self.fresh(&m, now) {
                return Ok(m.clone());
            }
            m.clone()
        };
        // One re-signing at a time: whoever gets the keystore lock first re-signs, the others
        // find the fresh manifest when they get it.
        let kek = self.kek.lock().map_err(|_| poisoned())?;
        {
            let m = self.manifest.read().map_err(|_| poisoned())?;
            if self.fresh(&m, now) {
                return Ok(m.clone());
            }
        }
        let mut ks = self.keystore.write().map_err(|_| poisoned())?;
        match ks.sign_manifest(&*kek, now, self.config.manifest_validity_secs) {
            Ok(m) => {
                *self.manifest.write().map_err(|_| poisoned())? = m.clone();
                Ok(m)
            }
            // The keystore could not be written (a full disk, say): the manifest in force is
            // still served while it is valid, so clients keep sealing.
            Err(e) if now <= current.manifest.not_after => {
                tracing::warn!(error = %e, "cannot re-sign the manifest; serving the current one until it expires");
                Ok(current)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether `m` was signed less than half its validity ago.
    fn fresh(&self, m: &SignedManifest, now: u64) -> bool {
        now < m
            .manifest
            .issued_at
            .saturating_add(self.config.manifest_validity_secs / 2)
    }

    fn resign(&self, now: u64) -> Result<SignedManifest> {
        let kek = self.kek.lock().map_err(|_| poisoned())?;
        let mut ks = self.keystore.write().map_err(|_| poisoned())?;
        let m = ks.sign_manifest(&*kek, now, self.config.manifest_validity_secs)?;
        *self.manifest.write().map_err(|_| poisoned())? = m.clone();
        Ok(m)
    }

    /// The audit log.
    #[must_use]
    pub fn audit(&self) -> &AuditStore {
        &self.audit
    }

    /// The active key version.
    ///
    /// # Errors
    /// Only on a poisoned lock.
    pub fn active_version(&self) -> Result<u32> {
        Ok(self
            .keystore
            .read()
            .map_err(|_| poisoned())?
            .active()
            .version
            .0)
    }

    fn decision(&self, caller: &Caller, operation: &str, now: u64) -> Decision {
        Decision {
            seq: 0,
            time: now,
            operation: operation.to_owned(),
            caller_region: caller.identity.region.to_string(),
            caller_name: caller.name(),
            caller_key_hash: hex::encode(caller.identity.key_hash),
            mailbox: None,
            object_id: None,
            key_version: None,
            approval_id: None,
            outcome: Outcome::Deny,
            reason: String::new(),
            flags: Vec::new(),
            policy: None,
        }
    }

    fn verify_approval(
        &self,
        caller: &Caller,
        doc: &SignedApproval,
        now: u64,
    ) -> core::result::Result<VerifiedApproval, Denial> {
        let policy = self.policy().map_err(|_| Denial::ApprovalInvalid)?;
        let set = policy.approvers().ok_or(Denial::ApprovalInvalid)?;
        set.verify(
            doc,
            &Expected {
                region: &self.config.region,
                custodian: &self.config.custodian,
                caller_key_hash: &caller.identity.key_hash,
            },
            now,
        )
    }

    /// Decides and serves an unwrap batch.
    ///
    /// # Errors
    /// [`Error::Protocol`] for a malformed request as a whole (bad caller key, too many
    /// items); [`Error::LogUnavailable`] if the decisions could not be made durable (then
    /// nothing is released).
    pub fn unwrap(&self, caller: &Caller, req: &UnwrapRequest, now: u64) -> Result<UnwrapResponse> {
        if req.items.len() > self.config.limits.max_batch {
            return Err(Error::Protocol(format!(
                "{} items; at most {} per batch",
                req.items.len(),
                self.config.limits.max_batch
            )));
        }
        let caller_key: [u8; 32] = hex::decode(&req.caller_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| Error::Protocol("caller_key: 64 hex characters".into()))?;
        self.metrics.batch_size(req.items.len());
        // Set up the reply context first: a caller key HPKE refuses fails the request before
        // anything is decided or logged.
        let info = reply_info(self.config.region.as_str(), self.config.custodian.as_str());
        let (enc, mut sealer) = ReplySealer::new(&caller_key, &info, &mut SystemRandomness::new())
            .map_err(|e| match e {
                custodia_envelope::Error::InvalidArgument(_) => {
                    Error::Protocol("caller_key: not a usable X25519 public key".into())
                }
                other => Error::Envelope(other),
            })?;
        let approval = req
            .approval
            .as_ref()
            .map(|doc| self.verify_approval(caller, doc, now));
        let in_region = caller.identity.region == self.config.region;
        #[allow(clippy::cast_precision_loss, reason = "seconds fit in f64")]
        let now_f = now as f64;
        if !in_region && !self.reserve_denials(caller, req.items.len().max(1), now) {
            // Throttled: a request of more items than the caller's denial budget holds is
            // refused whole, so no request logs more denials than the budget allows.
            return Err(self.refuse_throttled(caller, "unwrap", None, now)?);
        }
        let mut items: Vec<ItemDecision> = {
            let ks = self.keystore.read().map_err(|_| poisoned())?;
            req.items
                .iter()
                .map(|item| {
                    self.decide_unwrap(caller, item, in_region, approval.as_ref(), &ks, now_f)
                })
                .collect()
        };

        // Approval uses are counted from the audit log itself: checking them and writing this
        // batch's entries happen under one lock, so the entries ARE the charge (durable before
        // release, provable to auditors, nothing separate to tamper with or burn).
        let approval_id = match &approval {
            Some(Ok(v)) => Some(v.id.to_string()),
            _ => None,
        };
        let mut uses = self.approvals_used.lock().map_err(|_| poisoned())?;
        let mut charged: BTreeSet<String> = BTreeSet::new();
        if let (Some(Ok(v)), Some(id)) = (&approval, &approval_id) {
            let max = v.max_uses().unwrap_or(0);
            for d in items
                .iter_mut()
                .filter(|d| d.via_approval && d.result.is_ok())
            {
                let tag = self
                    .audit
                    .use_tag(id, d.mailbox.as_deref().unwrap_or_default());
                if uses.revoked.contains(id) {
                    d.result = Err(Denial::ApprovalRevoked);
                } else if !charged.contains(&tag) && uses.count(id, &tag) >= max {
                    d.result = Err(Denial::ApprovalUsedUp);
                } else {
                    charged.insert(tag);
                }
            }
        }
        // The reservation covered every item; the allowed ones were no denials.
        if !in_region {
            self.refund_denials(caller, items.iter().filter(|d| d.result.is_ok()).count());
        }

        let mut log: Vec<Decision> = items
            .iter()
            .map(|d| {
                let mut e = self.decision(caller, "unwrap", now);
                e.mailbox.clone_from(&d.mailbox);
                e.object_id = d.object_id.map(hex::encode);
                e.key_version = d.key_version;
                if d.via_approval {
                    e.approval_id.clone_from(&approval_id);
                }
                if d.bulk {
                    e.flags.push("bulk".into());
                }
                match &d.result {
                    Ok(_) => {
                        e.outcome = Outcome::Allow;
                        e.reason = if d.via_approval {
                            "approval"
                        } else {
                            "in_region"
                        }
                        .into();
                    }
                    Err(denial) => denial.as_str().clone_into(&mut e.reason),
                }
                e
            })
            .collect();
        let receipt = self.write_log(caller, &mut log)?;
        if let Some(id) = &approval_id {
            for tag in charged {
                *uses.counts.entry((id.clone(), tag)).or_default() += 1;
            }
        }
        drop(uses);

        // Only now, with every decision durable, seal the released shares to the caller.
        let mut results = Vec::with_capacity(items.len());
        for (i, d) in items.iter().enumerate() {
            results.push(match &d.result {
                Ok(share) => UnwrapResult::Share(hex::encode(
                    sealer.seal(&reply_aad(i, &d.object_id.unwrap_or([0; 32])), share)?,
                )),
                Err(denial) => UnwrapResult::Denied(*denial),
            });
        }
        Ok(UnwrapResponse {
            enc: hex::encode(enc),
            results,
            audit: receipt,
        })
    }

    fn decide_unwrap(
        &self,
        caller: &Caller,
        item: &StanzaItem,
        in_region: bool,
        approval: Option<&core::result::Result<VerifiedApproval, Denial>>,
        ks: &Keystore,
        now: f64,
    ) -> ItemDecision {
        let mut d = ItemDecision {
            mailbox: None,
            object_id: None,
            key_version: None,
            result: Err(Denial::Malformed),
            via_approval: false,
            bulk: false,
        };
        // An out-of-region request reserved one denial per item before its items were
        // decided; the allowed ones are refunded afterwards.
        let Some((object_id, context, stanza)) = parse_item(item) else {
            return d;
        };
        // One spelling per mailbox for approvals, rate limits, commitments and the log: objects
        // sealed before ids were canonical carry the key's spelling.
        let mailbox = canonical_or_as_sealed(context.mailbox());
        d.mailbox = Some(mailbox.clone());
        d.object_id = Some(object_id.0);
        d.key_version = Some(stanza.recipient.key_version.0);
        d.result = (|| {
            if !caller.has(Role::Unwrap) {
                return Err(Denial::RoleMissing);
            }
            if stanza.recipient.region != self.config.region
                || stanza.recipient.custodian != self.config.custodian
                || context.region() != &self.config.region
            {
                return Err(Denial::WrongCustodian);
            }
            if in_region {
                let admission = self.limiter.admit(&caller.identity.key_hash, &mailbox, now);
                d.bulk = admission.bulk;
                if admission.bulk {
                    self.metrics.bulk_flag();
                }
                if !admission.allowed {
                    self.metrics.rate_limited();
                    return Err(Denial::RateLimited);
                }
            } else {
                d.via_approval = true;
                let verified = approval
                    .ok_or(Denial::ApprovalRequired)?
                    .as_ref()
                    .map_err(|e| *e)?;
                if !verified.covers(&mailbox) {
                    return Err(Denial::ApprovalWrongMailbox);
                }
            }
            let secret = ks.secret(&stanza.recipient.key_id, stanza.recipient.key_version)?;
            unwrap_share(secret, &stanza, &object_id, &context.to_bytes())
                .map_err(|_| Denial::StanzaInvalid)
        })();
        d
    }

    /// Reserves `n` denials of `caller`'s budget and its region's, all or nothing
    /// ([`RateLimiter::reserve_denials`]): false when the budget does not hold them.
    fn reserve_denials(&self, caller: &Caller, n: usize, now: u64) -> bool {
        #[allow(clippy::cast_precision_loss, reason = "seconds fit in f64")]
        let now = now as f64;
        self.limiter.reserve_denials(
            &caller.identity.key_hash,
            caller.identity.region.as_str(),
            n,
            now,
        )
    }

    /// Gives back `n` reserved denials that were not needed.
    fn refund_denials(&self, caller: &Caller, n: usize) {
        self.limiter.refund_denials(
            &caller.identity.key_hash,
            caller.identity.region.as_str(),
            n,
        );
    }

    /// The answer to a throttled request: `rate_limited`, with nothing decided. The refusal is
    /// logged at most once a minute per calling region (the `rate_limited` metric counts every
    /// one), so a throttled caller cannot grow the log either.
    ///
    /// # Errors
    /// [`Error::LogUnavailable`] if the note cannot be logged.
    fn refuse_throttled(
        &self,
        caller: &Caller,
        op: &str,
        version: Option<u32>,
        now: u64,
    ) -> Result<Error> {
        self.metrics.rate_limited();
        #[allow(clippy::cast_precision_loss, reason = "seconds fit in f64")]
        let now_f = now as f64;
        if self
            .limiter
            .throttle_note_due(caller.identity.region.as_str(), now_f)
        {
            let mut e = self.decision(caller, op, now);
            e.key_version = version;
            Denial::RateLimited.as_str().clone_into(&mut e.reason);
            self.write_log(caller, &mut [e])?;
        }
        Ok(Error::Denied(Denial::RateLimited))
    }

    /// Rewraps a batch of this custodian's stanzas to its active key version. No share leaves.
    ///
    /// # Errors
    /// [`Error::Protocol`] for too many items; [`Error::LogUnavailable`].
    pub fn rewrap(&self, caller: &Caller, req: &RewrapRequest, now: u64) -> Result<RewrapResponse> {
        if req.items.len() > self.config.limits.max_batch {
            return Err(Error::Protocol("too many items".into()));
        }
        // A caller that may not rewrap here gets one denial per item: charged, and refused
        // whole once its budget is spent.
        let entitled = caller.has(Role::Rewrap) && caller.identity.region == self.config.region;
        // Every route reserves the denials of callers not entitled to it (out of region, or
        // without its role) before deciding, so no route lets a caller grow the log faster
        // than its budget refills (3.4.1).
        if !entitled && !self.reserve_denials(caller, req.items.len().max(1), now) {
            return Err(self.refuse_throttled(caller, "rewrap", None, now)?);
        }
        let ks = self.keystore.read().map_err(|_| poisoned())?;
        let active = ks.active();
        let target = ks.recipient(&active);
        let mut rng = SystemRandomness::new();
        let mut log = Vec::with_capacity(req.items.len());
        let mut results = Vec::with_capacity(req.items.len());
        for item in &req.items {
            let mut e = self.decision(caller, "rewrap", now);
            let outcome: core::result::Result<Stanza, Denial> = (|| {
                let (object_id, context, stanza) = parse_item(item).ok_or(Denial::Malformed)?;
                e.mailbox = Some(canonical_or_as_sealed(context.mailbox()));
                e.object_id = Some(hex::encode(object_id.0));
                e.key_version = Some(stanza.recipient.key_version.0);
                if !caller.has(Role::Rewrap) {
                    return Err(Denial::RoleMissing);
                }
                if caller.identity.region != self.config.region {
                    return Err(Denial::OutOfRegion);
                }
                if stanza.recipient.region != self.config.region
                    || stanza.recipient.custodian != self.config.custodian
                    || context.region() != &self.config.region
                {
                    return Err(Denial::WrongCustodian);
                }
                let secret = ks.secret(&stanza.recipient.key_id, stanza.recipient.key_version)?;
                rewrap_stanza(
                    secret,
                    &stanza,
                    &object_id,
                    &context.to_bytes(),
                    &target,
                    &mut rng,
                )
                .map_err(|_| Denial::StanzaInvalid)
            })();
            match &outcome {
                Ok(_) => {
                    e.outcome = Outcome::Allow;
                    e.reason = format!("rewrap_to_v{}", active.version.0);
                }
                Err(d) => d.as_str().clone_into(&mut e.reason),
            }
            log.push(e);
            results.push(outcome);
        }
        drop(ks);
        self.write_log(caller, &mut log)?;
        Ok(RewrapResponse {
            results: results
                .into_iter()
                .map(|r| match r {
                    Ok(s) => RewrapResult::Stanza(hex::encode(s.to_bytes())),
                    Err(d) => RewrapResult::Denied(d),
                })
                .collect(),
        })
    }

    fn admin_check(&self, caller: &Caller, op: &str, version: Option<u32>, now: u64) -> Result<()> {
        let denial = if !caller.has(Role::Admin) {
            Some(Denial::RoleMissing)
        } else if caller.identity.region != self.config.region {
            Some(Denial::OutOfRegion)
        } else {
            None
        };
        if let Some(d) = denial {
            if !self.reserve_denials(caller, 1, now) {
                return Err(self.refuse_throttled(caller, op, version, now)?);
            }
            let mut e = self.decision(caller, op, now);
            e.key_version = version;
            d.as_str().clone_into(&mut e.reason);
            self.write_log(caller, &mut [e])?;
            return Err(Error::Denied(d));
        }
        Ok(())
    }

    fn log_allow(
        &self,
        caller: &Caller,
        op: &str,
        version: Option<u32>,
        approval: Option<String>,
        now: u64,
    ) -> Result<()> {
        let mut e = self.decision(caller, op, now);
        e.key_version = version;
        e.approval_id = approval;
        e.outcome = Outcome::Allow;
        e.reason = "admin".into();
        self.write_log(caller, &mut [e]).map(|_| ())
    }

    /// Rotates: a new active key version; the previous one is retired (still unwraps).
    ///
    /// # Errors
    /// [`Error::Denied`] without the admin role in-region; keystore and log errors.
    pub fn rotate(&self, caller: &Caller, now: u64) -> Result<SignedManifest> {
        self.admin_check(caller, "rotate", None, now)?;
        self.log_allow(caller, "rotate", None, None, now)?;
        {
            let kek = self.kek.lock().map_err(|_| poisoned())?;
            let mut ks = self.keystore.write().map_err(|_| poisoned())?;
            ks.rotate(&*kek, &mut SystemRandomness::new(), now)?;
        }
        self.resign(now)
    }

    /// Retires a key version: no longer sealed to; still unwraps.
    ///
    /// # Errors
    /// As [`Self::rotate`]; the active version cannot be retired (rotate first).
    pub fn retire(&self, caller: &Caller, version: u32, now: u64) -> Result<SignedManifest> {
        self.admin_check(caller, "retire", Some(version), now)?;
        self.check_version(caller, "retire", version, now)?;
        self.log_allow(caller, "retire", Some(version), None, now)?;
        {
            let kek = self.kek.lock().map_err(|_| poisoned())?;
            let mut ks = self.keystore.write().map_err(|_| poisoned())?;
            ks.retire(custodia_envelope::KeyVersion(version), &*kek)?;
        }
        self.resign(now)
    }

    /// Refuses (and logs the refusal of) an operation on a version that is not retired.
    fn check_version(&self, caller: &Caller, op: &str, version: u32, now: u64) -> Result<()> {
        let status = self
            .keystore
            .read()
            .map_err(|_| poisoned())?
            .keys()
            .into_iter()
            .find(|k| k.version == KeyVersion(version))
            .map(|k| k.status);
        let problem = match status {
            None => Some((Error::Denied(Denial::UnknownKey), "unknown_key")),
            Some(KeyStatus::Destroyed) => {
                Some((Error::Denied(Denial::KeyDestroyed), "key_destroyed"))
            }
            Some(KeyStatus::Active) => Some((
                Error::Keystore(format!("key version {version} is active: rotate first")),
                "key_active",
            )),
            Some(KeyStatus::Retired) => None,
        };
        if let Some((err, reason)) = problem {
            let mut e = self.decision(caller, op, now);
            e.key_version = Some(version);
            reason.clone_into(&mut e.reason);
            self.write_log(caller, &mut [e])?;
            return Err(err);
        }
        Ok(())
    }

    /// Destroys a retired key version, given an M-of-N approval naming it: the private key is
    /// wiped and the keystore re-sealed under a fresh KEK, which replaces the KEK file (the
    /// old KEK, and any copy of the old keystore, no longer matter). The new KEK is first
    /// written to `<kek file>.next`, so a crash between the two steps is finished at the next
    /// start.
    ///
    /// # Errors
    /// [`Error::Denied`] for a missing role or a bad approval; [`Error::Config`] when the KEK
    /// comes from an environment variable (it cannot be replaced); keystore and log errors.
    pub fn destroy(
        &self,
        caller: &Caller,
        version: u32,
        approval: &SignedApproval,
        now: u64,
    ) -> Result<SignedManifest> {
        self.admin_check(caller, "destroy", Some(version), now)?;
        self.check_version(caller, "destroy", version, now)?;
        let verified = self
            .verify_approval(caller, approval, now)
            .and_then(|v| match v.action {
                Action::DestroyKey { key_version } if key_version == version => Ok(v),
                _ => Err(Denial::ApprovalInvalid),
            });
        let verified = match verified {
            Ok(v) => v,
            Err(d) => {
                let mut e = self.decision(caller, "destroy", now);
                e.key_version = Some(version);
                d.as_str().clone_into(&mut e.reason);
                self.write_log(caller, &mut [e])?;
                return Err(Error::Denied(d));
            }
        };
        let KekSource::File(kek_path) = &self.config.kek else {
            return Err(Error::config(
                "kek",
                "key destruction replaces the KEK and needs `kek.file`, not `kek.env`",
            ));
        };
        let mut uses = self.approvals_used.lock().map_err(|_| poisoned())?;
        let id = verified.id.to_string();
        let spent = if uses.revoked.contains(&id) {
            Some(Denial::ApprovalRevoked)
        } else if uses.spent.contains(&id) {
            Some(Denial::ApprovalUsedUp)
        } else {
            None
        };
        if let Some(d) = spent {
            let mut e = self.decision(caller, "destroy", now);
            e.key_version = Some(version);
            e.approval_id = Some(id);
            d.as_str().clone_into(&mut e.reason);
            self.write_log(caller, &mut [e])?;
            return Err(Error::Denied(d));
        }
        self.log_allow(caller, "destroy", Some(version), Some(id.clone()), now)?;
        uses.spent.insert(id);
        drop(uses);
        let new_kek = LocalKek::generate(&mut SystemRandomness::new())?;
        let next = next_kek_path(kek_path);
        let mut kek = self.kek.lock().map_err(|_| poisoned())?;
        let mut ks = self.keystore.write().map_err(|_| poisoned())?;
        if next.exists() {
            // Left by an earlier destruction. If the keystore on disk was already re-sealed
            // under it (the rename failed), finish that swap first; otherwise it was never used.
            let stale = LocalKek::from_file(&next)?;
            if Keystore::open(
                &DataPaths::new(&self.config.data_dir).keystore,
                &stale,
                true,
            )
            .is_ok()
            {
                std::fs::rename(&next, kek_path).map_err(|e| Error::io(kek_path, e))?;
                *kek = stale;
            } else {
                std::fs::remove_file(&next).map_err(|e| Error::io(&next, e))?;
            }
        }
        new_kek.write_file(&next)?;
        ks.destroy(custodia_envelope::KeyVersion(version), &new_kek)?;
        // The keystore on disk is now sealed under the new KEK: use it from here on, even if
        // replacing the KEK file fails (the next start finishes the swap from `.next`).
        *kek = new_kek;
        std::fs::rename(&next, kek_path).map_err(|e| Error::io(kek_path, e))?;
        drop(ks);
        drop(kek);
        self.resign(now)
    }

    /// Revokes an approval, given a revocation signed by one of the approvers.
    ///
    /// # Errors
    /// [`Error::Denied`] for a bad revocation; log errors.
    pub fn revoke(&self, caller: &Caller, id: &str, rev: &Revocation, now: u64) -> Result<()> {
        // Only a well-formed approval id may reach the public log.
        let id = id
            .parse::<crate::approval::ApprovalId>()
            .map_err(|_| Error::Protocol("approval id: 32 lowercase hex characters".into()))?
            .to_string();
        let id = id.as_str();
        // Bad revocations are charged like other denials (one reserved now, given back if the
        // revocation verifies); a caller that has spent its budget is refused whole.
        if !self.reserve_denials(caller, 1, now) {
            return Err(self.refuse_throttled(caller, "revoke", None, now)?);
        }
        let policy = self.policy()?;
        let set = policy
            .approvers()
            .ok_or(Error::Denied(Denial::ApprovalInvalid))?;
        let mut e = self.decision(caller, "revoke", now);
        e.approval_id = Some(id.to_owned());
        let verified = set.verify_revocation(rev).and_then(|rid| {
            if rid.to_string() == id {
                Ok(rid)
            } else {
                Err(Denial::ApprovalInvalid)
            }
        });
        match verified {
            Ok(rid) => {
                self.refund_denials(caller, 1);
                let mut uses = self.approvals_used.lock().map_err(|_| poisoned())?;
                // Revoked already: accepted, and not logged again (a replayed revocation
                // cannot grow the log).
                if uses.revoked.contains(&rid.to_string()) {
                    return Ok(());
                }
                e.outcome = Outcome::Allow;
                e.reason = "revoked".into();
                self.write_log(caller, &mut [e])?;
                uses.revoked.insert(rid.to_string());
                Ok(())
            }
            Err(d) => {
                d.as_str().clone_into(&mut e.reason);
                self.write_log(caller, &mut [e])?;
                Err(Error::Denied(d))
            }
        }
    }
}

fn poisoned() -> Error {
    Error::LogUnavailable("internal lock poisoned".into())
}

/// Decodes one request item; `None` if anything is malformed.
fn parse_item(item: &StanzaItem) -> Option<(ObjectId, Context, Stanza)> {
    let object_id: [u8; 32] = hex::decode(&item.object_id).ok()?.try_into().ok()?;
    let context = Context::from_bytes(&hex::decode(&item.context).ok()?).ok()?;
    let stanza = Stanza::from_bytes(&hex::decode(&item.stanza).ok()?).ok()?;
    Some((ObjectId(object_id), context, stanza))
}

/// Approval uses and revocations, counted from the audit log's public entries (rebuilt at
/// start): one use per (approval, use tag) per unwrap batch that released a share of that
/// mailbox under the approval; a revocation or key destruction is an `allow` entry of
/// operation `revoke` / `destroy` naming the approval.
#[derive(Debug, Default)]
struct ApprovalUses {
    counts: std::collections::HashMap<(String, String), u32>,
    revoked: std::collections::HashSet<String>,
    spent: std::collections::HashSet<String>,
}

impl ApprovalUses {
    fn from_log(entries: &[PublicEntry]) -> Self {
        let mut uses = Self::default();
        let mut batches = std::collections::HashSet::new();
        for e in entries.iter().filter(|e| e.outcome == Outcome::Allow) {
            let Some(id) = &e.approval_id else { continue };
            match (e.operation.as_str(), &e.use_tag) {
                ("unwrap", Some(t)) if batches.insert((id.clone(), t.clone(), e.batch)) => {
                    *uses.counts.entry((id.clone(), t.clone())).or_default() += 1;
                }
                ("revoke", _) => {
                    uses.revoked.insert(id.clone());
                }
                ("destroy", _) => {
                    uses.spent.insert(id.clone());
                }
                _ => {}
            }
        }
        uses
    }

    fn count(&self, id: &str, tag: &str) -> u32 {
        self.counts
            .get(&(id.to_owned(), tag.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}

/// The canonical form of a sealed context's mailbox id (docs/FORMAT.md §2.2), or the id as
/// sealed if it has none (it then matches no approval, which names canonical ids only).
fn canonical_or_as_sealed(mailbox: &str) -> String {
    custodia_envelope::canonical_mailbox(mailbox).unwrap_or_else(|_| mailbox.to_owned())
}

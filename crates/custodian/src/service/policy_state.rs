//! The policy in force and the one door to the decision log: which policy a decision was made
//! under, and that a decision is logged only under the policy it was made under.
//!
//! Every caller is resolved under one policy *generation* (how many reloads have taken
//! effect). [`Custodian::write_log`] appends a caller's decisions only while that generation is
//! still in force, holding the policy shared for the append; a reload holds it exclusively
//! while it logs the new policy and swaps it in. So in log order, every decision after a
//! `policy` entry was made under that policy: a request decided under the old one when a
//! reload lands is refused ([`Error::PolicyChanged`], nothing released, nothing logged) and
//! retried by its client on a connection re-identified under the new policy.

use std::sync::Arc;

use super::{Caller, Custodian, poisoned, unix_now};
use crate::audit_store::AuditReceipt;
use crate::config::Config;
use crate::decision_log::{Decision, DecisionLog, Outcome};
use crate::policy::Policy;
use crate::tls::CallerIdentity;
use crate::{Error, Result};

/// What a reload did ([`Custodian::reload`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// The hash of the policy now in force.
    pub hash: String,
    /// Whether it differs from the policy before.
    pub changed: bool,
    /// Changed settings that only a restart applies.
    pub needs_restart: Vec<&'static str>,
}

impl Custodian {
    /// The `policy` entry of `policy` (reason `start` or `reload`).
    fn policy_decision(&self, policy: &Policy, reason: &str) -> Decision {
        Decision {
            seq: 0,
            time: unix_now(),
            operation: "policy".into(),
            caller_region: self.config.region.to_string(),
            caller_name: "operator".into(),
            caller_key_hash: String::new(),
            mailbox: None,
            object_id: None,
            key_version: None,
            approval_id: None,
            outcome: Outcome::Allow,
            reason: reason.into(),
            flags: Vec::new(),
            policy: Some(policy.doc().clone()),
        }
    }

    /// Logs the policy the service starts serving under (a `policy` entry, reason `start`),
    /// once per process: later calls do nothing. [`crate::server::serve`] calls it before it
    /// accepts a connection; call it earlier to have the entry written before announcing the
    /// service.
    ///
    /// # Errors
    /// [`Error::LogUnavailable`]: then nothing may be served.
    pub fn log_start(&self) -> Result<()> {
        let slot = self.policy.write().map_err(|_| poisoned())?;
        if self.started.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let mut e = self.policy_decision(&slot.1, "start");
        self.append(std::slice::from_mut(&mut e))?;
        self.started
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// The policy in force.
    ///
    /// # Errors
    /// Only on a poisoned lock.
    pub fn policy(&self) -> Result<Arc<Policy>> {
        Ok(self.policy.read().map_err(|_| poisoned())?.1.clone())
    }

    /// The policy in force and its generation (how many reloads have taken effect).
    ///
    /// # Errors
    /// Only on a poisoned lock.
    pub fn policy_now(&self) -> Result<(u64, Arc<Policy>)> {
        let slot = self.policy.read().map_err(|_| poisoned())?;
        Ok((slot.0, slot.1.clone()))
    }

    /// The caller for a verified identity, under the policy in force.
    #[must_use]
    pub fn caller(&self, identity: CallerIdentity) -> Caller {
        match self.policy_now() {
            Ok((generation, policy)) => Self::caller_under(identity, generation, &policy),
            Err(_) => Caller {
                identity,
                entry: None,
                generation: u64::MAX,
            },
        }
    }

    /// The caller for an identity verified under `policy` of `generation`.
    #[must_use]
    pub fn caller_under(identity: CallerIdentity, generation: u64, policy: &Policy) -> Caller {
        let entry = policy.caller(&identity.region, &identity.name).cloned();
        Caller {
            identity,
            entry,
            generation,
        }
    }

    /// Reloads the policy from `config` (the same file re-read): its approvers and M, client
    /// CAs and CRLs, and callers. The new policy is put on the audit log (a `policy` entry,
    /// reason `reload`) before it takes effect, with no decision logged in between; if it
    /// cannot be loaded or logged, the policy in force stays. Settings outside the policy
    /// (listen address, data directory, TLS identity, KEK, limits) are not reloaded: their
    /// names are returned, for the operator to restart.
    ///
    /// # Errors
    /// [`Error::Config`] if `config` is for another custodian; loading errors
    /// ([`Policy::load`]); [`Error::LogUnavailable`].
    pub fn reload(&self, config: &Config) -> Result<Reloaded> {
        if config.region != self.config.region || config.custodian != self.config.custodian {
            return Err(Error::config(
                "region",
                format!(
                    "the config now names {}/{}, this process serves {}/{}: restart instead",
                    config.region, config.custodian, self.config.region, self.config.custodian
                ),
            ));
        }
        let policy = Policy::load(config)?;
        let hash = policy.hash().to_owned();
        let changed = {
            let mut slot = self.policy.write().map_err(|_| poisoned())?;
            let mut e = self.policy_decision(&policy, "reload");
            self.append(std::slice::from_mut(&mut e))?;
            let changed = policy.hash() != slot.1.hash();
            *slot = (slot.0 + 1, Arc::new(policy));
            changed
        };
        let c = &self.config;
        let needs_restart = [
            ("listen", config.listen != c.listen),
            ("data_dir", config.data_dir != c.data_dir),
            (
                "tls",
                config.tls_cert != c.tls_cert || config.tls_key != c.tls_key,
            ),
            ("kek", config.kek != c.kek),
            (
                "manifest.validity_secs",
                config.manifest_validity_secs != c.manifest_validity_secs,
            ),
            ("limits", config.limits != c.limits),
        ]
        .into_iter()
        .filter_map(|(name, differs)| differs.then_some(name))
        .collect();
        Ok(Reloaded {
            hash,
            changed,
            needs_restart,
        })
    }

    /// Appends `caller`'s decisions, provided the policy it was resolved under is still in
    /// force (held shared until they are durable).
    ///
    /// # Errors
    /// [`Error::PolicyChanged`] if a reload took effect since: nothing is logged, and nothing
    /// may be released; [`Error::LogUnavailable`].
    pub(super) fn write_log(
        &self,
        caller: &Caller,
        batch: &mut [Decision],
    ) -> Result<AuditReceipt> {
        let slot = self.policy.read().map_err(|_| poisoned())?;
        if slot.0 != caller.generation {
            return Err(Error::PolicyChanged);
        }
        let receipt = self.append(batch);
        drop(slot);
        receipt
    }

    fn append(&self, batch: &mut [Decision]) -> Result<AuditReceipt> {
        match self.audit.append(batch) {
            Ok(receipt) => {
                for d in batch.iter() {
                    self.metrics
                        .decision(&d.operation, d.outcome.as_str(), &d.reason);
                }
                if let Ok((_, _, fsync)) = self.audit.stats() {
                    self.metrics.fsync(fsync);
                }
                Ok(receipt)
            }
            Err(e) => {
                self.metrics.log_failure();
                tracing::error!(error = %e, "decision log write failed: releasing nothing");
                Err(e)
            }
        }
    }
}

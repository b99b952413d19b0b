//! The policy in force: the approvers and M, the client CAs with their CRLs (which decide a
//! caller's region), and the callers' roles. Loaded from the configuration at start and on
//! reload (SIGHUP); the custodian puts it on the audit log as a `policy` entry before it takes
//! effect ([`crate::service::Custodian::reload`]), so no one can change who may read or who
//! approves without a trace.

use std::sync::Arc;

use ring::digest;

use crate::Result;
use crate::approval::{Approver, ApproverSet};
use crate::audit::policy::{PolicyApprover, PolicyCa, PolicyCaller, PolicyDoc};
use crate::config::{CallerConfig, Config, Role};
use crate::tls::{ClientCa, RegionVerifier, load_certs, load_crls};

/// A loaded policy, ready to take effect.
pub struct Policy {
    doc: PolicyDoc,
    hash: String,
    approvers: Option<ApproverSet>,
    callers: Vec<CallerConfig>,
    verifier: Arc<RegionVerifier>,
}

impl core::fmt::Debug for Policy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Policy({})", self.hash)
    }
}

fn sha256_hex(der: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, der).as_ref())
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Unwrap => "unwrap",
        Role::Rewrap => "rewrap",
        Role::Admin => "admin",
        Role::Auditor => "auditor",
    }
}

impl Policy {
    /// Loads the policy `config` names: reads its CA certificates and CRLs and checks them
    /// ([`RegionVerifier::new`]) and its approver set ([`ApproverSet::new`]).
    ///
    /// # Errors
    /// [`crate::Error::Io`] for unreadable files, [`crate::Error::Tls`] or
    /// [`crate::Error::Config`] for unusable ones.
    pub fn load(config: &Config) -> Result<Self> {
        let mut cas = Vec::with_capacity(config.client_cas.len());
        let mut doc_cas = Vec::with_capacity(config.client_cas.len());
        for ca in &config.client_cas {
            let roots = load_certs(&ca.cert)?;
            let mut crls = Vec::new();
            for p in &ca.crls {
                crls.extend(load_crls(p)?);
            }
            doc_cas.push(PolicyCa {
                region: ca.region.to_string(),
                roots: roots.iter().map(|c| sha256_hex(c)).collect(),
                crls: crls.iter().map(|c| sha256_hex(c)).collect(),
            });
            cas.push(ClientCa {
                region: ca.region.clone(),
                roots,
                crls,
            });
        }
        let verifier = RegionVerifier::new(cas)?;
        let approvers = if config.approvers.is_empty() {
            None
        } else {
            Some(ApproverSet::new(
                config
                    .approvers
                    .iter()
                    .map(|a| Approver {
                        name: a.name.clone(),
                        public_key: a.public_key,
                    })
                    .collect(),
                config.approval_threshold,
            )?)
        };
        let mut doc = PolicyDoc {
            region: config.region.to_string(),
            custodian: config.custodian.to_string(),
            approval_threshold: if approvers.is_some() {
                config.approval_threshold as u64
            } else {
                0
            },
            approvers: config
                .approvers
                .iter()
                .map(|a| PolicyApprover {
                    name: a.name.clone(),
                    public_key: hex::encode(a.public_key),
                })
                .collect(),
            client_cas: doc_cas,
            callers: config
                .callers
                .iter()
                .map(|c| PolicyCaller {
                    region: c.region.to_string(),
                    identity: c.identity.clone(),
                    name: c.name.clone(),
                    roles: c.roles.iter().map(|r| role_name(*r).to_owned()).collect(),
                })
                .collect(),
        };
        // Order carries no meaning: a reordered configuration is the same policy.
        doc.approvers
            .sort_by(|a, b| a.public_key.cmp(&b.public_key));
        doc.client_cas.sort_by(|a, b| a.region.cmp(&b.region));
        for ca in &mut doc.client_cas {
            ca.roots.sort();
            ca.crls.sort();
        }
        doc.callers
            .sort_by(|a, b| (&a.region, &a.identity).cmp(&(&b.region, &b.identity)));
        Ok(Self {
            hash: doc.hash(),
            doc,
            approvers,
            callers: config.callers.clone(),
            verifier,
        })
    }

    /// The policy as written to the log's restricted detail.
    #[must_use]
    pub fn doc(&self) -> &PolicyDoc {
        &self.doc
    }

    /// [`PolicyDoc::hash`], as on the public `policy` entry.
    #[must_use]
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The client-certificate verifier of this policy's CAs and CRLs.
    #[must_use]
    pub fn verifier(&self) -> Arc<RegionVerifier> {
        self.verifier.clone()
    }

    /// The approvers, if lawful access is configured.
    #[must_use]
    pub fn approvers(&self) -> Option<&ApproverSet> {
        self.approvers.as_ref()
    }

    /// The caller entry of (`region`, `identity`), if any.
    #[must_use]
    pub fn caller(
        &self,
        region: &custodia_envelope::Region,
        identity: &str,
    ) -> Option<&CallerConfig> {
        self.callers
            .iter()
            .find(|c| &c.region == region && c.identity == identity)
    }
}

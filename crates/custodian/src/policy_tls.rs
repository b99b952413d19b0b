//! The server's TLS side of the policy in force: the acceptor is rebuilt when a reload changes
//! the client CAs or CRLs, and a connection identified under an older policy re-checks its
//! certificate and roles before its next request — a certificate revoked by a reloaded CRL,
//! or a CA moved to another region, stops working on connections already open too.

use std::sync::{Arc, Mutex};

use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tokio_rustls::TlsAcceptor;

use crate::policy::Policy;
use crate::service::{Caller, Custodian};
use crate::tls::server_config;
use crate::{Error, Result};

/// The server's certificate and key, and the acceptor built for the policy in force.
pub struct PolicyTls {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    current: Mutex<(u64, TlsAcceptor, Arc<Policy>)>,
}

impl core::fmt::Debug for PolicyTls {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PolicyTls")
    }
}

impl PolicyTls {
    /// The server identity `chain` and `key`, with an acceptor for `custodian`'s policy.
    ///
    /// # Errors
    /// [`Error::Tls`] if the chain or key is unusable.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        custodian: &Custodian,
    ) -> Result<Self> {
        let (generation, policy) = custodian.policy_now()?;
        let config = server_config(chain.clone(), key.clone_key(), policy.verifier())?;
        Ok(Self {
            chain,
            key,
            current: Mutex::new((generation, TlsAcceptor::from(config), policy)),
        })
    }

    /// The policy in force, its generation and an acceptor verifying client certificates
    /// under it (rebuilt if a reload took effect since the last call). A connection accepted
    /// with it is identified under exactly that policy and generation.
    ///
    /// # Errors
    /// [`Error::Tls`] if the new configuration cannot be built (then the caller must not
    /// accept: the old one no longer reflects the policy).
    pub fn current(&self, custodian: &Custodian) -> Result<(u64, TlsAcceptor, Arc<Policy>)> {
        let (generation, policy) = custodian.policy_now()?;
        let mut current = self
            .current
            .lock()
            .map_err(|_| Error::Tls("TLS state lock poisoned".into()))?;
        if current.0 != generation {
            let config =
                server_config(self.chain.clone(), self.key.clone_key(), policy.verifier())?;
            *current = (generation, TlsAcceptor::from(config), policy);
        }
        Ok((current.0, current.1.clone(), current.2.clone()))
    }
}

/// One connection's caller, re-identified from its certificate chain whenever the policy
/// has changed since it was last identified.
pub struct ConnectionCaller {
    chain: Vec<CertificateDer<'static>>,
    current: Mutex<(u64, Arc<Caller>)>,
}

impl ConnectionCaller {
    /// The caller identified at connection time (under policy `generation`) from `chain`.
    #[must_use]
    pub fn new(chain: Vec<CertificateDer<'static>>, generation: u64, caller: Caller) -> Self {
        Self {
            chain,
            current: Mutex::new((generation, Arc::new(caller))),
        }
    }

    /// The caller under the policy in force.
    ///
    /// # Errors
    /// [`Error::Tls`] if the policy in force no longer accepts the certificate, or accepts it
    /// for another region or name (the connection must then be closed).
    pub fn get(&self, custodian: &Custodian) -> Result<Arc<Caller>> {
        let (generation, policy) = custodian.policy_now()?;
        let mut current = self
            .current
            .lock()
            .map_err(|_| Error::Tls("caller lock poisoned".into()))?;
        if current.0 != generation {
            let identity = policy.verifier().identify(&self.chain, UnixTime::now())?;
            let before = &current.1.identity;
            if identity.region != before.region || identity.name != before.name {
                return Err(Error::Tls(format!(
                    "the reloaded policy identifies this certificate as {}/{}, not {}/{}",
                    identity.region, identity.name, before.region, before.name
                )));
            }
            *current = (
                generation,
                Arc::new(Custodian::caller_under(identity, generation, &policy)),
            );
        }
        Ok(current.1.clone())
    }
}

//! Mutual TLS: who is calling is fixed by the certificate chain, never by what the caller says.
//!
//! The custodian trusts one client CA per region. A client certificate is verified against
//! each region's roots (and that region's CRLs) **separately**; exactly one region must
//! accept it, and that region — the one whose CA issued the chain — is the caller's region.
//! Nothing in the certificate's subject or SANs can move a caller to another region: a
//! certificate from the `us` CA whose subject says "ie" is a `us` caller.
//!
//! [`RegionVerifier`] is both the rustls [`ClientCertVerifier`] used during the handshake and
//! the source of [`CallerIdentity`] afterwards ([`peer_identity`]).
//!
//! Both configurations built here are TLS 1.3 only, on the `ring` provider, with ALPN
//! `http/1.1`. The server keeps no resumption state, so every connection runs a full handshake
//! and every client certificate is checked against the current roots and CRLs.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use custodia_envelope::Region;
use ring::digest;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, TrustAnchor, UnixTime,
};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// The only application protocol the custodian speaks over TLS.
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The trust configured for one region: the roots of its client CA and that CA's CRLs.
#[derive(Clone)]
pub struct ClientCa {
    /// The region whose callers this CA certifies. Every certificate that chains to
    /// [`roots`](Self::roots) is a caller of this region, whatever its subject says.
    pub region: Region,
    /// The CA's root certificate(s), DER. At least one.
    pub roots: Vec<CertificateDer<'static>>,
    /// The CA's certificate revocation lists, DER. When non-empty, the revocation status of
    /// every certificate in a chain (except the root) must be determinable from them, or the
    /// chain is refused. When empty, no revocation checking is done for this region.
    pub crls: Vec<CertificateRevocationListDer<'static>>,
}

impl fmt::Debug for ClientCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCa")
            .field("region", &self.region)
            .field("roots", &self.roots.len())
            .field("crls", &self.crls.len())
            .finish()
    }
}

/// Who is calling, as fixed by the certificate — never by anything the caller says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// The region whose client CA issued the caller's certificate.
    pub region: Region,
    /// The certificate's first DNS subject alternative name, else its subject common name.
    pub name: String,
    /// SHA-256 of the certificate's DER `SubjectPublicKeyInfo` (see [`key_hash_of`]).
    pub key_hash: [u8; 32],
}

/// One region's verifier.
struct RegionEntry {
    region: Region,
    verifier: Arc<dyn ClientCertVerifier>,
}

/// Verifies client certificates against each region's CA separately and names the one region
/// that accepts. Implements rustls' [`ClientCertVerifier`] (client authentication is
/// mandatory); use [`identify`](Self::identify) or [`peer_identity`] for the caller's identity.
pub struct RegionVerifier {
    regions: Vec<RegionEntry>,
    root_hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for RegionVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegionVerifier")
            .field(
                "regions",
                &self.regions.iter().map(|r| &r.region).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// The crypto provider used everywhere in this module.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl RegionVerifier {
    /// Builds one rustls `WebPkiClientVerifier` per region from its roots and CRLs, with client
    /// authentication mandatory.
    ///
    /// # Errors
    /// [`Error::Config`] if `cas` is empty, a region appears twice, a CA has no root, a root
    /// or CRL cannot be parsed, or the same CA (same root public key) is configured for two
    /// regions — such a CA would make the region of its certificates ambiguous.
    pub fn new(cas: Vec<ClientCa>) -> Result<Arc<Self>> {
        if cas.is_empty() {
            return Err(Error::config("client_ca", "no client CA configured"));
        }
        let provider = provider();
        let mut regions: Vec<RegionEntry> = Vec::with_capacity(cas.len());
        let mut root_hints: Vec<DistinguishedName> = Vec::new();
        // (index of the ClientCa, its trust anchors), to detect a CA shared between regions.
        let mut anchors: Vec<(usize, Vec<TrustAnchor<'static>>)> = Vec::with_capacity(cas.len());

        for (i, ca) in cas.into_iter().enumerate() {
            if let Some(j) = regions.iter().position(|r| r.region == ca.region) {
                return Err(Error::config(
                    format!("client_ca[{i}].region"),
                    format!(
                        "region {} is already configured by client_ca[{j}]",
                        ca.region
                    ),
                ));
            }
            if ca.roots.is_empty() {
                return Err(Error::config(
                    format!("client_ca[{i}].roots"),
                    "no root certificate",
                ));
            }
            let mut store = RootCertStore::empty();
            for (k, root) in ca.roots.into_iter().enumerate() {
                store.add(root).map_err(|e| {
                    Error::config(
                        format!("client_ca[{i}].roots[{k}]"),
                        format!("not a usable CA certificate: {e}"),
                    )
                })?;
            }
            for (j, others) in &anchors {
                for (k, anchor) in store.roots.iter().enumerate() {
                    if others
                        .iter()
                        .any(|o| o.subject_public_key_info == anchor.subject_public_key_info)
                    {
                        return Err(Error::config(
                            format!("client_ca[{i}].roots[{k}]"),
                            format!(
                                "the same CA key is also a root of client_ca[{j}] (region {}); \
                                 a CA must belong to exactly one region",
                                regions[*j].region
                            ),
                        ));
                    }
                }
            }
            if ca.crls.is_empty() {
                tracing::warn!(
                    region = %ca.region,
                    "no CRL configured for this region's client CA: revoked certificates will be accepted"
                );
            }
            for hint in store.subjects() {
                if !root_hints.iter().any(|h| h.as_ref() == hint.as_ref()) {
                    root_hints.push(hint);
                }
            }
            let store = Arc::new(store);
            anchors.push((i, store.roots.clone()));
            let verifier = WebPkiClientVerifier::builder_with_provider(store, provider.clone())
                .with_crls(ca.crls)
                .build()
                .map_err(|e| {
                    Error::config(
                        format!("client_ca[{i}].crls"),
                        format!("cannot build the verifier: {e}"),
                    )
                })?;
            // Mandatory client authentication is the builder's default; make sure of it.
            if !verifier.client_auth_mandatory() {
                return Err(Error::Tls(
                    "client verifier does not require a certificate".into(),
                ));
            }
            regions.push(RegionEntry {
                region: ca.region,
                verifier,
            });
        }

        Ok(Arc::new(Self {
            regions,
            root_hints,
            algorithms: provider.signature_verification_algorithms,
        }))
    }

    /// The configured regions, in configuration order.
    pub fn regions(&self) -> impl Iterator<Item = &Region> {
        self.regions.iter().map(|r| &r.region)
    }

    /// Runs every region's verifier on the chain; returns the index of the one region that
    /// accepts it.
    fn accepting_region(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> core::result::Result<usize, RegionRefusal> {
        let mut accepted: Vec<usize> = Vec::new();
        let mut refusal: Option<rustls::Error> = None;
        for (idx, entry) in self.regions.iter().enumerate() {
            match entry
                .verifier
                .verify_client_cert(end_entity, intermediates, now)
            {
                Ok(_) => accepted.push(idx),
                Err(e) => {
                    // Keep the most telling reason: "not my CA" says least.
                    let better = match &refusal {
                        None => true,
                        Some(prev) => is_unknown_issuer(prev) && !is_unknown_issuer(&e),
                    };
                    if better {
                        refusal = Some(e);
                    }
                }
            }
        }
        match accepted.as_slice() {
            [idx] => Ok(*idx),
            [] => Err(RegionRefusal::None(refusal.unwrap_or(
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
            ))),
            many => Err(RegionRefusal::Ambiguous(
                many.iter()
                    .map(|i| self.regions[*i].region.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        }
    }

    /// Verifies `chain` (end-entity certificate first, then any intermediates) against each
    /// region's roots and CRLs separately, at time `now`. Exactly one region must accept it;
    /// the identity carries that region, the certificate's name and its key hash.
    ///
    /// # Errors
    /// [`Error::Tls`] if the chain is empty, no region accepts it (unknown CA, expired,
    /// revoked, wrong key usage, …), more than one region accepts it, or the certificate has
    /// neither a DNS SAN nor a common name.
    pub fn identify(&self, chain: &[CertificateDer<'_>], now: UnixTime) -> Result<CallerIdentity> {
        let (end_entity, intermediates) = chain
            .split_first()
            .ok_or_else(|| Error::Tls("no client certificate".into()))?;
        let idx = self
            .accepting_region(end_entity, intermediates, now)
            .map_err(|r| Error::Tls(r.to_string()))?;
        let cert = parse_cert(end_entity)?;
        Ok(CallerIdentity {
            region: self.regions[idx].region.clone(),
            name: caller_name(&cert)?,
            key_hash: sha256(cert.public_key().raw),
        })
    }
}

/// Why no single region accepted a chain.
enum RegionRefusal {
    /// No region accepted; the most specific refusal.
    None(rustls::Error),
    /// These regions all accepted.
    Ambiguous(String),
}

impl fmt::Display for RegionRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None(e) => write!(f, "client certificate not accepted by any region: {e}"),
            Self::Ambiguous(regions) => write!(
                f,
                "client certificate accepted by more than one region ({regions})"
            ),
        }
    }
}

impl From<RegionRefusal> for rustls::Error {
    fn from(r: RegionRefusal) -> Self {
        match r {
            RegionRefusal::None(e) => e,
            RegionRefusal::Ambiguous(_) => {
                rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
            }
        }
    }
}

fn is_unknown_issuer(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    )
}

impl ClientCertVerifier for RegionVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.root_hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> core::result::Result<ClientCertVerified, rustls::Error> {
        match self.accepting_region(end_entity, intermediates, now) {
            Ok(idx) => {
                tracing::debug!(region = %self.regions[idx].region, "client certificate accepted");
                Ok(ClientCertVerified::assertion())
            }
            Err(refusal) => {
                tracing::info!("{refusal}");
                Err(refusal.into())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> core::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> core::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Reads a file whole; its buffer is wiped when dropped (it may hold a private key).
fn read_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| Error::io(path, e))
}

/// Loads every `CERTIFICATE` PEM block of `path`, in file order (for a chain: end entity
/// first).
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::Tls`] if it is not valid PEM or holds no
/// certificate.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<core::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "{}: no PEM certificate found",
            path.display()
        )));
    }
    Ok(certs)
}

/// Loads the one private key of `path` (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC).
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::Tls`] if it is not valid PEM, holds no
/// private key, or holds more than one.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = read_file(path)?;
    let mut keys = PrivateKeyDer::pem_slice_iter(&pem);
    let key = match keys.next() {
        Some(Ok(key)) => key,
        Some(Err(e)) => return Err(Error::Tls(format!("{}: {e}", path.display()))),
        None => {
            return Err(Error::Tls(format!(
                "{}: no PEM private key found",
                path.display()
            )));
        }
    };
    if keys.next().is_some() {
        return Err(Error::Tls(format!(
            "{}: more than one private key",
            path.display()
        )));
    }
    Ok(key)
}

/// Loads every `X509 CRL` PEM block of `path`.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::Tls`] if it is not valid PEM or holds no
/// CRL.
pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    let pem = read_file(path)?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&pem)
        .collect::<core::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("{}: {e}", path.display())))?;
    if crls.is_empty() {
        return Err(Error::Tls(format!("{}: no PEM CRL found", path.display())));
    }
    Ok(crls)
}

/// The custodian's server configuration: TLS 1.3 only, `ring`, ALPN `http/1.1`, mandatory
/// client certificates checked by `verifier`, no session resumption (every connection's
/// client certificate is verified afresh).
///
/// # Errors
/// [`Error::Tls`] if the certificate chain or key is unusable (e.g. the key does not match the
/// certificate).
pub fn server_config(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    verifier: Arc<RegionVerifier>,
) -> Result<Arc<rustls::ServerConfig>> {
    if cert_chain.is_empty() {
        return Err(Error::Tls("server certificate chain is empty".into()));
    }
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(format!("server config: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(cert_chain, key)
        .map_err(|e| Error::Tls(format!("server certificate or key: {e}")))?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.max_early_data_size = 0;
    Ok(Arc::new(config))
}

/// A client configuration for talking to a custodian: TLS 1.3 only, `ring`, ALPN `http/1.1`,
/// trusting only `server_roots`, authenticating with `client_chain` (end entity first) and
/// `client_key`.
///
/// # Errors
/// [`Error::Tls`] if no server root is given or one cannot be parsed, or the client
/// certificate or key is unusable.
pub fn client_config(
    server_roots: Vec<CertificateDer<'static>>,
    client_chain: Vec<CertificateDer<'static>>,
    client_key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ClientConfig>> {
    if server_roots.is_empty() {
        return Err(Error::Tls("no server root certificate".into()));
    }
    if client_chain.is_empty() {
        return Err(Error::Tls("client certificate chain is empty".into()));
    }
    let mut roots = RootCertStore::empty();
    for (k, root) in server_roots.into_iter().enumerate() {
        roots
            .add(root)
            .map_err(|e| Error::Tls(format!("server root [{k}]: {e}")))?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(format!("client config: {e}")))?
        .with_root_certificates(roots)
        .with_client_auth_cert(client_chain, client_key)
        .map_err(|e| Error::Tls(format!("client certificate or key: {e}")))?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// The identity of the peer of an established server connection, from the certificate chain
/// it presented, re-verified by `verifier` now.
///
/// # Errors
/// [`Error::Tls`] if the peer presented no certificate or [`RegionVerifier::identify`] refuses
/// it.
pub fn peer_identity(
    conn: &rustls::ServerConnection,
    verifier: &RegionVerifier,
) -> Result<CallerIdentity> {
    let chain = conn
        .peer_certificates()
        .ok_or_else(|| Error::Tls("no client certificate".into()))?;
    verifier.identify(chain, UnixTime::now())
}

/// SHA-256 of the certificate's DER `SubjectPublicKeyInfo`: identifies a key across
/// re-issued certificates (used by approvals).
///
/// # Errors
/// [`Error::Tls`] if `cert` is not a well-formed X.509 certificate.
pub fn key_hash_of(cert: &CertificateDer<'_>) -> Result<[u8; 32]> {
    Ok(sha256(parse_cert(cert)?.public_key().raw))
}

fn parse_cert<'a>(der: &'a CertificateDer<'_>) -> Result<X509Certificate<'a>> {
    match X509Certificate::from_der(der.as_ref()) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(Error::Tls(
            "certificate has trailing data after its DER".into(),
        )),
        Err(e) => Err(Error::Tls(format!("cannot parse certificate: {e}"))),
    }
}

/// The first DNS SAN, else the subject common name.
fn caller_name(cert: &X509Certificate<'_>) -> Result<String> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| Error::Tls(format!("certificate subjectAltName: {e}")))?;
    if let Some(san) = san {
        let dns = san.value.general_names.iter().find_map(|n| match n {
            GeneralName::DNSName(d) => Some(*d),
            _ => None,
        });
        if let Some(dns) = dns.filter(|d| !d.is_empty()) {
            return Ok(dns.to_owned());
        }
    }
    let cn =
        cert.subject().iter_common_name().next().ok_or_else(|| {
            Error::Tls("certificate has neither a DNS SAN nor a common name".into())
        })?;
    let cn = cn
        .as_str()
        .map_err(|e| Error::Tls(format!("certificate common name: {e}")))?;
    if cn.is_empty() {
        return Err(Error::Tls("certificate common name is empty".into()));
    }
    Ok(cn.to_owned())
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, PublicKeyData, date_time_ymd,
    };

    struct Ca {
        cert: CertificateDer<'static>,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca_with_key(cn: &str, key: KeyPair) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Ca {
            cert: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    fn ca(cn: &str) -> Ca {
        ca_with_key(cn, KeyPair::generate().unwrap())
    }

    fn leaf(ca: &Ca, cn: &str, sans: &[&str], expired: bool) -> (CertificateDer<'static>, KeyPair) {
        let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = if expired {
            date_time_ymd(2021, 1, 1)
        } else {
            date_time_ymd(2099, 1, 1)
        };
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        (cert.der().clone(), key)
    }

    fn region(r: &str) -> Region {
        Region::new(r).unwrap()
    }

    fn client_ca(r: &str, ca: &Ca) -> ClientCa {
        ClientCa {
            region: region(r),
            roots: vec![ca.cert.clone()],
            crls: vec![],
        }
    }

    fn config_field(e: Error) -> String {
        match e {
            Error::Config { field, .. } => field,
            other => panic!("expected a config error, got {other}"),
        }
    }

    #[test]
    fn new_refuses_no_ca() {
        let e = RegionVerifier::new(vec![]).unwrap_err();
        assert_eq!(config_field(e), "client_ca");
    }

    #[test]
    fn new_refuses_same_root_for_two_regions() {
        let shared = ca("shared CA");
        let e = RegionVerifier::new(vec![client_ca("ie", &shared), client_ca("us", &shared)])
            .unwrap_err();
        assert_eq!(config_field(e), "client_ca[1].roots[0]");
    }

    #[test]
    fn new_refuses_same_ca_key_under_another_certificate() {
        // Two distinct root certificates with the same name and key would both accept every
        // certificate that key signs: refused, although the DER differs.
        let key_pem = KeyPair::generate().unwrap().serialize_pem();
        let a = ca_with_key("CA", KeyPair::from_pem(&key_pem).unwrap());
        let b = ca_with_key("CA", KeyPair::from_pem(&key_pem).unwrap());
        assert_ne!(a.cert, b.cert);
        let e = RegionVerifier::new(vec![client_ca("ie", &a), client_ca("us", &b)]).unwrap_err();
        assert_eq!(config_field(e), "client_ca[1].roots[0]");
    }

    #[test]
    fn new_refuses_region_twice_and_missing_roots() {
        let (a, b) = (ca("A"), ca("B"));
        let e = RegionVerifier::new(vec![client_ca("ie", &a), client_ca("ie", &b)]).unwrap_err();
        assert_eq!(config_field(e), "client_ca[1].region");

        let mut empty = client_ca("ie", &a);
        empty.roots.clear();
        let e = RegionVerifier::new(vec![empty]).unwrap_err();
        assert_eq!(config_field(e), "client_ca[0].roots");

        let mut garbage = client_ca("ie", &a);
        garbage.crls = vec![CertificateRevocationListDer::from(vec![0x30, 0x00])];
        let e = RegionVerifier::new(vec![garbage]).unwrap_err();
        assert_eq!(config_field(e), "client_ca[0].crls");
    }

    #[test]
    fn identify_takes_region_from_the_ca_not_the_subject() {
        let (ie, us) = (ca("ie clients"), ca("us clients"));
        let v = RegionVerifier::new(vec![client_ca("ie", &ie), client_ca("us", &us)]).unwrap();

        let (cert, key) = leaf(&ie, "gateway-ie", &[], false);
        let id = v
            .identify(std::slice::from_ref(&cert), UnixTime::now())
            .unwrap();
        assert_eq!(id.region, region("ie"));
        assert_eq!(id.name, "gateway-ie"); // no DNS SAN: the CN
        assert_eq!(id.key_hash, sha256(&key.subject_public_key_info()));
        assert_eq!(id.key_hash, key_hash_of(&cert).unwrap());

        let (liar, _) = leaf(&us, "ie", &["gateway-ie"], false);
        let id = v.identify(&[liar], UnixTime::now()).unwrap();
        assert_eq!(id.region, region("us"));
        assert_eq!(id.name, "gateway-ie"); // the DNS SAN wins over the CN
    }

    #[test]
    fn identify_refuses_expired_unknown_and_empty() {
        let ie = ca("ie clients");
        let v = RegionVerifier::new(vec![client_ca("ie", &ie)]).unwrap();

        let (expired, _) = leaf(&ie, "old", &[], true);
        let e = v
            .identify(std::slice::from_ref(&expired), UnixTime::now())
            .unwrap_err();
        assert!(
            matches!(e, Error::Tls(ref m) if m.contains("expired")),
            "{e}"
        );
        // The same certificate while it was valid (2020-07-01) is accepted: expiry is the cause.
        let then = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_593_561_600));
        assert_eq!(v.identify(&[expired], then).unwrap().region, region("ie"));

        let (stranger, _) = leaf(&ca("elsewhere"), "gateway-ie", &[], false);
        assert!(matches!(
            v.identify(&[stranger], UnixTime::now()),
            Err(Error::Tls(_))
        ));
        assert!(matches!(
            v.identify(&[], UnixTime::now()),
            Err(Error::Tls(_))
        ));
    }
}

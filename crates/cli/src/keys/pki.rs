//! The development PKI of `keys init`, made with rcgen: one CA per region (a self-signed
//! ECDSA P-256 root with an empty CRL), the region custodian's server certificate, and client
//! certificates whose first DNS SAN is the caller identity the custodians' policies name.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, SerialNumber,
};
use zeroize::Zeroizing;

use crate::failure::{CliResult, Failure};

/// How long the development certificates and CRLs stay valid (about ten years: a committed
/// example must keep working; these keys are insecure anyway).
const VALID_DAYS: i64 = 3650;

/// A certificate and its private key, both PEM.
pub(crate) struct Pem {
    /// The certificate.
    pub(crate) cert: String,
    /// The PKCS#8 private key (zeroized on drop).
    pub(crate) key: Zeroizing<String>,
}

/// One region's certificate authority.
pub(crate) struct RegionCa {
    /// Its self-signed certificate and key.
    pub(crate) pem: Pem,
    /// An empty CRL it signed (so custodians check revocation for this region).
    pub(crate) crl: String,
    issuer: Issuer<'static, KeyPair>,
    next_serial: u64,
}

fn rcgen_failure(what: &str, e: &rcgen::Error) -> Failure {
    Failure::failed(format!("keys: {what}: {e}"))
}

fn validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(VALID_DAYS);
}

impl RegionCa {
    /// A fresh CA for `region`, named `custodia <region> CA (development, insecure)`.
    pub(crate) fn new(region: &str) -> CliResult<Self> {
        let what = format!("{region} CA");
        let fail = |e: rcgen::Error| rcgen_failure(&what, &e);
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.distinguished_name.push(
            DnType::CommonName,
            format!("custodia {region} CA (development, insecure)"),
        );
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params);
        let key = KeyPair::generate().map_err(fail)?;
        let cert = params.self_signed(&key).map_err(fail)?;
        let key_pem = Zeroizing::new(key.serialize_pem());
        let issuer = Issuer::new(params, key);
        let now = time::OffsetDateTime::now_utc();
        let crl = CertificateRevocationListParams {
            this_update: now - time::Duration::days(1),
            next_update: now + time::Duration::days(VALID_DAYS),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: Vec::new(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&issuer)
        .and_then(|c| c.pem())
        .map_err(fail)?;
        Ok(Self {
            pem: Pem {
                cert: cert.pem(),
                key: key_pem,
            },
            crl,
            issuer,
            next_serial: 1000,
        })
    }

    fn leaf(&mut self, cn: &str, sans: &[&str], usage: ExtendedKeyUsagePurpose) -> CliResult<Pem> {
        let fail = |e: rcgen::Error| rcgen_failure(cn, &e);
        let serial = self.next_serial;
        self.next_serial += 1;
        let mut params =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .map_err(fail)?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serial_number = Some(SerialNumber::from(serial));
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        validity(&mut params);
        let key = KeyPair::generate().map_err(fail)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(fail)?;
        Ok(Pem {
            cert: cert.pem(),
            key: Zeroizing::new(key.serialize_pem()),
        })
    }

    /// The custodian's TLS server certificate (SANs `localhost` and `127.0.0.1`).
    pub(crate) fn server(&mut self, custodian: &str) -> CliResult<Pem> {
        self.leaf(
            custodian,
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate whose identity (first DNS SAN and CN) is `identity`.
    pub(crate) fn client(&mut self, identity: &str) -> CliResult<Pem> {
        self.leaf(identity, &[identity], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

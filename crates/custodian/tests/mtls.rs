//! Mutual TLS end to end over real 127.0.0.1 sockets: a server built with
//! `tls::server_config` + `RegionVerifier`, and clients presenting certificates from the `ie`
//! CA, the `us` CA (claiming to be `ie`), an untrusted CA, a revoked `ie` certificate, and no
//! certificate at all. The test PKI is made here with rcgen and goes through the PEM loaders.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use custodia_custodian::tls::{
    self, CallerIdentity, ClientCa, RegionVerifier, key_hash_of, load_certs, load_crls, load_key,
};
use custodia_envelope::Region;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber, date_time_ymd,
};
use rustls::{CertificateError, ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

// ---- test PKI -------------------------------------------------------------------------------

/// A CA: its certificate and what it signs with.
struct Ca {
    cert: rcgen::Certificate,
    issuer: Issuer<'static, KeyPair>,
}

fn new_ca(cn: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(2099, 1, 1);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        cert,
        issuer: Issuer::new(params, key),
    }
}

/// A leaf certificate and its key.
struct Leaf {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn new_leaf(
    ca: &Ca,
    dn: &[(DnType, &str)],
    sans: &[&str],
    eku: ExtendedKeyUsagePurpose,
    serial: u64,
) -> Leaf {
    let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(sans).unwrap();
    for (ty, value) in dn {
        params.distinguished_name.push(ty.clone(), *value);
    }
    params.serial_number = Some(SerialNumber::from(serial));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![eku];
    params.use_authority_key_identifier_extension = true;
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(2099, 1, 1);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    Leaf { cert, key }
}

fn client_leaf(ca: &Ca, dn: &[(DnType, &str)], sans: &[&str], serial: u64) -> Leaf {
    new_leaf(ca, dn, sans, ExtendedKeyUsagePurpose::ClientAuth, serial)
}

/// The PEM of a CRL by `ca` revoking `revoked` serials.
fn crl_pem(ca: &Ca, revoked: &[u64]) -> String {
    CertificateRevocationListParams {
        this_update: date_time_ymd(2024, 1, 1),
        next_update: date_time_ymd(2099, 1, 1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: date_time_ymd(2024, 1, 1),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&ca.issuer)
    .unwrap()
    .pem()
    .unwrap()
}

fn write(dir: &Path, name: &str, pem: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

/// A client configuration from PEM files, through the crate's loaders.
fn client_from_files(dir: &Path, tag: &str, server_ca: &Ca, leaf: &Leaf) -> Arc<ClientConfig> {
    let roots = load_certs(&write(dir, "server-ca.pem", &server_ca.cert.pem())).unwrap();
    let chain = load_certs(&write(dir, &format!("{tag}.pem"), &leaf.cert.pem())).unwrap();
    let key = load_key(&write(
        dir,
        &format!("{tag}.key"),
        &leaf.key.serialize_pem(),
    ))
    .unwrap();
    tls::client_config(roots, chain, key).unwrap()
}

// ---- server and client ----------------------------------------------------------------------

/// What the server saw of one connection: the caller's identity, or the handshake error.
type ServerOutcome = Result<CallerIdentity, io::Error>;

/// Serves TLS on 127.0.0.1:0; for every connection, reports what it saw and, if the handshake
/// succeeded, answers one line with the caller's identity.
async fn start_server(
    config: Arc<rustls::ServerConfig>,
    verifier: Arc<RegionVerifier>,
) -> (SocketAddr, mpsc::UnboundedReceiver<ServerOutcome>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(config);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            tcp.set_nodelay(true).unwrap();
            let (acceptor, verifier, tx) = (acceptor.clone(), verifier.clone(), tx.clone());
            tokio::spawn(async move {
                let mut stream = match acceptor.accept(tcp).await {
                    Ok(stream) => stream,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let identity = tls::peer_identity(stream.get_ref().1, &verifier);
                let mut line = String::new();
                let mut reader = BufReader::new(&mut stream);
                let _ = reader.read_line(&mut line).await;
                let reply = match &identity {
                    Ok(id) => format!("hello {}/{}\n", id.region, id.name),
                    Err(e) => format!("refused: {e}\n"),
                };
                let _ = stream.write_all(reply.as_bytes()).await;
                let _ = stream.shutdown().await;
                let _ = tx.send(identity.map_err(io::Error::other));
            });
        }
    });
    (addr, rx)
}

/// Connects, says one line, and reads the server's whole answer.
async fn call(config: Arc<ClientConfig>, addr: SocketAddr, name: &str) -> io::Result<String> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let mut tls = TlsConnector::from(config).connect(server_name, tcp).await?;
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(&b"http/1.1"[..]),
        "ALPN http/1.1 negotiated"
    );
    tls.write_all(b"ping\n").await?;
    tls.flush().await?;
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await?;
    Ok(answer)
}

/// One client against the server: (server outcome, client outcome).
async fn exchange(
    config: Arc<ClientConfig>,
    addr: SocketAddr,
    name: &str,
    outcomes: &mut mpsc::UnboundedReceiver<ServerOutcome>,
) -> (ServerOutcome, io::Result<String>) {
    let client = tokio::time::timeout(Duration::from_secs(10), call(config, addr, name))
        .await
        .expect("client timed out");
    let server = tokio::time::timeout(Duration::from_secs(10), outcomes.recv())
        .await
        .expect("server timed out")
        .expect("server stopped");
    (server, client)
}

/// The rustls error inside a tokio-rustls I/O error.
fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref())
}

// ---- the test -------------------------------------------------------------------------------

#[tokio::test]
async fn region_is_fixed_by_the_issuing_ca() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    // The PKI: a server CA, one client CA per region, and a CA nobody trusts.
    let server_ca = new_ca("custodia test server CA");
    let ie_ca = new_ca("custodia ie client CA");
    let us_ca = new_ca("custodia us client CA");
    let rogue_ca = new_ca("rogue CA");
    let server = new_leaf(
        &server_ca,
        &[(DnType::CommonName, "custodian-ie")],
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
        1,
    );
    let ie_gateway = client_leaf(&ie_ca, &[(DnType::CommonName, "gateway-ie")], &[], 10);
    let ie_revoked = client_leaf(&ie_ca, &[(DnType::CommonName, "gateway-ie-old")], &[], 11);
    // A `us` certificate that claims to be the ie gateway, everywhere it can.
    let us_liar = client_leaf(
        &us_ca,
        &[
            (DnType::CountryName, "IE"),
            (DnType::OrganizationalUnitName, "ie"),
            (DnType::CommonName, "gateway-ie"),
        ],
        &["gateway-ie"],
        10,
    );
    let rogue = client_leaf(&rogue_ca, &[(DnType::CommonName, "gateway-ie")], &[], 10);

    // The server side, as the service would load it: PEM files through the loaders.
    let cas = vec![
        ClientCa {
            region: Region::new("ie").unwrap(),
            roots: load_certs(&write(dir, "ie-ca.pem", &ie_ca.cert.pem())).unwrap(),
            crls: load_crls(&write(dir, "ie-ca.crl", &crl_pem(&ie_ca, &[11]))).unwrap(),
        },
        ClientCa {
            region: Region::new("us").unwrap(),
            roots: load_certs(&write(dir, "us-ca.pem", &us_ca.cert.pem())).unwrap(),
            crls: load_crls(&write(dir, "us-ca.crl", &crl_pem(&us_ca, &[]))).unwrap(),
        },
    ];
    let verifier = RegionVerifier::new(cas).unwrap();
    let server_chain = load_certs(&write(dir, "server.pem", &server.cert.pem())).unwrap();
    let server_key = load_key(&write(dir, "server.key", &server.key.serialize_pem())).unwrap();
    let config = tls::server_config(server_chain, server_key, verifier.clone()).unwrap();
    let (addr, mut outcomes) = start_server(config, verifier).await;
    let setup = started.elapsed();

    // ie gateway: accepted, region ie.
    let t = Instant::now();
    let cfg = client_from_files(dir, "ie-gateway", &server_ca, &ie_gateway);
    let (srv, cli) = exchange(cfg, addr, "localhost", &mut outcomes).await;
    let id = srv.expect("ie gateway accepted");
    assert_eq!(id.region, Region::new("ie").unwrap());
    assert_eq!(id.name, "gateway-ie");
    assert_eq!(id.key_hash, key_hash_of(ie_gateway.cert.der()).unwrap());
    assert_eq!(cli.unwrap(), "hello ie/gateway-ie\n");
    let ie_id = id;
    eprintln!("ie gateway: {:?}", t.elapsed());

    // A us certificate claiming ie in its CN, SAN, OU and C: accepted as a us caller.
    let t = Instant::now();
    let cfg = client_from_files(dir, "us-liar", &server_ca, &us_liar);
    let (srv, cli) = exchange(cfg, addr, "127.0.0.1", &mut outcomes).await;
    let id = srv.expect("us certificate accepted");
    assert_eq!(id.region, Region::new("us").unwrap());
    assert_eq!(id.name, "gateway-ie");
    assert_ne!(id, ie_id);
    assert_eq!(cli.unwrap(), "hello us/gateway-ie\n");
    eprintln!("us claiming ie: {:?}", t.elapsed());

    // An untrusted CA: the handshake fails.
    let t = Instant::now();
    let cfg = client_from_files(dir, "rogue", &server_ca, &rogue);
    let (srv, cli) = exchange(cfg, addr, "localhost", &mut outcomes).await;
    let err = srv.expect_err("untrusted CA refused");
    assert!(
        matches!(
            rustls_error(&err),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ),
        "{err}"
    );
    let cli_err = cli.expect_err("client sees the refusal");
    eprintln!(
        "untrusted CA: {:?} (server: {err}; client: {cli_err})",
        t.elapsed()
    );

    // A revoked ie certificate: the handshake fails, and says why.
    let t = Instant::now();
    let cfg = client_from_files(dir, "ie-revoked", &server_ca, &ie_revoked);
    let (srv, cli) = exchange(cfg, addr, "localhost", &mut outcomes).await;
    let err = srv.expect_err("revoked certificate refused");
    assert!(
        matches!(
            rustls_error(&err),
            Some(rustls::Error::InvalidCertificate(CertificateError::Revoked))
        ),
        "{err}"
    );
    let cli_err = cli.expect_err("client sees the refusal");
    eprintln!(
        "revoked: {:?} (server: {err}; client: {cli_err})",
        t.elapsed()
    );

    // No client certificate at all: the handshake fails.
    let t = Instant::now();
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(server_ca.cert.der().to_vec()))
        .unwrap();
    let mut anonymous =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    anonymous.alpn_protocols = vec![b"http/1.1".to_vec()];
    let (srv, cli) = exchange(Arc::new(anonymous), addr, "localhost", &mut outcomes).await;
    let err = srv.expect_err("anonymous client refused");
    assert!(
        matches!(
            rustls_error(&err),
            Some(rustls::Error::NoCertificatesPresented)
        ),
        "{err}"
    );
    let cli_err = cli.expect_err("client sees the refusal");
    eprintln!(
        "no certificate: {:?} (server: {err}; client: {cli_err})",
        t.elapsed()
    );

    eprintln!("setup {setup:?}, total {:?}", started.elapsed());
}

#[test]
fn loaders_refuse_missing_and_empty_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    assert!(matches!(
        load_certs(&missing),
        Err(custodia_custodian::Error::Io { .. })
    ));
    let empty = write(dir.path(), "empty.pem", "not pem\n");
    assert!(matches!(
        load_certs(&empty),
        Err(custodia_custodian::Error::Tls(_))
    ));
    assert!(matches!(
        load_key(&empty),
        Err(custodia_custodian::Error::Tls(_))
    ));
    assert!(matches!(
        load_crls(&empty),
        Err(custodia_custodian::Error::Tls(_))
    ));
}

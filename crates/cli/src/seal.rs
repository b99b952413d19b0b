//! `custodia seal` and `custodia open`: files or stdin/stdout, streamed through the SDK
//! (`Client::seal_stream`, `Client::open_stream`) with the custodians, CAs and pinned keys of a
//! keys index. Opening with a lawful-access approval unlocks through the SDK and streams the
//! body through the envelope's `Opener` (the SDK's stream opener takes no approval).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use custodia::{Client, CustodianEndpoint, Directory, Policy};
use custodia_envelope::{
    Binding, CustodianName, Header, Metadata, PREFIX_LEN, Profile, Region, TAG_LEN,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::failure::{CliResult, Context, Failure, io_error};
use crate::files::partial_path;
use crate::keys::index::Index;
use crate::target::{client_tls, runtime};

/// Flags shared by `seal` and `open`.
#[derive(Debug, Args)]
pub(crate) struct Common {
    /// The keys directory (or its regions.toml): custodians, CAs, pinned keys, certificates.
    #[arg(long, value_name = "DIR")]
    keys: PathBuf,
    /// The object's bucket (with --object: its final name, bound into the object).
    #[arg(long, default_value = "mail", value_name = "NAME")]
    bucket: String,
    /// The object's key (name) in the bucket; opening needs the same name.
    #[arg(long, value_name = "NAME")]
    object: String,
    /// Read from this file (default: stdin).
    #[arg(long = "in", value_name = "FILE")]
    input: Option<PathBuf>,
    /// Write to this file (default: stdout). Written to a temporary file and renamed only on
    /// success, so a failure never leaves a partial output behind.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Connect as this region's gateway (its client certificate from the index).
    #[arg(long, value_name = "REGION")]
    caller: Option<String>,
    /// Connect with this client certificate instead (PEM; with --cert-key).
    #[arg(long, value_name = "PEM", requires = "cert_key")]
    cert: Option<PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(long, value_name = "PEM", requires = "cert")]
    cert_key: Option<PathBuf>,
}

/// Flags of `seal`.
#[derive(Debug, Args)]
pub(crate) struct SealArgs {
    #[command(flatten)]
    common: Common,
    /// The mailbox the object belongs to (sealed into its authenticated context).
    #[arg(long, value_name = "ID")]
    mailbox: String,
    /// The mailbox's home region (a residency rule for this mailbox).
    #[arg(long, value_name = "REGION", required_unless_present = "domains")]
    region: Option<String>,
    /// Residency rules instead of --region: DOMAIN=REGION (repeat; longest match wins).
    #[arg(long = "domain", value_name = "DOMAIN=REGION")]
    domains: Vec<String>,
}

/// Flags of `open`.
#[derive(Debug, Args)]
pub(crate) struct OpenArgs {
    #[command(flatten)]
    common: Common,
    /// A lawful-access approval (signed JSON) for opening outside the object's region.
    #[arg(long, value_name = "FILE")]
    approval: Option<PathBuf>,
}

fn region(name: &str, flag: &str) -> CliResult<Region> {
    Region::new(name).map_err(|e| Failure::usage(format!("{flag}: {e}")))
}

/// A directory of the index's custodians for `wanted` (region, custodian) pairs, connecting
/// with the certificate chosen by `common` (else `default_caller`'s gateway).
fn directory(
    index: &Index,
    common: &Common,
    default_caller: &str,
    wanted: &[(String, String)],
) -> CliResult<Directory> {
    let (cert, key) = match (&common.cert, &common.cert_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => {
            let caller = common.caller.as_deref().unwrap_or(default_caller);
            let e = index.region(caller).map_err(|e| e.context("--caller"))?;
            (index.path(&e.gateway_cert), index.path(&e.gateway_key))
        }
    };
    directory_as(index, &cert, &key, wanted)
}

/// A directory of the index's custodians for `wanted` (region, custodian) pairs, connecting
/// with the client certificate `cert` and its key `key`.
pub(crate) fn directory_as(
    index: &Index,
    cert: &Path,
    key: &Path,
    wanted: &[(String, String)],
) -> CliResult<Directory> {
    let mut builder = Directory::builder();
    for (r, c) in wanted {
        let entry = index
            .regions
            .iter()
            .find(|e| &e.name == r && &e.custodian == c)
            .ok_or_else(|| {
                Failure::failed(format!(
                    "custodian {r}/{c} is not in {}",
                    index.dir.join(crate::keys::index::INDEX_FILE).display()
                ))
            })?;
        let endpoint = CustodianEndpoint {
            addr: entry.address.clone(),
            server_name: entry.server_name.clone(),
            tls: client_tls(&index.path(&entry.ca_cert), cert, key)?,
            manifest_key: entry.manifest_key()?,
        };
        let custodian = CustodianName::new(c).map_err(|e| Failure::failed(format!("{c}: {e}")))?;
        builder = builder.custodian(&region(r, "index")?, &custodian, endpoint)?;
    }
    Ok(builder.build())
}

/// The output: a file written under a temporary name, or stdout.
enum Output {
    File {
        path: PathBuf,
        tmp: PathBuf,
        file: tokio::fs::File,
    },
    Stdout(tokio::io::Stdout),
}

impl Output {
    async fn open(path: Option<&Path>) -> CliResult<Self> {
        Ok(match path {
            None => Self::Stdout(tokio::io::stdout()),
            Some(path) => {
                let tmp = partial_path(path);
                // A stale partial file would keep its old mode: start from none. The output
                // (plaintext, for `open`) is created readable by its owner only.
                let _ = tokio::fs::remove_file(&tmp).await;
                let mut options = tokio::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                options.mode(0o600);
                let file = options.open(&tmp).await.map_err(|e| io_error(&tmp, &e))?;
                Self::File {
                    path: path.to_owned(),
                    tmp,
                    file,
                }
            }
        })
    }

    fn writer(&mut self) -> &mut (dyn AsyncWrite + Unpin) {
        match self {
            Self::File { file, .. } => file,
            Self::Stdout(s) => s,
        }
    }

    /// Keeps the output if `ok`, else removes the temporary file.
    async fn finish(self, ok: bool) -> CliResult {
        if let Self::File {
            path,
            tmp,
            mut file,
        } = self
        {
            if !ok {
                drop(file);
                let _ = tokio::fs::remove_file(&tmp).await;
                return Ok(());
            }
            file.flush().await.map_err(|e| io_error(&tmp, &e))?;
            file.sync_all().await.map_err(|e| io_error(&tmp, &e))?;
            tokio::fs::rename(&tmp, &path)
                .await
                .map_err(|e| io_error(&path, &e))?;
        }
        Ok(())
    }
}

async fn input(path: Option<&Path>) -> CliResult<Box<dyn AsyncRead + Unpin>> {
    Ok(match path {
        None => Box::new(tokio::io::stdin()),
        Some(p) => Box::new(
            tokio::fs::File::open(p)
                .await
                .map_err(|e| io_error(p, &e))?,
        ),
    })
}

fn binding(common: &Common) -> CliResult<Binding> {
    Binding::new(&common.bucket, &common.object)
        .map_err(|e| Failure::usage(format!("--bucket/--object: {e}")))
}

/// Runs `seal`.
pub(crate) fn seal(args: &SealArgs) -> CliResult {
    let index = Index::load(&args.common.keys)?;
    let mut policy = Policy::builder();
    custodia_envelope::canonical_mailbox(&args.mailbox)
        .map_err(|e| Failure::usage(format!("--mailbox {:?}: {e}", args.mailbox)))?;
    if let Some(r) = &args.region {
        policy = policy.mailbox(&args.mailbox, &region(r, "--region")?);
    }
    for rule in &args.domains {
        let (domain, r) = rule
            .split_once('=')
            .ok_or_else(|| Failure::usage(format!("--domain {rule}: expected DOMAIN=REGION")))?;
        custodia_envelope::canonical_domain(domain.trim_start_matches(['@', '.']))
            .map_err(|e| Failure::usage(format!("--domain {rule}: {e}")))?;
        policy = policy.domain(domain, &region(r, "--domain")?);
    }
    let policy = policy.build();
    let home = policy.region_for(&args.mailbox)?;
    let wanted: Vec<(String, String)> = index
        .regions
        .iter()
        .filter(|e| e.name == home.as_str())
        .map(|e| (e.name.clone(), e.custodian.clone()))
        .collect();
    if wanted.is_empty() {
        return Err(Failure::failed(format!(
            "region {home} (of mailbox {}) has no custodian in {}",
            args.mailbox,
            index.dir.join(crate::keys::index::INDEX_FILE).display()
        )));
    }
    let directory = Arc::new(directory(&index, &args.common, home.as_str(), &wanted)?);
    let binding = binding(&args.common)?;
    runtime()?.block_on(async {
        directory.refresh().await?;
        let client = Client::builder(directory, policy).build();
        let reader = input(args.common.input.as_deref()).await?;
        let mut out = Output::open(args.common.out.as_deref()).await?;
        let result = client
            .seal_stream(
                &args.mailbox,
                &binding,
                &Metadata::new(),
                reader,
                out.writer(),
            )
            .await;
        out.finish(result.is_ok()).await?;
        let written = result?;
        eprintln!(
            "sealed {} for mailbox {} (region {home}) as {}/{}: {written} bytes stored",
            args.common
                .input
                .as_deref()
                .map_or_else(|| "stdin".into(), |p| p.display().to_string()),
            args.mailbox,
            binding.bucket(),
            binding.key(),
        );
        Ok(())
    })
}

/// Reads the stored header from `reader`.
async fn read_header(reader: &mut (dyn AsyncRead + Unpin)) -> CliResult<(Vec<u8>, Header)> {
    let not_sealed =
        |e: std::io::Error| Failure::failed(format!("input: not a sealed object: {e}"));
    let mut bytes = vec![0u8; PREFIX_LEN];
    reader.read_exact(&mut bytes).await.map_err(not_sealed)?;
    let profile = Profile::from_prefix(&bytes).context("input")?;
    bytes.resize(profile.header_size(), 0);
    reader
        .read_exact(&mut bytes[PREFIX_LEN..])
        .await
        .map_err(not_sealed)?;
    let header = Header::parse(&bytes).context("input")?;
    Ok((bytes, header))
}

/// Runs `open`.
pub(crate) fn open(args: &OpenArgs) -> CliResult {
    let index = Index::load(&args.common.keys)?;
    let approval = args
        .approval
        .as_deref()
        .map(crate::approve::load)
        .transpose()?;
    let binding = binding(&args.common)?;
    runtime()?.block_on(async {
        let mut reader = input(args.common.input.as_deref()).await?;
        let (header_bytes, header) = read_header(&mut reader).await?;
        // One part of a multipart object would open as if it were the whole object.
        custodia::refuse_multipart_record(&header)?;
        let wanted: Vec<(String, String)> = header
            .stanzas()
            .iter()
            .map(|s| {
                (
                    s.recipient.region.to_string(),
                    s.recipient.custodian.to_string(),
                )
            })
            .collect();
        let home = header.context().region().as_str().to_owned();
        let directory = Arc::new(directory(&index, &args.common, &home, &wanted)?);
        let client = Client::builder(directory, Policy::default()).build();
        let mut out = Output::open(args.common.out.as_deref()).await?;
        let result = match &approval {
            None => {
                let stream = std::io::Cursor::new(header_bytes).chain(reader);
                client
                    .open_stream(&binding, stream, out.writer())
                    .await
                    .map_err(Failure::from)
            }
            Some(approval) => {
                open_approved(&client, &header, &binding, approval, reader, out.writer()).await
            }
        };
        out.finish(result.is_ok()).await?;
        let written = result?;
        eprintln!(
            "opened {}/{} (mailbox {}, region {home}): {written} bytes{}",
            crate::out::escape(binding.bucket()),
            crate::out::escape(binding.key()),
            crate::out::escape(header.context().mailbox()),
            if approval.is_some() {
                ", with the approval"
            } else {
                ""
            }
        );
        Ok(())
    })
}

/// Opens with a lawful-access approval: the SDK unlocks (the data key is not cached), the
/// envelope's `Opener` streams the body, one verified chunk at a time.
async fn open_approved(
    client: &Client,
    header: &Header,
    binding: &Binding,
    approval: &custodia::SignedApproval,
    mut reader: Box<dyn AsyncRead + Unpin>,
    writer: &mut (dyn AsyncWrite + Unpin),
) -> CliResult<u64> {
    let unlocked = client.unlock(header, binding, Some(approval)).await?;
    let mut opener = unlocked.opener()?;
    let mut buf = vec![0u8; header.profile().chunk_size() + TAG_LEN];
    let mut out = Vec::with_capacity(buf.len());
    let mut written = 0u64;
    let write_err = |e: std::io::Error| Failure::failed(format!("output: {e}"));
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|e| Failure::failed(format!("input: {e}")))?;
        if n == 0 {
            break;
        }
        opener.update(&buf[..n], &mut out)?;
        writer.write_all(&out).await.map_err(write_err)?;
        written += out.len() as u64;
        out.clear();
    }
    opener.finish(&mut out)?;
    writer.write_all(&out).await.map_err(write_err)?;
    writer.flush().await.map_err(write_err)?;
    Ok(written + out.len() as u64)
}

//! `custodia keys init`: a complete development setup for N regions in one directory (PKI,
//! approver keys, custodian configs and insecure keystores, the `regions.toml` index and a
//! README).

pub(crate) mod config;
pub(crate) mod index;
mod pki;
mod readme;

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use custodia_custodian::approval::ApproverKey;
use custodia_envelope::{CustodianName, Region, SystemRandomness};
use zeroize::Zeroizing;

use self::config::{
    RegionPlan, admin_identity, auditor_identity, custodian_toml, gateway_identity,
};
use self::index::{ApproverEntry, FORMAT, INDEX_FILE, Index, RegionEntry};
use self::pki::{Pem, RegionCa};
use crate::failure::{CliResult, Context, Failure, io_error};
use crate::files::{hex_string, write_private, write_public};

/// Approvers per region.
const APPROVERS: usize = 3;
/// Of whom must sign.
const THRESHOLD: usize = 2;

/// `custodia keys …`
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Write a development PKI, approver keys, custodian configs and insecure keystores for
    /// N regions, with a `regions.toml` index and a README.
    #[command(after_help = "\
Examples:
  custodia keys init --regions ie,us --out keys
  custodia keys init --regions ie,us,de --out ./dev-keys --base-port 9401 --force

Writes, for each region R: R/ca.pem (+ .key, .crl.pem), R/custodian.toml, R/custodian.pem
(+ .key), R/kek.hex, R/data/keystore.json (marked insecure), R/clients/{gateway,admin,
auditor}-R.pem (+ .key), R/approvers/R-approver-{1,2,3}.key (+ .pub); and regions.toml,
README.md, .gitignore. Private keys are created with mode 0600. Custodian R listens on
127.0.0.1:(base-port + index of R). Serve with `custodia custodian serve --dev --config
DIR/R/custodian.toml`: without --dev the insecure keystore is refused.")]
    Init(InitArgs),
}

/// Flags of `keys init`.
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Comma-separated region names (lowercase letters, digits, '-'), e.g. `ie,us`.
    #[arg(long, value_name = "R1,R2,…")]
    regions: String,
    /// The output directory (created; must be empty or missing unless --force).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Replace an existing keys directory (one holding a regions.toml) instead of refusing.
    #[arg(long)]
    force: bool,
    /// The first region's custodian port; the next regions use the following ports.
    #[arg(long, default_value_t = 7401, value_name = "PORT")]
    base_port: u16,
}

/// Runs `keys …`.
pub(crate) fn run(command: KeysCommand) -> CliResult {
    match command {
        KeysCommand::Init(args) => init(&args),
    }
}

fn parse_regions(list: &str) -> CliResult<Vec<(Region, CustodianName)>> {
    let mut out: Vec<(Region, CustodianName)> = Vec::new();
    for name in list.split(',').map(str::trim) {
        let region = Region::new(name).map_err(|e| Failure::usage(format!("--regions: {e}")))?;
        if out.iter().any(|(r, _)| *r == region) {
            return Err(Failure::usage(format!(
                "--regions: {name:?} is listed twice"
            )));
        }
        let custodian = CustodianName::new(&format!("{name}-custodian"))
            .map_err(|e| Failure::usage(format!("--regions: {name:?}: {e}")))?;
        out.push((region, custodian));
    }
    if out.is_empty() {
        return Err(Failure::usage("--regions: at least one region"));
    }
    Ok(out)
}

/// Makes `out` ready: missing or empty, or (with `force`) a former keys directory, removed.
fn prepare_out(out: &Path, force: bool) -> CliResult {
    let Ok(mut entries) = std::fs::read_dir(out) else {
        return Ok(()); // missing: created as files are written
    };
    if entries.next().is_none() {
        return Ok(());
    }
    if !force {
        return Err(Failure::failed(format!(
            "{}: not empty; pass --force to replace a directory made by `keys init`",
            out.display()
        )));
    }
    if !out.join(INDEX_FILE).is_file() {
        return Err(Failure::failed(format!(
            "{}: has no {INDEX_FILE}, so it was not made by `keys init`; refusing to delete it",
            out.display()
        )));
    }
    std::fs::remove_dir_all(out).map_err(|e| io_error(out, &e))
}

/// Files of one region, relative to the output directory.
struct RegionFiles {
    dir: PathBuf,
}

impl RegionFiles {
    fn rel(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn write_pair(out: &Path, cert: &Path, key: &Path, pem: &Pem) -> CliResult {
    write_public(&out.join(cert), pem.cert.as_bytes())?;
    write_private(&out.join(key), pem.key.as_bytes())
}

fn init(args: &InitArgs) -> CliResult {
    let regions = parse_regions(&args.regions)?;
    let out = &args.out;
    u16::try_from(regions.len() - 1)
        .ok()
        .and_then(|n| args.base_port.checked_add(n))
        .ok_or_else(|| Failure::usage("--base-port: too high for this many regions"))?;
    prepare_out(out, args.force)?;
    let index = generate(
        &args.regions,
        out,
        &|i| format!("127.0.0.1:{}", args.base_port + i),
        false,
    )?;
    for e in &index.regions {
        say!(
            "region {}: custodian {} on {}, config {}, manifest signing key {}",
            e.name,
            e.custodian,
            e.address,
            out.join(&e.config).display(),
            e.manifest_key
        );
    }
    say!(
        "wrote {} (INSECURE development keys: serve with --dev)",
        out.join(INDEX_FILE).display()
    );
    Ok(())
}

/// Writes a complete development setup for `regions` (comma-separated) into `out` (missing
/// or empty), with region *i*'s custodian listening on `listen(i)`, and returns its index.
/// Prints nothing on stdout (`keys init` and `demo` report it their own way); each KEK file
/// written is said on stderr unless `quiet`.
pub(crate) fn generate(
    regions: &str,
    out: &Path,
    listen: &dyn Fn(u16) -> String,
    quiet: bool,
) -> CliResult<Index> {
    let regions = parse_regions(regions)?;
    let mut rng = SystemRandomness::new();

    let mut plans = Vec::new();
    let mut entries = Vec::new();
    for (i, (region, custodian)) in (0u16..).zip(&regions) {
        let r = region.as_str();
        let files = RegionFiles { dir: r.into() };
        let mut ca = RegionCa::new(r)?;
        write_pair(out, &files.rel("ca.pem"), &files.rel("ca.key"), &ca.pem)?;
        write_public(&out.join(files.rel("ca.crl.pem")), ca.crl.as_bytes())?;
        let server = ca.server(custodian.as_str())?;
        write_pair(
            out,
            &files.rel("custodian.pem"),
            &files.rel("custodian.key"),
            &server,
        )?;
        let mut client = |identity: &str| -> CliResult<(PathBuf, PathBuf)> {
            let pem = ca.client(identity)?;
            let cert = files.rel(&format!("clients/{identity}.pem"));
            let key = files.rel(&format!("clients/{identity}.key"));
            write_pair(out, &cert, &key, &pem)?;
            Ok((cert, key))
        };
        let (gateway_cert, gateway_key) = client(&gateway_identity(r))?;
        let (admin_cert, admin_key) = client(&admin_identity(r))?;
        let (auditor_cert, auditor_key) = client(&auditor_identity(r))?;

        let mut approvers = Vec::new();
        for n in 1..=APPROVERS {
            let name = format!("{r}-approver-{n}");
            let key = ApproverKey::generate(&mut rng).context("approver key")?;
            let public = hex_string(&key.public_key());
            let key_file = files.rel(&format!("approvers/{name}.key"));
            let seed = key.seed_hex();
            let mut line = Zeroizing::new(Vec::with_capacity(seed.len() + 1));
            line.extend_from_slice(seed.as_bytes());
            line.push(b'\n');
            write_private(&out.join(&key_file), &line)?;
            write_public(
                &out.join(files.rel(&format!("approvers/{name}.pub"))),
                format!("{public}\n").as_bytes(),
            )?;
            approvers.push(ApproverEntry {
                name,
                public_key: public,
                key: key_file,
            });
        }
        let listen = listen(i);
        plans.push(RegionPlan {
            region: r.to_owned(),
            custodian: custodian.as_str().to_owned(),
            listen: listen.clone(),
            approvers: approvers
                .iter()
                .map(|a| (a.name.clone(), a.public_key.clone()))
                .collect(),
            threshold: THRESHOLD,
        });
        entries.push(RegionEntry {
            name: r.to_owned(),
            custodian: custodian.as_str().to_owned(),
            address: listen,
            server_name: "localhost".into(),
            config: files.rel("custodian.toml"),
            ca_cert: files.rel("ca.pem"),
            manifest_key: String::new(),
            gateway_identity: gateway_identity(r),
            gateway_cert,
            gateway_key,
            admin_cert,
            admin_key,
            auditor_cert,
            auditor_key,
            approver_threshold: THRESHOLD,
            approvers,
        });
    }

    for (plan, entry) in plans.iter().zip(&mut entries) {
        let path = out.join(&entry.config);
        let text = custodian_toml(plan, &plans);
        let base = path.parent().unwrap_or(Path::new("."));
        custodia_custodian::config::Config::parse(&text, base)
            .context(format!("{} (generated)", path.display()))?;
        write_public(&path, text.as_bytes())?;
        let created =
            crate::custodian::create_keystore(&path, true, !quiet).context(path.display())?;
        entry.manifest_key = hex_string(&created.manifest_key);
    }

    let index = Index {
        format: FORMAT.into(),
        insecure: true,
        regions: entries,
        dir: out.to_owned(),
    };
    write_public(&out.join(INDEX_FILE), index.to_toml()?.as_bytes())?;
    let summary: Vec<(String, String, String)> = plans
        .iter()
        .map(|p| (p.region.clone(), p.custodian.clone(), p.listen.clone()))
        .collect();
    let names: Vec<&str> = plans.iter().map(|p| p.region.as_str()).collect();
    let command = format!(
        "custodia keys init --regions {} --out {}",
        names.join(","),
        out.display()
    );
    write_public(
        &out.join("README.md"),
        readme::readme(&summary, &command, &out.display().to_string()).as_bytes(),
    )?;
    write_public(&out.join(".gitignore"), readme::GITIGNORE.as_bytes())?;
    Ok(index)
}

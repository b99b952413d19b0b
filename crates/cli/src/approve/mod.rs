//! `custodia approve new|sign|show`: lawful-access (and key-destruction) approval documents,
//! written, signed offline by approvers one at a time, and inspected against a region's
//! approver set. The format, signed bytes and verification are `custodia_custodian::approval`'s.

pub(crate) mod show;

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use custodia_custodian::approval::{Action, Approval, ApproverKey, SignedApproval};
use custodia_custodian::tls::{key_hash_of, load_certs};
use zeroize::Zeroizing;

use crate::failure::{CliResult, Context, Failure};
use crate::files::{hex_string, read_json, replace, write_public};
use crate::keys::index::Index;
use crate::timefmt::{parse_duration, parse_instant};

/// `custodia approve …`
#[derive(Debug, Subcommand)]
pub(crate) enum ApproveCommand {
    /// Write an unsigned approval request document (JSON) to a file.
    #[command(after_help = "\
Examples:
  # A US gateway asks for two Irish mailboxes, valid 24 hours, 3 uses per mailbox:
  custodia approve new --keys keys --region ie \\
      --caller-cert keys/us/clients/gateway-us.pem \\
      --request-id MLAT-2026-0042 --purpose 'Court order 17/2026, treaty channel' \\
      --mailbox aoife@example.ie --mailbox brian@example.ie \\
      --valid-for 24h --max-uses 3 --out mlat-0042.json
  # Destroying key version 1 of ie-custodian, asked by its admin:
  custodia approve new --region ie --custodian ie-custodian \\
      --caller-cert keys/ie/clients/admin-ie.pem --request-id KD-7 \\
      --purpose 'retire 2025 key' --destroy-key 1 --out kd-7.json

The caller's certificate is reduced to its key hash (SHA-256 of its SubjectPublicKeyInfo): only
a caller presenting a certificate with that key can use the approval.")]
    New(NewArgs),
    /// Add one approver's Ed25519 signature to an approval document (offline).
    #[command(after_help = "\
Examples:
  custodia approve sign --key keys/ie/approvers/ie-approver-1.key mlat-0042.json
  custodia approve sign --key approver.key --name 'Judge A. Byrne' --yes mlat-0042.json

Prints every field it is about to sign (the mailboxes one per line, with their count) and asks
you to type `sign` (--yes skips the question and is needed when stdin is not a terminal). The
file is replaced atomically with the signature added. Signing twice with the same key is
refused. Signing checks the document's format first and says which field is wrong.")]
    Sign(SignArgs),
    /// Print an approval's fields, its signers, and whether M of N approvers signed.
    #[command(after_help = "\
Examples:
  custodia approve show mlat-0042.json --keys keys
  custodia approve show mlat-0042.json --config keys/ie/custodian.toml --check
  custodia approve show mlat-0042.json --approver 8a88…5c --approver 8139…94 --threshold 2

The approver set is taken from --approver/--threshold, else from a custodian config (--config),
else from the keys index (--keys) entry of the approval's region. With --check, the exit status
is 3 unless the approval would be accepted now (enough valid signatures, within its validity).")]
    Show(show::ShowArgs),
}

/// Flags of `approve new`.
#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// The custodian's region (the mailboxes' home region).
    #[arg(long)]
    region: String,
    /// The custodian's name (default: the region's custodian in the --keys index).
    #[arg(long)]
    custodian: Option<String>,
    /// A keys directory (or its regions.toml), to look up the custodian's name.
    #[arg(long, value_name = "DIR")]
    keys: Option<PathBuf>,
    /// The requesting caller's certificate (PEM); its key hash goes into the approval.
    #[arg(long, value_name = "PEM")]
    caller_cert: PathBuf,
    /// The requester's reference, e.g. the treaty request number (1–128 bytes).
    #[arg(long)]
    request_id: String,
    /// Why, for the record (1–1024 bytes).
    #[arg(long)]
    purpose: String,
    /// A mailbox the approval covers (repeat for several; lawful access).
    #[arg(long = "mailbox", value_name = "ID")]
    mailboxes: Vec<String>,
    /// Unwrap batches allowed per mailbox (lawful access).
    #[arg(long, default_value_t = 1, value_name = "N")]
    max_uses: u32,
    /// Instead of lawful access: approve destroying this key version (asked by an admin).
    #[arg(long, value_name = "VERSION", conflicts_with_all = ["mailboxes"])]
    destroy_key: Option<u32>,
    /// Valid from: `now` or Unix seconds.
    #[arg(long, default_value = "now", value_name = "TIME")]
    not_before: String,
    /// Valid until (exclusive), Unix seconds.
    #[arg(long, value_name = "TIME", conflicts_with = "valid_for")]
    not_after: Option<String>,
    /// Validity length from --not-before: e.g. 90m, 24h, 7d.
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    valid_for: String,
    /// Where to write the document.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
}

/// Flags of `approve sign`.
#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    /// The approver's private key file: a 64-hex Ed25519 seed (as `keys init` writes).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The approver's name in the signature (informational; default: the key file's name).
    #[arg(long)]
    name: Option<String>,
    /// Sign without asking (needed when stdin is not a terminal).
    #[arg(long)]
    yes: bool,
    /// The approval document to sign (replaced with the signature added).
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

/// Runs `approve …`.
pub(crate) fn run(command: ApproveCommand) -> CliResult {
    match command {
        ApproveCommand::New(args) => new(&args),
        ApproveCommand::Sign(args) => sign(&args),
        ApproveCommand::Show(args) => show::show(&args),
    }
}

/// The SHA-256 of the SubjectPublicKeyInfo of the first certificate in `path`.
pub(crate) fn cert_key_hash(path: &Path) -> CliResult<[u8; 32]> {
    let certs = load_certs(path)?;
    let first = certs
        .first()
        .ok_or_else(|| Failure::failed(format!("{}: no certificate", path.display())))?;
    key_hash_of(first).context(path.display())
}

fn new(args: &NewArgs) -> CliResult {
    let custodian = match (&args.custodian, &args.keys) {
        (Some(c), _) => c.clone(),
        (None, Some(keys)) => Index::load(keys)?.region(&args.region)?.custodian.clone(),
        (None, None) => {
            return Err(Failure::usage(
                "--custodian: needed (or --keys DIR to look it up for --region)",
            ));
        }
    };
    let not_before = parse_instant("--not-before", &args.not_before)?;
    let not_after = match &args.not_after {
        Some(t) => parse_instant("--not-after", t)?,
        None => not_before.saturating_add(parse_duration("--valid-for", &args.valid_for)?),
    };
    let action = match args.destroy_key {
        Some(key_version) => Action::DestroyKey { key_version },
        None if args.mailboxes.is_empty() => {
            return Err(Failure::usage(
                "--mailbox: at least one (or --destroy-key VERSION)",
            ));
        }
        None => {
            // The approvers will read, and the custodian compare, canonical ids only.
            let mut mailboxes = Vec::with_capacity(args.mailboxes.len());
            for m in &args.mailboxes {
                let c = custodia_envelope::canonical_mailbox(m).map_err(|e| {
                    Failure::usage(format!("--mailbox {}: {e}", crate::out::escape(m)))
                })?;
                if c != *m {
                    say!(
                        "mailbox {} is written in canonical form: {c}",
                        crate::out::escape(m)
                    );
                }
                mailboxes.push(c);
            }
            Action::LawfulAccess {
                mailboxes,
                max_uses_per_mailbox: args.max_uses,
            }
        }
    };
    let approval = Approval {
        region: args.region.clone(),
        custodian,
        caller_key_hash: hex_string(&cert_key_hash(&args.caller_cert)?),
        request_id: args.request_id.clone(),
        purpose: args.purpose.clone(),
        not_before,
        not_after,
        action,
    };
    let id = write_request(approval, &args.out, args.force)?;
    say!(
        "wrote approval request {id} to {} (no signatures yet: `custodia approve sign`)",
        args.out.display()
    );
    Ok(())
}

/// Checks `approval`'s format (status 2 naming the rule it breaks), writes it unsigned to
/// `out` (replacing it only with `force`) and returns its id.
pub(crate) fn write_request(approval: Approval, out: &Path, force: bool) -> CliResult<String> {
    approval
        .validate()
        .map_err(|e| Failure::usage(format!("approval: {e}")))?;
    let id = approval.id()?.to_string();
    let doc = SignedApproval::new(approval);
    let text = to_json(&doc)?;
    if force {
        replace(out, text.as_bytes())?;
    } else {
        write_public(out, text.as_bytes())?;
    }
    Ok(id)
}

fn to_json(doc: &SignedApproval) -> CliResult<String> {
    let mut text =
        serde_json::to_string_pretty(doc).map_err(|e| Failure::failed(format!("approval: {e}")))?;
    text.push('\n');
    Ok(text)
}

/// Loads an approval document, checking its format.
pub(crate) fn load(path: &Path) -> CliResult<SignedApproval> {
    let doc: SignedApproval = read_json(path, "an approval document")?;
    doc.approval
        .validate()
        .map_err(|e| Failure::failed(format!("{}: approval: {e}", path.display())))?;
    Ok(doc)
}

fn sign(args: &SignArgs) -> CliResult {
    // What the approver is about to sign, exactly as signed (escaped), before the key is read.
    let doc = load(&args.file)?;
    say!("You are about to sign:");
    show::print_fields(&doc, crate::timefmt::now())?;
    if !args.yes {
        confirm_signing()?;
    }
    let shown = doc.approval.id()?;
    let signed = sign_file(&args.file, &args.key, args.name.as_deref(), Some(&shown))?;
    say!(
        "{} signed approval {} ({} signature{} now)",
        signed.name,
        signed.id,
        signed.signatures,
        if signed.signatures == 1 { "" } else { "s" }
    );
    Ok(())
}

/// What [`sign_file`] did.
/// Asks the approver on the terminal to type `sign`.
fn confirm_signing() -> CliResult {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure::usage(
            "stdin is not a terminal: pass --yes to sign without being asked",
        ));
    }
    eprint!("type `sign` to sign exactly this: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::failed(format!("reading the answer: {e}")))?;
    if line.trim() == "sign" {
        Ok(())
    } else {
        Err(Failure::failed("not confirmed: nothing was signed"))
    }
}

pub(crate) struct Signed {
    /// The signer's name as written into the signature.
    pub(crate) name: String,
    /// The approval's id.
    pub(crate) id: String,
    /// Signatures on the document now.
    pub(crate) signatures: usize,
}

/// Adds the signature of the approver whose seed is in `key` to the approval document in
/// `file` (replaced atomically). `name` defaults to the key file's name. With `shown`, the
/// document must still be the approval the approver was shown (same id: every signed field
/// the same): a file changed while the approver read it is not signed.
pub(crate) fn sign_file(
    file: &Path,
    key: &Path,
    name: Option<&str>,
    shown: Option<&custodia_custodian::approval::ApprovalId>,
) -> CliResult<Signed> {
    let mut doc = load(file)?;
    if let Some(shown) = shown
        && doc.approval.id()? != *shown
    {
        return Err(Failure::failed(format!(
            "{}: the document changed after it was shown (approval {} was shown, the file now \
             holds {}): nothing was signed; show it again",
            file.display(),
            shown,
            doc.approval.id()?
        )));
    }
    let seed = Zeroizing::new(
        std::fs::read_to_string(key).map_err(|e| crate::failure::io_error(key, &e))?,
    );
    let approver = ApproverKey::from_seed_hex(&seed).context(key.display())?;
    let public = hex_string(&approver.public_key());
    if doc.signatures.iter().any(|s| s.public_key == public) {
        return Err(Failure::failed(format!(
            "{}: already signed by this key ({public})",
            file.display()
        )));
    }
    let name = name.map_or_else(
        || {
            key.file_stem()
                .map_or_else(|| "approver".into(), |s| s.to_string_lossy().into_owned())
        },
        str::to_owned,
    );
    let signature = approver.sign(&name, &doc.approval).context(key.display())?;
    doc.add_signature(signature);
    replace(file, to_json(&doc)?.as_bytes())?;
    Ok(Signed {
        name,
        id: doc.approval.id()?.to_string(),
        signatures: doc.signatures.len(),
    })
}

#[cfg(test)]
mod tests {
    use custodia_custodian::approval::{Action, Approval, ApproverKey, SignedApproval};
    use custodia_envelope::SystemRandomness;

    use super::{sign_file, to_json};

    #[test]
    fn a_document_changed_after_it_was_shown_is_not_signed() {
        let dir = std::env::temp_dir().join(format!(
            "custodia-sign-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let approval = |mailbox: &str| Approval {
            region: "ie".into(),
            custodian: "ie-custodian".into(),
            caller_key_hash: "ab".repeat(32),
            request_id: "M-1".into(),
            purpose: "a court order".into(),
            not_before: 1,
            not_after: 2,
            action: Action::LawfulAccess {
                mailboxes: vec![mailbox.into()],
                max_uses_per_mailbox: 1,
            },
        };
        let shown = approval("aoife@example.ie").id().unwrap();
        // What the file holds by the time the approver said yes.
        let file = dir.join("a.json");
        let swapped = SignedApproval::new(approval("brian@example.ie"));
        std::fs::write(&file, to_json(&swapped).unwrap()).unwrap();
        let key = dir.join("approver.key");
        let k = ApproverKey::generate(&mut SystemRandomness::new()).unwrap();
        std::fs::write(&key, k.seed_hex().as_bytes()).unwrap();
        let before = std::fs::read(&file).unwrap();
        let err = sign_file(&file, &key, None, Some(&shown)).err().unwrap();
        assert!(
            err.to_string().contains("changed after it was shown"),
            "{err}"
        );
        assert_eq!(std::fs::read(&file).unwrap(), before, "nothing was signed");
        // The document that was shown is signed.
        std::fs::write(
            &file,
            to_json(&SignedApproval::new(approval("aoife@example.ie"))).unwrap(),
        )
        .unwrap();
        assert_eq!(
            sign_file(&file, &key, None, Some(&shown))
                .unwrap()
                .signatures,
            1
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

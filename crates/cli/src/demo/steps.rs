//! The scenario, step by step, each step checking what it expects: mail delivered through
//! both gateways, each region reading its own mail, ciphertext in the store, the US side's
//! read of an Irish mailbox refused, a 2-of-3 lawful-access approval, the approved read of
//! that mailbox only, and the Irish custodian's verified audit log and transparency report.

use std::path::PathBuf;
use std::sync::Arc;

use custodia::{Client, Policy, SignedApproval};
use custodia_custodian::approval::{Action, Approval};
use custodia_custodian::audit::entry::{DetailEntry, PublicEntry};
use custodia_custodian::decision_log::Outcome;
use custodia_envelope::{Binding, Header};

use super::mail::{ALL, AOIFE_1, AOIFE_2, BRIAN_1, JANE_1, Mail};
use super::s3::S3Client;
use super::setup::{BUCKET, World};
use super::ui::{Ui, hexdump, thousands};
use crate::audit::source::{fetch_details, fetch_records, note_size};
use crate::failure::{CliResult, Failure, Status};
use crate::target::Target;
use crate::timefmt::{now, utc};

/// The treaty request's reference.
const REQUEST_ID: &str = "MLAT-2026-0042";
/// What the approval says it is for.
const PURPOSE: &str = "US District Court order 26-M-114 (stored mail of aoife@example.ie), \
                       via the Irish central authority under the US-Ireland MLAT";

/// The scenario's state.
struct Scenario<'a> {
    ui: &'a Ui,
    world: &'a World,
    rt: tokio::runtime::Runtime,
    ie: S3Client,
    us: S3Client,
    raw: S3Client,
    /// The SDK as the US side: gateway-us's certificate, the Irish custodian.
    us_sdk: Client,
    approval_file: PathBuf,
}

/// Runs every step; the first unexpected result ends the scenario with its failure.
pub(crate) fn run(ui: &Ui, world: &World, scratch: &std::path::Path) -> CliResult {
    let ie = world.gateway("ie")?;
    let us = world.gateway("us")?;
    let us_entry = world.region("us")?;
    let ie_entry = world.region("ie")?;
    let directory = crate::seal::directory_as(
        &world.index,
        &world.index.path(&us_entry.gateway_cert),
        &world.index.path(&us_entry.gateway_key),
        &[(ie_entry.name.clone(), ie_entry.custodian.clone())],
    )?;
    let s = Scenario {
        ui,
        world,
        rt: crate::target::runtime()?,
        ie: S3Client::new(ie.s3, &ie.keys),
        us: S3Client::new(us.s3, &us.keys),
        raw: S3Client::of(world.raw_store()),
        us_sdk: Client::builder(Arc::new(directory), Policy::default()).build(),
        approval_file: scratch.join("mlat-2026-0042.json"),
    };
    s.deliver()?;
    s.read_own_region()?;
    s.store_holds_ciphertext()?;
    s.court_order()?;
    let approval = s.treaty_channel()?;
    s.lawful_read(&approval)?;
    s.records(&approval)?;
    Ok(())
}

impl Scenario<'_> {
    fn client(&self, region: &str) -> &S3Client {
        if region == "ie" { &self.ie } else { &self.us }
    }

    /// Expects success.
    fn expect<T>(&self, expected: &str, result: CliResult<T>) -> CliResult<T> {
        result.map_err(|e| {
            self.ui.fail(expected, &e.message);
            e.context(format!("expected {expected}"))
        })
    }

    /// Expects a custodian's refusal naming `reason`; returns its text.
    fn expect_refusal<T>(
        &self,
        expected: &str,
        reason: &str,
        result: CliResult<T>,
    ) -> CliResult<String> {
        match result {
            Err(e) if e.status == Status::Denied && e.message.contains(reason) => Ok(e.message),
            Ok(_) => {
                self.ui.fail(expected, "it succeeded");
                Err(Failure::failed(format!(
                    "expected {expected}, but it succeeded"
                )))
            }
            Err(e) => {
                self.ui.fail(expected, &e.message);
                Err(e.context(format!("expected {expected}")))
            }
        }
    }

    /// Expects `ok`.
    fn expect_that(&self, ok: bool, expected: &str, got: impl FnOnce() -> String) -> CliResult {
        if ok {
            return Ok(());
        }
        let got = got();
        self.ui.fail(expected, &got);
        Err(Failure::failed(format!("expected {expected}; got {got}")))
    }

    /// Expects `body` to be `mail`'s text.
    fn expect_same(&self, mail: &Mail, body: &[u8], what: &str) -> CliResult {
        self.expect_that(
            body == mail.text.as_bytes(),
            &format!("{what}: the {} bytes delivered", mail.text.len()),
            || format!("{} different bytes", body.len()),
        )
    }

    fn stored_file(&self, mail: &Mail) -> PathBuf {
        self.world.store.root.join(BUCKET).join(mail.key)
    }

    fn get(&self, region: &str, mail: &Mail) -> CliResult<Vec<u8>> {
        self.rt.block_on(self.client(region).get(mail.key))
    }

    /// The stored object, fetched straight from the store with the provider's credentials.
    fn fetch_raw(&self, mail: &Mail) -> CliResult<Vec<u8>> {
        self.rt.block_on(self.raw.get(mail.key))
    }

    /// Opens `stored` through the SDK as the US side (gateway-us), with `approval` if any.
    fn open_as_us(
        &self,
        mail: &Mail,
        stored: &[u8],
        approval: Option<&SignedApproval>,
    ) -> CliResult<Vec<u8>> {
        let binding = Binding::new(BUCKET, mail.key).map_err(Failure::from)?;
        let opened = self.rt.block_on(async {
            match approval {
                Some(a) => self.us_sdk.open_with_approval(&binding, stored, a).await,
                None => self.us_sdk.open(&binding, stored).await,
            }
        })?;
        Ok(opened.plaintext)
    }

    fn deliver(&self) -> CliResult {
        self.ui.section(
            2,
            "Mail is delivered through the gateways (S3 PutObject, SigV4)",
        );
        for mail in ALL {
            let what = format!("gateway {} PUT {BUCKET}/{}", mail.via, mail.key);
            self.expect(
                &format!("{what} to succeed"),
                self.rt
                    .block_on(self.client(mail.via).put(mail.key, mail.text.as_bytes())),
            )?;
            let path = self.stored_file(mail);
            let stored = std::fs::read(&path).map_err(|e| crate::failure::io_error(&path, &e))?;
            let header = Header::parse(&stored).map_err(|e| {
                Failure::failed(format!("{}: not a sealed object: {e}", path.display()))
            })?;
            let region = header.context().region().as_str().to_owned();
            let custodians: Vec<String> = header
                .stanzas()
                .iter()
                .map(|s| format!("{}/{}", s.recipient.region, s.recipient.custodian))
                .collect();
            self.expect_that(
                region == mail.home && header.context().mailbox() == mail.mailbox,
                &format!(
                    "{} sealed for mailbox {} in region {}",
                    mail.key, mail.mailbox, mail.home
                ),
                || format!("mailbox {} in region {region}", header.context().mailbox()),
            )?;
            self.ui.ok(&format!(
                "{what}  ({} bytes → {} stored, sealed to {})",
                mail.text.len(),
                thousands(stored.len() as u64),
                custodians.join(", ")
            ));
            if mail.home != mail.via {
                self.ui.detail(&format!(
                    "mail for an Irish mailbox, delivered by the US side: the {} gateway sealed it \
                     to the Irish custodian with its public key alone",
                    mail.via
                ));
            }
        }
        Ok(())
    }

    fn read_own_region(&self) -> CliResult {
        self.ui
            .section(3, "Each region reads its own mailboxes (S3 GetObject)");
        for (region, mail, note) in [
            (
                "ie",
                &AOIFE_1,
                "in region: the Irish custodian released the key",
            ),
            (
                "ie",
                &AOIFE_2,
                "delivered through the US gateway, read in Ireland",
            ),
            ("us", &JANE_1, "a US mailbox reads normally from the US"),
        ] {
            let what = format!("gateway {region} GET {BUCKET}/{}", mail.key);
            let body = self.expect(&format!("{what} to succeed"), self.get(region, mail))?;
            self.expect_same(mail, &body, &what)?;
            self.ui.ok(&format!(
                "{what} → {} bytes, identical ({note})",
                body.len()
            ));
        }
        let what = format!("gateway us GET {BUCKET}/{}", AOIFE_2.key);
        let refusal = self.expect_refusal(
            &format!("{what} to be refused (approval_required)"),
            "approval_required",
            self.get("us", &AOIFE_2),
        )?;
        self.ui.ok(&format!(
            "{what} → refused: the US side wrote this message, and cannot read it back"
        ));
        self.ui.quote(&refusal);
        Ok(())
    }

    fn store_holds_ciphertext(&self) -> CliResult {
        self.ui.section(4, "The store holds ciphertext only");
        let path = self.stored_file(&AOIFE_1);
        let stored = std::fs::read(&path).map_err(|e| crate::failure::io_error(&path, &e))?;
        self.ui.say(&format!(
            "{} ({} bytes of mail, {} stored), its first 64 bytes:",
            path.strip_prefix(&self.world.store.root).map_or_else(
                |_| path.display().to_string(),
                |p| format!("store/{}", p.display())
            ),
            AOIFE_1.text.len(),
            thousands(stored.len() as u64)
        ));
        for line in hexdump(stored.get(..64).unwrap_or(&stored)) {
            self.ui.detail(&line);
        }
        self.ui.say(
            "(a fixed-size header: format, object id, key commitment, the {mailbox, region} \
             context and one HPKE stanza per custodian; then AES-256-GCM chunks)",
        );
        let files = files_under(&self.world.store.root);
        let mut bytes = 0u64;
        let mut found = Vec::new();
        for file in &files {
            let content = std::fs::read(file).map_err(|e| crate::failure::io_error(file, &e))?;
            bytes += content.len() as u64;
            for mail in ALL {
                for needle in mail.needles() {
                    if contains(&content, needle) {
                        found.push(format!(
                            "{:?} in {}",
                            String::from_utf8_lossy(needle),
                            file.display()
                        ));
                    }
                }
            }
        }
        let needles: usize = ALL.iter().map(|m| m.needles().len()).sum();
        self.expect_that(
            found.is_empty() && !files.is_empty(),
            "no plaintext anywhere in the store's files",
            || {
                if files.is_empty() {
                    "no files in the store".to_owned()
                } else {
                    found.join("\n")
                }
            },
        )?;
        self.ui.ok(&format!(
            "scanned all {} files ({} bytes) under the store for the {} messages and each of \
             their lines ({needles} strings): no plaintext found",
            files.len(),
            thousands(bytes),
            ALL.len()
        ));
        Ok(())
    }

    fn court_order(&self) -> CliResult {
        self.ui.section(
            5,
            "A US court orders the provider to produce aoife@example.ie's mail",
        );
        self.ui.say(
            "The provider runs the US gateway and owns the store. Its mailbox lives in Ireland.",
        );
        let what = format!("gateway us GET {BUCKET}/{}", AOIFE_1.key);
        let refusal = self.expect_refusal(
            &format!("{what} to be refused (approval_required)"),
            "approval_required",
            self.get("us", &AOIFE_1),
        )?;
        self.ui
            .ok(&format!("{what} → refused by the Irish custodian:"));
        self.ui.quote(&refusal);
        let stored = self.expect("the ciphertext from the store", self.fetch_raw(&AOIFE_1))?;
        self.ui.ok(&format!(
            "the provider copies the ciphertext straight from its store ({} bytes)",
            thousands(stored.len() as u64)
        ));
        let refusal = self.expect_refusal(
            "opening the copy without an approval to be refused (approval_required)",
            "approval_required",
            self.open_as_us(&AOIFE_1, &stored, None),
        )?;
        self.ui
            .ok("opening that copy with the SDK (as gateway-us, no approval) → refused:");
        self.ui.quote(&refusal);
        Ok(())
    }

    fn treaty_channel(&self) -> CliResult<SignedApproval> {
        self.ui.section(
            6,
            "The treaty channel: Irish approvers sign a lawful-access approval (2 of 3)",
        );
        let ie = self.world.region("ie")?;
        let us = self.world.region("us")?;
        let caller_cert = self.world.index.path(&us.gateway_cert);
        let key_hash = hex::encode(crate::approve::cert_key_hash(&caller_cert)?);
        let start = now();
        let approval = Approval {
            region: ie.name.clone(),
            custodian: ie.custodian.clone(),
            caller_key_hash: key_hash.clone(),
            request_id: REQUEST_ID.into(),
            purpose: PURPOSE.into(),
            not_before: start,
            not_after: start + 24 * 3600,
            action: Action::LawfulAccess {
                mailboxes: vec![AOIFE_1.mailbox.into()],
                max_uses_per_mailbox: 2,
            },
        };
        let id = self.expect(
            "an approval request",
            crate::approve::write_request(approval, &self.approval_file, false),
        )?;
        self.ui.ok(&format!(
            "request {REQUEST_ID} written (`custodia approve new`): approval {}…",
            id.get(..16).unwrap_or(&id)
        ));
        self.ui.detail(&format!(
            "mailbox {} only, 2 uses, valid 24 h, for the holder of the gateway-us certificate \
             (key hash {}…)",
            AOIFE_1.mailbox,
            key_hash.get(..16).unwrap_or(&key_hash)
        ));
        let approvers = &ie.approvers;
        let (Some(first), Some(second)) = (approvers.first(), approvers.get(1)) else {
            return Err(Failure::failed("region ie has fewer than 2 approvers"));
        };
        let sign = |who: &crate::keys::index::ApproverEntry| {
            crate::approve::sign_file(
                &self.approval_file,
                &self.world.index.path(&who.key),
                Some(&who.name),
                None,
            )
        };
        let signed = self.expect(&format!("{} to sign", first.name), sign(first))?;
        self.ui.ok(&format!(
            "{} signed (`custodia approve sign`): {} signature",
            signed.name, signed.signatures
        ));
        let stored = self.fetch_raw(&AOIFE_1)?;
        let one = crate::approve::load(&self.approval_file)?;
        let refusal = self.expect_refusal(
            "one signature of 2 to be refused (approval_insufficient_signatures)",
            "approval_insufficient_signatures",
            self.open_as_us(&AOIFE_1, &stored, Some(&one)),
        )?;
        self.ui
            .ok("with one signature the Irish custodian still refuses:");
        self.ui.quote(&refusal);
        let signed = self.expect(&format!("{} to sign", second.name), sign(second))?;
        self.ui.ok(&format!(
            "{} signed: {} signatures",
            signed.name, signed.signatures
        ));
        let shown = self.ui.quoted(
            &format!(
                "custodia approve show {} --keys keys --check",
                file_name(&self.approval_file)
            ),
            || {
                crate::approve::show::show(&crate::approve::show::ShowArgs::with_keys(
                    self.approval_file.clone(),
                    self.world.keys.clone(),
                    true,
                ))
            },
        );
        self.expect(
            "the approval to be accepted now (approve show --check)",
            shown,
        )?;
        self.ui.ok(&format!(
            "approval reached: {} of {} Irish approvers signed (`custodia approve show --check`)",
            signed.signatures,
            approvers.len()
        ));
        crate::approve::load(&self.approval_file)
    }

    fn lawful_read(&self, approval: &SignedApproval) -> CliResult {
        self.ui.section(7, "The lawful-access read");
        for mail in [&AOIFE_1, &AOIFE_2] {
            let stored = self.expect("the ciphertext from the store", self.fetch_raw(mail))?;
            let what = format!("opening {} with the approval", mail.key);
            let body = self.expect(
                &format!("{what} to succeed"),
                self.open_as_us(mail, &stored, Some(approval)),
            )?;
            self.expect_same(mail, &body, &what)?;
            self.ui.ok(&format!(
                "lawful read ok: {} ({} bytes, identical), released by the Irish custodian for \
                 this approval",
                mail.key,
                body.len()
            ));
            self.ui.detail(&format!("Subject: {}", mail.subject()));
        }
        let stored = self.expect("the ciphertext from the store", self.fetch_raw(&BRIAN_1))?;
        let refusal = self.expect_refusal(
            "the approval not to open another mailbox (approval_wrong_mailbox)",
            "approval_wrong_mailbox",
            self.open_as_us(&BRIAN_1, &stored, Some(approval)),
        )?;
        self.ui.ok(&format!(
            "the same approval does not open {}: refused",
            BRIAN_1.key
        ));
        self.ui.quote(&refusal);
        let what = format!("gateway us GET {BUCKET}/{}", BRIAN_1.key);
        let refusal = self.expect_refusal(
            &format!("{what} to be refused (approval_required)"),
            "approval_required",
            self.get("us", &BRIAN_1),
        )?;
        self.ui
            .ok(&format!("{what} → another Irish mailbox, still refused:"));
        self.ui.quote(&refusal);
        Ok(())
    }

    fn records(&self, approval: &SignedApproval) -> CliResult {
        self.ui.section(
            8,
            "What the Irish custodian recorded: its audit log and transparency report",
        );
        let target = Target::from_keys(self.world.keys.clone(), "ie");
        let verified = self
            .ui
            .quoted("custodia audit verify --keys keys --region ie", || {
                crate::audit::verify::verify(&crate::audit::verify::VerifyArgs::online(
                    target.clone(),
                ))
            });
        self.expect("the Irish audit log to verify", verified)?;
        self.ui.ok(
            "audit log verified (`custodia audit verify`): signed checkpoint, Merkle tree over \
             every entry, restricted details",
        );
        let (entries, details) = self.fetch_log(&target)?;
        let id = approval.approval.id()?.to_string();
        self.ui.quoted(
            "custodia audit show --keys keys --region ie --details",
            || {
                log_table(&entries, &details);
            },
        );
        let joined: Vec<(&PublicEntry, Option<&str>)> = entries
            .iter()
            .map(|e| {
                let mailbox = details
                    .iter()
                    .find(|d| d.seq == e.seq)
                    .and_then(|d| d.mailbox.as_deref());
                (e, mailbox)
            })
            .collect();
        let out_of_region = |e: &PublicEntry| e.caller_region != "ie";
        let releases: Vec<&(&PublicEntry, Option<&str>)> = joined
            .iter()
            .filter(|(e, _)| out_of_region(e) && e.outcome == Outcome::Allow)
            .collect();
        self.expect_that(
            releases.len() == 2
                && releases.iter().all(|(e, m)| {
                    e.approval_id.as_deref() == Some(id.as_str()) && *m == Some(AOIFE_1.mailbox)
                }),
            "exactly 2 releases to the US side, both under the approval, both for aoife@example.ie",
            || format!("{} releases to callers outside Ireland", releases.len()),
        )?;
        let denied = |reason: &str| {
            joined
                .iter()
                .filter(|(e, _)| {
                    out_of_region(e) && e.outcome == Outcome::Deny && e.reason == reason
                })
                .count()
        };
        let (required, insufficient, wrong) = (
            denied("approval_required"),
            denied("approval_insufficient_signatures"),
            denied("approval_wrong_mailbox"),
        );
        self.expect_that(
            required >= 4 && insufficient == 1 && wrong == 1,
            "the US side's refusals logged (4 approval_required, 1 approval_insufficient_signatures, \
             1 approval_wrong_mailbox)",
            || format!("{required}, {insufficient} and {wrong}"),
        )?;
        self.ui.ok(&format!(
            "every refusal and release is on the log: {required} approval_required, \
             {insufficient} approval_insufficient_signatures, {wrong} approval_wrong_mailbox, \
             {} releases under approval {}…",
            releases.len(),
            id.get(..12).unwrap_or(&id)
        ));
        let reported = self
            .ui
            .quoted("custodia report --keys keys --region ie", || {
                crate::report::report(&crate::report::ReportArgs::current(target))
            });
        self.expect("the transparency report to verify", reported)?;
        self.ui.ok(
            "transparency report printed (`custodia report`): recomputed from the verified log, \
             identical to the one the custodian serves",
        );
        Ok(())
    }

    /// The Irish log's entries and restricted details, fetched as its auditor.
    fn fetch_log(&self, target: &Target) -> CliResult<(Vec<PublicEntry>, Vec<DetailEntry>)> {
        let resolved = target.resolve()?;
        let server = resolved.describe();
        let client = resolved.client()?;
        let (records, details) = self.rt.block_on(async {
            let note = client
                .checkpoint()
                .await
                .map_err(|e| Failure::from(e).context(&server))?;
            let size = note_size(&note)?;
            let records = fetch_records(&client, 0, size, &server).await?;
            let details = fetch_details(&client, 0, size, &server)
                .await?
                .ok_or_else(|| Failure::failed(format!("{server}: no auditor role")))?
                .0;
            Ok::<_, Failure>((records, details))
        })?;
        let entries = records
            .iter()
            .map(|r| PublicEntry::from_record(r).map_err(|e| Failure::verification(e.to_string())))
            .collect::<CliResult<Vec<_>>>()?;
        Ok((entries, details))
    }
}

/// The log as a short table: refusals and approved releases side by side.
fn log_table(entries: &[PublicEntry], details: &[DetailEntry]) {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let mailbox = details
                .iter()
                .find(|d| d.seq == e.seq)
                .and_then(|d| d.mailbox.clone())
                .unwrap_or_default();
            vec![
                e.seq.to_string(),
                utc(e.time).get(11..19).unwrap_or_default().to_owned(),
                e.operation.clone(),
                format!("{}/{}", e.caller_region, e.caller_name),
                match e.outcome {
                    Outcome::Allow => "allow".into(),
                    Outcome::Deny => "deny".into(),
                },
                e.reason.clone(),
                e.approval_id
                    .as_deref()
                    .map(|a| a.get(..12).unwrap_or(a).to_owned())
                    .unwrap_or_default(),
                mailbox,
            ]
        })
        .collect();
    crate::table::print(
        &[
            "seq",
            "time",
            "operation",
            "caller",
            "outcome",
            "reason",
            "approval",
            "mailbox (auditor's view)",
        ],
        &rows,
    );
}

/// The last component of `path`, for display.
fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// Every regular file under `dir`.
fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

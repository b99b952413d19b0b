//! The `custodia` operator, approver and auditor commands, run as processes: `keys init` makes
//! a two-region setup whose custodians really serve (only with `--dev`); an approval written
//! with `approve new`, signed twice and shown as 2-of-3 opens an Irish object for the US
//! gateway; `audit verify` passes on a real log and fails on a tampered one; `report` prints
//! and writes JSON and SVG; `seal`/`open` stream files and pipes. Each command also gets bad
//! input, with the exit statuses of docs/CLI.md.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines,
    missing_docs,
    reason = "tests"
)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use custodia_tests::custodia_bin;
use custodia_tests::deployment::set_line;

/// Runs `custodia args…` in `dir` and returns its output.
fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(custodia_bin())
        .args(args)
        .current_dir(dir)
        .env("CUSTODIA_LOG", "warn")
        .output()
        .unwrap()
}

/// As [`run`], with `input` on stdin.
fn run_stdin(dir: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(custodia_bin())
        .args(args)
        .current_dir(dir)
        .env("CUSTODIA_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// The stdout of a successful command.
fn expect_bytes(out: &Output) -> Vec<u8> {
    assert_eq!(out.status.code(), Some(0), "{}", text(out));
    out.stdout.clone()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts the exit status and returns stdout + stderr.
#[track_caller]
fn expect(out: &Output, code: i32) -> String {
    let t = text(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "unexpected exit status:\n{t}"
    );
    t
}

/// `keys init --regions ie,us --out keys` in a fresh temporary directory.
fn keys() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        tmp.path(),
        &["keys", "init", "--regions", "ie,us", "--out", "keys"],
    );
    expect(&out, 0);
    tmp
}

/// A custodian served from a keys directory, on a free port (its config and the index are
/// edited to the port it got); killed when dropped.
struct Served {
    child: Child,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `custodian serve --dev` for `region` (0 = ie, 1 = us) of `keys`.
fn serve(keys: &Path, region: &str, nth: usize) -> Served {
    let config = keys.join(region).join("custodian.toml");
    set_line(&config, "listen = ", "listen = \"127.0.0.1:0\"", 0);
    let mut child = Command::new(custodia_bin())
        .args(["custodian", "serve", "--dev", "--config"])
        .arg(&config)
        .env("CUSTODIA_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    let served = Served { child };
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("custodian did not start");
    set_line(
        &keys.join("regions.toml"),
        "address = ",
        &format!("address = \"{addr}\""),
        nth,
    );
    served
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn keys_init_writes_a_two_region_setup_that_serves_only_with_dev() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = run(
        dir,
        &[
            "keys",
            "init",
            "--regions",
            "ie,us",
            "--out",
            "k",
            "--base-port",
            "17101",
        ],
    );
    let t = expect(&out, 0);
    assert!(t.contains("INSECURE"), "{t}");
    let k = dir.join("k");
    let index = std::fs::read_to_string(k.join("regions.toml")).unwrap();
    assert!(index.contains("address = \"127.0.0.1:17101\""), "{index}");
    assert!(index.contains("address = \"127.0.0.1:17102\""), "{index}");
    assert!(index.contains("custodian = \"ie-custodian\""), "{index}");
    for r in ["ie", "us"] {
        for f in [
            "ca.pem",
            "ca.crl.pem",
            "custodian.toml",
            "custodian.pem",
            "data/keystore.json",
        ] {
            assert!(k.join(r).join(f).is_file(), "{r}/{f}");
        }
        let config = std::fs::read_to_string(k.join(r).join("custodian.toml")).unwrap();
        // Every region's CA is a client CA, so cross-region callers are identified.
        assert!(config.contains("region = \"ie\"\ncert = "), "{config}");
        assert!(config.contains("region = \"us\"\ncert = "), "{config}");
        assert!(config.contains("threshold = 2"), "{config}");
        #[cfg(unix)]
        for private in [
            "ca.key".to_owned(),
            "custodian.key".into(),
            "kek.hex".into(),
            format!("clients/gateway-{r}.key"),
            format!("clients/admin-{r}.key"),
            format!("clients/auditor-{r}.key"),
            format!("approvers/{r}-approver-1.key"),
            format!("approvers/{r}-approver-3.key"),
        ] {
            assert_eq!(mode(&k.join(r).join(&private)), 0o600, "{r}/{private}");
        }
    }
    assert!(k.join("README.md").is_file());

    // The keystore is marked insecure: refused without --dev, served with it.
    let out = run(
        dir,
        &["custodian", "serve", "--config", "k/ie/custodian.toml"],
    );
    let t = expect(&out, 1);
    assert!(t.contains("start with --dev"), "{t}");
    let _ie = serve(&k, "ie", 0);
    let out = run(dir, &["audit", "verify", "--keys", "k", "--region", "ie"]);
    let t = expect(&out, 0);
    // The policy it started under is the log's first entry.
    assert!(t.contains("verified (1 entries)"), "{t}");
    assert!(t.contains("first policy at entry 0"), "{t}");
    assert!(t.contains("approvals: 2 of 3"), "{t}");

    // Bad input.
    let again = run(dir, &["keys", "init", "--regions", "ie,us", "--out", "k"]);
    let t = expect(&again, 1);
    assert!(t.contains("--force"), "{t}");
    std::fs::create_dir_all(dir.join("precious")).unwrap();
    std::fs::write(dir.join("precious/thesis.tex"), "x").unwrap();
    let out = run(
        dir,
        &[
            "keys",
            "init",
            "--regions",
            "ie",
            "--out",
            "precious",
            "--force",
        ],
    );
    let t = expect(&out, 1);
    assert!(t.contains("refusing to delete"), "{t}");
    assert!(dir.join("precious/thesis.tex").is_file());
    let out = run(dir, &["keys", "init", "--regions", "IE", "--out", "x"]);
    let t = expect(&out, 2);
    assert!(t.contains("--regions"), "{t}");
    let out = run(dir, &["keys", "init", "--regions", "ie,ie", "--out", "x"]);
    expect(&out, 2);
}

#[test]
fn keys_init_force_replaces_a_keys_directory() {
    let tmp = keys();
    let before = std::fs::read_to_string(tmp.path().join("keys/regions.toml")).unwrap();
    let out = run(
        tmp.path(),
        &[
            "keys",
            "init",
            "--regions",
            "ie,us",
            "--out",
            "keys",
            "--force",
        ],
    );
    expect(&out, 0);
    let after = std::fs::read_to_string(tmp.path().join("keys/regions.toml")).unwrap();
    assert_ne!(before, after, "fresh keys, fresh manifest keys");
}

#[test]
fn an_approval_signed_two_of_three_opens_an_irish_object_for_the_us_gateway() {
    let tmp = keys();
    let dir = tmp.path();
    let _ie = serve(&dir.join("keys"), "ie", 0);
    let body = b"Subject: Dublin mail\r\n\r\nstays in Ireland".repeat(3000);
    std::fs::write(dir.join("mail.eml"), &body).unwrap();
    let out = run(
        dir,
        &[
            "seal",
            "--keys",
            "keys",
            "--mailbox",
            "aoife@example.ie",
            "--region",
            "ie",
            "--object",
            "aoife/1.eml",
            "--in",
            "mail.eml",
            "--out",
            "mail.sealed",
        ],
    );
    expect(&out, 0);
    let sealed = std::fs::read(dir.join("mail.sealed")).unwrap();
    assert!(sealed.len() > body.len());

    // In region: opens (stdin to stdout).
    let out = run_stdin(
        dir,
        &["open", "--keys", "keys", "--object", "aoife/1.eml"],
        &sealed,
    );
    expect(&out, 0);
    assert_eq!(out.stdout, body);
    // To a file: plaintext readable by its owner only (0600), also over a stale partial file.
    std::fs::write(dir.join(".plain.eml.partial"), b"stale").unwrap();
    let out = run(
        dir,
        &[
            "open",
            "--keys",
            "keys",
            "--object",
            "aoife/1.eml",
            "--in",
            "mail.sealed",
            "--out",
            "plain.eml",
        ],
    );
    expect(&out, 0);
    assert_eq!(std::fs::read(dir.join("plain.eml")).unwrap(), body);
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("plain.eml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    // The US gateway without an approval: denied (exit 4), no output file.
    let us_open = |extra: &[&str]| {
        let mut args = vec![
            "open",
            "--keys",
            "keys",
            "--caller",
            "us",
            "--object",
            "aoife/1.eml",
            "--in",
            "mail.sealed",
            "--out",
            "us.eml",
        ];
        args.extend_from_slice(extra);
        run(dir, &args)
    };
    let t = expect(&us_open(&[]), 4);
    assert!(t.contains("approval_required"), "{t}");
    assert!(!dir.join("us.eml").exists());

    // approve new → sign → sign → show says 2-of-3 reached.
    let out = run(
        dir,
        &[
            "approve",
            "new",
            "--keys",
            "keys",
            "--region",
            "ie",
            "--caller-cert",
            "keys/us/clients/gateway-us.pem",
            "--request-id",
            "MLAT-2026-0042",
            "--purpose",
            "Court order 17/2026, treaty channel",
            "--mailbox",
            "aoife@example.ie",
            "--mailbox",
            "brian@example.ie",
            "--max-uses",
            "2",
            "--valid-for",
            "1h",
            "--out",
            "mlat.json",
        ],
    );
    let t = expect(&out, 0);
    assert!(t.contains("wrote approval request"), "{t}");
    // The review's attack: a "mailbox" that moves the cursor back and repaints the mailboxes
    // line, hiding the others from whoever reviews the request. Refused where it enters.
    let spoof = run(
        dir,
        &[
            "approve",
            "new",
            "--keys",
            "keys",
            "--region",
            "ie",
            "--caller-cert",
            "keys/us/clients/gateway-us.pem",
            "--request-id",
            "M-43",
            "--purpose",
            "x",
            "--mailbox",
            "aoife@example.ie",
            "--mailbox",
            "brian@example.ie",
            "--mailbox",
            "\r\u{1b}[2K  mailboxes         aoife@example.ie",
            "--out",
            "spoof.json",
        ],
    );
    let t = expect(&spoof, 2);
    assert!(t.contains("--mailbox \\u{d}\\u{1b}[2K"), "{t}");
    assert!(
        !t.contains('\u{1b}'),
        "an escape sequence reached the terminal: {t:?}"
    );
    assert!(!dir.join("spoof.json").exists());
    // A hand-made document with that mailbox (or a purpose with a line break) is refused by
    // show and sign as it is by the custodian.
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("mlat.json")).unwrap()).unwrap();
    for (field, value) in [
        (
            "mailboxes",
            serde_json::json!(["aoife@example.ie", "\r\u{1b}[2K  mailboxes  x@example.ie"]),
        ),
        (
            "purpose",
            serde_json::json!("Court order\n  mailboxes         aoife@example.ie"),
        ),
    ] {
        let mut d = doc.clone();
        if field == "mailboxes" {
            d["approval"]["action"]["mailboxes"] = value;
        } else {
            d["approval"][field] = value;
        }
        std::fs::write(dir.join("hand.json"), d.to_string()).unwrap();
        for cmd in [
            &["approve", "show", "hand.json", "--keys", "keys"][..],
            &[
                "approve",
                "sign",
                "--yes",
                "--key",
                "keys/ie/approvers/ie-approver-1.key",
                "hand.json",
            ],
        ] {
            let t = expect(&run(dir, cmd), 1);
            assert!(t.contains("approval:"), "{cmd:?}: {t}");
            assert!(
                !t.contains('\u{1b}') && !t.contains("\n  mailboxes"),
                "{cmd:?}: {t:?}"
            );
        }
    }
    // Signing shows what is signed and asks; without a terminal it needs --yes.
    let t = expect(
        &run(
            dir,
            &[
                "approve",
                "sign",
                "--key",
                "keys/ie/approvers/ie-approver-2.key",
                "mlat.json",
            ],
        ),
        2,
    );
    assert!(
        t.contains("You are about to sign:") && t.contains("pass --yes"),
        "{t}"
    );
    assert!(t.contains("    brian@example.ie"), "{t}");
    let show = |extra: &[&str]| {
        let mut args = vec!["approve", "show", "mlat.json", "--keys", "keys"];
        args.extend_from_slice(extra);
        run(dir, &args)
    };
    let t = expect(&show(&["--check"]), 3);
    assert!(t.contains("0 signed: NOT reached"), "{t}");
    let sign = |key: &str| {
        run(
            dir,
            &[
                "approve",
                "sign",
                "--yes",
                "--key",
                &format!("keys/ie/approvers/{key}.key"),
                "mlat.json",
            ],
        )
    };
    expect(&sign("ie-approver-1"), 0);
    let t = expect(&sign("ie-approver-1"), 1);
    assert!(t.contains("already signed"), "{t}");
    let t = expect(&show(&["--check"]), 3);
    assert!(t.contains("threshold 2-of-3"), "{t}");
    assert!(t.contains("1 signed: NOT reached"), "{t}");
    // A one-signature approval is refused by the custodian too.
    let t = expect(&us_open(&["--approval", "mlat.json"]), 4);
    assert!(t.contains("approval_insufficient_signatures"), "{t}");
    expect(&sign("ie-approver-3"), 0);
    let t = expect(&show(&["--check"]), 0);
    assert!(t.contains("threshold 2-of-3"), "{t}");
    assert!(t.contains("2 signed: reached"), "{t}");
    assert!(t.contains("MLAT-2026-0042"), "{t}");
    assert!(
        t.contains(
            "mailboxes         2 (one per line):\n    aoife@example.ie\n    brian@example.ie\n"
        ),
        "{t}"
    );
    assert!(t.contains("verdict now: accepted"), "{t}");
    // A reader that went away (`| head`) ends the output quietly: no panic.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let closed = Command::new(custodia_bin())
        .args(["approve", "show", "mlat.json", "--keys", "keys"])
        .current_dir(dir)
        .stdout(writer)
        .output()
        .unwrap();
    let t = expect(&closed, 0);
    assert!(!t.contains("panicked"), "{t}");
    // The custodian config gives the same answer as the index.
    let out = run(
        dir,
        &[
            "approve",
            "show",
            "mlat.json",
            "--config",
            "keys/ie/custodian.toml",
            "--check",
        ],
    );
    expect(&out, 0);

    // The custodian accepts it for the out-of-region open.
    let t = expect(&us_open(&["--approval", "mlat.json"]), 0);
    assert!(t.contains("with the approval"), "{t}");
    assert_eq!(std::fs::read(dir.join("us.eml")).unwrap(), body);
    std::fs::remove_file(dir.join("us.eml")).unwrap();

    // A US approver's signature does not count; a changed field invalidates the document.
    expect(&sign("../../us/approvers/us-approver-1"), 0);
    let t = expect(&show(&[]), 0);
    assert!(t.contains("not a configured approver"), "{t}");
    let doc = std::fs::read_to_string(dir.join("mlat.json")).unwrap();
    std::fs::write(
        dir.join("forged.json"),
        doc.replace(
            "\"max_uses_per_mailbox\": 2",
            "\"max_uses_per_mailbox\": 200",
        ),
    )
    .unwrap();
    let t = expect(
        &run(
            dir,
            &[
                "approve",
                "show",
                "forged.json",
                "--keys",
                "keys",
                "--check",
            ],
        ),
        3,
    );
    assert!(t.contains("INVALID signature"), "{t}");
    assert!(t.contains("approval_invalid"), "{t}");
    let t = expect(&us_open(&["--approval", "forged.json"]), 4);
    assert!(t.contains("approval_invalid"), "{t}");

    // The log shows the decisions, with the approval's id on the approved one.
    let t = expect(
        &run(
            dir,
            &[
                "audit",
                "show",
                "--keys",
                "keys",
                "--region",
                "ie",
                "--details",
            ],
        ),
        0,
    );
    assert!(t.contains("approval_required"), "{t}");
    assert!(t.contains("us/gateway-us  allow"), "{t}");
    assert!(t.contains("aoife@example.ie"), "{t}");

    // Bad input.
    let out = run(
        dir,
        &[
            "approve",
            "new",
            "--keys",
            "keys",
            "--region",
            "ie",
            "--caller-cert",
            "keys/us/clients/gateway-us.pem",
            "--request-id",
            "r",
            "--purpose",
            "p",
            "--out",
            "none.json",
        ],
    );
    let t = expect(&out, 2);
    assert!(t.contains("--mailbox"), "{t}");
    let out = run(
        dir,
        &[
            "approve",
            "new",
            "--region",
            "ie",
            "--custodian",
            "ie-custodian",
            "--caller-cert",
            "missing.pem",
            "--request-id",
            "r",
            "--purpose",
            "p",
            "--mailbox",
            "m@example.ie",
            "--out",
            "none.json",
        ],
    );
    let t = expect(&out, 1);
    assert!(t.contains("missing.pem"), "{t}");
    let t = expect(&run(dir, &["approve", "show", "nothing.json"]), 1);
    assert!(t.contains("nothing.json"), "{t}");
    std::fs::write(dir.join("garbage.json"), "{\"approval\": 1}").unwrap();
    let t = expect(
        &run(
            dir,
            &[
                "approve",
                "sign",
                "--yes",
                "--key",
                "keys/ie/approvers/ie-approver-2.key",
                "garbage.json",
            ],
        ),
        1,
    );
    assert!(t.contains("garbage.json: not an approval document"), "{t}");
    let t = expect(
        &run(
            dir,
            &[
                "approve",
                "sign",
                "--yes",
                "--key",
                "keys/ie/ca.pem",
                "mlat.json",
            ],
        ),
        1,
    );
    assert!(t.contains("keys/ie/ca.pem"), "{t}");
}

#[test]
fn audit_verify_passes_on_a_real_log_fails_on_a_tampered_one_and_report_prints() {
    let tmp = keys();
    let dir = tmp.path();
    let keys_dir = dir.join("keys");
    let mut ie = serve(&keys_dir, "ie", 0);
    for (i, mailbox) in ["aoife@example.ie", "brian@example.ie", "aoife@example.ie"]
        .iter()
        .enumerate()
    {
        let object = format!("o/{i}");
        let sealed = run_stdin(
            dir,
            &[
                "seal",
                "--keys",
                "keys",
                "--mailbox",
                mailbox,
                "--region",
                "ie",
                "--object",
                &object,
            ],
            b"hello",
        );
        expect(&sealed, 0);
        let opened = run_stdin(
            dir,
            &["open", "--keys", "keys", "--object", &object],
            &sealed.stdout,
        );
        expect(&opened, 0);
        assert_eq!(opened.stdout, b"hello");
    }
    let verify = |extra: &[&str]| {
        let mut args = vec!["audit", "verify", "--keys", "keys", "--region", "ie"];
        args.extend_from_slice(extra);
        run(dir, &args)
    };
    let t = expect(&verify(&["--save-checkpoint", "cp1.txt"]), 0);
    // The start's policy entry and three decisions.
    assert!(t.contains("verified (4 entries)"), "{t}");
    assert!(
        t.contains("every mailbox commitment, use tag and policy hash matches"),
        "{t}"
    );
    assert!(t.contains("first policy at entry 0"), "{t}");
    let t = expect(
        &run(dir, &["audit", "show", "--keys", "keys", "--region", "ie"]),
        0,
    );
    assert!(t.contains("in_region"), "{t}");
    assert!(t.contains("4 entries"), "{t}");
    assert!(t.contains("policy "), "{t}");
    assert!(
        !t.contains("aoife@example.ie"),
        "no mailbox ids without --details: {t}"
    );

    // The report, checked against the log, as a table, JSON and SVG.
    let t = expect(
        &run(
            dir,
            &[
                "report", "--keys", "keys", "--region", "ie", "--json", "r.json", "--svg", "r.svg",
            ],
        ),
        0,
    );
    assert!(
        t.contains("recomputed from its verified log: identical"),
        "{t}"
    );
    assert!(t.contains("unwrap"), "{t}");
    assert!(t.contains("1-9"), "{t}");
    assert!(t.contains("policy changes in the period: 1"), "{t}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("r.json")).unwrap()).unwrap();
    assert_eq!(json["log_size"], 4);
    assert_eq!(json["policy_changes"][0]["reason"], "start");
    let svg = std::fs::read_to_string(dir.join("r.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<rect") && svg.trim_end().ends_with("</svg>"));
    let t = expect(
        &run(
            dir,
            &[
                "report", "--keys", "keys", "--region", "ie", "--period", "2026-13",
            ],
        ),
        2,
    );
    assert!(t.contains("--period"), "{t}");

    // More decisions after the kept checkpoint; the log still extends it.
    let out = run_stdin(
        dir,
        &[
            "seal",
            "--keys",
            "keys",
            "--mailbox",
            "c@example.ie",
            "--region",
            "ie",
            "--object",
            "o/9",
        ],
        b"x",
    );
    let out = run_stdin(
        dir,
        &[
            "open", "--keys", "keys", "--caller", "us", "--object", "o/9",
        ],
        &out.stdout,
    );
    expect(&out, 4);
    // A planted denial: the US side sends an item whose context names a "mailbox" made of
    // terminal escapes (the header's mailbox bytes patched; the unwrap fails and is logged
    // with it). `audit show --details` shows it escaped: it cannot repaint another row.
    let sealed = run_stdin(
        dir,
        &[
            "seal",
            "--keys",
            "keys",
            "--mailbox",
            "c@example.ie",
            "--region",
            "ie",
            "--object",
            "o/10",
        ],
        b"x",
    );
    let mut planted = expect_bytes(&sealed);
    let at = planted
        .windows(12)
        .position(|w| w == b"c@example.ie")
        .unwrap();
    planted[at..at + 12].copy_from_slice(b"\r\x1b[2K\x1b[1Axyz");
    let out = run_stdin(
        dir,
        &[
            "open", "--keys", "keys", "--caller", "us", "--object", "o/10",
        ],
        &planted,
    );
    assert_ne!(out.status.code(), Some(0));
    let t = expect(
        &run(
            dir,
            &[
                "audit",
                "show",
                "--keys",
                "keys",
                "--region",
                "ie",
                "--details",
            ],
        ),
        0,
    );
    assert!(!t.contains('\u{1b}') && !t.contains('\r'), "{t:?}");
    assert!(t.contains("\\u{d}\\u{1b}[2K\\u{1b}[1Axyz"), "{t}");
    let t = expect(
        &verify(&["--checkpoint", "cp1.txt", "--save-checkpoint", "cp2.txt"]),
        0,
    );
    assert!(t.contains("the log extends cp1.txt"), "{t}");
    let t = expect(
        &verify(&[
            "--cert",
            "keys/ie/clients/gateway-ie.pem",
            "--cert-key",
            "keys/ie/clients/gateway-ie.key",
        ]),
        0,
    );
    assert!(t.contains("details not checked"), "{t}");
    drop(ie);

    // On disk, against both checkpoints: verifies.
    let on_disk = |extra: &[&str]| {
        let mut args = vec![
            "audit",
            "verify",
            "--keys",
            "keys",
            "--region",
            "ie",
            "--log-dir",
            "keys/ie/data",
        ];
        args.extend_from_slice(extra);
        run(dir, &args)
    };
    let t = expect(
        &on_disk(&["--checkpoint", "cp1.txt", "--checkpoint", "cp2.txt"]),
        0,
    );
    assert!(t.contains("cp2.txt extends cp1.txt"), "{t}");
    let t = expect(
        &run(
            dir,
            &[
                "report",
                "--keys",
                "keys",
                "--region",
                "ie",
                "--log-dir",
                "keys/ie",
                "--checkpoint",
                "cp2.txt",
            ],
        ),
        0,
    );
    assert!(t.contains("verified against cp2.txt"), "{t}");

    // Tamper: an in-region allow rewritten as a deny (still a canonical entry).
    let entries = keys_dir.join("ie/data/audit/entries.jsonl");
    let log = std::fs::read_to_string(&entries).unwrap();
    let tampered = log.replacen(
        "\"outcome\":\"allow\",\"reason\":\"in_region\"",
        "\"outcome\":\"deny\",\"reason\":\"rate_limited\"",
        1,
    );
    assert_ne!(log, tampered);
    std::fs::write(&entries, &tampered).unwrap();
    let t = expect(&on_disk(&["--checkpoint", "cp1.txt"]), 3);
    assert!(t.contains("entries were changed"), "{t}");
    let t = expect(
        &run(dir, &["audit", "show", "--log-dir", "keys/ie", "--details"]),
        0,
    );
    assert!(t.contains("rate_limited"), "{t}");

    // The custodian restarted over the tampered log signs a new tree: it does not extend
    // what the auditor kept.
    ie = serve(&keys_dir, "ie", 0);
    let t = expect(&verify(&[]), 0);
    assert!(t.contains("verified"), "{t}");
    let t = expect(&verify(&["--checkpoint", "cp2.txt"]), 3);
    assert!(t.contains("cp2.txt"), "{t}");
    drop(ie);

    // Truncated to its first two entries and served again: online, against the kept
    // checkpoint, the log does not verify (status 3, as offline), it is not a usage error.
    for file in ["entries.jsonl", "details.jsonl"] {
        let path = keys_dir.join("ie/data/audit").join(file);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let kept: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
            std::fs::write(&path, kept).unwrap();
        }
    }
    ie = serve(&keys_dir, "ie", 0);
    let t = expect(&verify(&["--checkpoint", "cp2.txt"]), 3);
    assert!(t.contains("entries were removed"), "{t}");
    drop(ie);

    // Bad input.
    let t = expect(&on_disk(&[]), 2);
    assert!(t.contains("--checkpoint"), "{t}");
    let t = expect(
        &run(
            dir,
            &[
                "audit",
                "verify",
                "--keys",
                "keys",
                "--region",
                "us",
                "--log-dir",
                "keys/ie/data",
                "--checkpoint",
                "cp1.txt",
            ],
        ),
        3,
    );
    assert!(t.contains("cp1.txt"), "{t}");
    let t = expect(
        &run(
            dir,
            &["audit", "verify", "--keys", "keys", "--region", "fr"],
        ),
        1,
    );
    assert!(t.contains("no region \"fr\""), "{t}");
    let t = expect(
        &run(dir, &["audit", "show", "--keys", "keys", "--region", "us"]),
        5,
    );
    assert!(t.contains("us/us-custodian"), "{t}");
    let t = expect(
        &run(dir, &["report", "--keys", "keys", "--region", "ie"]),
        5,
    );
    assert!(t.contains("ie/ie-custodian"), "{t}");
}

#[test]
fn seal_and_open_refuse_bad_input() {
    let tmp = keys();
    let dir = tmp.path();
    let _ie = serve(&dir.join("keys"), "ie", 0);
    // No residency rule: clap refuses (exit 2); a domain rule that does not cover it: 1.
    let out = run_stdin(
        dir,
        &[
            "seal",
            "--keys",
            "keys",
            "--mailbox",
            "a@example.ie",
            "--object",
            "o",
        ],
        b"x",
    );
    expect(&out, 2);
    let out = run_stdin(
        dir,
        &[
            "seal",
            "--keys",
            "keys",
            "--mailbox",
            "a@example.ie",
            "--domain",
            "example.fr=ie",
            "--object",
            "o",
        ],
        b"x",
    );
    let t = expect(&out, 1);
    assert!(t.contains("no residency rule"), "{t}");
    // A region the index does not have.
    let out = run_stdin(
        dir,
        &[
            "seal",
            "--keys",
            "keys",
            "--mailbox",
            "a@example.fr",
            "--region",
            "fr",
            "--object",
            "o",
        ],
        b"x",
    );
    expect(&out, 1);
    // Domain rules work; the object is bound to its name.
    let sealed = run_stdin(
        dir,
        &[
            "seal",
            "--keys",
            "keys",
            "--mailbox",
            "a@example.ie",
            "--domain",
            "example.ie=ie",
            "--object",
            "o/1",
        ],
        b"bound",
    );
    expect(&sealed, 0);
    std::fs::write(dir.join("o1.sealed"), &sealed.stdout).unwrap();
    let out = run(
        dir,
        &[
            "open",
            "--keys",
            "keys",
            "--object",
            "o/2",
            "--in",
            "o1.sealed",
            "--out",
            "o1.txt",
        ],
    );
    let t = expect(&out, 1);
    assert!(t.contains("header did not authenticate"), "{t}");
    assert!(!dir.join("o1.txt").exists());
    assert!(!dir.join(".o1.txt.partial").exists());
    // Truncated object: an error, and no output file.
    let cut = &sealed.stdout[..sealed.stdout.len() - 1];
    std::fs::write(dir.join("cut.sealed"), cut).unwrap();
    let out = run(
        dir,
        &[
            "open",
            "--keys",
            "keys",
            "--object",
            "o/1",
            "--in",
            "cut.sealed",
            "--out",
            "o1.txt",
        ],
    );
    expect(&out, 1);
    assert!(!dir.join("o1.txt").exists());
    // Not a sealed object at all.
    let out = run_stdin(
        dir,
        &["open", "--keys", "keys", "--object", "o/1"],
        b"plain text",
    );
    let t = expect(&out, 1);
    assert!(t.contains("input"), "{t}");
    // Missing input file and missing index.
    let t = expect(
        &run(
            dir,
            &["open", "--keys", "keys", "--object", "o", "--in", "nope"],
        ),
        1,
    );
    assert!(t.contains("nope"), "{t}");
    let t = expect(
        &run(
            dir,
            &[
                "open",
                "--keys",
                "nokeys",
                "--object",
                "o",
                "--in",
                "o1.sealed",
            ],
        ),
        1,
    );
    assert!(t.contains("nokeys"), "{t}");
    // The right name opens.
    let out = run(
        dir,
        &[
            "open",
            "--keys",
            "keys",
            "--object",
            "o/1",
            "--in",
            "o1.sealed",
            "--out",
            "o1.txt",
        ],
    );
    expect(&out, 0);
    assert_eq!(std::fs::read(dir.join("o1.txt")).unwrap(), b"bound");
}

#[test]
fn every_command_has_help_with_examples() {
    let dir = std::env::temp_dir();
    for cmd in [
        &["keys", "init"][..],
        &["approve", "new"],
        &["approve", "sign"],
        &["approve", "show"],
        &["audit", "verify"],
        &["audit", "show"],
        &["report"],
        &["seal"],
        &["open"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let t = expect(&run(&dir, &args), 0);
        assert!(t.contains("Examples:"), "{cmd:?}: {t}");
    }
}

/// Relative paths of every file under `dir`, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn keys_example_is_what_keys_init_writes() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../keys-example");
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        tmp.path(),
        &[
            "keys",
            "init",
            "--regions",
            "ie,us",
            "--out",
            "keys-example",
        ],
    );
    expect(&out, 0);
    let fresh = tmp.path().join("keys-example");
    // Everything keys init writes is committed (other tools may add files next to it, and a
    // custodian served from it adds runtime files its .gitignore lists).
    let committed = files(&example);
    for f in files(&fresh) {
        assert!(committed.contains(&f), "keys-example lacks {f}");
    }
    for f in ["README.md", ".gitignore"] {
        assert_eq!(
            std::fs::read_to_string(example.join(f)).unwrap(),
            std::fs::read_to_string(fresh.join(f)).unwrap(),
            "{f}"
        );
    }
    let readme = std::fs::read_to_string(example.join("README.md")).unwrap();
    assert!(readme.contains("INSECURE"));
    // Its configs are valid custodian configs.
    for r in ["ie", "us"] {
        custodia_custodian::config::Config::load(&example.join(r).join("custodian.toml")).unwrap();
    }
}

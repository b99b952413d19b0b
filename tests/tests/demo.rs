//! `custodia demo` as a user runs it: it must tell the whole story (refusal, approval reached,
//! lawful read, another mailbox still refused, audit log verified, transparency report), exit
//! 0, and leave nothing behind: no scratch directory, no server still listening. With
//! `--keep` the servers stay up for `aws` and `curl` until Ctrl-C (SIGINT), then go.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "tests"
)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use custodia_tests::custodia_bin;
use custodia_tests::gateway::curl;
use custodia_tests::s3::aws;

/// One demo at a time: each test checks afterwards that its servers' ports are closed, which
/// another demo starting meanwhile could reopen.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The scratch directory the demo announces in its second line.
fn scratch_dir(out: &str) -> PathBuf {
    let line = out
        .lines()
        .find(|l| l.contains("Everything runs on 127.0.0.1 from "))
        .unwrap_or_else(|| panic!("no scratch directory line in:\n{out}"));
    let rest = line.split(" from ").nth(1).unwrap();
    PathBuf::from(rest.split(" and is removed").next().unwrap().trim())
}

/// Every `127.0.0.1:PORT` the output names.
fn addresses(out: &str) -> Vec<SocketAddr> {
    let mut found = Vec::new();
    for word in out.split(|c: char| c.is_whitespace() || c == '/' || c == ',') {
        if let Some(port) = word.strip_prefix("127.0.0.1:")
            && let Ok(port) = port.trim_end_matches([')', '.', ':']).parse::<u16>()
        {
            found.push(SocketAddr::from(([127, 0, 0, 1], port)));
        }
    }
    found.sort();
    found.dedup();
    found
}

fn assert_all_stopped(out: &str) {
    let addrs = addresses(out);
    assert!(
        addrs.len() >= 7,
        "expected the servers' addresses in:\n{out}"
    );
    for addr in addrs {
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
            "{addr} still accepts connections after the demo ended"
        );
    }
}

#[test]
fn demo_tells_the_story_checks_every_step_and_cleans_up() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let started = Instant::now();
    let out = Command::new(custodia_bin())
        .arg("demo")
        .env_remove("NO_COLOR")
        .env("CUSTODIA_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "demo failed:\n{stdout}\nstderr:\n{stderr}"
    );
    for expected in [
        // Irish mail delivered by the US gateway, which cannot read it back.
        "gateway us PUT mail/aoife@example.ie/INBOX/0002.eml",
        "sealed to ie/ie-custodian",
        "the US side wrote this message, and cannot read it back",
        // A US mailbox reads normally in the US.
        "gateway us GET mail/jane@example.com/INBOX/0001.eml → 249 bytes, identical",
        // Ciphertext only in the store, shown as a hex dump.
        "00000000: 4355 5354 4f44 4941",
        "no plaintext found",
        // The US side's read refused by the Irish custodian.
        "403 AccessDenied: custodian ie/ie-custodian refused: approval_required",
        "custodian ie/ie-custodian denied the request: approval_required",
        // One signature is not enough; two of three are.
        "approval_insufficient_signatures",
        "threshold 2-of-3",
        "2 signed: reached",
        "approval reached: 2 of 3 Irish approvers signed",
        // The lawful read, for that mailbox only.
        "lawful read ok: aoife@example.ie/INBOX/0001.eml",
        "lawful read ok: aoife@example.ie/INBOX/0002.eml",
        "the same approval does not open brian@example.ie/INBOX/0001.eml",
        "approval_wrong_mailbox",
        "another Irish mailbox, still refused",
        // The records.
        "audit log of ie/ie-custodian verified",
        "every refusal and release is on the log",
        "transparency report of ie/ie-custodian",
        "recomputed from its verified log: identical",
        "Every step behaved as expected",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(!stdout.contains('✗'), "a step failed:\n{stdout}");
    assert!(!stdout.contains('\u{1b}'), "colour on a pipe:\n{stdout:?}");
    // Sections in order.
    let mut at = 0;
    for n in 1..=8 {
        let heading = format!("\n{n}. ");
        let pos = stdout[at..]
            .find(&heading)
            .unwrap_or_else(|| panic!("section {n} missing or out of order:\n{stdout}"));
        at += pos + heading.len();
    }
    // Nothing left behind.
    let dir = scratch_dir(&stdout);
    assert!(
        dir.starts_with(std::env::temp_dir()),
        "{} is not a temporary directory",
        dir.display()
    );
    assert!(!dir.exists(), "{} was not removed", dir.display());
    assert_all_stopped(&stdout);
    // "A few seconds" (debug build, loaded CI machine: generous).
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the demo took {:?}",
        started.elapsed()
    );
}

/// The value after `label` on a line of the `--keep` listing.
fn field(line: &str, label: &str) -> String {
    line.split(label)
        .nth(1)
        .unwrap_or_else(|| panic!("no {label:?} in {line:?}"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn demo_keep_serves_aws_and_curl_until_interrupted() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut child = Command::new(custodia_bin())
        .args(["demo", "--keep"])
        .env("CUSTODIA_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut out = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).unwrap();
        assert!(n > 0, "demo --keep ended early:\n{out}");
        out.push_str(&line);
        if line.contains("Press Ctrl-C") {
            break;
        }
    }
    assert!(out.contains("Every step behaved as expected"), "{out}");
    let dir = scratch_dir(&out);
    assert!(dir.is_dir(), "--keep removed {} too early", dir.display());

    let line = |prefix: &str| -> &str {
        out.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{out}"))
    };
    let ie_s3 = line("gateway ie: S3 ");
    let ie_ep: SocketAddr = field(ie_s3, "S3 http://").parse().unwrap();
    let ie_keys = (field(ie_s3, "access key "), field(ie_s3, "secret "));
    let us_s3 = line("gateway us: S3 ");
    let us_ep: SocketAddr = field(us_s3, "S3 http://").parse().unwrap();
    let us_keys = (field(us_s3, "access key "), field(us_s3, "secret "));
    // The HTTP line follows its gateway's S3 line.
    let ie_http_line = out
        .lines()
        .skip_while(|l| !l.contains("gateway ie: S3 "))
        .nth(1)
        .unwrap();
    let ie_http = field(ie_http_line, "HTTP http://");
    let token = field(ie_http_line, "bearer token ");

    // awscli through the Irish gateway: the four messages, in plaintext.
    let listed = aws(
        ie_ep,
        &["s3", "ls", "s3://mail/", "--recursive"],
        Some((ie_keys.0.as_str(), ie_keys.1.as_str())),
    );
    let listing = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "aws s3 ls: {listed:?}");
    for key in [
        "aoife@example.ie/INBOX/0001.eml",
        "aoife@example.ie/INBOX/0002.eml",
        "brian@example.ie/INBOX/0001.eml",
        "jane@example.com/INBOX/0001.eml",
    ] {
        assert!(listing.contains(key), "{key} not listed:\n{listing}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let got = tmp.path().join("got.eml");
    let read = aws(
        ie_ep,
        &[
            "s3api",
            "get-object",
            "--bucket",
            "mail",
            "--key",
            "aoife@example.ie/INBOX/0001.eml",
            got.to_str().unwrap(),
        ],
        Some((ie_keys.0.as_str(), ie_keys.1.as_str())),
    );
    assert!(read.status.success(), "aws get-object (ie): {read:?}");
    let text = std::fs::read_to_string(&got).unwrap();
    assert!(text.contains("Subject: Board minutes, Thursday"), "{text}");
    // awscli through the US gateway: refused, with the custodian's reason.
    let refused = aws(
        us_ep,
        &[
            "s3api",
            "get-object",
            "--bucket",
            "mail",
            "--key",
            "aoife@example.ie/INBOX/0001.eml",
            tmp.path().join("no.eml").to_str().unwrap(),
        ],
        Some((us_keys.0.as_str(), us_keys.1.as_str())),
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && err.contains("AccessDenied")
            && err.contains("approval_required"),
        "the US gateway read Irish mail: {refused:?}"
    );
    // curl on the Irish HTTP front, with the printed bearer token.
    let c = curl(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("http://{ie_http}/mail/aoife@example.ie/INBOX/0002.eml"),
    ]);
    assert_eq!(c.status, 200, "{c:?}");
    assert!(
        String::from_utf8_lossy(&c.body).contains("Subject: Re: shipping schedule for Q1"),
        "{c:?}"
    );

    // Ctrl-C: everything stops and goes.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "demo --keep after SIGINT:\n{rest}");
    assert!(rest.contains("Servers and store stopped"), "{rest}");
    assert!(!dir.exists(), "{} was not removed", dir.display());
    assert_all_stopped(&out);
}

//! The SDK's examples (crates/sdk/examples), run as processes against a real custodian: each
//! must exit successfully and print what it demonstrates. `cargo build --workspace
//! --all-targets` (tests/run) builds them into target/debug/examples.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    missing_docs,
    reason = "tests; the examples' output is echoed for the log"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use custodia_tests::world::{World, world};

const VARS: [&str; 10] = [
    "CUSTODIA_ADDR",
    "CUSTODIA_SERVER_NAME",
    "CUSTODIA_REGION",
    "CUSTODIA_CUSTODIAN",
    "CUSTODIA_MANIFEST_KEY",
    "CUSTODIA_SERVER_CA",
    "CUSTODIA_CLIENT_CERT",
    "CUSTODIA_CLIENT_KEY",
    "CUSTODIA_OTHER_CERT",
    "CUSTODIA_OTHER_KEY",
];

/// target/<profile>/examples/<name>, next to this test executable.
fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    let dir = if dir.ends_with("deps") {
        dir.parent().unwrap()
    } else {
        dir
    };
    let bin = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build the examples first (`cargo build --workspace --all-targets`; \
         tests/run does)",
        bin.display()
    );
    bin
}

/// The environment for the examples: this world's custodian, connecting as the Irish gateway,
/// with the US gateway as the other-region caller. PEMs go to `dir`.
fn env(w: &World, dir: &Path) -> Vec<(&'static str, String)> {
    let write = |name: &str, pem: &str| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path.to_str().unwrap().to_owned()
    };
    vec![
        ("CUSTODIA_ADDR", w.custodian.addr.to_string()),
        ("CUSTODIA_SERVER_NAME", "localhost".into()),
        ("CUSTODIA_REGION", "ie".into()),
        ("CUSTODIA_CUSTODIAN", "dublin".into()),
        (
            "CUSTODIA_MANIFEST_KEY",
            hex::encode(w.custodian.manifest_key),
        ),
        (
            "CUSTODIA_SERVER_CA",
            write("server-ca.pem", &w.server_ca.cert_pem),
        ),
        (
            "CUSTODIA_CLIENT_CERT",
            write("gw-ie.pem", &w.gw_ie.cert_pem),
        ),
        ("CUSTODIA_CLIENT_KEY", write("gw-ie.key", &w.gw_ie.key_pem)),
        ("CUSTODIA_OTHER_CERT", write("gw-us.pem", &w.gw_us.cert_pem)),
        ("CUSTODIA_OTHER_KEY", write("gw-us.key", &w.gw_us.key_pem)),
    ]
}

/// Runs example `name` with `args` and `env` (and no other `CUSTODIA_*` variable); asserts
/// it exits 0 and returns its stdout.
fn run(name: &str, args: &[&str], env: &[(&str, String)]) -> String {
    let mut cmd = Command::new(example_bin(name));
    cmd.args(args);
    for var in VARS {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "example {name} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    for line in stdout.lines() {
        println!("{name}: {line}");
    }
    stdout
}

fn assert_has(name: &str, stdout: &str, needle: &str) {
    assert!(
        stdout.contains(needle),
        "example {name}: expected {needle:?} in its output:\n{stdout}"
    );
}

#[test]
fn examples_without_configuration_explain_and_exit_zero() {
    for name in ["seal_open", "stream_file", "open_range", "denial"] {
        let out = run(name, &[], &[]);
        assert_has(name, &out, "nothing to do");
    }
}

#[test]
fn examples_run_against_a_custodian() {
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let env = env(&w, tmp.path());

    let out = run("seal_open", &[], &env);
    assert_has("seal_open", &out, "opened: \"Subject: hello");
    assert!(!out.contains("open refused"), "{out}");

    let out = run("stream_file", &[], &env);
    assert_has("stream_file", &out, "opened 8388608 plaintext bytes");
    assert_has(
        "stream_file",
        &out,
        "sha256 match: 8388608 bytes round-tripped",
    );

    // A file given as argument.
    let input = tmp.path().join("input.bin");
    std::fs::write(&input, vec![7u8; 200_001]).unwrap();
    let out = run("stream_file", &[input.to_str().unwrap()], &env);
    assert_has(
        "stream_file",
        &out,
        "sha256 match: 200001 bytes round-tripped",
    );

    let out = run("open_range", &["300000", "300100"], &env);
    assert_has("open_range", &out, "opened range 300000..300100: 100 bytes");
    let read: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("read "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a `read N of M stored bytes` line");
    assert!(
        read > 0 && read < 1 << 20,
        "read {read} stored bytes: {out}"
    );

    let out = run("denial", &[], &env);
    assert_has("denial", &out, "denied: approval_required");
    assert_has("denial", &out, "retryable: false");
}

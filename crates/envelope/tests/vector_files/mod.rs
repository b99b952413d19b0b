//! What the vector tests share: where the vector files are, how a file is checked against
//! what the implementation writes (or rewritten, with `CUSTODIA_UPDATE_VECTORS=1`), and the
//! error names the vectors use.

use std::path::PathBuf;

use custodia_envelope::Error;
use serde_json::Value;

/// `rel` under the envelope crate's directory.
pub(crate) fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Checks that the file `rel` holds `value` as pretty JSON (rewriting it first when
/// `CUSTODIA_UPDATE_VECTORS` is set).
pub(crate) fn check_file(rel: &str, value: &Value) {
    let path = repo_path(rel);
    let text = serde_json::to_string_pretty(value).unwrap() + "\n";
    if std::env::var_os("CUSTODIA_UPDATE_VECTORS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
    }
    let stored = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{rel} missing: run with CUSTODIA_UPDATE_VECTORS=1"));
    assert_eq!(
        stored, text,
        "{rel} differs from what the implementation writes"
    );
}

/// The name of an envelope error's variant (what negative vectors name).
pub(crate) fn variant(e: &Error) -> String {
    format!("{e:?}")
        .split(['(', ' ', '{'])
        .next()
        .unwrap()
        .to_owned()
}

//! Reading and writing the command line's files: private keys created with mode 0600, public
//! files created without replacing anything, documents replaced atomically, and every error
//! naming its path.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::failure::{CliResult, Failure, io_error};

/// Reads a UTF-8 text file.
pub(crate) fn read_text(path: &Path) -> CliResult<String> {
    std::fs::read_to_string(path).map_err(|e| io_error(path, &e))
}

/// Creates `path` (which must not exist yet) with `bytes`, mode 0600 on Unix.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> CliResult {
    write_new(path, bytes, 0o600)
}

/// Creates `path` (which must not exist yet) with `bytes`, mode 0644 on Unix.
pub(crate) fn write_public(path: &Path, bytes: &[u8]) -> CliResult {
    write_new(path, bytes, 0o644)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> CliResult {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, &e))?;
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| io_error(path, &e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(path, &e))
}

/// The temporary sibling `.<name>.partial` used while `path` is being written.
pub(crate) fn partial_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.partial"))
}

/// Replaces (or creates) `path` with `bytes` atomically: a temporary sibling, then a rename.
/// The file keeps mode 0644 (documents, not secrets).
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> CliResult {
    let tmp = partial_path(path);
    let _ = std::fs::remove_file(&tmp);
    write_public(&tmp, bytes)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_error(path, &e)
    })
}

/// Parses a JSON document from `path`, naming the file and the position on failure.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> CliResult<T> {
    let text = read_text(path)?;
    serde_json::from_str(&text)
        .map_err(|e| Failure::failed(format!("{}: not {what}: {e}", path.display())))
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex_string(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Decodes 32 bytes from 64 hex characters (surrounding whitespace ignored); `what` names the
/// flag or field in the error.
pub(crate) fn hex32(s: &str, what: &str) -> CliResult<[u8; 32]> {
    let mut out = [0u8; 32];
    let s = s.trim();
    if s.len() != 64 || hex::decode_to_slice(s, &mut out).is_err() {
        return Err(Failure::failed(format!(
            "{what}: expected 64 hex characters (32 bytes)"
        )));
    }
    Ok(out)
}

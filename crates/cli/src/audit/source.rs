//! Where `audit` and `report` read a custodian's log from: a running custodian (checkpoint,
//! entries in pages, details for auditors) or an audit directory on disk (`entries.jsonl`,
//! `details.jsonl`, as the custodian writes them).

use std::path::{Path, PathBuf};

use custodia_custodian::Error as CustodianError;
use custodia_custodian::api::Denial;
use custodia_custodian::audit::entry::DetailEntry;
use custodia_custodian::audit_store::MAX_RANGE;
use custodia_custodian::client::CustodianClient;
use zeroize::Zeroizing;

use crate::failure::{CliResult, Context, Failure, io_error};

/// The audit directory inside `dir`: `dir` itself if it holds `entries.jsonl`, else
/// `dir/audit` (a data directory) or `dir/data/audit` (a custodian's directory).
pub(crate) fn audit_dir(dir: &Path) -> CliResult<PathBuf> {
    for candidate in [
        dir.to_owned(),
        dir.join("audit"),
        dir.join("data").join("audit"),
    ] {
        if candidate.join("entries.jsonl").is_file() {
            return Ok(candidate);
        }
    }
    Err(Failure::failed(format!(
        "{}: no entries.jsonl here, in audit/ or in data/audit/",
        dir.display()
    )))
}

/// Complete lines of a JSONL file (a torn last line, which the custodian cuts at its next
/// start and never acknowledged, is left out and reported).
fn read_lines(path: &Path) -> CliResult<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).map_err(|e| io_error(path, &e))?;
    let mut lines: Vec<Vec<u8>> = bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    if let Some(last) = lines.pop()
        && !last.is_empty()
    {
        eprintln!(
            "note: {}: ignoring an incomplete last line ({} bytes; an interrupted write the custodian never acknowledged)",
            path.display(),
            last.len()
        );
    }
    Ok(lines)
}

/// The public records of an audit directory.
pub(crate) fn read_records(dir: &Path) -> CliResult<Vec<Vec<u8>>> {
    read_lines(&dir.join("entries.jsonl"))
}

/// The restricted details of an audit directory, if it has them.
pub(crate) fn read_details(dir: &Path) -> CliResult<Option<Vec<DetailEntry>>> {
    let path = dir.join("details.jsonl");
    if !path.is_file() {
        return Ok(None);
    }
    read_lines(&path)?
        .iter()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_slice(l)
                .map_err(|e| Failure::failed(format!("{}: line {}: {e}", path.display(), i + 1)))
        })
        .collect::<CliResult<Vec<_>>>()
        .map(Some)
}

/// The size a checkpoint note states (its second line), without checking its signature.
pub(crate) fn note_size(note: &str) -> CliResult<u64> {
    note.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| Failure::failed("checkpoint: no size on its second line"))
}

/// Public records `start .. end` from a custodian, in pages.
pub(crate) async fn fetch_records(
    client: &CustodianClient,
    start: u64,
    end: u64,
    server: &str,
) -> CliResult<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        let to = end.min(at + MAX_RANGE);
        let page = client
            .entries(at, to)
            .await
            .context(format!("{server}: entries {at}..{to}"))?;
        if page.len() as u64 != to - at {
            return Err(Failure::verification(format!(
                "{server}: asked for entries {at}..{to}, got {}",
                page.len()
            )));
        }
        out.extend(page.into_iter().map(String::into_bytes));
        at = to;
    }
    Ok(out)
}

/// Details `start .. end` and the commitment key, or `None` if the certificate has no
/// auditor role.
pub(crate) async fn fetch_details(
    client: &CustodianClient,
    start: u64,
    end: u64,
    server: &str,
) -> CliResult<Option<(Vec<DetailEntry>, Zeroizing<[u8; 32]>)>> {
    let mut out = Vec::new();
    let mut key = None;
    let mut at = start;
    while at < end || key.is_none() {
        let to = end.min(at + MAX_RANGE);
        let page = match client.details(at, to).await {
            Ok(p) => p,
            Err(CustodianError::Denied(Denial::RoleMissing)) => return Ok(None),
            Err(e) => return Err(Failure::from(e).context(format!("{server}: details {at}..{to}"))),
        };
        let mut k = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(&page.commitment_key, k.as_mut()).map_err(|_| {
            Failure::verification(format!("{server}: details: commitment_key is not 64 hex"))
        })?;
        key = Some(k);
        out.extend(page.details);
        if to == end {
            break;
        }
        at = to;
    }
    Ok(key.map(|k| (out, k)))
}
